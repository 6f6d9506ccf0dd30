//! `tandem pair ASSET --dest URL --muted URL`: a primary and a secondary on this computer as
//! two separate processes (claim 27), so that a crash of one never takes the other. Prints
//! both process ids and command lines, forwards Ctrl-C / SIGTERM to them, and exits when
//! both have ended.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::server::{PRIMARY_CONTROL, PRIMARY_SYNC, SECONDARY_CONTROL, SECONDARY_SYNC};
use super::signals::Signals;
use super::{EXIT_BAD_INPUT, EXIT_RUNTIME};
use crate::net::failover::{SwitchMode, SyncInit};

/// Flags of `tandem pair`.
#[derive(Debug, clap::Args)]
pub struct PairArgs {
    /// The MPEG-TS asset both servers play, or a playlist (JSON or M3U, docs/playlists.md).
    pub asset: PathBuf,
    /// The live group: udp://GROUP:PORT or rtp://GROUP:PORT.
    #[arg(long, value_name = "URL")]
    pub dest: String,
    /// The secondary's muted group.
    #[arg(long, value_name = "URL")]
    pub muted: String,
    /// Interface of the groups.
    #[arg(long, value_name = "NAME|ADDR", default_value = "127.0.0.1")]
    pub iface: String,
    /// Multicast TTL.
    #[arg(long, default_value_t = 1)]
    pub ttl: u32,
    /// Loop: `--loop` endless, `--loop=N` N passes (default: one pass).
    #[arg(long = "loop", value_name = "N", num_args = 0..=1, require_equals = true,
          default_missing_value = "0")]
    pub loops: Option<u64>,
    /// Session id (default: the asset's content hash @ the live group).
    #[arg(long, value_name = "ID")]
    pub session_id: Option<String>,
    /// Primary's sync-link address.
    #[arg(long, value_name = "ADDR:PORT", default_value = PRIMARY_SYNC)]
    pub primary_sync: String,
    /// Secondary's sync-link address.
    #[arg(long, value_name = "ADDR:PORT", default_value = SECONDARY_SYNC)]
    pub secondary_sync: String,
    /// Primary's control port.
    #[arg(long, value_name = "ADDR:PORT", default_value = PRIMARY_CONTROL)]
    pub primary_control: String,
    /// Secondary's control port.
    #[arg(long, value_name = "ADDR:PORT", default_value = SECONDARY_CONTROL)]
    pub secondary_control: String,
    /// Missed heartbeats that declare a failure.
    #[arg(long, default_value_t = 3)]
    pub miss: u32,
    /// Heartbeat period, us (default: from the asset's frame rate, miss x period <= 1/3 frame).
    #[arg(long, value_name = "US")]
    pub heartbeat_us: Option<u64>,
    /// Switch point: seamless, pcr or frame.
    #[arg(long, value_enum, default_value_t = SwitchMode::Seamless)]
    pub switch_at: SwitchMode,
    /// Who initiates synchronisation: secondary, primary or component.
    #[arg(long, value_enum, default_value_t = SyncInit::Secondary)]
    pub sync_init: SyncInit,
    /// Shared secret file for the sync and control messages (default: session-derived key).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// `--no-quiet-startup` and `--rt-priority N` are given to both servers.
    #[command(flatten)]
    pub startup: super::startup::StartupArgs,
}

fn value<T: clap::ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

/// The two command lines (without the program).
pub fn command_lines(a: &PairArgs) -> (Vec<String>, Vec<String>) {
    let mut common = vec![
        a.asset.display().to_string(),
        format!("--dest={}", a.dest),
        format!("--iface={}", a.iface),
        format!("--ttl={}", a.ttl),
        format!("--miss={}", a.miss),
        format!("--switch-at={}", value(&a.switch_at)),
        format!("--sync-init={}", value(&a.sync_init)),
    ];
    if let Some(l) = a.loops {
        common.push(format!("--loop={l}"));
    }
    if let Some(s) = &a.session_id {
        common.push(format!("--session-id={s}"));
    }
    if let Some(h) = a.heartbeat_us {
        common.push(format!("--heartbeat-us={h}"));
    }
    if let Some(k) = &a.key_file {
        common.push(format!("--key-file={}", k.display()));
    }
    common.extend(a.startup.forward());
    let mut p = vec!["primary".to_string()];
    p.extend(common.iter().cloned());
    p.extend([
        format!("--muted={}", a.muted),
        format!("--sync-listen={}", a.primary_sync),
        format!("--sync-peer={}", a.secondary_sync),
        format!("--control-listen={}", a.primary_control),
    ]);
    let mut s = vec!["secondary".to_string()];
    s.extend(common);
    s.extend([
        format!("--muted={}", a.muted),
        format!("--sync-listen={}", a.secondary_sync),
        format!("--sync-peer={}", a.primary_sync),
        format!("--control-listen={}", a.secondary_control),
    ]);
    (p, s)
}

/// Runs `tandem pair`.
pub fn run(a: &PairArgs) -> anyhow::Result<i32> {
    if !a.asset.is_file() {
        eprintln!("tandem pair: {}: no such file", a.asset.display());
        return Ok(EXIT_BAD_INPUT);
    }
    let exe = std::env::current_exe()?;
    let (pl, sl) = command_lines(a);
    let signals = Signals::block()?;
    let spawn = |args: &[String]| -> std::io::Result<Child> {
        Command::new(&exe).args(args).stdin(Stdio::null()).spawn()
    };
    let mut children: Vec<(&str, Child)> = Vec::new();
    for (name, args) in [("primary", &pl), ("secondary", &sl)] {
        match spawn(args) {
            Ok(c) => {
                println!(
                    "{name}: pid {}: {} {}",
                    c.id(),
                    exe.display(),
                    args.join(" ")
                );
                children.push((name, c));
            }
            Err(e) => {
                eprintln!("tandem pair: cannot start the {name}: {e}");
                for (_, c) in &mut children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return Ok(EXIT_RUNTIME);
            }
        }
    }
    let mut codes: Vec<Option<i32>> = vec![None; children.len()];
    let mut forwarded = false;
    loop {
        for (k, (name, c)) in children.iter_mut().enumerate() {
            if codes[k].is_none() {
                if let Ok(Some(st)) = c.try_wait() {
                    let code = st.code().unwrap_or(EXIT_RUNTIME);
                    println!("{name} (pid {}) ended: {st}", c.id());
                    codes[k] = Some(code);
                }
            }
        }
        if codes.iter().all(|c| c.is_some()) {
            break;
        }
        if let Some(sig) = signals.wait(Duration::from_millis(100)) {
            if !forwarded {
                forwarded = true;
                for (k, (_, c)) in children.iter().enumerate() {
                    if codes[k].is_none() {
                        // SAFETY: kill(2) with the pid of a child we have not reaped yet and
                        // a signal number; no memory is involved.
                        unsafe {
                            libc::kill(c.id() as libc::pid_t, sig);
                        }
                    }
                }
            }
        }
    }
    Ok(if codes.iter().all(|c| *c == Some(0)) {
        0
    } else {
        EXIT_RUNTIME
    })
}
