//! Where in a frame a fault struck: the fault's instant on the session's timeline, minus
//! the departure time of the last datagram that started a video frame before it (the
//! offset map's `FRAME_START` datagrams, repeated every pass of a looping session, one
//! `period` apart: `stream::LoopPlan::period`).

use crate::index::{flags, OffsetMap};
use crate::ts::pcr::HZ;
use crate::units::RealNs;

/// Phase (ns) of instant `t` within the frame in progress, for a session whose timeline
/// origin is `origin` and whose passes are `period` ticks apart. None before the origin or
/// without frame starts in the map.
pub fn phase_in_frame(map: &OffsetMap, period: u64, origin: RealNs, t: RealNs) -> Option<u64> {
    if t < origin || period == 0 {
        return None;
    }
    let starts: Vec<u64> = map
        .datagrams
        .iter()
        .filter(|d| d.flags & flags::FRAME_START != 0)
        .map(|d| d.time.0)
        .collect();
    let (first, last) = (*starts.first()?, *starts.last()?);
    let since = t.since(origin) as u128 * HZ as u128 / 1_000_000_000;
    let pos = (since % period as u128) as u64;
    let phase_ticks = if pos < first {
        if since < period as u128 {
            return None; // before the first frame of the first pass
        }
        pos + period - last
    } else {
        let k = starts.partition_point(|&s| s <= pos) - 1;
        pos - starts[k]
    };
    Some((phase_ticks as u128 * 1_000_000_000 / HZ as u128) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::synth::{synth_ts, SynthOptions};
    use crate::index::{build_bytes, BuildOptions};

    #[test]
    fn phase_follows_frame_starts_and_loops() {
        let ts = synth_ts(&SynthOptions::default());
        let map = build_bytes(&ts, &BuildOptions::default()).unwrap().map;
        // Synthetic frames start every 40 packets of 18048 ticks.
        let frame = 40 * 18_048;
        let starts: Vec<u64> = map
            .datagrams
            .iter()
            .filter(|d| d.flags & flags::FRAME_START != 0)
            .map(|d| d.time.0)
            .collect();
        assert!(starts.len() > 3);
        let o = RealNs(1_000_000_000_000);
        let ns = |ticks: u64| ticks * 1000 / 27;
        // 1 ms after the third frame start.
        let t = o.plus(ns(starts[2]) + 1_000_000);
        let p = phase_in_frame(&map, map.loop_period, o, t).unwrap();
        assert!(p.abs_diff(1_000_000) < 1_000, "{p}");
        // The same point one pass later.
        let t2 = t.plus(ns(map.loop_period));
        let p2 = phase_in_frame(&map, map.loop_period, o, t2).unwrap();
        assert!(p2.abs_diff(p) < 1_000, "{p2} vs {p}");
        assert!(phase_in_frame(&map, map.loop_period, o, RealNs(o.0 - 1)).is_none());
        assert!(ns(frame) > p);
    }
}
