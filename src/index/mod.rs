//! The precomputed offset map: where the secondary finds the next PCR/frame boundary to
//! switch at, and where every datagram of a session comes from.
//!
//! For one pass over an asset it records where every valid TS packet sits in the file,
//! the asset's PCR timeline (ISO/IEC 13818-1 §2.4.2.2: the time a byte is meant to enter
//! the decoder is interpolated between the neighbouring PCRs), and for every 7-packet
//! datagram its byte offset, departure time and PCR/frame flags. Everything downstream
//! (the output stream, the pacer, the failover switch) reads times from here, so two
//! engines given the same file always agree.
//!
//! Timeline ticks are 27 MHz ticks relative to packet 0 (`time(0) == 0`), continuous across
//! PCR wrap-around and across discontinuities (see [`OffsetMap::packet_time`]).

use crate::ts::packet::{Cc, Pid, PACKETS_PER_DATAGRAM, PACKET_SIZE};
use crate::ts::pcr::Pcr;
use crate::units::Ticks27M;

pub mod build;
pub mod error;
pub mod identity;
pub mod persist;
pub mod report;
pub mod scan;
pub mod synth;
pub mod timeline;

pub use build::{build_bytes, build_from, BuildOptions, Built};
pub use error::{BuildError, IndexError, PersistError};
pub use identity::{hash_bytes, hash_reader};
pub use report::{Problem, Report};

/// An asset's identity: what two servers compare before they agree to play "the same file".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct AssetIdentity {
    /// File size in bytes.
    pub size: u64,
    /// XXH3-128 of the whole file content.
    pub hash: u128,
}

impl std::fmt::Display for AssetIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes, xxh3-128 {:032x}", self.size, self.hash)
    }
}

/// A run of consecutive, correctly aligned TS packets in the file. A sync loss starts a
/// new segment at the next offset where packets are aligned again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Byte offset of the segment's first packet in the file.
    pub byte_offset: u64,
    /// Index (among valid packets) of the segment's first packet.
    pub first_packet: u64,
    /// Number of packets in the segment.
    pub packets: u64,
}

/// A PCR seen on the PCR PID: the anchor points of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// Index (among valid packets) of the packet carrying the PCR.
    pub packet: u64,
    /// Timeline ticks of that packet (relative to packet 0, unwrapped, continuous).
    pub time: u64,
    /// The raw PCR value as found in the file.
    pub pcr: Pcr,
}

/// Flags of a datagram entry.
pub mod flags {
    /// One of the datagram's packets carries a PCR on the PCR PID.
    pub const HAS_PCR: u8 = 0x01;
    /// One of the datagram's packets starts a video frame (PUSI on the video PID).
    pub const FRAME_START: u8 = 0x02;
}

/// One 7-packet datagram of one pass: asset packets `7d .. 7d+7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramEntry {
    /// Byte offset of its first packet.
    pub byte_offset: u64,
    /// Departure time of its first packet on the timeline (RFC 2250 §2: target transmission
    /// time of the first byte), 27 MHz ticks relative to packet 0.
    pub time: Ticks27M,
    /// [`flags`] bits.
    pub flags: u8,
    /// Number of the video frame in progress at this datagram's first packet (0-based; frames
    /// are counted by PUSI on the video PID; packets before the first frame start count as 0).
    pub frame: u32,
}

/// Continuity-counter facts of one PID over one pass, needed to loop without a CC error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidCc {
    /// The PID.
    pub pid: Pid,
    /// CC of its first packet in the pass.
    pub first: Cc,
    /// CC of its last packet in the pass.
    pub last: Cc,
    /// How much to add to every CC of this PID per loop so that the first packet of pass
    /// k+1 follows the last of pass k: `last + 1 - first` (mod 16); 0 for the null PID.
    pub advance: u8,
}

