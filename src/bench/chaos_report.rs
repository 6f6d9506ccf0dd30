//! The chaos benchmark's report (sans-IO): from the faults as they were applied and every
//! datagram the independent receiver saw on the live group (source and kernel receive
//! time), the changes of sender with the fault that most recently preceded each, the time
//! two senders were on the group at once, the largest silences, and per fault kind what
//! followed it. `tandem bench chaos` (`crate::cli::bench::chaos`) gathers the inputs.
//!
//! Two senders at once: after a change from A to B, every datagram of A that still arrives
//! after B's first is an overlap; its span (B's first to A's last) is the two-sender time
//! of that change. A silence is a gap between consecutive datagrams of any sender.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;

use super::trial::Arrival;

/// Schema of the JSON report.
pub const SCHEMA: &str = "tandem.bench.chaos/1";

/// A fault as it was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// When (unix ns).
    pub at_real_ns: u64,
    /// `kill_on_air`, `stop_standby`, ... (`crate::bench::chaos::Fault::kind`).
    pub kind: &'static str,
    /// The lab host it struck (`pri` or `sec`; the sync link: the primary's side).
    pub host: &'static str,
    /// How long it lasted (ns): the stop, the link down, the time to the restart.
    pub span_ns: u64,
}

/// A change of sender on the live group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The new sender's first datagram (unix ns).
    pub at_real_ns: u64,
    /// Old sender's last datagram before it to the new sender's first (ms).
    pub gap_ms: f64,
    /// The fault that most recently preceded it, and how long before (ms).
    pub after_fault: Option<&'static str>,
    /// See `after_fault`.
    pub fault_to_change_ms: Option<f64>,
    /// Datagrams of the old sender after the new sender's first.
    pub overlap_datagrams: u64,
    /// New sender's first to the old sender's last datagram (ms; 0: no overlap).
    pub two_senders_ms: f64,
}

/// What followed one kind of fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KindSummary {
    /// Faults of this kind.
    pub faults: u32,
    /// Changes of sender it preceded.
    pub changes: u32,
    /// Milliseconds with two senders after it.
    pub two_senders_ms: f64,
    /// The largest silence on the live group while it lasted or in the 2 s after (ms).
    pub largest_silence_ms: f64,
}

/// The report's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChaosFigures {
    /// Datagrams received.
    pub datagrams: u64,
    /// Changes of sender.
    pub changes: Vec<Change>,
    /// Changes with no fault in the 5 s before them (a switch nobody caused; goal 0).
    pub unprovoked_changes: u32,
    /// Sum of the changes' two-sender time (ms; goal 0).
    pub two_senders_ms: f64,
    /// The largest silence of the run (ms) and the fault before it.
    pub largest_silence_ms: f64,
    /// See `largest_silence_ms`.
    pub largest_silence_after: Option<&'static str>,
    /// Silences of 5 ms or more beyond the nominal datagram interval.
    pub silences_over_5ms: u32,
    /// Per fault kind.
    pub by_kind: BTreeMap<&'static str, KindSummary>,
}

/// A change of sender counts as provoked when a fault came at most this long before it.
pub const PROVOKED_WITHIN_NS: u64 = 5_000_000_000;
/// A datagram of the old sender within this long of its previous one continues it (an
/// overlap); later, it is a change of sender of its own.
const OVERLAP_CONTINUES_NS: u64 = 200_000_000;
/// A silence is put down to a fault while it lasts and this long after.
const AFTER_FAULT_NS: u64 = 2_000_000_000;

/// The last fault at or before `t`.
fn fault_before(faults: &[Applied], t: u64) -> Option<&Applied> {
    faults.iter().rev().find(|f| f.at_real_ns <= t)
}

