//! The pacer (sans-IO): when does datagram `i` go out, given `now`?
//!
//! Datagram `i` is due at `origin + departure(i)` on an absolute timeline (RFC 2250 §2: the
//! target transmission time of its first byte). The origin never moves. After a late wake
//! (a stall of the machine, or a rewind by the failover switch) the overdue datagrams go out
//! at no more than twice the nominal rate until the schedule is met again:
//! `send(i) >= send(i-1) + (departure(i) - departure(i-1)) / 2`. No burst, no stall, no
//! drift: this is the fix for the catch-up bursts and clock resets users complain about in
//! other playout tools.
//!
//! The driver loop is:
//! ```
//! use tandem::pacing::{Pacer, PacerAction, Schedule};
//! struct Every10us;
//! impl Schedule for Every10us {
//!     fn departure_ns(&self, i: u64) -> u64 { i * 10_000 }
//!     fn count(&self) -> Option<u64> { Some(3) }
//! }
//! let mut p = Pacer::new(Every10us, 1_000_000, 0);
//! let mut now = 0;
//! let mut sent = vec![];
//! loop {
//!     match p.poll(now) {
//!         PacerAction::Send(i) => { sent.push((i, now)); p.sent(i, now); }
//!         PacerAction::WaitUntil(t) => now = t, // clock_nanosleep(TIMER_ABSTIME) here
//!         PacerAction::Done => break,
//!     }
//! }
//! assert_eq!(sent, [(0, 1_000_000), (1, 1_010_000), (2, 1_020_000)]);
//! ```

/// The departure schedule the pacer follows (implemented by the output stream).
pub trait Schedule {
    /// Departure of datagram `i` in ns relative to the origin (non-decreasing in `i`).
    fn departure_ns(&self, i: u64) -> u64;
    /// Number of datagrams (`None` = endless).
    fn count(&self) -> Option<u64>;
}

impl<S: Schedule + ?Sized> Schedule for std::sync::Arc<S> {
    fn departure_ns(&self, i: u64) -> u64 {
        (**self).departure_ns(i)
    }
    fn count(&self) -> Option<u64> {
        (**self).count()
    }
}

/// What the driver should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacerAction {
    /// Send datagram `i` now, then call [`Pacer::sent`].
    Send(u64),
    /// Sleep until this instant (ns, same clock as `now`), then poll again.
    WaitUntil(u64),
    /// The session is over.
    Done,
}

/// Counters of a pacer. `late_wakes` counts sends decided more than the threshold after
/// their allowed time (a late timer wake or a stall of the process); `max_lateness_ns` is
/// the largest such delay; `max_behind_ns` the largest distance behind the schedule (it
/// also grows on purpose after a rewind); `catch_up` counts sends held back by the 2x rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PacerStats {
    /// Datagrams sent.
    pub sent: u64,
    /// Sends decided later than `late_threshold_ns` after their allowed time.
    pub late_wakes: u64,
    /// Largest delay between a datagram's allowed time and the decision to send it.
    pub max_lateness_ns: u64,
    /// Largest `send time - due time` (how far behind the timeline the output was).
    pub max_behind_ns: u64,
    /// Sends whose allowed time was set by the 2x catch-up rule, not the timeline.
    pub catch_up: u64,
    /// Rewinds/seeks.
    pub seeks: u64,
    /// Every send's lateness (decision time minus allowed time), by bucket.
    pub lateness: LatenessHistogram,
}

/// Upper bounds (ns, inclusive) of the [`LatenessHistogram`] buckets: 25 us to 50 ms, about
/// 2.5x apart; a last bucket takes everything later.
pub const LATENESS_BOUNDS_NS: [u64; 11] = [
    25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
    25_000_000, 50_000_000,
];

