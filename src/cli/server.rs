//! `tandem primary` and `tandem secondary`: one server of a failover pair (claims 1-27).
//!
//! ```text
//! tandem primary   ASSET --dest udp://239.1.1.1:5000 --sync-listen 10.0.0.1:7301 --sync-peer 10.0.0.2:7302
//! tandem secondary ASSET --dest udp://239.1.1.1:5000 --muted udp://239.1.1.2:5000 \
//!        --sync-listen 10.0.0.2:7302 --sync-peer 10.0.0.1:7301
//! ```

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::Duration;

use super::signals::Signals;
use super::{EXIT_BAD_INPUT, EXIT_RUNTIME};
use crate::failover::state::Role;
use crate::net::clock::{mono_ns, set_clock_offset_ms};
use crate::net::failover::link::read_key_file;
use crate::net::failover::server::{default_server_id, Server, ServerConfig};
use crate::net::failover::{SwitchMode, SyncInit};
use crate::net::faults::Injection;
use crate::net::sockets::resolve_iface;
use crate::net::url::Dest;

/// Default sync-link address of a primary (a secondary's default peer).
pub const PRIMARY_SYNC: &str = "127.0.0.1:7301";
/// Default sync-link address of a secondary (a primary's default peer).
pub const SECONDARY_SYNC: &str = "127.0.0.1:7302";
/// Default control address of a primary.
pub const PRIMARY_CONTROL: &str = "127.0.0.1:7311";
/// Default control address of a secondary.
pub const SECONDARY_CONTROL: &str = "127.0.0.1:7312";

