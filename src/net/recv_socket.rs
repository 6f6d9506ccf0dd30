//! The receive driver of `tandem recv`: one UDP socket bound to the group (with
//! SO_REUSEADDR) and joined on a named interface (IP_ADD_MEMBERSHIP), datagrams read with
//! `recvmsg(2)` together with their kernel receive time (`SO_TIMESTAMPNS`, socket(7)) and
//! the socket's drop counter (`SO_RXQ_OVFL`), fed to the sans-IO [`Analyzer`].
//!
//! If the kernel gives no timestamp the driver stamps datagrams with CLOCK_REALTIME after
//! `recvmsg` returns and records [`ClockSource::User`] (with a warning).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::mem::{size_of, MaybeUninit};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::sockets::{self, SocketError};
use super::url::Dest;
use crate::recv::{ts_payload, Analyzer, ClockSource, EndReason, Report, RunInfo};

/// Receive buffer asked for (the kernel caps it at `net.core.rmem_max`).
pub const RECV_BUFFER: usize = 8 << 20;
/// How often the loop wakes up without traffic to check the deadline and the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// Why the receiver could not be set up or failed.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// The receive socket could not be opened (bad group, port or interface).
    #[error("cannot receive {dest} on interface {iface}: {source}")]
    Open {
        /// The URL.
        dest: String,
        /// The interface address.
        iface: Ipv4Addr,
        /// What failed, naming the address.
        source: SocketError,
    },
    /// The capture file could not be created or written.
    #[error("capture file {path}: {source}")]
    Capture {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// `recvmsg` failed during the run.
    #[error("receiving {dest}: {source}")]
    Receive {
        /// The URL.
        dest: String,
        /// The OS error.
        source: io::Error,
    },
}

impl RecvError {
    /// Errors caused by the user's input (address, interface, file), i.e. exit code 2.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, RecvError::Open { .. } | RecvError::Capture { .. })
    }
}

/// A bound, joined receive socket with kernel timestamps enabled.
pub struct RecvSocket {
    sock: UdpSocket,
    /// Whether `SO_TIMESTAMPNS` was accepted.
    pub timestamps: bool,
}

/// One received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes written to the buffer.
    pub len: usize,
    /// Sender address.
    pub src: SocketAddr,
    /// Kernel receive time (unix ns, CLOCK_REALTIME), if the kernel attached one.
    pub kernel_ns: Option<u64>,
    /// Cumulative datagrams dropped by this socket (`SO_RXQ_OVFL`), if reported.
    pub drops: Option<u32>,
}

/// Opens the receiver for `dest` on `iface` with [`sockets::receiver`] (SO_REUSEADDR,
/// bind the group or unicast address, IP_ADD_MEMBERSHIP on `iface`, an 8 MiB receive
/// buffer), then enables `SO_TIMESTAMPNS` and `SO_RXQ_OVFL` and a 50 ms read timeout.
pub fn open_recv_socket(dest: &Dest, iface: Ipv4Addr) -> Result<RecvSocket, RecvError> {
    let err = |source| RecvError::Open {
        dest: dest.to_string(),
        iface,
        source,
    };
    let sock = sockets::receiver(dest.addr, iface, Some(RECV_BUFFER)).map_err(err)?;
    sock.set_read_timeout(Some(POLL)).map_err(|e| {
        err(SocketError::Io {
            what: "set SO_RCVTIMEO for",
            addr: dest.addr.to_string(),
            source: e,
        })
    })?;
    let fd = sock.as_raw_fd();
    let timestamps = set_int_option(fd, libc::SO_TIMESTAMPNS, 1).is_ok();
    let _ = set_int_option(fd, libc::SO_RXQ_OVFL, 1);
    Ok(RecvSocket { sock, timestamps })
}

fn set_int_option(fd: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `fd` is an open socket owned by the caller for the duration of the call;
    // the option value is a live c_int and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Control buffer for the cmsgs we ask for (timespec + u32), 8-byte aligned.
#[repr(C, align(8))]
struct CmsgBuf([u8; 128]);

impl RecvSocket {
    /// Receives one datagram into `buf` (use 64 KiB so nothing is truncated). `Ok(None)`
    /// when the read timed out or was interrupted by a signal.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        recv_timestamped(self.sock.as_raw_fd(), buf)
    }
}

