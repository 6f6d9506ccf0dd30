//! Newtypes for the numbers that are easy to mix up: instants on the two clocks, timeline
//! ticks and datagram indices. All are `u64` underneath and `Copy`; the conversions between
//! them are named, so an instant of one clock cannot be passed where the other is meant by
//! accident.
//!
//! - [`MonoNs`]: an instant of CLOCK_MONOTONIC, in nanoseconds (pacing, timers, detectors).
//! - [`RealNs`]: an instant of CLOCK_REALTIME, nanoseconds since the Unix epoch (shared
//!   origins, message stamps, NTP-style samples; comparable across hosts once the clock
//!   offset is known).
//! - [`Ticks27M`]: a time on the asset's timeline, in ticks of the 27 MHz system clock.
//! - [`DatagramIndex`]: the number of a datagram of the output session, from 0.
//!
//! The core reads no clock: the driver (`net::clock`) reads them and hands the values in.

use crate::ts::packet::PACKETS_PER_DATAGRAM;
use crate::ts::pcr::{ns_to_ticks, ticks_to_ns, HZ, PER_90KHZ};

/// A `u64` newtype with the derives every unit here has, `Display` as the bare number and
/// `From<T> for u64`.
macro_rules! newtype {
    ($(#[$meta:meta])* pub struct $name:ident(pub u64);) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
            serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<$name> for u64 {
            fn from(v: $name) -> u64 {
                v.0
            }
        }
    };
}

/// `since` and `plus` of a clock's instants.
macro_rules! instant {
    ($name:ident) => {
        impl $name {
            /// Nanoseconds from `earlier` to `self`, 0 if `earlier` is later.
            pub fn since(self, earlier: $name) -> u64 {
                self.0.saturating_sub(earlier.0)
            }

            /// `self + ns`, saturating.
            pub fn plus(self, ns: u64) -> $name {
                $name(self.0.saturating_add(ns))
            }
        }
    };
}

newtype! {
    /// An instant of CLOCK_MONOTONIC, nanoseconds (the driver's clock for pacing and timers).
    pub struct MonoNs(pub u64);
}

newtype! {
    /// An instant of CLOCK_REALTIME, nanoseconds since the Unix epoch.
    ///
    /// Real time is what two hosts share (after the clock offset of `failover::clock` is
    /// applied); it can be stepped by NTP, so durations and deadlines are taken on [`MonoNs`].
    pub struct RealNs(pub u64);
}

newtype! {
    /// A time on the asset's (or session's) timeline in ticks of the 27 MHz system clock.
    ///
    /// ISO/IEC 13818-1 §2.4.2.2: the system clock frequency is 27 000 000 Hz (± 810 Hz); PCR
    /// values are samples of it (`PCR = PCR_base x 300 + PCR_ext`). Timeline ticks are such
    /// values unwrapped and made relative to a start (packet 0 of the asset, or the session
    /// origin), so they do not wrap.
    ///
    /// ```
    /// use tandem::units::Ticks27M;
    /// let frame = Ticks27M(1_080_000); // one 25 fps frame
    /// assert_eq!(frame.to_ns(), 40_000_000);
    /// assert_eq!(Ticks27M::from_ns(40_000_000), frame);
    /// assert_eq!(frame.to_90khz(), 3_600);
    /// ```
    pub struct Ticks27M(pub u64);
}

newtype! {
    /// The number of a datagram of the output session, from 0 (loops concatenated): datagram
    /// `i` holds output packets `7i .. 7i+7` (see `docs/architecture.md`, "Units").
    ///
    /// ```
    /// use tandem::units::DatagramIndex;
    /// let i = DatagramIndex(3);
    /// assert_eq!(i.first_packet(), 21);
    /// assert_eq!(i.next(), DatagramIndex(4));
    /// ```
    pub struct DatagramIndex(pub u64);
}

instant!(MonoNs);
instant!(RealNs);

impl MonoNs {
    /// The real-time instant of `self`, given `real - mono` at some moment (the two clocks
    /// advance together between steps of the real-time clock).
    pub fn to_real(self, real_minus_mono: i64) -> RealNs {
        RealNs(clamp_u64(self.0 as i128 + real_minus_mono as i128))
    }
}

impl RealNs {
    /// Signed nanoseconds `self - other` (an NTP-style difference of stamps).
    pub fn diff(self, other: RealNs) -> i128 {
        self.0 as i128 - other.0 as i128
    }

    /// The same instant on a peer's clock that runs `offset_ns` ahead of this one
    /// (`failover::clock`: offset = peer minus self), clamped at the epoch.
    pub fn shifted(self, offset_ns: i64) -> RealNs {
        RealNs(clamp_u64(self.0 as i128 + offset_ns as i128))
    }

    /// The monotonic instant of `self`, given `real - mono` at some moment.
    pub fn to_mono(self, real_minus_mono: i64) -> MonoNs {
        MonoNs(clamp_u64(self.0 as i128 - real_minus_mono as i128))
    }

    /// Milliseconds since the Unix epoch (what `--start-at` takes).
    pub fn from_unix_ms(ms: u64) -> RealNs {
        RealNs(ms.saturating_mul(1_000_000))
    }
}

impl Ticks27M {
    /// Ticks per second (ISO/IEC 13818-1 §2.4.2.2).
    pub const HZ: u64 = HZ;

    /// Nanoseconds, rounded down ([`ticks_to_ns`]; exact on whole microseconds: 1 us = 27
    /// ticks).
    pub fn to_ns(self) -> u64 {
        ticks_to_ns(self.0)
    }

    /// Ticks in `ns` nanoseconds, rounded down ([`ns_to_ticks`]).
    pub fn from_ns(ns: u64) -> Ticks27M {
        Ticks27M(ns_to_ticks(ns))
    }

    /// The same time in 90 kHz units (PTS/DTS, RTP timestamps), rounded down: `ticks / 300`.
    pub fn to_90khz(self) -> u64 {
        self.0 / PER_90KHZ
    }

    /// The ticks from `earlier` to `self`, 0 if `earlier` is later.
    pub fn since(self, earlier: Ticks27M) -> Ticks27M {
        Ticks27M(self.0.saturating_sub(earlier.0))
    }

    /// Seconds, as a float (for reports).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / HZ as f64
    }
}

