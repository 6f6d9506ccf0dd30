//! Scenarios of the simulated pair.

use super::*;
use crate::failover::detector::default_heartbeat;
use std::collections::BTreeSet;

fn period() -> u64 {
    default_heartbeat(FRAME_NS, 3)
}

fn window() -> u64 {
    3 * period()
}

fn ok_no_overlap(sim: &Sim) {
    if sim.overlap_steps > 0 || !sim.resume_conflicts.is_empty() {
        println!("{}", sim.dump());
    }
    assert_eq!(
        sim.overlap_steps, 0,
        "two senders on the live group from {:?}",
        sim.first_overlap
    );
    assert!(
        sim.resume_conflicts.is_empty(),
        "{:?}",
        sim.resume_conflicts
    );
    assert!(
        sim.takeover_conflicts.is_empty(),
        "{:?}",
        sim.takeover_conflicts
    );
}

fn took_over(sim: &Sim) -> bool {
    sim.sending(1)
}

#[test]
fn normal_start_reaches_primary_and_synchronized() {
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    use State as S;
    assert_eq!(
        sim.path(0),
        [
            (S::PrimaryOffline, S::PrimaryNoSecondary),
            (S::PrimaryNoSecondary, S::Primary)
        ]
    );
    assert_eq!(
        sim.path(1),
        [
            (S::SecondaryOffline, S::Secondary),
            (S::Secondary, S::SecondarySynchronizing),
            (S::SecondarySynchronizing, S::SecondarySynchronized)
        ]
    );
    // RFC 5905 offset over a symmetric link: exact (primary's clock minus secondary's).
    assert_eq!(sim.node(1).clock().locked_offset(), Some(-2_345_678));
    assert_eq!(sim.nodes[1].target(), Some(crate::sender::Target::Muted));
    assert_eq!(sim.node(0).machine().owner_epoch(), Some(1));
    assert_eq!(sim.node(1).machine().epoch(), 1);
    sim.run_until(sim.now + 100 * MS);
    assert_eq!(sim.nodes[1].state(), Some(State::SecondarySynchronized));
    ok_no_overlap(&sim);
    // The live output is continuous.
    let idx: Vec<u64> = sim.live_of(0).map(|l| l.2).collect();
    assert!(idx.windows(2).all(|w| w[1] == w[0] + 1));
}

#[test]
fn primary_crash_switches_within_a_frame() {
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    sim.run_until(sim.now + 100 * MS);
    sim.crash(0);
    let t_crash = sim.now;
    assert!(sim.run_until_pred(t_crash + 100 * MS, took_over));
    let takeover = sim.nodes[1].transitions.last().unwrap().clone();
    assert_eq!(takeover.to, State::SecondaryNoPrimary);
    assert_eq!(
        takeover.trigger,
        crate::failover::machine::Trigger::FailureDeclared
    );
    // Detection time = miss x period after the last sign of life (heartbeat or live
    // datagram) arrived, within one simulation step; and so within a third of a frame of the
    // crash.
    let (t_last, _, i_last) = *sim.live_of(0).last().unwrap();
    let last_hb = sim.node(1).detector().last_heartbeat().unwrap();
    let silent_since = last_hb.max(t_last + sim.cfg.live_delay_ns);
    let detection = takeover.at - silent_since;
    assert!(window() <= FRAME_NS / 3);
    assert!(
        detection >= window() && detection <= window() + sim.cfg.step_ns,
        "detection {detection} ns, window {} ns",
        window()
    );
    let from_crash = takeover.at - t_crash;
    assert!(from_crash <= window() + sim.cfg.live_delay_ns + sim.cfg.step_ns);
    sim.run_until(sim.now + 2 * MS);
    // The switch: from the primary's last datagram to the secondary's first, within a frame,
    // and no datagram lost (the takeover resends from the one after the last seen).
    let (t_first, _, i_first) = *sim.live_of(1).next().unwrap();
    assert!(t_first - t_last <= FRAME_NS, "gap {} ns", t_first - t_last);
    assert_eq!(i_first, i_last + 1);
    // The takeover announced epoch 2.
    assert_eq!(sim.node(1).machine().owner_epoch(), Some(2));
    ok_no_overlap(&sim);
    println!(
        "crash: detection {} us after the last sign of life, {} us after the crash, \
         switch gap {} us (frame {} us)",
        detection / US,
        from_crash / US,
        (t_first - t_last) / US,
        FRAME_NS / US
    );
}

