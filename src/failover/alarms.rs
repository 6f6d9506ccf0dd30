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
}

impl Alarm {
    /// Every alarm.
    pub const ALL: [Alarm; 2] = [Alarm::SyncLinkLost, Alarm::PairUnprotected];

    /// The name used in logs, status and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Alarm::SyncLinkLost => "sync_link_lost",
            Alarm::PairUnprotected => "pair_unprotected",
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
    cond_since: [Option<u64>; 2],
    raised: [bool; 2],
}

impl Alarms {
    /// Alarms raised once their condition has held for `hold_off_ns` (500 ms by default:
    /// an operator hears of a lost link or a lost standby within a second, while a
    /// takeover's or a start-up's moments without a standby do not page anyone).
    pub fn new(hold_off_ns: u64) -> Alarms {
        Alarms {
            hold_off_ns,
            cond_since: [None; 2],
            raised: [false; 2],
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
        ] {
            let k = alarm as usize;
            if holds {
                let since = *self.cond_since[k].get_or_insert(now);
                // The link's own silence already counts its hold-off.
                let held = alarm == Alarm::SyncLinkLost
                    || (alarm == Alarm::PairUnprotected && by_link)
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
        }
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
