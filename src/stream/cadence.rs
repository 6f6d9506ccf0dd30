//! How pass `k + 1` of a looped asset follows pass `k` on the output timeline
//! (sans-IO: computed from the offset map alone, so both servers of a pair derive the same
//! plan and datagram `i` stays a pure function of the asset and the session parameters).
//!
//! **The video cadence.** A pass is shifted by `period` ticks per loop: PCR (ISO/IEC 13818-1
//! §2.4.3.5), PTS/DTS (§2.4.3.7) and departure times alike. With the asset's byte span
//! (`OffsetMap::loop_period`, the time of the packet after the last) as the period, the first
//! frame of pass `k + 1` is presented a byte span after the first of pass `k`, which is not a
//! whole number of frames: the frame cadence breaks at every loop point (a held frame or a
//! frame shown early). With the cadence plan the period is `frames x frame duration`, so the
//! first frame of the next pass is presented exactly one frame after the last frame of the
//! one before.
//!
//! **The join.** The cadence period is usually a little shorter than the byte span: a muxer
//! sends the last frames' audio and PCRs after the last video frame, so the next pass's first
//! packets would be due before the previous pass's last ones (the *overlap*, 10-51 ms on the
//! bundled assets). Every packet of a PID must stay in order (CC, PES reassembly), so the
//! whole head of the next pass is queued behind the tail and its departure times are
//! re-derived: each head packet departs at `max(nominal, previous + half the mean packet
//! interval)`, i.e. the head catches up at no more than twice the asset's mean rate (no
//! burst), and from the first head packet that is on time again the schedule is the asset's
//! own. A delayed packet that carries a PCR gets the PCR of its re-derived departure (the
//! PCR stays the STC at arrival), so the head's frames reach the decoder at most `overlap`
//! later relative to their presentation times than in the asset: the decoder buffer (T-STD,
//! §2.4.2) holds less for those frames, never more, and refills as the head catches up. An
//! asset whose muxer delay is shorter than the overlap would underflow; none of the bundled
//! assets comes close (their video delay is hundreds of ms).
//!
//! When the cadence period is longer than the byte span (the file ends on the last frame's
//! packets), the join is a short silence of at most one frame (the PCR step across it is
//! that much longer). A map without a video PID, a known frame rate or frame starts, or one
//! whose frame count does not fit its byte span (overlap above a quarter of the span or a
//! second, silence above one frame), loops by the byte span as before ([`LoopPlan::cadence`]
//! is then `false`).

use crate::index::OffsetMap;
use crate::ts::packet::{Pid, SYNC_BYTE};

/// The shift between passes and the re-derived head of every pass after the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopPlan {
    /// Timeline shift per pass, 27 MHz ticks, a multiple of 300 (PTS/DTS shift by whole
    /// 90 kHz ticks).
    pub period: u64,
    /// `true`: `period` is `frames x frame duration`; `false`: the byte span.
    pub cadence: bool,
    /// The head of passes `k >= 1`: the packets it keeps (asset packet, departure offset in
    /// ticks from the pass origin, at or after the packet's own `packet_time`), covering
    /// asset packets `0 .. region`. Empty without an overlap.
    head: Vec<(u64, u64)>,
    /// Asset packets the head covers (kept and dropped null packets).
    region: u64,
}

/// At most this much overlap (27 MHz ticks, 1 s) is re-derived; more means the frame count
/// does not describe the file.
const MAX_OVERLAP: u64 = crate::ts::pcr::HZ;

/// Where an asset packet of the played session sits: `(pass, asset packet)`.
pub type Located = (u64, u64);

impl LoopPlan {
    /// The plan for `map`: the cadence plan where the map supports it, else the byte span.
    /// `is_null(p)` tells whether asset packet `p` is a null packet (PID 0x1FFF, ISO/IEC
    /// 13818-1 §2.4.3.3), which a late head may drop; `None` if that is not known (then
    /// nothing is dropped).
    pub fn for_map(map: &OffsetMap, is_null: Option<&dyn Fn(u64) -> bool>) -> LoopPlan {
        Self::cadence_plan(map, is_null).unwrap_or(LoopPlan {
            period: map.loop_period,
            cadence: false,
            head: Vec::new(),
            region: 0,
        })
    }

    /// [`Self::for_map`] reading from the asset whether the join's packets are null packets
    /// (only the packets of the join are read; an unreadable one counts as not null).
    pub fn for_asset(map: &OffsetMap, asset: &dyn crate::stream::reader::ReadAt) -> LoopPlan {
        let is_null = |p: u64| is_null_packet(map, asset, p);
        Self::for_map(map, Some(&is_null))
    }

