//! Unit tests of the machine: every rule of the table taken, every state reached, the
//! table against `docs/states.md` and `docs/failover.md`, invariants under random events.

use super::*;
use crate::failover::detector::{Declaration, Silence};
use proptest::prelude::*;

const MS: u64 = 1_000_000;
const ME: u32 = 1;
const PEER: u32 = 2;

fn config() -> Config {
    Config::new(ME, 2 * MS, 3)
}

/// Checks the invariants the table promises.
pub(crate) fn check_invariants(m: &Machine) {
    let s = m.state();
    assert_eq!(
        m.live_gate() != LiveGate::Off,
        s.on_air(),
        "gate {:?} in {s}",
        m.live_gate()
    );
    if m.sending_muted() {
        assert!(
            s == State::SecondarySynchronized || (s == State::SecondarySynchronizing && m.locked()),
            "muted in {s} (locked {})",
            m.locked()
        );
    }
    if s.sends_muted() {
        assert!(m.sending_muted(), "{s} must send muted");
    }
    if m.is_owner() {
        assert!(matches!(
            m.live_gate(),
            LiveGate::Open
                | LiveGate::Held {
                    purpose: HoldPurpose::Resume,
                    ..
                }
        ));
        assert!(m.owner_epoch() <= Some(m.epoch()));
    }
    if m.sending_live() {
        assert!(m.is_owner(), "sending without an epoch");
    }
    if s == State::Failed {
        assert!(!m.sending_live() && !m.sending_muted());
    }
}

fn decl() -> Declaration {
    Declaration {
        reason: Silence {
            cause: crate::failover::detector::Cause::HeartbeatsMissing,
            missed: 3,
            heartbeat_silent_ns: 6 * MS,
            live_silent_ns: Some(6 * MS),
        },
        last_index: Some(1_000),
        silent_since: 0,
    }
}

/// Feeds events and checks invariants after each.
fn feed(m: &mut Machine, now: u64, events: &[Event]) {
    for e in events {
        m.handle(e.clone(), now);
        check_invariants(m);
    }
}

fn held_nonce(m: &Machine) -> u64 {
    match m.live_gate() {
        LiveGate::Held { nonce, .. } => nonce,
        g => panic!("not held: {g:?}"),
    }
}

fn confirm(m: &mut Machine, now: u64) {
    let nonce = held_nonce(m);
    m.handle(
        Event::OwnershipReply {
            nonce,
            state: State::SecondarySynchronized,
            on_air: false,
            epoch: m.epoch(),
            server: PEER,
        },
        now,
    );
    check_invariants(m);
}

fn peer(state: State, epoch: u64) -> Event {
    Event::PeerStatus {
        state,
        epoch,
        owner: state.on_air(),
        server: PEER,
        last_index: Some(900),
    }
}

/// A machine in `state`, with the rule condition `when` satisfied, built by real events only.
fn reach(state: State, when: Guard) -> Machine {
    let now = 10 * MS;
    let primary = || Machine::new(config(), Role::Primary, 0);
    let secondary = || Machine::new(config(), Role::Secondary, 0);
    let synced = || {
        let mut m = secondary();
        feed(
            &mut m,
            now,
            &[
                Event::Started,
                peer(State::PrimaryNoSecondary, 1),
                Event::ParamsReceived,
                Event::LockAcquired,
                Event::InStep,
            ],
        );
        m
    };
    let mut m = match state {
        State::PrimaryOffline => primary(),
        State::PrimaryNoSecondary | State::Primary => {
            let mut m = primary();
            feed(&mut m, now, &[Event::Started]);
            if when != Guard::LiveHeld || state == State::Primary {
                confirm(&mut m, now);
            }
            if state == State::Primary {
                feed(&mut m, now, &[peer(State::SecondarySynchronized, 1)]);
                if when == Guard::LiveHeld {
                    feed(
                        &mut m,
                        now,
                        &[Event::ResumedAfterStall {
                            stalled_for: 50 * MS,
                        }],
                    );
                }
            }
            m
        }
        State::Failed => {
            let mut m = primary();
            feed(
                &mut m,
                now,
                &[Event::KernelFailure {
                    component: "pacer".into(),
                    why: "missed check-in".into(),
                }],
            );
            m
        }
        State::SecondaryOffline => {
            let mut m = secondary();
            match when {
                Guard::Started => feed(&mut m, now, &[Event::Started]),
                Guard::PrimaryHeard => feed(&mut m, now, &[peer(State::Primary, 1)]),
                _ => {}
            }
            m
        }
        State::Secondary => {
            let mut m = secondary();
            feed(
                &mut m,
                now,
                &[Event::Started, peer(State::PrimaryOffline, 1)],
            );
            m
        }
        State::SecondarySynchronizing => {
            let mut m = secondary();
            feed(
                &mut m,
                now,
                &[
                    Event::Started,
                    peer(State::PrimaryNoSecondary, 1),
                    Event::ParamsReceived,
                ],
            );
            if when == Guard::Locked || when == Guard::EngineRunning {
                feed(&mut m, now, &[Event::LockAcquired]);
            }
            m
        }
        State::SecondarySynchronized => synced(),
        State::SecondaryNoPrimary => {
            let mut m = synced();
            feed(&mut m, now, &[Event::Declared(decl())]);
            if when == Guard::LiveHeld {
                feed(
                    &mut m,
                    now,
                    &[Event::ResumedAfterStall {
                        stalled_for: 50 * MS,
                    }],
                );
            }
            m
        }
    };
    assert_eq!(m.state(), state, "reach({state}, {when:?})");
    m.drain_actions();
    m
}

