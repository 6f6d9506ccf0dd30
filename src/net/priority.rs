//! Thread priorities: quiet start-up work and the optional real-time pacer (issue 13).
//!
//! A server starting, restarting or reloading beside a live output on the same host (claim
//! 27: both servers on one machine) must not stall that output. Its start-up work therefore
//! runs at idle CPU and I/O priority:
//!
//! - [`quietly`]: loading or building the offset map and hashing the asset (XXH3-128) run
//!   on a short-lived `tandem-startup` thread at `SCHED_IDLE` and `IOPRIO_CLASS_IDLE`,
//!   which ends with the work (so nothing has to be raised again, and the thread that later
//!   spawns the engine keeps its own priority: threads inherit policy and I/O priority).
//!   The file is read in 1 MiB slices (`index::build::CHUNK`), so no single read keeps a
//!   CPU in the kernel for long, and a waking normal thread preempts a `SCHED_IDLE` one at
//!   once (`check_preempt_wakeup_fair`). The scheduler also counts a CPU running only
//!   idle-policy threads as idle when it places a waking thread (`sched_idle_cpu`): good
//!   for a pacer woken there, but it draws other tenants' work there too; `--quiet-cpu
//!   nice` ([`QuietCpu::Nice`]: `SCHED_BATCH` at nice 19) keeps the CPU busy for the
//!   scheduler instead (docs/startup.md has the figures).
//! - [`QuietFill`]: the engine's reader thread fills its ring (up to 3 s ahead, page-faulting
//!   its buffers) at idle priority while nothing is on air yet, and returns to the priority
//!   it had when the ring is full for the first time or when the pacer asks for its first
//!   datagram, whichever comes first (the pacer, at normal priority, restores it: an idle
//!   reader the host starves can never hold up a send). Its steady-state refills run at
//!   normal priority: a starved reader would miss the ring's deadline.
//!
//! Leaving `SCHED_IDLE` needs `CAP_SYS_NICE` or an `RLIMIT_NICE` that allows the thread's
//! nice value (sched(7), "SCHED_IDLE"; kernel `__sched_setscheduler`: `can_nice`). Where
//! the process may not ([`can_leave_idle`], probed once on a throwaway thread), the reader
//! lowers only its I/O priority (any thread may move between the idle and best-effort I/O
//! classes, ioprio_set(2)); the start-up thread is lowered either way (it never comes back).
//!
//! The I/O class only matters when a request reaches a block device whose scheduler honours
//! it (BFQ; mq-deadline since Linux 5.14; not `none`, Documentation/block/ioprio.rst); reads
//! served from the page cache are not I/O at all, only CPU.
//!
//! [`pacer_thread`]: `--rt-priority N` puts the pacer thread at `SCHED_FIFO` priority N
//! (with `SCHED_RESET_ON_FORK`) where permitted (`CAP_SYS_NICE`, or `RLIMIT_RTPRIO >= N`,
//! sched(7)); a refusal is a warning, not a failure. The pacer sleeps between every two
//! datagrams (an absolute clock_nanosleep or futex wait; waits on the ring and the ownership
//! gate block too), so a real-time pacer cannot spin a core: at most it runs for the few
//! microseconds a send takes, then sleeps; the kernel's RT throttling
//! (`/proc/sys/kernel/sched_rt_runtime_us`) is a further bound.
//!
//! This is the only module that changes scheduling attributes; every `unsafe` block is a
//! plain system call with no pointers or with a pointer to a live local (and `nice` reads
//! and clears this thread's `errno`).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU16, AtomicU8, Ordering};
use std::sync::OnceLock;

/// `IOPRIO_CLASS_SHIFT` (include/uapi/linux/ioprio.h).
const IOPRIO_CLASS_SHIFT: u16 = 13;
/// `IOPRIO_WHO_PROCESS`: the `who` of ioprio_set(2)/ioprio_get(2) is a thread id.
const IOPRIO_WHO_PROCESS: libc::c_int = 1;
/// `IOPRIO_CLASS_NONE`: no class set (derived from the nice value, or idle under SCHED_IDLE).
pub const IOPRIO_CLASS_NONE: u16 = 0;
/// `IOPRIO_CLASS_RT`.
pub const IOPRIO_CLASS_RT: u16 = 1;
/// `IOPRIO_CLASS_BE`: best effort, the default class.
pub const IOPRIO_CLASS_BE: u16 = 2;
/// `IOPRIO_CLASS_IDLE`: served only when no other I/O is pending on the device.
pub const IOPRIO_CLASS_IDLE: u16 = 3;

