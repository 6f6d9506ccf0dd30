//! One failover server process: the mio event loop around a [`Node`].
//!
//! Every turn of the loop, in this order:
//! 1. reports of the supervisor (kernel verdicts) and of the engine (send errors, late
//!    wakes, switches);
//! 2. every datagram waiting on the sync link, the control port and the live group, each
//!    with its kernel receive time (so a stall of this process does not count against the
//!    peer), fed to the node;
//! 3. ownership checks asked by the engine's gate (after the sockets: a `Takeover` that
//!    arrived during a stall is seen first);
//! 4. the driver's policies (in-step check, self detection, primary-initiated sync);
//! 5. the node's timers (heartbeats, detector, verification), when due;
//! 6. the timerfd is armed for the earliest deadline.
//!
//! After every call into the node its outputs are performed at once ([`Server::flush`]).

mod act;
mod inputs;
mod publish;
mod recover;
mod status;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};

use anyhow::Context;
use mio::{Events, Interest, Poll, Token, Waker};

use super::link::{Keys, Link};
use super::session::{Asset, Timeline, DEFAULT_FRAME_NS};
use super::supervisor::{Deadlines, Notice, Report, Supervisor};
use super::timer::TimerFd;
use super::{SwitchMode, SyncInit};
use crate::failover::alarms::Alarms;
use crate::failover::detector::LiveWatch;
use crate::failover::machine::{self, Event};
use crate::failover::node::{Node, NodeConfig, Now};
use crate::failover::policy::{Policies, PolicyParams};

/// Alarms are raised once their condition has held this long (see `failover::alarms`).
const ALARM_HOLD_OFF_NS: u64 = 500_000_000;
use crate::failover::recovery::{FailureCause, Recovery, RecoveryConfig};
use crate::failover::state::Role;
use crate::failover::wire::{Key, ReplayGuard, SenderRole, Stamper, SyncParams};
use crate::net::clock::{mono_ns, real_ns};
use crate::net::engine::{EngineEvent, EngineHandle};
use crate::net::faults::{Faults, Injection, Supervision};
use crate::net::sockets::{receiver, sender, SenderOptions};
use crate::net::url::Dest;
use crate::stream::OutputStream;

const SYNC: Token = Token(0);
const CONTROL: Token = Token(1);
const LIVE: Token = Token(2);
const TIMER: Token = Token(3);
const WAKE: Token = Token(4);

/// The sender-id bit of the loop's replies on the control port.
pub const CONTROL_ID_BIT: u32 = 0x4000_0000;
/// Lead between starting a session and its first datagram (reader fills the ring).
pub const START_LEAD_NS: u64 = 100_000_000;
/// Lead of a secondary joining a session in progress.
const JOIN_LEAD_NS: u64 = 30_000_000;
/// Longest sleep of the engine's sender (bounds how fast a switch or stop is seen).
const ENGINE_MAX_SLEEP_NS: u64 = 1_000_000;
/// Everything a server needs, validated by the command line.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The role it starts in.
    pub role: Role,
    /// The asset to play at once; `None`: wait for an asset request.
    pub asset: Option<PathBuf>,
    /// The live group and framing.
    pub live: Dest,
    /// The muted group (secondary output while synchronised).
    pub muted: Option<SocketAddrV4>,
    /// Interface of the live and muted groups.
    pub iface: Ipv4Addr,
    /// Multicast TTL.
    pub ttl: u32,
    /// Passes over the asset (`None`: endless).
    pub loops: Option<u64>,
    /// Timeline origin, unix ms.
    pub start_at_ms: Option<u64>,
    /// Session id text.
    pub session_id: Option<String>,
    /// Sync link: our address.
    pub sync_listen: SocketAddrV4,
    /// Sync link: the peer's address.
    pub sync_peer: SocketAddrV4,
    /// Control port.
    pub control_listen: SocketAddrV4,
    /// Component monitors (heartbeats and notices go there too).
    pub monitors: Vec<SocketAddrV4>,
    /// Missed heartbeats that make a failure.
    pub miss: u32,
    /// Heartbeat period override, ns.
    pub heartbeat_ns: Option<u64>,
    /// Switch point.
    pub switch_at: SwitchMode,
    /// Shared secret from a key file (`None`: keys derived from the session id).
    pub key: Option<Key>,
    /// Who initiates synchronisation.
    pub sync_init: SyncInit,
    /// Do not declare failures from missed heartbeats (leave it to the kernel's notice or a
    /// monitor).
    pub no_detect: bool,
    /// Declare the primary failed when heartbeats report datagrams the live group never
    /// carried (the live-path rule of [`crate::failover::detector`]).
    pub live_path_rule: bool,
    /// Faults to inject.
    pub injections: Vec<Injection>,
    /// This server's id.
    pub server_id: u32,
    /// Monotonic ns at process start (injection times count from here).
    pub start_mono_ns: u64,
    /// The channel's name in metrics and the HTTP API.
    pub channel: String,
    /// Serve `/metrics` and `/api/v1/status` here (`--http-listen`); `None`: no listener.
    pub http_listen: Option<SocketAddr>,
    /// The bearer token the HTTP API's writes need (`--token-file`; `None`: writes off).
    pub http_token: Option<String>,
    /// One channel of many in a host process (`tandem serve`): the sync link and control
    /// port are the host's shared sockets and the snapshot is published to the host.
    /// `None`: sockets of its own (`tandem primary` / `secondary`).
    pub shared: Option<SharedHost>,
}

