//! Supervision hooks of the playout engine (the failover kernel's view of its reader and
//! pacer threads, claims 14-16) and real fault injection for tests (`--inject`).
//!
//! The reader thread stores the monotonic time of every loop turn in
//! [`Supervision::reader_alive`]. The sender (pacer) checks in against its own schedule
//! ([`Supervision::pacer_back_by`]): the instant it will act next, i.e. the due time of the
//! datagram it waits for (or now, when it sends), so a pacer sleeping between datagrams by
//! design is not late, and a pacer is late only when it is behind its schedule. A caught
//! panic is handed to [`Supervision::on_panic`]. Faults are armed by instant: at that
//! monotonic time the thread really hangs, panics, or its sends really fail. Without a
//! supervision object the engine does none of this (one `Option` test per datagram).

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A fault to inject, by name (`reader-hang`, `pacer-panic`, `pacer-hang`, `send-error`,
/// `heartbeat-hang`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The reader thread stops rendering (sleeps until the engine stops).
    ReaderHang,
    /// The sender (pacer) thread panics.
    PacerPanic,
    /// The sender (pacer) thread stops (sleeps until the engine stops).
    PacerHang,
    /// Every send fails with an error from then on.
    SendError,
    /// The failover driver's event loop (heartbeats, sync link) stops.
    HeartbeatHang,
}

/// `KIND@SECONDS`: a fault and when it strikes, in seconds after the process started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Injection {
    /// The fault.
    pub kind: FaultKind,
    /// Seconds after process start.
    pub at_s: f64,
}

impl FromStr for Injection {
    type Err = String;

    fn from_str(s: &str) -> Result<Injection, String> {
        let (kind, at) = s
            .split_once('@')
            .ok_or_else(|| format!("'{s}': expected KIND@SECONDS, e.g. pacer-panic@2.5"))?;
        let kind = match kind {
            "reader-hang" => FaultKind::ReaderHang,
            "pacer-panic" => FaultKind::PacerPanic,
            "pacer-hang" => FaultKind::PacerHang,
            "send-error" => FaultKind::SendError,
            "heartbeat-hang" => FaultKind::HeartbeatHang,
            _ => {
                return Err(format!(
                    "'{kind}': unknown fault (reader-hang, pacer-panic, pacer-hang, send-error, heartbeat-hang)"
                ))
            }
        };
        let at_s: f64 = at
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("'{at}': seconds must be a number >= 0"))?;
        Ok(Injection { kind, at_s })
    }
}

/// Armed faults as monotonic instants (ns); `u64::MAX` = never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// [`FaultKind::ReaderHang`].
    pub reader_hang_at: u64,
    /// [`FaultKind::PacerPanic`].
    pub pacer_panic_at: u64,
    /// [`FaultKind::PacerHang`].
    pub pacer_hang_at: u64,
    /// [`FaultKind::SendError`].
    pub send_error_at: u64,
    /// [`FaultKind::HeartbeatHang`].
    pub heartbeat_hang_at: u64,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults::none()
    }
}

impl Faults {
    /// No fault armed.
    pub const fn none() -> Faults {
        Faults {
            reader_hang_at: u64::MAX,
            pacer_panic_at: u64::MAX,
            pacer_hang_at: u64::MAX,
            send_error_at: u64::MAX,
            heartbeat_hang_at: u64::MAX,
        }
    }

    /// The faults that have struck by `now_mono_ns` are disarmed (a server that recovers
    /// from an injected fault starts its new engine without it): an injection strikes once.
    pub fn disarm_struck(&mut self, now_mono_ns: u64) {
        for slot in [
            &mut self.reader_hang_at,
            &mut self.pacer_panic_at,
            &mut self.pacer_hang_at,
            &mut self.send_error_at,
            &mut self.heartbeat_hang_at,
        ] {
            if *slot <= now_mono_ns {
                *slot = u64::MAX;
            }
        }
    }

    /// Arms `injections`, counted from the monotonic instant `start_mono_ns`.
    pub fn arm(injections: &[Injection], start_mono_ns: u64) -> Faults {
        let mut f = Faults::none();
        for i in injections {
            let at = start_mono_ns.saturating_add((i.at_s * 1e9) as u64);
            let slot = match i.kind {
                FaultKind::ReaderHang => &mut f.reader_hang_at,
                FaultKind::PacerPanic => &mut f.pacer_panic_at,
                FaultKind::PacerHang => &mut f.pacer_hang_at,
                FaultKind::SendError => &mut f.send_error_at,
                FaultKind::HeartbeatHang => &mut f.heartbeat_hang_at,
            };
            *slot = (*slot).min(at);
        }
        f
    }
}