/// The offset map of one asset. Built by `index::build`, encoded by `index::persist`, saved
/// beside the asset and loaded by `io::load_or_build`.
#[derive(Debug, Clone, PartialEq)]
pub struct OffsetMap {
    /// Size and content hash of the file this map describes.
    pub identity: AssetIdentity,
    /// Valid TS packets in one pass.
    pub packets: u64,
    /// Aligned runs of packets, in file order, covering all `packets`.
    pub segments: Vec<Segment>,
    /// PCRs of the PCR PID, in packet order. At least two for a playable asset.
    pub anchors: Vec<Anchor>,
    /// Length of one pass on the timeline, in 27 MHz ticks, rounded up to a multiple of 300
    /// so that PTS/DTS (90 kHz) shift by a whole number per loop: `time(packets)`.
    pub loop_period: u64,
    /// The PID whose PCRs define the timeline.
    pub pcr_pid: Pid,
    /// The video elementary stream, if the PMT lists one.
    pub video_pid: Option<Pid>,
    /// Frame rate as a rational (numerator, denominator), e.g. (25, 1), (30000, 1001).
    pub frame_rate: Option<(u32, u32)>,
    /// Number of video frame starts in one pass.
    pub frames: u32,
    /// One entry per datagram of one pass (`ceil(packets / 7)` entries).
    pub datagrams: Vec<DatagramEntry>,
    /// CC facts per PID (sorted by PID).
    pub pid_cc: Vec<PidCc>,
}

impl OffsetMap {
    /// Datagrams in one pass: `ceil(packets / 7)`.
    pub fn datagram_count(&self) -> u64 {
        self.packets.div_ceil(PACKETS_PER_DATAGRAM as u64)
    }

    /// Byte offset in the file of valid packet `p` (`p < packets`).
    pub fn packet_offset(&self, p: u64) -> Option<u64> {
        let i = self
            .segments
            .partition_point(|s| s.first_packet <= p)
            .checked_sub(1)?;
        let s = self.segments[i];
        (p < s.first_packet + s.packets)
            .then(|| s.byte_offset + (p - s.first_packet) * PACKET_SIZE as u64)
    }

    /// Timeline time of valid packet `p` (`0 ..= packets`), 27 MHz ticks.
    ///
    /// Between two anchors the time is interpolated linearly by packet position; before the
    /// first and after the last anchor it is extrapolated at the rate of the nearest anchor
    /// pair (the constant-rate assumption of ISO/IEC 13818-1 §2.4.2.2).
    pub fn packet_time(&self, p: u64) -> u64 {
        interpolate(&self.anchors, p)
    }

    /// CC advance per loop for `pid` (0 when unknown).
    pub fn cc_advance(&self, pid: Pid) -> u8 {
        self.pid_cc
            .binary_search_by_key(&pid, |e| e.pid)
            .map(|i| self.pid_cc[i].advance)
            .unwrap_or(0)
    }

    /// Duration of one frame in 27 MHz ticks, when the frame rate is known.
    pub fn frame_ticks(&self) -> Option<u64> {
        self.frame_rate
            .filter(|&(n, d)| n > 0 && d > 0)
            .map(|(n, d)| crate::ts::pcr::HZ * d as u64 / n as u64)
    }
}

/// Linear interpolation of `p` over `anchors` (sorted by packet, times non-decreasing).
/// Returns 0 with fewer than two anchors.
pub fn interpolate(anchors: &[Anchor], p: u64) -> u64 {
    if anchors.len() < 2 {
        return 0;
    }
    // The pair (a, b) to interpolate/extrapolate on: the one around p, clamped to the ends.
    let i = anchors.partition_point(|a| a.packet <= p);
    let i = i.clamp(1, anchors.len() - 1);
    interpolate_pair(anchors[i - 1], anchors[i], p)
}

fn interpolate_pair(a: Anchor, b: Anchor, p: u64) -> u64 {
    let dp = (b.packet.saturating_sub(a.packet)).max(1);
    let dt = b.time as i128 - a.time as i128;
    let dx = p as i128 - a.packet as i128;
    // Fast path in 64 bits (always taken for real files: steps are <= 100 ms, pieces short);
    // both paths truncate toward zero, so they agree exactly.
    let step = match (i64::try_from(dt), i64::try_from(dx), i64::try_from(dp)) {
        (Ok(dt), Ok(dx), Ok(dp)) => match dx.checked_mul(dt) {
            Some(m) => (m / dp) as i128,
            None => (dx as i128).saturating_mul(dt as i128) / dp as i128,
        },
        // Saturating: a valid map never comes near the limits, a damaged one must not panic.
        _ => dx.saturating_mul(dt) / dp as i128,
    };
    let t = (a.time as i128).saturating_add(step);
    t.clamp(0, u64::MAX as i128) as u64
}

