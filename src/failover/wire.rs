//! The wire format of the sync link and of control messages.
//!
//! Every message is one UDP datagram:
//!
//! ```text
//! offset size field
//!      0    4 magic "TNDM"
//!      4    1 version (1)
//!      5    1 kind (see Kind)
//!      6    1 sender role (0 primary, 1 secondary, 2 monitor, 3 sync component, 4 client)
//!      7    1 flags: bit 0 = the sender owns the live group (sending, or holding after a
//!             stall); other bits 0
//!      8    4 sender id
//!     12    8 boot id (sender's realtime ns at process start; replay rule)
//!     20    8 session id
//!     28    8 epoch (the highest live-group epoch the sender knows; its own when on air)
//!     36    8 sequence number (per sender and boot, strictly increasing)
//!     44    8 sender realtime ns when the message was made
//!     52    2 body length n
//!     54    n body (per kind)
//!   54+n   16 MAC: HMAC-SHA256 (RFC 2104) over bytes 0 .. 54+n, first 16 bytes
//! ```
//!
//! All integers are big-endian. Optional `u64` = 1 presence byte (0/1) + 8 bytes. Strings =
//! `u16` length + UTF-8. Addresses = 4 bytes IPv4 + 2 bytes port.
//!
//! Authentication: RFC 2104 HMAC with SHA-256, truncated to its leftmost 128 bits as RFC 2104
//! §5 allows (no fewer than half the hash output). The key is a shared secret
//! ([`Key::from_bytes`]); without a key file [`Key::derive_from_session`] derives one from the
//! session id, which is sent in the clear: that only separates sessions and catches
//! corruption, it gives **no protection against forgery**.
//!
//! [`decode`] never panics and classifies what it refuses ([`WireError`]): the driver counts
//! and logs those and never acts on them. Replays are refused by a [`ReplayGuard`].

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::failover::state::State;
use crate::index::AssetIdentity;
use crate::stream::Framing;
use crate::units::{DatagramIndex, RealNs, Ticks27M};

/// First four bytes of every message.
pub const MAGIC: [u8; 4] = *b"TNDM";
/// The version this code speaks.
pub const VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 54;
/// MAC length in bytes (HMAC-SHA256 truncated, RFC 2104 §5).
pub const MAC_LEN: usize = 16;
/// Largest body accepted or produced (the whole message fits one UDP datagram).
pub const MAX_BODY: usize = 60_000;

mod off {
    pub const VERSION: usize = 4;
    pub const KIND: usize = 5;
    pub const ROLE: usize = 6;
    pub const FLAGS: usize = 7;
    pub const SENDER: usize = 8;
    pub const BOOT: usize = 12;
    pub const SESSION: usize = 20;
    pub const EPOCH: usize = 28;
    pub const SEQ: usize = 36;
    pub const REAL: usize = 44;
    pub const BODY_LEN: usize = 52;
}

type HmacSha256 = Hmac<Sha256>;

/// The shared secret that authenticates messages.
#[derive(Clone)]
pub struct Key {
    mac: HmacSha256,
    derived: bool,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Key")
            .field("derived", &self.derived)
            .finish()
    }
}

/// Why a key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Fewer than 16 bytes (RFC 2104 §3: keys shorter than the hash output are discouraged;
    /// tandem requires at least 128 bits).
    #[error("key is {0} bytes; at least 16 are required (32 recommended)")]
    TooShort(usize),
}

impl Key {
    /// A key from a shared secret of at least 16 bytes (e.g. the contents of a key file).
    pub fn from_bytes(secret: &[u8]) -> Result<Key, KeyError> {
        if secret.len() < 16 {
            return Err(KeyError::TooShort(secret.len()));
        }
        Ok(Key {
            mac: HmacSha256::new_from_slice(secret).map_err(|_| KeyError::TooShort(0))?,
            derived: false,
        })
    }