/// What the channels of one host process share (`tandem serve`).
#[derive(Debug, Clone)]
pub struct SharedHost {
    /// The host's sync link (one per host pair).
    pub sync: Arc<crate::net::failover::host_link::HostSocket>,
    /// The host's control port.
    pub control: Arc<crate::net::failover::host_link::HostSocket>,
    /// Where this channel publishes its snapshot (status listing, metrics).
    pub snapshot: crate::net::http::Shared,
}

/// The default server id: a hash of the sync-link address (unique among servers that can
/// talk to each other).
pub fn default_server_id(sync_listen: SocketAddrV4) -> u32 {
    ((xxhash_rust::xxh3::xxh3_64(sync_listen.to_string().as_bytes()) as u32) & 0x3FFF_FFFF).max(1)
}

/// The node's settings for an asset's frame duration (or the default).
pub fn node_config(
    cfg: &ServerConfig,
    asset: Option<&Asset>,
    boot_id: u64,
    session: u64,
) -> NodeConfig {
    let frame = asset.map_or(DEFAULT_FRAME_NS, |a| a.frame_ns);
    let miss = cfg.miss.max(1);
    let mut c = NodeConfig::for_frame(cfg.server_id, frame, miss, boot_id, session);
    if let Some(p) = cfg.heartbeat_ns.filter(|&p| p > 0) {
        c.detector.period_ns = p;
        c.detector.live = LiveWatch::Watch {
            window_ns: p * miss as u64,
        };
        c.peer_watch.period_ns = p;
        c.machine = machine::Config::new(cfg.server_id, p, miss);
        c.time_request_ns = p;
    }
    // The live group must be silent for longer than the asset's largest datagram gap, or,
    // where the driver knows when the next datagram is due, for the window after that.
    if let (LiveWatch::Watch { window_ns }, Some(a)) = (c.detector.live, asset) {
        c.detector.live = LiveWatch::Watch {
            window_ns: window_ns.max(a.max_gap_ns.saturating_mul(3) / 2),
        };
        c.detector.scheduled_window_ns = Some(window_ns);
    }
    if cfg.no_detect {
        c.detector.miss = u32::MAX;
    }
    c.detector.path_rule = cfg.live_path_rule && !cfg.no_detect;
    c
}

