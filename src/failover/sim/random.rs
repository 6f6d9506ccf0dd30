//! The seeded random explorer: fault schedules over the simulated pair, with the invariants
//! checked at every step (the sim records every breach with its instant; the explorer reads
//! them after every fault interval and stops there), inside
//! the documented assumptions (a key; one-way sync delay well below a heartbeat period; the
//! sync link and the live watch not both lost; single faults: the server on air fails only
//! while the other stands by synchronised) and outside them, where each documented limit
//! (docs/failover.md, "Limits") is counted as an outcome.
//!
//! `SIM_SEEDS=N` runs N schedules inside the assumptions (default 40) and N/8 per profile
//! outside (at least 2); `SIM_FIRST` is the first seed; `SIM_REPLAY=SEED[:PROFILE]` replays
//! one schedule with its fault log and the transitions (`cargo test --lib replay_one --
//! --nocapture`).

use super::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What a schedule runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Profile {
    /// Within the documented assumptions: the invariants must hold.
    Inside,
    /// Sync-link cuts without live watching.
    CutNoWatch,
    /// Heavy loss on both paths (85 % live, 30 % sync).
    HeavyLoss,
    /// Monitor takeovers without a `Fail` to the primary first.
    MonitorAlone,
    /// One-way broken sync link (messages to the server on air lost) with its stalls.
    OneWay,
    /// One-way sync delay of 2-6 ms (beyond a heartbeat period).
    SlowLink,
    /// Both servers started as primary at the same instant.
    TwinPrimaries,
    /// The server on air fails while the other is not synchronised.
    NoStandby,
    /// The standby's own live port goes down (it hears nothing, sends into a dead port).
    OwnPortDown,
    /// Loss on the live watch alone (20 %), with crashes: the seamless switch may repeat.
    LossyLiveWatch,
    /// Realtime clock steps of either server (not a documented limit: a finding, see
    /// `a_clock_step_of_the_server_on_air_leaves_no_standby`).
    ClockStep,
}

const OUTSIDE: [Profile; 10] = [
    Profile::CutNoWatch,
    Profile::HeavyLoss,
    Profile::MonitorAlone,
    Profile::OneWay,
    Profile::SlowLink,
    Profile::TwinPrimaries,
    Profile::NoStandby,
    Profile::OwnPortDown,
    Profile::LossyLiveWatch,
    Profile::ClockStep,
];

impl Profile {
    fn parse(s: &str) -> Option<Profile> {
        std::iter::once(Profile::Inside)
            .chain(OUTSIDE)
            .find(|p| format!("{p:?}").eq_ignore_ascii_case(s))
    }

    /// The documented limit this profile measures.
    fn limit(self) -> &'static str {
        match self {
            Profile::Inside => "(none: invariants hold)",
            Profile::CutNoWatch => "a cut sync link without live watching",
            Profile::HeavyLoss => "heavy loss on both paths",
            Profile::MonitorAlone => "a monitor's Takeover without a Fail first",
            Profile::OneWay => "holding can last (one-way broken link)",
            Profile::SlowLink => "link delay beyond the freshness assumption",
            Profile::TwinPrimaries => "two servers started as primary at once",
            Profile::NoStandby => "no election without a synchronised secondary",
            Profile::OwnPortDown => "the secondary's own live port down",
            Profile::LossyLiveWatch => "lost live datagrams at the seamless switch",
            Profile::ClockStep => "(finding) a realtime clock step",
        }
    }

    fn config(self, seed: u64) -> SimConfig {
        let base = SimConfig {
            seed,
            sender_first: 0.5,
            ..SimConfig::default()
        };
        match self {
            Profile::CutNoWatch => SimConfig {
                live_watch: false,
                ..base
            },
            Profile::HeavyLoss => SimConfig {
                sync_loss: 0.3,
                live_loss: 0.85,
                ..base
            },
            Profile::SlowLink => SimConfig {
                sync_delay_ns: 2 * MS,
                sync_jitter_ns: 4 * MS,
                ..base
            },
            Profile::LossyLiveWatch => SimConfig {
                live_loss: 0.2,
                ..base
            },
            _ => base,
        }
    }
}

