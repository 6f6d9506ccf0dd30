//! One UDP socket shared by every channel of a host (`tandem serve`): the host's sync link
//! (one per host pair, whatever the number of channels) and its control port.
//!
//! A thread reads the socket with the kernel's receive timestamps (`SO_TIMESTAMPNS`) and
//! hands each datagram to the channel it belongs to, by the session id in the clear part of
//! the message header (`crate::failover::wire`, bytes 20-27), over a Unix datagram socket
//! pair per channel. The channel's [`Link`](super::link::Link) reads its end of the pair as
//! it would read a socket of its own, with the same kernel timestamp and sender address, and
//! authenticates the message itself: this thread routes, it never trusts. What it sends, a
//! channel sends from the shared socket directly, so the peer sees one address per host.
//!
//! Datagrams of session 0 (clients that name no channel, e.g. `tandem status HOST:PORT`)
//! go to the host's own handler, if it has one ([`HostSocket::bind`]); datagrams of a
//! session no channel holds, too short to carry a header or arriving while a channel's pair
//! is full are counted ([`HostSocket::unrouted`]) and dropped.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::net::recv_socket::{enable_timestamps, recv_timestamped};

/// Where the session id sits in a message header (`crate::failover::wire`).
const SESSION_AT: std::ops::Range<usize> = 20..28;
/// Envelope in front of a routed datagram: kernel ns (u64, `u64::MAX` = none), IPv4, port.
pub const ENVELOPE_LEN: usize = 14;

/// What the host does with a datagram of session 0: (bytes, sender, the shared socket).
pub type HostHandler = Box<dyn FnMut(&[u8], SocketAddr, &UdpSocket) + Send>;

type Routes = Arc<Mutex<HashMap<u64, UnixDatagram>>>;

/// The shared socket and its routing thread.
pub struct HostSocket {
    name: &'static str,
    std: UdpSocket,
    local: SocketAddr,
    routes: Routes,
    unrouted: Arc<AtomicU64>,
    timestamps: bool,
    stop: Arc<AtomicBool>,
    waker: Arc<mio::Waker>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for HostSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSocket")
            .field("name", &self.name)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// A channel's end: what [`Link::routed`](super::link::Link::routed) is built from. The
/// route is removed when it is dropped.
pub struct Route {
    /// Datagrams of this channel's session, each behind an [`ENVELOPE_LEN`] envelope.
    pub rx: mio::net::UnixDatagram,
    /// The shared socket (non-blocking), for sends.
    pub tx: UdpSocket,
    /// The shared socket's address.
    pub local: SocketAddr,
    /// Whether the kernel gives receive timestamps on the shared socket.
    pub timestamps: bool,
    session: u64,
    routes: Routes,
}

impl Drop for Route {
    fn drop(&mut self) {
        if let Ok(mut r) = self.routes.lock() {
            r.remove(&self.session);
        }
    }
}

impl HostSocket {
    /// Binds `addr` and starts the routing thread (`tandem-NAME-route`). `host`: what to do
    /// with session-0 datagrams (`None`: count them as unrouted).
    pub fn bind(
        name: &'static str,
        addr: SocketAddrV4,
        host: Option<HostHandler>,
    ) -> io::Result<HostSocket> {
        let s = UdpSocket::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("{name}: cannot bind {addr}: {e}")))?;
        let timestamps = enable_timestamps(s.as_raw_fd());
        s.set_nonblocking(true)?;
        let local = s.local_addr()?;
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(1))?);
        let mut rx = mio::net::UdpSocket::from_std(s.try_clone()?);
        poll.registry()
            .register(&mut rx, mio::Token(0), mio::Interest::READABLE)?;
        let routes: Routes = Arc::default();
        let unrouted = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (routes, unrouted, stop, reply) = (
                routes.clone(),
                unrouted.clone(),
                stop.clone(),
                s.try_clone()?,
            );
            std::thread::Builder::new()
                .name(format!("tandem-{name}-route"))
                .spawn(move || route_loop(poll, rx, reply, routes, unrouted, stop, host))?
        };
        Ok(HostSocket {
            name,
            std: s,
            local,
            routes,
            unrouted,
            timestamps,
            stop,
            waker,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Datagrams dropped: unknown session, too short, or the channel's pair full.
    pub fn unrouted(&self) -> u64 {
        self.unrouted.load(Ordering::Relaxed)
    }

    /// A route for `session` (a channel's wire session; not 0). Refused when another
    /// channel holds the session.
    pub fn attach(&self, session: u64) -> io::Result<Route> {
        let (theirs, ours) = UnixDatagram::pair()?;
        theirs.set_nonblocking(true)?;
        ours.set_nonblocking(true)?;
        {
            let mut r = self
                .routes
                .lock()
                .map_err(|_| io::Error::other("routes poisoned"))?;
            if session == 0 || r.contains_key(&session) {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "{}: session {session:016x} is already routed on {}",
                        self.name, self.local
                    ),
                ));
            }
            r.insert(session, theirs);
        }
        Ok(Route {
            rx: mio::net::UnixDatagram::from_std(ours),
            tx: self.std.try_clone()?,
            local: self.local,
            timestamps: self.timestamps,
            session,
            routes: self.routes.clone(),
        })
    }
}

