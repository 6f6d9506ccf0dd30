//! The kernel of claims 14-16 at run time: a supervisor thread that runs the sans-IO
//! [`Kernel`]. The critical components of a server register with it and check in by
//! deadlines: the engine's `reader` and `pacer` threads (through
//! [`Supervision`](crate::net::faults::Supervision)), and the event loop's `heartbeat` and
//! `sync` duties (through [`LoopAlive`]). A component that misses its deadline (a hang) or
//! panics (caught by the engine and reported here) fails the server.
//!
//! The pacer checks in against its own schedule: it publishes the instant it will act next
//! (the due time of the datagram it waits for, or now while it sends), and it is late when
//! `now > that instant + its tolerance`. A pacer sleeping between datagrams by design is
//! therefore never late, and a hiccup of the machine while it had nothing to send costs
//! nothing. The other components check in with the time of their last loop turn.
//!
//! A pacer that is late because the machine does not give it a CPU is not hung: when it is
//! late by half its tolerance the supervisor notes the thread's CPU time and run-queue wait,
//! and at the deadline it asks the scheduler again ([`thread_sched`]). A thread that spent at
//! least half of the time since waiting in a run queue (and had less than half on a CPU) is
//! starved, not hung: its window is extended, for at most [`STARVED_MAX_NS`] past its due
//! send. A hung pacer (blocked or sleeping: it adds to neither figure) and one spinning on
//! the CPU are failed as before. (Sampling a thread's state instead misjudged a hang that
//! sleeps in short naps: caught awake, it looked runnable.)
//!
//! Deadlines are tight only while failing helps: while the server is on air with a
//! synchronised secondary standing by ([`LoopAlive::standby`]), a component late by its
//! deadline fails the server at once and the secondary takes over inside a frame. Otherwise
//! (no standby, or this server is the standby) they are relaxed to [`RELAXED`]: a component
//! starved by a stall of the machine is not a reason to take the only output off air, or
//! to disable the standby. A panic fails the server at once in every case.
//!
//! The supervisor does not rely on the event loop to act, since the loop may be the
//! component that hung: on a `Failed` verdict it fences the engine's live output first
//! (nothing more goes on air), then sends a `FailedNotice` to the peer and the monitors at
//! once (with its own sender identity: server id | [`KERNEL_ID_BIT`], so its sequence
//! numbers do not collide with the loop's), and only then tells the loop, which moves the
//! state machine to `Failed`.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::failover::kernel::{Kernel, Verdict, Why};
use crate::failover::wire::{self, Body, Key, Msg, SenderRole, Stamper};
use crate::net::clock::{mono_ns, real_ns};
use crate::net::engine::EngineControl;
use crate::net::faults::{thread_sched, PanicHook, Supervision};

/// A pacer starved of CPU is excused at most this long past its due send.
pub const STARVED_MAX_NS: u64 = 60_000_000;

/// How long a fence waits for a live send already past the sender's fence check.
pub const FENCE_SETTLE: Duration = Duration::from_millis(1);

/// The sender-id bit of messages sent by the supervisor itself.
pub const KERNEL_ID_BIT: u32 = 0x8000_0000;

/// The relaxed deadlines (no standby; components are then non-critical, a miss only
/// degrades): 0.5 s for the pacer, 2 s for the reader, 1 s for the loop.
pub const RELAXED: Deadlines = Deadlines {
    pacer_ns: 500_000_000,
    reader_ns: 2_000_000_000,
    loop_ns: 1_000_000_000,
};

/// Check-in deadlines of the components, ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// The engine's sender (pacer) thread: how late past its next due send it may be.
    pub pacer_ns: u64,
    /// The engine's reader thread.
    pub reader_ns: u64,
    /// The event loop (heartbeats and the sync link).
    pub loop_ns: u64,
}

/// Check-ins of the event loop and what the supervisor needs to stamp its messages.
#[derive(Debug, Default)]
pub struct LoopAlive {
    /// Monotonic ns of the last heartbeat duty (timers handled).
    pub heartbeat: AtomicU64,
    /// Monotonic ns of the last sync-link drain.
    pub sync: AtomicU64,
    /// The epoch the loop's node knows (for the notice header).
    pub epoch: AtomicU64,
    /// The node's role is secondary (for the notice header).
    pub secondary: AtomicBool,
    /// On air with a synchronised secondary standing by (`Primary`): tight deadlines.
    pub standby: AtomicBool,
}