/// An event that the machine classifies as `trigger` in `m`'s state.
fn event_for(trigger: Trigger, m: &Machine, now: u64) -> Event {
    match trigger {
        Trigger::Started => Event::Started,
        Trigger::AssetRequest => Event::AssetRequest {
            asset: "a.ts".into(),
        },
        Trigger::SecondarySynchronized => peer(State::SecondarySynchronized, m.epoch()),
        Trigger::SecondaryLost => Event::PeerLost { silent_ns: 9 * MS },
        Trigger::KernelFailure => Event::KernelFailure {
            component: "reader".into(),
            why: "EIO".into(),
        },
        Trigger::OutputFailure => Event::OutputFailure(OutputFault::SendError("ENOBUFS".into())),
        Trigger::MonitorFailed => Event::MonitorFailed {
            reason: "operator".into(),
        },
        Trigger::HigherEpoch => Event::EpochSeen {
            epoch: m.epoch() + 1,
            server: PEER,
            on_air: true,
            via: Via::SyncLink,
        },
        Trigger::PeerOnAir => Event::ForeignLive {
            rx_ns: now,
            index: None,
        },
        Trigger::Stall => Event::ResumedAfterStall {
            stalled_for: 30 * MS,
        },
        Trigger::OwnershipConfirmed => Event::OwnershipReply {
            nonce: held_nonce(m),
            state: State::SecondarySynchronized,
            on_air: false,
            epoch: m.epoch(),
            server: PEER,
        },
        Trigger::SyncRequested => Event::SyncRequested,
        Trigger::Restart => Event::Restart,
        Trigger::Recover => Event::Recover,
        Trigger::PrimaryHeard => peer(State::Primary, 0),
        Trigger::ParamsReceived => Event::ParamsReceived,
        Trigger::LockAcquired => Event::LockAcquired,
        Trigger::InStep => Event::InStep,
        Trigger::LockLost => Event::LockLost {
            reason: "clock offset jumped 5 ms".into(),
        },
        Trigger::PrimaryStopped => peer(State::PrimaryOffline, 0),
        Trigger::FailureDeclared => Event::Declared(decl()),
        Trigger::FailedNotice => Event::FailedNotice {
            component: "pacer".into(),
            reason: "missed check-in".into(),
            last_index: Some(1_234),
        },
        Trigger::MonitorTakeover => Event::MonitorTakeover,
        Trigger::Stop => Event::Stop {
            by: "operator".into(),
        },
        Trigger::HandOverRequested => Event::HandOverRequested { at_index: HANDOVER },
        Trigger::HandOverOffered => Event::HandOverOffered {
            at_index: HANDOVER,
            epoch: m.epoch() + 1,
            from: PEER,
        },
        // The peer claims the epoch offered (see `prepare_for`).
        Trigger::HandOverAccepted => Event::EpochSeen {
            epoch: m.epoch() + 1,
            server: PEER,
            on_air: true,
            via: Via::SyncLink,
        },
        Trigger::HandOverReleased => Event::HandOverReleased { index: HANDOVER },
        Trigger::OwnershipQueried => Event::OwnershipQuery {
            nonce: 77,
            from: PEER,
        },
    }
}

/// The hand-over index of the table tests.
const HANDOVER: u64 = 5_000;

/// What a rule's trigger needs to have happened before: an offer (and its acceptance).
fn prepare_for(trigger: Trigger, m: &mut Machine, now: u64) {
    match trigger {
        Trigger::HandOverAccepted => {
            m.handle(Event::HandOverRequested { at_index: HANDOVER }, now);
        }
        Trigger::HandOverReleased => {
            m.handle(Event::HandOverRequested { at_index: HANDOVER }, now);
            let e = event_for(Trigger::HandOverAccepted, m, now);
            m.handle(e, now);
        }
        _ => {}
    }
    m.drain_actions();
}

#[test]
fn every_rule_of_the_table_is_taken() {
    let now = 10 * MS + 1_000;
    for rule in TRANSITIONS {
        let mut m = reach(rule.from, rule.when);
        prepare_for(rule.trigger, &mut m, now);
        let before = m.history().count();
        let e = event_for(rule.trigger, &m, now);
        m.handle(e.clone(), now);
        check_invariants(&m);
        assert_eq!(
            m.state(),
            rule.to,
            "{} --{}--> expected {}, event {e:?}",
            rule.from,
            rule.trigger,
            rule.to
        );
        let actions = m.drain_actions();
        if rule.to != rule.from {
            let t = m.history().last().unwrap();
            assert_eq!(
                (t.from, t.to, t.trigger),
                (rule.from, rule.to, rule.trigger)
            );
            assert_eq!(m.history().count(), before + 1);
            assert!(actions.contains(&Action::Transition(t.clone())));
        } else {
            assert_eq!(m.history().count(), before, "{rule:?}");
            assert!(
                !actions.is_empty(),
                "in-state rule with no effect: {rule:?}"
            );
        }
    }
}

#[test]
fn every_state_is_reached() {
    for s in State::ALL {
        assert_eq!(reach(s, Guard::Always).state(), s);
    }
}

#[test]
fn table_has_no_duplicate_keys_and_known_conditions() {
    for (i, a) in TRANSITIONS.iter().enumerate() {
        for b in &TRANSITIONS[i + 1..] {
            assert!(
                !(a.from == b.from && a.trigger == b.trigger),
                "duplicate rule {a:?}"
            );
        }
        assert!(
            Guard::ALL.contains(&a.when),
            "unknown condition {:?}",
            a.when
        );
        // On-air exits stop the live output first; the two role-only changes keep it.
        if a.from.on_air() && !a.to.on_air() {
            assert_eq!(a.steps.first(), Some(&Step::StopLive), "{a:?}");
        }
    }
}