/// How late the sends were decided, by bucket (fixed bounds, so it is plain data that a
/// snapshot copies and `/metrics` renders as a Prometheus histogram).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LatenessHistogram {
    /// Sends per bucket: `counts[b]` for lateness up to `LATENESS_BOUNDS_NS[b]` (and above the
    /// bucket before); the last entry for lateness above every bound.
    pub counts: [u64; LATENESS_BOUNDS_NS.len() + 1],
    /// Sum of every lateness recorded (ns).
    pub sum_ns: u64,
}

impl LatenessHistogram {
    /// Records one send `ns` late.
    pub fn record(&mut self, ns: u64) {
        let b = LATENESS_BOUNDS_NS.partition_point(|&u| u < ns);
        self.counts[b] += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// Sends recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Sends recorded more than `bound_ns` late, counted by whole buckets: exact where
    /// `bound_ns` is one of [`LATENESS_BOUNDS_NS`].
    pub fn above(&self, bound_ns: u64) -> u64 {
        let b = LATENESS_BOUNDS_NS.partition_point(|&u| u <= bound_ns);
        self.counts[b..].iter().sum()
    }
}

/// Facts about the send the pacer just decided (for logging and ownership checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Datagram index.
    pub index: u64,
    /// Its due time on the timeline (ns, driver clock).
    pub due_ns: u64,
    /// The earliest instant it was allowed to go out (its due time, or later under the 2x
    /// catch-up rule). A send well after this instant means the process was late (a late
    /// timer wake or a stall), not a planned catch-up.
    pub allowed_ns: u64,
    /// `now - allowed time` when decided (0 if on time).
    pub lateness_ns: u64,
    /// `now - due time` (0 if not behind).
    pub behind_ns: u64,
    /// The decision counts as a late wake.
    pub late: bool,
}

/// The pacing state machine. See the module documentation.
#[derive(Debug, Clone)]
pub struct Pacer<S> {
    schedule: S,
    origin_ns: u64,
    next: u64,
    last_send_ns: Option<u64>,
    late_threshold_ns: u64,
    stats: PacerStats,
    last_decision: Option<Decision>,
    /// Departures (index, ns) of the last two datagrams looked up: one decision asks for
    /// `next - 1` and `next` several times, and the schedule's lookup is not free (a search
    /// over the PCR anchors and a division).
    memo: [(u64, u64); 2],
}

impl<S: Schedule> Pacer<S> {
    /// A pacer whose datagram `i` is due at `origin_ns + schedule.departure_ns(i)`, starting
    /// at datagram `start`. Late wakes are counted above 500 us (see
    /// [`Self::set_late_threshold_ns`]).
    pub fn new(schedule: S, origin_ns: u64, start: u64) -> Pacer<S> {
        Pacer {
            schedule,
            origin_ns,
            next: start,
            last_send_ns: None,
            late_threshold_ns: 500_000,
            stats: PacerStats::default(),
            last_decision: None,
            memo: [(u64::MAX, 0); 2],
        }
    }

    /// Sets how late a send decision must be to count as a late wake.
    pub fn set_late_threshold_ns(&mut self, ns: u64) {
        self.late_threshold_ns = ns;
    }

    /// The schedule.
    pub fn schedule(&self) -> &S {
        &self.schedule
    }

    /// The origin of the timeline (fixed for the pacer's life).
    pub fn origin_ns(&self) -> u64 {
        self.origin_ns
    }

    /// Index of the next datagram to send.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// Counters so far.
    pub fn stats(&self) -> PacerStats {
        self.stats
    }

    /// Details of the last `Send` decision.
    pub fn last_decision(&self) -> Option<Decision> {
        self.last_decision
    }

    /// Due time of datagram `i` (driver clock, ns).
    pub fn due_ns(&self, i: u64) -> u64 {
        self.origin_ns.saturating_add(self.schedule.departure_ns(i))
    }

    /// `schedule.departure_ns(i)`, remembered for the last two indices asked.
    fn departure(&mut self, i: u64) -> u64 {
        if let Some(&(_, d)) = self.memo.iter().find(|m| m.0 == i) {
            return d;
        }
        let d = self.schedule.departure_ns(i);
        self.memo = [self.memo[1], (i, d)];
        d
    }