/// Where the supervisor sends its Failed notice.
pub struct Notice {
    /// A clone of the sync-link socket.
    pub socket: UdpSocket,
    /// The sync-link key.
    pub key: Key,
    /// The peer server.
    pub peer: SocketAddr,
    /// Component monitors.
    pub monitors: Vec<SocketAddr>,
    /// Server id (the kernel bit is added).
    pub server_id: u32,
    /// Boot id of this process.
    pub boot_id: u64,
    /// Wire session id.
    pub session: u64,
}

/// What the supervisor is told.
enum Cmd {
    EngineStarted(Arc<Supervision>, EngineControl),
    EngineStopped,
    Panic(&'static str, String),
    Rearm,
}

/// What the supervisor tells the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A critical component failed: the engine is fenced and the notice sent.
    Failed {
        /// The component.
        component: String,
        /// Why, for the log and the state transition.
        why: String,
        /// A timing verdict (a missed check-in), not a caught panic.
        timing: bool,
    },
    /// A non-critical component failed.
    Degraded {
        /// The component.
        component: String,
        /// Why.
        why: String,
    },
}

/// One component as `tandem status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ComponentStatus {
    /// Name.
    pub name: String,
    /// Critical.
    pub critical: bool,
    /// Check-in deadline, us.
    pub deadline_us: u64,
    /// Why it failed, if it did.
    pub failed: Option<String>,
}

/// The running supervisor.
pub struct Supervisor {
    tx: Sender<Cmd>,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
    /// The loop's check-ins.
    pub alive: Arc<LoopAlive>,
    /// The latest component table.
    pub snapshot: Arc<Mutex<Vec<ComponentStatus>>>,
}

