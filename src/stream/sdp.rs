//! Session description for an RTP MPEG-TS output (RFC 4566 SDP, RFC 3551 §6 `MP2T/90000`
//! payload type 33, RFC 2250). VLC and ffplay open the file directly
//! (`vlc session.sdp`, `ffplay -protocol_whitelist file,udp,rtp session.sdp`).

use std::fmt::Write;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::rtp::PAYLOAD_TYPE_MP2T;

/// What the SDP describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpSession<'a> {
    /// Session name (`s=`), e.g. the asset's file name.
    pub name: &'a str,
    /// Session id and version of the `o=` line (RFC 4566 §5.2: "a numeric string").
    pub session_id: u64,
    /// Address of the sender's interface (`o=` unicast address).
    pub origin_addr: Ipv4Addr,
    /// Destination group (or unicast address) and port.
    pub dest: SocketAddrV4,
    /// Multicast TTL (RFC 4566 §5.7: mandatory `/ttl` suffix for IPv4 multicast).
    pub ttl: u32,
}

/// Renders the SDP text (CRLF line ends, RFC 4566 §5).
///
/// ```
/// use tandem::stream::sdp::{render, SdpSession};
/// let s = render(&SdpSession { name: "demo", session_id: 7,
///     origin_addr: "127.0.0.1".parse().unwrap(),
///     dest: "239.1.1.1:5000".parse().unwrap(), ttl: 1 });
/// assert!(s.contains("c=IN IP4 239.1.1.1/1\r\n"));
/// assert!(s.contains("m=video 5000 RTP/AVP 33\r\na=rtpmap:33 MP2T/90000\r\n"));
/// ```
pub fn render(s: &SdpSession<'_>) -> String {
    let mut out = String::new();
    let name: String = s
        .name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let name = if name.trim().is_empty() {
        "tandem".to_string()
    } else {
        name
    };
    let conn = if s.dest.ip().is_multicast() {
        format!("{}/{}", s.dest.ip(), s.ttl)
    } else {
        s.dest.ip().to_string()
    };
    // RFC 4566 §5: v, o, s, c, t, m in this order; a= after the m= it qualifies.
    let _ = write!(
        out,
        "v=0\r\n\
         o=- {id} {id} IN IP4 {origin}\r\n\
         s={name}\r\n\
         c=IN IP4 {conn}\r\n\
         t=0 0\r\n\
         a=tool:tandem\r\n\
         a=recvonly\r\n\
         m=video {port} RTP/AVP {pt}\r\n\
         a=rtpmap:{pt} MP2T/90000\r\n",
        id = s.session_id,
        origin = s.origin_addr,
        port = s.dest.port(),
        pt = PAYLOAD_TYPE_MP2T,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_text() {
        let s = render(&SdpSession {
            name: "news\nfeed",
            session_id: 42,
            origin_addr: Ipv4Addr::LOCALHOST,
            dest: "239.1.2.3:6000".parse().unwrap(),
            ttl: 4,
        });
        assert_eq!(
            s,
            "v=0\r\no=- 42 42 IN IP4 127.0.0.1\r\ns=news feed\r\nc=IN IP4 239.1.2.3/4\r\n\
             t=0 0\r\na=tool:tandem\r\na=recvonly\r\nm=video 6000 RTP/AVP 33\r\n\
             a=rtpmap:33 MP2T/90000\r\n"
        );
    }

    #[test]
    fn unicast_has_no_ttl() {
        let s = render(&SdpSession {
            name: "",
            session_id: 1,
            origin_addr: Ipv4Addr::LOCALHOST,
            dest: "127.0.0.1:6000".parse().unwrap(),
            ttl: 4,
        });
        assert!(s.contains("c=IN IP4 127.0.0.1\r\n"));
        assert!(s.contains("s=tandem\r\n"));
    }
}