/// Enables `SO_TIMESTAMPNS` (kernel receive times, socket(7)) on any UDP socket; returns
/// whether the kernel accepted it.
pub fn enable_timestamps(fd: std::os::fd::RawFd) -> bool {
    set_int_option(fd, libc::SO_TIMESTAMPNS, 1).is_ok()
}

/// Receives one datagram from the open UDP socket `fd` with `recvmsg(2)`, with its kernel
/// receive time when `SO_TIMESTAMPNS` is on. `Ok(None)`: nothing to read (non-blocking
/// socket), the read timed out, or a signal interrupted it.
pub fn recv_timestamped(fd: std::os::fd::RawFd, buf: &mut [u8]) -> io::Result<Option<Received>> {
    let mut addr = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut cmsg = CmsgBuf([0; 128]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is a plain C struct for which all-zero bytes are a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = addr.as_mut_ptr().cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.0.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.0.len() as _;
    // SAFETY: every pointer in `msg` refers to a live, exclusively borrowed buffer
    // (`addr`, `iov` -> `buf`, `cmsg`) whose length is given alongside it, and they all
    // outlive the call; the kernel writes at most those lengths.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => {
                Ok(None)
            }
            _ => Err(e),
        };
    }
    let (mut kernel_ns, mut drops) = (None, None);
    // SAFETY: `msg` was filled by a successful recvmsg, so msg_control/msg_controllen
    // describe the valid part of `cmsg`; CMSG_FIRSTHDR/CMSG_NXTHDR stay inside it and
    // return null at its end. The data of SCM_TIMESTAMPNS is a `timespec` and of
    // SO_RXQ_OVFL a `u32` (socket(7)); read_unaligned copes with any alignment.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let h = &*c;
            if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                kernel_ns = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            } else if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SO_RXQ_OVFL {
                drops = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>()));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    // SAFETY: recvmsg succeeded, so the kernel wrote a socket address of
    // msg_namelen bytes (zeroed storage otherwise, family AF_UNSPEC).
    let storage = unsafe { addr.assume_init() };
    let src = if storage.ss_family as libc::c_int == libc::AF_INET {
        // SAFETY: the family is AF_INET, so the storage holds a sockaddr_in, and
        // sockaddr_storage is large and aligned enough for it.
        let sin =
            unsafe { &*(&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
        SocketAddr::from((
            Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
            u16::from_be(sin.sin_port),
        ))
    } else {
        SocketAddr::from(([0, 0, 0, 0], 0))
    };
    Ok(Some(Received {
        len: n as usize,
        src,
        kernel_ns,
        drops,
    }))
}

/// CLOCK_REALTIME in unix ns (the clock `SO_TIMESTAMPNS` uses).
pub fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// What to receive and for how long.
#[derive(Debug, Clone)]
pub struct RecvConfig {
    /// Group (or unicast address) and framing.
    pub dest: Dest,
    /// Interface address to join on.
    pub iface: Ipv4Addr,
    /// Stop after this long (None: until the stop flag).
    pub duration: Option<Duration>,
    /// Stop once this many datagrams arrived.
    pub expect_datagrams: Option<u64>,
    /// Write the TS payload here.
    pub capture: Option<PathBuf>,
}

/// Opens the socket, receives until the deadline, `expect_datagrams` or `stop`, and
/// returns the analyzer's report with the `run` section filled in.
pub fn run_recv(cfg: &RecvConfig, stop: &AtomicBool) -> Result<Report, RecvError> {
    let sock = open_recv_socket(&cfg.dest, cfg.iface)?;
    run_on(sock, cfg, stop)
}

/// Like [`run_recv`] with an already opened socket (lets a caller open it first and
/// start senders knowing the receiver is joined).
pub fn run_on(sock: RecvSocket, cfg: &RecvConfig, stop: &AtomicBool) -> Result<Report, RecvError> {
    let mut capture = match &cfg.capture {
        Some(path) => Some(BufWriter::with_capacity(
            1 << 20,
            File::create(path).map_err(|source| RecvError::Capture {
                path: path.clone(),
                source,
            })?,
        )),
        None => None,
    };
    let capture_err = |source| RecvError::Capture {
        path: cfg.capture.clone().unwrap_or_default(),
        source,
    };
    let mut analyzer = Analyzer::new(cfg.dest.framing);
    let mut buf = vec![0u8; 65536];
    let mut clock = if sock.timestamps {
        ClockSource::Kernel
    } else {
        ClockSource::User
    };
    let mut warned = false;
    let mut drops: Option<u64> = None;
    let mut capture_bytes = 0u64;
    let deadline = cfg.duration.map(|d| Instant::now() + d);
    let ended_by = loop {
        if stop.load(Ordering::Relaxed) {
            break EndReason::Signal;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break EndReason::Deadline;
        }
        if cfg
            .expect_datagrams
            .is_some_and(|n| analyzer.datagrams() >= n)
        {
            break EndReason::Expected;
        }
        let Some(r) = sock.recv(&mut buf).map_err(|source| RecvError::Receive {
            dest: cfg.dest.to_string(),
            source,
        })?
        else {
            continue;
        };
        let rx_ns = match r.kernel_ns {
            Some(ns) => ns,
            None => {
                if !warned {
                    tracing::warn!(
                        "no kernel receive timestamp (SO_TIMESTAMPNS); using the user clock, gaps and jitter include this thread's scheduling"
                    );
                    warned = true;
                }
                clock = ClockSource::User;
                realtime_ns()
            }
        };
        if let Some(d) = r.drops {
            drops = Some(d as u64);
        }
        let data = &buf[..r.len];
        analyzer.push(data, r.src, rx_ns);
        if let Some(w) = capture.as_mut() {
            if let Some(ts) = ts_payload(cfg.dest.framing, data) {
                w.write_all(ts).map_err(capture_err)?;
                capture_bytes += ts.len() as u64;
            }
        }
    };
    if let Some(mut w) = capture {
        w.flush().map_err(capture_err)?;
    }
    let mut report = analyzer.report();
    if clock == ClockSource::User {
        report
            .warnings
            .push("receive times from the user clock, not the kernel: figures include the receiver's scheduling".into());
    }
    if drops.is_some_and(|d| d > 0) {
        report.warnings.push(format!(
            "the receive socket dropped {} datagrams (buffer full): the receiver, not the sender, lost them",
            drops.unwrap_or(0)
        ));
    }
    report.run = Some(RunInfo {
        url: cfg.dest.to_string(),
        iface: cfg.iface.to_string(),
        clock,
        // The counter is only attached once it is non-zero; no cmsg means no drops.
        socket_drops: Some(drops.unwrap_or(0)),
        seconds: cfg.duration.map(|d| d.as_secs_f64()),
        expect_datagrams: cfg.expect_datagrams,
        expect_met: cfg.expect_datagrams.map(|n| report.datagrams >= n),
        ended_by,
        capture: cfg.capture.as_ref().map(|p| p.display().to_string()),
        capture_bytes,
    });
    Ok(report)
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Installs SIGINT/SIGTERM handlers that set the returned flag (no SA_RESTART, so a
/// blocked `recvmsg` returns EINTR at once).
pub fn stop_on_signals() -> &'static AtomicBool {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction is zero-initialisable; the handler only stores to an atomic,
        // which is async-signal-safe; the struct lives across the call.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    &STOP
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn kernel_timestamp_and_source_on_loopback() {
        let port = 20000 + (std::process::id() % 20000) as u16;
        let dest: Dest = format!("udp://239.255.90.1:{port}").parse().unwrap();
        let sock = open_recv_socket(&dest, Ipv4Addr::LOCALHOST).unwrap();
        assert!(sock.timestamps);
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.set_multicast_loop_v4(true).unwrap();
        tx.set_multicast_ttl_v4(1).unwrap();
        let s2 = socket2::SockRef::from(&tx);
        s2.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
        let before = realtime_ns();
        tx.send_to(&[0x47; 1316], SocketAddr::V4(dest.addr))
            .unwrap();
        let mut buf = vec![0; 65536];
        let r = (0..40)
            .find_map(|_| sock.recv(&mut buf).unwrap())
            .expect("datagram");
        assert_eq!(r.len, 1316);
        assert_eq!(r.src, tx.local_addr().unwrap());
        let k = r.kernel_ns.expect("kernel timestamp");
        assert!(k >= before - 1_000_000 && k <= realtime_ns());
    }

    #[test]
    fn bad_interface_is_an_open_error_naming_it() {
        let dest: Dest = "udp://239.255.90.2:20001".parse().unwrap();
        let e = open_recv_socket(&dest, Ipv4Addr::new(192, 0, 2, 77))
            .err()
            .unwrap();
        assert!(e.is_bad_input());
        let msg = e.to_string();
        assert!(msg.contains("192.0.2.77") && msg.contains("join"), "{msg}");
        assert!(msg.contains("udp://239.255.90.2:20001"), "{msg}");
    }
}
