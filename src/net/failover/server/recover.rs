//! Recovery of a `Failed` server (the rule is [`crate::failover::recovery`]): the driver
//! notes why it failed, retires the failed engine (stopped without waiting for it, so a hung
//! thread cannot block the loop), and raises `Recover` once the rule says so: the server
//! then resynchronises as the secondary behind the server on air. It never comes back on
//! the live group by itself (`Failed -> Secondary_synchronizing` only).

use super::Server;
use crate::failover::machine::{Event, Transition, Trigger};
use crate::failover::recovery::{Decision, FailureCause, Seen, Waiting};
use crate::failover::state::State;
use crate::net::clock::mono_ns;
use crate::net::failover::supervisor::FENCE_SETTLE;

impl Server {
    /// The driver is about to raise a failure of this server: its cause is noted (read at
    /// the transition), the live output is fenced first and the progress reported after the
    /// fence has settled, so the Failed notice carries the exact last datagram sent on the
    /// live group and the secondary repeats none.
    pub(super) fn failing(&mut self, cause: FailureCause) {
        self.ch.pending_cause = Some(cause);
        if let Some(r) = &self.ch.engine {
            let c = r.handle.control();
            c.fence_live();
            let _ = c.settled_last_live(FENCE_SETTLE);
        }
        let now = self.now();
        self.report_progress(now);
    }

    /// A state change seen by the driver: a failure is recorded with its cause; leaving
    /// `Failed` otherwise (restart, stop) ends it.
    pub(super) fn recovery_transition(&mut self, t: &Transition) {
        if t.to == State::Failed {
            let noted = self.ch.pending_cause.take();
            let cause = match t.trigger {
                Trigger::MonitorFailed => FailureCause::Command,
                Trigger::KernelFailure => noted.unwrap_or(FailureCause::Timing),
                _ => noted.unwrap_or(FailureCause::SendError),
            };
            self.ch.recovery.failed(cause, &t.detail, mono_ns());
            self.ch.recovery_note = None;
            if cause.recoverable() {
                self.retire_engine();
            }
        } else if t.from == State::Failed && t.trigger != Trigger::Recover {
            self.ch.recovery.clear();
        }
    }

    /// Stops the (fenced) failed engine without waiting for its threads; they are joined
    /// once they have ended.
    fn retire_engine(&mut self) {
        while let Ok(g) = self.ch.gate_rx.try_recv() {
            self.ch.pending_gates.push(g);
        }
        for g in self.ch.pending_gates.drain(..) {
            g.set(false);
        }
        if let Some(r) = self.ch.engine.take() {
            self.host.supervisor.engine_stopped();
            r.handle.control().fence_live();
            r.handle.stop();
            self.ch.retired = Some(r);
        }
    }

    /// Applies the recovery rule (every loop turn while `Failed`).
    pub(super) fn recovery_tick(&mut self) {
        if self.ch.node.machine().state() != State::Failed {
            return;
        }
        if self
            .ch
            .retired
            .as_ref()
            .is_some_and(|r| r.handle.is_finished())
        {
            // Its sender has ended; the reader follows the stopped ring at once.
            self.ch.retired = None;
        }
        let now = self.now();
        let seen = Seen {
            engine_ended: self.ch.retired.is_none(),
            peer_on_air: self
                .ch
                .node
                .machine()
                .peer_state()
                .is_some_and(|s| s.on_air()),
            peer_heard_ns: self.host.last_peer_rx,
        };
        match self.ch.recovery.poll(now.mono, seen) {
            Decision::Idle => {}
            Decision::Wait(w) => {
                let text = w.to_string();
                let quiet = matches!(w, Waiting::HoldOff(_));
                if !quiet && self.ch.recovery_note.as_deref() != Some(text.as_str()) {
                    tracing::info!("Failed: {text}");
                    self.ch.recovery_note = Some(text);
                }
            }
            Decision::Recover(why) => {
                tracing::info!("recovering: {why}");
                self.ch.recovery_note = None;
                // A fresh kernel, injected faults that struck disarmed, no stale session:
                // the parameters of the server on air are accepted anew.
                self.host.supervisor.rearm();
                self.host.faults.disarm_struck(now.mono);
                self.ch.params_in = None;
                self.ch.offset_ns = None;
                self.ch.asked_logged = false;
                self.ch.node.event(Event::Recover, now);
                self.flush();
            }
        }
    }

    /// Why a failed server waits (for `tandem status`).
    pub(super) fn recovery_status(&self) -> Option<String> {
        (self.ch.node.machine().state() == State::Failed).then(|| {
            self.ch
                .recovery_note
                .clone()
                .unwrap_or_else(|| "hold-off running".to_string())
        })
    }
}
