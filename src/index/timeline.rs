//! From raw PCRs to a continuous timeline, and from PES timestamp spacing to a frame rate.
//!
//! The rules depend on the file alone, so every engine given the same file computes the
//! same times:
//! - PCRs are unwrapped across the 2^33 x 300 wrap (ISO/IEC 13818-1 §2.4.3.5).
//! - `time(0) == 0`: the first anchor's time is extrapolated back to packet 0 at the rate
//!   of the first continuous PCR pair.
//! - A step outside `0 ..= 100 ms` (TR 101 290 2.3b) or a PCR in a packet with
//!   `discontinuity_indicator` set starts a new piece: its first anchor time is the previous
//!   anchor time plus packets-between x the previous rate (the rate of the last continuous
//!   pair before it, or the first one after it when there is none before).

use super::Anchor;
use crate::ts::pcr::{Pcr, HZ, PCR_MODULUS};

/// Largest PCR step that is not a discontinuity: 100 ms (TR 101 290 2.3b).
pub const MAX_PCR_STEP: u64 = HZ / 10;

/// A PCR as found in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcrObs {
    /// Index of the packet among valid packets.
    pub packet: u64,
    /// The PCR value.
    pub pcr: Pcr,
    /// `discontinuity_indicator` of that packet.
    pub flagged: bool,
}

/// A discontinuity on the timeline: anchor index `anchor` starts a new piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Break {
    /// Index into the anchors.
    pub anchor: usize,
    /// Signed PCR step from the previous PCR (ticks; the shorter way round the wrap).
    pub step_ticks: i64,
    /// `discontinuity_indicator` was set.
    pub flagged: bool,
}

/// The timeline: anchors plus where it was carried across discontinuities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// One anchor per PCR.
    pub anchors: Vec<Anchor>,
    /// Discontinuities, in order.
    pub breaks: Vec<Break>,
}

/// Signed step `b - a` the shorter way round the PCR wrap.
fn signed_step(b: Pcr, a: Pcr) -> i64 {
    let d = b.ticks_since(a);
    if d > PCR_MODULUS / 2 {
        -((PCR_MODULUS - d) as i64)
    } else {
        d as i64
    }
}

/// Builds the timeline from the PCRs of one PID in packet order. Returns `None` when fewer
/// than two PCRs are given or no step between them is continuous (no rate to go by).
pub fn timeline(obs: &[PcrObs]) -> Option<Timeline> {
    if obs.len() < 2 {
        return None;
    }
    let step = |i: usize| obs[i].pcr.ticks_since(obs[i - 1].pcr);
    let dp = |i: usize| obs[i].packet.saturating_sub(obs[i - 1].packet).max(1);
    let continuous = |i: usize| !obs[i].flagged && step(i) <= MAX_PCR_STEP;
    let first = (1..obs.len()).find(|&i| continuous(i))?;
    // Rate as a rational ticks / packets.
    let mut rate = (step(first) as u128, dp(first) as u128);
    let mut anchors = Vec::with_capacity(obs.len());
    let mut breaks = Vec::new();
    let t0 = (obs[0].packet as u128 * rate.0 / rate.1) as u64;
    anchors.push(Anchor {
        packet: obs[0].packet,
        time: t0,
        pcr: obs[0].pcr,
    });
    let mut t = t0;
    for i in 1..obs.len() {
        if continuous(i) {
            t += step(i);
            rate = (step(i) as u128, dp(i) as u128);
        } else {
            t += (dp(i) as u128 * rate.0 / rate.1) as u64;
            breaks.push(Break {
                anchor: i,
                step_ticks: signed_step(obs[i].pcr, obs[i - 1].pcr),
                flagged: obs[i].flagged,
            });
        }
        anchors.push(Anchor {
            packet: obs[i].packet,
            time: t,
            pcr: obs[i].pcr,
        });
    }
    Some(Timeline { anchors, breaks })
}

/// Rounds `t` up to a multiple of 300 (one 90 kHz tick), so that PTS/DTS shift by a whole
/// number of 90 kHz ticks per loop.
pub fn round_up_300(t: u64) -> u64 {
    t.div_ceil(300).saturating_mul(300)
}

/// Standard frame rates as rationals.
const STANDARD_RATES: [(u32, u32); 8] = [
    (24000, 1001),
    (24, 1),
    (25, 1),
    (30000, 1001),
    (30, 1),
    (50, 1),
    (60000, 1001),
    (60, 1),
];

/// Relative distance under which a measured rate snaps to a standard one (0.05 %: the
/// 1/1001 rates differ from their integer neighbours by 0.1 %).
const SNAP: f64 = 0.0005;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Frame rate from the median spacing of video PES timestamps in 90 kHz ticks: the nearest
/// standard rate (23.976, 24, 25, 29.97, 30, 50, 59.94, 60) when within 0.05 %, else
/// `90000 / delta` in lowest terms.
///
/// ```
/// use tandem::index::timeline::frame_rate_from_delta;
/// assert_eq!(frame_rate_from_delta(3600), Some((25, 1)));
/// assert_eq!(frame_rate_from_delta(3003), Some((30000, 1001)));
/// assert_eq!(frame_rate_from_delta(1501), Some((60000, 1001)));
/// assert_eq!(frame_rate_from_delta(7200), Some((25, 2)));
/// ```
pub fn frame_rate_from_delta(delta90: u64) -> Option<(u32, u32)> {
    if delta90 == 0 {
        return None;
    }
    let fps = 90_000.0 / delta90 as f64;
    let best = STANDARD_RATES.iter().copied().min_by(|a, b| {
        let ea = (fps - a.0 as f64 / a.1 as f64).abs();
        let eb = (fps - b.0 as f64 / b.1 as f64).abs();
        ea.total_cmp(&eb)
    })?;
    let best_fps = best.0 as f64 / best.1 as f64;
    // 59.94 is coded as alternating 1501/1502 ticks; 23.976 as 3753/3754: allow half a tick.
    let tick_err = (90_000.0 / best_fps - delta90 as f64).abs();
    if (fps - best_fps).abs() / best_fps <= SNAP || tick_err <= 0.5 {
        return Some(best);
    }
    let g = gcd(90_000, delta90);
    let (n, d) = (90_000 / g, delta90 / g);
    Some((n as u32, u32::try_from(d).ok()?))
}