/// [`interpolate`] for non-decreasing packet numbers in amortised O(1) (a cursor over the
/// anchors); gives exactly the same values.
#[derive(Debug, Clone)]
pub struct Interpolator<'a> {
    anchors: &'a [Anchor],
    i: usize,
}

impl<'a> Interpolator<'a> {
    /// A cursor at the start of `anchors`.
    pub fn new(anchors: &'a [Anchor]) -> Self {
        Interpolator { anchors, i: 0 }
    }

    /// Time of packet `p`; `p` must not decrease between calls (a smaller `p` restarts
    /// the cursor).
    pub fn at(&mut self, p: u64) -> u64 {
        let a = self.anchors;
        if a.len() < 2 {
            return 0;
        }
        if self.i > 0 && a[self.i - 1].packet > p {
            self.i = 0;
        }
        while self.i < a.len() && a[self.i].packet <= p {
            self.i += 1;
        }
        let i = self.i.clamp(1, a.len() - 1);
        interpolate_pair(a[i - 1], a[i], p)
    }
}

#[cfg(test)]
mod build_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor(packet: u64, time: u64) -> Anchor {
        Anchor {
            packet,
            time,
            pcr: Pcr::from_ticks(time),
        }
    }

    #[test]
    fn interpolation_and_extrapolation() {
        let a = [anchor(10, 1000), anchor(20, 2000), anchor(40, 3000)];
        assert_eq!(interpolate(&a, 15), 1500);
        assert_eq!(interpolate(&a, 30), 2500);
        assert_eq!(interpolate(&a, 50), 3500); // extrapolated at the last pair's rate
        assert_eq!(interpolate(&a, 5), 500); // extrapolated at the first pair's rate
        assert_eq!(interpolate(&a, 0), 0);
        assert_eq!(interpolate(&a[..1], 5), 0);
        let mut it = Interpolator::new(&a);
        for p in 0..60 {
            assert_eq!(it.at(p), interpolate(&a, p), "p = {p}");
        }
        assert_eq!(it.at(5), 500);
    }

    proptest::proptest! {
        #[test]
        fn fast_interpolation_matches_wide_math(
            ap in 0u64..1 << 40, dpk in 1u64..1 << 20, at in 0u64..1 << 50,
            dt in 0u64..1 << 40, p in 0u64..1 << 41,
        ) {
            let a = anchor(ap, at);
            let b = anchor(ap + dpk, at + dt);
            let wide = at as i128 + (p as i128 - ap as i128) * dt as i128 / dpk as i128;
            let wide = wide.clamp(0, u64::MAX as i128) as u64;
            proptest::prop_assert_eq!(interpolate_pair(a, b, p), wide);
        }
    }

    #[test]
    fn packet_offset_across_segments() {
        let m = OffsetMap {
            identity: AssetIdentity { size: 0, hash: 0 },
            packets: 15,
            segments: vec![
                Segment {
                    byte_offset: 0,
                    first_packet: 0,
                    packets: 10,
                },
                Segment {
                    byte_offset: 1900,
                    first_packet: 10,
                    packets: 5,
                },
            ],
            anchors: vec![],
            loop_period: 0,
            pcr_pid: Pid::new(256),
            video_pid: None,
            frame_rate: None,
            frames: 0,
            datagrams: vec![],
            pid_cc: vec![],
        };
        assert_eq!(m.packet_offset(9), Some(9 * 188));
        assert_eq!(m.packet_offset(10), Some(1900));
        assert_eq!(m.packet_offset(14), Some(1900 + 4 * 188));
        assert_eq!(m.packet_offset(15), None);
        assert_eq!(m.datagram_count(), 3);
    }
}