    /// [`Self::due_ns`] through the memo.
    fn due(&mut self, i: u64) -> u64 {
        let d = self.departure(i);
        self.origin_ns.saturating_add(d)
    }

    /// Nominal spacing before datagram `i` (`departure(i) - departure(i-1)`; for `i = 0`
    /// the spacing after it).
    fn spacing_ns(&mut self, i: u64) -> u64 {
        let (a, b) = if i == 0 { (0, 1) } else { (i - 1, i) };
        let db = self.departure(b);
        db.saturating_sub(self.departure(a))
    }

    /// The earliest instant datagram `next` may go out, its due time, and whether the 2x
    /// rule set it.
    fn allowed_ns(&mut self) -> (u64, u64, bool) {
        let due = self.due(self.next);
        match self.last_send_ns {
            Some(last) => {
                let floor = last.saturating_add(self.spacing_ns(self.next) / 2);
                if floor > due {
                    (floor, due, true)
                } else {
                    (due, due, false)
                }
            }
            None => (due, due, false),
        }
    }

    /// The earliest instant the next datagram may go out (what [`Self::poll`] would wait
    /// for), or `None` when the session is over. Changes nothing: a driver that has just
    /// sent can plan its sleep from here without reading the clock again.
    pub fn wake_at(&mut self) -> Option<u64> {
        if self.schedule.count().is_some_and(|c| self.next >= c) {
            return None;
        }
        Some(self.allowed_ns().0)
    }

    /// What to do at `now`.
    pub fn poll(&mut self, now: u64) -> PacerAction {
        if self.schedule.count().is_some_and(|c| self.next >= c) {
            return PacerAction::Done;
        }
        let (allowed, due, held) = self.allowed_ns();
        if now < allowed {
            return PacerAction::WaitUntil(allowed);
        }
        let lateness = now - allowed;
        let late = lateness > self.late_threshold_ns;
        if held {
            self.stats.catch_up += 1;
        }
        self.last_decision = Some(Decision {
            index: self.next,
            due_ns: due,
            allowed_ns: allowed,
            lateness_ns: lateness,
            behind_ns: now.saturating_sub(due),
            late,
        });
        PacerAction::Send(self.next)
    }

    /// Records that datagram `i` went out (or was deliberately dropped) at `now`.
    pub fn sent(&mut self, i: u64, now: u64) {
        if let Some(d) = self.last_decision.filter(|d| d.index == i) {
            if d.late {
                self.stats.late_wakes += 1;
            }
            self.stats.max_lateness_ns = self.stats.max_lateness_ns.max(d.lateness_ns);
            self.stats.lateness.record(d.lateness_ns);
        }
        let behind = now.saturating_sub(self.due(i));
        self.stats.max_behind_ns = self.stats.max_behind_ns.max(behind);
        self.stats.sent += 1;
        self.last_send_ns = Some(now);
        self.next = i + 1;
    }

    /// Continues from datagram `i` (a rewind into the past or a jump ahead). The origin does
    /// not move; a rewound datagram is overdue and the 2x rule spaces the catch-up from the
    /// last send.
    pub fn seek(&mut self, i: u64) {
        self.next = i;
        self.stats.seeks += 1;
    }

    /// The output changed at `now` (e.g. muted group -> live group): the 2x rule spaces
    /// sends on the *same* output, so its reference becomes the last send to the new output
    /// (`last_on_output_ns`, driver clock) if any. The first datagram of a takeover then goes
    /// out at once (allowed at `now`, a planned catch-up, not a late wake) instead of half a
    /// spacing after the last muted one; the ones after it follow at <= 2x.
    pub fn output_changed(&mut self, last_on_output_ns: Option<u64>, now: u64) {
        let half = self.spacing_ns(self.next) / 2;
        let from_now = now.saturating_sub(half);
        self.last_send_ns = Some(last_on_output_ns.map_or(from_now, |t| t.max(from_now)));
    }
}