    /// A key derived from the session id, for runs without a key file:
    /// `HMAC-SHA256("tandem session key v1", session_id as 8 bytes BE)`. The session id is
    /// public (it is in every header), so this gives **no forgery protection**; it keeps
    /// sessions apart and rejects corrupted datagrams.
    pub fn derive_from_session(session_id: u64) -> Key {
        let mut m = HmacSha256::new_from_slice(b"tandem session key v1")
            .expect("HMAC accepts keys of any length");
        m.update(&session_id.to_be_bytes());
        let secret = m.finalize().into_bytes();
        Key {
            mac: HmacSha256::new_from_slice(&secret).expect("HMAC accepts keys of any length"),
            derived: true,
        }
    }

    /// Whether this key was derived from the session id (no forgery protection).
    pub fn is_derived(&self) -> bool {
        self.derived
    }

    fn tag(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let mut m = self.mac.clone();
        m.update(data);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut m = self.mac.clone();
        m.update(data);
        // Constant-time comparison of the leftmost bytes (RFC 2104 §5 truncation).
        m.verify_truncated_left(tag).is_ok()
    }
}

/// Who sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SenderRole {
    /// A server in the primary role (by its state's role).
    Primary,
    /// A server in the secondary role.
    Secondary,
    /// A component monitor (`tandem monitor`, claim 12).
    Monitor,
    /// A synchronisation component (`tandem sync`, claim 6).
    Sync,
    /// A user or operator client (`tandem request`, `tandem status`).
    Client,
}

impl SenderRole {
    fn code(self) -> u8 {
        match self {
            SenderRole::Primary => 0,
            SenderRole::Secondary => 1,
            SenderRole::Monitor => 2,
            SenderRole::Sync => 3,
            SenderRole::Client => 4,
        }
    }
    fn from_code(c: u8) -> Option<SenderRole> {
        Some(match c {
            0 => SenderRole::Primary,
            1 => SenderRole::Secondary,
            2 => SenderRole::Monitor,
            3 => SenderRole::Sync,
            4 => SenderRole::Client,
            _ => return None,
        })
    }
}

/// Header flag bits.
pub mod flag {
    /// The sender owns the live group (it is on air, or holds its output after a stall).
    pub const OWNER: u8 = 0x01;
}

/// The fixed header of every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Who sent it.
    pub role: SenderRole,
    /// Whether the sender owns the live group ([`flag::OWNER`]); its `epoch` is then the one
    /// it claimed.
    pub owner: bool,
    /// The sender's id (unique within the installation).
    pub sender_id: u32,
    /// The sender's boot id: its realtime ns at process start. A higher boot id from the same
    /// sender resets its sequence numbers ([`ReplayGuard`]).
    pub boot_id: u64,
    /// The session the message belongs to (0 = none yet, e.g. a client's `PlayRequest`).
    pub session_id: u64,
    /// The highest live-group epoch the sender knows (its own while on air).
    pub epoch: u64,
    /// Per-sender, per-boot sequence number, strictly increasing.
    pub seq: u64,
    /// The sender's realtime clock when it made the message, ns.
    pub real_ns: u64,
}

/// How a secondary should frame and address its output, and which timeline to lock onto
/// (claim 1: "synchronizing parameters of the first and second server computers").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncParams {
    /// The asset both servers must play (size + XXH3-128).
    pub asset: AssetIdentity,
    /// A name or path hint for the asset (the secondary looks it up and checks the identity).
    pub asset_name: String,
    /// Framing of the output.
    pub framing: Framing,
    /// Passes over the asset, 0 = loop forever.
    pub loop_count: u32,
    /// Realtime instant (primary's clock) at which datagram `origin_index` departs.
    pub origin_real_ns: RealNs,
    /// The datagram index departing at `origin_real_ns`.
    pub origin_index: DatagramIndex,
    /// The muted group the secondary sends into while synchronised.
    pub muted: SocketAddrV4,
    /// The live group.
    pub live: SocketAddrV4,
}

/// A monitor's command (claim 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MonitorCmd {
    /// To a synchronised secondary: take the live group now.
    Takeover,
    /// To any server: operator stop.
    Stop,
    /// To a server: you are declared failed; stop sending.
    Fail,
}