impl DatagramIndex {
    /// The datagram after this one.
    pub fn next(self) -> DatagramIndex {
        DatagramIndex(self.0 + 1)
    }

    /// Output packet number of its first TS packet (`7 i`).
    pub fn first_packet(self) -> u64 {
        self.0 * PACKETS_PER_DATAGRAM as u64
    }
}

fn clamp_u64(v: i128) -> u64 {
    v.clamp(0, u64::MAX as i128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_conversions_round_trip() {
        let mono = MonoNs(5_000_000_000);
        let real_minus_mono = 1_700_000_000_000_000_000i64;
        let real = mono.to_real(real_minus_mono);
        assert_eq!(real, RealNs(1_700_000_005_000_000_000));
        assert_eq!(real.to_mono(real_minus_mono), mono);
        assert_eq!(RealNs(5).to_mono(10), MonoNs(0), "clamped at 0");
        assert_eq!(RealNs(100).shifted(-30), RealNs(70));
        assert_eq!(RealNs(100).diff(RealNs(130)), -30);
        assert_eq!(MonoNs(10).since(MonoNs(30)), 0);
        assert_eq!(RealNs::from_unix_ms(1_500), RealNs(1_500_000_000));
    }

    #[test]
    fn ticks_convert_exactly_on_whole_microseconds() {
        for us in [0u64, 1, 37, 40_000, 3_600_000_000] {
            let t = Ticks27M(us * 27);
            assert_eq!(t.to_ns(), us * 1_000);
            assert_eq!(Ticks27M::from_ns(us * 1_000), t);
        }
        assert_eq!(Ticks27M(27_000_000).as_secs_f64(), 1.0);
        assert_eq!(Ticks27M(299).to_90khz(), 0);
    }

    #[test]
    fn serde_is_the_bare_number() {
        assert_eq!(serde_json::to_string(&RealNs(7)).unwrap(), "7");
        assert_eq!(
            serde_json::from_str::<DatagramIndex>("9").unwrap(),
            DatagramIndex(9)
        );
        assert_eq!(DatagramIndex(9).to_string(), "9");
    }
}