impl ChaosFigures {
    /// Computes the figures from the arrivals (in arrival order) and the faults (in time
    /// order); `interval_ns` is the nominal spacing of the datagrams.
    pub fn compute(live: &[Arrival], faults: &[Applied], interval_ns: u64) -> ChaosFigures {
        let mut by_kind: BTreeMap<&'static str, KindSummary> = BTreeMap::new();
        for f in faults {
            by_kind.entry(f.kind).or_default().faults += 1;
        }
        // Changes of sender: the current sender is the one of the last datagram, a datagram
        // of another sender starts a change unless it is an overlap of the old one.
        let mut changes: Vec<Change> = Vec::new();
        let mut cur: Option<SocketAddr> = None;
        let mut prev: Option<SocketAddr> = None;
        let mut last_rx: BTreeMap<SocketAddr, u64> = BTreeMap::new();
        let mut largest = (0u64, None);
        let mut over_5 = 0u32;
        for (k, a) in live.iter().enumerate() {
            if k > 0 {
                let gap = a.rx_ns.saturating_sub(live[k - 1].rx_ns);
                if gap > largest.0 {
                    largest = (gap, fault_before(faults, a.rx_ns).map(|f| f.kind));
                }
                if gap >= interval_ns + 5_000_000 {
                    over_5 += 1;
                }
                if let Some(f) = fault_before(faults, a.rx_ns) {
                    if a.rx_ns <= f.at_real_ns + f.span_ns + AFTER_FAULT_NS {
                        let s = by_kind.entry(f.kind).or_default();
                        s.largest_silence_ms = s.largest_silence_ms.max(gap as f64 / 1e6);
                    }
                }
            }
            match cur {
                None => cur = Some(a.src),
                Some(c) if c == a.src => {}
                Some(_)
                    if Some(a.src) == prev
                        && last_rx
                            .get(&a.src)
                            .is_some_and(|&l| a.rx_ns.saturating_sub(l) < OVERLAP_CONTINUES_NS) =>
                {
                    // The old sender still on air after the change: overlap.
                    if let Some(ch) = changes.last_mut() {
                        ch.overlap_datagrams += 1;
                        ch.two_senders_ms = a.rx_ns.saturating_sub(ch.at_real_ns) as f64 / 1e6;
                    }
                }
                Some(c) => {
                    let old_last = last_rx.get(&c).copied().unwrap_or(a.rx_ns);
                    let f = fault_before(faults, a.rx_ns);
                    changes.push(Change {
                        at_real_ns: a.rx_ns,
                        gap_ms: a.rx_ns.saturating_sub(old_last) as f64 / 1e6,
                        after_fault: f.map(|f| f.kind),
                        fault_to_change_ms: f.map(|f| (a.rx_ns - f.at_real_ns) as f64 / 1e6),
                        overlap_datagrams: 0,
                        two_senders_ms: 0.0,
                    });
                    prev = Some(c);
                    cur = Some(a.src);
                }
            }
            last_rx.insert(a.src, a.rx_ns);
        }
        let mut unprovoked = 0;
        for c in &changes {
            let provoked = fault_before(faults, c.at_real_ns)
                .is_some_and(|f| c.at_real_ns - f.at_real_ns <= PROVOKED_WITHIN_NS + f.span_ns);
            match c.after_fault {
                Some(k) if provoked => {
                    let s = by_kind.entry(k).or_default();
                    s.changes += 1;
                    s.two_senders_ms += c.two_senders_ms;
                }
                _ => unprovoked += 1,
            }
        }
        ChaosFigures {
            datagrams: live.len() as u64,
            two_senders_ms: changes.iter().map(|c| c.two_senders_ms).sum(),
            unprovoked_changes: unprovoked,
            changes,
            largest_silence_ms: largest.0 as f64 / 1e6,
            largest_silence_after: largest.1,
            silences_over_5ms: over_5,
            by_kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn a(src: &str, t_ms: u64) -> Arrival {
        Arrival {
            src: src.parse().unwrap(),
            rx_ns: t_ms * MS,
        }
    }

    const P: &str = "10.0.0.2:5000";
    const S: &str = "10.0.0.3:5000";

    #[test]
    fn a_clean_takeover_after_a_kill_is_one_provoked_change_without_overlap() {
        let mut live: Vec<Arrival> = (0..100).map(|i| a(P, i * 4)).collect();
        live.extend((0..100).map(|i| a(S, 410 + i * 4)));
        let faults = [Applied {
            at_real_ns: 398 * MS,
            kind: "kill_on_air",
            host: "pri",
            span_ns: 2_000 * MS,
        }];
        let f = ChaosFigures::compute(&live, &faults, 4 * MS);
        assert_eq!(f.changes.len(), 1);
        let c = &f.changes[0];
        assert_eq!(
            (c.gap_ms, c.after_fault, c.fault_to_change_ms),
            (14.0, Some("kill_on_air"), Some(12.0))
        );
        assert_eq!((c.overlap_datagrams, c.two_senders_ms), (0, 0.0));
        assert_eq!(f.unprovoked_changes, 0);
        assert_eq!(f.two_senders_ms, 0.0);
        assert_eq!(f.largest_silence_ms, 14.0);
        assert_eq!(f.silences_over_5ms, 1);
        let k = &f.by_kind["kill_on_air"];
        assert_eq!((k.faults, k.changes, k.largest_silence_ms), (1, 1, 14.0));
    }

    #[test]
    fn the_old_sender_after_the_change_is_two_sender_time_and_a_change_without_a_fault_is_unprovoked(
    ) {
        // S takes over at 100 ms while P sends on to 120 ms.
        let mut live = vec![
            a(P, 96),
            a(S, 100),
            a(P, 104),
            a(S, 104),
            a(P, 120),
            a(S, 124),
        ];
        // Much later, with no fault: P takes the group back.
        live.push(a(P, 20_000));
        let faults = [Applied {
            at_real_ns: 90 * MS,
            kind: "stop_on_air",
            host: "pri",
            span_ns: 5 * MS,
        }];
        let f = ChaosFigures::compute(&live, &faults, 4 * MS);
        assert_eq!(f.changes.len(), 2, "{:?}", f.changes);
        assert_eq!(f.changes[0].overlap_datagrams, 2);
        assert_eq!(f.changes[0].two_senders_ms, 20.0);
        assert_eq!(f.two_senders_ms, 20.0);
        assert_eq!(f.unprovoked_changes, 1);
        assert_eq!(f.by_kind["stop_on_air"].two_senders_ms, 20.0);
    }
}