fn stall_then_wake(cfg: SimConfig, stall: u64) -> Sim {
    let settle = if cfg.sync_loss > 0.0 {
        600 * MS
    } else {
        200 * MS
    };
    let mut sim = Sim::new(cfg);
    sim.settle_pair();
    sim.run_until(sim.now + 50 * MS);
    let t_freeze = sim.now;
    sim.freeze(0, stall);
    sim.run_until(t_freeze + stall + settle);
    if std::env::var_os("SIM_DUMP").is_some() {
        println!("{}", sim.dump());
    }
    // The stalled primary never sent again after it woke.
    assert!(sim.live_of(0).all(|l| l.0 < t_freeze), "sent after waking");
    // It stepped down and came back as a synchronised secondary; the roles swapped.
    let p0 = sim.path(0);
    assert!(
        p0.iter()
            .any(|&(f, t)| f == State::Primary && t == State::SecondarySynchronizing),
        "{p0:?}"
    );
    assert_eq!(sim.nodes[0].state(), Some(State::SecondarySynchronized));
    assert_eq!(sim.nodes[1].state(), Some(State::Primary));
    ok_no_overlap(&sim);
    sim
}

#[test]
fn primary_stall_then_wake_never_two_on_air() {
    let sim = stall_then_wake(SimConfig::default(), 50 * MS);
    // It learned of the takeover from the messages that waited in its socket.
    let t = sim.nodes[0]
        .transitions
        .iter()
        .find(|t| t.to == State::SecondarySynchronizing)
        .unwrap();
    assert!(
        matches!(
            t.trigger,
            crate::failover::machine::Trigger::HigherEpoch
                | crate::failover::machine::Trigger::PeerOnAir
        ),
        "{t}"
    );
}

#[test]
fn primary_stall_with_lossy_sync_link_never_two_on_air() {
    for seed in 1..=6 {
        stall_then_wake(
            SimConfig {
                sync_loss: 0.5,
                seed,
                ..SimConfig::default()
            },
            30 * MS,
        );
    }
}

#[test]
fn primary_stall_just_over_the_window() {
    // A stall slightly longer than the detection window: the secondary declares just before
    // the primary wakes.
    stall_then_wake(SimConfig::default(), window() + 2 * period());
}

#[test]
fn short_primary_stall_verifies_and_resumes() {
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    sim.run_until(sim.now + 50 * MS);
    let t_freeze = sim.now;
    // Longer than the stall bound (one heartbeat period), shorter than detection.
    sim.freeze(0, period() + MS);
    sim.run_until(t_freeze + 100 * MS);
    let acts: Vec<&Action> = sim.nodes[0]
        .actions
        .iter()
        .filter(|(t, _)| *t >= t_freeze)
        .map(|(_, a)| a)
        .collect();
    assert!(acts.contains(&&Action::ResumeLive), "{acts:?}");
    assert_eq!(sim.nodes[0].state(), Some(State::Primary));
    assert_eq!(sim.nodes[1].state(), Some(State::SecondarySynchronized));
    assert_eq!(sim.live_of(1).count(), 0);
    ok_no_overlap(&sim);
    // A stall below the bound does not even hold.
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    let t_freeze = sim.now;
    sim.freeze(0, MS);
    sim.run_until(t_freeze + 50 * MS);
    assert!(!sim.nodes[0]
        .actions
        .iter()
        .any(|(t, a)| *t >= t_freeze && *a == Action::HoldLive));
    ok_no_overlap(&sim);
}

#[test]
fn primary_stalls_again_while_verifying() {
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    sim.run_until(sim.now + 20 * MS);
    let t_freeze = sim.now;
    sim.freeze(0, period() + MS);
    // Run until it holds and asks, then stall it again for longer than detection.
    assert!(sim.run_until_pred(t_freeze + 10 * MS, |s| matches!(
        s.node(0).machine().live_gate(),
        crate::failover::machine::LiveGate::Held { .. }
    )));
    sim.freeze(0, 30 * MS);
    sim.run_until(sim.now + 200 * MS);
    assert!(sim
        .path(1)
        .contains(&(State::SecondarySynchronized, State::SecondaryNoPrimary)));
    assert_eq!(sim.nodes[0].state(), Some(State::SecondarySynchronized));
    ok_no_overlap(&sim);
}

