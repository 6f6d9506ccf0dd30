//! Running the channels of a `tandem serve` configuration in one process.
//!
//! The host binds two sockets every channel shares ([`HostSocket`]): the sync link (one per
//! host pair) and the control port. Each channel is the one-channel server of
//! `tandem primary` / `tandem secondary` ([`Server`]) on a thread of its own, in the role the
//! file gives it on this host, with its sync and control traffic routed to it by its session
//! (`docs/serve.md`, "Identities a channel derives"). A channel that cannot start (an
//! unreadable asset, a group it cannot join) reports its error and the others run.
//!
//! Session-0 requests on the control port (`tandem status HOST:PORT` without `--channel`)
//! are answered by the host with the listing of its channels ([`listing`]).

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

use super::config::{ChannelConfig, Loop, ServeConfig};
use crate::failover::absent::{AbsentParams, AbsentPrimary};
use crate::failover::failback::Failback;
use crate::failover::state::Role;
use crate::failover::wire::{self, Body, Key, Msg, SenderRole, Stamper};
use crate::net::clock::{mono_ns, real_ns};
use crate::net::failover::host_link::{HostHandler, HostSocket};
use crate::net::failover::server::{
    default_server_id, Server, ServerConfig, SharedHost, StopHandle, CONTROL_ID_BIT,
};
use crate::net::failover::SyncInit;

/// What the listing knows of one channel.
#[derive(Debug)]
struct Entry {
    name: String,
    role: Role,
    live: String,
    snapshot: crate::net::http::Shared,
    /// Why it is not running (start-up error, or how it ended).
    ended: Option<String>,
}

type Entries = Arc<Mutex<Vec<Entry>>>;

/// One running channel.
struct Running {
    name: String,
    stop: StopHandle,
    thread: JoinHandle<i32>,
    /// How it was started (a restart in another role starts from it).
    cfg: ServerConfig,
    /// Started as the secondary: the rule that takes it when its primary is never heard.
    absent: Option<AbsentPrimary>,
    /// `failback = true` and this host is not the preferred primary: the hand-back rule.
    failback: Option<Failback>,
    snapshot: crate::net::http::Shared,
}

/// The running host: its shared sockets and its channels.
pub struct Host {
    /// The configuration running (a change a reload could not apply keeps its old channel).
    cfg: ServeConfig,
    key: Option<Key>,
    sync: Arc<HostSocket>,
    control: Arc<HostSocket>,
    entries: Entries,
    running: Vec<Running>,
    /// Channels that could not start.
    pub failed: usize,
    /// Reload requests from the control port (who asked).
    reloads: std::sync::mpsc::Receiver<std::net::SocketAddr>,
    replies: Arc<HostReplies>,
}

/// Starts one channel's server on a thread of its own.
fn spawn(scfg: ServerConfig) -> Result<Running, String> {
    let name = scfg.channel.clone();
    let snapshot = match &scfg.shared {
        Some(h) => h.snapshot.clone(),
        None => Arc::default(),
    };
    let absent = (scfg.role == Role::Secondary)
        .then(|| AbsentPrimary::new(AbsentParams::default(), mono_ns()));
    let server = Server::new(scfg.clone()).map_err(|e| format!("{e:#}"))?;
    let stop = server.stop_handle();
    let span_name = name.clone();
    let thread = std::thread::Builder::new()
        .name(thread_name(&name))
        .spawn(move || {
            let _span = tracing::info_span!("channel", name = %span_name).entered();
            match server.run() {
                Ok(code) => code,
                Err(e) => {
                    tracing::error!("channel stopped: {e:#}");
                    super::super::EXIT_RUNTIME
                }
            }
        })
        .map_err(|e| format!("cannot start its thread: {e}"))?;
    Ok(Running {
        name,
        stop,
        thread,
        cfg: scfg,
        absent,
        failback: None,
        snapshot,
    })
}

