//! The sender (sans-IO): one channel's output decisions, datagram by datagram.
//!
//! It owns everything a playout engine decides about *where* and *when* a datagram goes:
//! the output target (off / muted group / live group), a switch of target from a given
//! datagram index (a rewind when that index is already past, then the pacer's 2x catch-up
//! rule of [`crate::pacing`]), the live gate (a late live send is held until the driver has
//! asked whether this server still owns the live group), and the fence (live output refused
//! for good once the server has failed). It reads no clock and touches no socket: the driver
//! passes `now` (ns, the pacer's clock) and the outcome of each send, and carries out what it
//! is told. The bytes of datagram `i` never depend on any of this.
//!
//! One step of the driver, per datagram:
//! ```
//! use tandem::pacing::Schedule;
//! use tandem::sender::{Command, Next, Prepared, SendOutcome, Sender, SenderConfig, Target};
//! struct Every1ms;
//! impl Schedule for Every1ms {
//!     fn departure_ns(&self, i: u64) -> u64 { i * 1_000_000 }
//!     fn count(&self) -> Option<u64> { Some(4) }
//! }
//! let cfg = SenderConfig { has_live: true, has_muted: true, ..SenderConfig::default() };
//! let mut s = Sender::new(Every1ms, 10_000_000, 0, Target::Muted, cfg);
//! s.command(Command::SwitchAt { index: 2, target: Target::Live });
//! let (mut now, mut sent) = (0, vec![]);
//! loop {
//!     match s.poll(now) {
//!         Next::Sleep(t) => now = t,             // sleep (absolute) until t
//!         Next::Done => break,
//!         Next::Due(i) => {
//!             // fetch datagram i from the reader, then:
//!             match s.prepare(i, now) {
//!                 Prepared::Send(target) => { sent.push((i, target)); s.sent(i, now, SendOutcome::Sent); }
//!                 Prepared::Skip => { s.sent(i, now, SendOutcome::Skipped); }
//!                 Prepared::AskGate(_) => unreachable!("no gate configured"),
//!             }
//!         }
//!     }
//! }
//! assert_eq!(sent, [(0, Target::Muted), (1, Target::Muted), (2, Target::Live), (3, Target::Live)]);
//! ```
//!
//! The driver owns what crosses threads (a stop flag, a mailbox of [`Command`]s, the fence
//! flag checked right before a live send; see `src/net/engine.rs`); the sender owns every
//! decision. Several senders can be driven by one thread from one deadline queue: a sender
//! only ever asks for `now` and answers with its next deadline ([`Next::Sleep`]).

use std::collections::VecDeque;

use crate::pacing::{Pacer, PacerStats, Schedule};

#[cfg(test)]
mod tests;

/// Where datagrams go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[repr(u8)]
pub enum Target {
    /// Nowhere: the sender keeps time and position but sends nothing.
    Off = 0,
    /// The muted group (a standby output nobody watches).
    Muted = 1,
    /// The live group.
    Live = 2,
}

impl Target {
    /// The target stored as `t as u8` (anything unknown reads as [`Target::Off`]).
    pub fn from_u8(v: u8) -> Target {
        match v {
            1 => Target::Muted,
            2 => Target::Live,
            _ => Target::Off,
        }
    }
}

/// What the sender is told from outside (the failover driver, an operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Send to `Target` from the next datagram on (no rewind); cancels a pending switch.
    SetTarget(Target),
    /// Send datagrams from `index` on to `target`. Ahead of the sender, the current target
    /// keeps the datagrams before it; behind it, the sender rewinds (the datagrams between
    /// go out again, to `target`) and catches up at <= 2x the nominal rate.
    SwitchAt {
        /// First datagram for the new target.
        index: u64,
        /// The new target.
        target: Target,
    },
    /// Stop live output at the next send: live drops to the fallback (muted when a muted
    /// output exists, else off) and a pending switch to live is cancelled.
    StopLive,
    /// [`Command::StopLive`], and every later request for live output is refused.
    FenceLive,
    /// A planned hand-over's release: datagrams before `index` may still go live, none from
    /// `index` on, whatever later commands ask (a resume after a hold included: the peer
    /// owns the live group from there). The first datagram handled at or past `index`
    /// drops live output to the fallback and reports [`SenderEvent::Released`].
    ReleaseLiveAt {
        /// First datagram that never goes live.
        index: u64,
    },
    /// The hand-over of [`Command::ReleaseLiveAt`] was given up (the peer stepped down
    /// before the index): live output is allowed again at every index. It does not by
    /// itself go live again: a resume does that.
    CancelRelease,
}