/// The median of a histogram `(value, count)` sorted by value.
pub fn median(hist: &std::collections::BTreeMap<u64, u64>) -> Option<u64> {
    let total: u64 = hist.values().sum();
    if total == 0 {
        return None;
    }
    let half = total.div_ceil(2);
    let mut seen = 0;
    for (&v, &c) in hist {
        seen += c;
        if seen >= half {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(packet: u64, ticks: u64) -> PcrObs {
        PcrObs {
            packet,
            pcr: Pcr::from_ticks(ticks),
            flagged: false,
        }
    }

    #[test]
    fn time_zero_at_packet_zero() {
        // 1000 ticks per packet, first PCR at packet 5 with an arbitrary value.
        let o = [obs(5, 777_000), obs(15, 787_000), obs(25, 797_000)];
        let t = timeline(&o).unwrap();
        assert_eq!(t.anchors[0].time, 5_000);
        assert_eq!(t.anchors[2].time, 25_000);
        assert_eq!(super::super::interpolate(&t.anchors, 0), 0);
        assert!(t.breaks.is_empty());
    }

    #[test]
    fn unwraps_across_pcr_wrap() {
        let m = PCR_MODULUS;
        let o = [
            obs(0, m - 20_000),
            obs(10, m - 10_000),
            obs(20, 0),
            obs(30, 10_000),
        ];
        let t = timeline(&o).unwrap();
        let times: Vec<u64> = t.anchors.iter().map(|a| a.time).collect();
        assert_eq!(times, vec![0, 10_000, 20_000, 30_000]);
        assert!(t.breaks.is_empty());
    }

    #[test]
    fn discontinuity_carried_at_previous_rate() {
        let mut o = vec![obs(0, 1_000_000), obs(10, 1_010_000), obs(20, 1_020_000)];
        // A jump of 10 s forward, then continuous again at a different rate.
        o.push(obs(30, 271_020_000));
        o.push(obs(40, 271_040_000));
        // A flagged PCR with an in-range step still breaks.
        o.push(PcrObs {
            packet: 50,
            pcr: Pcr::from_ticks(271_041_000),
            flagged: true,
        });
        let t = timeline(&o).unwrap();
        let times: Vec<u64> = t.anchors.iter().map(|a| a.time).collect();
        assert_eq!(times, vec![0, 10_000, 20_000, 30_000, 50_000, 70_000]);
        assert_eq!(t.breaks.len(), 2);
        assert_eq!(t.breaks[0].anchor, 3);
        assert_eq!(t.breaks[0].step_ticks, 270_000_000);
        assert!(!t.breaks[0].flagged);
        assert!(t.breaks[1].flagged);
        // Backwards step.
        let o = [obs(0, 5_000_000), obs(10, 5_010_000), obs(20, 10_000)];
        let t = timeline(&o).unwrap();
        assert_eq!(t.anchors[2].time, 20_000);
        assert_eq!(t.breaks[0].step_ticks, -5_000_000);
    }

    #[test]
    fn leading_discontinuity_uses_next_rate_and_no_rate_is_none() {
        let o = [obs(0, 0), obs(10, 900_000_000), obs(20, 900_020_000)];
        let t = timeline(&o).unwrap();
        let times: Vec<u64> = t.anchors.iter().map(|a| a.time).collect();
        assert_eq!(times, vec![0, 20_000, 40_000]);
        assert!(timeline(&[obs(0, 0), obs(10, 900_000_000)]).is_none());
        assert!(timeline(&[obs(0, 0)]).is_none());
    }

    #[test]
    fn frame_rates() {
        assert_eq!(frame_rate_from_delta(3600), Some((25, 1)));
        assert_eq!(frame_rate_from_delta(1800), Some((50, 1)));
        assert_eq!(frame_rate_from_delta(3003), Some((30000, 1001)));
        assert_eq!(frame_rate_from_delta(1502), Some((60000, 1001)));
        assert_eq!(frame_rate_from_delta(1501), Some((60000, 1001)));
        assert_eq!(frame_rate_from_delta(1500), Some((60, 1)));
        assert_eq!(frame_rate_from_delta(3754), Some((24000, 1001)));
        assert_eq!(frame_rate_from_delta(3750), Some((24, 1)));
        assert_eq!(frame_rate_from_delta(3000), Some((30, 1)));
        assert_eq!(frame_rate_from_delta(6000), Some((15, 1)));
        assert_eq!(frame_rate_from_delta(0), None);
    }

    #[test]
    fn median_of_histogram() {
        let mut h = std::collections::BTreeMap::new();
        assert_eq!(median(&h), None);
        h.insert(1501, 10);
        h.insert(1502, 10);
        h.insert(90_000, 1);
        assert_eq!(median(&h), Some(1502));
    }
}
