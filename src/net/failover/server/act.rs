//! What the loop does with the node's outputs: messages on the sync link (and to monitors),
//! engine actions (start, switch, hold, resume, stop; live gate first), the clock offset,
//! and the log line of every state change.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Condvar, Mutex};

use super::{hooks, GateReply, Running, Server, ENGINE_MAX_SLEEP_NS, JOIN_LEAD_NS, START_LEAD_NS};
use crate::failover::machine::{Action, Trigger};
use crate::failover::node::{Output, SendTo};
use crate::failover::state::State;
use crate::failover::wire::Body;
use crate::net::clock::{mono_ns, real_ns, real_to_mono};
use crate::net::engine::{Engine, EngineConfig, GateCheck, OwnershipGate, Sink, Target};
use crate::net::failover::session::{loops_from_wire, Timeline};
use crate::net::failover::{SwitchMode, SyncInit};
use crate::stream::{BoundaryKind, OutputStream};

impl Server {
    pub(super) fn perform(&mut self, o: Output) {
        match o {
            Output::Send { to, msg } => {
                // Who may start synchronisation (claims 4-6): a secondary asks only in
                // `secondary` mode; with a component, parameters travel only through it.
                match (&msg.body, self.cfg.sync_init) {
                    (Body::SyncRequest, SyncInit::Primary | SyncInit::Component) => return,
                    (Body::SyncParams(_), SyncInit::Component) => return,
                    _ => {}
                }
                let addr = match to {
                    SendTo::Peer => SocketAddr::V4(self.cfg.sync_peer),
                    SendTo::Server(id) => self
                        .host
                        .peers
                        .get(&id)
                        .copied()
                        .unwrap_or(SocketAddr::V4(self.cfg.sync_peer)),
                };
                match &msg.body {
                    Body::SyncRequest if !self.ch.asked_logged => {
                        self.ch.asked_logged = true;
                        tracing::info!(to = %addr, "asking the primary for the session parameters (sync request)");
                    }
                    Body::SyncParams(p) if self.cfg.sync_init == SyncInit::Primary => {
                        tracing::info!(
                            to = %addr,
                            origin_index = p.origin_index.0,
                            "pushing the session parameters to the peer (primary-initiated synchronisation)"
                        )
                    }
                    Body::SyncParams(p) => tracing::info!(
                        to = %addr,
                        origin_index = p.origin_index.0,
                        "sending the session parameters"
                    ),
                    _ => {}
                }
                self.host.sync.send(&msg, 0, addr);
                if matches!(
                    msg.body,
                    Body::Heartbeat { .. } | Body::FailedNotice { .. } | Body::Takeover { .. }
                ) {
                    for m in &self.cfg.monitors {
                        self.host.sync.send(&msg, 0, SocketAddr::V4(*m));
                    }
                }
            }
            Output::ClockOffset { offset_ns } => {
                tracing::info!(
                    offset_us = offset_ns / 1_000,
                    "clock offset to the server on air locked (theirs minus ours)"
                );
                self.ch.offset_ns = Some(offset_ns);
            }
            Output::Degraded { component, why } => {
                tracing::warn!("kernel: non-critical component {component} failed: {why}")
            }
            Output::Action(a) => self.action(a),
        }
    }