/// Fixed settings of a sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderConfig {
    /// A live output exists.
    pub has_live: bool,
    /// A muted output exists.
    pub has_muted: bool,
    /// A send decided more than this after its allowed time counts as a late wake (ns).
    pub late_threshold_ns: u64,
    /// Longest single sleep (ns): a stop or a rewinding switch is seen at least this often.
    pub max_sleep_ns: u64,
    /// The live gate: a live send about to go out more than this after its allowed time
    /// (a late wake or a stall of the process) is first checked with the ownership query
    /// ([`Prepared::AskGate`]). `None`: no gate.
    pub gate_after_ns: Option<u64>,
}

impl Default for SenderConfig {
    /// No outputs, 500 us late threshold, sleeps of at most 50 ms, no gate.
    fn default() -> SenderConfig {
        SenderConfig {
            has_live: false,
            has_muted: false,
            late_threshold_ns: 500_000,
            max_sleep_ns: 50_000_000,
            gate_after_ns: None,
        }
    }
}

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Sleep until this instant (ns, the clock of `now`), cut short by a command or a stop;
    /// then [`Sender::poll`] with a fresh `now`.
    Sleep(u64),
    /// Datagram `i` is due: fetch it, then [`Sender::prepare`] it.
    Due(u64),
    /// The session is over.
    Done,
}

/// What to do with the datagram fetched for [`Next::Due`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// Hand it to this output (never [`Target::Off`]); a live send passes the driver's
    /// fence check first ([`Sender::fence_seen`]). Then [`Sender::sent`].
    Send(Target),
    /// The target is off: nothing goes out; report [`SendOutcome::Skipped`].
    Skip,
    /// A late live send: ask the ownership query, then [`Sender::gate_answer`].
    AskGate(GateCheck),
}

/// What the ownership gate is asked before a live send that runs late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateCheck {
    /// Datagram about to go out on the live target.
    pub index: u64,
    /// How long after its allowed send time it is about to go out (ns): the length of the
    /// late wake or stall. A planned catch-up (after a rewind) does not count.
    pub late_ns: u64,
    /// How far behind its due time on the timeline it is (ns).
    pub behind_ns: u64,
    /// The instant of the question (ns, the clock of `now`).
    pub now_ns: u64,
}

/// How a send went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Handed to the kernel.
    Sent,
    /// Target off: nothing was sent.
    Skipped,
    /// The send failed (the sender goes on).
    Failed {
        /// The OS error kind.
        kind: std::io::ErrorKind,
        /// The OS error message.
        message: String,
    },
}

/// The last datagram handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastSent {
    /// Datagram index.
    pub index: u64,
    /// The instant of the send decision (ns, the clock of `now`).
    pub at_ns: u64,
    /// Where it went.
    pub target: Target,
}

/// Counters of a sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SenderStats {
    /// Pacer counters (sent, late wakes, max lateness, catch-up, seeks).
    pub pacer: PacerStats,
    /// Datagrams handed to the muted output.
    pub sent_muted: u64,
    /// Datagrams handed to the live output.
    pub sent_live: u64,
    /// Failed sends.
    pub send_errors: u64,
    /// Live sends refused by the ownership gate.
    pub gated: u64,
    /// First datagram index handled.
    pub first_index: Option<u64>,
}

