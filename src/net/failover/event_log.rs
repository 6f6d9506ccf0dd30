//! `--event-log FILE`: every state change of a server (and every armed `--inject` fault) as
//! one JSON object per line, for machines (the failover benchmark, the soak test):
//! ```text
//! {"event":"start","t_real_ns":N,"pid":N}
//! {"event":"inject","t_real_ns":N,"kind":"pacer-panic"}     (when the fault is armed to strike)
//! {"event":"transition","t_real_ns":N,"t_mono_ns":N,"from":"Secondary_synchronized",
//!  "to":"Secondary_no_primary","trigger":"FailureDeclared","reason":"...","epoch":N,
//!  "peer_last_index":N}
//! {"event":"alarm","t_real_ns":N,"alarm":"pair_unprotected","raised":true,"detail":"..."}
//! ```
//! `t_real_ns` is CLOCK_REALTIME (with the process clock offset), converted from the
//! machine's monotonic instant of the transition. Each line is written with one `write`
//! call as it happens (no buffering), so a reader sees complete lines while the server
//! runs. Parsed by `crate::bench::events`.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use crate::failover::machine::Transition;
use crate::net::clock::{mono_ns, real_ns};
use crate::net::faults::{FaultKind, Injection};

static LOG: OnceLock<Mutex<File>> = OnceLock::new();

/// Opens (truncates) the event log of this process and records the armed injections
/// (`start_mono_ns`: the instant injection times count from).
pub fn open(path: &Path, injections: &[Injection], start_mono_ns: u64) -> std::io::Result<()> {
    let f = File::create(path)?;
    let _ = LOG.set(Mutex::new(f));
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
pub fn alarm(c: &crate::failover::alarms::AlarmChange) {
    line(&serde_json::json!({
        "event": "alarm",
        "t_real_ns": real_ns(),
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
        if let Ok(mut f) = m.lock() {
            let mut s = v.to_string();
            s.push('\n');
            let _ = f.write_all(s.as_bytes());
        }
    }
}

/// Records a state change (no-op without `--event-log`).
pub fn transition(t: &Transition, epoch: u64, peer_last_index: Option<u64>) {
    if LOG.get().is_none() {
        return;
    }
    line(&serde_json::json!({
        "event": "transition",
        "t_real_ns": mono_to_real(t.at),
        "t_mono_ns": t.at,
        "from": t.from,
        "to": t.to,
        "trigger": t.trigger,
        "reason": t.detail,
        "epoch": epoch,
        "peer_last_index": peer_last_index,
    }));
}