/// A schedule for tests: 1 ms spacing, `n` datagrams (or endless).
#[cfg(test)]
pub(crate) struct Fixed(pub(crate) Option<u64>);

#[cfg(test)]
impl Schedule for Fixed {
    fn departure_ns(&self, i: u64) -> u64 {
        i * 1_000_000
    }
    fn count(&self) -> Option<u64> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the pacer on a simulated clock; `stall(now, i)` returns extra delay added to the
    /// wake before datagram `i`. Returns (index, send time) pairs.
    fn run(
        p: &mut Pacer<Fixed>,
        start_now: u64,
        max: usize,
        stall: impl Fn(u64) -> u64,
    ) -> Vec<(u64, u64)> {
        let mut now = start_now;
        let mut out = vec![];
        while out.len() < max {
            match p.poll(now) {
                PacerAction::Send(i) => {
                    out.push((i, now));
                    p.sent(i, now);
                }
                PacerAction::WaitUntil(t) => {
                    assert!(t > now);
                    now = t + stall(p.next_index());
                }
                PacerAction::Done => break,
            }
        }
        out
    }

    #[test]
    fn on_time_sends_follow_the_timeline_exactly() {
        let mut p = Pacer::new(Fixed(Some(5)), 7_000, 0);
        let s = run(&mut p, 0, 100, |_| 0);
        assert_eq!(
            s,
            (0..5)
                .map(|i| (i, 7_000 + i * 1_000_000))
                .collect::<Vec<_>>()
        );
        assert_eq!(p.poll(u64::MAX), PacerAction::Done);
        assert_eq!(p.stats().late_wakes, 0);
        assert_eq!(p.stats().sent, 5);
    }

    #[test]
    fn late_wake_catches_up_at_most_twice_the_rate_without_moving_the_origin() {
        let mut p = Pacer::new(Fixed(None), 0, 0);
        // The wake before datagram 10 is 7.3 ms late.
        let s = run(&mut p, 0, 40, |i| if i == 10 { 7_300_000 } else { 0 });
        for w in s.windows(2) {
            let gap = w[1].1 - w[0].1;
            assert!(gap >= 500_000, "gap {gap} before {}", w[1].0);
        }
        // Datagram 10 goes out on the late wake; 11.. are spaced by 0.5 ms until on time.
        assert_eq!(s[10], (10, 17_300_000));
        assert_eq!(s[11], (11, 17_800_000));
        // Back on schedule exactly, at the original origin.
        let back = s.iter().position(|&(i, t)| i > 10 && t == i * 1_000_000);
        let back = back.unwrap();
        assert!(s[back..].iter().all(|&(i, t)| t == i * 1_000_000));
        // 7.3 ms behind, recovering 0.5 ms per datagram: 15 datagrams to catch up.
        assert_eq!(back, 10 + 15);
        let st = p.stats();
        assert_eq!(st.late_wakes, 1);
        assert_eq!(st.max_lateness_ns, 7_300_000);
        // The late send sits in the 10 ms bucket (5 < 7.3 <= 10 ms); every send is counted.
        assert_eq!(st.lateness.count(), st.sent);
        assert_eq!(st.lateness.counts[8], 1);
        assert!(st.lateness.sum_ns >= 7_300_000);
        assert_eq!(st.max_behind_ns, 7_300_000);
        assert_eq!(st.catch_up, 14);
        assert_eq!(p.origin_ns(), 0);
    }

    #[test]
    fn wake_at_is_what_poll_waits_for() {
        let mut p = Pacer::new(Fixed(Some(3)), 5_000, 0);
        assert_eq!(p.wake_at(), Some(5_000));
        assert_eq!(p.poll(0), PacerAction::WaitUntil(5_000));
        p.sent(0, 5_000);
        // Late: datagram 1 (due 1_005_000) is sent at 3_000_000; datagram 2 is held by the
        // 2x rule until 3_500_000.
        assert_eq!(p.wake_at(), Some(1_005_000));
        assert_eq!(p.poll(3_000_000), PacerAction::Send(1));
        p.sent(1, 3_000_000);
        assert_eq!(p.wake_at(), Some(3_500_000));
        assert_eq!(p.poll(3_000_001), PacerAction::WaitUntil(3_500_000));
        assert_eq!(p.stats().catch_up, 0);
        p.sent(2, 3_500_000);
        assert_eq!(p.wake_at(), None);
        assert_eq!(p.poll(u64::MAX), PacerAction::Done);
    }

