//! Alarms (sans-IO): conditions an operator must hear about although no state change may
//! show them, raised after a short hold-off and cleared as soon as their cause is gone.
//!
//! - **sync link lost**: nothing from the peer server on the sync link for longer than the
//!   hold-off. With the link down the secondary cannot follow the primary's parameters or
//!   confirm ownership, and the primary no longer knows a standby is there.
//! - **pair unprotected**: no synchronised secondary stands behind the server on air. On
//!   the server on air: its state is `Primary_no_secondary` or `Secondary_no_primary`. On a
//!   standby that has been started: it is not `Secondary_synchronized`, or it is but the
//!   sync link is lost (it could neither take over cleanly nor verify ownership).
//! - **pacer late**: at least [`PACER_LATE_BURST`] sends within one second were decided
//!   more than [`PACER_LATE_BOUND_NS`] after their due time (the machine starves the
//!   sender: receivers with small buffers see the output jitter); cleared after
//!   [`BURST_CLEAR_NS`] without such a burst.
//! - **refused messages**: at least [`REFUSED_BURST`] messages on the sync link or the
//!   control port were refused within one second (a wrong key, a replay, forged or
//!   malformed datagrams: `rejected` in `tandem status` says which); cleared the same way.
//!
//! The driver calls [`Alarms::update`] with the facts at every loop turn and logs, records
//! and publishes the [`AlarmChange`]s; [`Alarms::active`] lists what is raised now.

use super::state::State;

/// An alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Alarm {
    /// Nothing from the peer on the sync link for longer than the hold-off.
    SyncLinkLost,
    /// No synchronised secondary behind the server on air.
    PairUnprotected,
    /// A burst of sends decided far later than their due time.
    PacerLate,
    /// A burst of refused messages on the sync link or control port.
    RefusedMessages,
}

/// A send decided later than this after its due time counts toward the pacer-late alarm
/// (a quarter of a 25 fps frame: beyond the jitter a set-top box's buffer rides out).
pub const PACER_LATE_BOUND_NS: u64 = 10_000_000;
/// Sends over the bound within one second that raise the pacer-late alarm (one late wake of
/// a busy machine is not worth a page; a starved sender is).
pub const PACER_LATE_BURST: u64 = 10;
/// Refused messages within one second that raise the refused-messages alarm.
pub const REFUSED_BURST: u64 = 20;
/// A burst alarm clears after this long without a burst.
pub const BURST_CLEAR_NS: u64 = 10_000_000_000;
/// The window a burst is counted in.
const BURST_WINDOW_NS: u64 = 1_000_000_000;

/// Counts a growing total in one-second windows: hot from a window in which it grew by at
/// least `threshold`, until `BURST_CLEAR_NS` after the last such window. A total that goes
/// down (a counter that started again, as an engine's after a resynchronisation) starts a
/// new window.
#[derive(Debug, Clone, Copy, Default)]
struct Burst {
    /// Start of the current window: (mono ns, total then).
    window: Option<(u64, u64)>,
    /// Hot until (mono ns).
    hot_until: u64,
    /// The growth of the last burst (for the detail).
    last: u64,
}

impl Burst {
    fn update(&mut self, now: u64, total: u64, threshold: u64) -> bool {
        let (t0, c0) = match self.window {
            Some((t0, c0)) if total >= c0 => (t0, c0),
            _ => {
                self.window = Some((now, total));
                (now, total)
            }
        };
        let grown = total - c0;
        if grown >= threshold {
            self.hot_until = now.saturating_add(BURST_CLEAR_NS);
            self.last = grown;
            self.window = Some((now, total));
        } else if now.saturating_sub(t0) >= BURST_WINDOW_NS {
            self.window = Some((now, total));
        }
        now < self.hot_until
    }
}

impl Alarm {
    /// Every alarm.
    pub const ALL: [Alarm; 4] = [
        Alarm::SyncLinkLost,
        Alarm::PairUnprotected,
        Alarm::PacerLate,
        Alarm::RefusedMessages,
    ];

    /// The name used in logs, status and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Alarm::SyncLinkLost => "sync_link_lost",
            Alarm::PairUnprotected => "pair_unprotected",
            Alarm::PacerLate => "pacer_late",
            Alarm::RefusedMessages => "refused_messages",
        }
    }
}

/// The facts the alarms are judged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmFacts {
    /// The server's state.
    pub state: State,
    /// The server was started (an offline server raises nothing).
    pub started: bool,
    /// When the peer was last heard on the sync link (mono ns), if ever.
    pub peer_heard_mono_ns: Option<u64>,
    /// When the server started (mono ns): silence is counted from here at first.
    pub since_mono_ns: u64,
    /// Sends decided more than [`PACER_LATE_BOUND_NS`] late, so far (the running engine's).
    pub late_sends: u64,
    /// Messages refused on the sync link and the control port, so far.
    pub refused: u64,
}