/// The message bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Sent every heartbeat period by every server (claims 7-10).
    Heartbeat {
        /// The sender's failover state.
        state: State,
        /// Index of the last datagram the sender sent (live or muted), if any.
        last_index: Option<u64>,
        /// Sender's realtime clock when that datagram left.
        last_index_send_real_ns: RealNs,
        /// Session timeline position of `last_index`: its departure time in 27 MHz ticks
        /// since the session origin.
        position: Ticks27M,
    },
    /// A secondary (or a sync component) asks for the session parameters (claim 4).
    SyncRequest,
    /// The session parameters (claims 1, 5, 6).
    SyncParams(SyncParams),
    /// A server's state and lock (answer to parameters, sent on every change).
    Status {
        /// The sender's failover state.
        state: State,
        /// Whether its timeline is locked onto the primary's.
        locked: bool,
        /// Last datagram it sent, if any.
        last_index: Option<u64>,
    },
    /// NTP-style time request: T1 (RFC 5905 §8).
    TimeRequest {
        /// Origin timestamp, requester's realtime clock.
        t1: RealNs,
    },
    /// NTP-style time reply: T1 echoed, T2 receive, T3 transmit (RFC 5905 §8).
    TimeReply {
        /// Echoed origin timestamp.
        t1: RealNs,
        /// When the request arrived (replier's realtime clock, kernel stamp).
        t2: RealNs,
        /// When the reply left (replier's realtime clock).
        t3: RealNs,
    },
    /// The sender has failed and stopped sending on the live group (claims 14-16).
    FailedNotice {
        /// The failed component.
        component: String,
        /// Why.
        reason: String,
        /// The last datagram it sent on the live group.
        last_index: Option<u64>,
    },
    /// The sender took the live group with a new epoch.
    Takeover {
        /// The new epoch.
        epoch: u64,
        /// It sends on the live group from the first boundary after this index.
        from_index: Option<u64>,
    },
    /// "Are you on air?" from a server that wants to (re)start sending on the live group.
    OwnershipQuery {
        /// Echoed in the reply.
        nonce: u64,
    },
    /// Answer to an [`Body::OwnershipQuery`].
    OwnershipReply {
        /// The query's nonce.
        nonce: u64,
        /// The replier's state.
        state: State,
        /// Whether the replier owns the live group (sending, or holding after a stall).
        on_air: bool,
        /// The replier's epoch.
        epoch: u64,
    },
    /// A user's asset request (claim 1).
    PlayRequest {
        /// Path of the asset on the servers.
        asset_path: String,
        /// When the session starts (the requester's realtime ns): both servers start in
        /// lockstep at this instant; `None` lets the primary choose.
        start_real_ns: Option<u64>,
    },
    /// Asks a server for its status.
    StatusRequest,
    /// A server's status as JSON.
    StatusReply {
        /// JSON text.
        json: String,
    },
    /// A monitor's command (claim 12).
    MonitorCommand(MonitorCmd),
    /// The server on air offers its synchronised peer the live group from datagram
    /// `at_index` under `epoch` (a planned hand-over). The peer accepts by claiming the
    /// epoch ([`Body::Takeover`]).
    HandOver {
        /// First datagram the peer is to send on the live group.
        at_index: u64,
        /// The epoch the peer is to claim.
        epoch: u64,
    },
    /// An operator asks the server on air to hand the live group to its synchronised peer
    /// (`tandem request switchover`); answered with a [`Body::StatusReply`] saying whether
    /// it was accepted, from which datagram, or why not.
    SwitchoverRequest,
    /// An operator asks a `tandem serve` host to read its configuration file again and
    /// apply it (`tandem request reload`, as SIGHUP); answered with a [`Body::StatusReply`]
    /// listing what changed, or why nothing did. Session 0: the host answers, no channel.
    ReloadRequest,
}

