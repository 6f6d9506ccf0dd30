//! The chaos benchmark's fault schedule (sans-IO): which fault to inject when, drawn from a
//! seed so that a run can be replayed. `tandem bench chaos` (not yet written) is meant to
//! drive a pair in the namespace lab from this schedule.
//!
//! # Spacing rules
//! - nothing in the first [`WARMUP`] (the pair synchronises, the receiver joins);
//! - after a fault ends (its own span: a stop's length, a link's down time, a kill's restart
//!   delay) the pair gets [`SETTLE`] plus a random 0..[`JITTER`] before the next fault, so
//!   two faults are always at least ~3 s apart and the restarted server can resynchronise;
//! - every fault ends at least [`SETTLE`] before the end of the run.

use std::time::Duration;

use super::rng::Rng;

/// Quiet time at the start of a run.
pub const WARMUP: Duration = Duration::from_secs(5);
/// Time given to the pair after a fault ends, before the next one.
pub const SETTLE: Duration = Duration::from_secs(3);
/// Upper bound of the random extra time between faults.
pub const JITTER: Duration = Duration::from_secs(2);
/// Delay between a kill -9 and the restart with the same command line.
pub const RESTART_AFTER: Duration = Duration::from_secs(2);
/// How long the sync link stays down.
pub const SYNC_DOWN: Duration = Duration::from_secs(3);

/// Which server a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The server on air (found from `tandem status` at injection time).
    OnAir,
    /// The other one.
    Standby,
}

/// One fault to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// kill -9, restart with the same command line [`RESTART_AFTER`] later.
    Kill(Target),
    /// SIGSTOP, SIGCONT after the duration (20 ms to 1.5 s).
    Stop(Target, Duration),
    /// Sync link down for [`SYNC_DOWN`], then up.
    SyncLinkDown,
    /// Live port of the server on air down for the duration (0.3 to 2 s), then up.
    LivePortDown(Duration),
}

impl Fault {
    /// How long the fault lasts once injected (until restart / SIGCONT / link up).
    pub fn span(&self) -> Duration {
        match *self {
            Fault::Kill(_) => RESTART_AFTER,
            Fault::Stop(_, d) | Fault::LivePortDown(d) => d,
            Fault::SyncLinkDown => SYNC_DOWN,
        }
    }

    /// Short name of the fault's kind, as used in the report.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill(Target::OnAir) => "kill_on_air",
            Fault::Kill(Target::Standby) => "kill_standby",
            Fault::Stop(Target::OnAir, _) => "stop_on_air",
            Fault::Stop(Target::Standby, _) => "stop_standby",
            Fault::SyncLinkDown => "sync_link_down",
            Fault::LivePortDown(_) => "live_port_down",
        }
    }
}

/// Uniform in `lo..=hi` milliseconds.
fn millis(rng: &mut Rng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(lo + rng.below(hi - lo + 1))
}

/// The faults of one run, in time order.
pub struct Schedule;

impl Schedule {
    /// Draws the faults of a run of `duration` from `seed`: the same seed and duration
    /// always give the same schedule. Each entry is (offset from the start of the run,
    /// fault).
    pub fn generate(seed: u64, duration: Duration) -> Vec<(Duration, Fault)> {
        let mut rng = Rng::new(seed);
        let mut out = Vec::new();
        let mut at = WARMUP;
        loop {
            let target = if rng.below(2) == 0 {
                Target::OnAir
            } else {
                Target::Standby
            };
            let fault = match rng.below(4) {
                0 => Fault::Kill(target),
                1 => Fault::Stop(target, millis(&mut rng, 20, 1500)),
                2 => Fault::SyncLinkDown,
                _ => Fault::LivePortDown(millis(&mut rng, 300, 2000)),
            };
            if at + fault.span() + SETTLE > duration {
                return out;
            }
            out.push((at, fault));
            at += fault.span() + SETTLE + millis(&mut rng, 0, JITTER.as_millis() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: Duration = Duration::from_secs(300);

    #[test]
    fn same_seed_same_schedule() {
        assert_eq!(Schedule::generate(7, RUN), Schedule::generate(7, RUN));
        assert_ne!(Schedule::generate(7, RUN), Schedule::generate(8, RUN));
    }

    #[test]
    fn spacing_rules_hold() {
        for seed in 0..200 {
            let s = Schedule::generate(seed, RUN);
            assert!(!s.is_empty());
            assert!(s[0].0 >= WARMUP);
            for w in s.windows(2) {
                let (a, f) = w[0];
                let (b, _) = w[1];
                assert!(b >= a + f.span() + SETTLE, "seed {seed}: {w:?}");
            }
            let (last, f) = *s.last().unwrap();
            assert!(last + f.span() + SETTLE <= RUN);
        }
    }

    #[test]
    fn durations_in_range_and_kinds_varied() {
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..50 {
            for (_, f) in Schedule::generate(seed, RUN) {
                kinds.insert(f.kind());
                match f {
                    Fault::Stop(_, d) => {
                        assert!((20..=1500).contains(&(d.as_millis() as u64)))
                    }
                    Fault::LivePortDown(d) => {
                        assert!((300..=2000).contains(&(d.as_millis() as u64)))
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(kinds.len(), 6);
    }

    #[test]
    fn short_run_has_no_fault_past_its_end() {
        assert!(Schedule::generate(1, Duration::from_secs(6)).is_empty());
        let s = Schedule::generate(1, Duration::from_secs(25));
        assert!(s.len() >= 2, "{s:?}");
    }
}