/// The [`ServerConfig`] of one channel on this host.
fn server_config(
    cfg: &ServeConfig,
    ch: &ChannelConfig,
    key: Option<Key>,
    shared: SharedHost,
) -> ServerConfig {
    let h = &cfg.host;
    let role = if ch.primary_on(&h.name) {
        Role::Primary
    } else {
        Role::Secondary
    };
    ServerConfig {
        role,
        asset: ch.asset.clone(),
        live: ch.live,
        muted: Some(ch.muted.addr),
        iface: ch.iface,
        ttl: 1,
        loops: match ch.looping {
            Loop::Once => Some(1),
            Loop::Times(n) => Some(n),
            Loop::Forever => None,
            Loop::AsListed => match &ch.asset {
                Some(p) if crate::io::playlist::loops_by_default(p) => None,
                _ => Some(1),
            },
        },
        start_at_ms: None,
        session_id: Some(ch.session_text()),
        sync_listen: h.sync_listen,
        sync_peer: h.sync_peer,
        control_listen: h.control_listen,
        monitors: Vec::new(),
        miss: ch.miss,
        heartbeat_ns: ch.heartbeat_us.map(|u| u * 1_000),
        switch_at: ch.switch_at,
        key,
        sync_init: SyncInit::Secondary,
        no_detect: false,
        live_path_rule: true,
        injections: ch.inject.clone(),
        server_id: default_server_id(h.sync_listen),
        start_mono_ns: mono_ns(),
        channel: ch.name.clone(),
        http_listen: None,
        http_token: None,
        shared: Some(shared),
    }
}

impl Host {
    /// Binds the host's sockets and starts every channel. Errors: the host's own sockets or
    /// key file (nothing runs); a channel's error is logged and counted in `failed`.
    pub fn start(cfg: &ServeConfig) -> anyhow::Result<Host> {
        let h = &cfg.host;
        let key = match &h.key_file {
            Some(p) => Some(
                crate::net::failover::link::read_key_file(p)
                    .with_context(|| format!("[host] key_file {}", p.display()))?,
            ),
            None => {
                tracing::warn!(
                    "no [host] key_file: sync and control messages are authenticated with keys derived from each channel's session id; anyone who knows a channel's name can forge them"
                );
                None
            }
        };
        let entries: Entries = Arc::default();
        let replies = Arc::new(HostReplies {
            key: key.clone().unwrap_or_else(|| Key::derive_from_session(0)),
            stamper: Mutex::new(Stamper::new(
                SenderRole::Primary,
                default_server_id(h.sync_listen) | CONTROL_ID_BIT,
                real_ns(),
                0,
            )),
            sock: Mutex::new(None),
        });
        let (reload_tx, reloads) = std::sync::mpsc::channel();
        let sync = Arc::new(
            HostSocket::bind("sync", h.sync_listen, None)
                .with_context(|| format!("[host] sync_listen {}", h.sync_listen))?,
        );
        let control = Arc::new(
            HostSocket::bind(
                "control",
                h.control_listen,
                Some(host_handler(
                    entries.clone(),
                    replies.clone(),
                    h.name.clone(),
                    reload_tx,
                )),
            )
            .with_context(|| format!("[host] control_listen {}", h.control_listen))?,
        );
        if let Some(addr) = h.http_listen {
            let l = crate::net::http::HttpServer::start(
                addr,
                HostPublisher {
                    host: h.name.clone(),
                    entries: entries.clone(),
                    key: key.clone(),
                    control: h.control_listen,
                },
                h.token.clone(),
            )
            .with_context(|| format!("[host] http_listen {addr}"))?;
            tracing::info!(addr = %l.addr, "http: serving /metrics, /api/v1/status and the status page for every channel");
        }
        let mut host = Host {
            cfg: cfg.clone(),
            key,
            sync,
            control,
            entries,
            running: Vec::new(),
            failed: 0,
            reloads,
            replies,
        };
        for ch in &cfg.channels {
            let entry = host.start_channel(ch);
            if entry.ended.is_some() {
                host.failed += 1;
            }
            host.lock().push(entry);
        }
        Ok(host)
    }

    /// Starts one channel; its listing entry (with the error when it cannot start).
    fn start_channel(&mut self, ch: &ChannelConfig) -> Entry {
        let snapshot: crate::net::http::Shared = Arc::default();
        let shared = SharedHost {
            sync: self.sync.clone(),
            control: self.control.clone(),
            snapshot: snapshot.clone(),
        };
        let scfg = server_config(&self.cfg, ch, self.key.clone(), shared);
        let mut entry = Entry {
            name: ch.name.clone(),
            role: scfg.role,
            live: ch.live.to_string(),
            snapshot,
            ended: None,
        };
        match spawn(scfg) {
            Ok(mut r) => {
                r.failback = self.failback_rule_of(ch);
                self.running.push(r)
            }
            Err(e) => {
                tracing::error!(channel = %ch.name, "channel cannot start: {e}");
                eprintln!("tandem serve: channel '{}': {e}", ch.name);
                entry.ended = Some(e);
            }
        }
        entry
    }

