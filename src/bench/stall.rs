//! Stalls seen during a run. These machines stall a process for 10-20 ms now and then
//! (CHANGELOG.md, session 4: a 1 ms sleep loop woke up to 7 ms late when idle); a trial such a stall spoils stays in the figures, and the report
//! says how many there were. Three witnesses:
//! - the machine: a watcher thread of the benchmark that sleeps 1 ms at a time and records
//!   every wake that came late by at least the threshold ([`StallLog`]);
//! - the primary: the largest gap between its datagrams on the live group just before the
//!   fault ([`largest_gap_in`]);
//! - the secondary: the largest gap between its datagrams on the muted group between the
//!   fault and its first datagram on the live group.

use serde::{Deserialize, Serialize};

/// One stall of the watcher: it woke `late_ns` after it should have, at `end_real_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stall {
    /// When the stall ended (unix ns).
    pub end_real_ns: u64,
    /// How late the wake was (ns); the stall began at `end_real_ns - late_ns`.
    pub late_ns: u64,
}

impl Stall {
    /// When the stall began (unix ns).
    pub fn start_real_ns(&self) -> u64 {
        self.end_real_ns.saturating_sub(self.late_ns)
    }
}

/// The stalls the watcher recorded (bounded: the largest are kept past the limit).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StallLog {
    /// Stalls of at least the threshold, in order.
    pub stalls: Vec<Stall>,
    /// Stalls seen in total (also those past the kept list).
    pub count: u64,
    /// The largest.
    pub max_ns: u64,
    /// Sum of all stalls.
    pub total_ns: u64,
}

/// Stalls kept with their times.
pub const MAX_STALLS: usize = 100_000;

impl StallLog {
    /// Records a wake `late_ns` late ending at `end_real_ns`.
    pub fn record(&mut self, end_real_ns: u64, late_ns: u64) {
        self.count += 1;
        self.max_ns = self.max_ns.max(late_ns);
        self.total_ns = self.total_ns.saturating_add(late_ns);
        if self.stalls.len() < MAX_STALLS {
            self.stalls.push(Stall {
                end_real_ns,
                late_ns,
            });
        }
    }

    /// The longest stall overlapping `[from, to]` (unix ns), 0 if none.
    pub fn longest_in(&self, from: u64, to: u64) -> u64 {
        self.stalls
            .iter()
            .filter(|s| s.start_real_ns() <= to && s.end_real_ns >= from)
            .map(|s| s.late_ns)
            .max()
            .unwrap_or(0)
    }
}

/// The largest interval between consecutive times of `sorted` that overlaps `[from, to]`
/// (unix ns): the times inside the window with their neighbours on either side; when no
/// time follows the window, the silence from the last time up to `to` counts as well (a
/// sender that went quiet). 0 when there is nothing to compare.
pub fn largest_gap_in(sorted: &[u64], from: u64, to: u64) -> u64 {
    if from > to || sorted.is_empty() {
        return 0;
    }
    let start = sorted.partition_point(|&t| t < from).saturating_sub(1);
    let end = sorted.partition_point(|&t| t <= to);
    let mut points: Vec<u64> = sorted[start..(end + 1).min(sorted.len())].to_vec();
    if end >= sorted.len() {
        points.push(to.max(*points.last().unwrap_or(&to)));
    }
    points
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or(0)
}