/// One fault of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The whole process stops (SIGSTOP, a VM pause) for this long.
    Freeze { node: usize, us: u64 },
    /// kill -9; restarted as a secondary this long after.
    Crash { node: usize, restart_us: u64 },
    /// A caught panic of the engine (kernel failure).
    Fail { node: usize },
    /// The engine's sender hangs (the loop goes on): the kernel catches it.
    Hang { node: usize },
    /// An operator restarts a running server as a secondary.
    Restart { node: usize },
    /// Random loss on the sync link for a while.
    SyncLoss { pct: u32, us: u64 },
    /// Extra one-way delay with jitter (reordering) on the sync link for a while.
    SyncDelay {
        delay_us: u64,
        jitter_us: u64,
        us: u64,
    },
    /// The sync link is cut both ways.
    Partition { us: u64 },
    /// Messages to `node` are lost (one-way break).
    OneWayCut { node: usize, us: u64 },
    /// The node's port on the live network is down.
    LiveCut { node: usize, us: u64 },
    /// The node's realtime clock steps.
    ClockStep { node: usize, us: i64 },
    /// Forged messages (wrong key) to the node.
    Forge { node: usize, kind: u64 },
    /// Old authentic messages replayed to the node.
    Replay { node: usize, count: u64 },
    /// A monitor commands a takeover to the node (no `Fail` to the other first).
    MonitorTakeover { node: usize },
    /// The event loop hangs (the sender goes on): the supervisor fails the server.
    LoopHang { node: usize, us: u64 },
}

/// What a schedule did and what happened.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub applied: Vec<(u64, Fault)>,
    pub skipped: u32,
    pub steps: u64,
    pub takeovers: u32,
    /// Invariant breaches (fatal inside the assumptions; the unconditional ones anywhere).
    pub breaches: Vec<String>,
    pub overlap_ns: u64,
    pub max_overlap_ns: u64,
    pub resume_conflicts: usize,
    pub repeats: usize,
    pub lost: u64,
    pub dark_ns: u64,
    pub settled: bool,
    pub max_hold_ns: u64,
    pub refused: u64,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// The server on air, if it reaches the group and the other one stands by synchronised.
fn standby_pair(sim: &Sim) -> Option<usize> {
    (0..2)
        .find(|&i| sim.on_air(i))
        .filter(|&i| sim.nodes[1 - i].state() == Some(State::SecondarySynchronized))
}

/// Draws the next fault for `profile`; `None` when the state does not allow one now.
fn draw(rng: &mut Rng, profile: Profile, sim: &Sim) -> Option<Fault> {
    let any = rng.below(2) as usize;
    let pair = standby_pair(sim);
    let on_air = (0..2).find(|&i| sim.sending(i));
    let f = match (profile, rng.below(20)) {
        (Profile::MonitorAlone, 0..=5) => Fault::MonitorTakeover { node: 1 - pair? },
        (Profile::OneWay, 0..=9) => {
            let p = on_air?;
            // Its own stall first, then nothing reaches it for a while.
            return Some(Fault::OneWayCut {
                node: p,
                us: 5_000 + rng.below(60_000),
            });
        }
        (Profile::NoStandby, 0..=5) => {
            let p = on_air?;
            if sim.nodes[1 - p].state() == Some(State::SecondarySynchronized) {
                // Make the standby leave first: crash it, then the one on air.
                Fault::Crash {
                    node: 1 - p,
                    restart_us: 150_000 + rng.below(100_000),
                }
            } else {
                Fault::Fail { node: p }
            }
        }
        (Profile::OwnPortDown, 0..=4) => Fault::LiveCut {
            node: 1 - pair?,
            us: 10_000 + rng.below(80_000),
        },
        (Profile::CutNoWatch, 0..=5) => Fault::Partition {
            us: 5_000 + rng.below(40_000),
        },
        (_, 0..=6) => Fault::Freeze {
            node: any,
            us: match rng.below(3) {
                0 => 200 + rng.below(2_000),
                1 => 2_000 + rng.below(8_000),
                _ => 10_000 + rng.below(60_000),
            },
        },
        (_, 7) => {
            // The one on air only while the other stands by.
            let node = if rng.below(2) == 0 {
                pair?
            } else {
                1 - on_air?
            };
            Fault::Crash {
                node,
                restart_us: 20_000 + rng.below(60_000),
            }
        }
        (_, 8) => Fault::Fail { node: pair? },
        (_, 9) => Fault::Hang { node: pair? },
        (_, 10) => Fault::Restart {
            node: if rng.below(2) == 0 {
                pair?
            } else {
                1 - on_air?
            },
        },
        (_, 11) => Fault::SyncLoss {
            pct: 5 + rng.below(46) as u32,
            us: 10_000 + rng.below(100_000),
        },
        (_, 12) => Fault::SyncDelay {
            delay_us: 100 + rng.below(500),
            jitter_us: rng.below(400),
            us: 10_000 + rng.below(100_000),
        },
        // The sync link and the live watch never both lost: no cut of the sync link while
        // a live port is down, no live-port cut while the sync link is cut or the node's
        // loop (its heartbeats) hangs.
        (_, 13)
            if sim.cfg.live_watch && sim.cfg.live_loss == 0.0 && !sim.live_cut.contains(&true) =>
        {
            Fault::Partition {
                us: 5_000 + rng.below(60_000),
            }
        }
        (_, 14) if sim.now >= sim.partition_until => {
            let node = pair?;
            if sim.nodes[node].loop_hung.is_some() {
                return None;
            }
            Fault::LiveCut {
                node,
                us: 5_000 + rng.below(40_000),
            }
        }
        // Only in their own profile: a server whose clock stepped after it stamped its
        // parameters publishes a stale timeline once on air (the finding above).
        (Profile::ClockStep, 13..=16) => Fault::ClockStep {
            node: any,
            us: (rng.below(40_000) as i64 - 20_000).max(-20_000),
        },
        (_, 16) => Fault::Forge {
            node: any,
            kind: rng.next(),
        },
        (_, 17) => Fault::Replay {
            node: any,
            count: 1 + rng.below(20),
        },
        // (Inside only: a hung loop hears no higher epoch until the supervisor fences it,
        // which would blur what each limit's profile measures.)
        (Profile::Inside, 18) => {
            let node = pair?;
            if sim.live_cut[node] {
                return None;
            }
            Fault::LoopHang {
                node,
                us: 120_000 + rng.below(200_000),
            }
        }
        _ => return None,
    };
    Some(f)
}

