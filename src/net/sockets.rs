//! UDP multicast sockets (socket2): a sender that names its interface (by its bound source
//! address, or IP_MULTICAST_IF), TTL and loopback, and a receiver that binds the group with SO_REUSEADDR and joins it on
//! a named interface (IP_ADD_MEMBERSHIP, RFC 1112 §7). Every error names the address.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Why a socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// `--iface` is neither an IPv4 address nor an interface with one.
    #[error("interface '{0}' not found (give an IPv4 address of this host or an interface name such as lo)")]
    NoSuchInterface(String),
    /// The interface exists but has no IPv4 address.
    #[error("interface '{0}' has no IPv4 address")]
    NoIpv4(String),
    /// The address is not assigned to any interface of this host.
    #[error("{0} is not an address of this host's interfaces")]
    NotLocal(Ipv4Addr),
    /// Multicast on 0.0.0.0: the routing table, not the user, would pick the interface.
    #[error("multicast {0} on 0.0.0.0 leaves the interface to the routing table: name it (an address of this host, or a name such as lo)")]
    UnnamedInterface(Ipv4Addr),
    /// A destination a UDP sender cannot use (unspecified or broadcast).
    #[error("cannot send to {0}: give a multicast group or a unicast address")]
    BadDest(SocketAddrV4),
    /// A socket call failed.
    #[error("{what} {addr}: {source}")]
    Io {
        /// What was being done ("bind", "join", ...).
        what: &'static str,
        /// The address involved.
        addr: String,
        /// The OS error.
        source: io::Error,
    },
}

fn io_err(what: &'static str, addr: impl ToString) -> impl FnOnce(io::Error) -> SocketError {
    let addr = addr.to_string();
    move |source| SocketError::Io { what, addr, source }
}

/// IPv4 addresses of this host's interfaces, with interface names (getifaddrs(3)).
pub fn local_ipv4() -> io::Result<Vec<(String, Ipv4Addr)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `head` that we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a non-null node of the list returned by getifaddrs, alive until
        // freeifaddrs; `ifa_name` is a NUL-terminated string; when `ifa_addr` is non-null
        // and its family is AF_INET it points to a sockaddr_in.
        unsafe {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null() && (*ifa.ifa_addr).sa_family as i32 == libc::AF_INET {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                let name = std::ffi::CStr::from_ptr(ifa.ifa_name)
                    .to_string_lossy()
                    .into_owned();
                out.push((name, ip));
            }
            cur = ifa.ifa_next;
        }
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// Resolves `--iface`: an IPv4 address that belongs to this host, or an interface name
/// (`lo`, `eth0`) to its first IPv4 address.
pub fn resolve_iface(s: &str) -> Result<Ipv4Addr, SocketError> {
    // An address a UDP socket can bind is local: three system calls, where listing the
    // interfaces is a netlink dump of every link and address (most of a millisecond).
    if let Ok(ip) = s.parse::<Ipv4Addr>() {
        if ip.is_unspecified() || binds(ip) {
            return Ok(ip);
        }
    }
    let locals = local_ipv4().map_err(io_err("list interfaces for", s))?;
    if let Ok(ip) = s.parse::<Ipv4Addr>() {
        return if ip.is_unspecified() || locals.iter().any(|(_, a)| *a == ip) {
            Ok(ip)
        } else {
            Err(SocketError::NotLocal(ip))
        };
    }
    if let Some((_, ip)) = locals.iter().find(|(n, _)| n == s) {
        return Ok(*ip);
    }
    // An interface without IPv4 still shows up in if_nametoindex.
    let exists = std::ffi::CString::new(s)
        .ok()
        // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
        .map(|c| unsafe { libc::if_nametoindex(c.as_ptr()) } != 0)
        .unwrap_or(false);
    Err(if exists {
        SocketError::NoIpv4(s.to_string())
    } else {
        SocketError::NoSuchInterface(s.to_string())
    })
}

/// Whether a UDP socket can bind `ip:0` (the address belongs to this host).
fn binds(ip: Ipv4Addr) -> bool {
    Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .and_then(|s| s.bind(&SockAddr::from(SocketAddrV4::new(ip, 0))))
        .is_ok()
}

