//! The sender on a simulated clock: switches, rewinds, stop and fence, the gate, and a
//! property test of its invariants under random commands and stalls.

use super::*;
use crate::pacing::Fixed;
use proptest::prelude::*;

const ORIGIN: u64 = 1_000_000_000;

fn both() -> SenderConfig {
    SenderConfig {
        has_live: true,
        has_muted: true,
        ..SenderConfig::default()
    }
}

/// A send as the simulated driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sent {
    index: u64,
    target: Target,
    at: u64,
}

/// The simulated driver: runs `s` until `until` (or the end), applying `commands` (at their
/// instants), delaying the wake before datagram `i` by `stall(i)`, answering the gate with
/// `gate`. Returns what went out (skips included, as target off) and every event.
struct Sim {
    now: u64,
    sent: Vec<Sent>,
    events: Vec<SenderEvent>,
    asked: Vec<GateCheck>,
}

fn run(
    s: &mut Sender<Fixed>,
    until: u64,
    mut commands: Vec<(u64, Command)>,
    stall: impl Fn(u64) -> u64,
    gate: impl Fn(&GateCheck) -> bool,
) -> Sim {
    commands.sort_by_key(|c| c.0);
    let mut commands = commands.into_iter().peekable();
    let mut sim = Sim {
        now: ORIGIN,
        sent: vec![],
        events: vec![],
        asked: vec![],
    };
    let mut planned: Option<u64> = None;
    while sim.now < until {
        // Commands due by now; a command cuts a sleep short (the doorbell).
        while let Some(&(at, c)) = commands.peek() {
            if at > sim.now {
                break;
            }
            s.command(c);
            planned = None;
            commands.next();
        }
        if let Some(t) = planned.take() {
            let next_cmd = commands.peek().map_or(u64::MAX, |c| c.0);
            sim.now = if next_cmd < t {
                next_cmd.max(sim.now)
            } else {
                t + stall(s.next_index())
            };
            continue;
        }
        let i = match s.poll(sim.now) {
            Next::Done => break,
            Next::Sleep(t) => {
                assert!(t > sim.now, "sleep into the past");
                let next_cmd = commands.peek().map_or(u64::MAX, |c| c.0);
                sim.now = if next_cmd < t {
                    next_cmd.max(sim.now)
                } else {
                    t + stall(s.next_index())
                };
                continue;
            }
            Next::Due(i) => i,
        };
        let mut p = s.prepare(i, sim.now);
        if let Prepared::AskGate(c) = p {
            sim.asked.push(c);
            s.gate_answer(gate(&c));
            p = s.prepare(i, sim.now);
        }
        let outcome = match p {
            Prepared::Send(t) => {
                sim.sent.push(Sent {
                    index: i,
                    target: t,
                    at: sim.now,
                });
                SendOutcome::Sent
            }
            Prepared::Skip => {
                sim.sent.push(Sent {
                    index: i,
                    target: Target::Off,
                    at: sim.now,
                });
                SendOutcome::Skipped
            }
            Prepared::AskGate(_) => panic!("the gate is asked once per datagram"),
        };
        planned = s.sent(i, sim.now, outcome);
        while let Some(e) = s.poll_event() {
            sim.events.push(e);
        }
    }
    while let Some(e) = s.poll_event() {
        sim.events.push(e);
    }
    sim
}

fn on(sim: &Sim, t: Target) -> Vec<u64> {
    sim.sent
        .iter()
        .filter(|x| x.target == t)
        .map(|x| x.index)
        .collect()
}

#[test]
fn on_time_sends_follow_the_timeline_to_the_chosen_output() {
    let mut s = Sender::new(Fixed(Some(5)), ORIGIN, 0, Target::Muted, both());
    let sim = run(&mut s, u64::MAX, vec![], |_| 0, |_| true);
    let want: Vec<Sent> = (0..5)
        .map(|i| Sent {
            index: i,
            target: Target::Muted,
            at: ORIGIN + i * 1_000_000,
        })
        .collect();
    assert_eq!(sim.sent, want);
    assert_eq!(s.stats().sent_muted, 5);
    assert_eq!(s.stats().first_index, Some(0));
    assert_eq!(s.last().map(|l| l.index), Some(4));
    assert!(sim.events.is_empty());
}