impl Supervisor {
    /// Starts the supervisor thread; reports go to `reports` (the loop is woken with
    /// `waker` after each).
    pub fn start(
        deadlines: Deadlines,
        notice: Notice,
        reports: Sender<Report>,
        waker: Arc<mio::Waker>,
    ) -> std::io::Result<Supervisor> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let alive = Arc::new(LoopAlive::default());
        let now = mono_ns();
        alive.heartbeat.store(now, Ordering::Relaxed);
        alive.sync.store(now, Ordering::Relaxed);
        let snapshot = Arc::new(Mutex::new(Vec::new()));
        {
            let tx = Mutex::new(tx.clone());
            crate::net::faults::report_panics_first(Box::new(move |component, message| {
                let tx = tx.lock().unwrap_or_else(|e| e.into_inner());
                let _ = tx.send(Cmd::Panic(component, message.to_string()));
            }));
        }
        let join = {
            let (stop, alive, snapshot) = (stop.clone(), alive.clone(), snapshot.clone());
            std::thread::Builder::new()
                .name("tandem-kernel".into())
                .spawn(move || {
                    let mut k = Run {
                        kernel: Kernel::new(),
                        deadlines,
                        notice,
                        stamper: None,
                        engine: None,
                        alive,
                        reports,
                        waker,
                        snapshot,
                        failed: false,
                        tight: false,
                        starve: Starve::default(),
                        watchdog: crate::net::notify::watchdog_interval_ns()
                            .map(crate::failover::watchdog::Watchdog::new),
                    };
                    k.run(&rx, &stop)
                })?
        };
        Ok(Supervisor {
            tx,
            stop,
            join: Some(join),
            alive,
            snapshot,
        })
    }

    /// The engine's hooks to supervise (a new engine replaces the previous one).
    pub fn engine_started(&self, hooks: Arc<Supervision>, control: EngineControl) {
        let _ = self.tx.send(Cmd::EngineStarted(hooks, control));
    }

    /// The engine was stopped on purpose: its threads no longer check in.
    pub fn engine_stopped(&self) {
        let _ = self.tx.send(Cmd::EngineStopped);
    }

    /// The server recovers from `Failed`: a fresh kernel (no failure on record), the loop's
    /// components registered anew; the next engine registers its own when it starts.
    pub fn rearm(&self) {
        let _ = self.tx.send(Cmd::Rearm);
    }

    /// A panic-report hook for [`Supervision::on_panic`].
    pub fn panic_hook(&self) -> PanicHook {
        let tx = Mutex::new(self.tx.clone());
        Box::new(move |component, message| {
            let tx = tx.lock().unwrap_or_else(|e| e.into_inner());
            let _ = tx.send(Cmd::Panic(component, message.to_string()));
        })
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.tx.send(Cmd::EngineStopped);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

struct Run {
    kernel: Kernel,
    deadlines: Deadlines,
    notice: Notice,
    stamper: Option<Stamper>,
    engine: Option<(Arc<Supervision>, EngineControl)>,
    alive: Arc<LoopAlive>,
    reports: Sender<Report>,
    waker: Arc<mio::Waker>,
    snapshot: Arc<Mutex<Vec<ComponentStatus>>>,
    failed: bool,
    tight: bool,
    starve: Starve,
    /// systemd's watchdog, when it asked for one (`WATCHDOG_USEC`).
    watchdog: Option<crate::failover::watchdog::Watchdog>,
}

/// The supervisor's view of a late pacer: the promise it is late on, the scheduler's
/// figures when it was half its tolerance late, the times it was excused.
#[derive(Debug, Default)]
struct Starve {
    promise: u64,
    baseline: Option<(u64, u64, u64)>,
    excused: u64,
}

const ENGINE_COMPONENTS: [&str; 2] = ["reader", "pacer"];

impl Run {
    /// The deadlines in force.
    fn dl(&self) -> Deadlines {
        if self.tight {
            self.deadlines
        } else {
            RELAXED
        }
    }

    /// (Re)registers the components with the deadlines in force; a component re-registered
    /// gets a full deadline from now. A failed component keeps its failure on record.
    fn register_all(&mut self, now: u64) {
        let dl = self.dl();
        let mut names: Vec<(&'static str, u64)> =
            vec![("heartbeat", dl.loop_ns), ("sync", dl.loop_ns)];
        if self.engine.is_some() {
            names.push(("reader", dl.reader_ns));
            names.push(("pacer", dl.pacer_ns));
        }
        // Critical only while tight (a standby can take over); otherwise a missed deadline
        // degrades (logged) and the only output keeps trying.
        let critical = self.tight;
        for (n, d) in names {
            let failed = self
                .kernel
                .components()
                .any(|(c, crit, w)| c == n && crit && w.is_some());
            if failed {
                continue;
            }
            let _ = self.kernel.unregister(n);
            let _ = self.kernel.register(n, critical, d, now);
        }
    }

    fn run(&mut self, rx: &Receiver<Cmd>, stop: &AtomicBool) {
        let now = mono_ns();
        self.register_all(now);
        self.publish();
        loop {
            let now = mono_ns();
            let next = match (self.kernel.next_deadline(), self.starve_sample_at()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let next = match (next, self.watchdog.map(|w| w.next_deadline(now))) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let wait = next
                .map_or(100_000_000, |d| d.saturating_sub(now))
                .clamp(100_000, 100_000_000);
            let first = match rx.recv_timeout(Duration::from_nanos(wait)) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if stop.load(Ordering::Acquire) {
                return;
            }
            for cmd in first.into_iter().chain(rx.try_iter()) {
                self.command(cmd);
            }
            self.check_ins();
            if let Some(w) = &mut self.watchdog {
                if w.poll(mono_ns(), self.alive.heartbeat.load(Ordering::Relaxed)) {
                    crate::net::notify::watchdog();
                }
            }
            let tight = self.alive.standby.load(Ordering::Relaxed);
            if tight != self.tight {
                self.tight = tight;
                self.register_all(mono_ns());
                self.publish();
            }
            let now = mono_ns();
            self.excuse_starved_pacer(now);
            let mut changed = false;
            while let Some(v) = self.kernel.poll(now) {
                changed = true;
                self.verdict(v, now);
            }
            if changed {
                self.publish();
            }
        }
    }

    fn command(&mut self, cmd: Cmd) {
        let now = mono_ns();
        match cmd {
            Cmd::EngineStarted(hooks, control) => {
                for c in ENGINE_COMPONENTS {
                    let _ = self.kernel.unregister(c);
                }
                let dl = self.dl();
                let critical = self.tight;
                let _ = self.kernel.register("reader", critical, dl.reader_ns, now);
                let _ = self.kernel.register("pacer", critical, dl.pacer_ns, now);
                self.engine = Some((hooks, control));
            }
            Cmd::EngineStopped => {
                for c in ENGINE_COMPONENTS {
                    let _ = self.kernel.unregister(c);
                }
                self.engine = None;
            }
            Cmd::Rearm => {
                self.kernel = Kernel::new();
                self.failed = false;
                self.engine = None;
                self.register_all(now);
            }
            Cmd::Panic(component, message) => {
                if self.engine.is_some() {
                    // A panic fails the server in every case: the component is made critical.
                    let dl = self.dl();
                    let d = if component == "reader" {
                        dl.reader_ns
                    } else {
                        dl.pacer_ns
                    };
                    let _ = self.kernel.unregister(component);
                    let _ = self.kernel.register(component, true, d, now);
                    let _ = self
                        .kernel
                        .report_failure(component, &format!("panicked: {message}"));
                }
            }
        }
        self.publish();
    }

    fn check_ins(&mut self) {
        let a = &self.alive;
        let _ = self
            .kernel
            .check_in("heartbeat", a.heartbeat.load(Ordering::Relaxed));
        let _ = self.kernel.check_in("sync", a.sync.load(Ordering::Relaxed));
        if let Some((h, _)) = &self.engine {
            let _ = self
                .kernel
                .check_in("reader", h.reader_alive.load(Ordering::Relaxed));
            let _ = self
                .kernel
                .check_in("pacer", h.sender_alive.load(Ordering::Relaxed));
        }
    }

    /// When to take the scheduler's figures of a pacer that is getting late (half its
    /// tolerance past its promise), while deadlines are tight.
    fn starve_sample_at(&self) -> Option<u64> {
        let (h, _) = self.engine.as_ref()?;
        if !self.tight || self.failed {
            return None;
        }
        let promise = h.sender_alive.load(Ordering::Relaxed);
        let fresh = promise != self.starve.promise || self.starve.baseline.is_none();
        fresh.then(|| promise.saturating_add(self.dl().pacer_ns / 2))
    }

    /// A pacer late by half its tolerance: note the scheduler's figures; at its deadline, a
    /// thread that is runnable and got less than half of the time since as CPU time is
    /// starved, not hung: it gets another tolerance from now (within [`STARVED_MAX_NS`]).
    fn excuse_starved_pacer(&mut self, now: u64) {
        let Some((h, _)) = &self.engine else { return };
        if !self.tight || self.failed {
            return;
        }
        let tid = h.sender_tid.load(Ordering::Relaxed);
        let promise = h.sender_alive.load(Ordering::Relaxed);
        if promise != self.starve.promise {
            self.starve = Starve {
                promise,
                ..Starve::default()
            };
        }
        let tol = self.dl().pacer_ns;
        let late = now.saturating_sub(promise);
        if tid == 0 || late < tol / 2 {
            return;
        }
        let Some((run_ns, wait_ns)) = thread_sched(tid) else {
            return;
        };
        let Some((t0, run0, wait0)) = self.starve.baseline else {
            self.starve.baseline = Some((now, run_ns, wait_ns));
            return;
        };
        // Only at the deadline the kernel works to (the promise, or the last excuse, plus
        // the tolerance).
        let due = promise.max(self.starve.excused).saturating_add(tol);
        if now < due {
            return;
        }
        let elapsed = now.saturating_sub(t0);
        let had = run_ns.saturating_sub(run0);
        let queued = wait_ns.saturating_sub(wait0);
        // Starved: it spent most of the time waiting in a run queue (not asleep, not on a CPU).
        if queued >= elapsed / 2 && had < elapsed / 2 && late < STARVED_MAX_NS {
            let _ = self.kernel.check_in("pacer", now);
            self.starve.excused = now;
            self.starve.baseline = Some((now, run_ns, wait_ns));
            tracing::info!(
                late_us = late / 1_000,
                cpu_us = had / 1_000,
                queued_us = queued / 1_000,
                over_us = elapsed / 1_000,
                "kernel: pacer late but waiting for a CPU (starved by the machine, not hung): deadline extended"
            );
        }
    }

    fn verdict(&mut self, v: Verdict, now: u64) {
        match v {
            Verdict::Failed { component, why } => {
                let timing = matches!(why, Why::MissedCheckIn { .. });
                let why = describe(&component, &why);
                if self.failed {
                    // The server has failed already; later verdicts are consequences.
                    tracing::info!("kernel: {component} {why} (server already failed)");
                    return;
                }
                self.failed = true;
                // 1. Nothing more on air.
                // The index the notice carries is read after the fence has settled (a send
                // that passed the sender's fence check before the fence is counted), so the
                // secondary's first datagram is the one after it: nothing repeated.
                let last_live = self.engine.as_ref().and_then(|(_, c)| {
                    c.fence_live();
                    c.settled_last_live(FENCE_SETTLE)
                });
                // 2. Tell the loop (it moves the machine to Failed, unless it hangs).
                let _ = self.reports.send(Report::Failed {
                    component: component.clone(),
                    why: why.clone(),
                    timing,
                });
                let _ = self.waker.wake();
                // 3. Tell the secondary (and monitors) at once, without waiting for the loop.
                self.send_notice(&component, &why, last_live);
                tracing::error!(
                    component = %component,
                    "kernel: {component} {why}; live output stopped, Failed notice sent"
                );
                let _ = now;
            }
            Verdict::Degraded { component, why } => {
                let why = describe(&component, &why);
                let _ = self.reports.send(Report::Degraded { component, why });
                let _ = self.waker.wake();
            }
        }
    }

    fn send_notice(&mut self, component: &str, why: &str, last_index: Option<u64>) {
        let n = &self.notice;
        let role = if self.alive.secondary.load(Ordering::Relaxed) {
            SenderRole::Secondary
        } else {
            SenderRole::Primary
        };
        let stamper = self.stamper.get_or_insert_with(|| {
            Stamper::new(role, n.server_id | KERNEL_ID_BIT, n.boot_id, n.session)
        });
        stamper.set_role(role);
        let msg = Msg {
            header: stamper.header(self.alive.epoch.load(Ordering::Relaxed), false, real_ns()),
            body: Body::FailedNotice {
                component: component.to_string(),
                reason: why.to_string(),
                last_index,
            },
        };
        match wire::encode(&msg, &n.key) {
            Ok(bytes) => {
                for to in std::iter::once(&n.peer).chain(n.monitors.iter()) {
                    let _ = n.socket.send_to(&bytes, to);
                }
            }
            Err(e) => tracing::error!(error = %e, "kernel: cannot encode the Failed notice"),
        }
    }

    fn publish(&self) {
        let d = self.dl();
        let dl = |name: &str| match name {
            "reader" => d.reader_ns,
            "pacer" => d.pacer_ns,
            _ => d.loop_ns,
        };
        let table = self
            .kernel
            .components()
            .map(|(name, critical, failed)| ComponentStatus {
                name: name.to_string(),
                critical,
                deadline_us: dl(name) / 1_000,
                failed: failed.map(|w| describe(name, w)),
            })
            .collect();
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = table;
    }
}

/// A verdict's reason in words: "missed its check-in deadline by 2.3 ms (no check-in for
/// 12.3 ms, deadline 10.0 ms)", for the pacer "missed its check-in deadline: 8.4 ms past
/// its next due send (tolerance 8.3 ms)", or the reported failure.
pub fn describe(component: &str, why: &Why) -> String {
    match why {
        Why::MissedCheckIn {
            last_ns,
            interval_ns,
            seen_ns,
        } if component == "pacer" => format!(
            "missed its check-in deadline: {:.1} ms past its next due send (tolerance {:.1} ms)",
            seen_ns.saturating_sub(*last_ns) as f64 / 1e6,
            *interval_ns as f64 / 1e6
        ),
        Why::MissedCheckIn {
            last_ns,
            interval_ns,
            seen_ns,
        } => {
            let silent = seen_ns.saturating_sub(*last_ns);
            format!(
                "missed its check-in deadline by {:.1} ms (no check-in for {:.1} ms, deadline {:.1} ms)",
                silent.saturating_sub(*interval_ns) as f64 / 1e6,
                silent as f64 / 1e6,
                *interval_ns as f64 / 1e6
            )
        }
        Why::Reported(r) => r.clone(),
    }
}