/// A raised or cleared alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmChange {
    /// Which.
    pub alarm: Alarm,
    /// Raised (`true`) or cleared.
    pub raised: bool,
    /// Why, in words (for the log and the event line).
    pub detail: String,
}

/// The alarms' state.
#[derive(Debug, Clone)]
pub struct Alarms {
    hold_off_ns: u64,
    /// Per alarm: since when its condition holds (mono ns), and whether it is raised.
    cond_since: [Option<u64>; Alarm::ALL.len()],
    raised: [bool; Alarm::ALL.len()],
    pacer: Burst,
    refused: Burst,
}

impl Alarms {
    /// Alarms raised once their condition has held for `hold_off_ns` (500 ms by default:
    /// an operator hears of a lost link or a lost standby within a second, while a
    /// takeover's or a start-up's moments without a standby do not page anyone).
    pub fn new(hold_off_ns: u64) -> Alarms {
        Alarms {
            hold_off_ns,
            cond_since: [None; Alarm::ALL.len()],
            raised: [false; Alarm::ALL.len()],
            pacer: Burst::default(),
            refused: Burst::default(),
        }
    }

    /// The alarms raised now.
    pub fn active(&self) -> Vec<Alarm> {
        Alarm::ALL
            .into_iter()
            .filter(|a| self.raised[*a as usize])
            .collect()
    }

