//! When a `Failed` server recovers by itself (the `Recover` event: `Failed ->
//! Secondary_synchronizing`, see `docs/states.md`: a failed server comes back as a
//! secondary, "it never returns on air by itself").
//!
//! A server failed by a *timing* verdict (a component missed its check-in deadline, its
//! output stalled, its pacer woke late) or by a *caught panic* of an engine thread may have
//! been starved by its machine or hit a transient fault; its failed engine is stopped and
//! replaced, so it can serve again as the secondary and give the pair its redundancy back.
//! It recovers when all of these held for the whole hold-off:
//! - the failed engine's threads have ended (nothing of it can wake up and send; a thread
//!   that never ends, e.g. a deadlock, keeps the server `Failed`);
//! - another server is on air and heard: its heartbeats arrive (within `peer_fresh_ns`) and
//!   report an on-air state (so there is a session to follow, and this server's return can
//!   never leave the live group without a sender).
//!
//! Never recovered by itself: a server failed by **send errors** (its output path is broken;
//! it would fail again in the secondary role or, worse, stand by unable to deliver) or by a
//! **monitor's or operator's command** (the failure was judged from outside, and this server
//! cannot tell that its cause is gone): those need a restart (`tandem secondary ...`) or a
//! stop. A server that keeps failing is not recovered forever either: the hold-off doubles
//! with every recovery in the last `window_ns`, and after `max_recoveries` of them it stays
//! `Failed`.
//!
//! Sans-IO: the driver tells it of the failure and polls it with `now` and what it sees.

use std::collections::VecDeque;

/// Why the server failed, as far as recovery is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// A component missed its check-in deadline, the output stalled, the pacer woke late.
    Timing,
    /// A caught panic of an engine thread.
    Panic,
    /// Send errors on the output.
    SendError,
    /// A monitor's (or operator's) command.
    Command,
}

impl FailureCause {
    /// Whether a server failed this way recovers by itself.
    pub fn recoverable(self) -> bool {
        matches!(self, FailureCause::Timing | FailureCause::Panic)
    }

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            FailureCause::Timing => "timing verdict",
            FailureCause::Panic => "caught panic",
            FailureCause::SendError => "send errors",
            FailureCause::Command => "monitor command",
        }
    }
}

/// Settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryConfig {
    /// How long the conditions must hold before the first recovery, ns.
    pub hold_off_ns: u64,
    /// The server on air must have been heard within this, ns.
    pub peer_fresh_ns: u64,
    /// Recoveries allowed within `window_ns`.
    pub max_recoveries: u32,
    /// The window recoveries are counted in, ns.
    pub window_ns: u64,
}

impl Default for RecoveryConfig {
    /// Hold-off 300 ms, peer heard within 100 ms, at most 3 recoveries in 10 minutes.
    fn default() -> RecoveryConfig {
        RecoveryConfig {
            hold_off_ns: 300_000_000,
            peer_fresh_ns: 100_000_000,
            max_recoveries: 3,
            window_ns: 600_000_000_000,
        }
    }
}

/// What the driver sees at a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The failed engine's threads have all ended (or there was none).
    pub engine_ended: bool,
    /// The peer's last reported state is an on-air state.
    pub peer_on_air: bool,
    /// When the peer was last heard (ns, same clock as `now`).
    pub peer_heard_ns: Option<u64>,
}

/// Why the server stays `Failed` for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// Not recoverable by itself (send errors, a command): restart or stop it.
    Never(FailureCause),
    /// Recovered too often lately.
    TooOften(u32),
    /// The failed engine's threads have not ended.
    Engine,
    /// No server on air heard.
    NoPeerOnAir,
    /// The conditions hold; the hold-off runs until this instant.
    HoldOff(u64),
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Waiting::Never(c) => write!(
                f,
                "failed by {}: no recovery by itself (restart or stop it)",
                c.name()
            ),
            Waiting::TooOften(n) => write!(
                f,
                "recovered {n} times lately: no more recovery by itself (restart it)"
            ),
            Waiting::Engine => f.write_str("waiting for the failed engine's threads to end"),
            Waiting::NoPeerOnAir => f.write_str("waiting for a server on air to follow"),
            Waiting::HoldOff(_) => f.write_str("hold-off running"),
        }
    }
}