/// The kernel's tight deadlines (while a synchronised secondary stands by) for a detection
/// window `W` (miss x heartbeat period) and a frame duration:
/// - pacer: late by `max(W + 1 ms, frame / 2)` past its next due send, within 5-20 ms. At
///   least `W + 1 ms`, so that a stall of the whole primary process (which also silences
///   its heartbeats) is declared by the secondary's detector first and the woken primary
///   steps down on the higher epoch instead of failing itself; and about half a frame, so
///   a thread starved by a busy machine for several ms is not a hang, while a real pacer
///   hang still switches inside one frame (the receiver's gap is one datagram interval,
///   this tolerance and the switch: about 4.2 + 8.3 + 1 ms at 59.94 fps and 2.5 Mb/s, frame
///   16.7 ms; 4.2 + 20 + 1 ms at 25 fps, frame 40 ms).
/// - reader: 1 s (it checks in every 5 ms; the ring ahead of the pacer holds 3 s, so its
///   hang never reaches the output before the verdict, while a read blocked by the storage
///   for most of a second — seen in a 10-minute soak, in both servers at once since they
///   read one file — is ridden through on the buffered datagrams instead of failing).
///
/// Deadlines only make components *critical* while tight: with no standby, a missed
/// deadline is reported as `Degraded` (logged, shown by `tandem status`) and the server keeps
/// trying, since failing would take the only output off air; a panic fails it in every case.
/// - event loop: `max(8 heartbeat periods, 100 ms)`. Its hang does not interrupt the live
///   output (the engine keeps sending; at the verdict the supervisor fences the output and
///   sends the Failed notice itself, and the secondary switches from the next datagram), so
///   the receiver's gap does not depend on it; a generous deadline keeps a loop thread
///   starved by the machine from failing a healthy server.
pub fn kernel_deadlines(node: &NodeConfig, frame_ns: u64) -> Deadlines {
    let window = node.detector.heartbeat_window();
    Deadlines {
        pacer_ns: (window + 1_000_000)
            .max(frame_ns / 2)
            .clamp(5_000_000, 20_000_000),
        reader_ns: 1_000_000_000,
        loop_ns: (8 * node.machine.heartbeat_period_ns).max(100_000_000),
    }
}

/// An ownership check the engine's gate is waiting for.
pub(crate) struct GateReply {
    late_ns: u64,
    answer: Mutex<Option<bool>>,
    cv: Condvar,
}

impl GateReply {
    fn set(&self, ok: bool) {
        *self.answer.lock().unwrap_or_else(|e| e.into_inner()) = Some(ok);
        self.cv.notify_all();
    }
}

/// A running engine and its event channel.
struct Running {
    handle: EngineHandle,
    events: Receiver<EngineEvent>,
    finished: bool,
}