/// Timed conditions in force and when they end.
#[derive(Debug, Default)]
struct Timers {
    sync_loss_until: u64,
    delay_until: u64,
    live_cut_until: [u64; 2],
    restart: Vec<(u64, usize)>,
}

fn apply(sim: &mut Sim, f: Fault, t: &mut Timers, rng: &mut Rng, base: SimConfig) {
    let now = sim.now;
    match f {
        Fault::Freeze { node, us } => sim.freeze(node, us * US),
        Fault::Crash { node, restart_us } => {
            sim.crash(node);
            t.restart.push((now + restart_us * US, node));
        }
        Fault::Fail { node } => sim.report_failure(node, "pacer", "panicked"),
        Fault::Hang { node } => sim.hang_engine(node, true),
        Fault::Restart { node } => {
            sim.crash(node);
            sim.boot(node, Role::Secondary);
        }
        Fault::SyncLoss { pct, us } => {
            sim.cfg.sync_loss = base.sync_loss.max(pct as f64 / 100.0);
            t.sync_loss_until = now + us * US;
        }
        Fault::SyncDelay {
            delay_us,
            jitter_us,
            us,
        } => {
            sim.cfg.sync_delay_ns = base.sync_delay_ns.max(delay_us * US);
            sim.cfg.sync_jitter_ns = base.sync_jitter_ns.max(jitter_us * US);
            t.delay_until = now + us * US;
        }
        Fault::Partition { us } => sim.partition_until = sim.partition_until.max(now + us * US),
        Fault::OneWayCut { node, us } => {
            sim.cut_to[node] = sim.cut_to[node].max(now + us * US);
            // A stall of the server that no longer hears its peer makes it verify.
            sim.freeze(node, 2 * MS + rng.below(30 * MS));
        }
        Fault::LiveCut { node, us } => {
            sim.live_cut[node] = true;
            t.live_cut_until[node] = t.live_cut_until[node].max(now + us * US);
        }
        Fault::ClockStep { node, us } => sim.step_clock(node, us * US as i64),
        Fault::Forge { node, kind } => {
            for k in 0..3 {
                sim.forge(node, kind.wrapping_add(k));
            }
        }
        Fault::Replay { node, count } => {
            for _ in 0..count {
                let pick = rng.next();
                sim.replay(node, pick);
            }
        }
        Fault::MonitorTakeover { node } => sim.monitor(node, MonitorCmd::Takeover),
        Fault::LoopHang { node, us } => sim.hang_loop(node, us * US),
    }
}

