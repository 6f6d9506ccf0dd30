//! One server's failover core, assembled: the [`Machine`], the [`Detector`] that watches the
//! server on air, a second detector that watches the secondary, the supervisor [`Kernel`],
//! the [`ClockFilter`] and the [`ReplayGuard`], fed with decoded messages, live-group
//! observations and engine reports, and answering with engine actions and whole messages to
//! send. This is the glue the I/O driver runs inside `tandem primary` / `tandem secondary`;
//! it is sans-IO like its parts, and the simulated pair in the tests runs exactly this.
//!
//! Inside, what belongs to the host (`HostCore`: the sync link's replay guard and header
//! stamper, the clock offset to the peer host and its exchange, the supervisor kernel) is
//! kept apart from what belongs to a channel (`ChannelCore`: the state machine, the two
//! detectors, the session parameters, the engine's progress), so that a host running many
//! channels holds one host part and one channel part per channel.
//!
//! # Driver contract
//! 1. Decode datagrams with [`crate::failover::wire::decode`] (count and log refusals), then
//!    call [`Node::on_message`] with the kernel receive time on both clocks.
//! 2. Report every live-group datagram with [`Node::on_live`] (own ones with
//!    `from_self = true`), and engine progress with [`Node::on_progress`].
//! 3. Drain all sockets *before* calling [`Node::handle_timeout`] (the detector judges by
//!    receive timestamps, so the server's own stalls do not count against the peer).
//! 4. After every call, drain [`Node::poll_output`] and perform the outputs in order:
//!    [`Output::Action`]s drive the engine (the live gate first), [`Output::Send`]s are
//!    encoded with the key and sent on the sync link.
//! 5. The engine closes its live gate by itself when it finds itself late by
//!    [`crate::failover::machine::Config::stall_verify_ns`] or more, and reports
//!    [`Event::ResumedAfterStall`]; it opens it again only on `StartLive`, `SwitchToLive`
//!    or `ResumeLive`.

use std::collections::VecDeque;

use crate::failover::clock::{ClockConfig, ClockFilter, ClockUpdate, TimeSample};
use crate::failover::detector::{Detector, DetectorConfig, LiveWatch};
use crate::failover::kernel::{Kernel, KernelError, Verdict, Why};
use crate::failover::machine::{self, Action, Event, Machine, Via};
use crate::failover::state::{Role, State};
use crate::failover::wire::{
    Body, MonitorCmd, Msg, ReplayError, ReplayGuard, SenderRole, Stamper, SyncParams,
};
use crate::units::{RealNs, Ticks27M};

/// An instant on both clocks: `mono` (CLOCK_MONOTONIC, drives every timer and the
/// detectors) and `real` (CLOCK_REALTIME, for the clock exchange and heartbeat send times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic ns.
    pub mono: u64,
    /// Realtime ns (unix).
    pub real: u64,
}

/// Settings of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeConfig {
    /// The machine.
    pub machine: machine::Config,
    /// The detector watching the server on air (used while `Secondary_synchronized`).
    pub detector: DetectorConfig,
    /// The detector watching the secondary (used while `Primary`).
    pub peer_watch: DetectorConfig,
    /// The clock filter.
    pub clock: ClockConfig,
    /// Time requests while locking, ns apart.
    pub time_request_ns: u64,
    /// Time requests once locked (jump detection), ns apart.
    pub time_track_ns: u64,
    /// This process's boot id (realtime ns at start; see [`ReplayGuard`]).
    pub boot_id: u64,
    /// The session id (0 until known).
    pub session_id: u64,
}

