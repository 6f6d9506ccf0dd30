//! An authenticated message socket: one UDP socket (bound, non-blocking, `SO_TIMESTAMPNS`)
//! that decodes [`crate::failover::wire`] messages with one or more keys, counts and logs
//! (rate-limited) every refused datagram by reason, and never acts on one.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

use crate::failover::wire::{self, Key, Msg, ReplayError, WireError};
use crate::net::recv_socket::{enable_timestamps, recv_timestamped};

/// At most one refusal log line per link per this interval.
const LOG_INTERVAL_NS: u64 = 1_000_000_000;

/// Counters of refused datagrams, by reason (shown by `tandem status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Rejects {
    /// Not a tandem message.
    pub garbage: u64,
    /// Shorter or longer than its lengths say.
    pub truncated: u64,
    /// Another protocol version.
    pub wrong_version: u64,
    /// Another session.
    pub other_session: u64,
    /// MAC mismatch (corrupted, forged, other key).
    pub bad_mac: u64,
    /// Authentic but malformed (unknown kind, bad field).
    pub malformed: u64,
    /// Authentic but replayed (old sequence number or boot).
    pub replayed: u64,
    /// Authentic but not acceptable here (e.g. a command from a role that may not give it).
    pub refused: u64,
}

impl Rejects {
    /// Total refused.
    pub fn total(&self) -> u64 {
        self.garbage
            + self.truncated
            + self.wrong_version
            + self.other_session
            + self.bad_mac
            + self.malformed
            + self.replayed
            + self.refused
    }
}

/// A received, authenticated message.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The message.
    pub msg: Msg,
    /// Who sent it.
    pub from: SocketAddr,
    /// Kernel receive time (CLOCK_REALTIME ns, not offset), if the kernel gave one.
    pub kernel_ns: Option<u64>,
    /// Which of the link's keys verified it (index into the keys given to [`Link::bind`]).
    pub key: usize,
}

/// A datagram read by a link.
struct Datagram {
    /// Where its bytes lie in the link's buffer.
    at: std::ops::Range<usize>,
    from: SocketAddr,
    kernel_ns: Option<u64>,
}

/// Where a link's datagrams come from.
enum Inbox {
    /// A socket of its own.
    Socket(mio::net::UdpSocket),
    /// A host socket shared by channels: datagrams of this link's session, routed by
    /// [`super::host_link`] behind an envelope.
    Routed(super::host_link::Route),
}