#[test]
fn secondary_stall_causes_no_false_failover() {
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    sim.run_until(sim.now + 50 * MS);
    let t_freeze = sim.now;
    sim.freeze(1, 40 * MS);
    sim.run_until(t_freeze + 200 * MS);
    assert_eq!(sim.live_of(1).count(), 0, "the secondary never went on air");
    assert!(!sim
        .path(1)
        .iter()
        .any(|&(_, t)| t == State::SecondaryNoPrimary));
    assert_eq!(sim.nodes[1].state(), Some(State::SecondarySynchronized));
    assert_eq!(sim.nodes[0].state(), Some(State::Primary));
    // The primary's output never stopped.
    let idx: Vec<u64> = sim.live_of(0).map(|l| l.2).collect();
    assert!(idx.windows(2).all(|w| w[1] == w[0] + 1));
    ok_no_overlap(&sim);
}

#[test]
fn kernel_failure_notice_switches_without_waiting_for_misses() {
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    sim.run_until(sim.now + 30 * MS);
    let t0 = sim.now;
    sim.report_failure(0, "pacer", "panicked at 'index out of bounds'");
    assert_eq!(sim.nodes[0].state(), Some(State::Failed));
    assert!(!sim.sending(0), "stopped at once");
    assert!(sim.run_until_pred(t0 + 50 * MS, took_over));
    let t = sim.nodes[1].transitions.last().unwrap().clone();
    assert_eq!(t.trigger, crate::failover::machine::Trigger::FailedNotice);
    let switch = t.at - t0;
    assert!(
        switch <= sim.cfg.sync_delay_ns + 2 * sim.cfg.step_ns,
        "switch after {switch} ns"
    );
    assert!(switch < window(), "no waiting for missed heartbeats");
    println!(
        "kernel failure: secondary on air {} us after the failure",
        switch / US
    );
    // The failed primary recovers as a secondary and the roles swap.
    sim.run_until(t0 + 300 * MS);
    assert_eq!(sim.nodes[0].state(), Some(State::SecondarySynchronized));
    assert_eq!(sim.nodes[1].state(), Some(State::Primary));
    ok_no_overlap(&sim);
}

#[test]
fn engine_hang_is_caught_by_the_kernel() {
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    sim.run_until(sim.now + 30 * MS);
    let t0 = sim.now;
    sim.hang_engine(0, true); // heartbeats go on, the output stops
    assert!(sim.run_until_pred(t0 + 50 * MS, took_over));
    let t = sim.nodes[1].transitions.last().unwrap().clone();
    assert_eq!(t.trigger, crate::failover::machine::Trigger::FailedNotice);
    let f = sim.nodes[0]
        .transitions
        .iter()
        .find(|t| t.to == State::Failed)
        .unwrap();
    assert_eq!(f.trigger, crate::failover::machine::Trigger::KernelFailure);
    assert!(t.at - t0 <= 5 * MS + MS, "check-in interval + link");
    println!(
        "engine hang: secondary on air {} us after the hang",
        (t.at - t0) / US
    );
    ok_no_overlap(&sim);
}

#[test]
fn monitor_fail_and_takeover() {
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    sim.monitor(0, MonitorCmd::Fail);
    sim.monitor(1, MonitorCmd::Takeover);
    let t0 = sim.now;
    assert!(sim.run_until_pred(t0 + 10 * MS, took_over));
    assert_eq!(sim.nodes[0].state(), Some(State::Failed));
    assert_eq!(
        sim.nodes[1].transitions.last().unwrap().trigger,
        crate::failover::machine::Trigger::MonitorTakeover
    );
    ok_no_overlap(&sim);
    // A monitor's stop is an operator stop.
    sim.monitor(1, MonitorCmd::Stop);
    sim.run_until(sim.now + MS);
    assert_eq!(sim.nodes[1].state(), Some(State::SecondaryOffline));
    assert!(!sim.sending(1));
}