    /// Stops one channel (off air, a last heartbeat) and waits up to 5 s for its thread.
    fn stop_channel(&mut self, name: &str) {
        let Some(i) = self.running.iter().position(|r| r.name == name) else {
            return;
        };
        let r = self.running.swap_remove(i);
        r.stop.stop();
        let deadline = mono_ns() + 5_000_000_000;
        while !r.thread.is_finished() && mono_ns() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if r.thread.is_finished() {
            let _ = r.thread.join();
        } else {
            tracing::error!(channel = %name, "the channel did not stop within 5 s");
        }
    }

    /// Whether channel `name` is on air here (its last published snapshot).
    fn on_air(&self, name: &str) -> bool {
        self.lock().iter().any(|e| {
            e.name == name
                && e.snapshot
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .is_some_and(|s| s.on_air)
        })
    }

    /// Hands channel `ch` (on air here) to its synchronised peer: a switchover through the
    /// host's own control port, then waits up to 3 s until it is off air here.
    fn hand_off(&self, ch: &ChannelConfig) -> Result<(), String> {
        let session =
            crate::net::failover::link::wire_session(Some(&ch.session_text()), ch.live.addr);
        let key = self
            .key
            .clone()
            .unwrap_or_else(|| Key::derive_from_session(session));
        let mut c = crate::net::failover::client::Client::new(SenderRole::Client, key, session)
            .map_err(|e| e.to_string())?;
        let to = self.cfg.host.control_listen;
        let ask = |c: &mut crate::net::failover::client::Client| {
            c.ask(
                to,
                Body::SwitchoverRequest,
                1,
                Duration::from_millis(1000),
                |b| match b {
                    Body::StatusReply { json } => {
                        serde_json::from_str::<serde_json::Value>(json).ok()
                    }
                    _ => None,
                },
            )
            .map_err(|e| e.to_string())
        };
        // A refusal while the output is held for a moment (a stall) is asked again, for 1 s.
        let mut answer = ask(&mut c)?;
        for _ in 0..10 {
            if answer["reason"] != crate::failover::machine::HELD_REFUSAL {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            answer = ask(&mut c)?;
        }
        if answer["accepted"] != serde_json::Value::Bool(true) {
            return Err(format!(
                "switchover refused: {}",
                answer["reason"].as_str().unwrap_or("no reason given")
            ));
        }
        let deadline = mono_ns() + 3_000_000_000;
        while mono_ns() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            if !self.on_air(&ch.name) {
                return Ok(());
            }
        }
        Err("still on air 3 s after the switchover was accepted".into())
    }

