//! `tandem monitor`: the component monitor of claim 12 (see
//! [`crate::net::failover::monitor`]).

use std::path::PathBuf;
use std::time::Duration;

use super::signals::Signals;
use super::{EXIT_BAD_INPUT, EXIT_RUNTIME};
use crate::failover::wire::Key;
use crate::net::failover::link::{read_key_file, wire_session};
use crate::net::failover::monitor::{Monitor, MonitorConfig};
use crate::net::sockets::resolve_iface;
use crate::net::url::Dest;

/// Flags of `tandem monitor`.
#[derive(Debug, clap::Args)]
pub struct MonitorArgs {
    /// Where the servers send their heartbeats (give the servers `--monitor ADDR:PORT`).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7320")]
    pub listen: String,
    /// The live group to watch (the servers' --dest).
    #[arg(long, value_name = "URL")]
    pub live: String,
    /// Interface to join the live group on.
    #[arg(long, value_name = "NAME|ADDR", default_value = "127.0.0.1")]
    pub iface: String,
    /// The primary's control port.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7311")]
    pub primary_control: String,
    /// The secondary's control port.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7312")]
    pub secondary_control: String,
    /// Consecutive missed heartbeats that declare the server on air failed.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub miss: u32,
    /// Heartbeat period in microseconds (default: as the servers report it).
    #[arg(long, value_name = "US", value_parser = clap::value_parser!(u64).range(100..=10_000_000))]
    pub heartbeat_us: Option<u64>,
    /// Shared secret file, as given to the servers (default: the session-derived key).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// The servers' --session-id, if any.
    #[arg(long, value_name = "ID")]
    pub session_id: Option<String>,
}

fn config(a: &MonitorArgs) -> anyhow::Result<MonitorConfig> {
    let live: Dest = a.live.parse()?;
    let iface = resolve_iface(&a.iface).map_err(|e| anyhow::anyhow!("--iface {}: {e}", a.iface))?;
    let session = wire_session(a.session_id.as_deref(), live.addr);
    let key = match &a.key_file {
        Some(p) => read_key_file(p)?,
        None => Key::derive_from_session(session),
    };
    Ok(MonitorConfig {
        listen: super::server::parse_addr("listen", &a.listen)?,
        live,
        iface,
        primary_control: super::server::parse_addr("primary-control", &a.primary_control)?,
        secondary_control: super::server::parse_addr("secondary-control", &a.secondary_control)?,
        miss: a.miss,
        heartbeat_ns: a.heartbeat_us.map(|u| u * 1_000),
        key,
        session,
    })
}

/// Runs `tandem monitor` until Ctrl-C.
pub fn run(a: &MonitorArgs) -> anyhow::Result<i32> {
    let cfg = match config(a) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tandem monitor: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let signals = Signals::block()?;
    let m = match Monitor::new(cfg) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("tandem monitor: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let (stop, waker) = m.stop_handle();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                if signals.wait(Duration::from_millis(200)).is_some() {
                    stop.store(true, std::sync::atomic::Ordering::Release);
                    let _ = waker.wake();
                    return;
                }
            }
        })
    };
    let r = m.run();
    done.store(true, std::sync::atomic::Ordering::Release);
    let _ = watcher.join();
    match r {
        Ok(n) => {
            tracing::info!(declarations = n, "monitor stopped");
            Ok(0)
        }
        Err(e) => {
            eprintln!("tandem monitor: {e:#}");
            Ok(EXIT_RUNTIME)
        }
    }
}
