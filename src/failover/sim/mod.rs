//! A simulated pair on a simulated clock (tests only): two [`Node`]s, a sync link with
//! configurable loss, delay and reordering carrying real encoded and authenticated messages,
//! a live group, and per server the real sans-IO [`Sender`] on a uniform schedule (datagram
//! `i` due `i x D` after the session origin), driven the way the engine shell of
//! `src/net/engine.rs` drives it, with the real [`Policies`] (in step, lock, self detection)
//! and the real [`Recovery`] rule, mapped as `src/net/failover/server/` maps them. Faults:
//! freezes, crashes, restarts, engine hangs, partitions, live-path cuts, clock steps, forged
//! and replayed messages. It checks at every step how many servers actually send on the live
//! group and what the live group carries.
//!
//! What still stands in: one loop turn per server per step (the real loop wakes on events),
//! the supervisor kernel is the node's own kernel with one `pacer` component (5 ms check-in)
//! instead of the supervisor thread's deadlines, no send errors, and the gate check and the
//! send are one step (no preemption between them).

mod random;
mod scenarios;

use crate::failover::machine::{Action, Event, LiveGate, Transition, Trigger};
use crate::failover::node::{Node, NodeConfig, Now, Output, SendTo};
use crate::failover::policy::{OutputFacts, Policies, PolicyParams};
use crate::failover::recovery::{Decision, FailureCause, Recovery, RecoveryConfig, Seen};
use crate::failover::state::{Role, State};
use crate::failover::wire::{self, Body, Header, Key, MonitorCmd, Msg, SenderRole, SyncParams};
use crate::index::AssetIdentity;
use crate::pacing::Schedule;
use crate::sender::{
    Command, GateCheck, Next, Prepared, SendOutcome, Sender, SenderConfig, SenderEvent, Target,
};
use crate::stream::Framing;
use crate::units::{DatagramIndex, RealNs};

pub const US: u64 = 1_000;
pub const MS: u64 = 1_000_000;
/// 59.94 fps.
pub const FRAME_NS: u64 = 16_683_350;
const SESSION: u64 = 0x5E55;
const REAL_BASE: u64 = 1_700_000_000_000_000_000;
const MONITOR_ID: u32 = 9;
/// The driver's lead of a primary's session origin over `StartLive`
/// (`server::START_LEAD_NS`).
const START_LEAD_NS: u64 = crate::net::failover::server::START_LEAD_NS;
/// The driver's lead of a joining muted output (`server::JOIN_LEAD_NS`).
const JOIN_LEAD_NS: u64 = 30 * MS;
/// The driver's engine settings (`server::act::start_engine`).
const ENGINE_MAX_SLEEP_NS: u64 = MS;
const ENGINE_LATE_NS: u64 = MS;
/// A resume rewinds at most this far (`server::act`, `ResumeLive`).
const RESUME_REWIND_NS: u64 = 500 * MS;
/// The kernel component the sender checks in as.
const PACER: &str = "pacer";
const PACER_CHECK_IN_NS: u64 = 5 * MS;
/// The supervisor's deadline for the loop (`server::kernel_deadlines`: the larger of 8
/// heartbeat periods and this).
const SUPERVISOR_LOOP_NS: u64 = 100 * MS;

/// splitmix64: a small deterministic generator for the seeded tests.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    pub miss: u32,
    pub step_ns: u64,
    /// Interval between datagrams.
    pub datagram_ns: u64,
    /// One-way delay of the sync link ...
    pub sync_delay_ns: u64,
    /// ... plus a uniform jitter in `[0, sync_jitter_ns]` per message (reorders messages
    /// closer together than the jitter).
    pub sync_jitter_ns: u64,
    pub sync_loss: f64,
    pub live_delay_ns: u64,
    /// Loss of live datagrams as heard by the other server.
    pub live_loss: f64,
    pub live_watch: bool,
    pub seed: u64,
    /// Realtime clock offsets of the two servers.
    pub real_offset: [u64; 2],
    /// The recovery rule of a `Failed` server (`None`: never recovers by itself). The sim
    /// uses the real rule with a shorter hold-off than the driver's 300 ms.
    pub recovery: Option<RecoveryConfig>,
    /// Probability that a server's sender thread runs before its loop in a step (the two
    /// are threads of one process: after a stall either may run first).
    pub sender_first: f64,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            miss: 3,
            step_ns: 50 * US,
            datagram_ns: 500 * US,
            sync_delay_ns: 100 * US,
            sync_jitter_ns: 0,
            sync_loss: 0.0,
            live_delay_ns: 50 * US,
            live_loss: 0.0,
            live_watch: true,
            seed: 1,
            real_offset: [0, 2_345_678],
            recovery: Some(RecoveryConfig {
                hold_off_ns: 50 * MS,
                ..RecoveryConfig::default()
            }),
            sender_first: 0.0,
        }
    }
}

/// Datagram `i` leaves `i x D` after the session's time zero.
#[derive(Debug, Clone, Copy)]
pub struct Uniform(pub u64);

impl Schedule for Uniform {
    fn departure_ns(&self, i: u64) -> u64 {
        i * self.0
    }
    fn count(&self) -> Option<u64> {
        None
    }
}

/// A session timeline on one server's realtime clock (`session::Timeline` for a uniform
/// schedule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    pub origin_real_ns: u64,
    pub origin_index: u64,
}

impl Timeline {
    fn zero_real(&self, d: u64) -> i128 {
        self.origin_real_ns as i128 - (self.origin_index * d) as i128
    }
    fn due_real(&self, d: u64, i: u64) -> i128 {
        self.zero_real(d) + (i * d) as i128
    }
    /// The first datagram due at or after `real`.
    fn index_at(&self, d: u64, real: u64) -> u64 {
        let rel = real as i128 - self.zero_real(d);
        if rel <= 0 {
            0
        } else {
            (rel as u64).div_ceil(d)
        }
    }
}

/// The sender thread blocked in the ownership gate.
#[derive(Debug, Clone)]
pub struct GateWait {
    pub check: GateCheck,
    /// The loop has seen the question (`ResumedAfterStall` given).
    pub drained: bool,
    /// The loop's answer, applied by the sender at its next turn.
    pub answer: Option<bool>,
    /// The gate closure gives up (answers "no") at this instant.
    pub deadline: u64,
}

/// One server's engine: the real sender, and what the shell keeps beside it.
#[derive(Debug, Clone)]
pub struct SimEngine {
    pub sender: Sender<Uniform>,
    pub timeline: Timeline,
    /// The fence flag the shell checks right before a live send.
    pub fenced: bool,
    /// Commands posted while the sender waits in the gate (applied after the answer).
    mailbox: Vec<Command>,
    pub gate: Option<GateWait>,
}

