//! A simulated pair on a simulated clock (tests only): two [`Node`]s, a sync link with
//! configurable loss and delay carrying real encoded and authenticated messages, a live
//! group, a toy engine per node that sends datagram `i` at `origin + i x D`, and faults
//! (freezes, crashes, restarts, engine hangs, partitions). It checks at every step how many
//! servers are actually sending on the live group.

mod random;
mod scenarios;

use crate::failover::machine::{Action, Event, Transition};
use crate::failover::node::{Node, NodeConfig, Now, Output, SendTo};
use crate::failover::state::{Role, State};
use crate::failover::wire::{self, Body, Header, Key, MonitorCmd, Msg, SenderRole, SyncParams};
use crate::index::AssetIdentity;
use crate::stream::Framing;
use crate::units::{DatagramIndex, RealNs};

pub const US: u64 = 1_000;
pub const MS: u64 = 1_000_000;
/// 59.94 fps.
pub const FRAME_NS: u64 = 16_683_350;
const SESSION: u64 = 0x5E55;
const REAL_BASE: u64 = 1_700_000_000_000_000_000;
const MONITOR_ID: u32 = 9;

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
    pub sync_delay_ns: u64,
    pub sync_loss: f64,
    pub live_delay_ns: u64,
    /// Loss of live datagrams as heard by the other server.
    pub live_loss: f64,
    pub live_watch: bool,
    pub seed: u64,
    /// Realtime clock offsets of the two servers.
    pub real_offset: [u64; 2],
    /// Failed servers recover after this long (driver policy), if set.
    pub recover_after_ns: Option<u64>,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            miss: 3,
            step_ns: 50 * US,
            datagram_ns: 500 * US,
            sync_delay_ns: 100 * US,
            sync_loss: 0.0,
            live_delay_ns: 50 * US,
            live_loss: 0.0,
            live_watch: true,
            seed: 1,
            real_offset: [0, 2_345_678],
            recover_after_ns: Some(50 * MS),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Off,
    Open,
    Held,
}

#[derive(Debug, Clone)]
pub struct Engine {
    pub live: Gate,
    pub muted: bool,
    pub last_tick: u64,
    pub next_tick: u64,
    pub live_from: u64,
    pub last_live: Option<u64>,
    pub hung: bool,
}

impl Engine {
    fn new(now: u64) -> Engine {
        Engine {
            live: Gate::Off,
            muted: false,
            last_tick: now,
            next_tick: now,
            live_from: 0,
            last_live: None,
            hung: false,
        }
    }
}

#[derive(Debug, Clone)]
enum Input {
    Msg(Vec<u8>),
    Live(u64),
}

pub struct SimNode {
    pub node: Option<Node>,
    pub engine: Engine,
    inbox: Vec<(u64, Input)>,
    pub frozen_until: u64,
    /// Cleared by a freeze, set when the node has run again (its engine checked its own
    /// lateness): until then it sends nothing.
    ran_since_wake: bool,
    pub transitions: Vec<Transition>,
    pub actions: Vec<(u64, Action)>,
    failed_at: Option<u64>,
    in_step_at: Option<u64>,
    boots: u64,
    pub server_id: u32,
}

