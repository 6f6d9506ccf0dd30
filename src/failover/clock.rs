//! Clock offset between two servers, measured NTP style (RFC 5905 §8).
//!
//! The secondary sends a `TimeRequest` stamped T1 (its realtime clock), the primary stamps
//! its receipt T2 and its reply T3 (its realtime clock), the secondary stamps the reply's
//! arrival T4. RFC 5905 §8: "offset = [(T2 - T1) + (T3 - T4)] / 2, delay = (T4 - T1) -
//! (T3 - T2)". The offset is the primary's clock minus the secondary's clock: an instant
//! `t_p` on the primary's clock is `t_p - offset` on the secondary's.
//!
//! The secondary keeps the last [`FILTER_LEN`] samples and trusts the one with the smallest
//! delay (the clock filter of RFC 5905 §10, reduced to its core: the sample with the least
//! delay has the least error, bounded by delay / 2). Once [`ClockConfig::min_samples`]
//! samples are in, the offset is *locked*; a later filtered offset that moves by more than
//! [`ClockConfig::jump_bound_ns`] from the locked one is a jump: the lock is lost (one of the
//! reasons for `Secondary_synchronized -> Secondary_synchronizing`).

use std::collections::VecDeque;

use crate::units::RealNs;

/// Samples kept by the filter (RFC 5905 §10 uses an 8-stage shift register).
pub const FILTER_LEN: usize = 8;

/// One request/reply exchange: four realtime instants (RFC 5905 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSample {
    /// Origin: the request left the secondary (secondary's clock).
    pub t1: RealNs,
    /// Receive: the request reached the primary (primary's clock).
    pub t2: RealNs,
    /// Transmit: the reply left the primary (primary's clock).
    pub t3: RealNs,
    /// Destination: the reply reached the secondary (secondary's clock).
    pub t4: RealNs,
}

impl TimeSample {
    /// RFC 5905 §8: `offset = ((T2 - T1) + (T3 - T4)) / 2`, in ns (primary minus secondary).
    pub fn offset(&self) -> i64 {
        let v = (self.t2.diff(self.t1) + self.t3.diff(self.t4)) / 2;
        clamp_i64(v)
    }

    /// RFC 5905 §8: `delay = (T4 - T1) - (T3 - T2)`, the round trip minus the peer's
    /// processing time, in ns.
    pub fn delay(&self) -> i64 {
        let v = self.t4.diff(self.t1) - self.t3.diff(self.t2);
        clamp_i64(v)
    }
}

fn clamp_i64(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Settings of the clock filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockConfig {
    /// Samples needed before the offset is locked.
    pub min_samples: usize,
    /// A filtered offset further than this from the locked offset is a jump (lock lost).
    pub jump_bound_ns: u64,
    /// Samples with a larger delay are rejected as useless (their error bound is delay / 2).
    pub max_delay_ns: u64,
}

impl Default for ClockConfig {
    /// 4 samples to lock, 1 ms jump bound, 50 ms maximum delay.
    fn default() -> ClockConfig {
        ClockConfig {
            min_samples: 4,
            jump_bound_ns: 1_000_000,
            max_delay_ns: 50_000_000,
        }
    }
}

/// What one sample did to the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockUpdate {
    /// Sample kept; not locked yet (`have` of `need` samples).
    Collecting {
        /// Samples in the filter.
        have: usize,
        /// Samples needed to lock.
        need: usize,
    },
    /// The filter has just locked onto `offset_ns`.
    Locked {
        /// The locked offset (primary minus secondary), ns.
        offset_ns: i64,
        /// Delay of the sample it comes from, ns.
        delay_ns: i64,
    },
    /// Still locked; the filtered offset moved to `offset_ns` (within the bound).
    Tracking {
        /// The filtered offset, ns.
        offset_ns: i64,
        /// Its delay, ns.
        delay_ns: i64,
    },
    /// The filtered offset moved by more than the bound: the lock is lost and the filter
    /// starts again from this sample.
    Jumped {
        /// The offset that was locked, ns.
        from_ns: i64,
        /// The new filtered offset, ns.
        to_ns: i64,
    },
    /// The sample was discarded.
    Rejected(SampleError),
}

/// Why a sample was discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    /// Negative delay: the four timestamps cannot come from one exchange.
    #[error("negative delay {delay_ns} ns: timestamps are not from one exchange")]
    NegativeDelay {
        /// The computed delay.
        delay_ns: i64,
    },
    /// Delay larger than [`ClockConfig::max_delay_ns`].
    #[error("delay {delay_ns} ns is larger than the {max_ns} ns limit")]
    TooSlow {
        /// The computed delay.
        delay_ns: i64,
        /// The limit.
        max_ns: u64,
    },
}