impl SimEngine {
    fn post(&mut self, c: Command) {
        if self.gate.is_some() {
            self.mailbox.push(c);
        } else {
            self.sender.command(c);
        }
    }
    /// The target once the posted commands are applied (the published target).
    pub fn target(&self) -> Target {
        let mut t = self.sender.target();
        for c in &self.mailbox {
            match *c {
                Command::SetTarget(x) => t = x,
                Command::StopLive | Command::FenceLive if t == Target::Live => {
                    t = self.sender.fallback()
                }
                _ => {}
            }
        }
        t
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Authentic,
    Forged,
    Replayed,
}

#[derive(Debug, Clone)]
enum Input {
    Msg(Vec<u8>, Tag),
    Live(u64),
}

/// A breach of an invariant, or an outcome of a documented limit, with its instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub at: u64,
    pub node: usize,
    pub what: String,
}

pub struct SimNode {
    pub node: Option<Node>,
    pub engine: Option<SimEngine>,
    /// The engine's sender is hung (no sends, no check-ins; the loop goes on).
    pub hung: bool,
    inbox: Vec<(u64, Input)>,
    pub frozen_until: u64,
    /// Cleared by a freeze, set once its sender has run again (and checked its own
    /// lateness): until then it sends nothing.
    ran_since_wake: bool,
    pub transitions: Vec<Transition>,
    pub actions: Vec<(u64, Action)>,
    boots: u64,
    pub server_id: u32,
    // The driver's state (`server::Server`).
    policies: Policies,
    recovery: Option<Recovery>,
    pending_cause: Option<FailureCause>,
    params_in: Option<SyncParams>,
    offset_ns: Option<i64>,
    last_peer_rx: Option<u64>,
    foreign_last: Option<u64>,
    last_step: u64,
    /// Messages this node has taken in (for replays), newest last.
    seen_bytes: Vec<Vec<u8>>,
    /// A stall began here while the target was live: the first live send after it must
    /// come within the gate's bound of the last one, or after ownership was confirmed.
    pub stalled_at: Option<u64>,
    /// Ownership was confirmed (gate answered open, or a start, takeover or resume)
    /// since `stalled_at`.
    pub verified: bool,
    /// Entered `Failed` and never left it by `Recover`/`Restart`/a restart since.
    pub failed_since: Option<u64>,
    pub refused_forged: u64,
    pub refused_replays: u64,
    /// The event loop hangs (no heartbeats, no machine) from `.0` until `.1`; the sender
    /// runs on. The supervisor thread fails the server when the loop misses its deadline.
    pub loop_hung: Option<(u64, u64)>,
    /// The supervisor's verdict, waiting for the loop (`Report::Failed`).
    supervisor_failed: bool,
    supervisor_seq: u64,
}

impl SimNode {
    pub fn state(&self) -> Option<State> {
        self.node.as_ref().map(|n| n.machine().state())
    }
    fn active(&self, now: u64) -> bool {
        self.node.is_some() && now >= self.frozen_until
    }
    /// The sender's target (`None`: no engine).
    pub fn target(&self) -> Option<Target> {
        self.engine.as_ref().map(|e| e.target())
    }
}

/// A server before its first boot.
fn blank(i: usize, cfg: &SimConfig, now: u64) -> SimNode {
    SimNode {
        node: None,
        engine: None,
        hung: false,
        inbox: Vec::new(),
        frozen_until: 0,
        ran_since_wake: true,
        transitions: Vec::new(),
        actions: Vec::new(),
        boots: 0,
        server_id: i as u32 + 1,
        policies: Policies::new(PolicyParams::default(), FRAME_NS),
        recovery: cfg.recovery.map(Recovery::new),
        pending_cause: None,
        params_in: None,
        offset_ns: None,
        last_peer_rx: None,
        foreign_last: None,
        last_step: now,
        seen_bytes: Vec::new(),
        stalled_at: None,
        verified: false,
        failed_since: None,
        refused_forged: 0,
        refused_replays: 0,
        loop_hung: None,
        supervisor_failed: false,
        supervisor_seq: 0,
    }
}

/// A live datagram sent: (time, node, index).
pub type LiveSend = (u64, usize, u64);

pub struct Sim {
    pub cfg: SimConfig,
    pub now: u64,
    pub nodes: [SimNode; 2],
    rng: Rng,
    key: Key,
    wrong_key: Key,
    pub live_log: Vec<LiveSend>,
    /// Steps with two servers sending on the live group.
    pub overlap_steps: u64,
    /// First instant with two senders.
    pub first_overlap: Option<u64>,
    /// Longest run of consecutive overlapping steps, ns.
    pub max_overlap_ns: u64,
    overlap_run: u64,
    /// A server started or resumed (not a takeover) while the other was sending.
    pub resume_conflicts: Vec<(u64, usize)>,
    /// A server took over while the other was sending (only with false declarations).
    pub takeover_conflicts: Vec<(u64, usize)>,
    /// Datagrams the live group carried out of order or again: (time, node, index, the
    /// highest index the group had carried before).
    pub repeats: Vec<(u64, usize, u64, u64)>,
    /// Datagrams the live group never carried, between two it did.
    pub lost: u64,
    group_last: Option<u64>,
    /// Live sends after a stall before ownership was confirmed.
    pub unverified_sends: Vec<Finding>,
    /// Live sends of a server that failed and did not recover or restart since.
    pub failed_on_air: Vec<Finding>,
    /// Forged or replayed messages a node acted on.
    pub accepted_bad: Vec<Finding>,
    /// Steps at which a machine's gate and state disagreed (checked at every step).
    pub machine_breaches: Vec<Finding>,
    /// Sync link cut until this instant.
    pub partition_until: u64,
    /// Messages *to* node `i` are lost until this instant (a one-way broken link).
    pub cut_to: [u64; 2],
    /// Steps with nobody on the live group once the session has started.
    pub dark_steps: u64,
    /// Node `i`'s port on the live network is down: what it sends there reaches neither
    /// viewers nor the other node, and it hears nothing there; the sync link is unaffected.
    pub live_cut: [bool; 2],
    /// Steps of each node's realtime clock (ns, added to its readings).
    pub clock_step: [i64; 2],
    monitor_seq: u64,
    pub steps: u64,
}