    fn cadence_plan(map: &OffsetMap, is_null: Option<&dyn Fn(u64) -> bool>) -> Option<LoopPlan> {
        map.video_pid?;
        let frame = map.frame_ticks().filter(|&f| f > 0)?;
        if map.frames == 0 || map.packets < 2 {
            return None;
        }
        let period = round_300(frame.checked_mul(map.frames as u64)?);
        let span = map.loop_period;
        if period == 0 || period > span.saturating_add(frame) {
            return None; // a silence longer than a frame: the count does not fit
        }
        let overlap = span.saturating_sub(period);
        if overlap > span / 4 || overlap > MAX_OVERLAP {
            return None;
        }
        let mut plan = LoopPlan {
            period,
            cadence: true,
            head: Vec::new(),
            region: 0,
        };
        if overlap > 0 {
            // The previous pass's last packet, on this pass's origin.
            let prev = map.packet_time(map.packets - 1) as i128 - period as i128;
            let (head, region) = head_behind(map, prev, is_null)?;
            plan.head = head;
            plan.region = region;
        }
        Some(plan)
    }

    /// The re-derived head of every later pass: (asset packet, departure offset).
    pub fn head(&self) -> &[(u64, u64)] {
        &self.head
    }

    /// Asset packets the head covers (kept and dropped null packets).
    pub fn region(&self) -> u64 {
        self.region
    }

    /// The head behind a tail: packets depart at `max(nominal, previous + spacing)`; a null
    /// packet at least half a `mean` interval late is dropped (dropping one that is less
    /// late would leave a hole of more than one interval); ends at the first packet on time.
    /// `None` if that takes more than `limit` packets.
    fn head_at(
        map: &OffsetMap,
        mut prev: i128,
        mean: u64,
        spacing: u64,
        is_null: Option<&dyn Fn(u64) -> bool>,
        limit: u64,
    ) -> Option<(Vec<(u64, u64)>, u64)> {
        let mut head = Vec::new();
        for p in 0..map.packets.min(limit) {
            let nominal = map.packet_time(p) as i128;
            let at = (prev + spacing as i128).max(nominal);
            if at == nominal {
                return Some((head, p)); // on time: the asset's own schedule from here
            }
            if (at - nominal) * 2 >= mean as i128 && is_null.is_some_and(|f| f(p)) {
                continue; // late stuffing: dropped, its slot goes to the packets behind it
            }
            head.push((p, at as u64));
            prev = at;
        }
        None
    }
}

/// Whether packet `p` of `map` is a null packet (PID 0x1FFF, ISO/IEC 13818-1 §2.4.3.3) in
/// `asset`; an unreadable one counts as not null.
pub fn is_null_packet(map: &OffsetMap, asset: &dyn crate::stream::reader::ReadAt, p: u64) -> bool {
    let mut h = [0u8; 3];
    map.packet_offset(p)
        .is_some_and(|o| asset.read_exact_at(&mut h, o).is_ok())
        && h[0] == SYNC_BYTE
        && u16::from_be_bytes([h[1], h[2]]) & 0x1FFF == Pid::NULL.value()
}

/// The head of `map` queued behind a tail whose last packet departs at `prev` (ticks on
/// `map`'s origin; negative or early: nothing to wait for): near the map's mean rate (5 %
/// above it, which takes up what dropping whole packets leaves), dropping late null packets,
/// so that a constant-rate asset stays constant-rate; where that does not catch up within
/// half the map, at twice the mean rate. `None` when even that does not catch up.
/// Returns the kept head packets (packet, departure offset) and the packets it covers.
pub fn head_behind(
    map: &OffsetMap,
    prev: i128,
    is_null: Option<&dyn Fn(u64) -> bool>,
) -> Option<(Vec<(u64, u64)>, u64)> {
    if map.packets == 0 {
        return None;
    }
    let mean = (map.loop_period / map.packets).max(1);
    let half = map.packets / 2;
    LoopPlan::head_at(map, prev, mean, mean * 19 / 20, is_null, half)
        .or_else(|| LoopPlan::head_at(map, prev, mean, (mean / 2).max(1), is_null, map.packets))
}

impl LoopPlan {
    /// Packets of pass `k` (`k >= 1` drops the head's late null packets).
    pub fn pass_len(&self, packets: u64, k: u64) -> u64 {
        if k == 0 {
            packets
        } else {
            packets - self.dropped()
        }
    }