/// The verdict of a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not failed (nothing to do).
    Idle,
    /// Stay `Failed` for now.
    Wait(Waiting),
    /// Raise `Recover` now; the reason for the log.
    Recover(String),
}

/// The recovery rule of one server.
#[derive(Debug, Clone)]
pub struct Recovery {
    cfg: RecoveryConfig,
    failed: Option<(u64, FailureCause, String)>,
    ok_since: Option<u64>,
    recoveries: VecDeque<u64>,
}

impl Recovery {
    /// A rule with these settings.
    pub fn new(cfg: RecoveryConfig) -> Recovery {
        Recovery {
            cfg,
            failed: None,
            ok_since: None,
            recoveries: VecDeque::new(),
        }
    }

    /// The server went `Failed` at `now` for `cause` (`why` for the log).
    pub fn failed(&mut self, cause: FailureCause, why: &str, now: u64) {
        self.failed = Some((now, cause, why.to_string()));
        self.ok_since = None;
    }

    /// The server left `Failed` otherwise (restart, stop): nothing to recover.
    pub fn clear(&mut self) {
        self.failed = None;
        self.ok_since = None;
    }

    /// The cause of the failure in force, if any.
    pub fn cause(&self) -> Option<FailureCause> {
        self.failed.as_ref().map(|f| f.1)
    }

    /// The hold-off in force: doubled for every recovery within the window.
    pub fn hold_off_ns(&self) -> u64 {
        let n = self.recoveries.len().min(16) as u32;
        self.cfg.hold_off_ns.saturating_mul(1 << n)
    }

