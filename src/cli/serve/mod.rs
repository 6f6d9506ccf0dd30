//! `tandem serve CONFIG`: one process per host serving many channels from one TOML file
//! (`docs/serve.md`). `--check` parses and validates the file and prints the plan (each
//! channel's role on this host, its groups and its session); without it the host binds its
//! shared sync link and control port and runs every channel ([`run::Host`]) until SIGINT or
//! SIGTERM, or until every channel's session has ended.

pub mod config;
pub mod run;

use std::path::PathBuf;

use super::{EXIT_BAD_INPUT, EXIT_RUNTIME};

/// `tandem serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The configuration file (TOML: one [host] table, one [[channel]] table per channel;
    /// every key in docs/serve.md).
    pub config: PathBuf,
    /// Validate the file and print what this host would serve, then exit (0: valid,
    /// 2: the error, with file, line, channel and key).
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub startup: super::startup::StartupArgs,
}

/// Runs `tandem serve`.
pub fn run(a: &ServeArgs) -> anyhow::Result<i32> {
    let text = match std::fs::read_to_string(&a.config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tandem serve: {}: {e}", a.config.display());
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let cfg = match config::parse(&text, &a.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tandem serve: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    print!("{}", plan(&cfg));
    if a.check {
        return Ok(0);
    }
    a.startup.apply();
    if let Some(d) = &cfg.host.event_log {
        let start = crate::net::clock::mono_ns();
        if let Err(e) = crate::net::failover::event_log::open(d, cfg.host.iface, &[], start) {
            eprintln!("tandem serve: [host] event_log {d}: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    }
    // Before any thread starts, so that every thread inherits the mask.
    let signals = super::signals::Signals::block_with_hup()?;
    let mut host = match run::Host::start(&cfg) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("tandem serve: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    if host.failed == cfg.channels.len() && !cfg.channels.is_empty() {
        eprintln!("tandem serve: no channel could start");
        host.stop();
        return Ok(EXIT_BAD_INPUT);
    }
    crate::net::notify::ready(&format!(
        "serving {} channel(s) ({} could not start)",
        cfg.channels.len() - host.failed,
        host.failed
    ));
    tracing::info!(
        host = %cfg.host.name,
        channels = cfg.channels.len(),
        failed = host.failed,
        sync = %cfg.host.sync_listen,
        control = %cfg.host.control_listen,
        "serving"
    );
    let mut worst = 0;
    loop {
        let sig = signals.wait(std::time::Duration::from_millis(200));
        if sig == Some(libc::SIGHUP) {
            tracing::info!(file = %a.config.display(), "SIGHUP: reloading the configuration");
            reload(&mut host, &a.config);
            continue;
        }
        while let Some(from) = host.reload_request() {
            tracing::info!(file = %a.config.display(), from = %from, "reload requested on the control port");
            let answer = reload(&mut host, &a.config);
            host.answer_reload(from, &answer);
        }
        if let Some(sig) = sig {
            tracing::info!(signal = sig, "signal received: stopping every channel");
            crate::net::notify::stopping();
            let _ = host.stop();
            return Ok(0);
        }
        worst = worst.max(host.reap());
        host.tick();
        if host.running() == 0 {
            tracing::info!("every channel has ended");
            let _ = host.stop();
            return Ok(if worst == 0 { 0 } else { EXIT_RUNTIME });
        }
    }
}

/// A reload (SIGHUP, or `tandem request reload`): reads the file again and applies it; a
/// file that does not parse changes nothing. The answer for the control port:
/// `{"reloaded": bool, "report": [lines]}` or `{"reloaded": false, "reason": text}`.
fn reload(host: &mut run::Host, path: &std::path::Path) -> serde_json::Value {
    let parsed = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: {e}", path.display()))
        .and_then(|t| config::parse(&t, path).map_err(|e| e.to_string()));
    let new = match parsed {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("reload refused, nothing changed: {e}");
            return serde_json::json!({"reloaded": false, "reason": format!("nothing changed: {e}")});
        }
    };
    match host.reload(&new) {
        Ok(report) => {
            if report.is_empty() {
                tracing::info!("reload: nothing changed");
            }
            for line in &report {
                tracing::info!("reload: {line}");
            }
            serde_json::json!({"reloaded": true, "report": report})
        }
        Err(e) => {
            tracing::error!("reload refused: {e}");
            serde_json::json!({"reloaded": false, "reason": e})
        }
    }
}

/// What this host serves, one line per channel.
fn plan(c: &config::ServeConfig) -> String {
    let h = &c.host;
    let mut out = format!(
        "host {}: sync {} <-> {}, control {}, interface {}{}\n",
        h.name,
        h.sync_listen,
        h.sync_peer,
        h.control_listen,
        h.iface,
        h.key_file
            .as_ref()
            .map(|k| format!(", key file {}", k.display()))
            .unwrap_or_else(|| ", no key file (session-derived keys)".into())
    );
    let primaries = c
        .channels
        .iter()
        .filter(|ch| ch.primary_on(&h.name))
        .count();
    out.push_str(&format!(
        "{} channel(s): primary for {}, secondary for {}\n",
        c.channels.len(),
        primaries,
        c.channels.len() - primaries
    ));
    for ch in &c.channels {
        let role = if ch.primary_on(&h.name) {
            "primary"
        } else {
            "secondary"
        };
        let source = ch.asset.as_ref().map_or_else(
            || "waits for an asset request".to_string(),
            |p| p.display().to_string(),
        );
        out.push_str(&format!(
            "  {:<16} {:<9} live {} muted {} ({}; preferred primary {}; session '{}')\n",
            ch.name,
            role,
            ch.live,
            ch.muted,
            source,
            ch.primary,
            ch.session_text()
        ));
    }
    out
}