fn expire(sim: &mut Sim, t: &mut Timers, base: SimConfig) {
    let now = sim.now;
    if now >= t.sync_loss_until {
        sim.cfg.sync_loss = base.sync_loss;
    }
    if now >= t.delay_until {
        sim.cfg.sync_delay_ns = base.sync_delay_ns;
        sim.cfg.sync_jitter_ns = base.sync_jitter_ns;
    }
    for i in 0..2 {
        if sim.live_cut[i] && now >= t.live_cut_until[i] {
            sim.live_cut[i] = false;
        }
    }
    let due: Vec<usize> = t
        .restart
        .iter()
        .filter(|r| r.0 <= now)
        .map(|r| r.1)
        .collect();
    t.restart.retain(|r| r.0 > now);
    for i in due {
        if sim.nodes[i].node.is_none() {
            sim.boot(i, Role::Secondary);
        }
    }
}

/// The invariants that hold anywhere: no live send after a stall before ownership was
/// confirmed, a failed server never on air by itself, no forged or replayed message acted
/// on, the machines' own invariants.
fn unconditional(sim: &Sim, out: &mut Outcome) {
    for f in sim
        .unverified_sends
        .iter()
        .chain(&sim.failed_on_air)
        .chain(&sim.accepted_bad)
        .chain(&sim.machine_breaches)
    {
        out.breaches
            .push(format!("{} us node {}: {}", f.at / US, f.node, f.what));
    }
    for (i, n) in sim.nodes.iter().enumerate() {
        for t in &n.transitions {
            if t.from == State::Failed && t.to.on_air() {
                out.breaches.push(format!(
                    "{} us node {i}: back on air from Failed",
                    t.at / US
                ));
            }
        }
        if let Some(node) = &n.node {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                crate::failover::machine::tests::check_invariants(node.machine())
            }));
            if r.is_err() {
                out.breaches
                    .push(format!("{} us node {i}: machine invariant", sim.now / US));
            }
        }
    }
}

/// Inside the assumptions also: one sender at a time, no start/resume/takeover beside
/// another, and the live group carries every index at most once and in order.
fn inside(sim: &Sim, out: &mut Outcome) {
    if sim.overlap_steps > 0 {
        out.breaches.push(format!(
            "two senders on the live group from {} us",
            sim.first_overlap.unwrap_or(0) / US
        ));
    }
    for (t, i) in &sim.resume_conflicts {
        out.breaches.push(format!(
            "{} us node {i}: started or resumed beside another sender",
            t / US
        ));
    }
    for (t, i) in &sim.takeover_conflicts {
        out.breaches.push(format!(
            "{} us node {i}: took over beside another sender",
            t / US
        ));
    }
    if let Some((t, i, k, l)) = sim.repeats.first() {
        out.breaches.push(format!(
            "{} us node {i}: live group carried {k} after {l} ({} repeats in all)",
            t / US,
            sim.repeats.len()
        ));
    }
}

