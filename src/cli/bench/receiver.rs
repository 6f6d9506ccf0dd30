//! The benchmark's receivers: one thread per group (live, muted) reading with kernel
//! receive timestamps (`net::recv_socket`), keeping every arrival `(source, rx_ns)` and, on
//! the live group, feeding the project's analyzer (`recv::Analyzer`). In a namespace lab
//! the thread first enters the viewer's network namespace (setns(2)), so the receiver is a
//! host of its own, like a real viewer.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context};

use crate::bench::trial::Arrival;
use crate::net::recv_socket::{open_recv_socket, realtime_ns};
use crate::net::url::Dest;
use crate::recv::{Analyzer, Report};

/// What a receiver thread shares while it runs.
#[derive(Debug, Default)]
pub struct Live {
    /// Datagrams so far.
    pub datagrams: AtomicU64,
    /// Kernel receive time of the first datagram from a second source (0: none yet).
    pub second_source_rx_ns: AtomicU64,
    /// The first source.
    pub first_source: Mutex<Option<SocketAddr>>,
    /// Datagrams the socket dropped (SO_RXQ_OVFL).
    pub drops: AtomicU64,
}

/// What a receiver thread collected.
pub struct Captured {
    /// Every datagram in arrival order.
    pub arrivals: Vec<Arrival>,
    /// The analyzer's report (live group only).
    pub report: Option<Report>,
    /// Whether the kernel stamped every datagram.
    pub kernel_clock: bool,
}

/// A running receiver.
pub struct Receiver {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Captured>>,
    /// Shared progress.
    pub live: Arc<Live>,
}

/// Enters the network namespace `/run/netns/NAME` (this thread only).
pub fn enter_netns(name: &str) -> anyhow::Result<()> {
    let path = PathBuf::from("/run/netns").join(name);
    let f = std::fs::File::open(&path).with_context(|| format!("{}", path.display()))?;
    use std::os::fd::AsRawFd;
    // SAFETY: `f` is an open namespace file for the duration of the call; setns(2) only
    // changes the calling thread's network namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(anyhow!(
            "setns {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

impl Receiver {
    /// Opens `dest` on `iface` (inside `netns` when given) and starts receiving; returns
    /// once the group is joined.
    pub fn start(
        dest: Dest,
        iface: Ipv4Addr,
        netns: Option<String>,
        analyze: bool,
    ) -> anyhow::Result<Receiver> {
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Live::default());
        let (tx, rx) = mpsc::channel::<Result<(), String>>();
        let (stop2, live2) = (stop.clone(), live.clone());
        let handle = std::thread::Builder::new()
            .name(format!("bench-recv-{}", dest.addr))
            .spawn(move || {
                let opened = (|| -> anyhow::Result<_> {
                    if let Some(ns) = &netns {
                        enter_netns(ns)?;
                    }
                    Ok(open_recv_socket(&dest, iface)?)
                })();
                let sock = match opened {
                    Ok(s) => {
                        let _ = tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("{e:#}")));
                        return Captured {
                            arrivals: Vec::new(),
                            report: None,
                            kernel_clock: false,
                        };
                    }
                };
                let mut analyzer = analyze.then(|| Analyzer::new(dest.framing));
                let mut arrivals = Vec::with_capacity(4096);
                let mut buf = vec![0u8; 65536];
                let mut kernel_clock = sock.timestamps;
                let mut first: Option<SocketAddr> = None;
                while !stop2.load(Ordering::Relaxed) {
                    let r = match sock.recv(&mut buf) {
                        Ok(Some(r)) => r,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!("bench receiver {dest}: {e}");
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                    };
                    let rx_ns = r.kernel_ns.unwrap_or_else(|| {
                        kernel_clock = false;
                        realtime_ns()
                    });
                    if let Some(d) = r.drops {
                        live2.drops.store(d as u64, Ordering::Relaxed);
                    }
                    arrivals.push(Arrival { src: r.src, rx_ns });
                    if let Some(a) = analyzer.as_mut() {
                        a.push(&buf[..r.len], r.src, rx_ns);
                    }
                    match first {
                        None => {
                            first = Some(r.src);
                            if let Ok(mut f) = live2.first_source.lock() {
                                *f = Some(r.src);
                            }
                        }
                        Some(f) if f != r.src => {
                            let _ = live2.second_source_rx_ns.compare_exchange(
                                0,
                                rx_ns,
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                            );
                        }
                        _ => {}
                    }
                    live2.datagrams.fetch_add(1, Ordering::Relaxed);
                }
                Captured {
                    arrivals,
                    report: analyzer.map(|a| a.report()),
                    kernel_clock,
                }
            })
            .context("starting a receiver thread")?;
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Receiver {
                stop,
                handle: Some(handle),
                live,
            }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(anyhow!("receiver for {dest}: {e}"))
            }
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                Err(anyhow!("receiver for {dest}: not ready after 5 s"))
            }
        }
    }

    /// Stops the thread and returns what it collected.
    pub fn finish(mut self) -> Captured {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or(Captured {
                arrivals: Vec::new(),
                report: None,
                kernel_clock: false,
            })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