#[test]
fn a_switch_ahead_takes_effect_exactly_at_its_index() {
    let mut s = Sender::new(Fixed(Some(20)), ORIGIN, 0, Target::Muted, both());
    let sim = run(
        &mut s,
        u64::MAX,
        vec![(
            ORIGIN + 1,
            Command::SwitchAt {
                index: 7,
                target: Target::Live,
            },
        )],
        |_| 0,
        |_| true,
    );
    assert_eq!(on(&sim, Target::Muted), (0..7).collect::<Vec<_>>());
    assert_eq!(on(&sim, Target::Live), (7..20).collect::<Vec<_>>());
    assert_eq!(
        sim.events,
        [SenderEvent::Switched {
            index: 7,
            target: Target::Live,
            rewound: 0
        }]
    );
    assert_eq!(s.last_live().map(|l| l.index), Some(19));
}

#[test]
fn a_switch_behind_rewinds_and_catches_up_at_no_more_than_twice_the_rate() {
    let mut s = Sender::new(Fixed(None), ORIGIN, 0, Target::Muted, both());
    // At 20.5 ms datagrams 0..=20 went to muted; live resumes from 10.
    let sim = run(
        &mut s,
        ORIGIN + 60_000_000,
        vec![(
            ORIGIN + 20_500_000,
            Command::SwitchAt {
                index: 10,
                target: Target::Live,
            },
        )],
        |_| 0,
        |_| true,
    );
    let live: Vec<&Sent> = sim
        .sent
        .iter()
        .filter(|x| x.target == Target::Live)
        .collect();
    assert_eq!(live[0].index, 10);
    assert!(live.windows(2).all(|w| w[1].index == w[0].index + 1));
    // The first live datagram goes out at once (a planned catch-up), the rest at >= half
    // the nominal spacing until the timeline is met again, then on time.
    assert_eq!(live[0].at, ORIGIN + 20_500_000);
    assert!(live.windows(2).all(|w| w[1].at - w[0].at >= 500_000));
    let back = live.iter().find(|x| x.at == ORIGIN + x.index * 1_000_000);
    assert!(back.is_some(), "the catch-up meets the timeline again");
    assert_eq!(
        sim.events[0],
        SenderEvent::Switched {
            index: 10,
            target: Target::Live,
            rewound: 11
        }
    );
    assert_eq!(s.stats().pacer.seeks, 1);
    // Catch-up sends are planned, not late wakes.
    assert_eq!(s.stats().pacer.late_wakes, 0);
}

#[test]
fn stop_live_drops_to_the_fallback_and_cancels_a_pending_live_switch() {
    let mut s = Sender::new(Fixed(Some(30)), ORIGIN, 0, Target::Live, both());
    let sim = run(
        &mut s,
        u64::MAX,
        vec![
            (ORIGIN + 4_500_000, Command::StopLive),
            (
                ORIGIN + 5_500_000,
                Command::SwitchAt {
                    index: 20,
                    target: Target::Live,
                },
            ),
            (ORIGIN + 6_500_000, Command::StopLive),
        ],
        |_| 0,
        |_| true,
    );
    assert_eq!(on(&sim, Target::Live), (0..5).collect::<Vec<_>>());
    assert_eq!(on(&sim, Target::Muted), (5..30).collect::<Vec<_>>());

    // With no muted output, live drops to off (nothing sent, time and position kept).
    let cfg = SenderConfig {
        has_muted: false,
        ..both()
    };
    let mut s = Sender::new(Fixed(Some(10)), ORIGIN, 0, Target::Live, cfg);
    let sim = run(
        &mut s,
        u64::MAX,
        vec![(ORIGIN + 2_500_000, Command::StopLive)],
        |_| 0,
        |_| true,
    );
    assert_eq!(on(&sim, Target::Live), [0, 1, 2]);
    assert_eq!(on(&sim, Target::Off), (3..10).collect::<Vec<_>>());
    assert_eq!(s.stats().sent_muted, 0);
}