/// Runs one schedule: settle, about a second of faults, then a quiet period (faults healed,
/// servers left failed restarted by an operator) after which one server must be on air and
/// the other synchronised.
pub fn run(seed: u64, profile: Profile) -> (Sim, Outcome) {
    let base = profile.config(seed);
    let mut rng = Rng::new(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xA5A5 ^ profile as u64);
    let mut sim = Sim::new(base);
    if profile == Profile::TwinPrimaries {
        sim.boot(1, Role::Primary);
    }
    let mut out = Outcome::default();
    let settled = sim.run_until_pred(800 * MS, |s| {
        (0..2).any(|i| {
            s.nodes[i].state() == Some(State::Primary)
                && s.nodes[1 - i].state() == Some(State::SecondarySynchronized)
        })
    });
    if !settled {
        out.breaches.push("the pair did not settle".into());
    }
    let mut timers = Timers::default();
    let end = sim.now + 1_000 * MS;
    while sim.now < end && out.breaches.is_empty() {
        let gap = 20 * MS + rng.below(100 * MS);
        let until = sim.now + gap;
        while sim.now < until {
            sim.run_until(sim.now + MS);
            expire(&mut sim, &mut timers, base);
            out.max_hold_ns = out.max_hold_ns.max(max_hold(&sim));
        }
        unconditional(&sim, &mut out);
        if profile == Profile::Inside {
            inside(&sim, &mut out);
        }
        if !out.breaches.is_empty() {
            break;
        }
        match draw(&mut rng, profile, &sim) {
            Some(f) => {
                out.applied.push((sim.now, f));
                apply(&mut sim, f, &mut timers, &mut rng, base);
            }
            None => out.skipped += 1,
        }
    }
    // Quiet: heal everything, restart what crashed or stays failed, clean links.
    sim.partition_until = 0;
    sim.cut_to = [0; 2];
    sim.live_cut = [false; 2];
    sim.cfg = SimConfig {
        sync_loss: 0.0,
        live_loss: 0.0,
        sync_delay_ns: SimConfig::default().sync_delay_ns,
        sync_jitter_ns: 0,
        ..base
    };
    timers.sync_loss_until = 0;
    timers.delay_until = 0;
    let quiet_from = sim.now;
    while sim.now < quiet_from + 1_000 * MS {
        sim.run_until(sim.now + 10 * MS);
        for (_, i) in std::mem::take(&mut timers.restart) {
            if sim.nodes[i].node.is_none() {
                sim.boot(i, Role::Secondary);
            }
        }
        for i in 0..2 {
            let stuck = sim.nodes[i]
                .failed_since
                .is_some_and(|t| sim.now >= t + 500 * MS);
            if sim.nodes[i].node.is_none() || stuck {
                sim.crash(i);
                sim.boot(i, Role::Secondary);
            }
        }
        let nobody = (0..2)
            .all(|i| !sim.on_air(i) && sim.nodes[i].state() != Some(State::SecondarySynchronized))
            && sim.now >= quiet_from + 300 * MS;
        if nobody && (0..2).all(|i| sim.nodes[i].state().is_some_and(|s| !s.on_air())) {
            // Nobody can start a session but an operator: a fresh primary.
            if (0..2).all(|i| sim.nodes[i].state() != Some(State::PrimaryNoSecondary)) {
                sim.crash(0);
                sim.new_session();
                sim.boot(0, Role::Primary);
            }
        }
        if settled_now(&sim) && sim.now >= quiet_from + 300 * MS {
            break;
        }
    }
    unconditional(&sim, &mut out);
    if profile == Profile::Inside {
        inside(&sim, &mut out);
    }
    out.settled = settled_now(&sim);
    if profile == Profile::Inside && !out.settled {
        out.breaches.push(format!(
            "not settled after the quiet period: {:?} / {:?}",
            sim.nodes[0].state(),
            sim.nodes[1].state()
        ));
    }
    out.breaches.dedup();
    out.steps = sim.steps;
    out.takeovers = sim
        .nodes
        .iter()
        .flat_map(|n| n.transitions.iter())
        .filter(|t| t.to == State::SecondaryNoPrimary)
        .count() as u32;
    out.overlap_ns = sim.overlap_steps * sim.cfg.step_ns;
    out.max_overlap_ns = sim.max_overlap_ns;
    out.resume_conflicts = sim.resume_conflicts.len();
    out.repeats = sim.repeats.len();
    out.lost = sim.lost;
    out.dark_ns = sim.dark_steps * sim.cfg.step_ns;
    out.refused = sim
        .nodes
        .iter()
        .map(|n| n.refused_forged + n.refused_replays)
        .sum();
    (sim, out)
}

