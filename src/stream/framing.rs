//! [`Framing`]: how the datagrams of a session are framed on the wire. Part of the session
//! parameters, so it belongs to the core; `net::url` parses it from a `udp://` or `rtp://`
//! destination.

/// How datagrams are framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Framing {
    /// 7 TS packets per UDP datagram, no header.
    Udp,
    /// RFC 2250 / RFC 3550: a 12-byte RTP header (payload type 33) before 7 TS packets.
    Rtp,
}

impl Framing {
    /// The URL scheme that names this framing (`udp` or `rtp`).
    pub fn scheme(self) -> &'static str {
        match self {
            Framing::Udp => "udp",
            Framing::Rtp => "rtp",
        }
    }
}