    /// Applies a new configuration (SIGHUP): channels added start, removed ones stop,
    /// unchanged ones are not touched; a changed one is handed to its peer first when it is
    /// on air here (a switchover), then restarted with its new settings; a change that
    /// cannot be handed over is not applied (the channel keeps running as it was, and a
    /// later reload tries again). A change of the `[host]` table applies nothing.
    pub fn reload(&mut self, new: &ServeConfig) -> Result<Vec<String>, String> {
        if new.host != self.cfg.host {
            return Err(
                "the [host] table changed: restart tandem serve to apply it; nothing changed"
                    .into(),
            );
        }
        let mut report = Vec::new();
        let mut applied: Vec<ChannelConfig> = Vec::new();
        let mut entries: std::collections::HashMap<String, Entry> = {
            let mut e = self.lock();
            e.drain(..).map(|x| (x.name.clone(), x)).collect()
        };
        let old: Vec<ChannelConfig> = self.cfg.channels.clone();
        for ch in old
            .iter()
            .filter(|c| !new.channels.iter().any(|n| n.name == c.name))
        {
            self.stop_channel(&ch.name);
            entries.remove(&ch.name);
            report.push(format!("channel '{}' removed: stopped", ch.name));
        }
        for ch in &new.channels {
            match old.iter().find(|c| c.name == ch.name) {
                None => {
                    let e = self.start_channel(ch);
                    report.push(match &e.ended {
                        None => format!("channel '{}' added: started", ch.name),
                        Some(err) => format!("channel '{}' added: cannot start: {err}", ch.name),
                    });
                    entries.insert(ch.name.clone(), e);
                    applied.push(ch.clone());
                }
                Some(was) if was == ch => applied.push(was.clone()),
                Some(was) => {
                    // The listing must not be locked while the hand-off reads it.
                    self.lock().extend(entries.remove(&ch.name));
                    let handed = if self.on_air(&ch.name) {
                        self.hand_off(was)
                    } else {
                        Ok(())
                    };
                    let mut e = self.lock();
                    let i = e.iter().position(|x| x.name == ch.name);
                    if let Some(x) = i.map(|i| e.remove(i)) {
                        entries.insert(ch.name.clone(), x);
                    }
                    drop(e);
                    match handed {
                        Ok(()) => {
                            self.stop_channel(&ch.name);
                            let e = self.start_channel(ch);
                            report.push(match &e.ended {
                                None => format!("channel '{}' changed: restarted", ch.name),
                                Some(err) => {
                                    format!("channel '{}' changed: cannot restart: {err}", ch.name)
                                }
                            });
                            entries.insert(ch.name.clone(), e);
                            applied.push(ch.clone());
                        }
                        Err(why) => {
                            report.push(format!(
                                "channel '{}' changed but not applied (it is on air here and could not be handed over: {why})",
                                ch.name
                            ));
                            applied.push(was.clone());
                        }
                    }
                }
            }
        }
        let mut e = self.lock();
        for ch in &applied {
            if let Some(x) = entries.remove(&ch.name) {
                e.push(x);
            }
        }
        drop(e);
        self.cfg.channels = applied;
        Ok(report)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The start-up rule of active/active (`crate::failover::absent`): a channel run here as
    /// the secondary whose primary has not been heard since it started is restarted as its
    /// primary, which verifies that nobody is on air before it sends.
    pub fn tick(&mut self) {
        self.failback_tick();
        let now = mono_ns();
        for i in 0..self.running.len() {
            let r = &mut self.running[i];
            let state = r
                .snapshot
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(|s| s.state);
            let Some(rule) = r.absent.as_mut() else {
                continue;
            };
            if !rule.poll(now, state) {
                continue;
            }
            let wait_s = AbsentParams::default().wait_ns as f64 / 1e9;
            tracing::warn!(
                channel = %r.name,
                "no primary heard for {wait_s} s since the channel started: this host takes it as the primary (after verifying that nobody is on air)"
            );
            r.stop.stop();
            let old = self.running.swap_remove(i);
            let deadline = now + 5_000_000_000;
            while !old.thread.is_finished() && mono_ns() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if !old.thread.is_finished() {
                tracing::error!(channel = %old.name, "the secondary did not stop within 5 s; left as it is");
                self.running.push(old);
                return;
            }
            let _ = old.thread.join();
            let mut cfg = old.cfg;
            cfg.role = Role::Primary;
            cfg.start_mono_ns = mono_ns();
            match spawn(cfg) {
                Ok(mut new) => {
                    new.failback = self.failback_rule(&new.name);
                    if let Some(e) = self.lock().iter_mut().find(|e| e.name == new.name) {
                        e.role = Role::Primary;
                    }
                    self.running.push(new);
                }
                Err(e) => {
                    tracing::error!(channel = %old.name, "cannot restart the channel as the primary: {e}");
                    if let Some(x) = self.lock().iter_mut().find(|x| x.name == old.name) {
                        x.ended = Some(e);
                    }
                }
            }
            return; // one per tick: the indices moved
        }
    }

    /// The fail-back rule of a channel this host is not the preferred primary of.
    fn failback_rule_of(&self, ch: &ChannelConfig) -> Option<Failback> {
        (ch.failback && !ch.primary_on(&self.cfg.host.name))
            .then(|| Failback::new((ch.failback_after_s * 1e9) as u64))
    }

    /// [`Host::failback_rule_of`] by name.
    fn failback_rule(&self, name: &str) -> Option<Failback> {
        let ch = self.cfg.channels.iter().find(|c| c.name == name)?;
        self.failback_rule_of(ch)
    }

    /// Fail-back (`failback = true`, `crate::failover::failback`): a channel on air here
    /// whose preferred host has been synchronised for `failback_after_s` is handed back to
    /// it (a switchover).
    fn failback_tick(&mut self) {
        let now = mono_ns();
        let mut due = Vec::new();
        for r in &mut self.running {
            let Some(rule) = r.failback.as_mut() else {
                continue;
            };
            let (on_air, peer) = match r
                .snapshot
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            {
                Some(s) => (
                    s.on_air,
                    s.status["peer"]["state"]
                        .as_str()
                        .and_then(crate::failover::state::State::from_name),
                ),
                None => (false, None),
            };
            if rule.poll(now, on_air, peer) {
                due.push(r.name.clone());
            }
        }
        for name in due {
            let Some(ch) = self.cfg.channels.iter().find(|c| c.name == name).cloned() else {
                continue;
            };
            tracing::info!(channel = %name, preferred = %ch.primary, after_s = ch.failback_after_s, "fail-back: the preferred host has been synchronised long enough; handing the channel back");
            match self.hand_off(&ch) {
                Ok(()) => {
                    tracing::info!(channel = %name, "fail-back: handed back to host {}", ch.primary)
                }
                Err(e) => {
                    tracing::warn!(channel = %name, "fail-back not done: {e}; trying again after another {} s", ch.failback_after_s)
                }
            }
        }
    }

    /// The next reload request from the control port, if any (who asked).
    pub fn reload_request(&self) -> Option<std::net::SocketAddr> {
        self.reloads.try_recv().ok()
    }

    /// Answers a reload request: `{reloaded, report | reason}` as JSON.
    pub fn answer_reload(&self, to: std::net::SocketAddr, answer: &serde_json::Value) {
        self.replies.send_later(
            Body::StatusReply {
                json: answer.to_string(),
            },
            to,
        );
    }

    /// Channels still running.
    pub fn running(&self) -> usize {
        self.running
            .iter()
            .filter(|r| !r.thread.is_finished())
            .count()
    }

    /// Collects channels that ended (their session over, or an error), noting how; the
    /// worst exit code seen so far.
    pub fn reap(&mut self) -> i32 {
        let mut worst = 0;
        let mut i = 0;
        while i < self.running.len() {
            if !self.running[i].thread.is_finished() {
                i += 1;
                continue;
            }
            let r = self.running.swap_remove(i);
            let code = r.thread.join().unwrap_or(super::super::EXIT_RUNTIME);
            tracing::info!(channel = %r.name, code, "channel ended");
            worst = worst.max(code);
            if let Some(e) = self.lock().iter_mut().find(|e| e.name == r.name) {
                e.ended = Some(format!("ended (exit code {code})"));
            }
        }
        worst
    }

    /// Operator stop of every channel (each goes off air and sends its last heartbeat),
    /// then waits for them.
    pub fn stop(mut self) -> i32 {
        for r in &self.running {
            r.stop.stop();
        }
        let deadline = mono_ns() + 5_000_000_000;
        while self.running() > 0 && mono_ns() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let worst = self.reap();
        for r in self.running.drain(..) {
            tracing::error!(channel = %r.name, "channel did not stop within 5 s");
        }
        worst
    }
}

/// A thread name of at most 15 bytes (Linux's limit): `ch-` and the channel's name.
fn thread_name(name: &str) -> String {
    let mut s = format!("ch-{name}");
    while s.len() > 15 {
        s.pop();
    }
    s
}

/// What the host itself answers on its control port (session 0): signs and sends replies.
struct HostReplies {
    key: Key,
    stamper: Mutex<Stamper>,
    sock: Mutex<Option<std::net::UdpSocket>>,
}

impl HostReplies {
    fn send(&self, sock: &std::net::UdpSocket, body: Body, to: std::net::SocketAddr) {
        let header = self
            .stamper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .header(0, false, real_ns());
        if let Ok(b) = wire::encode(&Msg { header, body }, &self.key) {
            let _ = sock.send_to(&b, to);
        }
    }