/// Stop handle for the signal thread.
#[derive(Clone)]
pub struct StopHandle {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl StopHandle {
    /// Asks the loop to stop (operator stop) and wakes it.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }
}

/// One server: what belongs to the host (the loop, the sync and control links, the
/// supervisor) and what belongs to its channel (the failover node, the live and muted
/// outputs, the engine, the policies). A host running many channels holds one [`HostIo`]
/// and one [`ChannelIo`] per channel.
pub struct Server {
    cfg: ServerConfig,
    host: HostIo,
    ch: ChannelIo,
}

/// The host's part of a server.
struct HostIo {
    session: u64,
    boot_id: u64,
    poll: Poll,
    waker: Arc<Waker>,
    timer: TimerFd,
    sync: Link,
    control: Link,
    supervisor: Supervisor,
    reports: Receiver<Report>,
    faults: Faults,
    stop: Arc<AtomicBool>,
    control_stamper: Stamper,
    control_guard: ReplayGuard,
    peers: HashMap<u32, SocketAddr>,
    last_peer_rx: Option<u64>,
    /// The snapshot published for the HTTP listener, and when it was last (mono ns).
    http: Option<(crate::net::http::Shared, u64)>,
    /// When this process started (mono ns).
    started_mono: u64,
    last_step_mono: u64,
}

/// The channel's part of a server.
struct ChannelIo {
    live_rx: mio::net::UdpSocket,
    live_tx: UdpSocket,
    live_src: SocketAddr,
    muted: Option<(UdpSocket, SocketAddrV4)>,
    node: Node,
    asset: Option<Asset>,
    stream: Option<Arc<OutputStream>>,
    timeline: Option<Timeline>,
    engine: Option<Running>,
    params_in: Option<SyncParams>,
    requested_start: Option<u64>,
    offset_ns: Option<i64>,
    gate_tx: Sender<Arc<GateReply>>,
    gate_rx: Receiver<Arc<GateReply>>,
    pending_gates: Vec<Arc<GateReply>>,
    foreign_last: Option<u64>,
    foreign_rx: Option<u64>,
    /// Self detection, in-step / lock-lost, parameter push, end of session.
    policies: Policies,
    /// Sync link lost, pair unprotected.
    alarms: Alarms,
    last_error: Option<String>,
    refused_identity: Option<crate::index::AssetIdentity>,
    live_buf: Vec<u8>,
    live_heard: u64,
    exit_at: Option<(u64, i32)>,
    switches: Vec<serde_json::Value>,
    /// Switches by reason, missed heartbeats (for `/metrics`).
    counters: crate::metrics::ChannelCounters,
    asked_logged: bool,
    /// When a failed server follows the server on air again (see `recover.rs`).
    recovery: Recovery,
    /// The cause of the failure the driver is raising.
    pending_cause: Option<FailureCause>,
    /// The failed engine, stopped, until its threads have ended.
    retired: Option<Running>,
    /// The last reason logged for staying `Failed`.
    recovery_note: Option<String>,
    /// The first datagram this server may send live since it took the live group by a
    /// hand-over (a resume after a hold never goes live before it).
    live_from: Option<u64>,
    /// The gap, lateness and losses of the switches, measured on the live group.
    switch_gap: crate::failover::switch_gap::SwitchGap,
}

impl Server {
    /// Binds the sockets, starts the supervisor, loads the asset if one was given.
    pub fn new(cfg: ServerConfig) -> anyhow::Result<Server> {
        let boot_id = real_ns();
        let session = super::link::wire_session(cfg.session_id.as_deref(), cfg.live.addr);
        let keys = match &cfg.key {
            Some(k) => Keys::from_secret(k.clone()),
            None => {
                tracing::warn!(
                    "no --key-file: sync and control messages are authenticated with a key derived from the session id; anyone who knows the session id can forge them"
                );
                Keys::derived(session)
            }
        };
        let poll = Poll::new().context("creating the event loop")?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let timer = TimerFd::new().context("creating the timerfd")?;
        let (mut sync, mut control) = match &cfg.shared {
            Some(h) => (
                Link::routed(
                    "sync",
                    h.sync.attach(session).context("sync link")?,
                    vec![keys.sync.clone()],
                    session,
                )?,
                Link::routed(
                    "control",
                    h.control.attach(session).context("control port")?,
                    keys.control.clone(),
                    session,
                )?,
            ),
            None => (
                Link::bind(
                    "sync",
                    cfg.sync_listen,
                    vec![keys.sync.clone()],
                    Some(session),
                )
                .context("--sync-listen")?,
                Link::bind(
                    "control",
                    cfg.control_listen,
                    keys.control.clone(),
                    Some(session),
                )
                .context("--control-listen")?,
            ),
        };
        let live_std = receiver(cfg.live.addr, cfg.iface, Some(4 << 20))
            .with_context(|| format!("watching the live group {}", cfg.live))?;
        crate::net::recv_socket::enable_timestamps(live_std.as_raw_fd());
        live_std.set_nonblocking(true)?;
        let mut live_rx = mio::net::UdpSocket::from_std(live_std);
        let opts = SenderOptions {
            ttl: cfg.ttl,
            ..SenderOptions::new(cfg.iface)
        };
        let live_tx =
            sender(cfg.live.addr, &opts).with_context(|| format!("sending to {}", cfg.live))?;
        let live_src = live_tx.local_addr()?;
        let muted = match cfg.muted {
            Some(m) => Some((
                sender(m, &opts).with_context(|| format!("sending to the muted group {m}"))?,
                m,
            )),
            None => None,
        };
        let r = poll.registry();
        r.register(sync.source(), SYNC, Interest::READABLE)?;
        r.register(control.source(), CONTROL, Interest::READABLE)?;
        r.register(&mut live_rx, LIVE, Interest::READABLE)?;
        r.register(
            &mut mio::unix::SourceFd(&timer.as_raw_fd()),
            TIMER,
            Interest::READABLE,
        )?;
        let asset = match &cfg.asset {
            Some(p) => Some(Asset::load(p).map_err(BadInput)?),
            None => None,
        };
        let node_cfg = node_config(&cfg, asset.as_ref(), boot_id, session);
        let now = Now {
            mono: mono_ns(),
            real: real_ns(),
        };
        let node = Node::new(node_cfg, cfg.role, now);
        let window = node_cfg.detector.heartbeat_window();
        let frame = asset.as_ref().map_or(DEFAULT_FRAME_NS, |a| a.frame_ns);
        let deadlines = kernel_deadlines(&node_cfg, frame);
        let (report_tx, reports) = mpsc::channel();
        let supervisor = Supervisor::start(
            deadlines,
            Notice {
                socket: sync.try_clone_std()?,
                key: keys.sync.clone(),
                peer: SocketAddr::V4(cfg.sync_peer),
                monitors: cfg.monitors.iter().map(|m| SocketAddr::V4(*m)).collect(),
                server_id: cfg.server_id,
                boot_id,
                session,
            },
            report_tx,
            waker.clone(),
        )?;
        supervisor
            .alive
            .secondary
            .store(cfg.role == Role::Secondary, Ordering::Relaxed);
        let (gate_tx, gate_rx) = mpsc::channel();
        let role = match cfg.role {
            Role::Primary => SenderRole::Primary,
            Role::Secondary => SenderRole::Secondary,
        };
        tracing::info!(
            role = %cfg.role,
            server_id = cfg.server_id,
            live = %cfg.live,
            muted = ?cfg.muted,
            sync_listen = %cfg.sync_listen,
            sync_peer = %cfg.sync_peer,
            control = %cfg.control_listen,
            heartbeat_us = node_cfg.machine.heartbeat_period_ns / 1_000,
            miss = cfg.miss,
            detection_window_us = window / 1_000,
            switch = ?cfg.switch_at,
            sync_init = ?cfg.sync_init,
            "server ready"
        );
        let http = match (cfg.http_listen, &cfg.shared) {
            (_, Some(h)) => Some((h.snapshot.clone(), 0)),
            (Some(addr), None) => {
                let shared = crate::net::http::Shared::default();
                let api = crate::net::http::ServerApi {
                    shared: shared.clone(),
                    control: super::api::ControlPort::new(
                        keys.control[0].clone(),
                        cfg.control_listen,
                    ),
                    session,
                    channel: cfg.channel.clone(),
                };
                let h = crate::net::http::HttpServer::start(addr, api, cfg.http_token.clone())?;
                tracing::info!(
                    addr = %h.addr,
                    writes = if cfg.http_token.is_some() { "on (bearer token)" } else { "off (no --token-file)" },
                    "http: serving /metrics, /api/v1/status, the status page and the API"
                );
                Some((shared, 0))
            }
            (None, None) => None,
        };
        Ok(Server {
            host: HostIo {
                faults: Faults::arm(&cfg.injections, cfg.start_mono_ns),
                control_stamper: Stamper::new(
                    role,
                    cfg.server_id | CONTROL_ID_BIT,
                    boot_id,
                    session,
                ),
                session,
                boot_id,
                poll,
                waker,
                timer,
                sync,
                control,
                supervisor,
                reports,
                stop: Arc::new(AtomicBool::new(false)),
                control_guard: ReplayGuard::new(),
                peers: HashMap::new(),
                last_peer_rx: None,
                http,
                started_mono: now.mono,
                last_step_mono: now.mono,
            },
            ch: ChannelIo {
                live_rx,
                live_tx,
                live_src,
                muted,
                node,
                asset,
                stream: None,
                timeline: None,
                engine: None,
                params_in: None,
                requested_start: None,
                offset_ns: None,
                gate_tx,
                gate_rx,
                pending_gates: Vec::new(),
                foreign_last: None,
                foreign_rx: None,
                policies: Policies::new(PolicyParams::default(), frame),
                alarms: Alarms::new(ALARM_HOLD_OFF_NS),
                last_error: None,
                refused_identity: None,
                live_buf: vec![0u8; 65_536],
                live_heard: 0,
                exit_at: None,
                switches: Vec::new(),
                counters: Default::default(),
                asked_logged: false,
                recovery: Recovery::new(RecoveryConfig::default()),
                pending_cause: None,
                retired: None,
                recovery_note: None,
                live_from: None,
                switch_gap: Default::default(),
            },
            cfg,
        })
    }

