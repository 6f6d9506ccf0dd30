//! Destination URLs: `udp://GROUP:PORT` (raw TS over UDP) and `rtp://GROUP:PORT`
//! (RFC 2250 MPEG-TS over RTP), the forms VLC and ffmpeg use (`udp://@GROUP:PORT` is
//! accepted too, as receivers write it).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;

pub use crate::stream::Framing;

/// A parsed `udp://` or `rtp://` address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dest {
    /// Framing of the datagrams.
    pub framing: Framing,
    /// Group (or unicast) address and port.
    pub addr: SocketAddrV4,
}

/// Why a destination URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad destination '{url}': {why} (expected udp://GROUP:PORT or rtp://GROUP:PORT, e.g. udp://239.1.1.1:5000)")]
pub struct UrlError {
    url: String,
    why: &'static str,
}

impl FromStr for Dest {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Dest, UrlError> {
        let err = |why| UrlError {
            url: url.to_string(),
            why,
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| err("no scheme"))?;
        let framing = match scheme.to_ascii_lowercase().as_str() {
            "udp" => Framing::Udp,
            "rtp" => Framing::Rtp,
            _ => return Err(err("scheme must be udp or rtp")),
        };
        let rest = rest.trim_start_matches('@');
        let rest = rest.split(['?', '/']).next().unwrap_or(rest);
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| err("no port"))?;
        let ip = Ipv4Addr::from_str(host).map_err(|_| err("address is not an IPv4 address"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| err("port is not a number 1-65535"))?;
        if port == 0 {
            return Err(err("port 0 is not allowed"));
        }
        Ok(Dest {
            framing,
            addr: SocketAddrV4::new(ip, port),
        })
    }
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.framing.scheme(), self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_schemes() {
        let d: Dest = "udp://239.1.1.1:5000".parse().unwrap();
        assert_eq!(d.framing, Framing::Udp);
        assert_eq!(d.addr, "239.1.1.1:5000".parse().unwrap());
        let d: Dest = "rtp://@239.1.1.2:5002".parse().unwrap();
        assert_eq!(d.framing, Framing::Rtp);
        assert_eq!(d.to_string(), "rtp://239.1.1.2:5002");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "239.1.1.1:5000",
            "http://1.2.3.4:5",
            "udp://239.1.1.1",
            "udp://x:5",
            "udp://1.2.3.4:0",
            "udp://1.2.3.4:70000",
        ] {
            assert!(bad.parse::<Dest>().is_err(), "{bad}");
        }
    }
}