/// How long a server in an on-air state has held its output so far (longest now).
fn max_hold(sim: &Sim) -> u64 {
    sim.nodes
        .iter()
        .filter_map(|n| n.node.as_ref())
        .filter_map(|n| match n.machine().live_gate() {
            LiveGate::Held { since, .. } => Some(sim.now.saturating_sub(since)),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

fn settled_now(sim: &Sim) -> bool {
    let senders: Vec<usize> = (0..2).filter(|&i| sim.on_air(i)).collect();
    senders.len() == 1
        && sim.nodes[1 - senders[0]].state() == Some(State::SecondarySynchronized)
        && matches!(
            sim.nodes[senders[0]].state(),
            Some(State::Primary | State::SecondaryNoPrimary | State::PrimaryNoSecondary)
        )
}

/// The schedule and what happened, to replay a seed.
pub fn report(seed: u64, profile: Profile, out: &Outcome) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "seed {seed} profile {profile:?}: {} faults applied ({} skipped), {} steps; replay: \
         SIM_REPLAY={seed}:{profile:?} cargo test --lib replay_one -- --nocapture",
        out.applied.len(),
        out.skipped,
        out.steps
    );
    for (t, f) in &out.applied {
        let _ = writeln!(s, "  {:>9} us  {f:?}", t / US);
    }
    for b in out.breaches.iter().take(10) {
        let _ = writeln!(s, "  BREACH: {b}");
    }
    if out.breaches.len() > 10 {
        let _ = writeln!(s, "  ... {} breaches in all", out.breaches.len());
    }
    s
}

/// Replays one schedule, printing the schedule and the transitions.
pub fn replay(seed: u64, profile: Profile) -> Outcome {
    let (sim, out) = run(seed, profile);
    println!("{}", report(seed, profile, &out));
    println!("{}", sim.dump());
    println!("{out:?}");
    for (i, n) in sim.nodes.iter().enumerate() {
        if let Some(e) = &n.engine {
            println!(
                "node {i}: timeline {:?} due(0) {} params_in {:?} offset {:?} clock step {}",
                e.timeline,
                e.sender.due_ns(0),
                n.params_in
                    .as_ref()
                    .map(|p| (p.origin_real_ns, p.origin_index)),
                n.offset_ns,
                sim.clock_step[i]
            );
        }
    }
    out
}

#[test]
fn replay_one() {
    // `SIM_REPLAY=SEED[:PROFILE]`; without it a short smoke run of seed 1.
    let (seed, profile) = match std::env::var("SIM_REPLAY") {
        Ok(v) => {
            let mut it = v.split(':');
            let seed = it.next().and_then(|s| s.parse().ok()).unwrap_or(1);
            let p = it
                .next()
                .and_then(Profile::parse)
                .unwrap_or(Profile::Inside);
            (seed, p)
        }
        Err(_) => {
            let (_, out) = run(1, Profile::Inside);
            assert!(
                out.breaches.is_empty(),
                "{}",
                report(1, Profile::Inside, &out)
            );
            return;
        }
    };
    let out = replay(seed, profile);
    if profile == Profile::Inside {
        assert!(out.breaches.is_empty());
    }
}

#[derive(Debug, Default)]
struct Totals {
    schedules: u64,
    steps: u64,
    faults: BTreeMap<&'static str, u64>,
    takeovers: u64,
}

impl Totals {
    fn add(&mut self, out: &Outcome) {
        self.schedules += 1;
        self.steps += out.steps;
        self.takeovers += out.takeovers as u64;
        for (_, f) in &out.applied {
            let name = match f {
                Fault::Freeze { .. } => "freeze",
                Fault::Crash { .. } => "crash",
                Fault::Fail { .. } => "kernel failure",
                Fault::Hang { .. } => "engine hang",
                Fault::Restart { .. } => "restart",
                Fault::SyncLoss { .. } => "sync loss",
                Fault::SyncDelay { .. } => "sync delay/reorder",
                Fault::Partition { .. } => "sync cut",
                Fault::OneWayCut { .. } => "one-way sync cut",
                Fault::LiveCut { .. } => "live-path cut",
                Fault::ClockStep { .. } => "clock step",
                Fault::Forge { .. } => "forged",
                Fault::Replay { .. } => "replayed",
                Fault::MonitorTakeover { .. } => "monitor takeover",
                Fault::LoopHang { .. } => "loop hang",
            };
            *self.faults.entry(name).or_default() += 1;
        }
    }
}

fn seeds() -> (u64, u64) {
    let n = env_u64("SIM_SEEDS").unwrap_or(40);
    let first = env_u64("SIM_FIRST").unwrap_or(1);
    (first, n)
}

#[test]
fn explore_inside_the_assumptions() {
    let (first, n) = seeds();
    let started = std::time::Instant::now();
    let mut totals = Totals::default();
    let mut failures = Vec::new();
    for seed in first..first + n {
        let (_, out) = run(seed, Profile::Inside);
        totals.add(&out);
        if !out.breaches.is_empty() {
            failures.push(report(seed, Profile::Inside, &out));
        }
    }
    println!(
        "inside the assumptions: {} schedules, {} steps ({} simulated s), {} takeovers, \
         faults {:?}, {:.1} s",
        totals.schedules,
        totals.steps,
        totals.steps * SimConfig::default().step_ns / 1_000_000_000,
        totals.takeovers,
        totals.faults,
        started.elapsed().as_secs_f64()
    );
    for f in &failures {
        println!("{f}");
    }
    assert!(failures.is_empty(), "{} failing schedules", failures.len());
    // The schedules did exercise failovers and every fault kind.
    assert!(totals.takeovers >= n, "{totals:?}");
    for kind in [
        "freeze",
        "crash",
        "kernel failure",
        "engine hang",
        "restart",
        "sync loss",
        "sync delay/reorder",
        "sync cut",
        "live-path cut",
        "forged",
        "replayed",
        "loop hang",
    ] {
        assert!(totals.faults.contains_key(kind), "no {kind}: {totals:?}");
    }
}

#[test]
fn explore_outside_the_assumptions_counts_the_limits() {
    let (first, n) = seeds();
    let n = (n / 8).max(2);
    let started = std::time::Instant::now();
    let mut totals = Totals::default();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| profile | limit | schedules | with two senders | longest overlap ms | start/resume beside another | repeated datagrams (runs) | longest dark ms | longest hold ms | not settled |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|---|---|---|---|");
    let mut hard = Vec::new();
    for profile in OUTSIDE {
        let mut row = (0u64, 0u64, 0u64, 0usize, 0usize, 0u64, 0u64, 0u64, 0u64);
        for seed in first..first + n {
            let (_, out) = run(seed, profile);
            totals.add(&out);
            // The unconditional invariants hold outside the assumptions too.
            if !out.breaches.is_empty() {
                hard.push(report(seed, profile, &out));
            }
            row.0 += 1;
            row.1 += (out.overlap_ns > 0) as u64;
            row.2 = row.2.max(out.max_overlap_ns);
            row.3 += out.resume_conflicts;
            row.4 += out.repeats;
            row.5 += (out.repeats > 0) as u64;
            row.6 = row.6.max(out.dark_ns);
            row.7 = row.7.max(out.max_hold_ns);
            row.8 += (!out.settled) as u64;
            if profile == Profile::HeavyLoss {
                // The overlap of a false declaration ends as soon as the old owner hears
                // the higher epoch. (A resume beside another sender is counted: see
                // `heavy_live_loss_never_resumes_beside_another_sender`.)
                assert!(
                    out.max_overlap_ns <= 15 * MS,
                    "{}",
                    report(seed, profile, &out)
                );
            }
        }
        let _ = writeln!(
            table,
            "| {profile:?} | {} | {} | {} | {:.1} | {} | {} ({}) | {:.1} | {:.1} | {} |",
            profile.limit(),
            row.0,
            row.1,
            row.2 as f64 / 1e6,
            row.3,
            row.4,
            row.5,
            row.6 as f64 / 1e6,
            row.7 as f64 / 1e6,
            row.8
        );
    }
    println!(
        "outside the assumptions: {} schedules, {} steps, {} takeovers, faults {:?}, {:.1} s\n{table}",
        totals.schedules,
        totals.steps,
        totals.takeovers,
        totals.faults,
        started.elapsed().as_secs_f64()
    );
    for h in &hard {
        println!("{h}");
    }
    assert!(
        hard.is_empty(),
        "{} schedules broke an unconditional invariant",
        hard.len()
    );
}

#[test]
#[ignore = "finding for the lead: after a realtime clock step of the server on air its \
            SyncParams origin is stale (stamped on the old clock); the secondary loses the \
            lock, re-measures the offset and never gets in step again (no standby)"]
fn a_clock_step_of_the_server_on_air_leaves_no_standby() {
    let mut sim = Sim::new(SimConfig::default());
    sim.settle_pair();
    sim.run_until(sim.now + 20 * MS);
    sim.step_clock(0, -10 * MS as i64);
    sim.run_until(sim.now + 1_000 * MS);
    assert_eq!(
        sim.nodes[1].state(),
        Some(State::SecondarySynchronized),
        "{}",
        sim.dump()
    );
}

#[test]
#[ignore = "finding for the lead: the live-path rule does not honour the ownership \
            query's lease; a peer that missed the owner's last datagrams (lossy live watch) \
            answers 'not owner' and then declares by the live-path rule while the owner \
            holds: the owner resumes beside it for one link delay (seed 6, HeavyLoss)"]
fn heavy_live_loss_never_resumes_beside_another_sender() {
    let (_, out) = run(6, Profile::HeavyLoss);
    assert_eq!(
        out.resume_conflicts,
        0,
        "{}",
        report(6, Profile::HeavyLoss, &out)
    );
}