/// The kind byte of each body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// [`Body::Heartbeat`]
    Heartbeat = 1,
    /// [`Body::SyncRequest`]
    SyncRequest = 2,
    /// [`Body::SyncParams`]
    SyncParams = 3,
    /// [`Body::Status`]
    Status = 4,
    /// [`Body::TimeRequest`]
    TimeRequest = 5,
    /// [`Body::TimeReply`]
    TimeReply = 6,
    /// [`Body::FailedNotice`]
    FailedNotice = 7,
    /// [`Body::Takeover`]
    Takeover = 8,
    /// [`Body::OwnershipQuery`]
    OwnershipQuery = 9,
    /// [`Body::OwnershipReply`]
    OwnershipReply = 10,
    /// [`Body::PlayRequest`]
    PlayRequest = 11,
    /// [`Body::StatusRequest`]
    StatusRequest = 12,
    /// [`Body::StatusReply`]
    StatusReply = 13,
    /// [`Body::MonitorCommand`]
    MonitorCommand = 14,
    /// [`Body::HandOver`]
    HandOver = 15,
    /// [`Body::SwitchoverRequest`]
    SwitchoverRequest = 16,
    /// [`Body::ReloadRequest`]
    ReloadRequest = 17,
}

impl Body {
    /// The kind byte.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Heartbeat { .. } => Kind::Heartbeat,
            Body::SyncRequest => Kind::SyncRequest,
            Body::SyncParams(_) => Kind::SyncParams,
            Body::Status { .. } => Kind::Status,
            Body::TimeRequest { .. } => Kind::TimeRequest,
            Body::TimeReply { .. } => Kind::TimeReply,
            Body::FailedNotice { .. } => Kind::FailedNotice,
            Body::Takeover { .. } => Kind::Takeover,
            Body::OwnershipQuery { .. } => Kind::OwnershipQuery,
            Body::OwnershipReply { .. } => Kind::OwnershipReply,
            Body::PlayRequest { .. } => Kind::PlayRequest,
            Body::StatusRequest => Kind::StatusRequest,
            Body::StatusReply { .. } => Kind::StatusReply,
            Body::MonitorCommand(_) => Kind::MonitorCommand,
            Body::HandOver { .. } => Kind::HandOver,
            Body::SwitchoverRequest => Kind::SwitchoverRequest,
            Body::ReloadRequest => Kind::ReloadRequest,
        }
    }
}

/// A whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// The header.
    pub header: Header,
    /// The body.
    pub body: Body,
}

/// Why a datagram was refused. The driver counts and logs these per peer; it never acts on a
/// refused datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Does not start with the magic: not a tandem message.
    #[error("not a tandem message (starts with {found:02x?})")]
    Garbage {
        /// The first bytes found (up to 4).
        found: Vec<u8>,
    },
    /// Shorter than its header and body length say.
    #[error("truncated: {have} bytes, {need} needed")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Longer than its header and body length say.
    #[error("{extra} trailing bytes after the MAC")]
    TrailingBytes {
        /// Bytes after the MAC.
        extra: usize,
    },
    /// A version this code does not speak.
    #[error("version {got} (this tandem speaks version {VERSION})")]
    WrongVersion {
        /// The version byte found.
        got: u8,
    },
    /// A message of another session.
    #[error("message of session {got:016x}, expected {want:016x}")]
    OtherSession {
        /// Its session id.
        got: u64,
        /// Ours.
        want: u64,
    },
    /// The MAC does not match: corrupted, forged, or another key.
    #[error("bad MAC (corrupted, forged, or another key)")]
    BadMac,
    /// Authentic, but of a kind this code does not know.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// Authentic, but a field is invalid.
    #[error("bad field '{field}' at byte {offset}")]
    BadField {
        /// The field's name.
        field: &'static str,
        /// Its byte offset in the datagram.
        offset: usize,
    },
    /// A body too large to send.
    #[error("body of {0} bytes is larger than {MAX_BODY}")]
    TooLarge(usize),
}

