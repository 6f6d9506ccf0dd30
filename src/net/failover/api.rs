//! The HTTP API's writes (`POST /api/v1/...`, `crate::net::http`), carried out through the
//! server's own control port: a switchover or a reload is the same authenticated control
//! message `tandem request` sends (MAC, replay guard, the event loop's one handler), so the
//! HTTP thread never touches the event loop's state and both ways behave alike.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use serde_json::{json, Value};

use crate::failover::wire::{Body, Key, SenderRole};
use crate::net::failover::client::{Client, ClientError};

/// The answer to a write: `Ok` (HTTP 200/202 with the JSON), or `Err((code, JSON))`.
pub type Answer = Result<Value, (u16, Value)>;

/// A server's (or host's) control port, as a client with its key sees it.
#[derive(Clone)]
pub struct ControlPort {
    key: Key,
    to: SocketAddrV4,
}

impl std::fmt::Debug for ControlPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPort").field("to", &self.to).finish()
    }
}

impl ControlPort {
    /// The control port listening on `listen` (an unspecified address is asked on
    /// loopback), authenticated with `key`.
    pub fn new(key: Key, listen: SocketAddrV4) -> ControlPort {
        let ip = if listen.ip().is_unspecified() {
            Ipv4Addr::LOCALHOST
        } else {
            *listen.ip()
        };
        ControlPort {
            key,
            to: SocketAddrV4::new(ip, listen.port()),
        }
    }

    fn ask(&self, session: u64, body: Body, wait: Duration) -> Result<Value, ClientError> {
        let mut c = Client::new(SenderRole::Client, self.key.clone(), session)?;
        c.ask(self.to, body, 1, wait, |b| match b {
            Body::StatusReply { json } => serde_json::from_str::<Value>(json).ok(),
            _ => None,
        })
    }

    /// A planned switchover of the channel of wire session `session`: 202 with the
    /// datagram the hand-over lands on, 409 with the server's reason when it refuses (the
    /// peer not synchronised, this server not on air, ...), 503 when the port does not
    /// answer. A refusal while the output is held for a moment is asked again for 1 s, as
    /// `tandem request switchover` does.
    pub fn switchover(&self, session: u64) -> Answer {
        let mut answer = self.ask(session, Body::SwitchoverRequest, Duration::from_secs(1));
        for _ in 0..10 {
            match &answer {
                Ok(a) if a["reason"] == crate::failover::machine::HELD_REFUSAL => {
                    std::thread::sleep(Duration::from_millis(100));
                    answer = self.ask(session, Body::SwitchoverRequest, Duration::from_secs(1));
                }
                _ => break,
            }
        }
        match answer {
            Ok(a) if a["accepted"] == Value::Bool(true) => Ok(a),
            Ok(a) => Err((409, a)),
            Err(e) => Err((503, json!({"accepted": false, "reason": e.to_string()}))),
        }
    }

    /// A reload of a `tandem serve` host's configuration: 200 with its report (what was
    /// added, removed, changed), 422 with the reason when the file was refused (nothing
    /// changed), 503 when the host does not answer within 60 s.
    pub fn reload(&self) -> Answer {
        match self.ask(0, Body::ReloadRequest, Duration::from_secs(60)) {
            Ok(r) if r["reloaded"] == Value::Bool(false) => Err((422, r)),
            Ok(r) => Ok(r),
            Err(e) => Err((503, json!({"error": e.to_string()}))),
        }
    }
}