    /// Whether to recover now. A `Recover` decision counts as a recovery and ends the
    /// failure on record.
    pub fn poll(&mut self, now: u64, seen: Seen) -> Decision {
        let Some((at, cause, why)) = self.failed.clone() else {
            return Decision::Idle;
        };
        while self
            .recoveries
            .front()
            .is_some_and(|&t| now.saturating_sub(t) > self.cfg.window_ns)
        {
            self.recoveries.pop_front();
        }
        if !cause.recoverable() {
            return Decision::Wait(Waiting::Never(cause));
        }
        let n = self.recoveries.len() as u32;
        if n >= self.cfg.max_recoveries {
            return Decision::Wait(Waiting::TooOften(n));
        }
        let peer_ok = seen.peer_on_air
            && seen
                .peer_heard_ns
                .is_some_and(|h| now.saturating_sub(h) <= self.cfg.peer_fresh_ns);
        let blocked = if !seen.engine_ended {
            Some(Waiting::Engine)
        } else if !peer_ok {
            Some(Waiting::NoPeerOnAir)
        } else {
            None
        };
        if let Some(w) = blocked {
            self.ok_since = None;
            return Decision::Wait(w);
        }
        let since = *self.ok_since.get_or_insert(now);
        let hold = self.hold_off_ns();
        let until = since.max(at).saturating_add(hold);
        if now < until {
            return Decision::Wait(Waiting::HoldOff(until));
        }
        self.recoveries.push_back(now);
        self.failed = None;
        self.ok_since = None;
        Decision::Recover(format!(
            "failed {:.0} ms ago by {} ({why}); the failed engine has ended and a server on air has been heard for {:.0} ms: following it as the secondary",
            now.saturating_sub(at) as f64 / 1e6,
            cause.name(),
            now.saturating_sub(since) as f64 / 1e6,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn ok(heard: u64) -> Seen {
        Seen {
            engine_ended: true,
            peer_on_air: true,
            peer_heard_ns: Some(heard),
        }
    }

    #[test]
    fn timing_failure_recovers_after_the_hold_off_with_a_peer_on_air() {
        let mut r = Recovery::new(RecoveryConfig::default());
        assert_eq!(r.poll(0, ok(0)), Decision::Idle);
        r.failed(
            FailureCause::Timing,
            "pacer: missed its check-in deadline",
            1_000 * MS,
        );
        // The failed engine has not ended yet.
        let engine_busy = Seen {
            engine_ended: false,
            ..ok(1_000 * MS)
        };
        assert_eq!(
            r.poll(1_001 * MS, engine_busy),
            Decision::Wait(Waiting::Engine)
        );
        // Conditions hold from 1010 ms: the hold-off runs to 1310 ms.
        assert_eq!(
            r.poll(1_010 * MS, ok(1_009 * MS)),
            Decision::Wait(Waiting::HoldOff(1_310 * MS))
        );
        // The peer falls silent: the hold-off restarts once it is heard again.
        assert_eq!(
            r.poll(1_200 * MS, ok(1_050 * MS)),
            Decision::Wait(Waiting::NoPeerOnAir)
        );
        assert_eq!(
            r.poll(1_250 * MS, ok(1_249 * MS)),
            Decision::Wait(Waiting::HoldOff(1_550 * MS))
        );
        assert_eq!(
            r.poll(1_549 * MS, ok(1_548 * MS)),
            Decision::Wait(Waiting::HoldOff(1_550 * MS))
        );
        let d = r.poll(1_550 * MS, ok(1_549 * MS));
        assert!(
            matches!(&d, Decision::Recover(why) if why.contains("timing verdict") && why.contains("pacer")),
            "{d:?}"
        );
        assert_eq!(r.poll(1_600 * MS, ok(1_599 * MS)), Decision::Idle);
        assert_eq!(r.cause(), None);
    }

    #[test]
    fn a_peer_that_is_not_on_air_is_not_followed() {
        let mut r = Recovery::new(RecoveryConfig::default());
        r.failed(FailureCause::Panic, "pacer: panicked", 0);
        let s = Seen {
            peer_on_air: false,
            ..ok(10 * MS)
        };
        for t in (10..2_000).step_by(100) {
            assert_eq!(r.poll(t * MS, s), Decision::Wait(Waiting::NoPeerOnAir));
        }
        // Never heard at all.
        let s = Seen {
            peer_heard_ns: None,
            ..ok(0)
        };
        assert_eq!(r.poll(3_000 * MS, s), Decision::Wait(Waiting::NoPeerOnAir));
    }

    #[test]
    fn send_errors_and_commands_never_recover_by_themselves() {
        for cause in [FailureCause::SendError, FailureCause::Command] {
            let mut r = Recovery::new(RecoveryConfig::default());
            r.failed(cause, "x", 0);
            assert_eq!(
                r.poll(10_000 * MS, ok(10_000 * MS)),
                Decision::Wait(Waiting::Never(cause))
            );
            r.clear();
            assert_eq!(r.poll(10_000 * MS, ok(10_000 * MS)), Decision::Idle);
        }
    }

    #[test]
    fn repeated_failures_back_off_then_stop_recovering() {
        let mut r = Recovery::new(RecoveryConfig::default());
        let mut t = 0;
        for n in 0..3u32 {
            r.failed(FailureCause::Timing, "reader", t);
            let hold = (300 * MS) << n;
            assert_eq!(r.hold_off_ns(), hold);
            assert_eq!(r.poll(t, ok(t)), Decision::Wait(Waiting::HoldOff(t + hold)));
            assert!(matches!(
                r.poll(t + hold, ok(t + hold)),
                Decision::Recover(_)
            ));
            t += hold + 1_000 * MS;
        }
        r.failed(FailureCause::Timing, "reader", t);
        assert_eq!(
            r.poll(t + 10_000 * MS, ok(t + 10_000 * MS)),
            Decision::Wait(Waiting::TooOften(3))
        );
        // Ten minutes after the first recoveries, it may recover again.
        let later = 700_000 * MS;
        assert_eq!(
            r.poll(later, ok(later)),
            Decision::Wait(Waiting::HoldOff(later + 300 * MS))
        );
    }
}