    fn action(&mut self, a: Action) {
        match a {
            Action::Transition(t) => {
                let m = self.ch.node.machine();
                crate::net::failover::event_log::transition(
                    &self.cfg.channel,
                    &t,
                    m.epoch(),
                    m.peer_last_index(),
                );
                let source = match t.trigger {
                    Trigger::KernelFailure => "kernel".to_string(),
                    other => other.name().to_string(),
                };
                tracing::info!("state {} -> {}: {source}: {}", t.from, t.to, t.detail);
                self.ch.counters.on_transition(&t);
                crate::net::notify::status(&format!(
                    "{}, epoch {} ({} -> {}: {source})",
                    t.to,
                    m.epoch(),
                    t.from,
                    t.to
                ));
                if t.to == State::Failed {
                    if let Some(r) = &self.ch.engine {
                        r.handle.control().fence_live();
                    }
                }
                self.recovery_transition(&t);
                if matches!(t.to, State::PrimaryOffline | State::SecondaryOffline) {
                    self.stop_engine();
                }
                if t.to == State::SecondarySynchronizing {
                    self.ch.policies.synchronising_anew();
                    self.ch.foreign_last = None;
                }
                // A server that steps down synchronises anew: parameters it held (followed
                // before it went on air, or received while it verified its start) are
                // stale. Kept, they make the new owner's (the same timeline re-stamped,
                // often identical) look like "the same session" to `on_params`, and the
                // server never synchronises again.
                if matches!(
                    t.trigger,
                    Trigger::HigherEpoch | Trigger::PeerOnAir | Trigger::HandOverReleased
                ) {
                    self.ch.params_in = None;
                }
                // The primary stopped at the end of a finite session we were following:
                // this server's session is over too.
                if t.trigger == Trigger::PrimaryStopped && self.session_over() {
                    tracing::info!("the primary ended the session");
                    self.ch.exit_at = Some((mono_ns() + 50_000_000, 0));
                }
            }
            Action::StartLive => {
                self.ch.policies.went_live(mono_ns());
                self.start_live()
            }
            Action::SwitchToLive { after_index } => {
                self.ch.policies.went_live(mono_ns());
                self.ch.live_from = None;
                self.switch_to_live(after_index)
            }
            Action::HoldLive if self.engine_on_time() => {
                // The loop was late, not the engine's sender: its output kept its schedule,
                // so the peer saw it and cannot have taken over in between. The machine
                // verifies ownership all the same; a stalled sender is held by the engine's
                // own gate.
                tracing::debug!("hold: the engine's output is on time, not interrupted");
            }
            Action::HoldLive | Action::StopLive => {
                if matches!(a, Action::StopLive) {
                    self.ch.live_from = None;
                }
                if let Some(r) = &self.ch.engine {
                    if r.handle.stop_live() {
                        tracing::info!("live output stopped ({a:?})");
                    }
                }
            }
            Action::ResumeLive => {
                self.ch.policies.went_live(mono_ns());
                // Ownership confirmed: go on from the datagram after the last one that reached
                // the live group, catching up at <= 2x, so the hold loses nothing; never
                // before the first datagram this server owns (a hand-over's index: the
                // datagrams before it are the old owner's).
                if let Some(r) = &self.ch.engine {
                    let next = r.handle.next_index();
                    let last = r.handle.last_live_sent().map(|l| l.index + 1);
                    let from = match (last, self.ch.live_from) {
                        (Some(f), Some(lf)) => Some(f.max(lf)),
                        (f, lf) => f.or(lf),
                    }
                    // (Within half a second: a longer hold resumes at the current position.)
                    .filter(|&f| {
                        f >= next
                            || r.handle.due_mono_ns(next) - r.handle.due_mono_ns(f) < 500_000_000
                    });
                    let result = match from {
                        Some(f) if f != next => r.handle.switch_at(f, Target::Live),
                        _ => r.handle.set_target(Target::Live),
                    };
                    match result {
                        Ok(()) => tracing::info!(
                            from = from.unwrap_or(next),
                            "live output resumed: ownership confirmed"
                        ),
                        Err(e) => tracing::error!("cannot resume live output: {e}"),
                    }
                }
            }
            Action::SwitchToLiveAt { index } => {
                self.ch.policies.went_live(mono_ns());
                self.ch.live_from = Some(index);
                if let Some(r) = &self.ch.engine {
                    match r.handle.switch_at(index, Target::Live) {
                        Ok(()) => {
                            tracing::info!(
                                from = index,
                                engine_at = r.handle.next_index(),
                                "hand-over: taking the live group at the offered datagram"
                            );
                            self.ch.switches.push(serde_json::json!({
                                "from_index": index,
                                "engine_index": r.handle.next_index(),
                                "mono_ns": mono_ns(),
                            }));
                            self.measure_switch(index);
                        }
                        Err(e) => tracing::error!("hand-over: cannot take the live group: {e}"),
                    }
                }
            }
            Action::ReleaseLiveAt { index } => {
                if let Some(r) = &self.ch.engine {
                    // The datagrams before `index` still go live (a resume after a hold
                    // included); none from `index` on: they go to the muted group, or
                    // nowhere when this server has none.
                    r.handle.release_live_at(index);
                    let to = r.handle.fallback();
                    tracing::info!(
                        at = index,
                        engine_at = r.handle.next_index(),
                        "hand-over accepted: leaving the live group at the offered datagram (then {to:?})"
                    );
                }
            }
            Action::CancelRelease => {
                if let Some(r) = &self.ch.engine {
                    r.handle.cancel_release();
                    tracing::warn!(
                        engine_at = r.handle.next_index(),
                        "hand-over given up by the peer: staying on the live group"
                    );
                }
            }
            Action::StartMuted => self.start_muted(),
            Action::StopMuted => self.stop_engine(),
            _ => {}
        }
    }

