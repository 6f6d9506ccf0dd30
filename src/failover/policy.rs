//! A server's own judgements (sans-IO), with their thresholds as named parameters: self
//! detection of an output failure (claim 13: repeated send errors, a stalled output, a
//! persistently late pacer), whether a synchronising secondary's muted output is in step
//! with the primary and whether a synchronised one has lost its lock, when the primary
//! pushes its session parameters (claim 5), and how a session ends.
//!
//! The driver feeds facts (engine events, its own loop's wakes, the engine's progress,
//! heartbeats with the primary's send times) with `now`; each policy answers with what the
//! state machine should be told ([`Event`], [`OutputFault`]) and nothing else. See
//! `docs/failover-driver.md` ("Policies").

use std::collections::VecDeque;

use super::machine::{Event, OutputFault};
use super::state::State;

/// The thresholds of the policies (defaults: [`PolicyParams::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyParams {
    /// This many send errors ...
    pub send_errors_to_fail: usize,
    /// ... within this window (ns) make an output failure (claim 13).
    pub send_error_window_ns: u64,
    /// An output that sent nothing, or a pacer later than this although a datagram was
    /// due, has failed: the larger of this many frames ...
    pub stall_frames: u64,
    /// ... and this floor (ns).
    pub stall_floor_ns: u64,
    /// A late pacer within this long (ns) after a stall of the server's own event loop of
    /// at least half its lateness is that stall (the whole process stopped), not an
    /// output failure: the ownership check deals with it.
    pub own_stall_memory_ns: u64,
    /// A heartbeat whose datagram left within this of our schedule (ns, either side) shows
    /// the muted output in step (the clock offset's error plus the primary's pacing jitter).
    pub in_step_tolerance_ns: u64,
    /// In-step samples in a row that make a synchronising secondary synchronised.
    pub in_step_samples: u32,
    /// Samples in a row with the primary ahead of our timeline by more than the tolerance
    /// that lose the lock.
    pub lock_ahead_samples: u32,
    /// Samples in a row with the primary more than `lock_behind_frames` frames behind our
    /// timeline that lose the lock.
    pub lock_behind_samples: u32,
    /// See `lock_behind_samples`.
    pub lock_behind_frames: u64,
    /// The primary pushes its parameters to a peer that synchronises anew at most this
    /// often (ns; claim 5).
    pub push_every_ns: u64,
}

impl Default for PolicyParams {
    /// 2 send errors in 100 ms; stalls over max(2 frames, 50 ms), own stalls remembered 1 s;
    /// in step within 2 ms, twice in a row; lock lost after 3 samples ahead or 25 samples
    /// more than 2 frames behind; parameters pushed every 250 ms.
    fn default() -> PolicyParams {
        PolicyParams {
            send_errors_to_fail: 2,
            send_error_window_ns: 100_000_000,
            stall_frames: 2,
            stall_floor_ns: 50_000_000,
            own_stall_memory_ns: 1_000_000_000,
            in_step_tolerance_ns: 2_000_000,
            in_step_samples: 2,
            lock_ahead_samples: 3,
            lock_behind_samples: 25,
            lock_behind_frames: 2,
            push_every_ns: 250_000_000,
        }
    }
}

/// What the driver knows of its output when the stall policy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputFacts {
    /// The machine says this server sends live.
    pub sending_live: bool,
    /// The machine's state.
    pub state: State,
    /// The engine's target is the live group.
    pub target_live: bool,
    /// The engine has ended (session over or stopped).
    pub engine_finished: bool,
    /// Monotonic instant the engine's next datagram is due (negative: before boot).
    pub next_due_mono_ns: i64,
    /// Monotonic instant of the engine's last send, if any.
    pub last_sent_mono_ns: Option<u64>,
}

/// How a session ends, as the session-end policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// Every datagram of a finite session went out: stop.
    Complete,
    /// The engine ended before the end of the session: an output failure.
    EngineStopped,
}

/// The policies' state (see the module documentation).
#[derive(Debug, Clone)]
pub struct Policies {
    params: PolicyParams,
    frame_ns: u64,
    send_errors: VecDeque<u64>,
    /// The last stall of the driver's own loop: (instant it ended, length), ns.
    loop_stall: (u64, u64),
    /// When live output last started or resumed (monotonic ns).
    live_since: u64,
    in_step_good: u32,
    lock_ahead: u32,
    lock_behind: u32,
    next_push: u64,
}

impl Policies {
    /// Policies for an asset of `frame_ns` frames.
    pub fn new(params: PolicyParams, frame_ns: u64) -> Policies {
        Policies {
            params,
            frame_ns,
            send_errors: VecDeque::new(),
            loop_stall: (0, 0),
            live_since: 0,
            in_step_good: 0,
            lock_ahead: 0,
            lock_behind: 0,
            next_push: 0,
        }
    }