/// Encodes a message and appends its MAC.
pub fn encode(msg: &Msg, key: &Key) -> Result<Vec<u8>, WireError> {
    let mut body = Vec::with_capacity(64);
    put_body(&mut body, &msg.body)?;
    if body.len() > MAX_BODY {
        return Err(WireError::TooLarge(body.len()));
    }
    let h = &msg.header;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len() + MAC_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(msg.body.kind() as u8);
    out.push(h.role.code());
    out.push(if h.owner { flag::OWNER } else { 0 });
    out.extend_from_slice(&h.sender_id.to_be_bytes());
    for v in [h.boot_id, h.session_id, h.epoch, h.seq, h.real_ns] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    let tag = key.tag(&out);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Decodes and authenticates one datagram. With `session = Some(id)` a message of another
/// session is refused ([`WireError::OtherSession`]); session 0 (no session yet) is always
/// accepted, for clients' requests.
///
/// Checks in order: magic, version, length (a body over [`MAX_BODY`] is
/// [`WireError::TooLarge`]), session, MAC, kind, body; never panics.
pub fn decode(bytes: &[u8], key: &Key, session: Option<u64>) -> Result<Msg, WireError> {
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) && !bytes.is_empty() {
            return Err(WireError::Truncated {
                need: HEADER_LEN + MAC_LEN,
                have: bytes.len(),
            });
        }
        return Err(WireError::Garbage {
            found: bytes[..bytes.len().min(4)].to_vec(),
        });
    }
    if bytes.len() <= off::VERSION {
        return Err(WireError::Truncated {
            need: HEADER_LEN + MAC_LEN,
            have: bytes.len(),
        });
    }
    if bytes[off::VERSION] != VERSION {
        return Err(WireError::WrongVersion {
            got: bytes[off::VERSION],
        });
    }
    if bytes.len() < HEADER_LEN + MAC_LEN {
        return Err(WireError::Truncated {
            need: HEADER_LEN + MAC_LEN,
            have: bytes.len(),
        });
    }
    let body_len = u16::from_be_bytes([bytes[off::BODY_LEN], bytes[off::BODY_LEN + 1]]) as usize;
    // What `encode` refuses to produce is refused here too, so an accepted message always
    // re-encodes (found writing the round-trip check of the `wire_message_mac` fuzz target).
    if body_len > MAX_BODY {
        return Err(WireError::TooLarge(body_len));
    }
    let total = HEADER_LEN + body_len + MAC_LEN;
    if bytes.len() < total {
        return Err(WireError::Truncated {
            need: total,
            have: bytes.len(),
        });
    }
    if bytes.len() > total {
        return Err(WireError::TrailingBytes {
            extra: bytes.len() - total,
        });
    }
    let r = Reader { b: bytes };
    let session_id = r.u64_at(off::SESSION);
    if let Some(want) = session {
        if session_id != want && session_id != 0 {
            return Err(WireError::OtherSession {
                got: session_id,
                want,
            });
        }
    }
    let signed = HEADER_LEN + body_len;
    if !key.verify(&bytes[..signed], &bytes[signed..]) {
        return Err(WireError::BadMac);
    }
    // Authentic from here on.
    let role = SenderRole::from_code(bytes[off::ROLE]).ok_or(WireError::BadField {
        field: "sender role",
        offset: off::ROLE,
    })?;
    if bytes[off::FLAGS] & !flag::OWNER != 0 {
        return Err(WireError::BadField {
            field: "flags",
            offset: off::FLAGS,
        });
    }
    let header = Header {
        role,
        owner: bytes[off::FLAGS] & flag::OWNER != 0,
        sender_id: u32::from_be_bytes([
            bytes[off::SENDER],
            bytes[off::SENDER + 1],
            bytes[off::SENDER + 2],
            bytes[off::SENDER + 3],
        ]),
        boot_id: r.u64_at(off::BOOT),
        session_id,
        epoch: r.u64_at(off::EPOCH),
        seq: r.u64_at(off::SEQ),
        real_ns: r.u64_at(off::REAL),
    };
    let mut cur = Cursor {
        b: &bytes[..signed],
        pos: HEADER_LEN,
    };
    let body = get_body(bytes[off::KIND], &mut cur)?;
    if cur.pos != signed {
        return Err(WireError::BadField {
            field: "body length",
            offset: off::BODY_LEN,
        });
    }
    Ok(Msg { header, body })
}