#[test]
fn monitor_takeover_alone_is_resolved_by_the_epoch() {
    // Documented limit: a monitor that commands a takeover without failing the primary
    // first makes two senders until the primary sees the higher epoch (one link delay).
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    sim.monitor(1, MonitorCmd::Takeover);
    sim.run_until(sim.now + 20 * MS);
    assert!(sim
        .path(1)
        .contains(&(State::SecondarySynchronized, State::SecondaryNoPrimary)));
    let p0 = sim.path(0);
    assert!(
        p0.contains(&(State::Primary, State::SecondarySynchronizing)),
        "{p0:?}"
    );
    let overlap = sim.overlap_steps * sim.cfg.step_ns;
    assert!(
        overlap <= sim.cfg.sync_delay_ns + 2 * sim.cfg.step_ns,
        "{overlap}"
    );
    assert!(sim.resume_conflicts.is_empty());
}

#[test]
fn higher_epoch_step_down_after_partition() {
    // Without live watching, a cut sync link looks like a dead primary (documented limit):
    // the secondary takes over; when the link heals the old primary sees the higher epoch
    // and stops sending first.
    let mut sim = Sim::new(SimConfig {
        live_watch: false,
        ..SimConfig::default()
    });
    sim.settle_pair();
    sim.partition_until = sim.now + 30 * MS;
    let heal = sim.partition_until;
    sim.run_until(heal + 100 * MS);
    assert!(sim
        .path(1)
        .contains(&(State::SecondarySynchronized, State::SecondaryNoPrimary)));
    let stop_at = sim.nodes[0]
        .actions
        .iter()
        .position(|(_, a)| *a == Action::StopLive)
        .expect("old primary stopped");
    let step_down = sim.nodes[0].actions[stop_at..]
        .iter()
        .find_map(|(t, a)| match a {
            Action::Transition(tr) if tr.to == State::SecondarySynchronizing => Some((*t, tr)),
            _ => None,
        })
        .expect("stepped down after stopping");
    assert_eq!(
        step_down.1.trigger,
        crate::failover::machine::Trigger::HigherEpoch
    );
    assert!(step_down.0 <= heal + period() + sim.cfg.sync_delay_ns + 2 * sim.cfg.step_ns);
    println!(
        "partition without live watching: step-down {} us after the heal, {} us of overlap",
        (step_down.0 - heal) / US,
        sim.overlap_steps * sim.cfg.step_ns / US
    );
    assert!(sim.first_overlap.is_some(), "the limit is real");
    assert!(sim.resume_conflicts.is_empty());
    assert_eq!(sim.nodes[0].state(), Some(State::SecondarySynchronized));
    assert_eq!(sim.nodes[1].state(), Some(State::Primary));
}

#[test]
fn partition_with_live_watching_causes_no_failover() {
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    sim.partition_until = sim.now + 30 * MS;
    sim.run_until(sim.partition_until + 100 * MS);
    assert_eq!(sim.live_of(1).count(), 0);
    assert_eq!(sim.nodes[1].state(), Some(State::SecondarySynchronized));
    ok_no_overlap(&sim);
}

#[test]
fn old_primary_returns_as_secondary_and_roles_swap_twice() {
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    sim.crash(0);
    assert!(sim.run_until_pred(sim.now + 50 * MS, took_over));
    sim.run_until(sim.now + 20 * MS);
    sim.boot(0, Role::Secondary);
    let ok = sim.run_until_pred(sim.now + 300 * MS, |s| {
        s.nodes[0].state() == Some(State::SecondarySynchronized)
            && s.nodes[1].state() == Some(State::Primary)
    });
    assert!(ok, "{:?} {:?}", sim.nodes[0].state(), sim.nodes[1].state());
    // Now the other way round.
    sim.crash(1);
    assert!(sim.run_until_pred(sim.now + 50 * MS, |s| s.sending(0)));
    assert_eq!(sim.nodes[0].state(), Some(State::SecondaryNoPrimary));
    assert_eq!(sim.node(0).machine().owner_epoch(), Some(3));
    ok_no_overlap(&sim);
}