/// Flags shared by `primary` and `secondary`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The MPEG-TS asset to play, or a playlist (JSON or M3U, docs/playlists.md). Without
    /// it the server waits for an asset request (`tandem request play ASSET --to ...`).
    pub asset: Option<PathBuf>,
    /// The live group: udp://GROUP:PORT (7 TS packets per datagram) or rtp://GROUP:PORT
    /// (RFC 2250). Both servers must give the same.
    #[arg(long, value_name = "URL")]
    pub dest: String,
    /// The muted group the secondary sends the identical stream into while synchronised
    /// (only its address is used; the framing is --dest's). Required for a secondary; on a
    /// primary it is what it tells its secondaries (default: the secondary's own --muted).
    #[arg(long, value_name = "URL")]
    pub muted: Option<String>,
    /// Interface of the live and muted groups: an IPv4 address of this host or a name.
    #[arg(long, value_name = "NAME|ADDR", default_value = "127.0.0.1")]
    pub iface: String,
    /// Multicast TTL.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=255))]
    pub ttl: u32,
    /// Loop the asset: `--loop` (or `--loop=0`) plays endlessly, `--loop=N` plays N passes
    /// (default: one pass).
    #[arg(long = "loop", value_name = "N", num_args = 0..=1, require_equals = true,
          default_missing_value = "0")]
    pub loops: Option<u64>,
    /// Timeline origin as a Unix time in milliseconds (default: now + 100 ms when the
    /// primary goes on air; a secondary takes the primary's).
    #[arg(long, value_name = "UNIX_MS")]
    pub start_at: Option<u64>,
    /// Session id: RTP SSRC/sequence/timestamp and the wire session derive from it
    /// (default: the asset's content hash @ the live group, as `tandem play`).
    #[arg(long, value_name = "ID")]
    pub session_id: Option<String>,
    /// This server's address on the sync link, the second network (default 127.0.0.1:7301
    /// for a primary, 127.0.0.1:7302 for a secondary).
    #[arg(long, value_name = "ADDR:PORT")]
    pub sync_listen: Option<String>,
    /// The other server's sync-link address (default 127.0.0.1:7302 for a primary,
    /// 127.0.0.1:7301 for a secondary).
    #[arg(long, value_name = "ADDR:PORT")]
    pub sync_peer: Option<String>,
    /// Control port: asset requests, status, monitor and sync-component commands (default
    /// 127.0.0.1:7311 for a primary, 127.0.0.1:7312 for a secondary).
    #[arg(long, value_name = "ADDR:PORT")]
    pub control_listen: Option<String>,
    /// A component monitor's address (`tandem monitor --listen`): heartbeats and Failed
    /// notices go there too. Repeatable (default: none).
    #[arg(long = "monitor", value_name = "ADDR:PORT")]
    pub monitors: Vec<String>,
    /// Consecutive missed heartbeats that declare the primary failed (claim 10).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub miss: u32,
    /// Heartbeat period in microseconds (default: derived from the asset's frame rate so
    /// that miss x period <= 1/3 frame, e.g. 4444 us at 25 fps with --miss 3).
    #[arg(long, value_name = "US", value_parser = clap::value_parser!(u64).range(100..=10_000_000))]
    pub heartbeat_us: Option<u64>,
    /// Do not use the live-path rule: by default a secondary also declares the primary failed
    /// when its heartbeats keep coming but report datagrams the live group never carried for
    /// the detection window (the primary's live port or cable is down, its sync link up).
    /// Seen from one server a dead live port of its own looks the same; turn the rule off
    /// when the secondary's live path is the less reliable one, or arbitrate with a
    /// `tandem monitor` on a third host.
    #[arg(long)]
    pub no_live_path_rule: bool,
    /// Where the secondary joins the live group: seamless = right after the primary's last
    /// datagram (nothing lost or repeated), pcr / frame = the next PCR / frame boundary.
    #[arg(long, value_enum, default_value_t = SwitchMode::Seamless)]
    pub switch_at: SwitchMode,
    /// Shared secret (>= 16 bytes) authenticating sync and control messages (HMAC-SHA256).
    /// Default: a key derived from the session id, which anyone knowing it can forge.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Who initiates synchronisation: the secondary asks (claim 4), the primary pushes
    /// (claim 5), or a separate component, `tandem sync` (claim 6). Give both servers the same.
    #[arg(long, value_enum, default_value_t = SyncInit::Secondary)]
    pub sync_init: SyncInit,
    /// Server id (default: derived from --sync-listen).
    #[arg(long, hide = true)]
    pub server_id: Option<u32>,
    /// Skew added to every realtime clock reading (lab use).
    #[arg(long, value_name = "MS", hide = true, allow_hyphen_values = true)]
    pub clock_offset_ms: Option<i64>,
    /// Inject a fault: reader-hang@S, pacer-panic@S, pacer-hang@S, send-error@S,
    /// heartbeat-hang@S (seconds after start). Repeatable.
    #[arg(long = "inject", value_name = "KIND@S", hide = true)]
    pub inject: Vec<String>,
    /// Write every state change, switch (with its gap measured on the live group) and
    /// alarm (and armed --inject fault) as a JSON line, with its realtime instant, to FILE
    /// or, one datagram per line, to udp://HOST:PORT (default: none). See
    /// docs/operations.md.
    #[arg(long, value_name = "FILE|udp://HOST:PORT")]
    pub event_log: Option<crate::net::failover::event_log::EventDest>,
    /// Serve Prometheus metrics at /metrics and the status as JSON at /api/v1/status on
    /// ADDR:PORT (HTTP; default: no listener). Loopback only unless --http-allow-remote.
    /// See docs/operations.md.
    #[arg(long, value_name = "ADDR:PORT")]
    pub http_listen: Option<std::net::SocketAddr>,
    /// Allow a --http-listen address other than loopback (plain HTTP, no TLS, no
    /// authentication: put a reverse proxy with TLS in front).
    #[arg(long)]
    pub http_allow_remote: bool,
    /// Turn on the HTTP API's writes (POST /api/v1/switchover): they need
    /// `Authorization: Bearer TOKEN` with the token in FILE (one line, at least 16
    /// characters; e.g. `head -c 24 /dev/urandom | base64 > FILE`). Without it writes are
    /// refused with 403.
    #[arg(long, value_name = "FILE", requires = "http_listen")]
    pub token_file: Option<PathBuf>,
    /// The channel's name in metrics and the HTTP API.
    #[arg(long, value_name = "NAME", default_value = "main")]
    pub channel: String,
    #[command(flatten)]
    pub startup: super::startup::StartupArgs,
}

/// `tandem primary`.
#[derive(Debug, clap::Args)]
pub struct PrimaryArgs {
    #[command(flatten)]
    pub common: ServerArgs,
}

/// `tandem secondary`.
#[derive(Debug, clap::Args)]
pub struct SecondaryArgs {
    #[command(flatten)]
    pub common: ServerArgs,
    /// Do not declare the primary failed from missed heartbeats: take over only on its
    /// kernel's Failed notice or a monitor's command.
    #[arg(long)]
    pub no_detect: bool,
}

/// Parses `ADDR:PORT` (IPv4).
pub fn parse_addr(flag: &str, s: &str) -> anyhow::Result<SocketAddrV4> {
    let a: SocketAddrV4 = s
        .parse()
        .map_err(|_| anyhow::anyhow!("--{flag} '{s}': expected IPV4:PORT, e.g. 127.0.0.1:7301"))?;
    if a.port() == 0 {
        anyhow::bail!("--{flag} '{s}': port 0 is not allowed");
    }
    Ok(a)
}

