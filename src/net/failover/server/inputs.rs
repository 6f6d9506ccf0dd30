//! What the loop reads: supervisor reports, engine events, the sync link, the control port,
//! the live group, gate requests; and the policies it applies before the node's timers.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use super::Server;

/// A switchover lands this far ahead of the request (at least 8 heartbeat periods): room
/// for the offer and the acceptance to cross the sync link (and be sent again) before the
/// datagram is due.
const HAND_OVER_LEAD_NS: u64 = 200_000_000;
use crate::failover::alarms::AlarmFacts;
use crate::failover::machine::{Event, LiveGate, OutputFault};
use crate::failover::node::Now;
use crate::failover::policy::{OutputFacts, Policies, SessionEnd};
use crate::failover::recovery::FailureCause;
use crate::failover::state::State;
use crate::failover::wire::{Body, Header, Msg, SenderRole, SyncParams};
use crate::net::clock::clock_offset_ns;
use crate::net::engine::{EngineEvent, SenderEvent, Target};
use crate::net::failover::link::Incoming;
use crate::net::failover::session::{Asset, Timeline};
use crate::net::failover::supervisor::{Report, KERNEL_ID_BIT};
use crate::net::failover::SyncInit;
use crate::net::recv_socket::recv_timestamped;
use crate::net::url::Framing;
use crate::stream::rtp::RtpHeader;
use crate::ts::pcr::ns_to_ticks;
use crate::units::{DatagramIndex, RealNs};

impl Server {
    /// The receive instant of a datagram on both clocks, from its kernel timestamp
    /// (CLOCK_REALTIME without the lab offset): `now` minus its age.
    pub(super) fn rx_now(&self, kernel_ns: Option<u64>, now: Now) -> Now {
        match kernel_ns {
            None => now,
            Some(k) => {
                let raw_now = now.real as i128 - clock_offset_ns() as i128;
                let age = (raw_now - k as i128).clamp(0, u64::MAX as i128) as u64;
                Now {
                    mono: now.mono.saturating_sub(age),
                    real: now.real.saturating_sub(age),
                }
            }
        }
    }

    pub(super) fn drain_reports(&mut self) {
        while let Ok(r) = self.host.reports.try_recv() {
            let now = self.now();
            match r {
                Report::Failed {
                    component,
                    why,
                    timing,
                } => {
                    self.failing(if timing {
                        FailureCause::Timing
                    } else {
                        FailureCause::Panic
                    });
                    self.ch
                        .node
                        .event(Event::KernelFailure { component, why }, now);
                    self.flush();
                }
                Report::Degraded { component, why } => {
                    tracing::warn!("kernel: non-critical component {component} failed: {why}");
                }
            }
        }
    }

    pub(super) fn drain_engine(&mut self) {
        let Some(run) = &mut self.ch.engine else {
            return;
        };
        let events: Vec<EngineEvent> = run.events.try_iter().collect();
        for e in events {
            let now = self.now();
            match e {
                EngineEvent::Sender(SenderEvent::SendError {
                    index,
                    target,
                    message,
                    ..
                }) => {
                    if self.ch.policies.send_error(now.mono, target != Target::Off) {
                        self.failing(FailureCause::SendError);
                        self.ch.node.event(
                            Event::OutputFailure(OutputFault::SendError(format!(
                                "datagram {index} to the {} group: {message}",
                                if target == Target::Live {
                                    "live"
                                } else {
                                    "muted"
                                }
                            ))),
                            now,
                        );
                        self.flush();
                    }
                }
                EngineEvent::Sender(SenderEvent::Late {
                    lateness_ns, index, ..
                }) => {
                    let m = self.ch.node.machine();
                    if let Some(fault) = self.ch.policies.pacer_late(
                        now.mono,
                        lateness_ns,
                        m.sending_live(),
                        m.state(),
                    ) {
                        tracing::warn!(index, late_us = lateness_ns / 1_000, "pacer woke late");
                        self.failing(FailureCause::Timing);
                        self.ch.node.event(Event::OutputFailure(fault), now);
                        self.flush();
                    }
                }
                EngineEvent::Sender(SenderEvent::Switched {
                    index,
                    target,
                    rewound,
                }) => {
                    tracing::info!(
                        index,
                        rewound,
                        "engine: output moved to the {target:?} target from datagram {index}"
                    );
                }
                EngineEvent::Sender(SenderEvent::Released { index }) => {
                    tracing::info!(index, "engine: live output released at datagram {index}");
                    self.ch.node.event(Event::HandOverReleased { index }, now);
                    self.flush();
                }
                EngineEvent::Sender(SenderEvent::GateClosed {
                    index, fallback, ..
                }) => {
                    tracing::info!(
                        index,
                        ?fallback,
                        "engine: ownership not confirmed; live output stopped"
                    );
                }
                EngineEvent::Finished => {
                    if let Some(r) = &mut self.ch.engine {
                        r.finished = true;
                    }
                }
            }
        }
    }