/// What happened, for logs and the driver's state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderEvent {
    /// A send decided more than the late threshold after its allowed time.
    Late {
        /// Datagram index.
        index: u64,
        /// Delay past the allowed send time (ns).
        lateness_ns: u64,
        /// Distance behind the timeline (ns).
        behind_ns: u64,
    },
    /// A send failed.
    SendError {
        /// Datagram index.
        index: u64,
        /// The target it was meant for.
        target: Target,
        /// The OS error kind.
        kind: std::io::ErrorKind,
        /// The OS error message.
        message: String,
    },
    /// A switch of target took effect (before datagram `index`).
    Switched {
        /// First datagram sent to the new target.
        index: u64,
        /// The new target.
        target: Target,
        /// Datagrams rewound (already handled, sent again to the new target).
        rewound: u64,
    },
    /// The sender reached the release index of [`Command::ReleaseLiveAt`]: nothing from
    /// `index` on goes live (reported once).
    Released {
        /// The release index.
        index: u64,
    },
    /// The ownership gate refused a late live send; the target dropped to `fallback`.
    GateClosed {
        /// The datagram not sent live.
        index: u64,
        /// Its distance behind the timeline (ns).
        behind_ns: u64,
        /// The target now in force.
        fallback: Target,
    },
}

/// A live send waiting for the gate's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Asked {
    index: u64,
    behind_ns: u64,
}

/// The sender state machine (see the module documentation).
#[derive(Debug, Clone)]
pub struct Sender<S> {
    pacer: Pacer<S>,
    cfg: SenderConfig,
    target: Target,
    /// A switch to apply once the sender reaches its index (or at once: a rewind).
    switch: Option<(u64, Target)>,
    fenced: bool,
    /// [`Command::ReleaseLiveAt`]: (first datagram never sent live, released already).
    release: Option<(u64, bool)>,
    /// The gate was asked for this datagram (asked at most once per datagram).
    asked: Option<Asked>,
    /// The send decision of the datagram in hand: (index, allowed ns, due ns).
    decided: Option<(u64, u64, u64)>,
    /// The last datagram handled, and the last one handed to the kernel on live.
    last: Option<LastSent>,
    last_live: Option<LastSent>,
    stats: SenderStats,
    events: VecDeque<SenderEvent>,
}

impl<S: Schedule> Sender<S> {
    /// A sender whose datagram `i` is due at `origin_ns + schedule.departure_ns(i)`,
    /// starting at datagram `start` on `target` (which must exist: see
    /// [`Sender::check_target`]).
    pub fn new(
        schedule: S,
        origin_ns: u64,
        start: u64,
        target: Target,
        cfg: SenderConfig,
    ) -> Sender<S> {
        let mut pacer = Pacer::new(schedule, origin_ns, start);
        pacer.set_late_threshold_ns(cfg.late_threshold_ns);
        Sender {
            pacer,
            cfg: SenderConfig {
                max_sleep_ns: cfg.max_sleep_ns.max(1),
                ..cfg
            },
            target,
            switch: None,
            fenced: false,
            release: None,
            asked: None,
            decided: None,
            last: None,
            last_live: None,
            stats: SenderStats::default(),
            events: VecDeque::new(),
        }
    }

    /// Whether `target` can be asked for: its output exists and, for live, the fence is
    /// not down.
    pub fn check_target(&self, target: Target) -> Result<(), TargetError> {
        check_target(self.cfg.has_live, self.cfg.has_muted, self.fenced, target)
    }

    /// The target in force.
    pub fn target(&self) -> Target {
        self.target
    }

    /// Where live output drops to: muted when a muted output exists, else off.
    pub fn fallback(&self) -> Target {
        if self.cfg.has_muted {
            Target::Muted
        } else {
            Target::Off
        }
    }

    /// Whether live output is fenced off for good.
    pub fn fenced(&self) -> bool {
        self.fenced
    }

    /// The datagram handled next.
    pub fn next_index(&self) -> u64 {
        self.pacer.next_index()
    }

    /// The last datagram handled.
    pub fn last(&self) -> Option<LastSent> {
        self.last
    }

    /// The last datagram handed to the kernel on the live target.
    pub fn last_live(&self) -> Option<LastSent> {
        self.last_live
    }

    /// Counters so far.
    pub fn stats(&self) -> SenderStats {
        SenderStats {
            pacer: self.pacer.stats(),
            ..self.stats
        }
    }

    /// The oldest event not yet taken.
    pub fn poll_event(&mut self) -> Option<SenderEvent> {
        self.events.pop_front()
    }

