//! `tandem status ADDR:PORT [--json]`: a server's failover state, epoch, peer, heartbeats
//! missed, position, clock offset and refused-message counters, from its control port.

use super::{EXIT_BAD_INPUT, EXIT_RUNTIME};
use crate::failover::wire::{Key, SenderRole};
use crate::net::failover::client::Client;
use crate::net::failover::link::read_key_file;

/// Authentication flags shared by the control clients.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientAuth {
    /// Shared secret file, as given to the servers (default: the key derived from
    /// --session-id, or from no session, which servers without a key file accept).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<std::path::PathBuf>,
    /// The servers' --session-id, if they were given one and no key file.
    #[arg(long, value_name = "ID", conflicts_with = "channel")]
    pub session_id: Option<String>,
    /// A channel of a `tandem serve` host, by its name in the configuration (the host
    /// routes the request to it; without it `tandem status` lists every channel).
    #[arg(long, value_name = "NAME")]
    pub channel: Option<String>,
}

impl ClientAuth {
    /// The key and the wire session to use.
    pub fn resolve(&self) -> anyhow::Result<(Key, u64)> {
        let text = match (&self.session_id, &self.channel) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(c)) => Some(super::serve::config::channel_session_text(c)),
            (None, None) => None,
        };
        let session = match text {
            Some(s) => xxhash_rust::xxh3::xxh3_64(s.as_bytes()).max(1),
            None => 0,
        };
        let key = match &self.key_file {
            Some(p) => read_key_file(p)?,
            None => Key::derive_from_session(session),
        };
        Ok((key, session))
    }

    /// A client of `role`.
    pub fn client(&self, role: SenderRole) -> anyhow::Result<Client> {
        let (key, session) = self.resolve()?;
        Ok(Client::new(role, key, session)?)
    }
}

/// Flags of `tandem status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The server's control address (its --control-listen).
    #[arg(value_name = "ADDR:PORT")]
    pub addr: String,
    /// Print the whole status object as JSON (schema tandem.status/1).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub auth: ClientAuth,
}

/// Runs `tandem status`.
pub fn run(a: &StatusArgs) -> anyhow::Result<i32> {
    let addr = match super::server::parse_addr("status", &a.addr) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("tandem status: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let mut c = match a.auth.client(SenderRole::Client) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tandem status: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let s = match c.status(addr) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tandem status: {e}");
            return Ok(EXIT_RUNTIME);
        }
    };
    use std::io::Write;
    let listing = s.get("schema").and_then(|v| v.as_str()) == Some("tandem.serve-status/1");
    let text = match (a.json, listing) {
        (true, _) => format!("{s}\n"),
        (false, true) => human_listing(&s),
        (false, false) => human(&s),
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(0)
}

/// The value at `path` in a status object, as text (`-` when absent).
pub(crate) fn field(v: &serde_json::Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return "-".into(),
        }
    }
    match cur {
        serde_json::Value::Null => "-".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A `tandem serve` host's listing: one line per channel.
fn human_listing(s: &serde_json::Value) -> String {
    let empty = Vec::new();
    let chans = s
        .get("channels")
        .and_then(|c| c.as_array())
        .unwrap_or(&empty);
    let mut out = format!(
        "host {} (pid {}): {} channel(s)\n{:<16} {:<9} {:<26} {:<7} {:<6} {:<8} {}\n",
        field(s, &["host"]),
        field(s, &["pid"]),
        chans.len(),
        "channel",
        "role",
        "state",
        "on air",
        "epoch",
        "sync",
        "alarms / error"
    );
    for c in chans {
        let alarms: Vec<&str> = c
            .get("alarms")
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        let note = match c.get("error").and_then(|e| e.as_str()) {
            Some(e) => e.to_string(),
            None if alarms.is_empty() => "-".into(),
            None => alarms.join(", "),
        };
        out.push_str(&format!(
            "{:<16} {:<9} {:<26} {:<7} {:<6} {:<8} {}\n",
            field(c, &["name"]),
            field(c, &["role_here"]),
            field(c, &["state"]),
            match c.get("on_air").and_then(|v| v.as_bool()) {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            },
            field(c, &["epoch"]),
            match c.get("sync_link_up").and_then(|v| v.as_bool()) {
                Some(true) => "up",
                Some(false) => "down",
                None => "-",
            },
            note
        ));
    }
    out
}

fn human(s: &serde_json::Value) -> String {
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: String| out.push_str(&format!("{k:<22} {v}\n"));
    line(&mut out, "state", field(s, &["state"]));
    let alarms: Vec<&str> = s
        .get("alarms")
        .and_then(|a| a.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    line(
        &mut out,
        "alarms",
        if alarms.is_empty() {
            "none".to_string()
        } else {
            alarms.join(", ")
        },
    );
    line(
        &mut out,
        "role / server id",
        format!("{} / {}", field(s, &["role"]), field(s, &["server_id"])),
    );
    line(
        &mut out,
        "epoch",
        format!(
            "{} (own claim {})",
            field(s, &["epoch"]),
            field(s, &["owner_epoch"])
        ),
    );
    line(&mut out, "live gate", field(s, &["live"]));
    line(
        &mut out,
        "peer",
        format!(
            "{} {} (last datagram {})",
            field(s, &["peer", "sync_addr"]),
            field(s, &["peer", "state"]),
            field(s, &["peer", "last_index"])
        ),
    );
    line(
        &mut out,
        "heartbeats missed",
        format!(
            "{} (period {} us, miss {})",
            field(s, &["peer", "heartbeats_missed"]),
            field(s, &["heartbeat_us"]),
            field(s, &["miss"])
        ),
    );
    line(
        &mut out,
        "position",
        format!(
            "datagram {} to {}",
            field(s, &["position", "last_index"]),
            field(s, &["position", "target"])
        ),
    );
    line(&mut out, "clock offset ns", field(s, &["clock_offset_ns"]));
    line(&mut out, "asset", field(s, &["asset"]));
    if s.get("playlist").is_some_and(|p| !p.is_null()) {
        line(
            &mut out,
            "playlist",
            format!(
                "item {} of {} (pass {}): {}",
                field(s, &["playlist", "item"]),
                field(s, &["playlist", "items"]),
                field(s, &["playlist", "pass"]),
                field(s, &["playlist", "source"])
            ),
        );
    }
    line(&mut out, "refused messages", field(s, &["rejected_total"]));
    line(&mut out, "last error", field(s, &["last_error"]));
    if let Some(t) = s.get("transitions").and_then(|t| t.as_array()) {
        out.push_str("transitions\n");
        for t in t.iter().rev().take(8).rev() {
            out.push_str(&format!(
                "  {} -> {} ({}): {}\n",
                field(t, &["from"]),
                field(t, &["to"]),
                field(t, &["trigger"]),
                field(t, &["detail"])
            ));
        }
    }
    out
}
