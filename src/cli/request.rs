//! `tandem request play ASSET --to ADDR:PORT[,ADDR:PORT] [--start-in-ms 500]`: a user's asset
//! request via the first network (claim 1). Both servers receive it with a common start
//! time, load the asset and start in lockstep.
//!
//! `tandem request switchover --to ADDR:PORT`: a planned hand-over. The server on air hands
//! the live group to its synchronised peer at a datagram boundary about 200 ms ahead,
//! nothing lost or repeated (for maintenance, or to restore the preferred layout).
//!
//! `tandem request reload --to ADDR:PORT`: a `tandem serve` host reads its configuration
//! again and applies it (as SIGHUP); the answer says what changed.

use super::status::ClientAuth;
use super::{EXIT_BAD_INPUT, EXIT_RUNTIME};
use crate::failover::wire::{Body, SenderRole};
use crate::net::clock::real_ns;
use crate::net::failover::client::state_of;

/// `tandem request ...`.
#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    #[command(subcommand)]
    pub what: RequestKind,
}

/// The requests.
#[derive(Debug, clap::Subcommand)]
pub enum RequestKind {
    /// Play an asset (its path on the servers).
    Play(PlayRequestArgs),
    /// Hand the live group from the server on air to its synchronised peer, seamlessly
    /// (refused, with the reason, when the peer is not synchronised).
    Switchover(SwitchoverArgs),
    /// Make a `tandem serve` host read its configuration file again and apply it (as
    /// SIGHUP): channels added start, removed ones stop, a changed one on air is handed to
    /// its peer first; prints what changed (exit 1: refused, nothing changed).
    Reload(ReloadArgs),
}

/// `tandem request reload`.
#[derive(Debug, clap::Args)]
pub struct ReloadArgs {
    /// The host's control address (`[host] control_listen`).
    #[arg(long, value_name = "ADDR:PORT")]
    pub to: String,
    /// Shared secret file, as the host's `[host] key_file` (default: the key of no
    /// session, which a host without a key file accepts).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<std::path::PathBuf>,
}

/// `tandem request switchover`.
#[derive(Debug, clap::Args)]
pub struct SwitchoverArgs {
    /// The control address of the server on air.
    #[arg(long, value_name = "ADDR:PORT")]
    pub to: String,
    /// How long to wait for the peer to be on air (ms).
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub wait_ms: u64,
    #[command(flatten)]
    pub auth: ClientAuth,
}

/// `tandem request play`.
#[derive(Debug, clap::Args)]
pub struct PlayRequestArgs {
    /// Path of the asset on the servers.
    pub asset: String,
    /// The servers' control addresses, comma separated.
    #[arg(
        long,
        value_name = "ADDR:PORT[,ADDR:PORT]",
        value_delimiter = ',',
        required = true
    )]
    pub to: Vec<String>,
    /// Start the session this long after the request is sent (both servers start then).
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub start_in_ms: u64,
    #[command(flatten)]
    pub auth: ClientAuth,
}

/// Runs `tandem request`.
pub fn run(a: &RequestArgs) -> anyhow::Result<i32> {
    let p = match &a.what {
        RequestKind::Play(p) => p,
        RequestKind::Switchover(s) => return switchover(s),
        RequestKind::Reload(r) => return reload(r),
    };
    let mut to = Vec::new();
    for t in &p.to {
        match super::server::parse_addr("to", t) {
            Ok(x) => to.push(x),
            Err(e) => {
                eprintln!("tandem request: {e:#}");
                return Ok(EXIT_BAD_INPUT);
            }
        }
    }
    let mut c = match p.auth.client(SenderRole::Client) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tandem request: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let start = real_ns() + p.start_in_ms.saturating_mul(1_000_000);
    let body = Body::PlayRequest {
        asset_path: p.asset.clone(),
        start_real_ns: Some(start),
    };
    for addr in &to {
        if let Err(e) = c.tell(*addr, body.clone()) {
            eprintln!("tandem request: {addr}: {e}");
            return Ok(EXIT_RUNTIME);
        }
    }
    // Confirm: each server left its offline state (or says why not).
    let mut code = 0;
    std::thread::sleep(std::time::Duration::from_millis(100));
    for addr in &to {
        match c.status(*addr) {
            Ok(s) => {
                let st = state_of(&s);
                let err = s.get("last_error").and_then(|e| e.as_str());
                let offline = matches!(st, Some(crate::failover::state::State::PrimaryOffline));
                println!(
                    "{addr}: {}{}",
                    st.map_or("unknown".to_string(), |s| s.to_string()),
                    err.map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default()
                );
                if offline && err.is_some() {
                    code = EXIT_RUNTIME;
                }
            }
            Err(e) => {
                eprintln!("tandem request: {addr}: {e}");
                code = EXIT_RUNTIME;
            }
        }
    }
    println!("requested {} at unix ms {}", p.asset, start / 1_000_000);
    Ok(code)
}