    /// Applies a command. A command for an output that does not exist, or for live output
    /// once fenced, changes nothing (the driver refuses it up front with
    /// [`Sender::check_target`]).
    pub fn command(&mut self, c: Command) {
        match c {
            Command::SetTarget(t) => {
                if self.check_target(t).is_ok() {
                    self.switch = None;
                    self.target = t;
                }
            }
            Command::SwitchAt { index, target } => {
                if self.check_target(target).is_ok() {
                    self.switch = Some((index, target));
                }
            }
            Command::StopLive => self.stop_live(),
            Command::FenceLive => {
                self.fenced = true;
                self.stop_live();
            }
            Command::ReleaseLiveAt { index } => self.release = Some((index, false)),
            Command::CancelRelease => self.release = None,
        }
    }

    /// Enforces a hand-over's release on datagram `i` (see [`Command::ReleaseLiveAt`]). The
    /// pacer keeps its reference (the last send): the fallback's next datagram is spaced
    /// from it, within the 2x rule.
    fn apply_release(&mut self, i: u64) {
        let Some((index, done)) = self.release else {
            return;
        };
        if i < index {
            return;
        }
        if self.target == Target::Live {
            self.target = self.fallback();
        }
        if !done {
            self.release = Some((index, true));
            self.events.push_back(SenderEvent::Released { index });
        }
    }

    fn stop_live(&mut self) {
        if matches!(self.switch, Some((_, Target::Live))) {
            self.switch = None;
        }
        if self.target == Target::Live {
            self.target = self.fallback();
        }
    }

    /// Applies a pending switch whose index has been reached (or passed: a rewind).
    fn apply_switch(&mut self, now: u64) {
        let next = self.pacer.next_index();
        let Some((index, target)) = self.switch.filter(|&(i, _)| i <= next) else {
            return;
        };
        self.switch = None;
        if target == Target::Live && self.fenced {
            return;
        }
        // A switch to live at or past a hand-over's release index would send nothing live:
        // it is not taken (nor its rewind, nor the pacer's change of output).
        if target == Target::Live && self.release.is_some_and(|(r, _)| index >= r) {
            return;
        }
        if index < next {
            self.pacer.seek(index);
        }
        if self.target != target {
            // The 2x catch-up rule spaces sends on one output: a takeover's first live
            // datagram is not held back by the last muted one.
            let last_there = match target {
                Target::Live => self.last_live.map(|l| l.at_ns),
                _ => None,
            };
            self.pacer.output_changed(last_there, now);
        }
        self.target = target;
        self.events.push_back(SenderEvent::Switched {
            index,
            target,
            rewound: next.saturating_sub(index),
        });
    }

    /// What next, at `now`: a sleep until the next deadline, a datagram due, or the end.
    pub fn poll(&mut self, now: u64) -> Next {
        self.apply_switch(now);
        // Before the pacer decides: the datagram due goes to the output it will really use.
        self.apply_release(self.pacer.next_index());
        match self.pacer.poll(now) {
            crate::pacing::PacerAction::Done => Next::Done,
            crate::pacing::PacerAction::WaitUntil(t) => {
                Next::Sleep(t.min(now.saturating_add(self.cfg.max_sleep_ns)))
            }
            crate::pacing::PacerAction::Send(i) => {
                self.asked = None;
                self.decided = self
                    .pacer
                    .last_decision()
                    .filter(|d| d.index == i)
                    .map(|d| (i, d.allowed_ns, d.due_ns));
                Next::Due(i)
            }
        }
    }

    /// Datagram `i` (from [`Next::Due`]) is in hand at `now`: where does it go? A live
    /// send with a gate reads `now` afresh (the lateness is measured again right before
    /// the send, so a stall after the decision is caught too).
    pub fn prepare(&mut self, i: u64, now: u64) -> Prepared {
        self.apply_release(i);
        if self.target == Target::Live {
            if let (Some(after), Some((di, allowed, due)), None) =
                (self.cfg.gate_after_ns, self.decided, self.asked)
            {
                let late = now.saturating_sub(allowed);
                if di == i && late > after {
                    let behind = now.saturating_sub(due);
                    self.asked = Some(Asked {
                        index: i,
                        behind_ns: behind,
                    });
                    return Prepared::AskGate(GateCheck {
                        index: i,
                        late_ns: late,
                        behind_ns: behind,
                        now_ns: now,
                    });
                }
            }
        }
        match self.target {
            Target::Off => Prepared::Skip,
            t => Prepared::Send(t),
        }
    }