#[test]
fn transitions_required_by_states_md_exist() {
    use State as S;
    let has = |from: S, to: S| TRANSITIONS.iter().any(|r| r.from == from && r.to == to);
    let required = [
        (S::PrimaryOffline, S::PrimaryNoSecondary),
        (S::PrimaryNoSecondary, S::Primary),
        (S::Primary, S::PrimaryNoSecondary),
        (S::Primary, S::Failed),
        (S::PrimaryNoSecondary, S::Failed),
        (S::Primary, S::SecondarySynchronizing),
        (S::PrimaryNoSecondary, S::SecondarySynchronizing),
        (S::Failed, S::SecondaryOffline),
        (S::Failed, S::SecondarySynchronizing),
        (S::SecondaryOffline, S::Secondary),
        (S::Secondary, S::SecondarySynchronizing),
        (S::SecondarySynchronizing, S::SecondarySynchronized),
        (S::SecondarySynchronized, S::SecondarySynchronizing),
        (S::SecondarySynchronized, S::SecondaryNoPrimary),
        (S::SecondaryNoPrimary, S::Primary),
    ];
    for (f, t) in required {
        assert!(has(f, t), "{f} -> {t} missing");
    }
    // Any state -> its offline state on operator stop.
    for s in State::ALL {
        if s == S::PrimaryOffline || s == S::SecondaryOffline {
            continue;
        }
        let r = table::rule(s, Trigger::Stop).unwrap_or_else(|| panic!("no stop from {s}"));
        assert!(matches!(r.to, S::PrimaryOffline | S::SecondaryOffline));
    }
    // Failed -> Failed by any kind of failure, from the on-air states.
    for s in [S::Primary, S::PrimaryNoSecondary] {
        for t in [
            Trigger::KernelFailure,
            Trigger::OutputFailure,
            Trigger::MonitorFailed,
        ] {
            assert_eq!(table::rule(s, t).map(|r| r.to), Some(S::Failed));
        }
    }
    // The three ways a failure is declared.
    for t in [
        Trigger::FailureDeclared,
        Trigger::FailedNotice,
        Trigger::MonitorTakeover,
    ] {
        assert_eq!(
            table::rule(S::SecondarySynchronized, t).map(|r| r.to),
            Some(S::SecondaryNoPrimary)
        );
    }
}

#[test]
fn failed_never_returns_on_air_by_itself() {
    let now = 20 * MS;
    let all_triggers = TRANSITIONS.iter().map(|r| r.trigger);
    for t in all_triggers {
        let mut m = reach(State::Failed, Guard::Always);
        let e = match t {
            Trigger::OwnershipConfirmed => Event::OwnershipReply {
                nonce: 1,
                state: State::SecondaryOffline,
                on_air: false,
                epoch: 0,
                server: PEER,
            },
            _ => event_for(t, &m, now),
        };
        m.handle(e, now);
        m.handle_timeout(now + 100 * MS);
        check_invariants(&m);
        assert!(!m.sending_live() && !m.state().on_air(), "{t}");
        let expect = match t {
            Trigger::Restart | Trigger::Stop => State::SecondaryOffline,
            Trigger::Recover => State::SecondarySynchronizing,
            _ => State::Failed,
        };
        assert_eq!(m.state(), expect, "{t}");
    }
}

#[test]
fn unlisted_pairs_change_nothing() {
    let now = 20 * MS;
    for s in State::ALL {
        for t in TRANSITIONS.iter().map(|r| r.trigger) {
            if table::rule(s, t).is_some() {
                continue;
            }
            let mut m = reach(s, Guard::Always);
            let gate = m.live_gate();
            let e = match t {
                Trigger::OwnershipConfirmed => Event::OwnershipReply {
                    nonce: 999,
                    state: State::SecondaryOffline,
                    on_air: false,
                    epoch: 0,
                    server: PEER,
                },
                _ => event_for(t, &m, now),
            };
            let before = m.history().count();
            m.handle(e, now);
            check_invariants(&m);
            // The event may mean something else here (a peer's status can be a claim on the
            // live group), but never the unlisted trigger.
            assert!(
                m.history().skip(before).all(|tr| tr.trigger != t),
                "{s} {t}"
            );
            if m.history().count() == before {
                assert_eq!(m.state(), s, "{s} {t}");
                assert_eq!(m.live_gate().is_open(), gate.is_open(), "{s} {t}");
            }
        }
    }
}

#[test]
fn primary_start_verifies_then_claims_epoch() {
    let mut m = Machine::new(config(), Role::Primary, 0);
    assert_eq!(m.poll_timeout(), Some(0));
    m.handle_timeout(0);
    assert_eq!(m.drain_actions(), vec![Action::SendHeartbeat]);
    m.handle(Event::Started, MS);
    let a = m.drain_actions();
    assert_eq!(a[0], Action::SendOwnershipQuery { nonce: 1 });
    assert!(matches!(&a[1], Action::Transition(t) if t.to == State::PrimaryNoSecondary));
    assert!(!m.sending_live(), "silent until verified");
    // Nobody answers: retry each period with a fresh nonce, then start at the timeout (6 ms).
    assert_eq!(m.poll_timeout(), Some(3 * MS));
    m.handle_timeout(3 * MS);
    assert!(m
        .drain_actions()
        .contains(&Action::SendOwnershipQuery { nonce: 2 }));
    m.handle_timeout(5 * MS);
    m.drain_actions();
    m.handle_timeout(7 * MS);
    let a: Vec<Action> = m
        .drain_actions()
        .into_iter()
        .filter(|a| *a != Action::SendHeartbeat)
        .collect();
    assert_eq!(
        &a[..3],
        &[
            Action::StartLive,
            Action::SendTakeover {
                epoch: 1,
                from_index: None
            },
            Action::SendSyncParams
        ]
    );
    assert!(m.sending_live());
    assert_eq!(m.owner_epoch(), Some(1));
}

#[test]
fn primary_start_yields_to_an_owner() {
    let mut m = Machine::new(config(), Role::Primary, 0);
    m.handle(Event::Started, 0);
    m.handle(
        Event::OwnershipReply {
            nonce: 1,
            state: State::SecondaryNoPrimary,
            on_air: true,
            epoch: 4,
            server: 0, // a lower id: the start yields anyway
        },
        MS,
    );
    assert_eq!(m.state(), State::SecondarySynchronizing);
    assert_eq!(m.epoch(), 4);
    let a = m.drain_actions();
    assert!(!a.contains(&Action::StartLive));
    assert!(a.contains(&Action::SendSyncRequest));
    check_invariants(&m);
}

