//! The 27 MHz system clock: PCR values and an unwrapping timeline
//! (ISO/IEC 13818-1 §2.4.3.5, equations 2-1 .. 2-3).
//!
//! `PCR(i) = PCR_base(i) x 300 + PCR_ext(i)`; the base is 33 bits, so PCR wraps every
//! 2^33 x 300 ticks, about 26.5 hours.

/// Ticks of the 27 MHz system clock per second.
pub const HZ: u64 = 27_000_000;
/// Ticks of the 27 MHz clock per 90 kHz PTS/DTS tick.
pub const PER_90KHZ: u64 = 300;
/// Modulus of a PCR value: 2^33 x 300.
pub const PCR_MODULUS: u64 = (1u64 << 33) * 300;
/// Modulus of a PTS/DTS value: 2^33.
pub const PTS_MODULUS: u64 = 1u64 << 33;

/// A program clock reference: 27 MHz ticks modulo [`PCR_MODULUS`].
///
/// ```
/// use tandem::ts::pcr::{Pcr, PCR_MODULUS};
/// let late = Pcr::from_ticks(PCR_MODULUS - 10);
/// let early = Pcr::from_ticks(20);
/// assert_eq!(early.ticks_since(late), 30); // wrap-around
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pcr(u64);

impl Pcr {
    /// From a tick count (reduced modulo [`PCR_MODULUS`]).
    pub const fn from_ticks(t: u64) -> Pcr {
        Pcr(t % PCR_MODULUS)
    }
    /// The tick count.
    pub const fn ticks(self) -> u64 {
        self.0
    }
    /// Decodes the 6-byte field: 33-bit base, 6 reserved bits, 9-bit extension (§2.4.3.4).
    pub fn from_field(b: [u8; 6]) -> Pcr {
        let base = ((b[0] as u64) << 25)
            | ((b[1] as u64) << 17)
            | ((b[2] as u64) << 9)
            | ((b[3] as u64) << 1)
            | ((b[4] as u64) >> 7);
        let ext = (((b[4] & 0x01) as u64) << 8) | b[5] as u64;
        // An out-of-range extension (>= 300) is still representable; keep it modular.
        Pcr::from_ticks(base * PER_90KHZ + ext)
    }
    /// Encodes the 6-byte field with the reserved bits set to 1.
    pub fn to_field(self) -> [u8; 6] {
        let base = self.0 / PER_90KHZ;
        let ext = self.0 % PER_90KHZ;
        [
            (base >> 25) as u8,
            (base >> 17) as u8,
            (base >> 9) as u8,
            (base >> 1) as u8,
            (((base & 1) as u8) << 7) | 0x7E | ((ext >> 8) as u8 & 1),
            ext as u8,
        ]
    }
    /// `self - earlier` modulo the PCR wrap.
    pub const fn ticks_since(self, earlier: Pcr) -> u64 {
        (self.0 + PCR_MODULUS - earlier.0) % PCR_MODULUS
    }
    /// `self + ticks` modulo the PCR wrap.
    pub const fn add(self, ticks: u64) -> Pcr {
        Pcr::from_ticks((self.0 % PCR_MODULUS) + (ticks % PCR_MODULUS))
    }
}

/// Adds `ticks90` to a 33-bit PTS/DTS value, modulo 2^33.
pub const fn pts_add(pts: u64, ticks90: u64) -> u64 {
    (pts % PTS_MODULUS + ticks90 % PTS_MODULUS) % PTS_MODULUS
}

/// Converts 27 MHz ticks to nanoseconds without overflow for any u64 input.
pub const fn ticks_to_ns(t: u64) -> u64 {
    // floor(t x 1000 / 27) without a 128-bit division (a library call on the pacer's
    // path): t = 27q + r gives 1000q + floor(1000r / 27).
    (t / 27)
        .saturating_mul(1_000)
        .saturating_add((t % 27) * 1_000 / 27)
}

/// Converts nanoseconds to 27 MHz ticks.
pub const fn ns_to_ticks(ns: u64) -> u64 {
    // floor(ns x 27 / 1000) as above: ns = 1000q + r gives 27q + floor(27r / 1000).
    (ns / 1_000)
        .saturating_mul(27)
        .saturating_add((ns % 1_000) * 27 / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn field_known_value() {
        // base = 1, ext = 299
        let p = Pcr::from_ticks(300 + 299);
        let f = p.to_field();
        assert_eq!(f, [0, 0, 0, 0, 0x80 | 0x7E | 1, 299u16 as u8]);
        assert_eq!(Pcr::from_field(f), p);
    }

    proptest! {
        #[test]
        fn field_round_trip(t in 0u64..PCR_MODULUS) {
            let p = Pcr::from_ticks(t);
            prop_assert_eq!(Pcr::from_field(p.to_field()), p);
        }

        #[test]
        fn wrap_arithmetic(t in 0u64..PCR_MODULUS, d in 0u64..PCR_MODULUS) {
            let a = Pcr::from_ticks(t);
            prop_assert_eq!(a.add(d).ticks_since(a), d);
        }

        #[test]
        fn ns_ticks_round_trip(ns in 0u64..(1u64 << 50)) {
            let back = ticks_to_ns(ns_to_ticks(ns));
            prop_assert!(ns - back < 40);
        }

        #[test]
        fn conversions_equal_the_exact_128_bit_quotients(t in any::<u64>()) {
            let exact = t as u128 * 1_000 / 27;
            prop_assert_eq!(ticks_to_ns(t) as u128, exact.min(u64::MAX as u128));
            prop_assert_eq!(ns_to_ticks(t) as u128, t as u128 * 27 / 1_000);
        }
    }
}
