//! The machine's deadlines in one table (in the spirit of quinn's connection timers): every
//! instant at which [`super::Machine::handle_timeout`] has work is an entry here, so
//! [`super::Machine::poll_timeout`] is the earliest armed entry and nothing else.

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The next heartbeat (always armed).
    Heartbeat,
    /// Ask the ownership query again while the live output is held.
    VerifyRetry,
    /// The ownership verification times out.
    VerifyDeadline,
    /// Ask for the session parameters again.
    SyncRetry,
    /// An unanswered hand-over offer is withdrawn.
    HandOverOffer,
}

impl Timer {
    /// Every timer.
    pub const ALL: [Timer; 5] = [
        Timer::Heartbeat,
        Timer::VerifyRetry,
        Timer::VerifyDeadline,
        Timer::SyncRetry,
        Timer::HandOverOffer,
    ];

    fn slot(self) -> usize {
        self as usize
    }
}

/// Armed deadlines, ns on the machine's clock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerTable([Option<u64>; 5]);

impl TimerTable {
    /// When `t` fires, if armed.
    pub fn get(&self, t: Timer) -> Option<u64> {
        self.0[t.slot()]
    }

    /// Arms `t` at `at` (replacing any earlier setting).
    pub fn set(&mut self, t: Timer, at: u64) {
        self.0[t.slot()] = Some(at);
    }

    /// Disarms `t`.
    pub fn stop(&mut self, t: Timer) {
        self.0[t.slot()] = None;
    }

    /// Whether `t` is armed and due at `now`.
    pub fn expired(&self, t: Timer, now: u64) -> bool {
        self.get(t).is_some_and(|at| now >= at)
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<u64> {
        self.0.iter().flatten().copied().min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_deadline_is_the_earliest_armed_one() {
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Heartbeat, 50);
        t.set(Timer::VerifyDeadline, 20);
        t.set(Timer::SyncRetry, 90);
        assert_eq!(t.next(), Some(20));
        assert!(t.expired(Timer::VerifyDeadline, 20));
        assert!(!t.expired(Timer::Heartbeat, 49));
        assert!(!t.expired(Timer::HandOverOffer, u64::MAX));
        t.stop(Timer::VerifyDeadline);
        assert_eq!(t.next(), Some(50));
        for x in Timer::ALL {
            t.stop(x);
        }
        assert_eq!(t.next(), None);
    }
}