#[test]
fn tour_reaches_every_state() {
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    sim.report_failure(0, "pacer", "panic");
    sim.run_until(sim.now + 300 * MS); // recovers, roles swap
    assert_eq!(sim.nodes[1].state(), Some(State::Primary));
    sim.event(
        1,
        Event::Stop {
            by: "operator".into(),
        },
    );
    sim.run_until(sim.now + 20 * MS);
    assert_eq!(sim.nodes[1].state(), Some(State::PrimaryOffline));
    assert_eq!(sim.nodes[0].state(), Some(State::Secondary));
    sim.event(
        0,
        Event::Stop {
            by: "operator".into(),
        },
    );
    let mut seen: BTreeSet<State> = BTreeSet::new();
    for n in &sim.nodes {
        for t in &n.transitions {
            seen.insert(t.from);
            seen.insert(t.to);
        }
    }
    assert_eq!(seen.len(), 9, "{seen:?}");
    ok_no_overlap(&sim);
}

#[test]
fn a_primary_whose_live_path_is_cut_is_replaced_inside_a_frame() {
    // The primary's port on the live network goes down; its sync link stays up, so no
    // heartbeat is ever missed. The live-path rule declares it; the secondary takes over
    // inside a frame; the old primary sees the higher epoch and steps down.
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    let cut = sim.now;
    let last = sim.live_log.last().map(|&(t, n, k)| (t, n, k)).unwrap();
    assert_eq!(last.1, 0);
    sim.live_cut[0] = true;
    let heard = |s: &Sim| s.live_log.iter().any(|&(_, n, _)| n == 1);
    assert!(
        sim.run_until_pred(cut + 10 * FRAME_NS, heard),
        "no takeover"
    );
    let first = *sim.live_log.iter().find(|&&(_, n, _)| n == 1).unwrap();
    let gap = first.0 - last.0;
    assert!(gap < FRAME_NS, "gap {gap} ns >= one frame");
    assert!(
        first.2 <= last.2 + 1,
        "lost {} datagrams",
        first.2 - last.2 - 1
    );
    let t = sim.nodes[1]
        .transitions
        .iter()
        .find(|t| t.to == State::SecondaryNoPrimary)
        .expect("declared");
    assert!(t.detail.contains("live path"), "{}", t.detail);
    sim.run_until(sim.now + 20 * FRAME_NS);
    assert!(!sim.sending(0), "the cut primary stepped down");
    assert!(sim.on_air(1));
    assert_eq!(sim.nodes[1].state(), Some(State::Primary), "{}", sim.dump());
    assert_eq!(sim.nodes[0].state(), Some(State::SecondarySynchronized));
    ok_no_overlap(&sim);
    // Its own ears never heard the new primary on the live group: it must not take the live
    // group back by the same rule (it would go dark again).
    let back = sim.nodes[0]
        .transitions
        .iter()
        .filter(|t| t.to == State::SecondaryNoPrimary)
        .count();
    assert_eq!(back, 0);
}

#[test]
fn without_the_live_path_rule_a_cut_primary_is_not_replaced() {
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    // Same scenario with the rule off: the reason the rule exists.
    for n in sim.nodes.iter_mut() {
        if let Some(node) = n.node.as_mut() {
            node.set_path_rule(false);
        }
    }
    sim.live_cut[0] = true;
    let t0 = sim.now;
    assert!(!sim.run_until_pred(t0 + 10 * FRAME_NS, took_over));
}