/// The socket and its keys.
pub struct Link {
    name: &'static str,
    inbox: Inbox,
    /// The socket it sends from (a clone; for other threads too).
    std: UdpSocket,
    local: SocketAddr,
    keys: Vec<Key>,
    session: Option<u64>,
    rejects: Rejects,
    last_log_ns: u64,
    quiet: u64,
    buf: Vec<u8>,
    timestamps: bool,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("name", &self.name)
            .field("local", &self.local)
            .field("rejects", &self.rejects)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Binds `addr` (non-blocking, kernel receive timestamps). `keys[0]` signs what this
    /// link sends; any of `keys` verifies what it receives. `session`: refuse messages of
    /// other sessions (session 0 is always accepted, for clients).
    pub fn bind(
        name: &'static str,
        addr: SocketAddrV4,
        keys: Vec<Key>,
        session: Option<u64>,
    ) -> io::Result<Link> {
        let s = UdpSocket::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("{name}: cannot bind {addr}: {e}")))?;
        let timestamps = enable_timestamps(s.as_raw_fd());
        s.set_nonblocking(true)?;
        let std = s.try_clone()?;
        let local = s.local_addr()?;
        Ok(Link {
            name,
            inbox: Inbox::Socket(mio::net::UdpSocket::from_std(s)),
            std,
            local,
            keys,
            session,
            rejects: Rejects::default(),
            last_log_ns: 0,
            quiet: 0,
            buf: vec![0u8; 65_536],
            timestamps,
        })
    }

    /// A link over a host socket shared by channels (`tandem serve`): it receives what the
    /// host routes to `session` and sends from the shared socket.
    pub fn routed(
        name: &'static str,
        route: super::host_link::Route,
        keys: Vec<Key>,
        session: u64,
    ) -> io::Result<Link> {
        let std = route.tx.try_clone()?;
        Ok(Link {
            name,
            local: route.local,
            timestamps: route.timestamps,
            inbox: Inbox::Routed(route),
            std,
            keys,
            session: Some(session),
            rejects: Rejects::default(),
            last_log_ns: 0,
            quiet: 0,
            buf: vec![0u8; 65_536 + super::host_link::ENVELOPE_LEN],
        })
    }

    /// The mio source to register.
    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match &mut self.inbox {
            Inbox::Socket(s) => s,
            Inbox::Routed(r) => &mut r.rx,
        }
    }

    /// A clone of the socket it sends from (for a thread that must send when the loop
    /// cannot).
    pub fn try_clone_std(&self) -> io::Result<UdpSocket> {
        let s = self.std.try_clone()?;
        Ok(s)
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// The next datagram: where it lies in `buf`, its sender and kernel receive time.
    fn next_datagram(&mut self) -> io::Result<Option<Datagram>> {
        match &mut self.inbox {
            Inbox::Socket(s) => {
                let Some(r) = recv_timestamped(s.as_raw_fd(), &mut self.buf)? else {
                    return Ok(None);
                };
                Ok(Some(Datagram {
                    at: 0..r.len.min(self.buf.len()),
                    from: r.src,
                    kernel_ns: r.kernel_ns,
                }))
            }
            Inbox::Routed(r) => loop {
                let n = match r.rx.recv(&mut self.buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                    Err(e) => return Err(e),
                };
                let Some((kernel_ns, from)) = super::host_link::take_envelope(&self.buf[..n])
                else {
                    continue;
                };
                return Ok(Some(Datagram {
                    at: super::host_link::ENVELOPE_LEN..n,
                    from,
                    kernel_ns,
                }));
            },
        }
    }

    /// Whether the kernel gives receive timestamps.
    pub fn timestamps(&self) -> bool {
        self.timestamps
    }

    /// Refusal counters.
    pub fn rejects(&self) -> &Rejects {
        &self.rejects
    }

    /// The key that signs what this link sends.
    pub fn key(&self, i: usize) -> &Key {
        &self.keys[i.min(self.keys.len() - 1)]
    }

    /// Receives and authenticates the next message; `Ok(None)` when the socket is empty.
    /// Refused datagrams are counted and logged here and skipped.
    pub fn recv(&mut self, now_mono: u64) -> io::Result<Option<Incoming>> {
        loop {
            let Some(Datagram {
                at,
                from: src,
                kernel_ns,
            }) = self.next_datagram()?
            else {
                return Ok(None);
            };
            let bytes = &self.buf[at];
            let mut result = Err(WireError::BadMac);
            let mut used = 0;
            for (i, k) in self.keys.iter().enumerate() {
                result = wire::decode(bytes, k, self.session);
                used = i;
                if !matches!(result, Err(WireError::BadMac)) {
                    break;
                }
            }
            match result {
                Ok(msg) => {
                    return Ok(Some(Incoming {
                        msg,
                        from: src,
                        kernel_ns,
                        key: used,
                    }))
                }
                Err(e) => {
                    let c = &mut self.rejects;
                    match e {
                        WireError::Garbage { .. } => c.garbage += 1,
                        WireError::Truncated { .. } | WireError::TrailingBytes { .. } => {
                            c.truncated += 1
                        }
                        WireError::WrongVersion { .. } => c.wrong_version += 1,
                        WireError::OtherSession { .. } => c.other_session += 1,
                        WireError::BadMac => c.bad_mac += 1,
                        _ => c.malformed += 1,
                    }
                    self.log_refusal(now_mono, src, &e.to_string());
                }
            }
        }
    }

    /// Counts and logs an authentic message refused by the replay guard.
    pub fn replayed(&mut self, now_mono: u64, from: SocketAddr, e: &ReplayError) {
        self.rejects.replayed += 1;
        self.log_refusal(now_mono, from, &e.to_string());
    }

    /// Counts and logs an authentic message refused by policy.
    pub fn refused(&mut self, now_mono: u64, from: SocketAddr, why: &str) {
        self.rejects.refused += 1;
        self.log_refusal(now_mono, from, why);
    }

    fn log_refusal(&mut self, now: u64, from: SocketAddr, why: &str) {
        if self.last_log_ns == 0 || now.saturating_sub(self.last_log_ns) >= LOG_INTERVAL_NS {
            tracing::warn!(
                link = self.name,
                from = %from,
                refused_total = self.rejects.total(),
                not_logged = self.quiet,
                "refused a datagram: {why}"
            );
            self.last_log_ns = now;
            self.quiet = 0;
        } else {
            self.quiet += 1;
        }
    }

    /// Encodes `msg` with key `key` and sends it to `to` (best effort: a full socket buffer
    /// drops the message, logged at debug level).
    pub fn send(&self, msg: &Msg, key: usize, to: SocketAddr) {
        match wire::encode(msg, self.key(key)) {
            Ok(bytes) => {
                if let Err(e) = self.std.send_to(&bytes, to) {
                    tracing::debug!(link = self.name, to = %to, error = %e, "send failed");
                }
            }
            Err(e) => tracing::error!(link = self.name, error = %e, "cannot encode a message"),
        }
    }
}

/// Which keys authenticate a session's messages.
#[derive(Clone)]
pub struct Keys {
    /// Signs and verifies sync-link traffic (and monitor heartbeats).
    pub sync: Key,
    /// Verify control traffic (`[0]` is the session's own key); replies use the key that
    /// verified the request.
    pub control: Vec<Key>,
}

impl Keys {
    /// A shared secret from a key file: the only key accepted anywhere.
    pub fn from_secret(secret: Key) -> Keys {
        Keys {
            sync: secret.clone(),
            control: vec![secret],
        }
    }

    /// No key file: keys derived from the session id (no forgery protection), and on the
    /// control port also the key of session 0, so that `tandem status` / `request` / `sync`
    /// work without knowing the session.
    pub fn derived(session: u64) -> Keys {
        Keys {
            sync: Key::derive_from_session(session),
            control: vec![
                Key::derive_from_session(session),
                Key::derive_from_session(0),
            ],
        }
    }
}

/// Reads a key file: its bytes, without a trailing newline, at least 16 of them.
pub fn read_key_file(path: &std::path::Path) -> anyhow::Result<Key> {
    let mut bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("--key-file {}: {e}", path.display()))?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    Key::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("--key-file {}: {e}", path.display()))
}

/// The session id on the wire: XXH3-64 of the `--session-id` text, or of the live group
/// address when none is given (both servers, the monitor and clients given the same flags
/// agree). Never 0 (0 means "no session", used by clients).
pub fn wire_session(session_id: Option<&str>, live: SocketAddrV4) -> u64 {
    let text = match session_id {
        Some(s) => s.to_string(),
        None => format!("tandem:{live}"),
    };
    xxhash_rust::xxh3::xxh3_64(text.as_bytes()).max(1)
}

/// The ordered map of counters per link, for status.
pub fn rejects_json(links: &[(&str, &Rejects)]) -> serde_json::Value {
    let m: BTreeMap<&str, &Rejects> = links.iter().copied().collect();
    serde_json::json!(m)
}