/// Options of a sending socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderOptions {
    /// Outgoing interface address: the bound source address, which also names the
    /// interface for multicast (see [`sender`]).
    pub iface: Ipv4Addr,
    /// Multicast TTL (and unicast TTL).
    pub ttl: u32,
    /// IP_MULTICAST_LOOP: deliver to receivers on this host too.
    pub multicast_loop: bool,
    /// Non-blocking sends.
    pub nonblocking: bool,
    /// SO_SNDBUF in bytes, if set.
    pub send_buffer: Option<usize>,
}

impl SenderOptions {
    /// Loopback-friendly defaults: given interface, TTL 1, loop on, blocking, 1 MiB buffer.
    pub fn new(iface: Ipv4Addr) -> SenderOptions {
        SenderOptions {
            iface,
            ttl: 1,
            multicast_loop: true,
            nonblocking: false,
            send_buffer: Some(1 << 20),
        }
    }
}

/// A UDP socket for sending to `dest` (multicast or unicast). It is bound to
/// `iface:0`, so a source address that is not local fails here with a clear error.
///
/// For a multicast `dest` the bound address names the outgoing interface: with no
/// IP_MULTICAST_IF index set, Linux sends a multicast datagram out of the device that
/// owns its source address (`ip_route_output_key_hash_rcu`: `__ip_dev_find(saddr)`,
/// no routing-table lookup), the way multicat binds its source. IP_MULTICAST_IF would
/// give the same device but costs a FIB lookup on every send (a connected UDP socket
/// does not cache multicast routes); one A/B of a minimal sender put it at about 4 % of the
/// CPU per datagram. An unspecified `iface` (0.0.0.0) is refused for multicast: every
/// multicast socket names its interface.
pub fn sender(dest: SocketAddrV4, opts: &SenderOptions) -> Result<UdpSocket, SocketError> {
    if dest.ip().is_unspecified() || dest.ip().is_broadcast() || dest.port() == 0 {
        return Err(SocketError::BadDest(dest));
    }
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(io_err("create a UDP socket for", dest))?;
    if dest.ip().is_multicast() {
        if opts.iface.is_unspecified() {
            return Err(SocketError::UnnamedInterface(*dest.ip()));
        }
        s.set_multicast_ttl_v4(opts.ttl)
            .map_err(io_err("set IP_MULTICAST_TTL for", dest))?;
        s.set_multicast_loop_v4(opts.multicast_loop)
            .map_err(io_err("set IP_MULTICAST_LOOP for", dest))?;
    } else {
        s.set_ttl(opts.ttl)
            .map_err(io_err("set IP_TTL for", dest))?;
    }
    if let Some(n) = opts.send_buffer {
        s.set_send_buffer_size(n)
            .map_err(io_err("set SO_SNDBUF for", dest))?;
    }
    let src = SocketAddrV4::new(opts.iface, 0);
    s.bind(&SockAddr::from(src))
        .map_err(io_err("bind the source address", src))?;
    s.set_nonblocking(opts.nonblocking)
        .map_err(io_err("set non-blocking mode for", dest))?;
    Ok(s.into())
}

/// A UDP socket receiving `group` (multicast: bound to the group address with
/// SO_REUSEADDR, joined on `iface`; unicast: bound to the address).
pub fn receiver(
    group: SocketAddrV4,
    iface: Ipv4Addr,
    recv_buffer: Option<usize>,
) -> Result<UdpSocket, SocketError> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(io_err("create a UDP socket for", group))?;
    s.set_reuse_address(true)
        .map_err(io_err("set SO_REUSEADDR for", group))?;
    if let Some(n) = recv_buffer {
        s.set_recv_buffer_size(n)
            .map_err(io_err("set SO_RCVBUF for", group))?;
    }
    s.bind(&SockAddr::from(group))
        .map_err(io_err("bind", group))?;
    if group.ip().is_multicast() {
        if iface.is_unspecified() {
            return Err(SocketError::UnnamedInterface(*group.ip()));
        }
        s.join_multicast_v4(group.ip(), &iface)
            .map_err(io_err("join", format!("{} on {iface}", group.ip())))?;
    }
    Ok(s.into())
}

/// Sends one datagram; a short send is reported as an error.
pub fn send_to(sock: &UdpSocket, buf: &[u8], dest: SocketAddrV4) -> io::Result<()> {
    let n = sock.send_to(buf, SocketAddr::V4(dest))?;
    if n != buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short send: {n} of {} bytes", buf.len()),
        ));
    }
    Ok(())
}