    /// Null packets dropped from the head of every later pass.
    pub fn dropped(&self) -> u64 {
        self.region - self.head.len() as u64
    }

    /// Output packets of `passes` passes.
    pub fn total(&self, packets: u64, passes: u64) -> u64 {
        if passes == 0 {
            return 0;
        }
        let later = packets - self.dropped();
        packets.saturating_add((passes - 1).saturating_mul(later))
    }

    /// `(pass, asset packet)` of output packet `j`.
    pub fn locate(&self, packets: u64, j: u64) -> Located {
        if j < packets {
            return (0, j);
        }
        let later = packets - self.dropped();
        let r = j - packets;
        let (k, q) = (1 + r / later, r % later);
        match self.head.get(q as usize) {
            Some(&(p, _)) => (k, p),
            None => (k, q + self.dropped()),
        }
    }

    /// Output packet `j`'s departure (27 MHz ticks from the session origin), with the
    /// packet's nominal time computed by `nominal(p)` when needed.
    pub fn time_of(&self, packets: u64, j: u64, nominal: impl FnOnce(u64) -> u64) -> u64 {
        let (k, p) = self.locate(packets, j);
        let shift = (k as u128 * self.period as u128).min(u64::MAX as u128) as u64;
        let own = self.delayed(packets, j).unwrap_or_else(|| nominal(p));
        own.saturating_add(shift)
    }

    /// The re-derived offset of output packet `j`, if it is in a later pass's head.
    fn delayed(&self, packets: u64, j: u64) -> Option<u64> {
        if j < packets {
            return None;
        }
        let later = packets - self.dropped();
        let q = (j - packets) % later;
        self.head.get(q as usize).map(|&(_, t)| t)
    }

    /// How much later than in the asset output packet `j` departs (ticks): the correction of
    /// a PCR it carries.
    pub fn delay(&self, map: &OffsetMap, j: u64) -> u64 {
        let (_, p) = self.locate(map.packets, j);
        self.delayed(map.packets, j)
            .map_or(0, |t| t.saturating_sub(map.packet_time(p)))
    }

    /// The output packet of asset packet `p` in pass `k` (for a dropped null packet: the next
    /// one kept).
    pub fn output_index(&self, map: &OffsetMap, k: u64, p: u64) -> u64 {
        if k == 0 {
            return p;
        }
        let later = map.packets - self.dropped();
        let base = map.packets + (k - 1) * later;
        let q = if p >= self.region {
            p - self.dropped()
        } else {
            self.head.partition_point(|&(x, _)| x < p) as u64
        };
        base + q
    }

    /// Output packets of each later pass whose departure is re-derived.
    pub fn head_len(&self) -> usize {
        self.head.len()
    }

    /// The overlap (ticks) of the byte span over the period; 0 for a silence or none.
    pub fn overlap(&self, map: &OffsetMap) -> u64 {
        map.loop_period.saturating_sub(self.period)
    }
}