#[test]
fn the_fence_refuses_live_for_good() {
    let mut s = Sender::new(Fixed(Some(30)), ORIGIN, 0, Target::Live, both());
    let sim = run(
        &mut s,
        u64::MAX,
        vec![
            (ORIGIN + 2_500_000, Command::FenceLive),
            (ORIGIN + 3_500_000, Command::SetTarget(Target::Live)),
            (
                ORIGIN + 4_500_000,
                Command::SwitchAt {
                    index: 2,
                    target: Target::Live,
                },
            ),
        ],
        |_| 0,
        |_| true,
    );
    assert_eq!(on(&sim, Target::Live), [0, 1, 2]);
    assert!(s.fenced());
    assert_eq!(s.check_target(Target::Live), Err(TargetError::Fenced));
    assert_eq!(s.check_target(Target::Muted), Ok(()));
    // A fence seen by the driver right before a live send turns that send to muted.
    let mut s = Sender::new(Fixed(Some(3)), ORIGIN, 0, Target::Live, both());
    assert_eq!(s.poll(ORIGIN), Next::Due(0));
    assert_eq!(s.prepare(0, ORIGIN), Prepared::Send(Target::Live));
    assert_eq!(s.fence_seen(), Target::Muted);
    assert_eq!(s.prepare(0, ORIGIN), Prepared::Send(Target::Muted));
}

#[test]
fn commands_for_missing_outputs_change_nothing() {
    let cfg = SenderConfig {
        has_live: true,
        ..SenderConfig::default()
    };
    let mut s = Sender::new(Fixed(Some(3)), ORIGIN, 0, Target::Off, cfg);
    assert_eq!(
        s.check_target(Target::Muted),
        Err(TargetError::NoOutput(Target::Muted))
    );
    s.command(Command::SetTarget(Target::Muted));
    assert_eq!(s.target(), Target::Off);
    s.command(Command::SwitchAt {
        index: 0,
        target: Target::Muted,
    });
    assert_eq!(s.poll(ORIGIN), Next::Due(0));
    assert_eq!(s.target(), Target::Off);
}

#[test]
fn a_late_live_send_asks_the_gate_once_and_a_refusal_drops_it_to_muted() {
    let cfg = SenderConfig {
        gate_after_ns: Some(5_000_000),
        ..both()
    };
    // 40 datagrams on live with a 20 ms stall before datagram 10; the gate says `ok`.
    let stalled = |ok: bool| {
        let mut s = Sender::new(Fixed(Some(40)), ORIGIN, 0, Target::Live, cfg);
        let sim = run(
            &mut s,
            u64::MAX,
            vec![],
            |i| if i == 10 { 20_000_000 } else { 0 },
            |_| ok,
        );
        (s, sim)
    };
    let (s, sim) = stalled(false);
    assert_eq!(sim.asked.len(), 1);
    let c = sim.asked[0];
    assert_eq!(c.index, 10);
    assert_eq!(c.late_ns, 20_000_000);
    assert_eq!(c.behind_ns, 20_000_000);
    assert_eq!(on(&sim, Target::Live), (0..10).collect::<Vec<_>>());
    assert_eq!(on(&sim, Target::Muted), (10..40).collect::<Vec<_>>());
    assert_eq!(s.stats().gated, 1);
    assert!(sim.events.contains(&SenderEvent::GateClosed {
        index: 10,
        behind_ns: 20_000_000,
        fallback: Target::Muted
    }));

    // The gate says yes: live goes on, the catch-up after the stall asks nothing more
    // (catch-up sends are not late wakes).
    let (s, sim) = stalled(true);
    assert_eq!(sim.asked.len(), 1);
    assert_eq!(on(&sim, Target::Live), (0..40).collect::<Vec<_>>());
    assert_eq!(s.stats().gated, 0);

    // Stalls shorter than the gate's bound ask nothing; muted sends never ask.
    let mut s = Sender::new(Fixed(Some(40)), ORIGIN, 0, Target::Live, cfg);
    let sim = run(&mut s, u64::MAX, vec![], |_| 4_000_000, |_| false);
    assert!(sim.asked.is_empty());
    let mut s = Sender::new(Fixed(Some(40)), ORIGIN, 0, Target::Muted, cfg);
    let sim = run(&mut s, u64::MAX, vec![], |_| 20_000_000, |_| false);
    assert!(sim.asked.is_empty());
}