#[test]
fn step_down_stops_live_first() {
    let mut m = reach(State::Primary, Guard::Always);
    let e = m.owner_epoch().unwrap();
    // A lower or equal claim from a lower id does nothing.
    m.handle(
        Event::EpochSeen {
            epoch: e,
            server: 0,
            on_air: true,
            via: Via::LiveGroup,
        },
        0,
    );
    assert_eq!(m.state(), State::Primary);
    // An equal epoch from a higher id wins the tie.
    m.handle(
        Event::EpochSeen {
            epoch: e,
            server: PEER,
            on_air: true,
            via: Via::LiveGroup,
        },
        MS,
    );
    let a = m.drain_actions();
    assert_eq!(a[0], Action::StopLive);
    assert!(matches!(&a[2], Action::Transition(t) if t.to == State::SecondarySynchronizing));
    assert!(!m.sending_live());
}

#[test]
fn a_stepped_down_server_takes_over_when_the_new_owner_fails_before_it_resynchronised() {
    let mut m = reach(State::Primary, Guard::Always);
    let e = m.owner_epoch().unwrap();
    m.handle(
        Event::EpochSeen {
            epoch: e + 1,
            server: PEER,
            on_air: true,
            via: Via::SyncLink,
        },
        MS,
    );
    assert_eq!(m.state(), State::SecondarySynchronizing);
    assert!(!m.locked());
    m.drain_actions();
    // The new owner fails before sending parameters: its engine still runs, so it takes the
    // group back from the datagram after the failed one's last.
    m.handle(
        Event::FailedNotice {
            component: "pacer".into(),
            reason: "panicked".into(),
            last_index: Some(4_321),
        },
        2 * MS,
    );
    check_invariants(&m);
    assert_eq!(m.state(), State::SecondaryNoPrimary);
    let a = m.drain_actions();
    assert!(
        a.iter().any(|x| matches!(
            x,
            Action::SwitchToLive {
                after_index: Some(4_321)
            }
        )),
        "{a:?}"
    );
    // Once resynchronisation restarted its engine (clock sync), a notice no longer applies
    // until the new engine is locked.
    let mut m = reach(State::Primary, Guard::Always);
    let e = m.owner_epoch().unwrap();
    m.handle(
        Event::EpochSeen {
            epoch: e + 1,
            server: PEER,
            on_air: true,
            via: Via::SyncLink,
        },
        MS,
    );
    m.handle(Event::ParamsReceived, 2 * MS);
    assert_eq!(m.state(), State::SecondarySynchronizing);
    m.handle(
        Event::FailedNotice {
            component: "pacer".into(),
            reason: "panicked".into(),
            last_index: Some(4_321),
        },
        3 * MS,
    );
    assert_eq!(m.state(), State::SecondarySynchronizing);
}

#[test]
fn a_fresh_secondary_without_an_engine_ignores_a_failed_notice() {
    let mut m = reach(State::SecondarySynchronizing, Guard::Always);
    assert!(!m.locked());
    m.handle(
        Event::FailedNotice {
            component: "pacer".into(),
            reason: "late".into(),
            last_index: Some(10),
        },
        MS,
    );
    assert_eq!(m.state(), State::SecondarySynchronizing);
    assert!(!m.sending_live());
}

#[test]
fn takeover_claims_next_epoch_and_switches_after_last_index() {
    let mut m = reach(State::SecondarySynchronized, Guard::Always);
    assert_eq!(m.epoch(), 1);
    assert!(m.sending_muted());
    m.handle(
        Event::FailedNotice {
            component: "pacer".into(),
            reason: "late".into(),
            last_index: Some(1_234),
        },
        MS,
    );
    let a = m.drain_actions();
    assert_eq!(
        &a[..2],
        &[
            Action::SwitchToLive {
                after_index: Some(1_234)
            },
            Action::SendTakeover {
                epoch: 2,
                from_index: Some(1_234)
            }
        ]
    );
    assert!(m.sending_live() && !m.sending_muted());
    assert_eq!(m.state(), State::SecondaryNoPrimary);
    // Roles swap when the recovered primary has synchronised behind it.
    m.handle(peer(State::SecondarySynchronized, 2), 2 * MS);
    assert_eq!(m.state(), State::Primary);
    assert_eq!(m.role(), Role::Primary);
}

#[test]
fn stall_holds_then_resumes_or_steps_down() {
    // Resumes when the peer says it is not the owner.
    let mut m = reach(State::Primary, Guard::Always);
    m.handle_timeout(200 * MS); // heartbeat timer very late: a stall
    let a = m.drain_actions();
    assert_eq!(a[0], Action::HoldLive);
    assert!(matches!(a[1], Action::SendOwnershipQuery { .. }));
    assert!(!m.sending_live());
    confirm(&mut m, 201 * MS);
    assert_eq!(m.drain_actions(), vec![Action::ResumeLive]);
    assert!(m.sending_live());
    // Steps down when the peer took over meanwhile.
    let mut m = reach(State::Primary, Guard::Always);
    m.handle(
        Event::ResumedAfterStall {
            stalled_for: 40 * MS,
        },
        50 * MS,
    );
    let nonce = held_nonce(&m);
    m.handle(
        Event::OwnershipReply {
            nonce,
            state: State::SecondaryNoPrimary,
            on_air: true,
            epoch: 2,
            server: PEER,
        },
        51 * MS,
    );
    assert_eq!(m.state(), State::SecondarySynchronizing);
    assert!(!m.sending_live());
    // A short stall (below the bound) does not hold.
    let mut m = reach(State::Primary, Guard::Always);
    m.handle(Event::ResumedAfterStall { stalled_for: MS }, 50 * MS);
    assert!(m.sending_live());
}