impl NodeConfig {
    /// Settings for a frame duration and a miss count: heartbeat period from
    /// [`crate::failover::detector::default_heartbeat`], live watching on, the secondary
    /// considered lost after 4 x the detection window, time requests every heartbeat period
    /// while locking and every 100 ms once locked.
    pub fn for_frame(
        server_id: u32,
        frame_ns: u64,
        miss: u32,
        boot_id: u64,
        session_id: u64,
    ) -> NodeConfig {
        let detector = DetectorConfig::for_frame(frame_ns, miss);
        let p = detector.period_ns;
        NodeConfig {
            machine: machine::Config::new(server_id, p, miss),
            detector,
            peer_watch: DetectorConfig {
                period_ns: p,
                miss: detector.miss * 4,
                grace_ns: 0,
                live: LiveWatch::Unavailable,
                path_rule: false,
                scheduled_window_ns: None,
            },
            clock: ClockConfig::default(),
            time_request_ns: p,
            time_track_ns: 100_000_000,
            boot_id,
            session_id,
        }
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendTo {
    /// The other server of the pair.
    Peer,
    /// A given sender (the one that asked).
    Server(u32),
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// An engine or log action of the machine: `Transition`, `StartLive`, `SwitchToLive`,
    /// `HoldLive`, `ResumeLive`, `StopLive`, `StartMuted`, `StopMuted`. (The machine's
    /// `Send*` and `StartClockSync` actions are turned into [`Output::Send`] here.)
    Action(Action),
    /// Encode with the key and send.
    Send {
        /// Destination.
        to: SendTo,
        /// The message, header stamped.
        msg: Msg,
    },
    /// The clock offset locked: the primary's realtime minus ours, ns (RFC 5905 §8). The
    /// engine places its timeline with it (`origin_real_ns - offset` on its own clock).
    ClockOffset {
        /// Offset, ns.
        offset_ns: i64,
    },
    /// A non-critical component failed: log it.
    Degraded {
        /// Component.
        component: String,
        /// Why.
        why: Why,
    },
}

/// What the engine last reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Progress {
    last_index: Option<u64>,
    send_real_ns: u64,
    position: u64,
}

/// What a host has once, however many channels it runs: the sync link's replay guard and
/// header stamper (one authenticated message stream to the peer host), the clock offset to
/// the peer host and its NTP-style exchange, and the supervisor kernel.
#[derive(Debug, Clone)]
struct HostCore {
    kernel: Kernel,
    clock: ClockFilter,
    /// When the next time request goes out (mono ns); `None`: not measuring.
    time_at: Option<u64>,
    guard: ReplayGuard,
    stamper: Stamper,
}

/// What each channel has: its state machine (the nine states), the detector watching the
/// server on air and the one watching the secondary, its session parameters and its
/// engine's progress.
#[derive(Debug, Clone)]
struct ChannelCore {
    machine: Machine,
    detector: Detector,
    peer_watch: Detector,
    params: Option<SyncParams>,
    params_pending: bool,
    progress: Progress,
    seen_transitions: u64,
    /// When the peer server was last heard on the sync link (mono ns; never reset).
    peer_heard: Option<u64>,
}

/// One server's failover core: one host part and (for now) one channel.
#[derive(Debug, Clone)]
pub struct Node {
    config: NodeConfig,
    host: HostCore,
    ch: ChannelCore,
    out: VecDeque<Output>,
}

impl Node {
    /// A node in its offline state.
    pub fn new(config: NodeConfig, role: Role, now: Now) -> Node {
        let sender = match role {
            Role::Primary => SenderRole::Primary,
            Role::Secondary => SenderRole::Secondary,
        };
        // The node polls the kernel at every heartbeat at least.
        let mut kernel = Kernel::new();
        kernel.set_poll_period(config.machine.heartbeat_period_ns);
        Node {
            host: HostCore {
                kernel,
                clock: ClockFilter::new(config.clock),
                time_at: None,
                guard: ReplayGuard::new(),
                stamper: Stamper::new(
                    sender,
                    config.machine.server_id,
                    config.boot_id,
                    config.session_id,
                ),
            },
            ch: ChannelCore {
                machine: Machine::new(config.machine, role, now.mono),
                detector: Detector::new(config.detector),
                peer_watch: Detector::new(config.peer_watch),
                params: None,
                params_pending: false,
                progress: Progress::default(),
                seen_transitions: 0,
                peer_heard: None,
            },
            out: VecDeque::new(),
            config,
        }
    }