/// The minimum-delay clock filter with lock and jump detection.
#[derive(Debug, Clone)]
pub struct ClockFilter {
    config: ClockConfig,
    samples: VecDeque<(i64, i64)>,
    locked: Option<i64>,
}

impl ClockFilter {
    /// An empty, unlocked filter.
    pub fn new(config: ClockConfig) -> ClockFilter {
        ClockFilter {
            config,
            samples: VecDeque::with_capacity(FILTER_LEN),
            locked: None,
        }
    }

    /// Adds one exchange.
    pub fn add(&mut self, sample: TimeSample) -> ClockUpdate {
        let (offset, delay) = (sample.offset(), sample.delay());
        if delay < 0 {
            return ClockUpdate::Rejected(SampleError::NegativeDelay { delay_ns: delay });
        }
        if delay as u64 > self.config.max_delay_ns {
            return ClockUpdate::Rejected(SampleError::TooSlow {
                delay_ns: delay,
                max_ns: self.config.max_delay_ns,
            });
        }
        if self.samples.len() == FILTER_LEN {
            self.samples.pop_front();
        }
        self.samples.push_back((offset, delay));
        let (best_offset, best_delay) = self.best().unwrap_or((offset, delay));
        match self.locked {
            None if self.samples.len() >= self.config.min_samples.max(1) => {
                self.locked = Some(best_offset);
                ClockUpdate::Locked {
                    offset_ns: best_offset,
                    delay_ns: best_delay,
                }
            }
            None => ClockUpdate::Collecting {
                have: self.samples.len(),
                need: self.config.min_samples.max(1),
            },
            Some(locked) => {
                // The freshest sample alone can reveal a jump only when it is as good as the
                // filter's best; otherwise a jump shows once the pre-jump samples have aged
                // out. Both the filtered and a low-delay fresh sample are checked.
                let moved = (best_offset as i128 - locked as i128).unsigned_abs();
                let fresh_moved = (offset as i128 - locked as i128).unsigned_abs();
                let fresh_good = delay <= best_delay.saturating_mul(2).max(best_delay + 1);
                let bound = self.config.jump_bound_ns as u128;
                if moved > bound || (fresh_good && fresh_moved > bound) {
                    let to = if moved > bound { best_offset } else { offset };
                    self.locked = None;
                    self.samples.clear();
                    self.samples.push_back((offset, delay));
                    ClockUpdate::Jumped {
                        from_ns: locked,
                        to_ns: to,
                    }
                } else {
                    self.locked = Some(best_offset);
                    ClockUpdate::Tracking {
                        offset_ns: best_offset,
                        delay_ns: best_delay,
                    }
                }
            }
        }
    }

    /// The locked offset (primary minus secondary, ns), `None` while not locked.
    pub fn locked_offset(&self) -> Option<i64> {
        self.locked
    }

    /// The sample with the smallest delay among the kept ones: `(offset, delay)`.
    pub fn best(&self) -> Option<(i64, i64)> {
        self.samples.iter().copied().min_by_key(|&(_, d)| d)
    }

    /// Forgets all samples and the lock.
    pub fn reset(&mut self) {
        self.samples.clear();
        self.locked = None;
    }