    #[test]
    fn small_jitter_is_not_a_late_wake() {
        let mut p = Pacer::new(Fixed(Some(20)), 0, 0);
        let s = run(&mut p, 0, 100, |i| if i % 3 == 0 { 200_000 } else { 0 });
        assert_eq!(s.len(), 20);
        assert_eq!(p.stats().late_wakes, 0);
        assert_eq!(p.stats().max_lateness_ns, 200_000);
        assert_eq!(p.stats().catch_up, 0);
    }

    #[test]
    fn start_in_the_past_catches_up_from_the_start_index() {
        // Origin 50 ms ago, start at datagram 40: datagrams 40..50 are overdue.
        let mut p = Pacer::new(Fixed(Some(80)), 0, 40);
        let s = run(&mut p, 50_000_000, 30, |_| 0);
        assert_eq!(s[0], (40, 50_000_000));
        assert_eq!(s[1], (41, 50_500_000));
        assert!(s.windows(2).all(|w| w[1].1 - w[0].1 >= 500_000));
        assert!(s.last().is_some_and(|&(i, t)| t == i * 1_000_000));
    }

    #[test]
    fn rewind_replays_at_twice_the_rate() {
        let mut p = Pacer::new(Fixed(None), 0, 0);
        let s = run(&mut p, 0, 20, |_| 0);
        assert_eq!(s.last(), Some(&(19, 19_000_000)));
        p.seek(15);
        let s = run(&mut p, 19_000_000, 20, |_| 0);
        assert_eq!(s[0], (15, 19_500_000));
        assert_eq!(s[1], (16, 20_000_000));
        assert!(s.windows(2).all(|w| w[1].1 - w[0].1 >= 500_000));
        // 4 ms behind after the rewind; 0.5 ms gained per datagram.
        assert!(s.iter().any(|&(i, t)| i == 24 && t == 24_000_000));
        assert_eq!(p.stats().seeks, 1);
        assert_eq!(p.stats().late_wakes, 0);
    }

    #[test]
    fn a_new_output_is_not_held_by_the_last_send_to_the_old_one() {
        let mut p = Pacer::new(Fixed(None), 0, 0);
        // Sent datagrams 0..=9 on time (to the muted group, say).
        for i in 0..10u64 {
            assert_eq!(p.poll(i * 1_000_000), PacerAction::Send(i));
            p.sent(i, i * 1_000_000);
        }
        // Rewind to 5 at 9.1 ms: on the same output the 2x rule holds it to 9.5 ms.
        p.seek(5);
        assert_eq!(p.poll(9_100_000), PacerAction::WaitUntil(9_500_000));
        // On a new output with no earlier send it goes at once, as a planned catch-up (no
        // lateness: the engine's gate treats it as on time), then at 2x.
        p.output_changed(None, 9_100_000);
        assert_eq!(p.poll(9_100_000), PacerAction::Send(5));
        let d = p.last_decision().unwrap();
        assert_eq!(d.lateness_ns, 0);
        assert!(!d.late);
        assert_eq!(d.behind_ns, 4_100_000);
        p.sent(5, 9_100_000);
        assert_eq!(p.poll(9_100_000), PacerAction::WaitUntil(9_600_000));
        // Back on an output last used at 9.5 ms: spaced from that send.
        p.seek(6);
        p.output_changed(Some(9_500_000), 9_600_000);
        assert_eq!(p.poll(9_600_000), PacerAction::WaitUntil(10_000_000));
    }
}