#[test]
fn after_a_send_the_next_sleep_is_planned_from_the_send_time() {
    let mut s = Sender::new(Fixed(Some(3)), ORIGIN, 0, Target::Muted, both());
    assert_eq!(s.poll(ORIGIN), Next::Due(0));
    assert_eq!(s.prepare(0, ORIGIN), Prepared::Send(Target::Muted));
    assert_eq!(
        s.sent(0, ORIGIN + 10, SendOutcome::Sent),
        Some(ORIGIN + 1_000_000)
    );
    // A send far behind: the next one (also overdue) is held to half a spacing later
    // by the 2x rule; once the rule allows it, no sleep is planned.
    assert_eq!(s.poll(ORIGIN + 5_000_000), Next::Due(1));
    assert_eq!(
        s.sent(1, ORIGIN + 5_000_000, SendOutcome::Sent),
        Some(ORIGIN + 5_500_000)
    );
    assert_eq!(s.poll(ORIGIN + 6_000_000), Next::Due(2));
    assert_eq!(s.sent(2, ORIGIN + 6_000_000, SendOutcome::Sent), None);
    // A long gap is cut to the longest sleep.
    let cfg = SenderConfig {
        max_sleep_ns: 100,
        ..both()
    };
    let mut s = Sender::new(Fixed(Some(3)), ORIGIN, 0, Target::Muted, cfg);
    assert_eq!(s.poll(0), Next::Sleep(100));
}

#[test]
fn failed_sends_are_counted_and_reported() {
    let mut s = Sender::new(Fixed(Some(3)), ORIGIN, 0, Target::Live, both());
    assert_eq!(s.poll(ORIGIN), Next::Due(0));
    let err = SendOutcome::Failed {
        kind: std::io::ErrorKind::Other,
        message: "boom".into(),
    };
    s.sent(0, ORIGIN, err);
    assert_eq!(s.stats().send_errors, 1);
    assert_eq!(s.stats().sent_live, 0);
    assert_eq!(s.last_live(), None);
    assert_eq!(s.last().map(|l| l.index), Some(0));
    assert_eq!(
        s.poll_event(),
        Some(SenderEvent::SendError {
            index: 0,
            target: Target::Live,
            kind: std::io::ErrorKind::Other,
            message: "boom".into()
        })
    );
}

fn command() -> impl Strategy<Value = Command> {
    let target = prop_oneof![Just(Target::Off), Just(Target::Muted), Just(Target::Live)];
    prop_oneof![
        target.clone().prop_map(Command::SetTarget),
        (0u64..80, target).prop_map(|(index, target)| Command::SwitchAt { index, target }),
        Just(Command::StopLive),
        Just(Command::FenceLive),
        (0u64..80).prop_map(|index| Command::ReleaseLiveAt { index }),
    ]
    // (CancelRelease is left out: the invariant below assumes a release given stays.)
}