#[test]
fn contested_hold_waits_for_the_loser() {
    let mut m = reach(State::SecondaryNoPrimary, Guard::LiveHeld);
    let own = m.owner_epoch().unwrap();
    let nonce = held_nonce(&m);
    m.handle(
        Event::OwnershipReply {
            nonce,
            state: State::PrimaryNoSecondary,
            on_air: true,
            epoch: own - 1,
            server: PEER,
        },
        MS,
    );
    assert!(!m.sending_live(), "waits for the lower claim to step down");
    assert_eq!(m.state(), State::SecondaryNoPrimary);
    // The loser steps down; the next retry's answer confirms.
    m.handle(
        Event::OwnershipReply {
            nonce,
            state: State::SecondarySynchronizing,
            on_air: false,
            epoch: own,
            server: PEER,
        },
        2 * MS,
    );
    assert!(m.sending_live());
    // If the peer still claims it at the timeout, this one yields (never two senders).
    let mut m = reach(State::SecondaryNoPrimary, Guard::LiveHeld);
    let nonce = held_nonce(&m);
    m.handle(
        Event::OwnershipReply {
            nonce,
            state: State::PrimaryNoSecondary,
            on_air: true,
            epoch: 0,
            server: PEER,
        },
        MS,
    );
    let deadline = 10 * MS + m.config().verify_timeout_ns;
    m.handle_timeout(deadline);
    assert_eq!(m.state(), State::SecondarySynchronizing);
}

#[test]
fn ownership_query_is_answered() {
    let mut m = reach(State::Primary, Guard::Always);
    m.handle(
        Event::OwnershipQuery {
            nonce: 77,
            from: PEER,
        },
        MS,
    );
    assert_eq!(
        m.drain_actions(),
        vec![Action::SendOwnershipReply {
            nonce: 77,
            to: PEER,
            state: State::Primary,
            on_air: true,
            epoch: 1
        }]
    );
    let mut m = reach(State::SecondarySynchronized, Guard::Always);
    m.handle(
        Event::OwnershipQuery {
            nonce: 5,
            from: PEER,
        },
        MS,
    );
    assert!(matches!(
        m.drain_actions()[..],
        [Action::SendOwnershipReply { on_air: false, .. }]
    ));
}

#[test]
fn stopped_secondary_ignores_the_primary_until_started() {
    let mut m = Machine::new(config(), Role::Secondary, 0);
    m.handle(peer(State::Primary, 1), 0);
    assert_eq!(m.state(), State::SecondaryOffline);
    m.handle(Event::Started, MS);
    assert_eq!(m.state(), State::Secondary);
    m.handle(
        Event::Stop {
            by: "operator".into(),
        },
        2 * MS,
    );
    assert_eq!(m.state(), State::SecondaryOffline);
    m.handle(peer(State::Primary, 1), 3 * MS);
    assert_eq!(m.state(), State::SecondaryOffline);
    // Parameters to a started offline secondary pass through Secondary.
    m.handle(Event::Started, 4 * MS);
    m.handle(
        Event::Stop {
            by: "operator".into(),
        },
        5 * MS,
    );
    m.handle(Event::Started, 6 * MS);
    let mut m = Machine::new(config(), Role::Secondary, 0);
    m.handle(Event::Started, 0);
    m.handle(Event::ParamsReceived, MS);
    let path: Vec<State> = m.history().map(|t| t.to).collect();
    assert_eq!(path, [State::Secondary, State::SecondarySynchronizing]);
}

#[test]
fn heartbeats_are_periodic() {
    let mut m = Machine::new(config(), Role::Secondary, 0);
    let mut count = 0;
    let mut now = 0;
    while now <= 20 * MS {
        let t = m.poll_timeout().unwrap();
        now = t;
        m.handle_timeout(now);
        count += m
            .drain_actions()
            .iter()
            .filter(|a| **a == Action::SendHeartbeat)
            .count();
    }
    assert_eq!(count, 11 + 1, "0, 2, .., 20 ms and 22 ms");
}

#[test]
fn doc_table_matches_code() {
    let doc = include_str!("../../../docs/failover.md");
    let begin = "<!-- transitions:begin -->\n";
    let end = "<!-- transitions:end -->";
    let start = doc.find(begin).expect("begin marker") + begin.len();
    let stop = doc.find(end).expect("end marker");
    let expected = table::markdown();
    if std::env::var_os("TANDEM_BLESS").is_some() && doc[start..stop] != expected {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/failover.md");
        let new = format!("{}{}{}", &doc[..start], expected, &doc[stop..]);
        std::fs::write(path, new).unwrap();
        return;
    }
    assert_eq!(
        &doc[start..stop],
        expected,
        "docs/failover.md is out of date; run TANDEM_BLESS=1 cargo test --lib doc_table"
    );
}

/// One random input for the property test.
fn arb_event() -> impl Strategy<Value = (u8, u64, u64)> {
    (0u8..30, 0u64..5, 0u64..40)
}

