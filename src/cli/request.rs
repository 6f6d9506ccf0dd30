//! `tandem request play ASSET --to ADDR:PORT[,ADDR:PORT] [--start-in-ms 500]`: a user's asset
//! request via the first network (claim 1). Both servers receive it with a common start
//! time, load the asset and start in lockstep.

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
    let RequestKind::Play(p) = &a.what;
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