/// A thread's CPU scheduling policy (sched(7)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuPolicy {
    /// `SCHED_OTHER` (the default, CFS/EEVDF).
    Other,
    /// `SCHED_BATCH`.
    Batch,
    /// `SCHED_IDLE`: runs only when nothing else wants the CPU (lower than nice 19).
    Idle,
    /// `SCHED_FIFO` at this static priority (1-99).
    Fifo(u8),
    /// `SCHED_RR` at this static priority.
    RoundRobin(u8),
    /// Another policy (e.g. `SCHED_DEADLINE`), by number.
    Unknown(i32),
}

impl CpuPolicy {
    fn to_raw(self) -> (libc::c_int, libc::c_int) {
        match self {
            CpuPolicy::Other => (libc::SCHED_OTHER, 0),
            CpuPolicy::Batch => (libc::SCHED_BATCH, 0),
            CpuPolicy::Idle => (libc::SCHED_IDLE, 0),
            CpuPolicy::Fifo(p) => (libc::SCHED_FIFO, p as libc::c_int),
            CpuPolicy::RoundRobin(p) => (libc::SCHED_RR, p as libc::c_int),
            CpuPolicy::Unknown(n) => (n, 0),
        }
    }
    fn from_raw(policy: libc::c_int, prio: libc::c_int) -> CpuPolicy {
        match policy & !libc::SCHED_RESET_ON_FORK {
            libc::SCHED_OTHER => CpuPolicy::Other,
            libc::SCHED_BATCH => CpuPolicy::Batch,
            libc::SCHED_IDLE => CpuPolicy::Idle,
            libc::SCHED_FIFO => CpuPolicy::Fifo(prio.clamp(0, 99) as u8),
            libc::SCHED_RR => CpuPolicy::RoundRobin(prio.clamp(0, 99) as u8),
            n => CpuPolicy::Unknown(n),
        }
    }
}

/// An I/O priority as ioprio_get(2) returns it: class (upper 3 bits) and level (0-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoPriority(pub u16);

impl IoPriority {
    /// The idle class (level 0; the class has no levels).
    pub const IDLE: IoPriority = IoPriority(IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT);
    /// The class (`IOPRIO_CLASS_*`).
    pub fn class(self) -> u16 {
        self.0 >> IOPRIO_CLASS_SHIFT
    }
}