    /// Converts an instant on the primary's realtime clock to the secondary's, using the
    /// locked offset; `None` while not locked.
    pub fn to_local(&self, primary_ns: u64) -> Option<u64> {
        self.locked
            .map(|off| (primary_ns as i128 - off as i128).clamp(0, u64::MAX as i128) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An exchange with the primary's clock `offset` ahead, one-way delays `out` and `back`,
    /// and `proc` ns of processing at the primary.
    fn exchange(t1: u64, offset: i64, out: u64, back: u64, proc: u64) -> TimeSample {
        let t2 = (t1 + out) as i64 + offset;
        let t3 = t2 + proc as i64;
        let t4 = (t3 - offset) as u64 + back;
        TimeSample {
            t1: RealNs(t1),
            t2: RealNs(t2 as u64),
            t3: RealNs(t3 as u64),
            t4: RealNs(t4),
        }
    }

    #[test]
    fn rfc5905_formulas() {
        // Symmetric path: offset exact, delay = round trip minus processing.
        let s = exchange(1_000_000, 250_000, 40_000, 40_000, 5_000);
        assert_eq!(s.offset(), 250_000);
        assert_eq!(s.delay(), 80_000);
        // Asymmetric path: error is half the asymmetry.
        let s = exchange(1_000_000, -30_000, 10_000, 50_000, 0);
        assert_eq!(s.offset(), -30_000 - 20_000);
        assert_eq!(s.delay(), 60_000);
        // Fixed numbers straight from the formula.
        let s = TimeSample {
            t1: RealNs(100),
            t2: RealNs(1_150),
            t3: RealNs(1_160),
            t4: RealNs(230),
        };
        assert_eq!(s.offset(), ((1_150 - 100) + (1_160 - 230)) / 2);
        assert_eq!(s.delay(), (230 - 100) - (1_160 - 1_150));
    }

    #[test]
    fn locks_on_min_delay_sample() {
        let mut f = ClockFilter::new(ClockConfig::default());
        let delays = [
            (90_000, 10_000),
            (20_000, 20_000),
            (60_000, 5_000),
            (70_000, 70_000),
        ];
        let mut last = None;
        for (i, &(out, back)) in delays.iter().enumerate() {
            last = Some(f.add(exchange(1_000_000 * i as u64, 500_000, out, back, 1_000)));
        }
        // Best delay is the second sample (40 us, symmetric): offset exact.
        assert_eq!(
            last,
            Some(ClockUpdate::Locked {
                offset_ns: 500_000,
                delay_ns: 40_000
            })
        );
        assert_eq!(f.locked_offset(), Some(500_000));
        assert_eq!(f.to_local(10_500_000), Some(10_000_000));
    }

    #[test]
    fn collecting_then_tracking() {
        let mut f = ClockFilter::new(ClockConfig::default());
        assert_eq!(
            f.add(exchange(0, 0, 1_000, 1_000, 0)),
            ClockUpdate::Collecting { have: 1, need: 4 }
        );
        for i in 1..4 {
            f.add(exchange(i * 1_000_000, 0, 1_000, 1_000, 0));
        }
        assert_eq!(f.locked_offset(), Some(0));
        // A small drift is tracked, not a jump.
        assert_eq!(
            f.add(exchange(9_000_000, 100_000, 500, 500, 0)),
            ClockUpdate::Tracking {
                offset_ns: 100_000,
                delay_ns: 1_000
            }
        );
    }

    #[test]
    fn detects_jump() {
        let mut f = ClockFilter::new(ClockConfig::default());
        for i in 0..6 {
            f.add(exchange(i * 1_000_000, 0, 1_000, 1_000, 0));
        }
        assert_eq!(f.locked_offset(), Some(0));
        // The primary's clock steps by 5 ms: a fresh good sample shows it at once.
        let u = f.add(exchange(7_000_000, 5_000_000, 1_000, 1_000, 0));
        assert_eq!(
            u,
            ClockUpdate::Jumped {
                from_ns: 0,
                to_ns: 5_000_000
            }
        );
        assert_eq!(f.locked_offset(), None);
    }

    #[test]
    fn slow_sample_does_not_fake_a_jump() {
        let mut f = ClockFilter::new(ClockConfig::default());
        for i in 0..6 {
            f.add(exchange(i * 1_000_000, 0, 1_000, 1_000, 0));
        }
        // 9.9 ms asymmetric delay: its offset is 4.95 ms off, but its delay is bad.
        let u = f.add(exchange(7_000_000, 0, 9_900_000, 1_000, 0));
        assert!(
            matches!(u, ClockUpdate::Tracking { offset_ns: 0, .. }),
            "{u:?}"
        );
    }

    #[test]
    fn rejects_impossible_and_slow_samples() {
        let mut f = ClockFilter::new(ClockConfig::default());
        let bad = TimeSample {
            t1: RealNs(1_000),
            t2: RealNs(5_000),
            t3: RealNs(9_000),
            t4: RealNs(2_000),
        };
        assert_eq!(
            f.add(bad),
            ClockUpdate::Rejected(SampleError::NegativeDelay { delay_ns: -3_000 })
        );
        let slow = exchange(0, 0, 30_000_000, 30_000_000, 0);
        assert!(matches!(
            f.add(slow),
            ClockUpdate::Rejected(SampleError::TooSlow { .. })
        ));
        assert_eq!(f.best(), None);
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let s = TimeSample {
            t1: RealNs(0),
            t2: RealNs(u64::MAX),
            t3: RealNs(u64::MAX),
            t4: RealNs(0),
        };
        assert_eq!(s.offset(), i64::MAX);
        assert_eq!(s.delay(), 0);
    }
}