    /// Judges the facts at `now` (mono ns); returns what was raised or cleared.
    pub fn update(&mut self, now: u64, f: &AlarmFacts) -> Vec<AlarmChange> {
        let silent = now.saturating_sub(f.peer_heard_mono_ns.unwrap_or(f.since_mono_ns));
        let link_lost = f.started && silent > self.hold_off_ns;
        let unprotected = f.started
            && match f.state {
                State::PrimaryNoSecondary | State::SecondaryNoPrimary => true,
                State::Primary => false,
                State::SecondarySynchronized => link_lost,
                State::Secondary | State::SecondarySynchronizing | State::Failed => true,
                State::PrimaryOffline | State::SecondaryOffline => false,
            };
        // A standby unprotected because the link is lost: the link's silence has counted the
        // hold-off already.
        let by_link = f.started && f.state == State::SecondarySynchronized && link_lost;
        let pacer_late = self.pacer.update(now, f.late_sends, PACER_LATE_BURST);
        let refused = self.refused.update(now, f.refused, REFUSED_BURST);
        let mut out = Vec::new();
        for (alarm, holds, detail) in [
            (
                Alarm::SyncLinkLost,
                link_lost,
                format!(
                    "nothing from the peer on the sync link for {} ms",
                    silent / 1_000_000
                ),
            ),
            (
                Alarm::PairUnprotected,
                unprotected,
                format!(
                    "no synchronised secondary behind the server on air (this server is {})",
                    f.state
                ),
            ),
            (
                Alarm::PacerLate,
                pacer_late,
                format!(
                    "{} sends within a second decided more than {} ms after their due time",
                    self.pacer.last,
                    PACER_LATE_BOUND_NS / 1_000_000
                ),
            ),
            (
                Alarm::RefusedMessages,
                refused,
                format!(
                    "{} messages refused within a second on the sync link or the control port \
                     (see `rejected` in tandem status)",
                    self.refused.last
                ),
            ),
        ] {
            let k = alarm as usize;
            if holds {
                let since = *self.cond_since[k].get_or_insert(now);
                // The link's own silence already counts its hold-off.
                // A burst has been counted over its window already.
                let held = matches!(
                    alarm,
                    Alarm::SyncLinkLost | Alarm::PacerLate | Alarm::RefusedMessages
                ) || (alarm == Alarm::PairUnprotected && by_link)
                    || now - since >= self.hold_off_ns;
                if held && !self.raised[k] {
                    self.raised[k] = true;
                    out.push(AlarmChange {
                        alarm,
                        raised: true,
                        detail,
                    });
                }
            } else {
                self.cond_since[k] = None;
                if self.raised[k] {
                    self.raised[k] = false;
                    out.push(AlarmChange {
                        alarm,
                        raised: false,
                        detail: match alarm {
                            Alarm::SyncLinkLost => {
                                "the peer is heard on the sync link again".into()
                            }
                            Alarm::PairUnprotected => {
                                format!("protected again (this server is {})", f.state)
                            }
                            Alarm::PacerLate => format!(
                                "no burst of late sends for {} s",
                                BURST_CLEAR_NS / 1_000_000_000
                            ),
                            Alarm::RefusedMessages => format!(
                                "no burst of refused messages for {} s",
                                BURST_CLEAR_NS / 1_000_000_000
                            ),
                        },
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn facts(state: State, heard: Option<u64>) -> AlarmFacts {
        AlarmFacts {
            state,
            started: true,
            peer_heard_mono_ns: heard,
            since_mono_ns: 0,
            late_sends: 0,
            refused: 0,
        }
    }

    #[test]
    fn a_burst_of_late_sends_raises_pacer_late_and_it_clears_when_the_sender_keeps_time() {
        let mut a = Alarms::new(500 * MS);
        let p = State::Primary;
        let at = |late: u64, refused: u64, t: u64| AlarmFacts {
            late_sends: late,
            refused,
            ..facts(p, Some(t))
        };
        // A few late sends spread over seconds: no alarm.
        for s in 0..20u64 {
            assert!(a
                .update(s * 1_000 * MS, &at(s / 2, 0, s * 1_000 * MS))
                .is_empty());
        }
        // Ten within a second: raised at once.
        let t = 20_000 * MS;
        let up = a.update(t + 300 * MS, &at(9 + 10, 0, t));
        assert_eq!(up.len(), 1, "{up:?}");
        assert_eq!((up[0].alarm, up[0].raised), (Alarm::PacerLate, true));
        assert!(up[0].detail.starts_with("10 sends"), "{}", up[0].detail);
        // Still raised 9 s later, cleared 10 s after the burst.
        assert!(a
            .update(t + 9_000 * MS, &at(19, 0, t + 9_000 * MS))
            .is_empty());
        assert_eq!(a.active(), [Alarm::PacerLate]);
        let down = a.update(t + 10_400 * MS, &at(19, 0, t + 10_400 * MS));
        assert_eq!((down[0].alarm, down[0].raised), (Alarm::PacerLate, false));
        // A counter that starts again (a new engine) is a new window, not a burst.
        assert!(a
            .update(t + 11_000 * MS, &at(0, 0, t + 11_000 * MS))
            .is_empty());
        // Refused messages: 20 within a second.
        let up = a.update(t + 11_500 * MS, &at(0, 25, t + 11_500 * MS));
        assert_eq!(up.len(), 1, "{up:?}");
        assert_eq!(up[0].alarm, Alarm::RefusedMessages);
        assert_eq!(a.active(), [Alarm::RefusedMessages]);
    }

    #[test]
    fn a_cut_sync_link_raises_both_alarms_within_a_second_and_they_clear_when_it_returns() {
        let mut a = Alarms::new(500 * MS);
        // The secondary: synchronised, the primary heard at 1 s.
        let s = State::SecondarySynchronized;
        assert!(a.update(1_000 * MS, &facts(s, Some(1_000 * MS))).is_empty());
        assert!(a.update(1_400 * MS, &facts(s, Some(1_000 * MS))).is_empty());
        let up = a.update(1_501 * MS, &facts(s, Some(1_000 * MS)));
        assert_eq!(up.len(), 2, "{up:?}");
        assert_eq!((up[0].alarm, up[0].raised), (Alarm::SyncLinkLost, true));
        assert!(up[0].detail.contains("501 ms"), "{}", up[0].detail);
        assert_eq!((up[1].alarm, up[1].raised), (Alarm::PairUnprotected, true));
        assert_eq!(a.active(), [Alarm::SyncLinkLost, Alarm::PairUnprotected]);
        // Raised once only.
        assert!(a.update(2_500 * MS, &facts(s, Some(1_000 * MS))).is_empty());
        // The link returns: both clear at once.
        let down = a.update(3_000 * MS, &facts(s, Some(2_999 * MS)));
        assert_eq!(down.len(), 2);
        assert!(down.iter().all(|c| !c.raised));
        assert!(a.active().is_empty());
    }

    #[test]
    fn the_server_on_air_without_a_standby_is_unprotected_after_the_hold_off() {
        let mut a = Alarms::new(500 * MS);
        let p = State::PrimaryNoSecondary;
        assert!(a.update(0, &facts(p, Some(0))).is_empty());
        assert!(a.update(499 * MS, &facts(p, Some(499 * MS))).is_empty());
        let up = a.update(500 * MS, &facts(p, Some(500 * MS)));
        assert_eq!(up[0].alarm, Alarm::PairUnprotected);
        // A brief moment without a standby does not raise (the condition restarts).
        let mut b = Alarms::new(500 * MS);
        b.update(0, &facts(State::SecondaryNoPrimary, Some(0)));
        b.update(300 * MS, &facts(State::Primary, Some(300 * MS)));
        assert!(b
            .update(700 * MS, &facts(State::SecondaryNoPrimary, Some(700 * MS)))
            .is_empty());
        assert!(b.active().is_empty());
    }

    #[test]
    fn an_offline_or_unstarted_server_raises_nothing() {
        let mut a = Alarms::new(500 * MS);
        let f = AlarmFacts {
            started: false,
            ..facts(State::SecondaryOffline, None)
        };
        assert!(a.update(10_000 * MS, &f).is_empty());
        assert!(a
            .update(
                20_000 * MS,
                &facts(State::PrimaryOffline, Some(20_000 * MS))
            )
            .is_empty());
        assert_eq!(Alarm::PairUnprotected.name(), "pair_unprotected");
    }
}