struct Reader<'a> {
    b: &'a [u8],
}

impl Reader<'_> {
    /// Only called with offsets inside the checked header.
    fn u64_at(&self, at: usize) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.b[at..at + 8]);
        u64::from_be_bytes(a)
    }
}

/// A bounds-checked reader over the signed part of a datagram.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&[u8], WireError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        match end {
            Some(end) => {
                let s = &self.b[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(WireError::BadField {
                field,
                offset: self.pos,
            }),
        }
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, field)?[0])
    }
    fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        let s = self.take(2, field)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        let s = self.take(4, field)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        let s = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }
    fn u128(&mut self, field: &'static str) -> Result<u128, WireError> {
        let s = self.take(16, field)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(s);
        Ok(u128::from_be_bytes(a))
    }
    fn bool(&mut self, field: &'static str) -> Result<bool, WireError> {
        let at = self.pos;
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::BadField { field, offset: at }),
        }
    }
    fn opt_u64(&mut self, field: &'static str) -> Result<Option<u64>, WireError> {
        let present = self.bool(field)?;
        let v = self.u64(field)?;
        Ok(present.then_some(v))
    }
    fn state(&mut self, field: &'static str) -> Result<State, WireError> {
        let at = self.pos;
        State::from_code(self.u8(field)?).ok_or(WireError::BadField { field, offset: at })
    }
    fn string(&mut self, field: &'static str) -> Result<String, WireError> {
        let at = self.pos;
        let n = self.u16(field)? as usize;
        let s = self.take(n, field)?;
        String::from_utf8(s.to_vec()).map_err(|_| WireError::BadField { field, offset: at })
    }
    fn addr(&mut self, field: &'static str) -> Result<SocketAddrV4, WireError> {
        let s = self.take(6, field)?;
        Ok(SocketAddrV4::new(
            Ipv4Addr::new(s[0], s[1], s[2], s[3]),
            u16::from_be_bytes([s[4], s[5]]),
        ))
    }
}