    /// A handle that stops the loop from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            flag: self.host.stop.clone(),
            waker: self.host.waker.clone(),
        }
    }

    fn now(&self) -> Now {
        Now {
            mono: mono_ns(),
            real: real_ns(),
        }
    }

    /// Runs until an operator stop (0), the end of the session (0), or a fatal error.
    pub fn run(mut self) -> anyhow::Result<i32> {
        let now = self.now();
        crate::net::notify::ready(&format!("{} ready", self.cfg.role));
        if self.ch.asset.is_some() {
            self.ch.node.event(Event::Started, now);
            self.flush();
        }
        let mut events = Events::with_capacity(64);
        loop {
            self.arm_timer();
            if let Err(e) = self.host.poll.poll(&mut events, None) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e).context("waiting for events");
            }
            self.host.timer.clear();
            if mono_ns() >= self.host.faults.heartbeat_hang_at {
                tracing::warn!("injected fault: the event loop (heartbeats, sync link) hangs");
                while !self.host.stop.load(Ordering::Acquire) {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                return Ok(1);
            }
            if self.host.stop.load(Ordering::Acquire) {
                return Ok(self.shutdown("signal"));
            }
            self.step();
            if let Some((at, code)) = self.ch.exit_at {
                if mono_ns() >= at {
                    self.stop_engine();
                    return Ok(code);
                }
            }
        }
    }

    fn step(&mut self) {
        let now = self.now();
        let gap = now.mono.saturating_sub(self.host.last_step_mono);
        // The loop wakes at least every heartbeat period: a longer gap is a stall of this
        // process (or machine), remembered so it is not taken for an output failure.
        let expected = 2 * self.ch.node.config().machine.heartbeat_period_ns;
        self.ch.policies.loop_woke(now.mono, gap, expected);
        self.host.last_step_mono = now.mono;
        // Fresh progress first: a Failed notice sent below carries the last datagram sent.
        self.report_progress(now);
        self.drain_reports();
        self.drain_engine();
        self.drain_sync();
        self.host
            .supervisor
            .alive
            .sync
            .store(mono_ns(), Ordering::Relaxed);
        self.drain_control();
        self.drain_live();
        self.drain_gates();
        let now = self.now();
        self.report_progress(now);
        self.policies(now);
        self.recovery_tick();
        if self.ch.node.poll_timeout().is_some_and(|t| t <= now.mono) {
            self.ch.node.handle_timeout(now);
            self.flush();
        }
        self.answer_gates();
        self.update_alarms(now);
        self.publish(now);
        let a = &self.host.supervisor.alive;
        a.heartbeat.store(mono_ns(), Ordering::Relaxed);
        a.epoch
            .store(self.ch.node.machine().epoch(), Ordering::Relaxed);
        a.secondary.store(
            self.ch.node.machine().role() == Role::Secondary,
            Ordering::Relaxed,
        );
        a.standby.store(
            self.ch.node.machine().state() == crate::failover::state::State::Primary,
            Ordering::Relaxed,
        );
        // A cause noted for an event the machine did not act on is not kept for a later one.
        self.ch.pending_cause = None;
    }

    fn arm_timer(&mut self) {
        let now = mono_ns();
        let mut next = now + 100_000_000;
        if let Some(t) = self.ch.node.poll_timeout() {
            next = next.min(t);
        }
        let m = self.ch.node.machine();
        let push = Policies::push_wanted(
            self.cfg.sync_init == SyncInit::Primary,
            m.is_owner(),
            m.peer_state(),
        );
        next = next.min(self.ch.policies.next_deadline(now, push, m.sending_live()));
        if !self.ch.pending_gates.is_empty() {
            next = next.min(now + 1_000_000);
        }
        if let Some((at, _)) = self.ch.exit_at {
            next = next.min(at);
        }
        if self.ch.node.machine().state() == crate::failover::state::State::Failed {
            next = next.min(now + 20_000_000); // the recovery rule
        }
        next = next.min(self.host.faults.heartbeat_hang_at);
        if let Err(e) = self.host.timer.arm_at(next) {
            tracing::error!(error = %e, "arming the timerfd");
        }
    }

    /// Operator stop: off air first, a last heartbeat, the engine stopped.
    fn shutdown(&mut self, by: &str) -> i32 {
        crate::net::notify::stopping();
        let now = self.now();
        self.ch.node.event(Event::Stop { by: by.to_string() }, now);
        self.flush();
        self.stop_engine();
        tracing::info!("stopped by {by}");
        0
    }

    /// Performs the node's outputs.
    fn flush(&mut self) {
        while let Some(o) = self.ch.node.poll_output() {
            self.perform(o);
        }
    }
}

/// A start-up error caused by the user's input (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct BadInput(pub anyhow::Error);

impl Drop for Server {
    fn drop(&mut self) {
        for g in self.ch.pending_gates.drain(..) {
            g.set(false);
        }
        if let Some(r) = self.ch.engine.take() {
            r.handle.stop();
        }
        if let Some(r) = self.ch.retired.take() {
            r.handle.stop();
            if !r.handle.is_finished() {
                // A thread that never ends (a real hang) must not keep the process alive.
                std::mem::forget(r);
            }
        }
    }
}

/// The supervision hooks for a new engine.
fn hooks(sup: &Supervisor, faults: Faults) -> Arc<Supervision> {
    Arc::new(Supervision::new(faults, mono_ns(), sup.panic_hook()))
}