    /// A reply from outside the routing thread (a reload's report).
    fn send_later(&self, body: Body, to: std::net::SocketAddr) {
        if let Some(s) = self.sock.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            self.send(s, body, to);
        }
    }
}

/// The host's answer to session-0 requests: the listing (status), and reload requests
/// handed to the main loop (`reloads`), which answers with [`HostReplies::send_later`].
fn host_handler(
    entries: Entries,
    replies: Arc<HostReplies>,
    host: String,
    reloads: std::sync::mpsc::Sender<std::net::SocketAddr>,
) -> HostHandler {
    let mut guard = wire::ReplayGuard::new();
    Box::new(move |bytes, from, sock| {
        let Ok(msg) = wire::decode(bytes, &replies.key, None) else {
            return;
        };
        if guard.check(&msg.header).is_err() {
            return;
        }
        match msg.body {
            Body::StatusRequest => {
                let json = {
                    let e = entries.lock().unwrap_or_else(|e| e.into_inner());
                    listing(&host, &e, false).to_string()
                };
                replies.send(sock, Body::StatusReply { json }, from);
            }
            Body::ReloadRequest => {
                {
                    let mut s = replies.sock.lock().unwrap_or_else(|e| e.into_inner());
                    if s.is_none() {
                        *s = sock.try_clone().ok();
                    }
                }
                let _ = reloads.send(from);
            }
            _ => {}
        }
    })
}