    pub(super) fn drain_sync(&mut self) {
        loop {
            let now = self.now();
            match self.host.sync.recv(now.mono) {
                Ok(Some(inc)) => self.on_sync(inc, now),
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "sync link receive");
                    break;
                }
            }
        }
    }

    fn note_server(&mut self, h: &Header, from: SocketAddr, rx: Now) {
        if matches!(h.role, SenderRole::Primary | SenderRole::Secondary)
            && h.sender_id & !KERNEL_ID_BIT != self.cfg.server_id
        {
            if h.sender_id & KERNEL_ID_BIT == 0 {
                self.host.peers.insert(h.sender_id, from);
            }
            self.host.last_peer_rx =
                Some(self.host.last_peer_rx.map_or(rx.mono, |t| t.max(rx.mono)));
            if h.sender_id & KERNEL_ID_BIT == 0 {
                let period = self.ch.node.config().machine.heartbeat_period_ns;
                self.ch.counters.on_peer_heard(rx.mono, period);
            }
        }
    }

    fn on_sync(&mut self, inc: Incoming, now: Now) {
        let rx = self.rx_now(inc.kernel_ns, now);
        let h = inc.msg.header;
        self.note_server(&h, inc.from, rx);
        let sample = match &inc.msg.body {
            Body::Heartbeat {
                last_index: Some(l),
                last_index_send_real_ns,
                ..
            } if h.sender_id != self.cfg.server_id => Some((*l, *last_index_send_real_ns)),
            _ => None,
        };
        match self.ch.node.on_message(inc.msg, rx, now) {
            Err(e) => self.host.sync.replayed(now.mono, inc.from, &e),
            Ok(Some(body)) => self.on_body(body, h, inc.from, inc.key, false),
            Ok(None) => {}
        }
        self.flush();
        if let Some((index, sent)) = sample {
            self.in_step_sample(index, sent.0);
        }
    }

    pub(super) fn drain_control(&mut self) {
        loop {
            let now = self.now();
            match self.host.control.recv(now.mono) {
                Ok(Some(inc)) => self.on_control(inc, now),
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "control receive");
                    break;
                }
            }
        }
    }

    fn on_control(&mut self, inc: Incoming, now: Now) {
        let rx = self.rx_now(inc.kernel_ns, now);
        let h = inc.msg.header;
        let server = matches!(h.role, SenderRole::Primary | SenderRole::Secondary);
        // A synchronisation component or client asking for the parameters gets them here,
        // not through the machine (which would send them to the peer).
        if !server && matches!(inc.msg.body, Body::SyncRequest) {
            if let Err(e) = self.host.control_guard.check(&h) {
                self.host.control.replayed(now.mono, inc.from, &e);
                return;
            }
            match self.ch.node.params().cloned() {
                Some(p) if self.ch.node.machine().is_owner() => {
                    self.reply(Body::SyncParams(p), inc.from, inc.key);
                }
                _ => {
                    self.host.control.refused(
                        now.mono,
                        inc.from,
                        "sync request: this server is not on air with a session",
                    );
                }
            }
            return;
        }
        match (&inc.msg.body, h.role) {
            (Body::MonitorCommand(_), SenderRole::Monitor)
            | (Body::SyncParams(_), SenderRole::Sync | SenderRole::Client)
            | (Body::PlayRequest { .. }, _)
            | (Body::SwitchoverRequest, _)
            | (Body::StatusRequest, _) => {}
            _ => {
                self.host.control.refused(
                    now.mono,
                    inc.from,
                    &format!(
                        "{:?} from a {:?} is not a control message",
                        inc.msg.body.kind(),
                        h.role
                    ),
                );
                return;
            }
        }
        match self.ch.node.on_message(inc.msg, rx, now) {
            Err(e) => self.host.control.replayed(now.mono, inc.from, &e),
            Ok(Some(body)) => self.on_body(body, h, inc.from, inc.key, true),
            Ok(None) => {}
        }
        self.flush();
    }

    /// Sends a reply on the control port with the key that verified the request.
    pub(super) fn reply(&mut self, body: Body, to: SocketAddr, key: usize) {
        let header = self.host.control_stamper.header(
            self.ch.node.machine().epoch(),
            self.ch.node.machine().is_owner(),
            self.now().real,
        );
        self.host.control.send(&Msg { header, body }, key, to);
    }

    fn on_body(&mut self, body: Body, h: Header, from: SocketAddr, key: usize, control: bool) {
        match body {
            Body::SyncParams(p) => self.on_params(p, h),
            Body::PlayRequest {
                asset_path,
                start_real_ns,
            } => self.on_play_request(&asset_path, start_real_ns, from),
            Body::StatusRequest if control => {
                let json = self.status_json().to_string();
                self.reply(Body::StatusReply { json }, from, key);
            }
            Body::SwitchoverRequest if control => {
                let json = self.on_switchover_request(from).to_string();
                self.reply(Body::StatusReply { json }, from, key);
            }
            _ => {}
        }
    }

    /// Parameters from the primary (sync link) or a sync component (control port): checked
    /// against this server's asset and destination, then accepted.
    fn on_params(&mut self, p: SyncParams, h: Header) {
        let now = self.now();
        if self.ch.node.machine().is_owner() {
            tracing::debug!("parameters ignored: this server is on air");
            return;
        }
        if !self.ch.node.machine().enabled() {
            tracing::debug!("parameters ignored: waiting for an asset request");
            return;
        }
        let st = self.ch.node.machine().state();
        if self.ch.params_in.as_ref() == Some(&p)
            && matches!(
                st,
                State::SecondarySynchronizing | State::SecondarySynchronized
            )
        {
            return; // the same session: already locking or locked on it
        }
        if let Err(why) = self.check_params(&p) {
            if self.ch.refused_identity != Some(p.asset) {
                tracing::error!("refusing to synchronise with server {}: {why}", h.sender_id);
            }
            self.ch.refused_identity = Some(p.asset);
            self.ch.last_error = Some(why);
            return;
        }
        self.ch.refused_identity = None;
        tracing::info!(
            from = h.sender_id,
            asset = %p.asset_name,
            origin_index = p.origin_index.0,
            "session parameters accepted"
        );
        self.ch.params_in = Some(p.clone());
        self.ch.asked_logged = false;
        self.ch.node.accept_params(p, now);
        self.flush();
    }

    fn check_params(&mut self, p: &SyncParams) -> Result<(), String> {
        if p.live != self.cfg.live.addr || p.framing != self.cfg.live.framing {
            let f = |f: Framing| if f == Framing::Rtp { "rtp" } else { "udp" };
            return Err(format!(
                "the primary plays onto {}://{}, this server onto {}",
                f(p.framing),
                p.live,
                self.cfg.live
            ));
        }
        if self.cfg.shared.is_some() {
            // A channel of `tandem serve`: both hosts' files must define it the same way.
            let mut differs = Vec::new();
            if let Some(m) = self.cfg.muted {
                if p.muted != m && !p.muted.ip().is_unspecified() {
                    differs.push(format!("muted group {} there, {m} here", p.muted));
                }
            }
            let ours = crate::net::failover::session::loop_count_wire(self.cfg.loops);
            if p.loop_count != ours {
                let say = |n: u32| match n {
                    0 => "endless".to_string(),
                    1 => "once".to_string(),
                    n => format!("{n} passes"),
                };
                differs.push(format!(
                    "loop {} there, {} here",
                    say(p.loop_count),
                    say(ours)
                ));
            }
            if !differs.is_empty() {
                return Err(format!(
                    "the channel is defined differently on the two hosts: {} (the same definition in both files, then reload)",
                    differs.join("; ")
                ));
            }
        }
        if self.ch.asset.is_none() {
            let path = Path::new(&p.asset_name);
            match Asset::load(path) {
                Ok(a) => self.set_asset(a),
                Err(e) => {
                    return Err(format!(
                    "no asset here: the primary plays {} ({}) and it cannot be opened here: {e:#}",
                    p.asset_name, p.asset
                ))
                }
            }
        }
        let ours = self.ch.asset.as_ref().map(|a| a.identity());
        if ours != Some(p.asset) {
            return Err(format!(
                "asset mismatch: the primary plays {} ({}), this server has {} ({})",
                p.asset_name,
                p.asset,
                self.ch
                    .asset
                    .as_ref()
                    .map_or("nothing".into(), |a| a.path.display().to_string()),
                ours.map_or("-".into(), |i| i.to_string())
            ));
        }
        Ok(())
    }

    fn on_play_request(&mut self, path: &str, start: Option<u64>, from: SocketAddr) {
        let st = self.ch.node.machine().state();
        if !matches!(st, State::PrimaryOffline | State::SecondaryOffline) {
            tracing::warn!(from = %from, "asset request for {path} refused: the server is {st}");
            self.ch.last_error = Some(format!("asset request for {path} refused: server is {st}"));
            return;
        }
        match Asset::load(Path::new(path)) {
            Ok(a) => {
                tracing::info!(from = %from, asset = path, start_real_ns = ?start, "asset request");
                self.set_asset(a);
                self.ch.requested_start = start;
                let now = self.now();
                self.ch.node.event(
                    Event::AssetRequest {
                        asset: path.to_string(),
                    },
                    now,
                );
                self.flush();
            }
            Err(e) => {
                tracing::error!(from = %from, "asset request for {path}: {e:#}");
                self.ch.last_error = Some(format!("asset request for {path}: {e:#}"));
            }
        }
    }

    /// An operator's switchover request: the live group is offered to the synchronised
    /// peer from a datagram [`HAND_OVER_LEAD_NS`] ahead (or the reason it cannot be).
    fn on_switchover_request(&mut self, from: SocketAddr) -> serde_json::Value {
        let refusal = self.ch.node.machine().hand_over_refusal();
        let at = match (&self.ch.stream, self.ch.timeline, &self.ch.engine, refusal) {
            (_, _, _, Some(why)) => Err(why),
            (Some(s), Some(tl), Some(r), None) => {
                let lead =
                    HAND_OVER_LEAD_NS.max(8 * self.ch.node.config().machine.heartbeat_period_ns);
                let at = tl
                    .index_at(s, crate::net::clock::real_ns() + lead)
                    .max(r.handle.next_index() + 1);
                match s.datagram_count() {
                    Some(c) if at >= c => {
                        Err("the session ends before a hand-over could land".into())
                    }
                    _ => Ok(at),
                }
            }
            _ => Err("no engine running".to_string()),
        };
        match at {
            Ok(at_index) => {
                tracing::info!(from = %from, at_index, "switchover requested: offering the live group to the peer");
                let now = self.now();
                self.ch
                    .node
                    .event(Event::HandOverRequested { at_index }, now);
                self.flush();
                serde_json::json!({"accepted": true, "at_index": at_index})
            }
            Err(why) => {
                tracing::warn!(from = %from, "switchover request refused: {why}");
                serde_json::json!({"accepted": false, "reason": why})
            }
        }
    }

    /// Takes an asset; rebuilds the (offline) node when its frame rate changes the
    /// heartbeat settings.
    pub(super) fn set_asset(&mut self, a: Asset) {
        let want = super::node_config(&self.cfg, Some(&a), self.host.boot_id, self.host.session);
        self.ch.policies.set_frame_ns(a.frame_ns);
        self.ch.asset = Some(a);
        if want != *self.ch.node.config() {
            let offline = matches!(
                self.ch.node.machine().state(),
                State::PrimaryOffline | State::SecondaryOffline
            );
            if offline {
                // A fresh node is a fresh boot: peers accept its new sequence numbers.
                self.host.boot_id = crate::net::clock::real_ns().max(self.host.boot_id + 1);
                let cfg = super::node_config(
                    &self.cfg,
                    self.ch.asset.as_ref(),
                    self.host.boot_id,
                    self.host.session,
                );
                let enabled = self.ch.node.machine().enabled();
                self.ch.node = crate::failover::node::Node::new(cfg, self.cfg.role, self.now());
                if enabled {
                    self.ch.node.event(Event::Started, self.now());
                }
                tracing::info!(
                    heartbeat_us = cfg.machine.heartbeat_period_ns / 1_000,
                    "heartbeat settings follow the asset's frame rate"
                );
            }
        }
    }

    pub(super) fn drain_live(&mut self) {
        loop {
            let r = match recv_timestamped(self.ch.live_rx.as_raw_fd(), &mut self.ch.live_buf) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "live group receive");
                    break;
                }
            };
            let now = self.now();
            let rx = self.rx_now(r.kernel_ns, now);
            if r.src == self.ch.live_src {
                // Our own, looped back: the first after a switch closes its measurement.
                if let Some(rec) = self.ch.switch_gap.on_own(rx.mono) {
                    self.switch_measured(&rec);
                }
                continue;
            }
            let len = r.len.min(self.ch.live_buf.len());
            let idx = self.live_index(len, rx.mono);
            if let Some(i) = idx {
                self.ch.foreign_last = Some(self.ch.foreign_last.map_or(i, |l| l.max(i)));
            }
            self.ch.live_heard += 1;
            self.ch.foreign_rx = Some(rx.mono);
            self.ch.switch_gap.on_foreign(rx.mono, idx);
            let next_due = idx.and_then(|i| self.due_mono(i + 1));
            self.ch.node.on_live(rx.mono, idx, next_due, false, now);
            self.flush();
        }
    }

    /// When datagram `i` of the session is due on this server's mono clock (`None` before a
    /// timeline or stream exists).
    pub(super) fn due_mono(&self, i: u64) -> Option<u64> {
        let (st, tl) = (self.ch.stream.as_ref()?, self.ch.timeline?);
        if st.datagram_count().is_some_and(|c| i >= c) {
            return None;
        }
        let real = u64::try_from(tl.due_real(st, i)).ok()?;
        Some(crate::net::clock::real_to_mono(real).max(0) as u64)
    }

    /// The session index of a datagram heard on the live group at `rx_mono`: RTP sequence
    /// number unwrapped near the expected index, or (raw UDP) a content match in the
    /// engine's ring that the bytes and the time leave no doubt about
    /// ([`crate::failover::live_id`]).
    fn live_index(&self, len: usize, rx_mono: u64) -> Option<u64> {
        let stream = self.ch.stream.as_ref()?;
        let bytes = &self.ch.live_buf[..len];
        match stream.rtp_session() {
            Some(rtp) => {
                let hint = self
                    .ch
                    .foreign_last
                    .map(|l| l + 1)
                    .or_else(|| self.ch.engine.as_ref().map(|r| r.handle.next_index()))?;
                let (h, _) = RtpHeader::parse(bytes).ok()?;
                if h.ssrc != rtp.ssrc {
                    return None;
                }
                let expect = rtp.sequence_base.wrapping_add(hint as u16);
                let d = h.sequence.wrapping_sub(expect) as i16 as i64;
                u64::try_from(hint as i64 + d).ok()
            }
            None => {
                self.ch
                    .engine
                    .as_ref()?
                    .handle
                    .name_recent(bytes, self.ch.foreign_last, rx_mono)
            }
        }
    }

    /// New gate requests from the engine: the node learns of the stall, then the request
    /// waits for the machine's verdict on ownership.
    pub(super) fn drain_gates(&mut self) {
        while let Ok(g) = self.ch.gate_rx.try_recv() {
            let now = self.now();
            self.ch.node.event(
                Event::ResumedAfterStall {
                    stalled_for: g.late_ns,
                },
                now,
            );
            self.flush();
            self.ch.pending_gates.push(g);
        }
    }

    /// Answers the gate requests whose outcome is known: live gate open (ownership
    /// confirmed) or off (stepped down).
    pub(super) fn answer_gates(&mut self) {
        let gate = self.ch.node.machine().live_gate();
        let engine = self.ch.engine.is_some();
        self.ch.pending_gates.retain(|g| {
            let ans = match gate {
                _ if !engine => Some(false),
                LiveGate::Open => Some(true),
                LiveGate::Off => Some(false),
                LiveGate::Held { .. } => None,
            };
            match ans {
                Some(a) => {
                    g.set(a);
                    false
                }
                None => true,
            }
        });
    }

    /// Raises and clears the alarms (sync link lost, pair unprotected): a warning in the
    /// log, a line in the event log, and the list in `tandem status`.
    pub(super) fn update_alarms(&mut self, now: Now) {
        if let Some(rec) = self.ch.switch_gap.poll(now.mono) {
            self.switch_measured(&rec);
        }
        let m = self.ch.node.machine();
        let facts = AlarmFacts {
            state: m.state(),
            started: m.enabled(),
            peer_heard_mono_ns: self.ch.node.peer_heard(),
            since_mono_ns: self.host.started_mono,
            late_sends: self.ch.engine.as_ref().map_or(0, |r| {
                r.handle
                    .stats()
                    .pacer
                    .lateness
                    .above(crate::failover::alarms::PACER_LATE_BOUND_NS)
            }),
            refused: self.host.sync.rejects().total() + self.host.control.rejects().total(),
        };
        for c in self.ch.alarms.update(now.mono, &facts) {
            if c.raised {
                tracing::warn!(alarm = c.alarm.name(), "alarm raised: {}", c.detail);
            } else {
                tracing::info!(alarm = c.alarm.name(), "alarm cleared: {}", c.detail);
            }
            crate::net::failover::event_log::alarm(&self.cfg.channel, &c);
        }
    }

    /// The engine's last send, for the heartbeats.
    pub(super) fn report_progress(&mut self, now: Now) {
        let (Some(r), Some(s)) = (&self.ch.engine, &self.ch.stream) else {
            return;
        };
        // On air: what really reached the live group; otherwise the muted position.
        let last = if self.ch.node.machine().is_owner() {
            r.handle.last_live_sent()
        } else {
            r.handle.last_sent().filter(|l| l.target != Target::Off)
        };
        if let Some(l) = last {
            let real = now.real.saturating_sub(now.mono.saturating_sub(l.mono_ns));
            let pos = ns_to_ticks(s.departure_ns(l.index));
            self.ch.node.on_progress(l.index, real, pos);
        }
    }

    /// Self detection (claim 13), primary-initiated synchronisation (claim 5), the end of
    /// the session.
    pub(super) fn policies(&mut self, now: Now) {
        let m = self.ch.node.machine();
        if let (Some(r), Some(_)) = (&self.ch.engine, &self.ch.stream) {
            let next = r.handle.next_index();
            let facts = OutputFacts {
                sending_live: m.sending_live(),
                state: m.state(),
                target_live: r.handle.target() == Target::Live,
                engine_finished: r.finished,
                next_due_mono_ns: r.handle.due_mono_ns(next),
                last_sent_mono_ns: r.handle.last_sent().map(|l| l.mono_ns),
            };
            if let Some(fault) = self.ch.policies.output_stall(now.mono, &facts) {
                self.failing(FailureCause::Timing);
                self.ch.node.event(Event::OutputFailure(fault), now);
                self.flush();
            }
        }
        // Claim 5: the primary pushes its parameters to a secondary that appears, or that
        // synchronises anew (a recovered or stepped-down server never asks in this mode;
        // one that has them already ignores the same parameters).
        let m = self.ch.node.machine();
        let wanted = Policies::push_wanted(
            self.cfg.sync_init == SyncInit::Primary,
            m.is_owner(),
            m.peer_state(),
        );
        if self
            .ch
            .policies
            .push_now(now.mono, wanted, self.ch.node.params().is_some())
        {
            tracing::info!(
                "pushing the session parameters to the peer (primary-initiated synchronisation)"
            );
            self.ch.node.event(Event::SyncRequested, now);
            self.flush();
        }
        // The end of a finite session.
        if self.ch.exit_at.is_none() {
            if let (Some(r), Some(s)) = (&self.ch.engine, &self.ch.stream) {
                let complete = s
                    .datagram_count()
                    .is_some_and(|c| r.handle.next_index() >= c);
                match Policies::session_end(r.finished, complete, r.handle.is_finished()) {
                    Some(SessionEnd::Complete) => {
                        tracing::info!("end of the session");
                        self.ch.node.event(
                            Event::Stop {
                                by: "the end of the session".into(),
                            },
                            now,
                        );
                        self.flush();
                        self.ch.exit_at = Some((now.mono + 50_000_000, 0));
                    }
                    Some(SessionEnd::EngineStopped) => {
                        let err = "the engine stopped before the end of the session".to_string();
                        if self.ch.last_error.as_deref() != Some(err.as_str()) {
                            tracing::error!("{err}");
                            self.ch.last_error = Some(err.clone());
                            if self.ch.node.machine().state().on_air() {
                                self.failing(FailureCause::SendError);
                                self.ch
                                    .node
                                    .event(Event::OutputFailure(OutputFault::SendError(err)), now);
                                self.flush();
                            }
                        }
                    }
                    None => {}
                }
            }
        }
    }

    /// A heartbeat of the server on air: is our muted output in step with it?
    fn in_step_sample(&mut self, index: u64, sent_real_theirs: u64) {
        let m = self.ch.node.machine();
        let (state, locked) = (m.state(), m.locked());
        if !matches!(
            state,
            State::SecondarySynchronizing | State::SecondarySynchronized
        ) {
            return;
        }
        let (Some(off), Some(s), Some(tl), Some(r)) = (
            self.ch.offset_ns,
            &self.ch.stream,
            self.ch.timeline,
            &self.ch.engine,
        ) else {
            return;
        };
        if r.handle.last_sent().is_none() {
            return;
        }
        let err = (sent_real_theirs as i128 - off as i128) - tl.due_real(s, index);
        let Some(e) = self.ch.policies.in_step_sample(state, locked, index, err) else {
            if state == State::SecondarySynchronizing && locked {
                tracing::debug!(index, error_us = (err / 1_000) as i64, "not in step yet");
            }
            return;
        };
        if e == Event::InStep {
            tracing::info!(
                index,
                error_us = (err / 1_000) as i64,
                "muted output in step with the primary"
            );
        }
        let now = self.now();
        self.ch.node.event(e, now);
        self.flush();
    }

    /// Our parameters (on our clock) for secondaries that synchronise behind us.
    pub(super) fn own_params(&self, tl: Timeline) -> Option<SyncParams> {
        let a = self.ch.asset.as_ref()?;
        let muted = self
            .ch
            .muted
            .as_ref()
            .map(|m| m.1)
            .or(self.ch.params_in.as_ref().map(|p| p.muted))
            .unwrap_or(std::net::SocketAddrV4::new(
                std::net::Ipv4Addr::UNSPECIFIED,
                0,
            ));
        Some(SyncParams {
            asset: a.identity(),
            asset_name: a.path.display().to_string(),
            framing: self.cfg.live.framing,
            loop_count: crate::net::failover::session::loop_count_wire(self.cfg.loops),
            origin_real_ns: RealNs(tl.origin_real_ns),
            origin_index: DatagramIndex(tl.origin_index),
            muted,
            live: self.cfg.live.addr,
        })
    }

    /// A live gate request's channel end, for the engine's gate closure.
    pub(super) fn gate_sender(&self) -> std::sync::mpsc::Sender<Arc<super::GateReply>> {
        self.ch.gate_tx.clone()
    }
}