    /// The thresholds.
    pub fn params(&self) -> &PolicyParams {
        &self.params
    }

    /// A new asset (its frame duration sets the stall bound).
    pub fn set_frame_ns(&mut self, frame_ns: u64) {
        self.frame_ns = frame_ns;
    }

    /// How long an output may send nothing (or a pacer be late) before it has failed:
    /// max(`stall_frames` frames, `stall_floor_ns`).
    pub fn stall_bound_ns(&self) -> u64 {
        (self.params.stall_frames * self.frame_ns).max(self.params.stall_floor_ns)
    }

    /// The driver's loop woke at `now` after `gap` ns; a gap longer than `expected_max` (it
    /// wakes at least that often) is a stall of this process, remembered so that it is not
    /// taken for an output failure.
    pub fn loop_woke(&mut self, now: u64, gap: u64, expected_max: u64) {
        if gap > expected_max {
            self.loop_stall = (now, gap);
        }
    }

    /// Live output started or resumed at `now` (an output stall is counted from here).
    pub fn went_live(&mut self, now: u64) {
        self.live_since = now;
    }

    /// The server synchronises anew: in-step samples start again.
    pub fn synchronising_anew(&mut self) {
        self.in_step_good = 0;
    }

    /// A send failed at `now` on an output that exists (`on_output`: not target off):
    /// enough of them within the window are an output failure.
    pub fn send_error(&mut self, now: u64, on_output: bool) -> bool {
        self.send_errors.push_back(now);
        let window = self.params.send_error_window_ns;
        while self
            .send_errors
            .front()
            .is_some_and(|&t| now.saturating_sub(t) > window)
        {
            self.send_errors.pop_front();
        }
        if self.send_errors.len() >= self.params.send_errors_to_fail && on_output {
            self.send_errors.clear();
            return true;
        }
        false
    }

    /// The pacer woke `lateness_ns` late at `now`: a failure only while a synchronised
    /// secondary stands by (`Primary`: without one, failing takes the only output off air
    /// and nobody takes over), when it is beyond the stall bound and not explained by a
    /// stall of the whole process.
    pub fn pacer_late(
        &self,
        now: u64,
        lateness_ns: u64,
        sending_live: bool,
        state: State,
    ) -> Option<OutputFault> {
        let (at, len) = self.loop_stall;
        let own_stall =
            now.saturating_sub(at) < self.params.own_stall_memory_ns && len >= lateness_ns / 2;
        (lateness_ns > self.stall_bound_ns()
            && !own_stall
            && sending_live
            && state == State::Primary)
            .then_some(OutputFault::PacerLate {
                late_ns: lateness_ns,
            })
    }

    /// The output stalled: nothing sent for longer than the stall bound although a
    /// datagram was due (a planned catch-up after a rewind sends all the time), counted
    /// from going live (a server that takes over after its engine was starved while muted
    /// is behind, but its live output has not failed), and this process itself was not
    /// stalled lately (that is the ownership check's business). As for a late pacer: only
    /// when a synchronised secondary can take over.
    pub fn output_stall(&self, now: u64, f: &OutputFacts) -> Option<OutputFault> {
        if !f.sending_live {
            return None;
        }
        let overdue = (now as i128 - f.next_due_mono_ns as i128).max(0) as u64;
        let silent = f
            .last_sent_mono_ns
            .map_or(overdue, |l| now.saturating_sub(l));
        let since_live = now.saturating_sub(self.live_since);
        let behind = overdue.min(silent).min(since_live);
        let recent_own = now.saturating_sub(self.loop_stall.0) < 2 * self.stall_bound_ns();
        (behind > self.stall_bound_ns()
            && !recent_own
            && f.target_live
            && !f.engine_finished
            && f.state == State::Primary)
            .then_some(OutputFault::Stalled { for_ns: behind })
    }

    /// A heartbeat of the server on air says its datagram `index` left `err_ns` after our
    /// schedule of it (negative: before). Synchronising: enough samples in step in a row
    /// make [`Event::InStep`]. Synchronised: the primary ahead of our timeline, or
    /// persistently far behind it, is [`Event::LockLost`]. Other states (or no lock on
    /// the clock offset yet): nothing.
    pub fn in_step_sample(
        &mut self,
        state: State,
        locked: bool,
        index: u64,
        err_ns: i128,
    ) -> Option<Event> {
        let tolerance = self.params.in_step_tolerance_ns as i128;
        match state {
            _ if !locked => None,
            State::SecondarySynchronizing => {
                if err_ns.abs() <= tolerance {
                    self.in_step_good += 1;
                    (self.in_step_good >= self.params.in_step_samples).then_some(Event::InStep)
                } else {
                    self.in_step_good = 0;
                    None
                }
            }
            State::SecondarySynchronized => {
                let behind = (self.params.lock_behind_frames * self.frame_ns) as i128;
                self.lock_ahead = if err_ns < -tolerance {
                    self.lock_ahead + 1
                } else {
                    0
                };
                self.lock_behind = if err_ns > behind {
                    self.lock_behind + 1
                } else {
                    0
                };
                if self.lock_ahead >= self.params.lock_ahead_samples
                    || self.lock_behind >= self.params.lock_behind_samples
                {
                    self.lock_ahead = 0;
                    self.lock_behind = 0;
                    return Some(Event::LockLost {
                        reason: format!(
                            "the primary's datagram {index} left {:.3} ms from our timeline",
                            err_ns as f64 / 1e6
                        ),
                    });
                }
                None
            }
            _ => None,
        }
    }