/// Sends `body` once and waits up to `wait_ms` for its JSON answer (a `StatusReply`).
fn ask_json(
    c: &mut crate::net::failover::client::Client,
    to: std::net::SocketAddrV4,
    body: Body,
    wait_ms: u64,
) -> Result<serde_json::Value, crate::net::failover::client::ClientError> {
    c.ask(
        to,
        body,
        1,
        std::time::Duration::from_millis(wait_ms),
        |b| match b {
            Body::StatusReply { json } => serde_json::from_str::<serde_json::Value>(json).ok(),
            _ => None,
        },
    )
}

/// Runs `tandem request reload`: asks the host and prints its report.
fn reload(r: &ReloadArgs) -> anyhow::Result<i32> {
    let to = match super::server::parse_addr("to", &r.to) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("tandem request: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let auth = ClientAuth {
        key_file: r.key_file.clone(),
        session_id: None,
        channel: None,
    };
    let mut c = match auth.client(SenderRole::Client) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tandem request: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    // A reload may hand channels over first (up to a few seconds each): wait for it.
    let answer = ask_json(&mut c, to, Body::ReloadRequest, 60_000);
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tandem request reload: {to}: {e} (is it a `tandem serve` host?)");
            return Ok(EXIT_RUNTIME);
        }
    };
    if answer["reloaded"] != serde_json::Value::Bool(true) {
        let why = answer["reason"].as_str().unwrap_or("no reason given");
        eprintln!("tandem request reload: {to} refused: {why}");
        return Ok(EXIT_RUNTIME);
    }
    let lines = answer["report"].as_array().cloned().unwrap_or_default();
    if lines.is_empty() {
        println!("{to}: reloaded, nothing changed");
    }
    for l in lines {
        println!("{to}: {}", l.as_str().unwrap_or_default());
    }
    Ok(0)
}

/// Runs `tandem request switchover`: asks, prints the answer, then waits until the server
/// is no longer on air (its peer took the live group at the offered datagram).
fn switchover(s: &SwitchoverArgs) -> anyhow::Result<i32> {
    let to = match super::server::parse_addr("to", &s.to) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("tandem request: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let mut c = match s.auth.client(SenderRole::Client) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tandem request: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    // A refusal while the output is held for a moment (a stall) is asked again, for 1 s.
    let mut answer = ask_json(&mut c, to, Body::SwitchoverRequest, 1_000);
    for _ in 0..10 {
        match &answer {
            Ok(a) if a["reason"] == crate::failover::machine::HELD_REFUSAL => {
                std::thread::sleep(std::time::Duration::from_millis(100));
                answer = ask_json(&mut c, to, Body::SwitchoverRequest, 1_000);
            }
            _ => break,
        }
    }
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tandem request switchover: {to}: {e}");
            return Ok(EXIT_RUNTIME);
        }
    };
    if answer["accepted"] != serde_json::Value::Bool(true) {
        let why = answer["reason"].as_str().unwrap_or("no reason given");
        eprintln!("tandem request switchover: {to} refused: {why}");
        return Ok(EXIT_RUNTIME);
    }
    let at = answer["at_index"].as_u64().unwrap_or(0);
    println!("{to}: hand-over offered to the peer from datagram {at}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(s.wait_ms);
    while std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        if let Ok(st) = c.status(to) {
            if let Some(state) = state_of(&st).filter(|s| !s.on_air()) {
                println!("{to}: {state}: the peer is on air from datagram {at}");
                return Ok(0);
            }
        }
    }
    eprintln!(
        "tandem request switchover: {to} is still on air after {} ms (the peer did not accept the offer)",
        s.wait_ms
    );
    Ok(EXIT_RUNTIME)
}