impl Sim {
    pub fn node_config(&self, i: usize, boot: u64) -> NodeConfig {
        let mut c = NodeConfig::for_frame(i as u32 + 1, FRAME_NS, self.cfg.miss, boot, SESSION);
        c.machine.live_watch = self.cfg.live_watch;
        if !self.cfg.live_watch {
            c.detector.live = crate::failover::detector::LiveWatch::Unavailable;
        }
        c
    }

    fn fresh_node(&self, i: usize) -> SimNode {
        blank(i, &self.cfg, self.now)
    }

    /// Node 0 starts as primary (server id 1), node 1 as secondary (server id 2); both get
    /// `Started` at 0.
    pub fn new(cfg: SimConfig) -> Sim {
        let mut sim = Sim {
            cfg,
            now: 0,
            nodes: [blank(0, &cfg, 0), blank(1, &cfg, 0)],
            rng: Rng::new(cfg.seed),
            key: Key::from_bytes(b"simulation key, 32 bytes long!!!").unwrap(),
            wrong_key: Key::from_bytes(b"an attacker's guess at the key!!").unwrap(),
            live_log: Vec::new(),
            overlap_steps: 0,
            first_overlap: None,
            max_overlap_ns: 0,
            overlap_run: 0,
            resume_conflicts: Vec::new(),
            takeover_conflicts: Vec::new(),
            repeats: Vec::new(),
            lost: 0,
            group_last: None,
            unverified_sends: Vec::new(),
            failed_on_air: Vec::new(),
            accepted_bad: Vec::new(),
            machine_breaches: Vec::new(),
            partition_until: 0,
            cut_to: [0; 2],
            dark_steps: 0,
            live_cut: [false; 2],
            clock_step: [0; 2],
            monitor_seq: 0,
            steps: 0,
        };
        sim.boot(0, Role::Primary);
        sim.boot(1, Role::Secondary);
        sim
    }

    /// Node `i`'s realtime clock at simulated instant `t`.
    pub fn real(&self, i: usize, t: u64) -> u64 {
        (REAL_BASE as i128
            + self.cfg.real_offset[i] as i128
            + self.clock_step[i] as i128
            + t as i128) as u64
    }

    fn now_of(&self, i: usize) -> Now {
        Now {
            mono: self.now,
            real: self.real(i, self.now),
        }
    }

    /// (Re)starts node `i` in `role` with a fresh process (new boot id) and `Started`.
    pub fn boot(&mut self, i: usize, role: Role) {
        let boots = self.nodes[i].boots + 1;
        let mut fresh = self.fresh_node(i);
        fresh.boots = boots;
        fresh.transitions = std::mem::take(&mut self.nodes[i].transitions);
        fresh.actions = std::mem::take(&mut self.nodes[i].actions);
        fresh.refused_forged = self.nodes[i].refused_forged;
        fresh.refused_replays = self.nodes[i].refused_replays;
        self.nodes[i] = fresh;
        let boot = self.real(i, self.now) + boots;
        let cfg = self.node_config(i, boot);
        let now = self.now_of(i);
        let mut node = Node::new(cfg, role, now);
        node.event(Event::Started, now);
        self.nodes[i].node = Some(node);
        self.outputs(i);
    }

    /// An operator starts a new session: the live group's order starts again.
    pub fn new_session(&mut self) {
        self.group_last = None;
    }

    pub fn crash(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.node = None;
        n.engine = None;
        n.inbox.clear();
        n.failed_since = None;
        n.stalled_at = None;
    }

    pub fn freeze(&mut self, i: usize, for_ns: u64) {
        let n = &mut self.nodes[i];
        n.frozen_until = n.frozen_until.max(self.now + for_ns);
        n.ran_since_wake = false;
        let live = n
            .engine
            .as_ref()
            .is_some_and(|e| e.target() == Target::Live);
        if n.stalled_at.is_none() && live {
            n.stalled_at = Some(self.now);
            n.verified = false;
        }
    }

    /// Node `i`'s event loop hangs for `for_ns` (its sender goes on).
    pub fn hang_loop(&mut self, i: usize, for_ns: u64) {
        self.nodes[i].loop_hung = Some((self.now, self.now + for_ns));
    }

    /// The supervisor thread's verdict on a hung loop: it fences the engine's live output,
    /// reads the last live datagram and sends the Failed notice itself, with its own sender
    /// identity (`supervisor.rs`); the loop is told and acts when it runs again.
    fn supervisor_fail(&mut self, i: usize) {
        let real = self.real(i, self.now);
        let n = &mut self.nodes[i];
        n.supervisor_failed = true;
        let Some(node) = n.node.as_ref() else { return };
        let last = n.engine.as_mut().and_then(|e| {
            e.fenced = true;
            e.post(Command::FenceLive);
            e.sender.last_live().map(|l| l.index)
        });
        n.supervisor_seq += 1;
        let m = node.machine();
        let header = Header {
            role: match m.role() {
                Role::Primary => SenderRole::Primary,
                Role::Secondary => SenderRole::Secondary,
            },
            owner: false,
            sender_id: n.server_id | crate::net::failover::supervisor::KERNEL_ID_BIT,
            boot_id: node.config().boot_id,
            session_id: SESSION,
            epoch: m.owner_epoch().unwrap_or(m.epoch()),
            seq: n.supervisor_seq,
            real_ns: real,
        };
        let body = Body::FailedNotice {
            last_index: last,
            component: "heartbeat".into(),
            reason: "missed its check-in deadline".into(),
        };
        self.deliver(i, SendTo::Peer, Msg { header, body });
    }

    /// The engine's sender of node `i` hangs (or stops hanging).
    pub fn hang_engine(&mut self, i: usize, hung: bool) {
        self.nodes[i].hung = hung;
    }

