//! `tandem monitor`: the component monitor of claim 12. A third process that receives the
//! servers' heartbeats (they send them to `--monitor` addresses too) and watches the live
//! group, runs the same [`Detector`] as a secondary on the server on air, and on a
//! declaration commands the switch: `Fail` to the failed server's control port first (so it
//! stops sending), then `Takeover` to the other one.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use mio::{Events, Interest, Poll, Token, Waker};

use super::link::Link;
use super::timer::TimerFd;
use crate::failover::detector::{Detector, DetectorConfig, LiveWatch};
use crate::failover::wire::{Body, Key, MonitorCmd, Msg, SenderRole, Stamper};
use crate::net::clock::{clock_offset_ns, mono_ns, real_ns};
use crate::net::recv_socket::{enable_timestamps, recv_timestamped};
use crate::net::sockets::receiver;
use crate::net::url::Dest;

const LISTEN: Token = Token(0);
const LIVE: Token = Token(1);
const TIMER: Token = Token(2);
const WAKE: Token = Token(3);
/// Servers' status is asked this often (ids, heartbeat period).
const STATUS_EVERY_NS: u64 = 500_000_000;

/// Settings of the monitor.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Where heartbeats arrive.
    pub listen: SocketAddrV4,
    /// The live group.
    pub live: Dest,
    /// Interface to join it on.
    pub iface: Ipv4Addr,
    /// The primary's control port.
    pub primary_control: SocketAddrV4,
    /// The secondary's control port.
    pub secondary_control: SocketAddrV4,
    /// Misses that declare a failure.
    pub miss: u32,
    /// Heartbeat period; `None`: as the servers report it.
    pub heartbeat_ns: Option<u64>,
    /// The key (sync-link key of the session).
    pub key: Key,
    /// Wire session.
    pub session: u64,
}

/// The running monitor.
pub struct Monitor {
    cfg: MonitorConfig,
    poll: Poll,
    waker: Arc<Waker>,
    timer: TimerFd,
    link: Link,
    live: mio::net::UdpSocket,
    stamper: Stamper,
    detector: Option<Detector>,
    period_ns: Option<u64>,
    watched: Option<(u32, u64)>,
    controls: HashMap<u32, SocketAddrV4>,
    next_status: u64,
    stop: Arc<AtomicBool>,
    buf: Vec<u8>,
    declarations: u64,
}