fn make_event(m: &Machine, k: u8, a: u64, now: u64) -> Event {
    let states = State::ALL;
    match k {
        0 => Event::Started,
        1 => Event::AssetRequest { asset: "x".into() },
        2 => Event::Stop { by: "op".into() },
        3..=6 => peer(states[(a as usize * 2 + k as usize) % 9], m.epoch() + a % 3),
        7 => Event::PeerLost { silent_ns: MS },
        8 => Event::SyncRequested,
        9 => Event::ParamsReceived,
        10 => Event::LockAcquired,
        11 => Event::InStep,
        12 => Event::LockLost { reason: "r".into() },
        13 => Event::Declared(decl()),
        14 => Event::FailedNotice {
            component: "c".into(),
            reason: "r".into(),
            last_index: Some(a),
        },
        15 => Event::MonitorTakeover,
        16 => Event::MonitorFailed { reason: "m".into() },
        17 => Event::KernelFailure {
            component: "k".into(),
            why: "w".into(),
        },
        18 => Event::OutputFailure(OutputFault::PacerLate { late_ns: MS }),
        19 => Event::EpochSeen {
            epoch: m.epoch() + a % 3,
            server: (a % 3) as u32,
            on_air: a % 2 == 0,
            via: Via::SyncLink,
        },
        20 => Event::ResumedAfterStall {
            stalled_for: a * MS,
        },
        21 => Event::OwnershipQuery {
            nonce: a,
            from: PEER,
        },
        22 | 23 => {
            let nonce = match m.live_gate() {
                LiveGate::Held { nonce, .. } => nonce,
                _ => a,
            };
            Event::OwnershipReply {
                nonce,
                state: states[a as usize % 9],
                on_air: a % 2 == 1,
                epoch: m.epoch() + a % 2,
                server: PEER,
            }
        }
        24 => Event::ForeignLive {
            rx_ns: now,
            index: None,
        },
        25 => Event::Restart,
        26 => Event::Recover,
        _ => Event::Started,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn invariants_hold_under_random_events(
        primary in any::<bool>(),
        steps in proptest::collection::vec(arb_event(), 1..80),
    ) {
        let role = if primary { Role::Primary } else { Role::Secondary };
        let mut m = Machine::new(config(), role, 0);
        let mut now = 0;
        let mut last_epoch = 0;
        for (k, a, dt) in steps {
            now += dt * MS / 4;
            if let Some(t) = m.poll_timeout() {
                if t <= now {
                    m.handle_timeout(now);
                }
            }
            let e = make_event(&m, k, a, now);
            let was_on_air = m.sending_live();
            let before = m.state();
            m.handle(e, now);
            check_invariants(&m);
            prop_assert!(m.epoch() >= last_epoch, "epochs never go back");
            last_epoch = m.epoch();
            // A server never starts sending without a start verification, a takeover or a
            // confirmed resume.
            let actions = m.drain_actions();
            if !was_on_air && m.sending_live() {
                prop_assert!(actions.iter().any(|a| matches!(
                    a,
                    Action::StartLive | Action::SwitchToLive { .. } | Action::ResumeLive
                )), "went on air without a start, takeover or resume");
            }
            if before == State::Failed {
                prop_assert!(!m.sending_live());
            }
        }
    }
}

#[test]
fn a_starting_peer_is_not_a_claim() {
    // A peer that is verifying before its first start shows an on-air state but does not
    // own the group (header flag clear): no step-down even with a tie it would win.
    let mut m = reach(State::SecondaryNoPrimary, Guard::Always);
    let e = m.owner_epoch().unwrap();
    let status = |owner| Event::PeerStatus {
        state: State::PrimaryNoSecondary,
        epoch: e,
        owner,
        server: 7,
        last_index: None,
    };
    m.handle(status(false), MS);
    assert!(m.sending_live());
    assert_eq!(m.state(), State::SecondaryNoPrimary);
    m.handle(status(true), 2 * MS);
    assert!(!m.sending_live());
    assert_eq!(m.state(), State::SecondarySynchronizing);
}

#[test]
fn a_stale_not_owner_reply_is_ignored() {
    let mut m = reach(State::Primary, Guard::LiveHeld);
    let nonce = held_nonce(&m);
    let fresh = m.config().reply_fresh_ns;
    let reply = Event::OwnershipReply {
        nonce,
        state: State::SecondarySynchronized,
        on_air: false,
        epoch: 1,
        server: PEER,
    };
    // Handled too late after the query (this server stalled meanwhile): not a proof.
    m.handle(reply.clone(), 10 * MS + fresh);
    assert!(!m.sending_live());
    // In time: confirms.
    let mut m = reach(State::Primary, Guard::LiveHeld);
    m.handle(reply, 10 * MS + fresh - 1);
    assert!(m.sending_live());
}

#[test]
fn an_answer_to_an_earlier_retry_counts_while_fresh() {
    let mut m = reach(State::Primary, Guard::LiveHeld);
    let first = held_nonce(&m);
    // A retry (fresh nonce) goes out before the first answer comes back.
    let retry = 10 * MS + m.config().verify_retry_ns;
    m.handle_timeout(retry);
    assert_ne!(held_nonce(&m), first);
    m.handle(
        Event::OwnershipReply {
            nonce: first,
            state: State::SecondarySynchronized,
            on_air: false,
            epoch: 1,
            server: PEER,
        },
        retry + 100_000,
    );
    assert!(m.sending_live());
}

#[test]
fn a_stall_during_verification_restarts_it() {
    let mut m = reach(State::Primary, Guard::LiveHeld);
    let first = held_nonce(&m);
    let deadline = 10 * MS + m.config().verify_timeout_ns;
    // The machine itself was stalled past the timeout: no confirmation, a fresh query.
    m.handle_timeout(deadline + 20 * MS);
    assert!(!m.sending_live());
    let second = held_nonce(&m);
    assert_ne!(first, second);
    assert!(m
        .drain_actions()
        .contains(&Action::SendOwnershipQuery { nonce: second }));
    // The old query's answer is stale (sent before the stall) and ignored.
    m.handle(
        Event::OwnershipReply {
            nonce: first,
            state: State::SecondarySynchronized,
            on_air: false,
            epoch: 1,
            server: PEER,
        },
        deadline + 21 * MS,
    );
    assert!(!m.sending_live());
    // On time, the fresh timeout confirms.
    let mut now = deadline + 20 * MS;
    while !m.sending_live() && now < deadline + 40 * MS {
        now = m.poll_timeout().unwrap();
        m.handle_timeout(now);
    }
    assert!(m.sending_live());
}

#[test]
fn a_planned_hand_over_moves_the_live_group_at_the_offered_index() {
    let now = 10 * MS + 1_000;
    let mut p = reach(State::Primary, Guard::LiveSending);
    let mut s = reach(State::SecondarySynchronized, Guard::Always);
    assert_eq!(p.hand_over_refusal(), None);
    let e0 = p.epoch();
    p.handle(Event::HandOverRequested { at_index: 7_000 }, now);
    let offer = p.drain_actions();
    assert_eq!(
        offer,
        [Action::SendHandOver {
            at_index: 7_000,
            epoch: e0 + 1
        }]
    );
    assert_eq!(
        p.hand_over_refusal().as_deref(),
        Some("a hand-over is already under way")
    );
    // The secondary accepts: it claims the epoch and switches exactly at the index.
    s.handle(
        Event::HandOverOffered {
            at_index: 7_000,
            epoch: e0 + 1,
            from: PEER,
        },
        now,
    );
    assert_eq!(s.state(), State::SecondaryNoPrimary);
    let a = s.drain_actions();
    assert!(
        a.contains(&Action::SwitchToLiveAt { index: 7_000 }),
        "{a:?}"
    );
    assert!(a.contains(&Action::SendTakeover {
        epoch: e0 + 1,
        from_index: Some(6_999)
    }));
    assert!(s.sending_live() && s.is_owner());
    // The claim reaches the primary (message, then heartbeats): no step down, no
    // "secondary lost", the release is scheduled at the index.
    p.handle(
        Event::EpochSeen {
            epoch: e0 + 1,
            server: PEER,
            on_air: true,
            via: Via::SyncLink,
        },
        now,
    );
    assert_eq!(p.drain_actions(), [Action::ReleaseLiveAt { index: 7_000 }]);
    p.handle(
        Event::PeerStatus {
            state: State::SecondaryNoPrimary,
            epoch: e0 + 1,
            owner: true,
            server: PEER,
            last_index: Some(6_990),
        },
        now,
    );
    assert_eq!(p.state(), State::Primary);
    assert!(p.sending_live());
    // A release at another index is not this hand-over's.
    p.handle(Event::HandOverReleased { index: 6_000 }, now);
    assert_eq!(p.state(), State::Primary);
    p.handle(Event::HandOverReleased { index: 7_000 }, now);
    assert_eq!(p.state(), State::SecondarySynchronizing);
    assert!(!p.sending_live() && !p.is_owner());
    let a = p.drain_actions();
    assert_eq!(a.iter().filter(|x| **x == Action::StopLive).count(), 1);
    assert!(a.contains(&Action::SendSyncRequest));
    // Once the old primary reports synchronised, the new owner is the primary.
    s.handle(
        Event::PeerStatus {
            state: State::SecondarySynchronized,
            epoch: e0,
            owner: false,
            server: PEER,
            last_index: Some(7_100),
        },
        now,
    );
    assert_eq!(s.state(), State::Primary);
}

#[test]
fn a_hand_over_is_refused_without_a_synchronised_peer_and_an_unanswered_offer_expires() {
    let now = 10 * MS + 1_000;
    let mut p = reach(State::PrimaryNoSecondary, Guard::LiveSending);
    let why = p.hand_over_refusal().unwrap();
    assert!(why.contains("not the primary"), "{why}");
    p.handle(Event::HandOverRequested { at_index: 9 }, now);
    assert!(p.drain_actions().is_empty());
    let s = reach(State::SecondarySynchronized, Guard::Always);
    assert!(s.hand_over_refusal().is_some());
    let mut p = reach(State::Primary, Guard::LiveSending);
    p.handle(Event::HandOverRequested { at_index: 9_000 }, now);
    p.drain_actions();
    assert!(p.hand_over_refusal().is_some());
    assert!(p.poll_timeout().unwrap() <= now + HAND_OVER_OFFER_NS);
    let mut t = now;
    while t < now + HAND_OVER_OFFER_NS {
        t = (t + MS).min(now + HAND_OVER_OFFER_NS);
        p.handle_timeout(t);
    }
    assert_eq!(p.hand_over_refusal(), None, "the offer expired");
    // A late acceptance of a withdrawn offer is a rival claim again.
    p.drain_actions();
    p.handle(
        Event::EpochSeen {
            epoch: p.epoch() + 1,
            server: PEER,
            on_air: true,
            via: Via::SyncLink,
        },
        now + HAND_OVER_OFFER_NS,
    );
    assert_eq!(p.state(), State::SecondarySynchronizing);
    // An offer for an epoch not above the secondary's is ignored.
    let mut s = reach(State::SecondarySynchronized, Guard::Always);
    s.handle(
        Event::HandOverOffered {
            at_index: 9_000,
            epoch: s.epoch(),
            from: PEER,
        },
        now,
    );
    assert_eq!(s.state(), State::SecondarySynchronized);
}

/// A stall of the primary during its own hand-over: it holds the live output and asks who
/// owns the group; the peer answers that it does, under the offered epoch. That answer is
/// the acceptance, not a rival: the primary resumes (the datagrams before the hand-over
/// index are still its own) with the release armed, and steps down only at the index.
/// Whether the answer or the takeover message comes first, nothing is lost.
/// The server that accepted a hand-over from datagram 7000 stalls before the old owner has
/// released: the old owner's datagrams before 7000 (the hand-over's tail) are expected and
/// prove nothing; one from 7000 on is another owner.
#[test]
fn the_tail_of_a_hand_over_does_not_make_the_taker_step_down() {
    let now = 10 * MS + 1_000;
    let mut s = reach(State::SecondarySynchronized, Guard::Always);
    let e = s.epoch() + 1;
    s.handle(
        Event::HandOverOffered {
            at_index: 7_000,
            epoch: e,
            from: PEER,
        },
        now,
    );
    assert!(s.sending_live() && s.is_owner());
    s.handle(
        Event::ResumedAfterStall {
            stalled_for: 30 * MS,
        },
        now + MS,
    );
    assert!(!s.sending_live(), "held after the stall");
    for i in [6_990, 6_999] {
        s.handle(
            Event::ForeignLive {
                rx_ns: now + 2 * MS,
                index: Some(i),
            },
            now + 2 * MS,
        );
        assert_eq!(s.state(), State::SecondaryNoPrimary, "datagram {i}");
    }
    s.handle(
        Event::ForeignLive {
            rx_ns: now + 3 * MS,
            index: Some(7_000),
        },
        now + 3 * MS,
    );
    assert_eq!(s.state(), State::SecondarySynchronizing, "another owner");
}

/// The taker of a hand-over stalls before the index and asks who owns the live group: the
/// server that handed over answers "on air" with its lower epoch (it still sends the
/// datagrams before the index). That is the hand-over, not a rival: the taker resumes.
#[test]
fn the_taker_of_a_hand_over_is_confirmed_by_the_old_owners_lower_claim() {
    let now = 10 * MS + 1_000;
    let mut s = reach(State::SecondarySynchronized, Guard::Always);
    let old = s.epoch();
    s.handle(
        Event::HandOverOffered {
            at_index: 7_000,
            epoch: old + 1,
            from: PEER,
        },
        now,
    );
    s.handle(
        Event::ResumedAfterStall {
            stalled_for: 30 * MS,
        },
        now + MS,
    );
    assert!(!s.sending_live());
    s.drain_actions();
    s.handle(
        Event::OwnershipReply {
            nonce: held_nonce(&s),
            state: State::Primary,
            on_air: true,
            epoch: old,
            server: PEER,
        },
        now + 2 * MS,
    );
    assert_eq!(s.state(), State::SecondaryNoPrimary);
    assert!(s.sending_live(), "resumed");
    assert!(s.drain_actions().contains(&Action::ResumeLive));
}

/// The peer accepted a hand-over and then gave it up before the index (it stepped down to
/// synchronising): the offering server keeps the live group, its release is cancelled, and
/// a late release report changes nothing.
#[test]
fn a_hand_over_given_up_by_the_peer_cancels_the_release() {
    let now = 10 * MS + 1_000;
    let mut p = reach(State::Primary, Guard::LiveSending);
    let e0 = p.epoch();
    p.handle(Event::HandOverRequested { at_index: 7_000 }, now);
    p.handle(
        Event::EpochSeen {
            epoch: e0 + 1,
            server: PEER,
            on_air: true,
            via: Via::SyncLink,
        },
        now,
    );
    assert!(p
        .drain_actions()
        .contains(&Action::ReleaseLiveAt { index: 7_000 }));
    p.handle(
        Event::PeerStatus {
            state: State::SecondarySynchronizing,
            epoch: e0 + 1,
            owner: false,
            server: PEER,
            last_index: Some(6_900),
        },
        now + MS,
    );
    assert_eq!(p.state(), State::PrimaryNoSecondary);
    let a = p.drain_actions();
    assert!(a.contains(&Action::CancelRelease), "{a:?}");
    assert!(a.contains(&Action::ResumeLive), "{a:?}");
    assert!(p.sending_live() && p.is_owner());
    p.handle(Event::HandOverReleased { index: 7_000 }, now + 2 * MS);
    assert_eq!(p.state(), State::PrimaryNoSecondary);
    assert!(p.sending_live());
}

#[test]
fn a_stall_during_a_hand_over_resumes_up_to_the_offered_index() {
    for accepted_first in [false, true] {
        let now = 10 * MS + 1_000;
        let mut p = reach(State::Primary, Guard::LiveSending);
        let e0 = p.epoch();
        p.handle(Event::HandOverRequested { at_index: 7_000 }, now);
        p.drain_actions();
        let claim = Event::EpochSeen {
            epoch: e0 + 1,
            server: PEER,
            on_air: true,
            via: Via::SyncLink,
        };
        if accepted_first {
            p.handle(claim.clone(), now);
        }
        p.handle(
            Event::ResumedAfterStall {
                stalled_for: 30 * MS,
            },
            now + MS,
        );
        assert!(!p.sending_live(), "held after the stall");
        let a = p.drain_actions();
        assert!(a.contains(&Action::HoldLive), "{a:?}");
        p.handle(
            Event::OwnershipReply {
                nonce: held_nonce(&p),
                state: State::SecondaryNoPrimary,
                on_air: true,
                epoch: e0 + 1,
                server: PEER,
            },
            now + 2 * MS,
        );
        assert_eq!(
            p.state(),
            State::Primary,
            "accepted first: {accepted_first}"
        );
        assert!(p.sending_live());
        let a = p.drain_actions();
        assert!(!a.contains(&Action::StopLive), "{a:?}");
        assert!(a.contains(&Action::ResumeLive), "{a:?}");
        // The release is armed once, whichever message brought the acceptance.
        let releases = a
            .iter()
            .filter(|x| **x == Action::ReleaseLiveAt { index: 7_000 })
            .count();
        assert_eq!(releases, usize::from(!accepted_first), "{a:?}");
        if !accepted_first {
            p.handle(claim, now + 3 * MS);
            assert!(p.drain_actions().is_empty());
        }
        p.handle(Event::HandOverReleased { index: 7_000 }, now + 4 * MS);
        assert_eq!(p.state(), State::SecondarySynchronizing);
    }
}

/// The every-state rows act in every state, whether or not the state has a rule of its
/// own for the trigger: a query is answered with the state and claim, a stop disables
/// and a start enables what the server does with the peer's messages.
#[test]
fn every_state_rules_act_in_every_state() {
    let now = 10 * MS + 1_000;
    for state in State::ALL {
        let mut m = reach(state, Guard::Always);
        m.drain_actions();
        m.handle(event_for(Trigger::OwnershipQueried, &m, now), now);
        let a = m.drain_actions();
        assert_eq!(
            a,
            [Action::SendOwnershipReply {
                nonce: 77,
                to: PEER,
                state,
                on_air: m.is_owner(),
                epoch: m.owner_epoch().unwrap_or(m.epoch()),
            }],
            "{state}"
        );
        m.handle(event_for(Trigger::Stop, &m, now), now);
        assert!(!m.enabled(), "{state}: stopped");
        m.handle(event_for(Trigger::Started, &m, now), now);
        assert!(m.enabled(), "{state}: started");
    }
    for r in IN_EVERY_STATE {
        assert!(
            !r.steps.is_empty()
                && TRANSITIONS
                    .iter()
                    .all(|t| !t.steps.iter().any(|s| r.steps.contains(s))),
            "{}: an every-state step is not also a state row's step",
            r.trigger
        );
    }
}

/// A switchover asked while the primary holds its output for a moment says so (the client
/// asks again); off air it is refused as before.
#[test]
fn a_hand_over_asked_while_held_is_refused_for_a_moment() {
    let p = reach(State::Primary, Guard::LiveHeld);
    assert_eq!(p.hand_over_refusal().as_deref(), Some(super::HELD_REFUSAL));
    let s = reach(State::SecondarySynchronized, Guard::Always);
    assert!(s
        .hand_over_refusal()
        .is_some_and(|r| r.contains("not the primary on air")));
}