    /// Steps node `i`'s realtime clock by `delta_ns` (an NTP step).
    pub fn step_clock(&mut self, i: usize, delta_ns: i64) {
        self.clock_step[i] += delta_ns;
    }

    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].node.as_ref().expect("node alive")
    }

    pub fn event(&mut self, i: usize, e: Event) {
        let now = self.now_of(i);
        if let Some(n) = self.nodes[i].node.as_mut() {
            n.event(e, now);
        }
        self.outputs(i);
    }

    /// A caught panic of node `i`'s engine, reported to its kernel (the driver fences the
    /// engine and reports its progress first).
    pub fn report_failure(&mut self, i: usize, component: &str, reason: &str) {
        if self.nodes[i].node.is_none() {
            return;
        }
        self.failing(i, FailureCause::Panic);
        let now = self.now_of(i);
        if let Some(n) = self.nodes[i].node.as_mut() {
            if n.kernel().components().all(|(c, _, _)| c != component) {
                let _ = n
                    .kernel_mut()
                    .register(component, true, u64::MAX / 4, now.mono);
            }
            let _ = n.report_failure(component, reason, now);
        }
        self.outputs(i);
        self.nodes[i].pending_cause = None;
    }

    /// A monitor's command to node `i`, over the sync link.
    pub fn monitor(&mut self, i: usize, cmd: MonitorCmd) {
        self.monitor_seq += 1;
        let msg = Msg {
            header: Header {
                role: SenderRole::Monitor,
                owner: false,
                sender_id: MONITOR_ID,
                boot_id: 1,
                session_id: SESSION,
                epoch: 0,
                seq: self.monitor_seq,
                real_ns: self.real(0, self.now),
            },
            body: Body::MonitorCommand(cmd),
        };
        let bytes = wire::encode(&msg, &self.key).unwrap();
        let at = self.now + self.cfg.sync_delay_ns;
        self.nodes[i]
            .inbox
            .push((at, Input::Msg(bytes, Tag::Authentic)));
    }

    /// A forged message to node `i` (the peer's identity, a wrong key): a takeover claim
    /// with a huge epoch, a monitor's `Fail`, or a heartbeat saying the peer failed.
    pub fn forge(&mut self, i: usize, kind: u64) {
        let peer = 1 - i;
        let (role, id) = match self.nodes[peer].node.as_ref() {
            Some(n) => (
                match n.machine().role() {
                    Role::Primary => SenderRole::Primary,
                    Role::Secondary => SenderRole::Secondary,
                },
                self.nodes[peer].server_id,
            ),
            None => (SenderRole::Primary, self.nodes[peer].server_id),
        };
        let boot = self.nodes[peer]
            .node
            .as_ref()
            .map_or(1, |n| n.config().boot_id);
        let mut header = Header {
            role,
            owner: true,
            sender_id: id,
            boot_id: boot,
            session_id: SESSION,
            epoch: 1_000,
            seq: u64::MAX / 2,
            real_ns: self.real(peer, self.now),
        };
        let body = match kind % 3 {
            0 => Body::Takeover {
                epoch: 1_000,
                from_index: Some(0),
            },
            1 => {
                header.role = SenderRole::Monitor;
                header.sender_id = MONITOR_ID;
                Body::MonitorCommand(MonitorCmd::Fail)
            }
            _ => Body::Heartbeat {
                state: State::Failed,
                last_index: Some(0),
                last_index_send_real_ns: RealNs(header.real_ns),
                position: crate::units::Ticks27M(0),
            },
        };
        let bytes = wire::encode(&Msg { header, body }, &self.wrong_key).unwrap();
        let at = self.now + self.cfg.sync_delay_ns;
        self.nodes[i]
            .inbox
            .push((at, Input::Msg(bytes, Tag::Forged)));
    }

    /// Replays to node `i` one of the authentic messages it has already taken in.
    pub fn replay(&mut self, i: usize, pick: u64) {
        let n = &self.nodes[i];
        if n.seen_bytes.is_empty() {
            return;
        }
        let bytes = n.seen_bytes[pick as usize % n.seen_bytes.len()].clone();
        let at = self.now + self.cfg.sync_delay_ns;
        self.nodes[i]
            .inbox
            .push((at, Input::Msg(bytes, Tag::Replayed)));
    }

    /// Whether node `i` is sending on the live group now: running, its sender's target is
    /// live and it is not waiting in the ownership gate.
    pub fn sending(&self, i: usize) -> bool {
        let n = &self.nodes[i];
        n.active(self.now)
            && n.ran_since_wake
            && !n.hung
            && n.engine
                .as_ref()
                .is_some_and(|e| e.gate.is_none() && e.target() == Target::Live)
    }

    /// Whether node `i`'s live datagrams reach the live group now (sending, path not cut).
    pub fn on_air(&self, i: usize) -> bool {
        self.sending(i) && !self.live_cut[i]
    }

    pub fn run_until(&mut self, t_end: u64) {
        while self.now < t_end {
            self.step();
            self.now += self.cfg.step_ns;
        }
    }

    /// Runs until `pred` holds or `t_end`; returns whether it held.
    pub fn run_until_pred(&mut self, t_end: u64, mut pred: impl FnMut(&Sim) -> bool) -> bool {
        while self.now < t_end {
            self.step();
            if pred(self) {
                return true;
            }
            self.now += self.cfg.step_ns;
        }
        false
    }

    fn step(&mut self) {
        self.steps += 1;
        for i in 0..2 {
            if !self.nodes[i].active(self.now) {
                continue;
            }
            let sender_first =
                self.cfg.sender_first > 0.0 && self.rng.unit() < self.cfg.sender_first;
            if let Some((from, until)) = self.nodes[i].loop_hung {
                if self.now < until {
                    let deadline = self.node(i).config().machine.heartbeat_period_ns * 8;
                    if self.now >= from + deadline.max(SUPERVISOR_LOOP_NS)
                        && !self.nodes[i].supervisor_failed
                    {
                        self.supervisor_fail(i);
                    }
                    self.run_sender(i);
                    continue;
                }
                self.nodes[i].loop_hung = None;
                if std::mem::take(&mut self.nodes[i].supervisor_failed) {
                    // The loop reads the supervisor's report at last.
                    self.nodes[i].pending_cause = Some(FailureCause::Timing);
                    self.event(
                        i,
                        Event::KernelFailure {
                            component: "heartbeat".into(),
                            why: "missed its check-in deadline".into(),
                        },
                    );
                }
            }
            if sender_first {
                self.run_sender(i);
                self.loop_turn(i);
            } else {
                self.loop_turn(i);
                self.run_sender(i);
            }
        }
        let senders = (0..2).filter(|&i| self.on_air(i)).count();
        if senders > 1 {
            self.overlap_steps += 1;
            self.first_overlap.get_or_insert(self.now);
            self.overlap_run += self.cfg.step_ns;
            self.max_overlap_ns = self.max_overlap_ns.max(self.overlap_run);
        } else {
            self.overlap_run = 0;
        }
        if senders == 0 && self.group_last.is_some() {
            self.dark_steps += 1;
        }
        // The machines' invariants (those of `machine::tests::check_invariants` that cost
        // nothing), at every step.
        for i in 0..2 {
            let Some(m) = self.nodes[i].node.as_ref().map(|n| n.machine()) else {
                continue;
            };
            let s = m.state();
            let gate = m.live_gate();
            let owner_ok = !m.is_owner()
                || matches!(
                    gate,
                    LiveGate::Open
                        | LiveGate::Held {
                            purpose: crate::failover::machine::HoldPurpose::Resume,
                            ..
                        }
                );
            if (gate != LiveGate::Off) != s.on_air() || !owner_ok {
                self.machine_breaches.push(Finding {
                    at: self.now,
                    node: i,
                    what: format!("machine: gate {gate:?} in {s}"),
                });
            }
        }
    }

    // ---- the engine shell (`src/net/engine.rs`, `sender_loop`) ----

    /// Node `i`'s sender thread runs until it sleeps, waits in the gate, or is done.
    fn run_sender(&mut self, i: usize) {
        self.nodes[i].ran_since_wake = true;
        if self.nodes[i].hung || self.nodes[i].engine.is_none() {
            return;
        }
        let now = self.now_of(i);
        if let Some(n) = self.nodes[i].node.as_mut() {
            let _ = n.check_in(PACER, now);
        }
        let t = self.now;
        for _ in 0..64 {
            let e = self.nodes[i].engine.as_mut().unwrap();
            let (index, prepared) = if let Some(g) = e.gate.clone() {
                // Blocked in the gate closure: an answer, or its own deadline.
                let ok = match g.answer {
                    Some(a) => a,
                    None if t >= g.deadline => false,
                    None => return,
                };
                e.gate = None;
                e.sender.gate_answer(ok);
                if ok {
                    self.nodes[i].verified = true;
                }
                let e = self.nodes[i].engine.as_mut().unwrap();
                for c in std::mem::take(&mut e.mailbox) {
                    e.sender.command(c);
                }
                (g.check.index, e.sender.prepare(g.check.index, t))
            } else {
                match e.sender.poll(t) {
                    Next::Sleep(_) | Next::Done => return,
                    Next::Due(idx) => (idx, e.sender.prepare(idx, t)),
                }
            };
            let e = self.nodes[i].engine.as_mut().unwrap();
            let mut prepared = prepared;
            if let Prepared::AskGate(check) = prepared {
                let wait = self.node(i).config().machine.verify_timeout_ns * 2 + 20 * MS;
                let e = self.nodes[i].engine.as_mut().unwrap();
                e.gate = Some(GateWait {
                    check,
                    drained: false,
                    answer: None,
                    deadline: t + wait,
                });
                return;
            }
            if prepared == Prepared::Send(Target::Live) && e.fenced {
                e.sender.fence_seen();
                prepared = e.sender.prepare(index, t);
            }
            let outcome = match prepared {
                Prepared::Send(Target::Live) => {
                    self.live_send(i, index);
                    SendOutcome::Sent
                }
                Prepared::Send(_) => SendOutcome::Sent,
                Prepared::Skip | Prepared::AskGate(_) => SendOutcome::Skipped,
            };
            let e = self.nodes[i].engine.as_mut().unwrap();
            e.sender.sent(index, t, outcome);
        }
    }

    /// Node `i` hands datagram `k` to its live socket.
    fn live_send(&mut self, i: usize, k: u64) {
        let now = self.now;
        let n = &mut self.nodes[i];
        if let Some(at) = n.stalled_at.take() {
            let bound = n.node.as_ref().unwrap().config().machine.stall_verify_ns
                + self.cfg.datagram_ns
                + self.cfg.step_ns;
            let last = n
                .engine
                .as_ref()
                .and_then(|e| e.sender.last_live())
                .map_or(at, |l| l.at_ns);
            if now.saturating_sub(last) > bound && !n.verified {
                self.unverified_sends.push(Finding {
                    at: now,
                    node: i,
                    what: format!(
                        "live datagram {k} {} us after its last one (stalled at {} us), \
                         ownership not confirmed",
                        (now - last) / US,
                        at / US
                    ),
                });
            }
        }
        if self.nodes[i].failed_since.is_some() {
            self.failed_on_air.push(Finding {
                at: now,
                node: i,
                what: format!("live datagram {k} while failed"),
            });
        }
        if self.live_cut[i] {
            return;
        }
        self.live_log.push((now, i, k));
        match self.group_last {
            Some(l) if k <= l => self.repeats.push((now, i, k, l)),
            Some(l) => self.lost += k - l - 1,
            None => {}
        }
        self.group_last = Some(self.group_last.map_or(k, |l| l.max(k)));
        let other = 1 - i;
        if !self.live_cut[other] && self.rng.unit() >= self.cfg.live_loss {
            let at = now + self.cfg.live_delay_ns;
            self.nodes[other].inbox.push((at, Input::Live(k)));
        }
    }

    // ---- the driver's loop (`src/net/failover/server/mod.rs`, `Server::step`) ----

    fn loop_turn(&mut self, i: usize) {
        let now = self.now_of(i);
        let expected = 2 * self.node(i).config().machine.heartbeat_period_ns;
        let n = &mut self.nodes[i];
        let gap = self.now.saturating_sub(n.last_step);
        n.policies.loop_woke(self.now, gap, expected);
        n.last_step = self.now;
        self.report_progress(i);
        self.drain_engine(i);
        self.drain_sockets(i);
        if self.nodes[i].node.is_none() {
            return;
        }
        self.drain_gates(i);
        self.report_progress(i);
        self.policies(i);
        self.recovery_tick(i);
        let node = self.nodes[i].node.as_mut().unwrap();
        if node.poll_timeout().is_some_and(|t| t <= self.now) {
            node.handle_timeout(now);
        }
        self.outputs(i);
        self.answer_gates(i);
        self.nodes[i].pending_cause = None;
    }

    /// The engine's last send, for the heartbeats (`report_progress`).
    fn report_progress(&mut self, i: usize) {
        let d = self.cfg.datagram_ns;
        let step = self.clock_step[i];
        let base = REAL_BASE as i128 + self.cfg.real_offset[i] as i128 + step as i128;
        let n = &mut self.nodes[i];
        let (Some(node), Some(e)) = (n.node.as_mut(), n.engine.as_ref()) else {
            return;
        };
        let last = if node.machine().is_owner() {
            e.sender.last_live()
        } else {
            e.sender.last().filter(|l| l.target != Target::Off)
        };
        if let Some(l) = last {
            let real = (base + l.at_ns as i128) as u64;
            node.on_progress(l.index, real, l.index * d * 27 / 1_000);
        }
    }

    /// Sender events (`drain_engine`): a late pacer may be an output failure.
    fn drain_engine(&mut self, i: usize) {
        let now = self.now_of(i);
        loop {
            let n = &mut self.nodes[i];
            let Some(ev) = n.engine.as_mut().and_then(|e| e.sender.poll_event()) else {
                return;
            };
            if let SenderEvent::Late { lateness_ns, .. } = ev {
                let m = n.node.as_ref().unwrap().machine();
                if let Some(fault) =
                    n.policies
                        .pacer_late(now.mono, lateness_ns, m.sending_live(), m.state())
                {
                    self.failing(i, FailureCause::Timing);
                    self.event(i, Event::OutputFailure(fault));
                }
            }
        }
    }

    /// Every message and live datagram that arrived, in arrival order, with its arrival
    /// time (the kernel's receive timestamp).
    fn drain_sockets(&mut self, i: usize) {
        let inbox = std::mem::take(&mut self.nodes[i].inbox);
        let (mut due, later): (Vec<_>, Vec<_>) =
            inbox.into_iter().partition(|(t, _)| *t <= self.now);
        self.nodes[i].inbox = later;
        due.sort_by_key(|(t, _)| *t);
        for (t, input) in due {
            if self.nodes[i].node.is_none() {
                return;
            }
            let now = self.now_of(i);
            let rx = Now {
                mono: t,
                real: self.real(i, t),
            };
            match input {
                Input::Msg(bytes, tag) => self.on_sync(i, bytes, tag, rx, now),
                Input::Live(idx) => {
                    let n = &mut self.nodes[i];
                    n.foreign_last = Some(n.foreign_last.map_or(idx, |l| l.max(idx)));
                    n.node
                        .as_mut()
                        .unwrap()
                        .on_live(t, Some(idx), None, false, now);
                    self.outputs(i);
                }
            }
        }
    }

    fn on_sync(&mut self, i: usize, bytes: Vec<u8>, tag: Tag, rx: Now, now: Now) {
        let msg = match wire::decode(&bytes, &self.key, Some(SESSION)) {
            Ok(m) => m,
            Err(_) => {
                if tag == Tag::Authentic {
                    panic!("an authentic message was refused");
                }
                self.nodes[i].refused_forged += 1;
                return;
            }
        };
        if tag == Tag::Forged {
            self.accepted_bad.push(Finding {
                at: self.now,
                node: i,
                what: format!("forged message decoded: {:?}", msg.body.kind()),
            });
        }
        let h = msg.header;
        let own = self.nodes[i].server_id;
        if matches!(h.role, SenderRole::Primary | SenderRole::Secondary) && h.sender_id != own {
            let n = &mut self.nodes[i];
            n.last_peer_rx = Some(n.last_peer_rx.map_or(rx.mono, |t| t.max(rx.mono)));
        }
        let sample = match &msg.body {
            Body::Heartbeat {
                last_index: Some(l),
                last_index_send_real_ns,
                ..
            } if h.sender_id != own => Some((*l, *last_index_send_real_ns)),
            _ => None,
        };
        let node = self.nodes[i].node.as_mut().unwrap();
        let r = node.on_message(msg, rx, now);
        match r {
            Err(_) => {
                self.nodes[i].refused_replays += 1;
                self.outputs(i);
                return;
            }
            Ok(body) => {
                if tag == Tag::Replayed {
                    self.accepted_bad.push(Finding {
                        at: self.now,
                        node: i,
                        what: "replayed message accepted".into(),
                    });
                }
                let seen = &mut self.nodes[i].seen_bytes;
                seen.push(bytes);
                if seen.len() > 64 {
                    seen.remove(0);
                }
                if let Some(Body::SyncParams(p)) = body {
                    self.outputs(i);
                    self.on_params(i, p);
                }
            }
        }
        self.outputs(i);
        if let Some((index, sent)) = sample {
            self.in_step_sample(i, index, sent.0);
        }
    }

    /// Parameters from the server on air (`on_params`, without the asset checks).
    fn on_params(&mut self, i: usize, p: SyncParams) {
        let now = self.now_of(i);
        let n = &mut self.nodes[i];
        let node = n.node.as_mut().unwrap();
        let m = node.machine();
        if m.is_owner() || !m.enabled() {
            return;
        }
        if n.params_in.as_ref() == Some(&p)
            && matches!(
                m.state(),
                State::SecondarySynchronizing | State::SecondarySynchronized
            )
        {
            return;
        }
        n.params_in = Some(p.clone());
        node.accept_params(p, now);
        self.outputs(i);
    }

    /// A heartbeat of the server on air: is our muted output in step with it?
    fn in_step_sample(&mut self, i: usize, index: u64, sent_real_theirs: u64) {
        let d = self.cfg.datagram_ns;
        let now = self.now_of(i);
        let n = &mut self.nodes[i];
        let Some(node) = n.node.as_mut() else { return };
        let m = node.machine();
        let (state, locked) = (m.state(), m.locked());
        if !matches!(
            state,
            State::SecondarySynchronizing | State::SecondarySynchronized
        ) {
            return;
        }
        let (Some(off), Some(e)) = (n.offset_ns, n.engine.as_ref()) else {
            return;
        };
        if e.sender.last().is_none() {
            return;
        }
        let err = (sent_real_theirs as i128 - off as i128) - e.timeline.due_real(d, index);
        if let Some(ev) = n.policies.in_step_sample(state, locked, index, err) {
            node.event(ev, now);
            self.outputs(i);
        }
    }

    /// New gate questions of the sender: the node learns of the stall (`drain_gates`).
    fn drain_gates(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let Some(g) = n.engine.as_mut().and_then(|e| e.gate.as_mut()) else {
            return;
        };
        if g.drained {
            return;
        }
        g.drained = true;
        let stalled_for = g.check.late_ns;
        self.event(i, Event::ResumedAfterStall { stalled_for });
    }

    /// Answers the gate question once the machine has decided (`answer_gates`).
    fn answer_gates(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let Some(node) = n.node.as_ref() else { return };
        let gate = node.machine().live_gate();
        let Some(g) = n.engine.as_mut().and_then(|e| e.gate.as_mut()) else {
            return;
        };
        if !g.drained || g.answer.is_some() {
            return;
        }
        g.answer = match gate {
            LiveGate::Open => Some(true),
            LiveGate::Off => Some(false),
            LiveGate::Held { .. } => None,
        };
    }

    /// Self detection (the output stall policy).
    fn policies(&mut self, i: usize) {
        let now = self.now;
        let n = &mut self.nodes[i];
        let (Some(node), Some(e)) = (n.node.as_ref(), n.engine.as_ref()) else {
            return;
        };
        let m = node.machine();
        let next = e.sender.next_index();
        let facts = OutputFacts {
            sending_live: m.sending_live(),
            state: m.state(),
            target_live: e.target() == Target::Live,
            engine_finished: false,
            next_due_mono_ns: e.sender.due_ns(next) as i64,
            last_sent_mono_ns: e.sender.last().map(|l| l.at_ns),
        };
        if let Some(fault) = n.policies.output_stall(now, &facts) {
            self.failing(i, FailureCause::Timing);
            self.event(i, Event::OutputFailure(fault));
        }
    }

    /// The driver is about to raise a failure: its cause is noted, the live output fenced
    /// and the progress reported (`failing`).
    fn failing(&mut self, i: usize, cause: FailureCause) {
        let n = &mut self.nodes[i];
        n.pending_cause = Some(cause);
        if let Some(e) = n.engine.as_mut() {
            e.fenced = true;
            e.post(Command::FenceLive);
        }
        self.report_progress(i);
    }

    /// The recovery rule, every loop turn while `Failed` (`recovery_tick`).
    fn recovery_tick(&mut self, i: usize) {
        let now = self.now;
        let n = &mut self.nodes[i];
        let Some(node) = n.node.as_ref() else { return };
        let m = node.machine();
        if m.state() != State::Failed {
            return;
        }
        let seen = Seen {
            engine_ended: n.engine.is_none(),
            peer_on_air: m.peer_state().is_some_and(|s| s.on_air()),
            peer_heard_ns: n.last_peer_rx,
        };
        let Some(r) = n.recovery.as_mut() else { return };
        if let Decision::Recover(_) = r.poll(now, seen) {
            // Injected faults that struck are disarmed (`recovery_tick`).
            n.hung = false;
            n.params_in = None;
            n.offset_ns = None;
            self.event(i, Event::Recover);
        }
    }

    fn params_of(&self, i: usize, tl: Timeline) -> SyncParams {
        let _ = i;
        SyncParams {
            asset: AssetIdentity {
                size: 1_316_000,
                hash: 0xfeed,
            },
            asset_name: "sim.ts".into(),
            framing: Framing::Rtp,
            loop_count: 0,
            origin_real_ns: RealNs(tl.origin_real_ns),
            origin_index: DatagramIndex(tl.origin_index),
            muted: "239.9.9.2:5002".parse().unwrap(),
            live: "239.9.9.1:5000".parse().unwrap(),
        }
    }

    fn start_engine(&mut self, i: usize, tl: Timeline, start: u64, target: Target, muted: bool) {
        self.stop_engine(i);
        let d = self.cfg.datagram_ns;
        let real_now = self.real(i, self.now) as i128;
        let origin_mono = (tl.zero_real(d) - (real_now - self.now as i128)).max(0) as u64;
        let gate_after = self.node(i).config().machine.stall_verify_ns;
        let cfg = SenderConfig {
            has_live: true,
            has_muted: muted,
            late_threshold_ns: ENGINE_LATE_NS,
            max_sleep_ns: ENGINE_MAX_SLEEP_NS,
            gate_after_ns: Some(gate_after),
        };
        let now = self.now;
        let n = &mut self.nodes[i];
        n.engine = Some(SimEngine {
            sender: Sender::new(Uniform(d), origin_mono, start, target, cfg),
            timeline: tl,
            fenced: false,
            mailbox: Vec::new(),
            gate: None,
        });
        if let Some(node) = n.node.as_mut() {
            let _ = node.kernel_mut().unregister(PACER);
            let _ = node
                .kernel_mut()
                .register(PACER, true, PACER_CHECK_IN_NS, now);
        }
    }

    fn stop_engine(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.engine = None;
        if let Some(node) = n.node.as_mut() {
            let _ = node.kernel_mut().unregister(PACER);
        }
    }

    /// The primary goes on air (`start_live`).
    fn start_live(&mut self, i: usize) {
        if let Some(e) = self.nodes[i].engine.as_mut() {
            e.post(Command::SetTarget(Target::Live));
            return;
        }
        let tl = Timeline {
            origin_real_ns: self.real(i, self.now) + START_LEAD_NS,
            origin_index: 0,
        };
        self.start_engine(i, tl, 0, Target::Live, false);
        let p = self.params_of(i, tl);
        let now = self.now_of(i);
        self.nodes[i].node.as_mut().unwrap().set_params(p, now);
    }

    /// The identical stream into the muted group, on the primary's timeline placed on our
    /// clock (`start_muted`).
    fn start_muted(&mut self, i: usize) {
        let (Some(p), Some(off)) = (self.nodes[i].params_in.clone(), self.nodes[i].offset_ns)
        else {
            return;
        };
        let tl = Timeline {
            origin_real_ns: (p.origin_real_ns.0 as i128 - off as i128).max(0) as u64,
            origin_index: p.origin_index.0,
        };
        let start = tl.index_at(self.cfg.datagram_ns, self.real(i, self.now) + JOIN_LEAD_NS);
        self.start_engine(i, tl, start, Target::Muted, true);
        let own = self.params_of(i, tl);
        let now = self.now_of(i);
        self.nodes[i].node.as_mut().unwrap().set_params(own, now);
    }

    /// The takeover, seamless: from the datagram after the primary's last (`switch_to_live`).
    fn switch_to_live(&mut self, i: usize, after_index: Option<u64>) {
        let n = &mut self.nodes[i];
        let known = match (after_index, n.foreign_last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let Some(e) = n.engine.as_mut() else { return };
        let from = known.map_or(e.sender.next_index(), |k| k + 1);
        e.post(Command::SwitchAt {
            index: from,
            target: Target::Live,
        });
    }

    /// Ownership confirmed after a hold: from the datagram after the last one that reached
    /// the live group, within half a second (`ResumeLive`).
    fn resume_live(&mut self, i: usize) {
        let Some(e) = self.nodes[i].engine.as_mut() else {
            return;
        };
        let next = e.sender.next_index();
        let from = e.sender.last_live().map(|l| l.index + 1).filter(|&f| {
            e.sender.due_ns(next).saturating_sub(e.sender.due_ns(f)) < RESUME_REWIND_NS
        });
        match from {
            Some(f) if f < next => e.post(Command::SwitchAt {
                index: f,
                target: Target::Live,
            }),
            _ => e.post(Command::SetTarget(Target::Live)),
        }
    }

    /// Whether the engine's sender keeps its schedule (`engine_on_time`).
    fn engine_on_time(&self, i: usize) -> bool {
        let n = &self.nodes[i];
        let (Some(node), Some(e)) = (n.node.as_ref(), n.engine.as_ref()) else {
            return false;
        };
        let bound = node.config().machine.stall_verify_ns as i128;
        let now = self.now as i128;
        let due = e.sender.due_ns(e.sender.next_index()) as i128;
        let recent = e
            .sender
            .last()
            .is_some_and(|l| now - (l.at_ns as i128) < bound);
        e.target() == Target::Live && (due + bound >= now || recent)
    }

    fn other_sending(&self, i: usize) -> bool {
        self.on_air(1 - i)
    }

    fn deliver(&mut self, from: usize, to: SendTo, msg: Msg) {
        let target = match to {
            SendTo::Peer => 1 - from,
            SendTo::Server(id) => match (0..2).find(|&k| self.nodes[k].server_id == id) {
                Some(k) if k != from => k,
                _ => return,
            },
        };
        if self.now < self.partition_until
            || self.now < self.cut_to[target]
            || self.rng.unit() < self.cfg.sync_loss
        {
            return;
        }
        if self.nodes[target].node.is_none() {
            return;
        }
        let bytes = wire::encode(&msg, &self.key).unwrap();
        let jitter = match self.cfg.sync_jitter_ns {
            0 => 0,
            j => self.rng.below(j + 1),
        };
        let at = self.now + self.cfg.sync_delay_ns + jitter;
        self.nodes[target]
            .inbox
            .push((at, Input::Msg(bytes, Tag::Authentic)));
    }

    /// Performs node `i`'s outputs like the driver does (`perform`, `action`).
    fn outputs(&mut self, i: usize) {
        loop {
            let Some(out) = self.nodes[i].node.as_mut().and_then(|n| n.poll_output()) else {
                return;
            };
            match out {
                Output::Send { to, msg } => self.deliver(i, to, msg),
                Output::ClockOffset { offset_ns } => self.nodes[i].offset_ns = Some(offset_ns),
                Output::Degraded { .. } => {}
                Output::Action(a) => {
                    self.nodes[i].actions.push((self.now, a.clone()));
                    self.action(i, a);
                }
            }
        }
    }

    fn action(&mut self, i: usize, a: Action) {
        match a {
            Action::Transition(t) => {
                if t.to == State::Failed {
                    if let Some(e) = self.nodes[i].engine.as_mut() {
                        e.fenced = true;
                        e.post(Command::FenceLive);
                    }
                }
                self.recovery_transition(i, &t);
                if matches!(t.to, State::PrimaryOffline | State::SecondaryOffline) {
                    self.stop_engine(i);
                }
                if t.to == State::SecondarySynchronizing {
                    self.nodes[i].policies.synchronising_anew();
                    self.nodes[i].foreign_last = None;
                }
                // A server that steps down forgets the parameters it held (see `act.rs`).
                if matches!(t.trigger, Trigger::HigherEpoch | Trigger::PeerOnAir) {
                    self.nodes[i].params_in = None;
                }
                self.nodes[i].transitions.push(t);
            }
            Action::StartLive => {
                if self.other_sending(i) {
                    self.resume_conflicts.push((self.now, i));
                }
                self.nodes[i].policies.went_live(self.now);
                self.nodes[i].verified = true;
                self.start_live(i);
            }
            Action::SwitchToLive { after_index } => {
                if self.other_sending(i) {
                    self.takeover_conflicts.push((self.now, i));
                }
                self.nodes[i].policies.went_live(self.now);
                self.nodes[i].verified = true;
                self.switch_to_live(i, after_index);
            }
            Action::HoldLive if self.engine_on_time(i) => {}
            Action::HoldLive | Action::StopLive => {
                if let Some(e) = self.nodes[i].engine.as_mut() {
                    e.post(Command::StopLive);
                }
            }
            Action::ResumeLive => {
                if self.other_sending(i) {
                    self.resume_conflicts.push((self.now, i));
                }
                self.nodes[i].policies.went_live(self.now);
                self.nodes[i].verified = true;
                self.resume_live(i);
            }
            Action::StartMuted => self.start_muted(i),
            Action::StopMuted => self.stop_engine(i),
            _ => {}
        }
    }

    /// A failure is recorded with its cause; leaving `Failed` otherwise ends it
    /// (`recovery_transition`). A recoverable failure retires the (fenced) engine.
    fn recovery_transition(&mut self, i: usize, t: &Transition) {
        let now = self.now;
        let n = &mut self.nodes[i];
        if t.to == State::Failed {
            n.failed_since = Some(now);
            let noted = n.pending_cause.take();
            let cause = match t.trigger {
                Trigger::MonitorFailed => FailureCause::Command,
                Trigger::KernelFailure => noted.unwrap_or(FailureCause::Timing),
                _ => noted.unwrap_or(FailureCause::SendError),
            };
            if let Some(r) = n.recovery.as_mut() {
                r.failed(cause, &t.detail, now);
            }
            if cause.recoverable() {
                self.stop_engine(i);
            }
        } else if t.from == State::Failed {
            n.failed_since = None;
            if t.trigger != Trigger::Recover {
                if let Some(r) = n.recovery.as_mut() {
                    r.clear();
                }
            }
        }
    }

    /// Every transition and action of both nodes, in time order (debugging aid).
    pub fn dump(&self) -> String {
        let mut all: Vec<(u64, usize, String)> = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for t in &n.transitions {
                all.push((t.at, i, t.to_string()));
            }
            for (at, a) in &n.actions {
                if !matches!(a, Action::Transition(_)) {
                    all.push((*at, i, format!("{a:?}")));
                }
            }
        }
        all.sort_by_key(|a| (a.0, a.1));
        all.iter()
            .map(|(t, i, s)| format!("{:>9} us node {i}: {s}", t / US))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The transitions of node `i` as (from, to) pairs.
    pub fn path(&self, i: usize) -> Vec<(State, State)> {
        self.nodes[i]
            .transitions
            .iter()
            .map(|t| (t.from, t.to))
            .collect()
    }

    /// Live datagrams sent by node `i`.
    pub fn live_of(&self, i: usize) -> impl Iterator<Item = &LiveSend> {
        self.live_log.iter().filter(move |l| l.1 == i)
    }

    /// Runs the normal start until node 0 is `Primary` and node 1 `Secondary_synchronized`.
    pub fn settle_pair(&mut self) {
        let ok = self.run_until_pred(self.now + 400 * MS, |s| {
            s.nodes[0].state() == Some(State::Primary)
                && s.nodes[1].state() == Some(State::SecondarySynchronized)
        });
        assert!(
            ok,
            "pair did not settle: {:?} / {:?}\n{}",
            self.nodes[0].state(),
            self.nodes[1].state(),
            self.dump()
        );
    }
}