impl Drop for HostSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The session id of a message, read without authenticating it.
pub fn session_of(bytes: &[u8]) -> Option<u64> {
    let b = bytes.get(SESSION_AT)?;
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

/// Writes the envelope of a routed datagram into `out[..ENVELOPE_LEN]`.
pub fn put_envelope(out: &mut [u8], kernel_ns: Option<u64>, from: SocketAddrV4) {
    out[..8].copy_from_slice(&kernel_ns.unwrap_or(u64::MAX).to_be_bytes());
    out[8..12].copy_from_slice(&from.ip().octets());
    out[12..14].copy_from_slice(&from.port().to_be_bytes());
}

/// Reads an envelope: (kernel ns, sender); `None` when `bytes` is shorter than one.
pub fn take_envelope(bytes: &[u8]) -> Option<(Option<u64>, SocketAddr)> {
    let e = bytes.get(..ENVELOPE_LEN)?;
    let ns = u64::from_be_bytes(e[..8].try_into().ok()?);
    let ip = Ipv4Addr::new(e[8], e[9], e[10], e[11]);
    let port = u16::from_be_bytes([e[12], e[13]]);
    Some((
        (ns != u64::MAX).then_some(ns),
        SocketAddr::V4(SocketAddrV4::new(ip, port)),
    ))
}

fn route_loop(
    mut poll: mio::Poll,
    rx: mio::net::UdpSocket,
    reply: UdpSocket,
    routes: Routes,
    unrouted: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    mut host: Option<HostHandler>,
) {
    let mut events = mio::Events::with_capacity(8);
    let mut buf = vec![0u8; ENVELOPE_LEN + 65_536];
    while !stop.load(Ordering::Acquire) {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::error!(error = %e, "host socket: waiting for datagrams");
                return;
            }
            continue;
        }
        loop {
            let r = match recv_timestamped(rx.as_raw_fd(), &mut buf[ENVELOPE_LEN..]) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "host socket: receive");
                    break;
                }
            };
            let len = r.len.min(buf.len() - ENVELOPE_LEN);
            let SocketAddr::V4(from) = r.src else {
                unrouted.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let Some(session) = session_of(&buf[ENVELOPE_LEN..ENVELOPE_LEN + len]) else {
                unrouted.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if session == 0 {
                match host.as_mut() {
                    Some(h) => h(&buf[ENVELOPE_LEN..ENVELOPE_LEN + len], r.src, &reply),
                    None => {
                        unrouted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                continue;
            }
            put_envelope(&mut buf, r.kernel_ns, from);
            let sent = routes
                .lock()
                .ok()
                .and_then(|m| m.get(&session).map(|s| s.send(&buf[..ENVELOPE_LEN + len])));
            if !matches!(sent, Some(Ok(_))) {
                unrouted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip() {
        let mut b = [0u8; ENVELOPE_LEN];
        let from: SocketAddrV4 = "10.1.2.3:7401".parse().unwrap();
        put_envelope(&mut b, Some(123_456_789), from);
        assert_eq!(take_envelope(&b), Some((Some(123_456_789), from.into())));
        put_envelope(&mut b, None, from);
        assert_eq!(take_envelope(&b), Some((None, from.into())));
        assert_eq!(take_envelope(&b[..13]), None);
    }

    #[test]
    fn session_is_read_from_the_header() {
        let mut m = vec![0u8; 40];
        m[20..28].copy_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(session_of(&m), Some(0x0102_0304_0506_0708));
        assert_eq!(session_of(&m[..27]), None);
    }

    /// Datagrams reach the route of their session with the sender's address, others are
    /// counted; a dropped route stops receiving.
    #[test]
    fn routes_by_session() {
        let host = HostSocket::bind("test", "127.0.0.1:0".parse().unwrap(), None).unwrap();
        let SocketAddr::V4(to) = host.local_addr() else {
            panic!()
        };
        let a = host.attach(7).unwrap();
        let b = host.attach(9).unwrap();
        assert!(host.attach(7).is_err(), "a session is routed once");
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let msg = |s: u64| {
            let mut m = vec![0xAAu8; 60];
            m[20..28].copy_from_slice(&s.to_be_bytes());
            m
        };
        for s in [9u64, 7, 5, 0] {
            client.send_to(&msg(s), to).unwrap();
        }
        client.send_to(&[1, 2, 3], to).unwrap();
        let recv = |r: &Route| {
            let mut buf = [0u8; 200];
            for _ in 0..200 {
                match r.rx.recv(&mut buf) {
                    Ok(n) => return Some(buf[..n].to_vec()),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
            None
        };
        let got_a = recv(&a).expect("session 7 routed");
        let (_, from) = take_envelope(&got_a).unwrap();
        assert_eq!(from, client.local_addr().unwrap());
        assert_eq!(session_of(&got_a[ENVELOPE_LEN..]), Some(7));
        assert_eq!(got_a.len(), ENVELOPE_LEN + 60);
        let got_b = recv(&b).expect("session 9 routed");
        assert_eq!(session_of(&got_b[ENVELOPE_LEN..]), Some(9));
        for _ in 0..200 {
            if host.unrouted() >= 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(
            host.unrouted(),
            3,
            "session 5, session 0 (no handler), too short"
        );
        drop(a);
        client.send_to(&msg(7), to).unwrap();
        for _ in 0..200 {
            if host.unrouted() >= 4 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(host.unrouted(), 4, "a dropped route receives nothing");
    }
}