/// Called with a component name and a panic message.
pub type PanicHook = Box<dyn Fn(&'static str, &str) + Send + Sync>;

/// What the engine shares with a supervisor.
pub struct Supervision {
    /// Monotonic ns of the reader thread's last loop turn.
    pub reader_alive: AtomicU64,
    /// Monotonic ns by which the sender (pacer) thread promised to act next (the due time
    /// of its next datagram, or the instant of its last loop turn when it was sending);
    /// only grows ([`Supervision::pacer_back_by`]).
    pub sender_alive: AtomicU64,
    /// The sender thread's kernel thread id (0 until its first check-in), so the supervisor
    /// can tell a pacer starved of CPU from a hung one ([`thread_sched`]).
    pub sender_tid: AtomicU32,
    /// Faults to inject.
    pub faults: Faults,
    /// Called from a thread that panicked, with the component (`"reader"`, `"pacer"`) and
    /// the panic message, before the thread ends.
    pub on_panic: PanicHook,
}

impl std::fmt::Debug for Supervision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervision")
            .field("reader_alive", &self.reader_alive.load(Ordering::Relaxed))
            .field("sender_alive", &self.sender_alive.load(Ordering::Relaxed))
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl Supervision {
    /// The pacer's check-in: it will act again by `mono_ns` (its next datagram's due time
    /// when it waits, now when it sends). Kept as a maximum: a promise is never withdrawn
    /// by an earlier check-in of the same turn.
    pub fn pacer_back_by(&self, mono_ns: u64) {
        if self.sender_tid.load(Ordering::Relaxed) == 0 {
            self.sender_tid
                .store(current_tid().unwrap_or(u32::MAX), Ordering::Relaxed);
        }
        self.sender_alive.fetch_max(mono_ns, Ordering::Relaxed);
    }

    /// Hooks with both threads alive at `now_mono_ns`.
    pub fn new(faults: Faults, now_mono_ns: u64, on_panic: PanicHook) -> Supervision {
        Supervision {
            reader_alive: AtomicU64::new(now_mono_ns),
            sender_alive: AtomicU64::new(now_mono_ns),
            sender_tid: AtomicU32::new(0),
            faults,
            on_panic,
        }
    }
}

/// The kernel thread id of the calling thread (from the `/proc/thread-self` link).
pub fn current_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// What the scheduler says of a thread of this process (`/proc/self/task/TID/schedstat`):
/// the CPU time it has had and the time it has spent runnable but waiting for a CPU (ns,
/// the first two fields). A sleeping thread (a hang in a wait or a sleep) adds to neither;
/// a starved one adds to the second. `None` when the thread is gone or the kernel does not
/// provide them.
pub fn thread_sched(tid: u32) -> Option<(u64, u64)> {
    let sched = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let mut f = sched.split_whitespace();
    let run_ns = f.next()?.parse().ok()?;
    let wait_ns = f.next()?.parse().ok()?;
    Some((run_ns, wait_ns))
}

/// Installs a process-wide panic hook that reports a panic of an engine thread
/// (`tandem-sender` as `"pacer"`, `tandem-reader` as `"reader"`) to `report` *before* the
/// previous hook runs: printing a backtrace can take tens of milliseconds, and the
/// supervisor must act at once.
pub fn report_panics_first(report: PanicHook) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let component = match std::thread::current().name() {
            Some("tandem-sender") => Some("pacer"),
            Some("tandem-reader") => Some("reader"),
            _ => None,
        };
        if let Some(c) = component {
            report(c, &panic_message(info.payload()));
        }
        previous(info);
    }));
}

/// The text of a caught panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_arms() {
        let i: Injection = "pacer-panic@2.5".parse().unwrap();
        assert_eq!(i.kind, FaultKind::PacerPanic);
        assert_eq!(i.at_s, 2.5);
        for bad in [
            "pacer-panic",
            "x@1",
            "reader-hang@-1",
            "send-error@nan",
            "send-error@",
        ] {
            assert!(bad.parse::<Injection>().is_err(), "{bad}");
        }
        let f = Faults::arm(
            &[
                i,
                "send-error@1".parse().unwrap(),
                "pacer-panic@1".parse().unwrap(),
            ],
            1_000,
        );
        assert_eq!(f.pacer_panic_at, 1_000_001_000);
        assert_eq!(f.send_error_at, 1_000_001_000);
        assert_eq!(f.reader_hang_at, u64::MAX);
        let mut g = f;
        g.disarm_struck(1_000_001_000);
        assert_eq!(g.pacer_panic_at, u64::MAX);
        assert_eq!(g.send_error_at, u64::MAX);
        let mut h = Faults::arm(&["pacer-hang@2".parse().unwrap()], 0);
        h.disarm_struck(1_999_999_999);
        assert_eq!(
            h.pacer_hang_at, 2_000_000_000,
            "not struck yet: still armed"
        );
    }

    #[test]
    fn scheduler_view_of_threads() {
        let tid = current_tid().expect("/proc/thread-self");
        assert!(tid > 0);
        // Spin ~30 ms: CPU time grows (accounted at scheduler ticks at worst).
        let (run0, _) = thread_sched(tid).expect("/proc schedstat");
        let t0 = std::time::Instant::now();
        while t0.elapsed() < std::time::Duration::from_millis(30) {
            std::hint::spin_loop();
        }
        let (run1, _) = thread_sched(tid).unwrap();
        assert!(run1 > run0, "{run0} -> {run1}");
        // A sleeping thread adds neither CPU time nor run-queue wait while it sleeps.
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            tx.send(current_tid().unwrap()).unwrap();
            let _ = stop_rx.recv();
        });
        let other = rx.recv().unwrap();
        // The thread may not have reached its blocking recv yet on a loaded machine: a
        // window in which nothing accrued is looked for five times.
        let quiet = (0..5).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let a = thread_sched(other).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            a == thread_sched(other).unwrap()
        });
        assert!(quiet, "asleep: nothing accrues");
        stop_tx.send(()).unwrap();
        t.join().unwrap();
        // `join` returns once the thread has finished its work; the kernel may list the task
        // a moment longer.
        let gone = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            thread_sched(other).is_none()
        });
        assert!(gone, "an ended thread is gone from /proc");
    }

    #[test]
    fn pacer_check_in_is_a_promise_that_only_grows() {
        let s = Supervision::new(Faults::none(), 10, Box::new(|_, _| {}));
        s.pacer_back_by(50);
        s.pacer_back_by(20);
        assert_eq!(s.sender_alive.load(Ordering::Relaxed), 50);
        s.pacer_back_by(60);
        assert_eq!(s.sender_alive.load(Ordering::Relaxed), 60);
    }
}
