//! `tandem sync --primary CTRL --secondary CTRL`: the synchronisation component of claim 6.
//! It fetches the session parameters from the primary's control port and delivers them to
//! the secondary's, which then measures its clock offset to the primary over the sync link
//! and locks on. Exits 0 once the secondary reports `Secondary_synchronized`.

use std::time::{Duration, Instant};

use super::status::ClientAuth;
use super::{EXIT_BAD_INPUT, EXIT_RUNTIME};
use crate::failover::state::State;
use crate::failover::wire::{Body, SenderRole};
use crate::net::failover::client::state_of;

/// Flags of `tandem sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// The primary's control address.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7311")]
    pub primary: String,
    /// The secondary's control address.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7312")]
    pub secondary: String,
    /// Give up after this long.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub timeout_ms: u64,
    #[command(flatten)]
    pub auth: ClientAuth,
}

/// Runs `tandem sync`.
pub fn run(a: &SyncArgs) -> anyhow::Result<i32> {
    let (p, s) = match (
        super::server::parse_addr("primary", &a.primary),
        super::server::parse_addr("secondary", &a.secondary),
    ) {
        (Ok(p), Ok(s)) => (p, s),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("tandem sync: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let mut c = match a.auth.client(SenderRole::Sync) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tandem sync: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let params = match c.fetch_params(p) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("tandem sync: fetching the parameters from the primary: {e}");
            return Ok(EXIT_RUNTIME);
        }
    };
    println!(
        "parameters from {p}: asset {} ({}), origin index {} at unix ns {}",
        params.asset_name, params.asset, params.origin_index, params.origin_real_ns
    );
    let deadline = Instant::now() + Duration::from_millis(a.timeout_ms);
    let mut next_send = Instant::now();
    let mut last = None;
    while Instant::now() < deadline {
        if Instant::now() >= next_send {
            if let Err(e) = c.tell(s, Body::SyncParams(params.clone())) {
                eprintln!("tandem sync: {s}: {e}");
                return Ok(EXIT_RUNTIME);
            }
            next_send = Instant::now() + Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(100));
        match c.status(s) {
            Ok(st) => {
                let state = state_of(&st);
                if state == Some(State::SecondarySynchronized) {
                    println!("{s}: Secondary_synchronized");
                    return Ok(0);
                }
                last = Some(st);
            }
            Err(e) => {
                eprintln!("tandem sync: {s}: {e}");
                return Ok(EXIT_RUNTIME);
            }
        }
    }
    let why = last
        .as_ref()
        .map(|st| {
            format!(
                "it is {}{}",
                st["state"].as_str().unwrap_or("?"),
                st["last_error"]
                    .as_str()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )
        })
        .unwrap_or_default();
    eprintln!(
        "tandem sync: the secondary did not synchronise within {} ms: {why}",
        a.timeout_ms
    );
    Ok(EXIT_RUNTIME)
}