    /// The gate's answer for the datagram of the last [`Prepared::AskGate`]: `false` drops
    /// the target from live to the fallback (the datagram goes there instead). Then
    /// [`Sender::prepare`] it again.
    pub fn gate_answer(&mut self, owns_live: bool) {
        let Some(a) = self.asked else { return };
        if owns_live || self.target != Target::Live {
            return;
        }
        let fallback = self.fallback();
        self.target = fallback;
        self.stats.gated += 1;
        self.events.push_back(SenderEvent::GateClosed {
            index: a.index,
            behind_ns: a.behind_ns,
            fallback,
        });
    }

    /// The driver's fence check right before a live send found the fence down: the
    /// datagram goes to the fallback instead. Returns the target it goes to now.
    pub fn fence_seen(&mut self) -> Target {
        self.command(Command::FenceLive);
        self.target
    }

    /// Datagram `i` was handled at `now` with `outcome`. Returns the sleep until the next
    /// datagram when it is already known from this send's clock reading (no fresh clock
    /// read needed), else `None`: then [`Sender::poll`] with a fresh `now`.
    pub fn sent(&mut self, i: u64, now: u64, outcome: SendOutcome) -> Option<u64> {
        let target = match outcome {
            SendOutcome::Skipped => Target::Off,
            _ => self.target,
        };
        match outcome {
            SendOutcome::Sent => match target {
                Target::Live => {
                    self.stats.sent_live += 1;
                    self.last_live = Some(LastSent {
                        index: i,
                        at_ns: now,
                        target,
                    });
                }
                _ => self.stats.sent_muted += 1,
            },
            SendOutcome::Skipped => {}
            SendOutcome::Failed { kind, message } => {
                self.stats.send_errors += 1;
                self.events.push_back(SenderEvent::SendError {
                    index: i,
                    target,
                    kind,
                    message,
                });
            }
        }
        self.pacer.sent(i, now);
        self.stats.first_index.get_or_insert(i);
        self.last = Some(LastSent {
            index: i,
            at_ns: now,
            target,
        });
        if let Some(d) = self
            .pacer
            .last_decision()
            .filter(|d| d.index == i && d.late)
        {
            self.events.push_back(SenderEvent::Late {
                index: i,
                lateness_ns: d.lateness_ns,
                behind_ns: d.behind_ns,
            });
        }
        self.decided = None;
        self.asked = None;
        // Right after a send, the sleep until the next datagram's (absolute) time is
        // planned with the send's own clock reading; a send is only decided on a fresh one.
        self.apply_switch(now);
        match self.pacer.wake_at() {
            Some(at) if at > now => Some(at.min(now.saturating_add(self.cfg.max_sleep_ns))),
            _ => None,
        }
    }

    /// The pacer's due time of datagram `i` (ns, the clock of `now`).
    pub fn due_ns(&self, i: u64) -> u64 {
        self.pacer.due_ns(i)
    }
}

/// Why a target cannot be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// No output of that kind was configured.
    #[error("no {0:?} destination is configured")]
    NoOutput(Target),
    /// Live output was fenced off for good (the server failed).
    #[error("live output is fenced off (the server failed)")]
    Fenced,
}

/// [`Sender::check_target`] on plain facts (for a driver that answers before the sender
/// has seen the command).
pub fn check_target(
    has_live: bool,
    has_muted: bool,
    fenced: bool,
    target: Target,
) -> Result<(), TargetError> {
    match target {
        Target::Live if fenced => Err(TargetError::Fenced),
        Target::Live if !has_live => Err(TargetError::NoOutput(target)),
        Target::Muted if !has_muted => Err(TargetError::NoOutput(target)),
        _ => Ok(()),
    }
}