impl Monitor {
    /// Binds the sockets.
    pub fn new(cfg: MonitorConfig) -> anyhow::Result<Monitor> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let timer = TimerFd::new()?;
        let mut link = Link::bind(
            "monitor",
            cfg.listen,
            vec![cfg.key.clone()],
            Some(cfg.session),
        )
        .context("--listen")?;
        let live_std = receiver(cfg.live.addr, cfg.iface, Some(4 << 20))
            .with_context(|| format!("watching the live group {}", cfg.live))?;
        enable_timestamps(live_std.as_raw_fd());
        live_std.set_nonblocking(true)?;
        let mut live = mio::net::UdpSocket::from_std(live_std);
        let r = poll.registry();
        r.register(link.source(), LISTEN, Interest::READABLE)?;
        r.register(&mut live, LIVE, Interest::READABLE)?;
        r.register(
            &mut mio::unix::SourceFd(&timer.as_raw_fd()),
            TIMER,
            Interest::READABLE,
        )?;
        let boot = real_ns();
        let id = ((boot as u32) ^ std::process::id()) & 0x3FFF_FFFF;
        Ok(Monitor {
            stamper: Stamper::new(SenderRole::Monitor, id.max(1), boot, cfg.session),
            period_ns: cfg.heartbeat_ns,
            cfg,
            poll,
            waker,
            timer,
            link,
            live,
            detector: None,
            watched: None,
            controls: HashMap::new(),
            next_status: 0,
            stop: Arc::new(AtomicBool::new(false)),
            buf: vec![0u8; 65_536],
            declarations: 0,
        })
    }

    /// A stop flag and the waker, for the signal thread.
    pub fn stop_handle(&self) -> (Arc<AtomicBool>, Arc<Waker>) {
        (self.stop.clone(), self.waker.clone())
    }

    /// Runs until stopped; returns the number of failures declared.
    pub fn run(mut self) -> anyhow::Result<u64> {
        tracing::info!(
            listen = %self.cfg.listen,
            live = %self.cfg.live,
            primary = %self.cfg.primary_control,
            secondary = %self.cfg.secondary_control,
            miss = self.cfg.miss,
            "monitor ready"
        );
        let mut events = Events::with_capacity(32);
        loop {
            let now = mono_ns();
            let mut next = self.next_status.max(now + 1_000);
            if let Some(d) = self.detector.as_ref().and_then(|d| d.next_deadline()) {
                next = next.min(d);
            }
            self.timer.arm_at(next)?;
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            self.timer.clear();
            if self.stop.load(Ordering::Acquire) {
                return Ok(self.declarations);
            }
            self.drain_listen();
            self.drain_live();
            let now = mono_ns();
            if now >= self.next_status {
                self.next_status = now + STATUS_EVERY_NS;
                for c in [self.cfg.primary_control, self.cfg.secondary_control] {
                    self.send(c, Body::StatusRequest);
                }
            }
            let decl = self.detector.as_mut().and_then(|d| d.poll(now));
            if let Some(d) = decl {
                self.declare(d);
            }
        }
    }

    fn rx_mono(kernel_ns: Option<u64>) -> u64 {
        let now = mono_ns();
        match kernel_ns {
            None => now,
            Some(k) => {
                let raw = real_ns() as i128 - clock_offset_ns() as i128;
                now.saturating_sub((raw - k as i128).clamp(0, u64::MAX as i128) as u64)
            }
        }
    }

    fn drain_listen(&mut self) {
        loop {
            let inc = match self.link.recv(mono_ns()) {
                Ok(Some(i)) => i,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "monitor receive");
                    return;
                }
            };
            let rx = Self::rx_mono(inc.kernel_ns);
            let h = inc.msg.header;
            match inc.msg.body {
                Body::Heartbeat {
                    state, last_index, ..
                } => {
                    let on_air = h.owner || state.on_air();
                    if !on_air {
                        continue;
                    }
                    // A new server on air (or a new claim): watch it from its first heartbeat.
                    let claim = (h.sender_id, h.epoch);
                    if self.watched.map(|w| w.0) != Some(h.sender_id)
                        || self.watched.is_some_and(|w| w.1 < h.epoch)
                    {
                        let Some(period) = self.period_ns else {
                            continue; // period not known yet (status pending)
                        };
                        let miss = self.cfg.miss.max(1);
                        let fresh = self.watched.map(|w| w.0) != Some(h.sender_id);
                        self.watched = Some(claim);
                        if fresh {
                            tracing::info!(server = h.sender_id, epoch = h.epoch, %state, "watching the server on air");
                            self.detector = Some(Detector::new(DetectorConfig {
                                period_ns: period,
                                miss,
                                grace_ns: 0,
                                live: LiveWatch::Watch {
                                    window_ns: period * miss as u64,
                                },
                                path_rule: true,
                                scheduled_window_ns: None,
                            }));
                        }
                    }
                    if let Some(d) = &mut self.detector {
                        d.on_heartbeat(rx, last_index);
                    }
                }
                Body::FailedNotice {
                    component, reason, ..
                } => {
                    tracing::warn!(
                        server = h.sender_id & 0x3FFF_FFFF,
                        "server reports it failed: {component}: {reason}"
                    );
                }
                Body::StatusReply { json } => {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&json) else {
                        continue;
                    };
                    if let (Some(id), SocketAddr::V4(from)) = (v["server_id"].as_u64(), inc.from) {
                        self.controls.insert(id as u32, from);
                    }
                    if self.period_ns.is_none() {
                        if let Some(us) = v["heartbeat_us"].as_u64().filter(|&u| u > 0) {
                            tracing::info!(
                                heartbeat_us = us,
                                "heartbeat period learned from the servers"
                            );
                            self.period_ns = Some(us * 1_000);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn drain_live(&mut self) {
        loop {
            match recv_timestamped(self.live.as_raw_fd(), &mut self.buf) {
                Ok(Some(r)) => {
                    if let Some(d) = &mut self.detector {
                        d.on_live(Self::rx_mono(r.kernel_ns), None);
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "monitor live receive");
                    return;
                }
            }
        }
    }

    fn declare(&mut self, d: crate::failover::detector::Declaration) {
        self.declarations += 1;
        let failed = self.watched.map(|w| w.0);
        let failed_ctl = failed
            .and_then(|id| self.controls.get(&id).copied())
            .unwrap_or(self.cfg.primary_control);
        let other = if failed_ctl == self.cfg.primary_control {
            self.cfg.secondary_control
        } else {
            self.cfg.primary_control
        };
        // Fail first: the failed server stops sending before the other one takes over.
        self.send(failed_ctl, Body::MonitorCommand(MonitorCmd::Fail));
        self.send(other, Body::MonitorCommand(MonitorCmd::Takeover));
        tracing::info!(
            server = ?failed,
            "monitor: server on air declared failed: {d}; sent Fail to {failed_ctl}, Takeover to {other}"
        );
        self.watched = None;
        self.detector = None;
    }

    fn send(&mut self, to: SocketAddrV4, body: Body) {
        let msg = Msg {
            header: self.stamper.header(0, false, real_ns()),
            body,
        };
        self.link.send(&msg, 0, SocketAddr::V4(to));
    }
}
