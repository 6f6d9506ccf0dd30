//! `--event-log FILE` or `--event-log udp://HOST:PORT` (`[host] event_log` of `tandem
//! serve`): every state change, switch and alarm of a server (and every armed `--inject`
//! fault) as one JSON object per line, for machines (the failover benchmark, the soak test,
//! an operator's event collector). To a UDP destination each line is one datagram (in the
//! spirit of TSDuck's `--event-udp`; a multicast group is sent on the server's interface).
//! ```text
//! {"event":"start","t_real_ns":N,"pid":N}
//! {"event":"inject","t_real_ns":N,"kind":"pacer-panic"}     (when the fault is armed to strike)
//! {"event":"transition","t_real_ns":N,"t_mono_ns":N,"from":"Secondary_synchronized",
//!  "to":"Secondary_no_primary","trigger":"FailureDeclared","reason":"...","epoch":N,
//!  "peer_last_index":N}
//! {"event":"switch","t_real_ns":N,"channel":"main","reason":"FailureDeclared",
//!  "from_index":N,"old_last_index":N,"gap_ms":F,"late_ms":F,"lost":0,"repeated":0}
//! {"event":"alarm","t_real_ns":N,"channel":"main","alarm":"pair_unprotected",
//!  "raised":true,"detail":"..."}
//! ```
//! Transitions, switches and alarms carry the `channel` (one log for every channel of a
//! `tandem serve` host). A switch line is written when the new owner hears its own first
//! datagram on the live group (`crate::failover::switch_gap`).
//! `t_real_ns` is CLOCK_REALTIME (with the process clock offset), converted from the
//! machine's monotonic instant of the transition. Each line is written with one `write`
//! call as it happens (no buffering), so a reader sees complete lines while the server
//! runs. Parsed by `crate::bench::events`.

use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use crate::failover::machine::Transition;
use crate::net::clock::{mono_ns, real_ns};
use crate::net::faults::{FaultKind, Injection};

/// Where the events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventDest {
    /// A file, truncated at start.
    File(PathBuf),
    /// One datagram per line to this address.
    Udp(SocketAddrV4),
}

impl std::str::FromStr for EventDest {
    type Err = String;

    /// `udp://HOST:PORT` (IPv4), or anything else as a file path.
    fn from_str(s: &str) -> Result<EventDest, String> {
        match s.strip_prefix("udp://") {
            Some(rest) => rest.parse::<SocketAddrV4>().map(EventDest::Udp).map_err(|_| {
                format!("'{s}': expected udp://IPV4:PORT (e.g. udp://127.0.0.1:5999) or a file path")
            }),
            None if s.is_empty() => Err("an empty path".into()),
            None => Ok(EventDest::File(PathBuf::from(s))),
        }
    }
}

impl std::fmt::Display for EventDest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventDest::File(p) => write!(f, "{}", p.display()),
            EventDest::Udp(a) => write!(f, "udp://{a}"),
        }
    }
}

enum Sink {
    File(File),
    Udp(UdpSocket, SocketAddrV4),
}

static LOG: OnceLock<Mutex<Sink>> = OnceLock::new();

/// Opens the event log of this process (a file is truncated; a multicast UDP destination is
/// sent on `iface`) and records the armed injections (`start_mono_ns`: the instant injection
/// times count from).
pub fn open(
    dest: &EventDest,
    iface: Ipv4Addr,
    injections: &[Injection],
    start_mono_ns: u64,
) -> std::io::Result<()> {
    let sink = match dest {
        EventDest::File(p) => Sink::File(File::create(p)?),
        EventDest::Udp(a) => {
            let s = if a.ip().is_multicast() {
                crate::net::sockets::sender(*a, &crate::net::sockets::SenderOptions::new(iface))
                    .map_err(std::io::Error::other)?
            } else {
                UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?
            };
            Sink::Udp(s, *a)
        }
    };
    let _ = LOG.set(Mutex::new(sink));
    line(&serde_json::json!({
        "event": "start", "t_real_ns": real_ns(), "pid": std::process::id(),
    }));
    for i in injections {
        let at_mono = start_mono_ns.saturating_add((i.at_s * 1e9) as u64);
        line(&serde_json::json!({
            "event": "inject",
            "t_real_ns": mono_to_real(at_mono),
            "kind": kind_name(i.kind),
        }));
    }
    Ok(())
}

/// An alarm raised or cleared (`{"event":"alarm","alarm":"sync_link_lost","raised":true,...}`).
pub fn alarm(channel: &str, c: &crate::failover::alarms::AlarmChange) {
    line(&serde_json::json!({
        "event": "alarm",
        "t_real_ns": real_ns(),
        "channel": channel,
        "alarm": c.alarm.name(),
        "raised": c.raised,
        "detail": c.detail,
    }));
}

fn kind_name(k: FaultKind) -> &'static str {
    match k {
        FaultKind::ReaderHang => "reader-hang",
        FaultKind::PacerPanic => "pacer-panic",
        FaultKind::PacerHang => "pacer-hang",
        FaultKind::SendError => "send-error",
        FaultKind::HeartbeatHang => "heartbeat-hang",
    }
}

fn mono_to_real(mono: u64) -> u64 {
    let (m, r) = (mono_ns(), real_ns());
    (r as i128 - m as i128 + mono as i128).max(0) as u64
}

fn line(v: &serde_json::Value) {
    if let Some(m) = LOG.get() {
        if let Ok(mut sink) = m.lock() {
            let mut s = v.to_string();
            s.push('\n');
            // A lost event line must never stop the server: errors are dropped.
            let _ = match &mut *sink {
                Sink::File(f) => f.write_all(s.as_bytes()),
                Sink::Udp(sock, a) => sock.send_to(s.as_bytes(), *a).map(|_| ()),
            };
        }
    }
}

/// A switch onto this server, measured on the live group (`crate::failover::switch_gap`).
pub fn switch(channel: &str, r: &crate::failover::switch_gap::SwitchRecord) {
    line(&serde_json::json!({
        "event": "switch",
        "t_real_ns": mono_to_real(r.decided_mono_ns),
        "channel": channel,
        "reason": r.reason,
        "from_index": r.from_index,
        "old_last_index": r.old_last_index,
        "gap_ms": r.gap_ns.map(|n| n as f64 / 1e6),
        "late_ms": r.late_ns.map(|n| n as f64 / 1e6),
        "lost": r.lost,
        "repeated": r.repeated,
    }));
}

/// Records a state change (no-op without `--event-log`).
pub fn transition(channel: &str, t: &Transition, epoch: u64, peer_last_index: Option<u64>) {
    if LOG.get().is_none() {
        return;
    }
    line(&serde_json::json!({
        "event": "transition",
        "t_real_ns": mono_to_real(t.at),
        "channel": channel,
        "t_mono_ns": t.at,
        "from": t.from,
        "to": t.to,
        "trigger": t.trigger,
        "reason": t.detail,
        "epoch": epoch,
        "peer_last_index": peer_last_index,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_is_a_udp_address_or_a_file() {
        assert_eq!(
            "udp://127.0.0.1:5999".parse::<EventDest>(),
            Ok(EventDest::Udp("127.0.0.1:5999".parse().unwrap()))
        );
        assert_eq!(
            "/var/log/tandem/events.jsonl".parse::<EventDest>(),
            Ok(EventDest::File("/var/log/tandem/events.jsonl".into()))
        );
        let e = "udp://239.1.1.1".parse::<EventDest>().unwrap_err();
        assert!(e.contains("udp://IPV4:PORT"), "{e}");
        assert!("".parse::<EventDest>().is_err());
    }
}