fn put_opt(out: &mut Vec<u8>, v: Option<u64>) {
    out.push(v.is_some() as u8);
    out.extend_from_slice(&v.unwrap_or(0).to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), WireError> {
    if s.len() > MAX_BODY {
        return Err(WireError::TooLarge(s.len()));
    }
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_addr(out: &mut Vec<u8>, a: SocketAddrV4) {
    out.extend_from_slice(&a.ip().octets());
    out.extend_from_slice(&a.port().to_be_bytes());
}

fn put_body(out: &mut Vec<u8>, body: &Body) -> Result<(), WireError> {
    match body {
        Body::Heartbeat {
            state,
            last_index,
            last_index_send_real_ns,
            position,
        } => {
            out.push(state.code());
            put_opt(out, *last_index);
            out.extend_from_slice(&last_index_send_real_ns.0.to_be_bytes());
            out.extend_from_slice(&position.0.to_be_bytes());
        }
        Body::SyncRequest | Body::StatusRequest => {}
        Body::SyncParams(p) => {
            out.extend_from_slice(&p.asset.size.to_be_bytes());
            out.extend_from_slice(&p.asset.hash.to_be_bytes());
            out.push(match p.framing {
                Framing::Udp => 0,
                Framing::Rtp => 1,
            });
            out.extend_from_slice(&p.loop_count.to_be_bytes());
            out.extend_from_slice(&p.origin_real_ns.0.to_be_bytes());
            out.extend_from_slice(&p.origin_index.0.to_be_bytes());
            put_addr(out, p.muted);
            put_addr(out, p.live);
            put_str(out, &p.asset_name)?;
        }
        Body::Status {
            state,
            locked,
            last_index,
        } => {
            out.push(state.code());
            out.push(*locked as u8);
            put_opt(out, *last_index);
        }
        Body::TimeRequest { t1 } => out.extend_from_slice(&t1.0.to_be_bytes()),
        Body::TimeReply { t1, t2, t3 } => {
            for v in [t1, t2, t3] {
                out.extend_from_slice(&v.0.to_be_bytes());
            }
        }
        Body::FailedNotice {
            component,
            reason,
            last_index,
        } => {
            put_opt(out, *last_index);
            put_str(out, component)?;
            put_str(out, reason)?;
        }
        Body::Takeover { epoch, from_index } => {
            out.extend_from_slice(&epoch.to_be_bytes());
            put_opt(out, *from_index);
        }
        Body::HandOver { at_index, epoch } => {
            out.extend_from_slice(&at_index.to_be_bytes());
            out.extend_from_slice(&epoch.to_be_bytes());
        }
        Body::SwitchoverRequest | Body::ReloadRequest => {}
        Body::OwnershipQuery { nonce } => out.extend_from_slice(&nonce.to_be_bytes()),
        Body::OwnershipReply {
            nonce,
            state,
            on_air,
            epoch,
        } => {
            out.extend_from_slice(&nonce.to_be_bytes());
            out.push(state.code());
            out.push(*on_air as u8);
            out.extend_from_slice(&epoch.to_be_bytes());
        }
        Body::PlayRequest {
            asset_path,
            start_real_ns,
        } => {
            put_opt(out, *start_real_ns);
            put_str(out, asset_path)?;
        }
        Body::StatusReply { json } => put_str(out, json)?,
        Body::MonitorCommand(c) => out.push(match c {
            MonitorCmd::Takeover => 0,
            MonitorCmd::Stop => 1,
            MonitorCmd::Fail => 2,
        }),
    }
    Ok(())
}

fn get_body(kind: u8, c: &mut Cursor<'_>) -> Result<Body, WireError> {
    Ok(match kind {
        1 => Body::Heartbeat {
            state: c.state("heartbeat state")?,
            last_index: c.opt_u64("heartbeat last_index")?,
            last_index_send_real_ns: RealNs(c.u64("heartbeat send time")?),
            position: Ticks27M(c.u64("heartbeat position")?),
        },
        2 => Body::SyncRequest,
        3 => {
            let size = c.u64("asset size")?;
            let hash = c.u128("asset hash")?;
            let at = c.pos;
            let framing = match c.u8("framing")? {
                0 => Framing::Udp,
                1 => Framing::Rtp,
                _ => {
                    return Err(WireError::BadField {
                        field: "framing",
                        offset: at,
                    })
                }
            };
            Body::SyncParams(SyncParams {
                asset: AssetIdentity { size, hash },
                framing,
                loop_count: c.u32("loop count")?,
                origin_real_ns: RealNs(c.u64("origin time")?),
                origin_index: DatagramIndex(c.u64("origin index")?),
                muted: c.addr("muted group")?,
                live: c.addr("live group")?,
                asset_name: c.string("asset name")?,
            })
        }
        4 => Body::Status {
            state: c.state("status state")?,
            locked: c.bool("status locked")?,
            last_index: c.opt_u64("status last_index")?,
        },
        5 => Body::TimeRequest {
            t1: RealNs(c.u64("t1")?),
        },
        6 => Body::TimeReply {
            t1: RealNs(c.u64("t1")?),
            t2: RealNs(c.u64("t2")?),
            t3: RealNs(c.u64("t3")?),
        },
        7 => Body::FailedNotice {
            last_index: c.opt_u64("failed last_index")?,
            component: c.string("failed component")?,
            reason: c.string("failed reason")?,
        },
        8 => Body::Takeover {
            epoch: c.u64("takeover epoch")?,
            from_index: c.opt_u64("takeover from_index")?,
        },
        9 => Body::OwnershipQuery {
            nonce: c.u64("nonce")?,
        },
        15 => Body::HandOver {
            at_index: c.u64("hand-over index")?,
            epoch: c.u64("hand-over epoch")?,
        },
        16 => Body::SwitchoverRequest,
        17 => Body::ReloadRequest,
        10 => Body::OwnershipReply {
            nonce: c.u64("nonce")?,
            state: c.state("reply state")?,
            on_air: c.bool("reply on_air")?,
            epoch: c.u64("reply epoch")?,
        },
        11 => Body::PlayRequest {
            start_real_ns: c.opt_u64("start time")?,
            asset_path: c.string("asset path")?,
        },
        12 => Body::StatusRequest,
        13 => Body::StatusReply {
            json: c.string("status json")?,
        },
        14 => {
            let at = c.pos;
            Body::MonitorCommand(match c.u8("monitor command")? {
                0 => MonitorCmd::Takeover,
                1 => MonitorCmd::Stop,
                2 => MonitorCmd::Fail,
                _ => {
                    return Err(WireError::BadField {
                        field: "monitor command",
                        offset: at,
                    })
                }
            })
        }
        k => return Err(WireError::UnknownKind(k)),
    })
}

/// Makes headers for one sender: fixed identity, strictly increasing sequence numbers.
#[derive(Debug, Clone)]
pub struct Stamper {
    role: SenderRole,
    sender_id: u32,
    boot_id: u64,
    session_id: u64,
    next_seq: u64,
}

impl Stamper {
    /// A stamper for a sender that booted at realtime `boot_id` ns.
    pub fn new(role: SenderRole, sender_id: u32, boot_id: u64, session_id: u64) -> Stamper {
        Stamper {
            role,
            sender_id,
            boot_id,
            session_id,
            next_seq: 1,
        }
    }

    /// Changes the role written in later headers (after a role swap).
    pub fn set_role(&mut self, role: SenderRole) {
        self.role = role;
    }

    /// Changes the session written in later headers.
    pub fn set_session(&mut self, session_id: u64) {
        self.session_id = session_id;
    }

    /// The next header: the epoch the sender knows (or claimed, with `owner`), its realtime.
    pub fn header(&mut self, epoch: u64, owner: bool, real_ns: u64) -> Header {
        let seq = self.next_seq;
        self.next_seq += 1;
        Header {
            role: self.role,
            owner,
            sender_id: self.sender_id,
            boot_id: self.boot_id,
            session_id: self.session_id,
            epoch,
            seq,
            real_ns,
        }
    }
}

/// Why the replay guard refused an (authentic) message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Sequence number not above the last one accepted from that sender and boot.
    #[error("replay from sender {sender}: seq {seq} <= last {last}")]
    Replayed {
        /// Sender id.
        sender: u32,
        /// The refused sequence number.
        seq: u64,
        /// The last accepted one.
        last: u64,
    },
    /// A boot id older than the sender's current one.
    #[error("sender {sender}: old boot {boot} (current {current})")]
    OldBoot {
        /// Sender id.
        sender: u32,
        /// The refused boot id.
        boot: u64,
        /// The current boot id.
        current: u64,
    },
}

/// Refuses replayed messages: per sender id, the sequence numbers of one boot must increase
/// strictly; a sender that restarted (a *higher* boot id) starts a new sequence. Check only
/// messages whose MAC was verified ([`decode`] does), so forged headers cannot move it.
#[derive(Debug, Clone, Default)]
pub struct ReplayGuard {
    peers: BTreeMap<u32, (u64, u64)>,
}

impl ReplayGuard {
    /// An empty guard.
    pub fn new() -> ReplayGuard {
        ReplayGuard::default()
    }

    /// Accepts (and records) or refuses a header.
    pub fn check(&mut self, h: &Header) -> Result<(), ReplayError> {
        match self.peers.get_mut(&h.sender_id) {
            None => {
                self.peers.insert(h.sender_id, (h.boot_id, h.seq));
                Ok(())
            }
            Some((boot, last)) => {
                if h.boot_id > *boot {
                    *boot = h.boot_id;
                    *last = h.seq;
                    Ok(())
                } else if h.boot_id < *boot {
                    Err(ReplayError::OldBoot {
                        sender: h.sender_id,
                        boot: h.boot_id,
                        current: *boot,
                    })
                } else if h.seq > *last {
                    *last = h.seq;
                    Ok(())
                } else {
                    Err(ReplayError::Replayed {
                        sender: h.sender_id,
                        seq: h.seq,
                        last: *last,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