proptest! {
    /// Under any commands, stalls and gate answers: nothing goes live after the fence;
    /// every datagram is sent at or after its due time; consecutive sends on one output
    /// are at least half a spacing apart (the 2x rule); on each output the indices only
    /// go back where a switch rewound; nothing at or past a release index goes live once
    /// the release was given; and the counters add up.
    #[test]
    fn invariants_hold_under_random_commands(
        cmds in proptest::collection::vec((0u64..60_000_000, command()), 0..12),
        stalls in proptest::collection::vec(0u64..30_000_000, 64),
        gate_ok in any::<bool>(),
    ) {
        let cfg = SenderConfig { gate_after_ns: Some(3_000_000), ..both() };
        let mut s = Sender::new(Fixed(Some(100)), ORIGIN, 0, Target::Muted, cfg);
        let fence_at = cmds.iter().filter(|c| c.1 == Command::FenceLive).map(|c| ORIGIN + c.0).min();
        // The last release given (a later one replaces it) and when.
        let release = cmds.iter().filter_map(|c| match c.1 {
            Command::ReleaseLiveAt { index } => Some((ORIGIN + c.0, index)),
            _ => None,
        }).max_by_key(|r| r.0);
        let cmds: Vec<(u64, Command)> = cmds.into_iter().map(|(t, c)| (ORIGIN + t, c)).collect();
        let sim = run(&mut s, ORIGIN + 200_000_000, cmds, |i| stalls[(i % 64) as usize], |_| gate_ok);
        let rewinds = sim.events.iter().filter(|e| matches!(e, SenderEvent::Switched { rewound, .. } if *rewound > 0)).count();
        let mut back_steps = 0;
        for w in sim.sent.windows(2) {
            prop_assert!(w[1].at >= w[0].at);
            if w[1].index <= w[0].index {
                back_steps += 1;
            }
        }
        prop_assert!(back_steps <= rewinds, "indices went back without a rewind");
        for x in &sim.sent {
            prop_assert!(x.at >= ORIGIN + x.index * 1_000_000, "sent before due: {x:?}");
            if let Some((given, index)) = release {
                prop_assert!(!(x.target == Target::Live && x.at > given && x.index >= index), "live past the release: {x:?}");
            }
            if let Some(f) = fence_at {
                prop_assert!(!(x.target == Target::Live && x.at > f), "live after the fence: {x:?}");
            }
        }
        for t in [Target::Muted, Target::Live] {
            let on: Vec<&Sent> = sim.sent.iter().filter(|x| x.target == t).collect();
            for w in on.windows(2) {
                prop_assert!(w[1].at - w[0].at >= 500_000, "2x rule broken on {t:?}: {w:?}");
            }
        }
        let st = s.stats();
        prop_assert_eq!(st.sent_live as usize, on(&sim, Target::Live).len());
        prop_assert_eq!(st.sent_muted as usize, on(&sim, Target::Muted).len());
        prop_assert_eq!(st.pacer.sent as usize, sim.sent.len());
        if !gate_ok {
            prop_assert_eq!(st.gated as usize, sim.asked.len());
        }
    }
}

/// A hand-over's release bounds live output for good: a hold (stop) and a resume that
/// rewinds to the datagram after the last live one still end live output at the release
/// index, and the release is reported once. (Datagrams 1 ms apart; the resume comes at
/// 12.5 ms, rewinding to 5, with the release at 10.)
#[test]
fn a_release_bounds_live_output_whatever_is_asked_later() {
    let mut s = Sender::new(Fixed(Some(20)), ORIGIN, 0, Target::Live, both());
    let sim = run(
        &mut s,
        u64::MAX,
        vec![
            (ORIGIN + 2_500_000, Command::ReleaseLiveAt { index: 10 }),
            (ORIGIN + 4_500_000, Command::StopLive),
            (
                ORIGIN + 12_500_000,
                Command::SwitchAt {
                    index: 5,
                    target: Target::Live,
                },
            ),
            (ORIGIN + 15_500_000, Command::SetTarget(Target::Live)),
        ],
        |_| 0,
        |_| true,
    );
    let live = on(&sim, Target::Live);
    assert_eq!(live, (0..10).collect::<Vec<_>>(), "{:?}", sim.sent);
    let released: Vec<_> = sim
        .events
        .iter()
        .filter(|e| matches!(e, SenderEvent::Released { .. }))
        .collect();
    assert_eq!(released, [&SenderEvent::Released { index: 10 }]);
    assert_eq!(s.target(), Target::Muted);
}

/// A cancelled release bounds nothing: live output goes on through the index. (Datagrams
/// 1 ms apart over 20; the release at 10 is given at 2.5 ms and cancelled at 6.5 ms.)
#[test]
fn a_cancelled_release_leaves_live_output_on() {
    let mut s = Sender::new(Fixed(Some(20)), ORIGIN, 0, Target::Live, both());
    let sim = run(
        &mut s,
        u64::MAX,
        vec![
            (ORIGIN + 2_500_000, Command::ReleaseLiveAt { index: 10 }),
            (ORIGIN + 6_500_000, Command::CancelRelease),
        ],
        |_| 0,
        |_| true,
    );
    assert_eq!(on(&sim, Target::Live), (0..20).collect::<Vec<_>>());
    assert!(!sim
        .events
        .iter()
        .any(|e| matches!(e, SenderEvent::Released { .. })));
}