    /// The state machine.
    pub fn machine(&self) -> &Machine {
        &self.ch.machine
    }
    /// The detector watching the server on air.
    pub fn detector(&self) -> &Detector {
        &self.ch.detector
    }

    /// Changes the detector's settings (keeps what it has seen).
    pub fn set_path_rule(&mut self, on: bool) {
        self.ch.detector.set_path_rule(on);
    }
    /// The supervisor.
    pub fn kernel(&self) -> &Kernel {
        &self.host.kernel
    }
    /// The supervisor, to register components.
    pub fn kernel_mut(&mut self) -> &mut Kernel {
        &mut self.host.kernel
    }
    /// The clock filter.
    pub fn clock(&self) -> &ClockFilter {
        &self.host.clock
    }
    /// The session parameters known to this node.
    pub fn params(&self) -> Option<&SyncParams> {
        self.ch.params.as_ref()
    }
    /// When the peer server was last heard on the sync link (mono ns), if ever.
    pub fn peer_heard(&self) -> Option<u64> {
        self.ch.peer_heard
    }
    /// The settings.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The next output, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The earliest instant (mono) at which [`Node::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        [
            self.ch.machine.poll_timeout(),
            self.ch.detector.next_deadline(),
            self.ch.peer_watch.next_deadline(),
            self.host.kernel.next_deadline(),
            self.host.time_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// An event for the machine from the driver: `Started`, `Stop`, `AssetRequest`,
    /// `ResumedAfterStall`, `OutputFailure`, `InStep`, `LockLost`, `Restart`, `Recover`, ...
    pub fn event(&mut self, e: Event, now: Now) {
        self.ch.machine.handle(e, now.mono);
        self.pump(now);
    }

    /// The primary's session parameters (set when the session starts, after `StartLive`).
    /// Sent at once if the machine asked for them already.
    pub fn set_params(&mut self, p: SyncParams, now: Now) {
        self.ch.params = Some(p);
        if std::mem::take(&mut self.ch.params_pending) {
            self.send_params(now);
        }
    }

    /// Parameters received and validated by the driver (asset found, identity matches).
    pub fn accept_params(&mut self, p: SyncParams, now: Now) {
        self.ch.params = Some(p);
        self.event(Event::ParamsReceived, now);
    }

    /// The engine's progress: last datagram sent, when (realtime), its timeline position.
    pub fn on_progress(&mut self, last_index: u64, send_real_ns: u64, position: u64) {
        self.ch.progress = Progress {
            last_index: Some(last_index),
            send_real_ns,
            position,
        };
    }

    /// A datagram on the live group (kernel receive time on the mono clock), with the time
    /// the datagram after it is due when the driver knows it (the detector's schedule).
    pub fn on_live(
        &mut self,
        rx_mono: u64,
        index: Option<u64>,
        next_due: Option<u64>,
        from_self: bool,
        now: Now,
    ) {
        if from_self {
            return;
        }
        self.ch.detector.on_live_scheduled(rx_mono, index, next_due);
        self.ch.machine.handle(
            Event::ForeignLive {
                rx_ns: rx_mono,
                index,
            },
            now.mono,
        );
        self.pump(now);
    }

    /// A component checks in with the kernel.
    pub fn check_in(&mut self, name: &str, now: Now) -> Result<(), KernelError> {
        self.host.kernel.check_in(name, now.mono)
    }

    /// A component failed (a caught panic, a fatal error); acted on at once.
    pub fn report_failure(
        &mut self,
        name: &str,
        reason: &str,
        now: Now,
    ) -> Result<(), KernelError> {
        self.host.kernel.report_failure(name, reason)?;
        self.poll_kernel(now);
        Ok(())
    }