#[test]
fn new_owner_failing_while_the_old_one_resynchronises_is_covered() {
    // The primary stalls, the secondary takes over; the woken primary steps down and, before
    // it has resynchronised, the new owner's kernel fails it. The stepped-down server's engine
    // still runs on the session's timeline: it takes the group back (nobody would otherwise).
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    sim.run_until(sim.now + 20 * MS);
    sim.freeze(0, 30 * MS);
    assert!(sim.run_until_pred(sim.now + 100 * MS, |s| {
        s.nodes[0].state() == Some(State::SecondarySynchronizing)
    }));
    assert!(sim.on_air(1));
    let t0 = sim.now;
    sim.report_failure(1, "pacer", "panicked");
    assert_eq!(sim.nodes[1].state(), Some(State::Failed));
    assert!(
        sim.run_until_pred(t0 + FRAME_NS, |s| s.on_air(0)),
        "nobody on air: {}",
        sim.dump()
    );
    let back = sim.nodes[0].transitions.last().unwrap().clone();
    assert_eq!(back.from, State::SecondarySynchronizing);
    assert_eq!(back.to, State::SecondaryNoPrimary);
    // No datagram lost on the way back: it continues after the failed owner's last one.
    let after: Vec<u64> = sim
        .live_log
        .iter()
        .filter(|l| l.0 >= t0.saturating_sub(5 * MS))
        .map(|l| l.2)
        .collect();
    assert!(after.windows(2).all(|w| w[1] <= w[0] + 1), "{after:?}");
    // The failed one recovers behind it.
    sim.run_until(t0 + 400 * MS);
    assert_eq!(sim.nodes[1].state(), Some(State::SecondarySynchronized));
    assert_eq!(sim.nodes[0].state(), Some(State::Primary));
    ok_no_overlap(&sim);
}

#[test]
fn forged_and_replayed_messages_are_never_acted_on() {
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    sim.run_until(sim.now + 20 * MS);
    for k in 0..30 {
        for i in 0..2 {
            sim.forge(i, k);
            sim.replay(i, k * 7);
        }
        sim.run_until(sim.now + MS);
    }
    sim.run_until(sim.now + 50 * MS);
    assert!(sim.accepted_bad.is_empty(), "{:?}", sim.accepted_bad);
    for n in &sim.nodes {
        assert_eq!(n.refused_forged, 30);
        assert!(n.refused_replays >= 30, "{}", n.refused_replays);
    }
    assert_eq!(sim.nodes[0].state(), Some(State::Primary));
    assert_eq!(sim.nodes[1].state(), Some(State::SecondarySynchronized));
    assert_eq!(sim.live_of(1).count(), 0);
    assert!(sim.repeats.is_empty());
    ok_no_overlap(&sim);
}

#[test]
fn a_clock_step_of_the_secondary_loses_the_lock_and_resynchronises() {
    // An NTP step of the secondary's realtime clock: the clock filter (or the in-step
    // policy) sees the jump, the lock is lost, the secondary resynchronises; no failover.
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    sim.run_until(sim.now + 20 * MS);
    sim.step_clock(1, 5 * MS as i64);
    sim.run_until(sim.now + 400 * MS);
    let lost = sim.nodes[1]
        .transitions
        .iter()
        .find(|t| t.trigger == crate::failover::machine::Trigger::LockLost)
        .expect("lock lost");
    assert_eq!(lost.from, State::SecondarySynchronized, "{}", sim.dump());
    assert_eq!(sim.nodes[1].state(), Some(State::SecondarySynchronized));
    assert_eq!(sim.nodes[0].state(), Some(State::Primary));
    assert_eq!(sim.live_of(1).count(), 0);
    ok_no_overlap(&sim);
}

#[test]
fn a_hung_loop_is_failed_by_the_supervisor_and_its_engine_fenced() {
    // The event loop hangs (no heartbeats, no machine) while the sender goes on: the live
    // group is not silent, so no detector declares; the supervisor's loop deadline fails
    // the server, fences its engine and sends the Failed notice itself. Only the fence
    // keeps the engine off the live group once the secondary has taken over.
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    sim.run_until(sim.now + 20 * MS);
    let t0 = sim.now;
    sim.hang_loop(0, 300 * MS);
    assert!(
        sim.run_until_pred(t0 + 200 * MS, took_over),
        "{}",
        sim.dump()
    );
    let t = sim.nodes[1].transitions.last().unwrap().clone();
    assert_eq!(t.trigger, crate::failover::machine::Trigger::FailedNotice);
    assert!(t.at >= t0 + 100 * MS, "{t}");
    sim.run_until(t0 + 600 * MS);
    assert_eq!(sim.nodes[0].state(), Some(State::SecondarySynchronized));
    assert_eq!(sim.nodes[1].state(), Some(State::Primary));
    assert!(sim.repeats.is_empty(), "{:?}", &sim.repeats[..1]);
    ok_no_overlap(&sim);
}
