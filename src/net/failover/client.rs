//! One-shot clients of a server's control port: `tandem status` (StatusRequest), `tandem
//! request` (PlayRequest, claim 1) and `tandem sync` (the synchronisation component of
//! claim 6: SyncRequest to the primary, SyncParams to the secondary, then status until the
//! secondary is synchronised).

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use crate::failover::state::State;
use crate::failover::wire::{self, Body, Key, Msg, ReplayGuard, SenderRole, Stamper, SyncParams};
use crate::net::clock::real_ns;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No (valid) answer in time.
    #[error("no answer from {0} (is a tandem server listening there, with the same key?)")]
    NoAnswer(SocketAddrV4),
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An answer that makes no sense.
    #[error("{0}")]
    Bad(String),
}

/// A client endpoint: an ephemeral UDP socket and a header stamper.
pub struct Client {
    sock: UdpSocket,
    key: Key,
    stamper: Stamper,
    guard: ReplayGuard,
    session: u64,
}

impl Client {
    /// A client of `role` (client or sync component) using `key` and wire session
    /// `session` (0 = none: servers without a key file accept session 0's derived key).
    pub fn new(role: SenderRole, key: Key, session: u64) -> Result<Client, ClientError> {
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        let boot = real_ns();
        let id = ((boot as u32) ^ std::process::id().rotate_left(16)) & 0x3FFF_FFFF;
        Ok(Client {
            sock,
            key,
            stamper: Stamper::new(role, id.max(1), boot, session),
            guard: ReplayGuard::new(),
            session,
        })
    }

    fn send(&mut self, to: SocketAddrV4, body: Body) -> Result<(), ClientError> {
        let msg = Msg {
            header: self.stamper.header(0, false, real_ns()),
            body,
        };
        let bytes = wire::encode(&msg, &self.key).map_err(|e| ClientError::Bad(e.to_string()))?;
        self.sock.send_to(&bytes, to)?;
        Ok(())
    }

    /// Sends `body` to `to` (up to `tries` times, `timeout` apart) until `pick` accepts an
    /// answer from it.
    pub fn ask<T>(
        &mut self,
        to: SocketAddrV4,
        body: Body,
        tries: u32,
        timeout: Duration,
        mut pick: impl FnMut(&Body) -> Option<T>,
    ) -> Result<T, ClientError> {
        let mut buf = vec![0u8; 65_536];
        for _ in 0..tries.max(1) {
            self.send(to, body.clone())?;
            let deadline = Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                self.sock.set_read_timeout(Some(left))?;
                let (n, from) = match self.sock.recv_from(&mut buf) {
                    Ok(x) => x,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::ConnectionRefused
                        ) =>
                    {
                        if e.kind() == std::io::ErrorKind::ConnectionRefused {
                            std::thread::sleep(left.min(Duration::from_millis(50)));
                        }
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                if from != SocketAddr::V4(to) {
                    continue;
                }
                let session = (self.session != 0).then_some(self.session);
                let Ok(msg) = wire::decode(&buf[..n], &self.key, session) else {
                    continue;
                };
                if self.guard.check(&msg.header).is_err() {
                    continue;
                }
                if let Some(t) = pick(&msg.body) {
                    return Ok(t);
                }
            }
        }
        Err(ClientError::NoAnswer(to))
    }

    /// Sends without waiting for an answer.
    pub fn tell(&mut self, to: SocketAddrV4, body: Body) -> Result<(), ClientError> {
        self.send(to, body)
    }

    /// The server's status (JSON).
    pub fn status(&mut self, to: SocketAddrV4) -> Result<serde_json::Value, ClientError> {
        let json = self.ask(
            to,
            Body::StatusRequest,
            3,
            Duration::from_millis(500),
            |b| match b {
                Body::StatusReply { json } => Some(json.clone()),
                _ => None,
            },
        )?;
        serde_json::from_str(&json).map_err(|e| ClientError::Bad(format!("status JSON: {e}")))
    }

    /// The session parameters of the server on air (claim 6, first half).
    pub fn fetch_params(&mut self, from: SocketAddrV4) -> Result<SyncParams, ClientError> {
        self.ask(
            from,
            Body::SyncRequest,
            5,
            Duration::from_millis(300),
            |b| match b {
                Body::SyncParams(p) => Some(p.clone()),
                _ => None,
            },
        )
    }
}

/// The `state` field of a status object.
pub fn state_of(status: &serde_json::Value) -> Option<State> {
    status.get("state")?.as_str().and_then(State::from_name)
}