    /// The primary goes on air (ownership verified).
    fn start_live(&mut self) {
        if let Some(r) = &self.ch.engine {
            if let Err(e) = r.handle.set_target(Target::Live) {
                tracing::error!("cannot go on air: {e}");
            }
            return;
        }
        let Some(asset) = self.ch.asset.clone() else {
            tracing::error!("cannot go on air: no asset");
            return;
        };
        let session = asset.session_text(self.cfg.session_id.as_deref(), self.cfg.live.addr);
        let stream = match asset.stream(session, self.cfg.live.framing, self.cfg.loops) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!("cannot go on air: {e:#}");
                self.ch.last_error = Some(format!("{e:#}"));
                return;
            }
        };
        let now_real = real_ns();
        let origin = self
            .ch
            .requested_start
            .take()
            .or(self.cfg.start_at_ms.map(|ms| ms.saturating_mul(1_000_000)))
            .unwrap_or(now_real + START_LEAD_NS);
        let tl = Timeline {
            origin_real_ns: origin,
            origin_index: 0,
        };
        let start = if origin >= now_real + START_LEAD_NS / 10 {
            0
        } else {
            tl.index_at(&stream, now_real + START_LEAD_NS / 10)
        };
        if stream.datagram_count().is_some_and(|c| start >= c) {
            tracing::error!("the session starting at {origin} ns is already over");
            self.ch.last_error = Some("the session is already over".into());
            return;
        }
        if !self.start_engine(stream, tl, start, Target::Live) {
            return;
        }
        tracing::info!(
            start_index = start,
            origin_unix_ms = origin / 1_000_000,
            "on air"
        );
        if let Some(p) = self.own_params(tl) {
            let now = self.now();
            self.ch.node.set_params(p, now);
        }
    }

    /// The secondary's timeline is locked: start the identical stream into the muted group.
    fn start_muted(&mut self) {
        let (Some(p), Some(off), Some(asset)) = (
            self.ch.params_in.clone(),
            self.ch.offset_ns,
            self.ch.asset.clone(),
        ) else {
            tracing::error!(
                "cannot start the muted output: parameters, clock offset or asset missing"
            );
            return;
        };
        if self.ch.muted.is_none() {
            if p.muted.port() == 0 || p.muted.ip().is_unspecified() {
                tracing::error!("no muted group: give --muted");
                self.ch.last_error = Some("no muted group: give --muted".into());
                return;
            }
            let opts = crate::net::sockets::SenderOptions {
                ttl: self.cfg.ttl,
                ..crate::net::sockets::SenderOptions::new(self.cfg.iface)
            };
            match crate::net::sockets::sender(p.muted, &opts) {
                Ok(s) => self.ch.muted = Some((s, p.muted)),
                Err(e) => {
                    tracing::error!("muted group {}: {e}", p.muted);
                    return;
                }
            }
        }
        let session = asset.session_text(self.cfg.session_id.as_deref(), self.cfg.live.addr);
        let stream = match asset.stream(session, p.framing, loops_from_wire(p.loop_count)) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!("cannot start the muted output: {e:#}");
                return;
            }
        };
        let tl = Timeline::from_params(&p, off);
        let start = tl.index_at(&stream, real_ns() + JOIN_LEAD_NS);
        if stream.datagram_count().is_some_and(|c| start >= c) {
            tracing::warn!("the primary's session is over: nothing to follow");
            return;
        }
        if self.start_engine(stream, tl, start, Target::Muted) {
            tracing::info!(
                start_index = start,
                muted = %self.ch.muted.as_ref().map_or(String::new(), |m| m.1.to_string()),
                "muted output started, joining the session in progress"
            );
            if let Some(own) = self.own_params(tl) {
                let now = self.now();
                self.ch.node.set_params(own, now);
            }
        }
    }

    /// The takeover: from the datagram after the primary's last (seamless), or from the next
    /// PCR / frame boundary after it, even when its time has passed (the engine rewinds and
    /// catches up at <= 2x).
    fn switch_to_live(&mut self, after_index: Option<u64>) {
        let (Some(r), Some(s)) = (&self.ch.engine, &self.ch.stream) else {
            tracing::error!("cannot take the live group: no muted output running");
            return;
        };
        let known = match (after_index, self.ch.foreign_last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let from = match (known, self.cfg.switch_at) {
            (None, _) => r.handle.next_index(),
            (Some(k), SwitchMode::Seamless) => k + 1,
            (Some(k), SwitchMode::Pcr) => s.next_boundary(k, BoundaryKind::Pcr),
            (Some(k), SwitchMode::Frame) => s.next_boundary(k, BoundaryKind::Frame),
        };
        let at = r.handle.next_index();
        match r.handle.switch_at(from, Target::Live) {
            Ok(()) => {
                tracing::info!(
                    from,
                    engine_at = at,
                    primary_last = ?known,
                    mode = ?self.cfg.switch_at,
                    "taking the live group"
                );
                self.ch.switches.push(serde_json::json!({
                    "from_index": from,
                    "primary_last_index": known,
                    "engine_index": at,
                    "mono_ns": mono_ns(),
                }));
                self.measure_switch(from);
            }
            Err(e) => tracing::error!("cannot take the live group: {e}"),
        }
    }

    /// Starts measuring the switch that sends from datagram `from` (`switch_gap.rs`).
    fn measure_switch(&mut self, from: u64) {
        // The machine has made the transition on air when it asks for the switch.
        let reason = self
            .ch
            .node
            .machine()
            .history()
            .last()
            .filter(|t| t.to.on_air())
            .map_or("unknown", |t| t.trigger.name());
        let due = self.due_mono(from);
        self.ch.switch_gap.switched(reason, mono_ns(), from, due);
    }

    /// A switch measured: logged, recorded in the last entry of `switches` (status), the
    /// event log and the metrics.
    pub(super) fn switch_measured(&mut self, r: &crate::failover::switch_gap::SwitchRecord) {
        let ms = |ns: Option<u64>| ns.map(|n| n as f64 / 1e6);
        tracing::info!(
            reason = r.reason,
            from = r.from_index,
            gap_ms = ?ms(r.gap_ns),
            late_ms = ?r.late_ns.map(|n| n as f64 / 1e6),
            lost = ?r.lost,
            repeated = ?r.repeated,
            "switch measured on the live group: the old owner's last datagram to this server's first"
        );
        if let Some(serde_json::Value::Object(o)) = self.ch.switches.last_mut() {
            o.insert("reason".into(), r.reason.into());
            o.insert("gap_us".into(), r.gap_ns.map(|n| n / 1_000).into());
            o.insert("late_us".into(), r.late_ns.map(|n| n / 1_000).into());
            o.insert("lost".into(), r.lost.into());
            o.insert("repeated".into(), r.repeated.into());
        }
        self.ch.counters.last_switch_gap_ns = r.gap_ns.or(self.ch.counters.last_switch_gap_ns);
        crate::net::failover::event_log::switch(&self.cfg.channel, r);
    }

    /// Starts an engine for `stream` on timeline `tl` from datagram `start`.
    fn start_engine(
        &mut self,
        stream: Arc<OutputStream>,
        tl: Timeline,
        start: u64,
        target: Target,
    ) -> bool {
        self.stop_engine();
        let Some(asset) = &self.ch.asset else {
            return false;
        };
        let files = match asset.open() {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("{e:#}");
                self.ch.last_error = Some(format!("{e:#}"));
                return false;
            }
        };
        let zero = tl.zero_real(&stream).clamp(0, u64::MAX as i128) as u64;
        let origin_mono = real_to_mono(zero);
        let mut ec = EngineConfig::new(stream.clone(), files, origin_mono);
        ec.start_index = start;
        let sock = |s: &std::net::UdpSocket| s.try_clone();
        match sock(&self.ch.live_tx) {
            Ok(s) => {
                ec.live = Some(Sink {
                    socket: s,
                    dest: self.cfg.live.addr,
                })
            }
            Err(e) => {
                tracing::error!("live socket: {e}");
                return false;
            }
        }
        if let Some((m, addr)) = &self.ch.muted {
            if let Ok(s) = sock(m) {
                ec.muted = Some(Sink {
                    socket: s,
                    dest: *addr,
                });
            }
        }
        if target == Target::Muted && ec.muted.is_none() {
            tracing::error!("no muted group to send to");
            return false;
        }
        ec.initial_target = target;
        ec.max_sleep_ns = ENGINE_MAX_SLEEP_NS;
        ec.late_threshold_ns = 1_000_000;
        let h = hooks(&self.host.supervisor, self.host.faults);
        ec.supervision = Some(h.clone());
        let (tx, rx) = sync_channel(1024);
        ec.events = Some(tx);
        ec.waker = Some(self.host.waker.clone());
        ec.gate = Some(self.ownership_gate(h.clone()));
        match Engine::start(ec) {
            Ok(handle) => {
                self.host.supervisor.engine_started(h, handle.control());
                self.ch.engine = Some(Running {
                    handle,
                    events: rx,
                    finished: false,
                });
                self.ch.stream = Some(stream);
                self.ch.timeline = Some(tl);
                true
            }
            Err(e) => {
                tracing::error!("cannot start the engine: {e}");
                self.ch.last_error = Some(format!("engine: {e}"));
                false
            }
        }
    }

    /// The engine's ownership gate: a live send later than the stall bound waits until the
    /// loop (sockets drained first) has verified that this server still owns the live group.
    fn ownership_gate(&self, hooks: Arc<crate::net::faults::Supervision>) -> OwnershipGate {
        let m = self.ch.node.config().machine;
        let tx = Mutex::new(self.gate_sender());
        let waker = self.host.waker.clone();
        let wait_ns = 2 * m.verify_timeout_ns + 20_000_000;
        OwnershipGate {
            after_ns: m.stall_verify_ns,
            check: Arc::new(move |c: GateCheck| {
                let g = Arc::new(GateReply {
                    late_ns: c.late_ns,
                    answer: Mutex::new(None),
                    cv: Condvar::new(),
                });
                {
                    let tx = tx.lock().unwrap_or_else(|e| e.into_inner());
                    if tx.send(g.clone()).is_err() {
                        return false;
                    }
                }
                let _ = waker.wake();
                let deadline = mono_ns() + wait_ns;
                let mut a = g.answer.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(ok) = *a {
                        return ok;
                    }
                    let now = mono_ns();
                    if now >= deadline {
                        return false;
                    }
                    // Waiting for the verdict is not a hang of the pacer.
                    hooks.sender_alive.store(now, Ordering::Relaxed);
                    a =
                        g.cv.wait_timeout(a, std::time::Duration::from_millis(1))
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                }
            }),
        }
    }

    /// Whether the session followed is finite and past its last datagram by now.
    fn session_over(&self) -> bool {
        let (Some(s), Some(tl)) = (&self.ch.stream, &self.ch.timeline) else {
            return false;
        };
        let now = real_ns();
        s.datagram_count()
            .is_some_and(|c| tl.index_at(s, now + 100_000_000) >= c)
    }

    /// Whether the engine's sender keeps its schedule: its next datagram is not overdue by
    /// the stall bound, or it sent one within that bound (a planned catch-up).
    fn engine_on_time(&self) -> bool {
        let Some(r) = &self.ch.engine else {
            return false;
        };
        let bound = self.ch.node.config().machine.stall_verify_ns as i128;
        let now = mono_ns() as i128;
        let due = r.handle.due_mono_ns(r.handle.next_index()) as i128;
        let recent = r
            .handle
            .last_sent()
            .is_some_and(|l| now - (l.mono_ns as i128) < bound);
        r.handle.target() == Target::Live && (due + bound >= now || recent)
    }

    /// Stops and forgets the engine.
    pub(super) fn stop_engine(&mut self) {
        // A sender waiting in the gate is answered first, or joining it would wait.
        while let Ok(g) = self.ch.gate_rx.try_recv() {
            self.ch.pending_gates.push(g);
        }
        for g in self.ch.pending_gates.drain(..) {
            g.set(false);
        }
        if let Some(r) = self.ch.engine.take() {
            self.host.supervisor.engine_stopped();
            r.handle.stop();
            drop(r);
        }
    }
}