fn config(a: &ServerArgs, role: Role, no_detect: bool) -> anyhow::Result<ServerConfig> {
    let live: Dest = a.dest.parse()?;
    let muted = match &a.muted {
        Some(m) => {
            let d: Dest = m.parse()?;
            if d.addr == live.addr {
                anyhow::bail!("--muted {m} is the live group: give another group or port");
            }
            Some(d.addr)
        }
        None if role == Role::Secondary => {
            anyhow::bail!("a secondary needs --muted udp://GROUP:PORT (its standby output)")
        }
        None => None,
    };
    let iface = resolve_iface(&a.iface).map_err(|e| anyhow::anyhow!("--iface {}: {e}", a.iface))?;
    let (my_sync, peer_sync, my_ctl) = match role {
        Role::Primary => (PRIMARY_SYNC, SECONDARY_SYNC, PRIMARY_CONTROL),
        Role::Secondary => (SECONDARY_SYNC, PRIMARY_SYNC, SECONDARY_CONTROL),
    };
    let sync_listen = parse_addr("sync-listen", a.sync_listen.as_deref().unwrap_or(my_sync))?;
    let sync_peer = parse_addr("sync-peer", a.sync_peer.as_deref().unwrap_or(peer_sync))?;
    let control_listen = parse_addr(
        "control-listen",
        a.control_listen.as_deref().unwrap_or(my_ctl),
    )?;
    if sync_listen == sync_peer {
        anyhow::bail!("--sync-listen and --sync-peer are both {sync_listen}");
    }
    let monitors = a
        .monitors
        .iter()
        .map(|m| parse_addr("monitor", m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let injections = a
        .inject
        .iter()
        .map(|s| {
            s.parse::<Injection>()
                .map_err(|e| anyhow::anyhow!("--inject {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(p) = &a.asset {
        if !p.is_file() {
            anyhow::bail!("{}: no such file", p.display());
        }
    }
    let key = match &a.key_file {
        Some(p) => Some(read_key_file(p)?),
        None => None,
    };
    Ok(ServerConfig {
        role,
        asset: a.asset.clone(),
        live,
        muted,
        iface,
        ttl: a.ttl,
        // A playlist with `"loop": true` plays endlessly unless `--loop` says otherwise.
        loops: match a.loops {
            None if a
                .asset
                .as_deref()
                .is_some_and(crate::io::playlist::loops_by_default) =>
            {
                None
            }
            flag => crate::net::failover::session::loops_of(flag),
        },
        start_at_ms: a.start_at,
        session_id: a.session_id.clone(),
        sync_listen,
        sync_peer,
        control_listen,
        monitors,
        miss: a.miss,
        heartbeat_ns: a.heartbeat_us.map(|u| u * 1_000),
        switch_at: a.switch_at,
        key,
        sync_init: a.sync_init,
        no_detect,
        live_path_rule: !a.no_live_path_rule,
        injections,
        server_id: a
            .server_id
            .unwrap_or_else(|| default_server_id(sync_listen)),
        start_mono_ns: mono_ns(),
        channel: a.channel.clone(),
        http_listen: match a.http_listen {
            Some(addr) => {
                crate::net::http::check_addr(addr, a.http_allow_remote)
                    .map_err(anyhow::Error::msg)?;
                Some(addr)
            }
            None => None,
        },
        http_token: match &a.token_file {
            Some(p) => Some(
                crate::net::http::read_token(p).map_err(|e| anyhow::anyhow!("--token-file {e}"))?,
            ),
            None => None,
        },
        shared: None,
    })
}

/// Runs `tandem primary`.
pub fn run_primary(a: &PrimaryArgs) -> anyhow::Result<i32> {
    run(&a.common, Role::Primary, false)
}

/// Runs `tandem secondary`.
pub fn run_secondary(a: &SecondaryArgs) -> anyhow::Result<i32> {
    run(&a.common, Role::Secondary, a.no_detect)
}

fn run(a: &ServerArgs, role: Role, no_detect: bool) -> anyhow::Result<i32> {
    if let Some(ms) = a.clock_offset_ms {
        set_clock_offset_ms(ms);
    }
    a.startup.apply();
    let cfg = match config(a, role, no_detect) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tandem {role}: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    if let Some(p) = &a.event_log {
        if let Err(e) =
            crate::net::failover::event_log::open(p, cfg.iface, &cfg.injections, cfg.start_mono_ns)
        {
            eprintln!("tandem {role}: --event-log {p}: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    }
    // Before any thread starts, so that every thread inherits the mask.
    let signals = Signals::block()?;
    let server = match Server::new(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tandem {role}: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let stop = server.stop_handle();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::Builder::new()
            .name("tandem-signals".into())
            .spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    if let Some(sig) = signals.wait(Duration::from_millis(200)) {
                        tracing::info!(signal = sig, "signal received: stopping");
                        stop.stop();
                        return;
                    }
                }
            })?
    };
    let result = server.run();
    done.store(true, std::sync::atomic::Ordering::Release);
    let _ = watcher.join();
    match result {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("tandem {role}: {e:#}");
            Ok(EXIT_RUNTIME)
        }
    }
}