impl SimNode {
    pub fn state(&self) -> Option<State> {
        self.node.as_ref().map(|n| n.machine().state())
    }
    fn active(&self, now: u64) -> bool {
        self.node.is_some() && now >= self.frozen_until
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
    origin: Option<u64>,
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
    /// Sync link cut until this instant.
    pub partition_until: u64,
    /// Node `i`'s path to the live group is cut (its port on the live network down): what it
    /// sends there reaches neither viewers nor the other node; the sync link is unaffected.
    pub live_cut: [bool; 2],
    monitor_seq: u64,
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

    /// Node 0 starts as primary (server id 1), node 1 as secondary (server id 2); both get
    /// `Started` at 0.
    pub fn new(cfg: SimConfig) -> Sim {
        let mk = |i: usize| SimNode {
            node: None,
            engine: Engine::new(0),
            inbox: Vec::new(),
            frozen_until: 0,
            ran_since_wake: true,
            transitions: Vec::new(),
            actions: Vec::new(),
            failed_at: None,
            in_step_at: None,
            boots: 0,
            server_id: i as u32 + 1,
        };
        let mut sim = Sim {
            cfg,
            now: 0,
            nodes: [mk(0), mk(1)],
            rng: Rng::new(cfg.seed),
            key: Key::from_bytes(b"simulation key, 32 bytes long!!!").unwrap(),
            origin: None,
            live_log: Vec::new(),
            overlap_steps: 0,
            first_overlap: None,
            max_overlap_ns: 0,
            overlap_run: 0,
            resume_conflicts: Vec::new(),
            takeover_conflicts: Vec::new(),
            partition_until: 0,
            live_cut: [false; 2],
            monitor_seq: 0,
        };
        sim.boot(0, Role::Primary);
        sim.boot(1, Role::Secondary);
        sim
    }

    pub fn real(&self, i: usize, t: u64) -> u64 {
        REAL_BASE + self.cfg.real_offset[i] + t
    }

    fn now_of(&self, i: usize) -> Now {
        Now {
            mono: self.now,
            real: self.real(i, self.now),
        }
    }

    /// (Re)starts node `i` in `role` with a fresh process (new boot id) and `Started`.
    pub fn boot(&mut self, i: usize, role: Role) {
        self.nodes[i].boots += 1;
        let boot = self.real(i, self.now) + self.nodes[i].boots;
        let cfg = self.node_config(i, boot);
        let now = self.now_of(i);
        let mut node = Node::new(cfg, role, now);
        node.kernel_mut()
            .register("pacer", true, 5 * MS, self.now)
            .unwrap();
        node.event(Event::Started, now);
        let n = &mut self.nodes[i];
        n.node = Some(node);
        n.engine = Engine::new(self.now);
        n.inbox.clear();
        n.frozen_until = 0;
        n.ran_since_wake = true;
        n.failed_at = None;
        n.in_step_at = None;
        self.outputs(i);
    }

    pub fn crash(&mut self, i: usize) {
        self.nodes[i].node = None;
        self.nodes[i].engine = Engine::new(self.now);
        self.nodes[i].inbox.clear();
    }

    pub fn freeze(&mut self, i: usize, for_ns: u64) {
        self.nodes[i].frozen_until = self.now + for_ns;
        self.nodes[i].ran_since_wake = false;
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

    pub fn report_failure(&mut self, i: usize, component: &str, reason: &str) {
        let now = self.now_of(i);
        if let Some(n) = self.nodes[i].node.as_mut() {
            n.report_failure(component, reason, now).unwrap();
        }
        self.outputs(i);
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
        self.nodes[i].inbox.push((at, Input::Msg(bytes)));
    }

    /// Whether node `i` is sending on the live group now.
    pub fn sending(&self, i: usize) -> bool {
        let n = &self.nodes[i];
        n.active(self.now) && n.ran_since_wake && n.engine.live == Gate::Open && !n.engine.hung
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
        for i in 0..2 {
            self.step_node(i);
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
    }

    fn step_node(&mut self, i: usize) {
        if !self.nodes[i].active(self.now) {
            return;
        }
        let now = self.now_of(i);
        let stall_bound = self.node(i).config().machine.stall_verify_ns;
        // The engine checks its own lateness before anything else (driver contract 5).
        {
            let e = &mut self.nodes[i].engine;
            let late = self.now.saturating_sub(e.last_tick);
            if !e.hung && e.live == Gate::Open && late >= stall_bound + self.cfg.datagram_ns {
                e.live = Gate::Held;
                let stalled_for = late;
                self.nodes[i]
                    .node
                    .as_mut()
                    .unwrap()
                    .event(Event::ResumedAfterStall { stalled_for }, now);
                self.outputs(i);
            }
        }
        self.nodes[i].ran_since_wake = true;
        // Drain the sockets: everything that arrived, in arrival order.
        let mut arrived: Vec<(u64, Input)> = Vec::new();
        let inbox = std::mem::take(&mut self.nodes[i].inbox);
        let (due, later): (Vec<_>, Vec<_>) = inbox.into_iter().partition(|(t, _)| *t <= self.now);
        self.nodes[i].inbox = later;
        arrived.extend(due);
        arrived.sort_by_key(|(t, _)| *t);
        for (t, input) in arrived {
            let rx = Now {
                mono: t,
                real: self.real(i, t),
            };
            let node = self.nodes[i].node.as_mut().unwrap();
            match input {
                Input::Msg(bytes) => {
                    let msg = wire::decode(&bytes, &self.key, Some(SESSION)).expect("authentic");
                    if let Ok(Some(Body::SyncParams(p))) = node.on_message(msg, rx, now) {
                        node.accept_params(p, now);
                    }
                }
                Input::Live(idx) => node.on_live(t, Some(idx), false, now),
            }
            self.outputs(i);
        }
        // Driver policies.
        let node = self.nodes[i].node.as_mut().unwrap();
        if node.poll_timeout().is_some_and(|t| t <= self.now) {
            node.handle_timeout(now);
        }
        self.outputs(i);
        let n = &mut self.nodes[i];
        let state = n.state();
        if state == Some(State::Failed) {
            let at = *n.failed_at.get_or_insert(self.now);
            if let Some(after) = self.cfg.recover_after_ns {
                if self.now >= at + after {
                    n.failed_at = None;
                    self.event(i, Event::Recover);
                }
            }
        } else {
            n.failed_at = None;
        }
        let n = &mut self.nodes[i];
        if n.in_step_at.is_some_and(|t| self.now >= t) {
            n.in_step_at = None;
            self.event(i, Event::InStep);
        }
        // Engine ticks.
        while self.nodes[i].engine.next_tick <= self.now && !self.nodes[i].engine.hung {
            self.tick(i);
            self.nodes[i].engine.next_tick += self.cfg.datagram_ns;
        }
        if self.nodes[i].engine.next_tick <= self.now {
            self.nodes[i].engine.next_tick = self.now + self.cfg.datagram_ns;
        }
    }

    fn index_now(&self) -> Option<u64> {
        self.origin
            .map(|o| self.now.saturating_sub(o) / self.cfg.datagram_ns)
    }

    fn tick(&mut self, i: usize) {
        let now = self.now_of(i);
        let idx = self.index_now();
        let node = self.nodes[i].node.as_mut().unwrap();
        let _ = node.check_in("pacer", now);
        let e = &mut self.nodes[i].engine;
        e.last_tick = self.now;
        let Some(idx) = idx else { return };
        if e.live == Gate::Open {
            let from = e
                .last_live
                .map_or(e.live_from, |l| (l + 1).max(e.live_from));
            let mut sent = Vec::new();
            for k in from..=idx {
                sent.push(k);
            }
            if let Some(&l) = sent.last() {
                e.last_live = Some(l);
            }
            for k in sent {
                if self.live_cut[i] {
                    continue;
                }
                self.live_log.push((self.now, i, k));
                if self.rng.unit() >= self.cfg.live_loss {
                    let at = self.now + self.cfg.live_delay_ns;
                    self.nodes[1 - i].inbox.push((at, Input::Live(k)));
                }
            }
        }
        let e = &self.nodes[i].engine;
        if e.live == Gate::Open || e.muted {
            let real = now.real;
            self.nodes[i]
                .node
                .as_mut()
                .unwrap()
                .on_progress(idx, real, idx * 13_500);
        }
    }

    fn params(&self) -> SyncParams {
        SyncParams {
            asset: AssetIdentity {
                size: 1_316_000,
                hash: 0xfeed,
            },
            asset_name: "sim.ts".into(),
            framing: Framing::Rtp,
            loop_count: 0,
            origin_real_ns: RealNs(self.real(0, self.origin.unwrap_or(0))),
            origin_index: DatagramIndex(0),
            muted: "239.9.9.2:5002".parse().unwrap(),
            live: "239.9.9.1:5000".parse().unwrap(),
        }
    }

    fn deliver(&mut self, from: usize, to: SendTo, msg: Msg) {
        let target = match to {
            SendTo::Peer => 1 - from,
            SendTo::Server(id) => match (0..2).find(|&k| self.nodes[k].server_id == id) {
                Some(k) if k != from => k,
                _ => return,
            },
        };
        if self.now < self.partition_until || self.rng.unit() < self.cfg.sync_loss {
            return;
        }
        if self.nodes[target].node.is_none() {
            return;
        }
        let bytes = wire::encode(&msg, &self.key).unwrap();
        let at = self.now + self.cfg.sync_delay_ns;
        self.nodes[target].inbox.push((at, Input::Msg(bytes)));
    }

    fn other_sending(&self, i: usize) -> bool {
        self.on_air(1 - i)
    }

    /// Performs node `i`'s outputs like a driver would.
    fn outputs(&mut self, i: usize) {
        loop {
            let Some(out) = self.nodes[i].node.as_mut().and_then(|n| n.poll_output()) else {
                return;
            };
            let now = self.now_of(i);
            match out {
                Output::Send { to, msg } => self.deliver(i, to, msg),
                Output::ClockOffset { .. } | Output::Degraded { .. } => {}
                Output::Action(a) => {
                    self.nodes[i].actions.push((self.now, a.clone()));
                    let idx = self.index_now();
                    match a {
                        Action::Transition(t) => self.nodes[i].transitions.push(t),
                        Action::StartLive => {
                            if self.other_sending(i) {
                                self.resume_conflicts.push((self.now, i));
                            }
                            let origin = *self.origin.get_or_insert(self.now);
                            let e = &mut self.nodes[i].engine;
                            e.live = Gate::Open;
                            e.live_from = self.now.saturating_sub(origin) / self.cfg.datagram_ns;
                            e.last_live = None;
                            let p = self.params();
                            self.nodes[i].node.as_mut().unwrap().set_params(p, now);
                        }
                        Action::SwitchToLive { after_index } => {
                            if self.other_sending(i) {
                                self.takeover_conflicts.push((self.now, i));
                            }
                            let e = &mut self.nodes[i].engine;
                            e.muted = false;
                            e.live = Gate::Open;
                            // Resend from the datagram after the primary's last one (catch-up).
                            e.live_from = after_index.map_or(idx.unwrap_or(0), |a| a + 1);
                            e.last_live = None;
                            self.nodes[i].in_step_at = None;
                        }
                        Action::HoldLive => {
                            let e = &mut self.nodes[i].engine;
                            if e.live == Gate::Open {
                                e.live = Gate::Held;
                            }
                        }
                        Action::ResumeLive => {
                            if self.other_sending(i) {
                                self.resume_conflicts.push((self.now, i));
                            }
                            let e = &mut self.nodes[i].engine;
                            e.live = Gate::Open;
                            // Skip what is past: continue at the current position.
                            e.live_from = idx.unwrap_or(0);
                            e.last_live = None;
                        }
                        Action::StopLive => self.nodes[i].engine.live = Gate::Off,
                        Action::StartMuted => {
                            self.nodes[i].engine.muted = true;
                            let p = self.node(i).config().machine.heartbeat_period_ns;
                            self.nodes[i].in_step_at = Some(self.now + 2 * p);
                        }
                        Action::StopMuted => {
                            self.nodes[i].engine.muted = false;
                            self.nodes[i].in_step_at = None;
                        }
                        _ => {}
                    }
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
        let ok = self.run_until_pred(self.now + 200 * MS, |s| {
            s.nodes[0].state() == Some(State::Primary)
                && s.nodes[1].state() == Some(State::SecondarySynchronized)
        });
        assert!(
            ok,
            "pair did not settle: {:?} / {:?}",
            self.nodes[0].state(),
            self.nodes[1].state()
        );
    }
}