/// The calling thread's id (gettid(2)).
pub fn tid() -> i32 {
    // SAFETY: gettid takes no arguments, cannot fail and touches no memory.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// The scheduling policy of thread `tid` (0: the calling thread), sched_getscheduler(2) and
/// sched_getparam(2).
pub fn cpu_policy(tid: i32) -> io::Result<CpuPolicy> {
    // SAFETY: sched_getscheduler takes a thread id and no pointers.
    let policy = unsafe { libc::sched_getscheduler(tid) };
    if policy < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a live, writable sched_param for the duration of the call.
    if unsafe { libc::sched_getparam(tid, &mut param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(CpuPolicy::from_raw(policy, param.sched_priority))
}

/// Sets thread `tid`'s policy (0: the calling thread), sched_setscheduler(2). The nice value
/// is kept (the old interface passes the thread's current one).
pub fn set_cpu_policy(tid: i32, p: CpuPolicy, reset_on_fork: bool) -> io::Result<()> {
    let (mut policy, prio) = p.to_raw();
    if reset_on_fork {
        policy |= libc::SCHED_RESET_ON_FORK;
    }
    let param = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: `param` is a live sched_param the kernel only reads during the call.
    if unsafe { libc::sched_setscheduler(tid, policy, &param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The I/O priority of thread `tid` (0: the calling thread), ioprio_get(2).
pub fn io_priority(tid: i32) -> io::Result<IoPriority> {
    // SAFETY: ioprio_get takes two integers and no pointers (no glibc wrapper exists).
    let r = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, tid) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(IoPriority(r as u16))
}

/// Sets the I/O priority of thread `tid` (0: the calling thread), ioprio_set(2). The idle
/// and best-effort classes need no privilege (since Linux 2.6.25).
pub fn set_io_priority(tid: i32, p: IoPriority) -> io::Result<()> {
    // SAFETY: ioprio_set takes three integers and no pointers (no glibc wrapper exists).
    let r = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            tid,
            p.0 as libc::c_int,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The nice value of thread `tid` (0: the calling thread), getpriority(2).
pub fn nice(tid: i32) -> io::Result<i32> {
    // SAFETY: setting errno through the pointer glibc hands out for this thread, and
    // getpriority takes two integers; -1 is a valid result, so errno tells the error.
    unsafe {
        *libc::__errno_location() = 0;
        let n = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
        if n == -1 && *libc::__errno_location() != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n)
    }
}

/// Sets the nice value of thread `tid` (0: the calling thread), setpriority(2) (per thread
/// on Linux). Raising it needs no privilege; lowering it needs `CAP_SYS_NICE` or
/// `RLIMIT_NICE`.
pub fn set_nice(tid: i32, n: i32) -> io::Result<()> {
    // SAFETY: setpriority takes three integers and no pointers.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, n) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How quiet start-up lowers a thread's CPU priority (`--quiet-cpu`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum QuietCpu {
    /// `SCHED_IDLE`: preempted at once by any waking normal thread, but the scheduler
    /// counts a CPU that runs only idle-policy threads as idle and places other waking
    /// threads there (`sched_idle_cpu` in `select_idle_sibling`), so on a small busy host
    /// it draws other tenants' work onto the CPU of the pacer beside it.
    #[default]
    Idle,
    /// `SCHED_BATCH` at nice 19 (weight 15 against 1024): a CPU running it is busy for the
    /// scheduler, and the thread gets about 1.5 % of a CPU against one normal thread.
    Nice,
}

impl QuietCpu {
    /// The policy a lowered thread reads back.
    pub fn policy(self) -> CpuPolicy {
        match self {
            QuietCpu::Idle => CpuPolicy::Idle,
            QuietCpu::Nice => CpuPolicy::Batch,
        }
    }
}

/// Lowers thread `tid`'s CPU priority the quiet way in force.
fn lower_cpu(tid: i32) -> io::Result<()> {
    lower_cpu_as(quiet_cpu(), tid)
}

fn lower_cpu_as(how: QuietCpu, tid: i32) -> io::Result<()> {
    match how {
        QuietCpu::Idle => set_cpu_policy(tid, CpuPolicy::Idle, false),
        QuietCpu::Nice => {
            set_cpu_policy(tid, CpuPolicy::Batch, false)?;
            set_nice(tid, 19)
        }
    }
}

// ------------------------------------------------------------------ process settings

static QUIET_OFF: AtomicBool = AtomicBool::new(false);
static QUIET_NICE: AtomicBool = AtomicBool::new(false);

/// Sets how quiet start-up lowers CPU priority (default [`QuietCpu::Idle`]).
pub fn set_quiet_cpu(q: QuietCpu) {
    QUIET_NICE.store(q == QuietCpu::Nice, Ordering::Relaxed);
}

/// How quiet start-up lowers CPU priority.
pub fn quiet_cpu() -> QuietCpu {
    if QUIET_NICE.load(Ordering::Relaxed) {
        QuietCpu::Nice
    } else {
        QuietCpu::Idle
    }
}
/// 0: no real-time pacer; 1-99: SCHED_FIFO priority.
static RT_PRIORITY: AtomicU8 = AtomicU8::new(0);

/// The command line's choice for this process: quiet start-up (default on) and the pacer's
/// real-time priority (default none). Read by [`quietly`] and `EngineConfig::new`.
pub fn configure(quiet: bool, rt_priority: Option<u8>) {
    QUIET_OFF.store(!quiet, Ordering::Relaxed);
    RT_PRIORITY.store(rt_priority.unwrap_or(0).min(99), Ordering::Relaxed);
    tracing::debug!(
        quiet_startup = quiet,
        rt_priority = ?rt_priority,
        "start-up work at {} priority; pacer {}",
        if quiet { "idle CPU and I/O" } else { "normal" },
        rt_priority.map_or("at normal priority".to_string(), |p| format!("at SCHED_FIFO {p} where permitted"))
    );
}

/// Whether start-up work runs quietly (see the module documentation).
pub fn quiet_startup() -> bool {
    !QUIET_OFF.load(Ordering::Relaxed)
}

/// The pacer's real-time priority, if asked for.
pub fn rt_priority() -> Option<u8> {
    Some(RT_PRIORITY.load(Ordering::Relaxed)).filter(|&p| p > 0)
}

/// Whether a thread of this process may leave `SCHED_IDLE` again (probed once, on a
/// throwaway thread, so no thread that matters is ever lowered for the test).
pub fn can_leave_idle() -> bool {
    static PROBE: OnceLock<bool> = OnceLock::new();
    *PROBE.get_or_init(|| {
        std::thread::Builder::new()
            .name("tandem-prio-probe".into())
            .spawn(|| {
                let before = cpu_policy(0).unwrap_or(CpuPolicy::Other);
                let nice_before = nice(0).unwrap_or(0);
                lower_cpu(0).is_ok()
                    && set_cpu_policy(0, before, false).is_ok()
                    && set_nice(0, nice_before).is_ok()
            })
            .ok()
            .and_then(|h| h.join().ok())
            .unwrap_or(false)
    })
}

/// Lowers the calling thread to idle CPU and I/O priority; says what did not work.
fn lower_this_thread() -> Vec<String> {
    let mut refused = Vec::new();
    if let Err(e) = lower_cpu(0) {
        refused.push(format!("{:?}: {e}", quiet_cpu()));
    }
    if let Err(e) = set_io_priority(0, IoPriority::IDLE) {
        refused.push(format!("IOPRIO_CLASS_IDLE: {e}"));
    }
    refused
}

/// Runs start-up work `f` (loading/building the offset map, hashing the asset) quietly when
/// [`quiet_startup`] is on: on a `tandem-startup` thread at `SCHED_IDLE` and
/// `IOPRIO_CLASS_IDLE` that ends with it, while the calling thread waits. Otherwise (or if
/// no thread can be spawned) on the calling thread. A panic in `f` is passed on.
pub fn quietly<T: Send>(what: &str, f: impl FnOnce() -> T + Send) -> T {
    if !quiet_startup() {
        return f();
    }
    // Shared with the thread so that `f` is still here if the thread cannot be spawned.
    let work = std::sync::Mutex::new(Some(f));
    let take = || work.lock().unwrap_or_else(|e| e.into_inner()).take();
    let done = std::thread::scope(|s| {
        let spawned = std::thread::Builder::new()
            .name("tandem-startup".into())
            .spawn_scoped(s, || {
                let refused = lower_this_thread();
                if refused.is_empty() {
                    tracing::debug!("{what}: at idle CPU and I/O priority (quiet start-up)");
                } else {
                    tracing::debug!(
                        "{what}: quiet start-up partly refused: {}",
                        refused.join("; ")
                    );
                }
                take().map(|f| f())
            });
        match spawned {
            Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            Err(e) => {
                tracing::debug!("{what}: no start-up thread ({e}); at normal priority");
                None
            }
        }
    });
    match done {
        Some(v) => v,
        None => match take() {
            Some(f) => f(),
            None => unreachable!("the start-up work ran or is still here"),
        },
    }
}

// ------------------------------------------------------------------ the reader's first fill

const NEW: u8 = 0;
const QUIET: u8 = 1;
const DONE: u8 = 2;

/// A quiet first fill only when the first datagram is due at least this far ahead of the
/// engine's start (a session joined in progress needs its reader at once) ...
pub const QUIET_FILL_MIN_LEAD_NS: u64 = 20_000_000;
/// ... and at most this far: the pacer's first fetch ends the fill, so a reader the host
/// starves at idle priority is back within this bound, well inside the supervisor's 1 s
/// reader deadline (a session starting later fills its ring at normal priority).
pub const QUIET_FILL_MAX_LEAD_NS: u64 = 500_000_000;

/// The quiet first fill of an engine whose first datagram is due `lead_ns` after its start,
/// when `enabled` and the lead is within [`QUIET_FILL_MIN_LEAD_NS`]..=[`QUIET_FILL_MAX_LEAD_NS`].
pub fn quiet_fill_for(enabled: bool, lead_ns: i128) -> Option<std::sync::Arc<QuietFill>> {
    let range = QUIET_FILL_MIN_LEAD_NS as i128..=QUIET_FILL_MAX_LEAD_NS as i128;
    (enabled && range.contains(&lead_ns)).then(|| std::sync::Arc::new(QuietFill::new()))
}

/// Who ended a quiet fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillEnd {
    /// Not ended yet.
    Running,
    /// The ring was full for the first time (the reader restored itself).
    RingFull,
    /// The pacer asked for its first datagram first (and restored the reader).
    FirstFetch,
    /// Never lowered (the pacer came first, or quiet start-up could do nothing).
    NotLowered,
}

/// The reader thread's quiet first fill of the ring (see the module documentation).
///
/// Protocol (lock-free: nobody ever waits on a thread at idle priority): the reader notes
/// its id and priorities, moves `NEW -> QUIET`, lowers itself, and checks again (if the
/// pacer ended the fill in between, it restores itself at once). The first of "ring full"
/// (reader) and "first fetch" (pacer) moves `QUIET -> DONE` and restores the reader.
#[derive(Debug)]
pub struct QuietFill {
    state: AtomicU8,
    tid: AtomicI32,
    /// Raw policy and priority before lowering.
    saved_policy: AtomicI32,
    saved_prio: AtomicI32,
    saved_io: AtomicU16,
    saved_nice: AtomicI32,
    /// Whether the CPU policy was lowered (false: I/O only, see [`can_leave_idle`]).
    cpu: AtomicBool,
    /// What the reader read back right after lowering (raw policy, I/O priority).
    seen_policy: AtomicI32,
    seen_io: AtomicU16,
    ended: AtomicU8,
}

impl Default for QuietFill {
    fn default() -> Self {
        QuietFill::new()
    }
}

impl QuietFill {
    /// A fill that has not started.
    pub fn new() -> QuietFill {
        QuietFill {
            state: AtomicU8::new(NEW),
            tid: AtomicI32::new(0),
            saved_policy: AtomicI32::new(libc::SCHED_OTHER),
            saved_prio: AtomicI32::new(0),
            saved_io: AtomicU16::new(0),
            saved_nice: AtomicI32::new(0),
            cpu: AtomicBool::new(false),
            seen_policy: AtomicI32::new(-1),
            seen_io: AtomicU16::new(0),
            ended: AtomicU8::new(0),
        }
    }

    /// On the reader thread, before its first read: lowers it (CPU where it can come back,
    /// see [`can_leave_idle`]; I/O always).
    pub fn enter(&self) {
        let me = tid();
        let Ok(policy) = cpu_policy(0) else { return };
        let Ok(io) = io_priority(0) else { return };
        let Ok(nice_before) = nice(0) else { return };
        let cpu = can_leave_idle() && matches!(policy, CpuPolicy::Other | CpuPolicy::Batch);
        let (raw, prio) = policy.to_raw();
        self.tid.store(me, Ordering::Relaxed);
        self.saved_policy.store(raw, Ordering::Relaxed);
        self.saved_prio.store(prio, Ordering::Relaxed);
        self.saved_io.store(io.0, Ordering::Relaxed);
        self.saved_nice.store(nice_before, Ordering::Relaxed);
        self.cpu.store(cpu, Ordering::Relaxed);
        if self
            .state
            .compare_exchange(NEW, QUIET, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            self.ended
                .store(FillEnd::NotLowered as u8, Ordering::Relaxed);
            return;
        }
        let mut refused = Vec::new();
        if cpu {
            if let Err(e) = lower_cpu(0) {
                refused.push(format!("{:?}: {e}", quiet_cpu()));
            }
        }
        if let Err(e) = set_io_priority(0, IoPriority::IDLE) {
            refused.push(format!("IOPRIO_CLASS_IDLE: {e}"));
        }
        if let Ok(p) = cpu_policy(0) {
            self.seen_policy.store(p.to_raw().0, Ordering::Relaxed);
        }
        if let Ok(p) = io_priority(0) {
            self.seen_io.store(p.0, Ordering::Relaxed);
        }
        if self.state.load(Ordering::Acquire) == DONE {
            // The pacer ended the fill while this thread was lowering itself.
            self.restore(0);
        }
        tracing::debug!(
            cpu_idle = cpu,
            refused = %refused.join("; "),
            "reader: first fill of the ring at idle {}priority (quiet start-up)",
            if cpu { "CPU and I/O " } else { "I/O " }
        );
    }

    /// Whether the fill is still quiet (one atomic load).
    pub fn active(&self) -> bool {
        self.state.load(Ordering::Relaxed) == QUIET
    }

    /// On the reader thread: the ring is full for the first time.
    pub fn ring_full(&self) {
        if self.state.swap(DONE, Ordering::AcqRel) == QUIET {
            self.restore(0);
            self.ended.store(FillEnd::RingFull as u8, Ordering::Relaxed);
            tracing::debug!("reader: ring full; back to normal priority");
        }
    }

    /// On the pacer thread, before its first datagram: restores the reader if it is still
    /// quiet. After the first call, one atomic load.
    pub fn first_fetch(&self) {
        if self.state.load(Ordering::Relaxed) == DONE {
            return;
        }
        match self.state.swap(DONE, Ordering::AcqRel) {
            QUIET => {
                self.restore(self.tid.load(Ordering::Relaxed));
                self.ended
                    .store(FillEnd::FirstFetch as u8, Ordering::Relaxed);
                tracing::debug!("pacer: first datagram before the ring was full; reader back to normal priority");
            }
            NEW => self
                .ended
                .store(FillEnd::NotLowered as u8, Ordering::Relaxed),
            _ => {}
        }
    }

    /// How the fill ended.
    pub fn end(&self) -> FillEnd {
        match self.ended.load(Ordering::Relaxed) {
            1 => FillEnd::RingFull,
            2 => FillEnd::FirstFetch,
            3 => FillEnd::NotLowered,
            _ => FillEnd::Running,
        }
    }

    /// The reader's thread id (0 before it entered).
    pub fn reader_tid(&self) -> i32 {
        self.tid.load(Ordering::Relaxed)
    }

    /// What the reader read back right after lowering itself (None: never lowered).
    pub fn seen_while_quiet(&self) -> Option<(CpuPolicy, IoPriority)> {
        let p = self.seen_policy.load(Ordering::Relaxed);
        (p >= 0).then(|| {
            (
                CpuPolicy::from_raw(p, 0),
                IoPriority(self.seen_io.load(Ordering::Relaxed)),
            )
        })
    }

    /// Whether the CPU policy was lowered too (see [`can_leave_idle`]).
    pub fn lowered_cpu(&self) -> bool {
        self.cpu.load(Ordering::Relaxed)
    }

    /// Puts thread `who` (0: the caller) back to the saved priorities.
    fn restore(&self, who: i32) {
        if self.cpu.load(Ordering::Relaxed) {
            let p = CpuPolicy::from_raw(
                self.saved_policy.load(Ordering::Relaxed),
                self.saved_prio.load(Ordering::Relaxed),
            );
            if let Err(e) = set_cpu_policy(who, p, false) {
                tracing::warn!("reader: cannot restore its CPU policy: {e}");
            }
            if let Err(e) = set_nice(who, self.saved_nice.load(Ordering::Relaxed)) {
                tracing::warn!("reader: cannot restore its nice value: {e}");
            }
        }
        let io = IoPriority(self.saved_io.load(Ordering::Relaxed));
        if let Err(e) = set_io_priority(who, io) {
            tracing::warn!("reader: cannot restore its I/O priority: {e}");
        }
    }
}

// ------------------------------------------------------------------ the pacer

/// On the pacer thread at its start: `SCHED_FIFO` at `rt` (with `SCHED_RESET_ON_FORK`)
/// where permitted. A refusal is a warning and the pacer runs at the priority it inherited.
/// Returns whether real-time priority is in effect.
pub fn pacer_thread(rt: Option<u8>) -> bool {
    let Some(p) = rt.filter(|&p| p > 0) else {
        return false;
    };
    let p = p.min(99);
    match set_cpu_policy(0, CpuPolicy::Fifo(p), true) {
        Ok(()) => {
            tracing::debug!(priority = p, "pacer at SCHED_FIFO (--rt-priority)");
            true
        }
        Err(e) => {
            tracing::warn!(
                "--rt-priority {p}: SCHED_FIFO refused ({e}; needs CAP_SYS_NICE or RLIMIT_RTPRIO >= {p}): the pacer runs at normal priority"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quietly_runs_at_idle_priority_and_leaves_the_caller_alone() {
        let before = (cpu_policy(0).unwrap(), io_priority(0).unwrap());
        let (name, policy, io) = quietly("test", || {
            (
                std::thread::current().name().map(str::to_string),
                cpu_policy(0).unwrap(),
                io_priority(0).unwrap(),
            )
        });
        assert_eq!(name.as_deref(), Some("tandem-startup"));
        assert_eq!(policy, CpuPolicy::Idle, "start-up thread not at SCHED_IDLE");
        assert_eq!(
            io.class(),
            IOPRIO_CLASS_IDLE,
            "start-up thread not at idle I/O"
        );
        assert_eq!((cpu_policy(0).unwrap(), io_priority(0).unwrap()), before);
    }

    #[test]
    fn quiet_fill_lowers_the_reader_and_the_pacer_restores_it() {
        let q = std::sync::Arc::new(QuietFill::new());
        let (tx, rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let q2 = q.clone();
        let reader = std::thread::spawn(move || {
            let before = (cpu_policy(0).unwrap(), io_priority(0).unwrap());
            q2.enter();
            tx.send(()).unwrap();
            go_rx.recv().unwrap();
            (before, cpu_policy(0).unwrap(), io_priority(0).unwrap())
        });
        rx.recv().unwrap();
        let (p, io) = q.seen_while_quiet().expect("lowered");
        assert_eq!(io.class(), IOPRIO_CLASS_IDLE);
        if can_leave_idle() {
            assert_eq!(p, CpuPolicy::Idle);
            assert!(q.lowered_cpu());
        } else {
            assert_ne!(p, CpuPolicy::Idle, "lowered a thread that cannot come back");
        }
        assert!(q.active());
        // Read back from outside too, by thread id.
        assert_eq!(
            io_priority(q.reader_tid()).unwrap().class(),
            IOPRIO_CLASS_IDLE
        );
        q.first_fetch();
        assert_eq!(q.end(), FillEnd::FirstFetch);
        q.ring_full(); // no effect once ended
        assert_eq!(q.end(), FillEnd::FirstFetch);
        go_tx.send(()).unwrap();
        let (before, after, io_after) = reader.join().unwrap();
        assert_eq!((after, io_after), before, "reader not restored");
    }

    #[test]
    fn quiet_fill_ends_at_ring_full_on_the_reader() {
        let q = QuietFill::new();
        let before = std::thread::scope(|s| {
            s.spawn(|| {
                let before = (cpu_policy(0).unwrap(), io_priority(0).unwrap());
                q.enter();
                q.ring_full();
                assert_eq!((cpu_policy(0).unwrap(), io_priority(0).unwrap()), before);
                before
            })
            .join()
            .unwrap()
        });
        assert_eq!(q.end(), FillEnd::RingFull);
        assert_ne!(before.0, CpuPolicy::Idle);
        q.first_fetch();
        assert_eq!(q.end(), FillEnd::RingFull);
    }

    #[test]
    fn a_pacer_first_means_no_lowering() {
        let q = QuietFill::new();
        q.first_fetch();
        std::thread::scope(|s| {
            s.spawn(|| {
                q.enter();
                assert_ne!(cpu_policy(0).unwrap(), CpuPolicy::Idle);
                assert_ne!(io_priority(0).unwrap().class(), IOPRIO_CLASS_IDLE);
            });
        });
        assert_eq!(q.end(), FillEnd::NotLowered);
        assert!(q.seen_while_quiet().is_none());
    }

    #[test]
    fn both_quiet_cpu_ways_read_back() {
        std::thread::spawn(|| {
            lower_cpu_as(QuietCpu::Nice, 0).unwrap();
            assert_eq!(cpu_policy(0).unwrap(), QuietCpu::Nice.policy());
            assert_eq!(nice(0).unwrap(), 19);
            lower_cpu_as(QuietCpu::Idle, 0).unwrap();
            assert_eq!(cpu_policy(0).unwrap(), QuietCpu::Idle.policy());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn rt_pacer_is_applied_or_refused_with_a_fallback() {
        std::thread::spawn(|| {
            let on = pacer_thread(Some(1));
            let p = cpu_policy(0).unwrap();
            if on {
                assert_eq!(p, CpuPolicy::Fifo(1));
            } else {
                assert_eq!(p, CpuPolicy::Other);
            }
            assert!(!pacer_thread(None));
        })
        .join()
        .unwrap();
    }
}