/// The host's channels for its HTTP listener: every channel's metrics, and the listing with
/// each channel's whole status object.
struct HostPublisher {
    host: String,
    entries: Entries,
    /// The host's key file (`None`: keys derived from each channel's session).
    key: Option<Key>,
    control: std::net::SocketAddrV4,
}

impl HostPublisher {
    /// The host's control port as seen with the key of wire session `session`.
    fn port(&self, session: u64) -> crate::net::failover::api::ControlPort {
        let key = self
            .key
            .clone()
            .unwrap_or_else(|| Key::derive_from_session(session));
        crate::net::failover::api::ControlPort::new(key, self.control)
    }
}

impl crate::net::http::Publisher for HostPublisher {
    fn snapshots(&self) -> Vec<crate::metrics::Snapshot> {
        let e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.iter()
            .filter_map(|e| e.snapshot.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    fn status(&self) -> Option<serde_json::Value> {
        let e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        Some(listing(&self.host, &e, true))
    }

    fn command(&self, c: &crate::net::http::Command) -> crate::net::failover::api::Answer {
        use crate::net::http::Command;
        match c {
            Command::Reload => self.port(0).reload(),
            Command::Switchover { channel: None } => Err((
                404,
                serde_json::json!({"error": "a host runs many channels: POST /api/v1/channels/NAME/switchover"}),
            )),
            Command::Switchover {
                channel: Some(name),
            } => {
                let known = {
                    let e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
                    e.iter().any(|e| e.name == *name)
                };
                if !known {
                    return Err((
                        404,
                        serde_json::json!({"error": format!("no channel '{name}' on host '{}'", self.host)}),
                    ));
                }
                let text = super::config::channel_session_text(name);
                let session = crate::net::failover::link::wire_session(
                    Some(&text),
                    std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0),
                );
                self.port(session).switchover(session)
            }
        }
    }
}

/// The listing (schema `tandem.serve-status/1`): one summary per channel, in file order;
/// with `full`, each channel's whole status object too (`status`: too large for the control
/// port's one datagram with many channels, served over HTTP).
fn listing(host: &str, entries: &[Entry], full: bool) -> serde_json::Value {
    let channels: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            let snap = e.snapshot.lock().unwrap_or_else(|p| p.into_inner());
            let mut v = serde_json::json!({
                "name": e.name,
                "role_here": e.role,
                "live": e.live,
                "error": e.ended,
            });
            match snap.as_ref() {
                Some(s) => {
                    v["state"] = serde_json::json!(s.state);
                    v["epoch"] = serde_json::json!(s.epoch);
                    v["on_air"] = serde_json::json!(s.on_air);
                    v["sync_link_up"] = serde_json::json!(s.sync_link_up);
                    v["alarms"] = serde_json::json!(s.alarms);
                    v["sent_live"] = serde_json::json!(s.sent_live);
                    v["sent_muted"] = serde_json::json!(s.sent_muted);
                    v["last_error"] = s.status["last_error"].clone();
                    if full {
                        v["status"] = s.status.clone();
                    }
                }
                None => v["state"] = serde_json::json!(null),
            }
            v
        })
        .collect();
    serde_json::json!({
        "schema": "tandem.serve-status/1",
        "host": host,
        "pid": std::process::id(),
        "channels": channels,
    })
}