/// `t` rounded to the nearest multiple of 300 (one 90 kHz tick).
pub fn round_300(t: u64) -> u64 {
    (t + 150) / 300 * 300
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stream::testutil::{asset, Spec};

    /// 25 frames of 40 packets at 27000 ticks per packet (exactly 40 ms frames), then 40
    /// packets without a frame start: the byte span is one frame longer than the cadence.
    pub(crate) fn overlapping() -> Spec {
        Spec {
            packets: 1040,
            ticks_per_packet: 27_000,
            frames_before: Some(1000),
            ..Spec::default()
        }
    }

    #[test]
    fn the_period_is_the_frame_count_times_the_frame_duration() {
        let (_, map) = asset(&overlapping());
        assert_eq!(map.frames, 25);
        let plan = LoopPlan::for_map(&map, None);
        assert!(plan.cadence);
        assert_eq!(plan.period, 25 * 1_080_000);
        assert_eq!(plan.overlap(&map), 1_080_000);
        // The tail's last packet is at 1039 x 27000 - period = 1053000 on the next pass's
        // origin; the head follows at 13500-tick spacing until it is on time again (packet 79: 1066500 + 79 x 13500 = 79 x 27000).
        assert_eq!(plan.head_len(), 79);
        let n = map.packets;
        let time = |j: u64| plan.time_of(n, j, |p| map.packet_time(p));
        let mut prev = map.packet_time(1039) as i128 - plan.period as i128;
        for p in 0..plan.head_len() as u64 {
            let t = time(n + p) - plan.period;
            assert_eq!(t as i128 - prev, 13_500, "packet {p}");
            assert!(t >= map.packet_time(p));
            prev = t as i128;
        }
        let p = plan.head_len() as u64;
        assert_eq!(time(n + p) - plan.period, map.packet_time(p));
        // The first pass is the asset's own schedule; without nulls nothing is dropped.
        assert_eq!(time(0), 0);
        assert_eq!(plan.delay(&map, 5), 0);
        assert_eq!(plan.delay(&map, 2 * n), 1_053_000 + 13_500);
        assert_eq!(plan.total(n, 3), 3 * n);
        assert_eq!(plan.locate(n, 2 * n + 7), (2, 7));
    }

    /// A late null packet of the head is dropped: the head catches up at the asset's own rate.
    #[test]
    fn late_null_packets_are_dropped_and_the_rate_stays_the_mean() {
        // 25 frames of 40 packets, then 10 packets of tail: an overlap of 10 packets.
        let spec = Spec {
            packets: 1010,
            ..overlapping()
        };
        let (bytes, map) = asset(&spec);
        let is_null = |p: u64| {
            let o = map.packet_offset(p).unwrap() as usize;
            u16::from_be_bytes([bytes[o + 1], bytes[o + 2]]) & 0x1FFF == 0x1FFF
        };
        let plan = LoopPlan::for_map(&map, Some(&is_null));
        assert!(plan.cadence);
        // The head's first packet is 10 packets late (one per packet of overlap); the
        // synthetic asset has a null packet every 13, each dropped one takes one off, the
        // 5 % faster spacing the rest.
        let dropped = plan.dropped();
        assert!(dropped > 0 && dropped <= 10, "{dropped}");
        assert!(plan.head_len() > 10, "{}", plan.head_len());
        let n = map.packets;
        assert_eq!(plan.total(n, 3), 3 * n - 2 * dropped);
        let mut prev: Option<u64> = None;
        for j in n..2 * n - dropped {
            let (k, p) = plan.locate(n, j);
            assert_eq!(k, 1);
            assert!(!is_null(p) || j >= n + plan.head_len() as u64);
            let t = plan.time_of(n, j, |p| map.packet_time(p));
            if let Some(prev) = prev {
                assert!(
                    t >= prev + 27_000 * 19 / 20,
                    "output packet {j}: {prev} -> {t}"
                );
                assert!(
                    t <= prev + 27_000 * 3 / 2,
                    "output packet {j}: {prev} -> {t}"
                );
            }
            prev = Some(t);
        }
        // Every asset packet that is not a dropped null appears once per later pass.
        let seen: Vec<u64> = (n..2 * n - dropped).map(|j| plan.locate(n, j).1).collect();
        let mut sorted = seen.clone();
        sorted.dedup();
        assert_eq!(sorted, seen);
        assert_eq!(*seen.last().unwrap(), n - 1);
        for (q, &p) in seen.iter().enumerate() {
            assert_eq!(plan.output_index(&map, 1, p), n + q as u64);
        }
    }

    #[test]
    fn a_short_silence_keeps_the_cadence_and_a_long_one_does_not() {
        // 1010 packets: frame starts at 0, 40, .., 1000 (26 frames): cadence 28.08 M ticks,
        // span 27.27 M: a silence of 0.81 M (less than a frame).
        let spec = Spec {
            packets: 1010,
            ticks_per_packet: 27_000,
            ..Spec::default()
        };
        let (_, map) = asset(&spec);
        let plan = LoopPlan::for_map(&map, None);
        assert!(plan.cadence);
        assert_eq!(plan.period, 26 * 1_080_000);
        assert_eq!(plan.head_len(), 0);
        // The default spec's frames are 24 ms apart but claim 25 fps: no cadence.
        let (_, map) = asset(&Spec::default());
        let plan = LoopPlan::for_map(&map, None);
        assert!(!plan.cadence);
        assert_eq!(plan.period, map.loop_period);
        assert_eq!(plan.head_len(), 0);
    }

    #[test]
    fn without_video_or_frame_rate_the_byte_span_is_the_period() {
        let (_, mut map) = asset(&overlapping());
        map.frame_rate = None;
        assert!(!LoopPlan::for_map(&map, None).cadence);
        map.frame_rate = Some((25, 1));
        map.video_pid = None;
        assert!(!LoopPlan::for_map(&map, None).cadence);
        map.video_pid = Some(map.pcr_pid);
        map.frames = 0;
        assert!(!LoopPlan::for_map(&map, None).cadence);
        // Half the frames: an overlap of half the span.
        map.frames = 12;
        assert_eq!(LoopPlan::for_map(&map, None).period, map.loop_period);
    }
}