    /// A decoded, authenticated message, received at `rx` (kernel time on both clocks).
    /// Returns the body when the driver must handle it (`SyncParams` to validate,
    /// `PlayRequest`, `StatusRequest`, `StatusReply`), `Ok(None)` when consumed, and the
    /// replay guard's refusal for a replayed message (count and log it).
    pub fn on_message(&mut self, msg: Msg, rx: Now, now: Now) -> Result<Option<Body>, ReplayError> {
        let h = msg.header;
        if h.sender_id == self.config.machine.server_id && h.boot_id == self.config.boot_id {
            return Ok(None); // our own, looped back
        }
        self.host.guard.check(&h)?;
        let server = matches!(h.role, SenderRole::Primary | SenderRole::Secondary);
        if server && !matches!(msg.body, Body::FailedNotice { .. }) {
            // Any message from the peer server is a sign of life; an ownership query is also
            // a lease: the peer will not be declared failed for a detection window after it.
            let idx = match &msg.body {
                Body::Heartbeat { last_index, .. } | Body::Status { last_index, .. } => *last_index,
                _ => None,
            };
            self.ch.peer_heard = Some(self.ch.peer_heard.map_or(rx.mono, |t| t.max(rx.mono)));
            self.ch.detector.on_heartbeat(rx.mono, idx);
            self.ch.peer_watch.on_heartbeat(rx.mono, None);
        }
        let mono = now.mono;
        let mut for_driver = None;
        match msg.body {
            Body::Heartbeat {
                state, last_index, ..
            }
            | Body::Status {
                state, last_index, ..
            } if server => {
                self.ch.machine.handle(
                    Event::PeerStatus {
                        state,
                        epoch: h.epoch,
                        owner: h.owner,
                        server: h.sender_id,
                        last_index,
                    },
                    mono,
                );
            }
            Body::SyncRequest => self.ch.machine.handle(Event::SyncRequested, mono),
            Body::TimeRequest { t1 } => self.send(
                SendTo::Server(h.sender_id),
                Body::TimeReply {
                    t1,
                    t2: RealNs(rx.real),
                    t3: RealNs(now.real),
                },
                now,
            ),
            Body::TimeReply { t1, t2, t3 } => self.on_time_reply(
                TimeSample {
                    t1,
                    t2,
                    t3,
                    t4: RealNs(rx.real),
                },
                now,
            ),
            Body::FailedNotice {
                component,
                reason,
                last_index,
            } => self.ch.machine.handle(
                Event::FailedNotice {
                    component,
                    reason,
                    last_index,
                },
                mono,
            ),
            Body::Takeover { epoch, .. } => self.ch.machine.handle(
                Event::EpochSeen {
                    epoch,
                    server: h.sender_id,
                    on_air: true,
                    via: Via::SyncLink,
                },
                mono,
            ),
            // An offer of the live group for a datagram still ahead of this server's
            // engine (nothing would be sent twice); one for a datagram already handled is
            // ignored and the offer expires on the other side.
            Body::HandOver { at_index, epoch }
                if server
                    && self
                        .ch
                        .progress
                        .last_index
                        .is_some_and(|l| at_index > l + 1) =>
            {
                self.ch.machine.handle(
                    Event::HandOverOffered {
                        at_index,
                        epoch,
                        from: h.sender_id,
                    },
                    mono,
                )
            }
            Body::HandOver { .. } => {}
            Body::OwnershipQuery { nonce } => self.ch.machine.handle(
                Event::OwnershipQuery {
                    nonce,
                    from: h.sender_id,
                },
                mono,
            ),
            Body::OwnershipReply {
                nonce,
                state,
                on_air,
                epoch,
            } => self.ch.machine.handle(
                Event::OwnershipReply {
                    nonce,
                    state,
                    on_air,
                    epoch,
                    server: h.sender_id,
                },
                mono,
            ),
            Body::MonitorCommand(cmd) if h.role == SenderRole::Monitor => {
                let e = match cmd {
                    MonitorCmd::Takeover => Event::MonitorTakeover,
                    MonitorCmd::Stop => Event::Stop {
                        by: format!("monitor {}", h.sender_id),
                    },
                    MonitorCmd::Fail => Event::MonitorFailed {
                        reason: format!("declared failed by monitor {}", h.sender_id),
                    },
                };
                self.ch.machine.handle(e, mono);
            }
            Body::MonitorCommand(_)
            | Body::Heartbeat { .. }
            | Body::Status { .. }
            | Body::ReloadRequest => {}
            body @ (Body::SyncParams(_)
            | Body::SwitchoverRequest
            | Body::PlayRequest { .. }
            | Body::StatusRequest
            | Body::StatusReply { .. }) => for_driver = Some(body),
        }
        self.pump(now);
        Ok(for_driver)
    }