    /// Whether a push of the session parameters waits (claim 5): the primary-initiated
    /// mode, this server on air, and a peer that appears or synchronises anew.
    pub fn push_wanted(primary_initiated: bool, is_owner: bool, peer: Option<State>) -> bool {
        primary_initiated
            && is_owner
            && matches!(
                peer,
                Some(State::SecondaryOffline | State::Secondary | State::SecondarySynchronizing)
            )
    }

    /// Whether to push the parameters now (see [`Policies::push_wanted`]); a push is due
    /// at most every `push_every_ns` (a peer that has them already ignores the same ones).
    pub fn push_now(&mut self, now: u64, wanted: bool, have_params: bool) -> bool {
        if wanted && have_params && now >= self.next_push {
            self.next_push = now + self.params.push_every_ns;
            return true;
        }
        false
    }

    /// How a session ends: the engine has ended (`finished`, its thread gone:
    /// `stopped`) and every datagram went out (`complete`).
    pub fn session_end(finished: bool, complete: bool, stopped: bool) -> Option<SessionEnd> {
        match (finished, complete, stopped) {
            (true, true, _) => Some(SessionEnd::Complete),
            (true, false, true) => Some(SessionEnd::EngineStopped),
            _ => None,
        }
    }

    /// When the policies next want to run (monotonic ns): a push that waits, and a
    /// quarter of the stall bound while live output must be watched.
    pub fn next_deadline(&self, now: u64, push_wanted: bool, sending_live: bool) -> u64 {
        let mut next = u64::MAX;
        if push_wanted {
            next = next.min(self.next_push.max(now + 1_000_000));
        }
        if sending_live {
            next = next.min(now + self.stall_bound_ns() / 4);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: u64 = 40_000_000;

    fn p() -> Policies {
        Policies::new(PolicyParams::default(), FRAME)
    }

    #[test]
    fn two_send_errors_within_the_window_fail_the_output() {
        let mut p = p();
        assert!(!p.send_error(1_000_000_000, true));
        // The second one 150 ms later is outside the 100 ms window.
        assert!(!p.send_error(1_150_000_000, true));
        assert!(p.send_error(1_200_000_000, true));
        // Counted afresh after a failure.
        assert!(!p.send_error(1_210_000_000, true));
        // Errors with the target off do not fail an output.
        let mut q = super::Policies::new(PolicyParams::default(), FRAME);
        assert!(!q.send_error(0, false));
        assert!(!q.send_error(1, false));
    }

    #[test]
    fn the_stall_bound_is_two_frames_or_fifty_ms() {
        assert_eq!(p().stall_bound_ns(), 80_000_000);
        let mut q = p();
        q.set_frame_ns(16_683_333);
        assert_eq!(q.stall_bound_ns(), 50_000_000);
    }

    #[test]
    fn a_late_pacer_fails_only_a_primary_with_a_standby_and_not_after_its_own_stall() {
        let mut p = p();
        let now = 10_000_000_000;
        let late = 90_000_000;
        assert_eq!(
            p.pacer_late(now, late, true, State::Primary),
            Some(OutputFault::PacerLate { late_ns: late })
        );
        assert_eq!(p.pacer_late(now, 70_000_000, true, State::Primary), None);
        assert_eq!(
            p.pacer_late(now, late, true, State::PrimaryNoSecondary),
            None
        );
        assert_eq!(p.pacer_late(now, late, false, State::Primary), None);
        // The whole process stalled 60 ms just before: that explains 90 ms of lateness.
        p.loop_woke(now - 100_000_000, 60_000_000, 10_000_000);
        assert_eq!(p.pacer_late(now, late, true, State::Primary), None);
        // ... but not once it is a second old.
        assert!(p
            .pacer_late(now + 1_000_000_000, late, true, State::Primary)
            .is_some());
    }

    #[test]
    fn an_output_stall_counts_from_going_live_and_the_last_send() {
        let mut p = p();
        let now = 10_000_000_000u64;
        let f = OutputFacts {
            sending_live: true,
            state: State::Primary,
            target_live: true,
            engine_finished: false,
            next_due_mono_ns: (now - 200_000_000) as i64,
            last_sent_mono_ns: Some(now - 100_000_000),
        };
        p.went_live(now - 5_000_000_000);
        assert_eq!(
            p.output_stall(now, &f),
            Some(OutputFault::Stalled {
                for_ns: 100_000_000
            })
        );
        // A recent send, or a datagram not yet overdue, or live since just now: no stall.
        let recent = OutputFacts {
            last_sent_mono_ns: Some(now - 10_000_000),
            ..f
        };
        assert_eq!(p.output_stall(now, &recent), None);
        let not_due = OutputFacts {
            next_due_mono_ns: now as i64,
            ..f
        };
        assert_eq!(p.output_stall(now, &not_due), None);
        p.went_live(now - 20_000_000);
        assert_eq!(p.output_stall(now, &f), None);
        p.went_live(0);
        // Not a primary with a standby, not live, finished, or own stall: no failure.
        for g in [
            OutputFacts {
                state: State::PrimaryNoSecondary,
                ..f
            },
            OutputFacts {
                target_live: false,
                ..f
            },
            OutputFacts {
                engine_finished: true,
                ..f
            },
            OutputFacts {
                sending_live: false,
                ..f
            },
        ] {
            assert_eq!(p.output_stall(now, &g), None, "{g:?}");
        }
        p.loop_woke(now - 100_000_000, 30_000_000, 10_000_000);
        assert_eq!(p.output_stall(now, &f), None);
    }

    #[test]
    fn in_step_takes_two_samples_in_a_row_within_the_tolerance() {
        let mut p = p();
        let s = State::SecondarySynchronizing;
        assert_eq!(p.in_step_sample(s, false, 1, 0), None, "no lock yet");
        assert_eq!(p.in_step_sample(s, true, 1, 1_500_000), None);
        assert_eq!(p.in_step_sample(s, true, 2, 3_000_000), None, "resets");
        assert_eq!(p.in_step_sample(s, true, 3, -1_000_000), None);
        assert_eq!(p.in_step_sample(s, true, 4, 500_000), Some(Event::InStep));
        p.synchronising_anew();
        assert_eq!(p.in_step_sample(s, true, 5, 0), None);
        assert_eq!(p.in_step_sample(State::Primary, true, 6, 0), None);
    }

    #[test]
    fn the_lock_is_lost_when_the_primary_runs_ahead_or_far_behind() {
        let mut p = p();
        let s = State::SecondarySynchronized;
        assert_eq!(p.in_step_sample(s, true, 1, -3_000_000), None);
        assert_eq!(p.in_step_sample(s, true, 2, -3_000_000), None);
        assert!(matches!(
            p.in_step_sample(s, true, 3, -3_000_000),
            Some(Event::LockLost { .. })
        ));
        // Behind by more than 2 frames: 25 samples in a row; one good sample resets.
        for i in 0..24 {
            assert_eq!(p.in_step_sample(s, true, i, 81_000_000), None);
        }
        assert_eq!(p.in_step_sample(s, true, 24, 0), None);
        for i in 0..24 {
            assert_eq!(p.in_step_sample(s, true, i, 81_000_000), None);
        }
        assert!(matches!(
            p.in_step_sample(s, true, 99, 81_000_000),
            Some(Event::LockLost { reason }) if reason.contains("datagram 99")
        ));
    }

    #[test]
    fn parameters_are_pushed_to_a_peer_that_synchronises_anew_at_most_every_250_ms() {
        assert!(Policies::push_wanted(
            true,
            true,
            Some(State::SecondarySynchronizing)
        ));
        assert!(!Policies::push_wanted(
            true,
            true,
            Some(State::SecondarySynchronized)
        ));
        assert!(!Policies::push_wanted(false, true, Some(State::Secondary)));
        assert!(!Policies::push_wanted(true, false, Some(State::Secondary)));
        let mut p = p();
        assert!(p.push_now(1_000, true, true));
        assert!(!p.push_now(2_000, true, true));
        assert!(p.push_now(1_000 + 250_000_000, true, true));
        assert!(!p.push_now(u64::MAX / 2, true, false), "no parameters yet");
        assert_eq!(p.next_deadline(0, false, false), u64::MAX);
        assert_eq!(p.next_deadline(0, false, true), 20_000_000);
    }

    #[test]
    fn a_session_ends_complete_or_with_a_stopped_engine() {
        assert_eq!(
            Policies::session_end(true, true, true),
            Some(SessionEnd::Complete)
        );
        assert_eq!(
            Policies::session_end(true, false, true),
            Some(SessionEnd::EngineStopped)
        );
        assert_eq!(Policies::session_end(true, false, false), None);
        assert_eq!(Policies::session_end(false, true, true), None);
    }
}