/// Connects a sending socket to a multicast `dest`, so that every datagram goes out with
/// `send(2)`: no address to copy in and check per call, and the IP identification comes
/// from the socket's own counter rather than the kernel's shared hash (ip_select_ident).
/// Unicast destinations are left unconnected: an ICMP port unreachable from the receiver
/// would turn later sends on a connected socket into ECONNREFUSED errors. Returns whether
/// the socket is now connected to `dest` (on failure it stays usable with [`send_to`]).
pub fn connect_multicast(sock: &UdpSocket, dest: SocketAddrV4) -> bool {
    dest.ip().is_multicast() && sock.connect(SocketAddr::V4(dest)).is_ok()
}

/// Sends one datagram on a socket connected with [`connect_multicast`]; a short send is
/// reported as an error.
pub fn send(sock: &UdpSocket, buf: &[u8]) -> io::Result<()> {
    let n = sock.send(buf)?;
    if n != buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short send: {n} of {} bytes", buf.len()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn resolves_loopback_by_name_and_address() {
        assert_eq!(resolve_iface("lo").unwrap(), Ipv4Addr::LOCALHOST);
        assert_eq!(resolve_iface("127.0.0.1").unwrap(), Ipv4Addr::LOCALHOST);
        assert!(matches!(
            resolve_iface("192.0.2.77"),
            Err(SocketError::NotLocal(_))
        ));
        let e = resolve_iface("nosuchif0").unwrap_err();
        assert!(matches!(e, SocketError::NoSuchInterface(_)));
        assert!(e.to_string().contains("nosuchif0"));
    }

    #[test]
    fn multicast_on_an_unnamed_interface_is_refused() {
        let group: SocketAddrV4 = "239.255.90.77:30999".parse().unwrap();
        let any = Ipv4Addr::UNSPECIFIED;
        let e = sender(group, &SenderOptions::new(any)).unwrap_err();
        assert!(matches!(e, SocketError::UnnamedInterface(_)), "{e}");
        assert!(e.to_string().contains("239.255.90.77"));
        let e = receiver(group, any, None).unwrap_err();
        assert!(matches!(e, SocketError::UnnamedInterface(_)), "{e}");
        // Unicast leaves the choice to the routing table, as unicast does.
        let uni = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 30_999);
        assert!(sender(uni, &SenderOptions::new(any)).is_ok());
    }

    #[test]
    fn multicast_round_trip_on_loopback() {
        let group: SocketAddrV4 = format!(
            "239.255.90.{}:{}",
            1 + std::process::id() % 200,
            30_000 + std::process::id() % 20_000
        )
        .parse()
        .unwrap();
        let rx = receiver(group, Ipv4Addr::LOCALHOST, None).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let tx = sender(group, &SenderOptions::new(Ipv4Addr::LOCALHOST)).unwrap();
        send_to(&tx, b"hello", group).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(from.ip(), std::net::IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn connected_multicast_sender_round_trip_and_unicast_stays_unconnected() {
        let group: SocketAddrV4 = format!(
            "239.255.90.{}:{}",
            1 + std::process::id() % 200,
            31_000 + std::process::id() % 20_000
        )
        .parse()
        .unwrap();
        let rx = receiver(group, Ipv4Addr::LOCALHOST, None).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let tx = sender(group, &SenderOptions::new(Ipv4Addr::LOCALHOST)).unwrap();
        assert!(connect_multicast(&tx, group));
        assert_eq!(tx.peer_addr().unwrap(), SocketAddr::V4(group));
        send(&tx, b"connected").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"connected");
        let uni = SocketAddrV4::new(Ipv4Addr::LOCALHOST, group.port());
        let tx = sender(uni, &SenderOptions::new(Ipv4Addr::LOCALHOST)).unwrap();
        assert!(!connect_multicast(&tx, uni));
        assert!(tx.peer_addr().is_err());
    }

    #[test]
    fn unusable_destinations_are_refused() {
        let opts = SenderOptions::new(Ipv4Addr::LOCALHOST);
        for d in ["0.0.0.0:5000", "255.255.255.255:5000", "239.1.1.1:0"] {
            let e = sender(d.parse().unwrap(), &opts).unwrap_err();
            assert!(matches!(e, SocketError::BadDest(_)), "{d}: {e}");
        }
    }

    #[test]
    fn foreign_source_address_is_a_named_error() {
        let e = sender(
            "239.255.90.1:5000".parse().unwrap(),
            &SenderOptions::new("192.0.2.1".parse().unwrap()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("192.0.2.1"), "{e}");
    }
}