    /// Timers due at `now`: kernel check-ins, the detectors, time requests, the machine's
    /// heartbeats and ownership verification. Drain the sockets first.
    pub fn handle_timeout(&mut self, now: Now) {
        self.poll_kernel(now);
        if let Some(d) = self.ch.detector.poll(now.mono) {
            self.ch.machine.handle(Event::Declared(d), now.mono);
        }
        if self.ch.peer_watch.poll(now.mono).is_some() {
            let silent = now
                .mono
                .saturating_sub(self.ch.peer_watch.last_heartbeat().unwrap_or(now.mono));
            self.ch
                .machine
                .handle(Event::PeerLost { silent_ns: silent }, now.mono);
        }
        if self.host.time_at.is_some_and(|t| now.mono >= t) {
            self.send(
                SendTo::Peer,
                Body::TimeRequest {
                    t1: RealNs(now.real),
                },
                now,
            );
            let period = if self.host.clock.locked_offset().is_some() {
                self.config.time_track_ns
            } else {
                self.config.time_request_ns
            };
            self.host.time_at = Some(now.mono + period);
        }
        if self
            .ch
            .machine
            .poll_timeout()
            .is_some_and(|t| now.mono >= t)
        {
            self.ch.machine.handle_timeout(now.mono);
        }
        self.pump(now);
    }

    /// A snapshot for `tandem status` (JSON).
    pub fn status_json(&self) -> serde_json::Value {
        let m = &self.ch.machine;
        serde_json::json!({
            "state": m.state(),
            "role": m.role(),
            "epoch": m.epoch(),
            "owner_epoch": m.owner_epoch(),
            "live": m.live_gate(),
            "muted": m.sending_muted(),
            "locked": m.locked(),
            "peer_state": m.peer_state(),
            "peer_last_index": m.peer_last_index(),
            "clock_offset_ns": self.host.clock.locked_offset(),
            "kernel_failed": self.host.kernel.failed(),
            "components": self.host.kernel.components().map(|(n, c, w)| serde_json::json!({
                "name": n, "critical": c, "failed": w.map(|w| w.to_string()),
            })).collect::<Vec<_>>(),
            "transitions": m.history().collect::<Vec<_>>(),
        })
    }

    fn poll_kernel(&mut self, now: Now) {
        while let Some(v) = self.host.kernel.poll(now.mono) {
            match v {
                Verdict::Failed { component, why } => self.ch.machine.handle(
                    Event::KernelFailure {
                        component,
                        why: why.to_string(),
                    },
                    now.mono,
                ),
                Verdict::Degraded { component, why } => {
                    self.out.push_back(Output::Degraded { component, why })
                }
            }
        }
        self.pump(now);
    }

    fn on_time_reply(&mut self, s: TimeSample, now: Now) {
        if self.host.time_at.is_none() {
            return; // not synchronising
        }
        match self.host.clock.add(s) {
            ClockUpdate::Locked { offset_ns, .. } => {
                self.out.push_back(Output::ClockOffset { offset_ns });
                self.ch.machine.handle(Event::LockAcquired, now.mono);
            }
            ClockUpdate::Jumped { from_ns, to_ns } => self.ch.machine.handle(
                Event::LockLost {
                    reason: format!("clock offset jumped from {from_ns} ns to {to_ns} ns"),
                },
                now.mono,
            ),
            ClockUpdate::Tracking { .. }
            | ClockUpdate::Collecting { .. }
            | ClockUpdate::Rejected(_) => {}
        }
    }

    fn header_epoch(&self) -> u64 {
        self.ch
            .machine
            .owner_epoch()
            .unwrap_or(self.ch.machine.epoch())
    }

    fn send(&mut self, to: SendTo, body: Body, now: Now) {
        let role = match self.ch.machine.role() {
            Role::Primary => SenderRole::Primary,
            Role::Secondary => SenderRole::Secondary,
        };
        self.host.stamper.set_role(role);
        let header =
            self.host
                .stamper
                .header(self.header_epoch(), self.ch.machine.is_owner(), now.real);
        self.out.push_back(Output::Send {
            to,
            msg: Msg { header, body },
        });
    }

    fn send_params(&mut self, now: Now) {
        match self.ch.params.clone() {
            Some(p) => self.send(SendTo::Peer, Body::SyncParams(p), now),
            None => self.ch.params_pending = true,
        }
    }

    /// Moves the machine's actions to the output queue, turning messages into `Send`s and
    /// keeping the node's parts in step with state changes.
    fn pump(&mut self, now: Now) {
        let new = (self.ch.machine.transition_count() - self.ch.seen_transitions) as usize;
        self.ch.seen_transitions = self.ch.machine.transition_count();
        let kept = self.ch.machine.history().count();
        let entered: Vec<State> = self
            .ch
            .machine
            .history()
            .skip(kept.saturating_sub(new))
            .map(|t| t.to)
            .collect();
        for s in entered {
            match s {
                // A new server on air to follow: watch it from its first heartbeat.
                State::SecondarySynchronizing => self.ch.detector.reset(),
                State::PrimaryNoSecondary | State::SecondaryNoPrimary => self.ch.peer_watch.reset(),
                _ => {}
            }
            if !matches!(
                s,
                State::SecondarySynchronizing | State::SecondarySynchronized
            ) {
                self.host.time_at = None;
            }
        }
        while let Some(a) = self.ch.machine.poll_action() {
            match a {
                Action::SendHeartbeat => {
                    let p = self.ch.progress;
                    let body = Body::Heartbeat {
                        state: self.ch.machine.state(),
                        last_index: p.last_index,
                        last_index_send_real_ns: RealNs(p.send_real_ns),
                        position: Ticks27M(p.position),
                    };
                    self.send(SendTo::Peer, body, now);
                }
                Action::SendSyncRequest => self.send(SendTo::Peer, Body::SyncRequest, now),
                Action::SendSyncParams => self.send_params(now),
                Action::StartClockSync => {
                    self.host.clock.reset();
                    self.host.time_at = Some(now.mono);
                }
                Action::SendFailedNotice { component, reason } => {
                    let body = Body::FailedNotice {
                        component,
                        reason,
                        last_index: self.ch.progress.last_index,
                    };
                    self.send(SendTo::Peer, body, now);
                }
                Action::SendTakeover { epoch, from_index } => {
                    self.send(SendTo::Peer, Body::Takeover { epoch, from_index }, now)
                }
                Action::SendOwnershipQuery { nonce } => {
                    self.send(SendTo::Peer, Body::OwnershipQuery { nonce }, now)
                }
                Action::SendHandOver { at_index, epoch } => {
                    self.send(SendTo::Peer, Body::HandOver { at_index, epoch }, now)
                }
                Action::SendOwnershipReply {
                    nonce,
                    to,
                    state,
                    on_air,
                    epoch,
                } => self.send(
                    SendTo::Server(to),
                    Body::OwnershipReply {
                        nonce,
                        state,
                        on_air,
                        epoch,
                    },
                    now,
                ),
                other => self.out.push_back(Output::Action(other)),
            }
        }
    }
}
