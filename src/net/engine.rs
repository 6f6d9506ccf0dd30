//! The playout engine: a reader thread renders datagrams from frame-aligned chunks of the
//! asset into a ring, a sender thread paces them out with absolute `clock_nanosleep`
//! (CLOCK_MONOTONIC, TIMER_ABSTIME, 1 ns timer slack), following the sans-IO
//! [`Pacer`](crate::pacing::Pacer).
//!
//! The [`EngineHandle`] is what the failover driver holds: it chooses the target of every
//! datagram (off / muted group / live group), switches target from a given datagram index
//! (rewinding when that index is already past, then catching up at <= 2x rate), cuts live
//! output at once (a flag read right before every send), reports what was sent last, and
//! gates sends after a late wake behind an ownership check. The bytes of datagram `i` never
//! depend on any of this: only on `i` and the session.

use std::fs::File;
use std::net::{SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::clock::{mono_ns, set_thread_timer_slack_1ns, sleep_until_mono};
use super::doorbell::Doorbell;
use super::faults::{panic_message, Supervision};
use super::priority::{self, QuietFill};
use super::ring::{FetchError, Ring, Work};
use super::sockets::{connect_multicast, send, send_to};
use crate::pacing::{PacerStats, Schedule};
use crate::sender::{Command, Next, Prepared, SendOutcome, Sender, SenderConfig};
use crate::stream::reader::DatagramSource;
use crate::stream::OutputStream;

/// The pacer runs on `CLOCK_MONOTONIC + PACER_EPOCH_NS` so that a timeline origin before
/// boot (a negative monotonic instant) is still a `u64`: 2^62 ns is about 146 years.
const PACER_EPOCH_NS: u64 = 1 << 62;

/// At most one lateness / send-error log line per this interval.
const LOG_INTERVAL_NS: u64 = 1_000_000_000;
/// The sender publishes its counters for [`EngineHandle::stats`] every this many
/// datagrams (copying them on every send is measurable at these per-datagram costs).
pub const STATS_EVERY: u64 = 64;

/// How far after its arrival a datagram heard from another sender may be due on our
/// timeline and still be the one heard: the clock offset's error between two servers (a
/// sender never sends before a datagram is due).
const NAME_TOLERANCE_NS: i128 = 2_000_000;

pub use crate::sender::{GateCheck, SenderEvent, Target};

/// A socket and the address it sends to.
#[derive(Debug)]
pub struct Sink {
    /// A socket from [`super::sockets::sender`].
    pub socket: UdpSocket,
    /// Group (or unicast address) and port.
    pub dest: SocketAddrV4,
}

/// An output as the sender uses it: something that takes one datagram. The real one is a
/// [`Sink`] connected to its destination when that is a multicast group
/// ([`connect_multicast`]), so each datagram goes out with `send(2)`; an injected
/// `send-error` fault wraps it ([`FailingFrom`]): nothing in the send path checks for faults.
trait Output: Send {
    fn send(&self, buf: &[u8]) -> std::io::Result<()>;
    fn dest(&self) -> SocketAddrV4;
}

struct Out {
    sink: Sink,
    connected: bool,
}

impl Out {
    fn new(sink: Sink) -> Out {
        let connected = connect_multicast(&sink.socket, sink.dest);
        Out { sink, connected }
    }
}

impl Output for Out {
    fn send(&self, buf: &[u8]) -> std::io::Result<()> {
        if self.connected {
            send(&self.sink.socket, buf)
        } else {
            send_to(&self.sink.socket, buf, self.sink.dest)
        }
    }
    fn dest(&self) -> SocketAddrV4 {
        self.sink.dest
    }
}

/// An output whose every send fails from a monotonic instant on (`--inject send-error@S`).
struct FailingFrom<O> {
    inner: O,
    at_mono_ns: u64,
}

impl<O: Output> Output for FailingFrom<O> {
    fn send(&self, buf: &[u8]) -> std::io::Result<()> {
        if mono_ns() >= self.at_mono_ns {
            return Err(std::io::Error::other("injected fault: send error"));
        }
        self.inner.send(buf)
    }
    fn dest(&self) -> SocketAddrV4 {
        self.inner.dest()
    }
}

/// The real output, wrapped in the injected send fault when one is armed.
fn output(sink: Sink, sup: Option<&Supervision>) -> Box<dyn Output> {
    let out = Out::new(sink);
    match sup
        .map(|s| s.faults.send_error_at)
        .filter(|&t| t != u64::MAX)
    {
        Some(at_mono_ns) => Box::new(FailingFrom {
            inner: out,
            at_mono_ns,
        }),
        None => Box::new(out),
    }
}

/// The check a late live send must pass: returns whether this engine still owns the live
/// output. Called only when a live send is about to go out more than `after_ns` after its
/// allowed time (a late wake or a stall of the process; see [`GateCheck::late_ns`]), so the
/// normal path costs one comparison.
#[derive(Clone)]
pub struct OwnershipGate {
    /// Bound on lateness below which no check is made (ns).
    pub after_ns: u64,
    /// The check. `false`: the datagram is not sent and the target drops from live to the
    /// fallback (muted when a muted sink exists, else off).
    pub check: Arc<dyn Fn(GateCheck) -> bool + Send + Sync>,
}

impl std::fmt::Debug for OwnershipGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnershipGate")
            .field("after_ns", &self.after_ns)
            .finish_non_exhaustive()
    }
}

/// What the engine reports as it runs (see [`EngineConfig::events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    /// What the sender decided or saw: a late wake, a failed send, a switch, a refusal
    /// of the ownership gate.
    Sender(SenderEvent),
    /// The session is over (or the engine was stopped).
    Finished,
}

/// The last datagram handed to the kernel (or skipped, for target off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastSent {
    /// Datagram index.
    pub index: u64,
    /// CLOCK_MONOTONIC at the send decision (ns): the pacer's reading, at most a ring
    /// fetch before the send call (read again when the fetch waited for the reader, and
    /// right before a live send the ownership gate checks).
    pub mono_ns: u64,
    /// Where it went.
    pub target: Target,
}

/// Counters of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineStats {
    /// Pacer counters (sent, late wakes, max lateness, catch-up, seeks).
    pub pacer: PacerStats,
    /// Datagrams handed to a socket, per target: [muted, live].
    pub sent_muted: u64,
    /// See `sent_muted`.
    pub sent_live: u64,
    /// Failed sends.
    pub send_errors: u64,
    /// Live sends refused by the ownership gate.
    pub gated: u64,
    /// Fetches that waited for the reader.
    pub underruns: u64,
    /// First datagram index sent.
    pub first_index: Option<u64>,
}

/// Why the engine did not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A target was requested for which no sink was configured.
    #[error("no {0:?} destination is configured")]
    NoSink(Target),
    /// Start index at or past the end of a finite session.
    #[error("start datagram {start} is past the end of the session ({count} datagrams)")]
    PastEnd {
        /// Requested start.
        start: u64,
        /// Session length.
        count: u64,
    },
    /// A thread could not be spawned.
    #[error("spawning the {0} thread: {1}")]
    Spawn(&'static str, std::io::Error),
    /// The reader failed (asset unreadable).
    #[error("reading the asset: {0}")]
    Reader(String),
    /// A thread panicked (a bug).
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    /// Live output was fenced off for good (the server failed).
    #[error("live output is fenced off (the server failed)")]
    Fenced,
}

/// Everything the engine needs.
pub struct EngineConfig {
    /// The session to play.
    pub stream: Arc<OutputStream>,
    /// The clip files, in the order of the stream's clips (one for an asset; read with
    /// pread).
    pub clips: Vec<File>,
    /// CLOCK_MONOTONIC instant of timeline time 0 (ns; negative = before boot, see
    /// [`super::clock::real_to_mono`]).
    pub origin_mono_ns: i64,
    /// First datagram to send.
    pub start_index: u64,
    /// The live sink.
    pub live: Option<Sink>,
    /// The muted sink.
    pub muted: Option<Sink>,
    /// Target at start.
    pub initial_target: Target,
    /// Sends later than this after their allowed time count as late wakes (ns).
    pub late_threshold_ns: u64,
    /// Ownership check for late live sends.
    pub gate: Option<OwnershipGate>,
    /// Events (late wakes, send errors, switches). Never blocks: events are dropped when
    /// the channel is full.
    pub events: Option<SyncSender<EngineEvent>>,
    /// Woken after every event is queued (for a mio driver).
    pub waker: Option<Arc<mio::Waker>>,
    /// Datagrams kept behind the sender for cheap rewinds (ns of stream).
    pub history_ns: u64,
    /// Datagrams rendered ahead of the sender (ns of stream).
    pub ahead_ns: u64,
    /// Longest single sleep (ns). A stop request or a rewinding [`EngineHandle::switch_at`]
    /// is seen at the next wake: at most one datagram spacing, or this bound if shorter.
    /// The failover secondary may lower it (e.g. 1 ms) to react faster on low-rate assets.
    pub max_sleep_ns: u64,
    /// Log late wakes and send errors (rate-limited) with `tracing`.
    pub log: bool,
    /// The pacer sleeps on the futex [`Doorbell`], so a switch, a new target or a stop
    /// cuts the sleep short (what the failover servers need). Off (`tandem play`, which
    /// never switches), it sleeps with a plain absolute `clock_nanosleep`, which costs
    /// measurably less per wake, and a stop is seen at the next wake (at most
    /// `max_sleep_ns` away).
    pub interruptible: bool,
    /// Check-ins, panic reports and injected faults for a supervisor (failover kernel).
    pub supervision: Option<Arc<Supervision>>,
    /// The reader's first fill of the ring at idle priority when the first datagram is
    /// due soon, see [`priority::quiet_fill_for`] (default: the process's `--quiet-startup`
    /// setting).
    pub quiet_fill: bool,
    /// `SCHED_FIFO` priority of the pacer thread where permitted (default: the process's
    /// `--rt-priority`, none).
    pub rt_priority: Option<u8>,
}

impl EngineConfig {
    /// Defaults: start at datagram 0, no sinks, target off, 500 us late threshold, 1 s of
    /// history, 3 s ahead (rides through a storage stall of most of a second), sleeps of at most 50 ms, logging on.
    /// `clips`: the files of the stream's clips, in order (one for an asset).
    pub fn new(stream: Arc<OutputStream>, clips: Vec<File>, origin_mono_ns: i64) -> EngineConfig {
        EngineConfig {
            stream,
            clips,
            origin_mono_ns,
            start_index: 0,
            live: None,
            muted: None,
            initial_target: Target::Off,
            late_threshold_ns: 500_000,
            gate: None,
            events: None,
            waker: None,
            history_ns: 1_000_000_000,
            ahead_ns: 3_000_000_000,
            max_sleep_ns: 50_000_000,
            log: true,
            interruptible: true,
            supervision: None,
            quiet_fill: priority::quiet_startup(),
            rt_priority: priority::rt_priority(),
        }
    }
}

/// What the handle and the sender thread share. The sender thread owns the sans-IO
/// [`Sender`]; other threads reach it only through the mailbox of [`Command`]s (read before
/// every send, so a stop of live output is seen by the very next one), the stop flag, and
/// the fence flag with its in-flight marker (a two-flag handshake, see
/// [`EngineControl::fence_live`]).
struct Shared {
    stop: AtomicBool,
    /// The target as the sender last published it, updated at once by the handle's own
    /// requests (so a caller reads back what it asked for).
    target: AtomicU8,
    /// Commands not yet seen by the sender; `pending` says the list is not empty. The
    /// sender publishes `target` under this lock, so a published value never predates a
    /// command already in the list.
    inbox: Mutex<Vec<Command>>,
    pending: AtomicBool,
    /// (last send decision, counters, last datagram handed to the kernel on the live target)
    progress: Mutex<Progress>,
    has_live: bool,
    has_muted: bool,
    /// Live output refused for good ([`EngineControl::fence_live`]).
    fenced: AtomicBool,
    /// Cuts the sender's sleep short for a switch, a new target or a stop.
    bell: Doorbell,
    /// `i + 1` while live datagram `i` is past the fence check and being sent; 0 otherwise
    /// ([`EngineControl::settled_last_live`]).
    in_flight: AtomicU64,
    /// Thread ids of the reader and the sender (0 until they run).
    tids: [AtomicI32; 2],
}

/// What the sender publishes for the handle.
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    last: Option<LastSent>,
    stats: EngineStats,
    last_live: Option<LastSent>,
}

impl Shared {
    fn fallback(&self) -> Target {
        if self.has_muted {
            Target::Muted
        } else {
            Target::Off
        }
    }

    fn check_sink(&self, t: Target) -> Result<(), EngineError> {
        crate::sender::check_target(
            self.has_live,
            self.has_muted,
            self.fenced.load(Ordering::Acquire),
            t,
        )
        .map_err(|e| match e {
            crate::sender::TargetError::Fenced => EngineError::Fenced,
            crate::sender::TargetError::NoOutput(t) => EngineError::NoSink(t),
        })
    }

    /// Posts a command for the sender; `then` runs under the same lock (a handle request
    /// updates the published target there).
    fn post(&self, c: Command, then: impl FnOnce(&AtomicU8) -> bool) -> bool {
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        inbox.push(c);
        self.pending.store(true, Ordering::Release);
        let r = then(&self.target);
        drop(inbox);
        self.bell.ring();
        r
    }

    /// Live drops to the fallback in the published target; whether it was live.
    fn drop_live(&self, target: &AtomicU8) -> bool {
        target
            .compare_exchange(
                Target::Live as u8,
                self.fallback() as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    fn progress(&self) -> Progress {
        *self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The schedule of a session, for the pacer (with a cursor over the PCR anchors: the
/// pacer asks datagram after datagram).
struct StreamSchedule(Arc<OutputStream>, std::cell::Cell<usize>);

impl Schedule for StreamSchedule {
    fn departure_ns(&self, i: u64) -> u64 {
        let mut hint = self.1.get();
        let d = self.0.departure_ns_hinted(i, &mut hint);
        self.1.set(hint);
        d
    }
    fn count(&self) -> Option<u64> {
        self.0.datagram_count()
    }
}

/// The playout engine (see the module documentation).
pub struct Engine;

impl Engine {
    /// Starts the reader and sender threads.
    pub fn start(cfg: EngineConfig) -> Result<EngineHandle, EngineError> {
        let stream = cfg.stream.clone();
        if let Some(count) = stream.datagram_count() {
            if cfg.start_index >= count {
                return Err(EngineError::PastEnd {
                    start: cfg.start_index,
                    count,
                });
            }
        }
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            target: AtomicU8::new(Target::Off as u8),
            inbox: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            progress: Mutex::new(Progress::default()),
            has_live: cfg.live.is_some(),
            has_muted: cfg.muted.is_some(),
            fenced: AtomicBool::new(false),
            bell: Doorbell::new(),
            in_flight: AtomicU64::new(0),
            tids: [AtomicI32::new(0), AtomicI32::new(0)],
        });
        shared.check_sink(cfg.initial_target)?;
        shared
            .target
            .store(cfg.initial_target as u8, Ordering::Release);

        // Ring sized from the stream's datagram rate.
        let per_sec = stream.bitrate() / (crate::ts::packet::DATAGRAM_PAYLOAD as f64 * 8.0);
        let ahead = ((per_sec * cfg.ahead_ns as f64 / 1e9).ceil() as u64).clamp(16, 1 << 15);
        let history = ((per_sec * cfg.history_ns as f64 / 1e9).ceil() as u64).clamp(16, 1 << 16);
        let first_due = cfg.origin_mono_ns as i128 + stream.departure_ns(cfg.start_index) as i128;
        let quiet = priority::quiet_fill_for(cfg.quiet_fill, first_due - mono_ns() as i128);
        let ring = Arc::new(
            Ring::new(
                ahead + history,
                ahead,
                cfg.start_index,
                stream.datagram_count(),
            )
            .with_quiet(quiet),
        );

        let reader = {
            let ring = ring.clone();
            let src = DatagramSource::with_sources(stream.clone(), cfg.clips);
            let sup = cfg.supervision.clone();
            let shared = shared.clone();
            // Every buffer the ring will hold, allocated here at once: grown one by one in
            // the reader thread, glibc extends that thread's arena a page at a time (an
            // mprotect call per three datagrams at start-up).
            let slot_len = src.stream().header_len() + crate::ts::packet::DATAGRAM_PAYLOAD;
            let spare: Vec<Vec<u8>> = (0..ahead + history + 1)
                .map(|_| Vec::with_capacity(slot_len))
                .collect();
            std::thread::Builder::new()
                .name("tandem-reader".into())
                .spawn(move || {
                    shared.tids[0].store(priority::tid(), Ordering::Relaxed);
                    if let Some(q) = ring.quiet() {
                        q.enter();
                    }
                    let run = std::panic::AssertUnwindSafe(|| {
                        reader_loop(src, spare, &ring, sup.as_deref())
                    });
                    if let Err(p) = std::panic::catch_unwind(run) {
                        let msg = panic_message(p.as_ref());
                        ring.fail(format!("the reader thread panicked: {msg}"));
                        if let Some(s) = &sup {
                            (s.on_panic)("reader", &msg);
                        }
                    }
                })
                .map_err(|e| EngineError::Spawn("reader", e))?
        };
        let sender = {
            let shared = shared.clone();
            let sup = cfg.supervision.as_deref();
            let shared2 = shared.clone();
            let ctx = SenderCtx {
                sender: Sender::new(
                    StreamSchedule(stream.clone(), Default::default()),
                    (cfg.origin_mono_ns as i128 + PACER_EPOCH_NS as i128).max(0) as u64,
                    cfg.start_index,
                    cfg.initial_target,
                    SenderConfig {
                        has_live: cfg.live.is_some(),
                        has_muted: cfg.muted.is_some(),
                        late_threshold_ns: cfg.late_threshold_ns,
                        max_sleep_ns: cfg.max_sleep_ns.max(1),
                        gate_after_ns: cfg.gate.as_ref().map(|g| g.after_ns),
                    },
                ),
                ring: ring.clone(),
                shared,
                live: cfg.live.map(|s| output(s, sup)),
                muted: cfg.muted.map(|s| output(s, sup)),
                gate: cfg.gate,
                events: cfg.events,
                waker: cfg.waker,
                log: cfg.log,
                interruptible: cfg.interruptible,
                supervision: cfg.supervision.clone(),
                published: cfg.initial_target,
            };
            let ring2 = ring.clone();
            let sup = cfg.supervision.clone();
            let rt = cfg.rt_priority;
            std::thread::Builder::new()
                .name("tandem-sender".into())
                .spawn(move || {
                    shared2.tids[1].store(priority::tid(), Ordering::Relaxed);
                    priority::pacer_thread(rt);
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_sender(ctx)))
                    {
                        Ok(r) => r,
                        Err(p) => {
                            ring2.stop();
                            if let Some(s) = &sup {
                                (s.on_panic)("pacer", &panic_message(p.as_ref()));
                            }
                            Err(EngineError::Panicked("sender"))
                        }
                    }
                })
                .map_err(|e| {
                    ring.stop();
                    EngineError::Spawn("sender", e)
                })?
        };
        Ok(EngineHandle {
            shared,
            ring,
            stream,
            start_index: cfg.start_index,
            origin_mono_ns: cfg.origin_mono_ns,
            sender: Some(sender),
            reader: Some(reader),
        })
    }
}

/// Control of a running engine (see the module documentation).
pub struct EngineHandle {
    shared: Arc<Shared>,
    ring: Arc<Ring>,
    stream: Arc<OutputStream>,
    start_index: u64,
    origin_mono_ns: i64,
    sender: Option<JoinHandle<Result<EngineStats, EngineError>>>,
    reader: Option<JoinHandle<()>>,
}

impl EngineHandle {
    /// The session being played.
    pub fn stream(&self) -> &Arc<OutputStream> {
        &self.stream
    }

    /// CLOCK_MONOTONIC instant of timeline time 0 (negative = before boot).
    pub fn origin_mono_ns(&self) -> i64 {
        self.origin_mono_ns
    }

    /// CLOCK_MONOTONIC instant datagram `i` is due (negative = before boot).
    pub fn due_mono_ns(&self, i: u64) -> i64 {
        (self.origin_mono_ns as i128 + self.stream.departure_ns(i) as i128)
            .clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    /// Thread ids of the reader and the sender (0 until the thread has started), e.g. to
    /// read their scheduling policy back.
    pub fn thread_ids(&self) -> (i32, i32) {
        (
            self.shared.tids[0].load(Ordering::Relaxed),
            self.shared.tids[1].load(Ordering::Relaxed),
        )
    }

    /// The reader's quiet first fill, when the engine started with one.
    pub fn quiet_fill(&self) -> Option<&Arc<QuietFill>> {
        self.ring.quiet()
    }

    /// The target in force now.
    pub fn target(&self) -> Target {
        Target::from_u8(self.shared.target.load(Ordering::Acquire))
    }

    /// Changes the target from the next send on (no rewind). Cancels a pending switch.
    pub fn set_target(&self, t: Target) -> Result<(), EngineError> {
        self.shared.check_sink(t)?;
        self.shared.post(Command::SetTarget(t), |target| {
            target.store(t as u8, Ordering::Release);
            true
        });
        Ok(())
    }

    /// Sends datagrams from `index` on to `t`. If `index` is ahead, the current target keeps
    /// the datagrams before it; if it is behind the sender, the sender rewinds to it (the
    /// datagrams between go out again, to `t`) and catches up at <= 2x the nominal rate.
    /// The switch is applied by the sender before its next datagram (at most one datagram
    /// spacing after this call).
    pub fn switch_at(&self, index: u64, t: Target) -> Result<(), EngineError> {
        self.shared.check_sink(t)?;
        self.shared
            .post(Command::SwitchAt { index, target: t }, |_| true);
        Ok(())
    }

    /// Where live output drops to: muted when this engine has a muted sink, else off.
    pub fn fallback(&self) -> Target {
        self.shared.fallback()
    }

    /// A planned hand-over's release: the datagrams before `index` may still go live, none
    /// from `index` on, whatever is asked later (see [`Command::ReleaseLiveAt`]); the
    /// sender reports [`SenderEvent::Released`] when it gets there.
    pub fn release_live_at(&self, index: u64) {
        self.shared.post(Command::ReleaseLiveAt { index }, |_| true);
    }

    /// Gives up a scheduled release ([`Command::CancelRelease`]).
    pub fn cancel_release(&self) {
        self.shared.post(Command::CancelRelease, |_| true);
    }

    /// Stops live output now: the very next send sees it. The target drops to muted (when
    /// a muted sink exists) or off, and a pending switch to live is cancelled. Returns
    /// whether the target was live.
    pub fn stop_live(&self) -> bool {
        let shared = &self.shared;
        shared.post(Command::StopLive, |t| shared.drop_live(t))
    }

    /// A cloneable control of this engine's live output for other threads (a supervisor).
    pub fn control(&self) -> EngineControl {
        EngineControl {
            shared: self.shared.clone(),
        }
    }

    /// The index of a datagram of this session still held in the ring (about one second
    /// behind and up to the ring's lead ahead of the sender) whose wire bytes equal
    /// `datagram`, received at `arrival_mono_ns`, given the `last` one named so. A failover
    /// server uses it to tell which datagram another sender last put on a raw `udp://` live
    /// group (no RTP sequence number); `None` when the bytes and the time leave more than
    /// one answer (rule: [`crate::failover::live_id`]).
    pub fn name_recent(
        &self,
        datagram: &[u8],
        last: Option<u64>,
        arrival_mono_ns: u64,
    ) -> Option<u64> {
        if let Some(next) = last.and_then(|l| l.checked_add(1)) {
            if self.ring.holds_equal(next, datagram) {
                return Some(next);
            }
        }
        let mut matches = Vec::new();
        self.ring.matches(datagram, &mut matches);
        let by = arrival_mono_ns as i128 + NAME_TOLERANCE_NS;
        crate::failover::live_id::pick(&matches, last, |i| (self.due_mono_ns(i) as i128) <= by)
    }

    /// The last datagram sent (index, monotonic time right before the send, target).
    pub fn last_sent(&self) -> Option<LastSent> {
        self.shared.progress().last
    }

    /// The last datagram actually handed to the kernel on the live target (a failed send
    /// does not count).
    pub fn last_live_sent(&self) -> Option<LastSent> {
        self.shared.progress().last_live
    }

    /// The datagram the sender handles next: after the last one sent (or the start index).
    /// A pending rewind is not reflected until the sender applies it.
    pub fn next_index(&self) -> u64 {
        self.last_sent().map_or(self.start_index, |l| l.index + 1)
    }

    /// Counters so far (published by the sender every [`STATS_EVERY`] datagrams, after
    /// a failed or refused send, and when it stops).
    pub fn stats(&self) -> EngineStats {
        let mut s = self.shared.progress().stats;
        s.underruns = self.ring.underruns();
        s
    }

    /// Asks the engine to stop after the datagram in flight.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.bell.ring();
        // A sender waiting for the reader (an underrun, or a hung reader) returns at once.
        self.ring.stop();
    }

    /// Whether the sender thread has ended (session over, stopped or failed).
    pub fn is_finished(&self) -> bool {
        self.sender.as_ref().map_or(true, |h| h.is_finished())
    }

    /// Waits for the threads and returns the final counters.
    pub fn join(mut self) -> Result<EngineStats, EngineError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<EngineStats, EngineError> {
        let result = match self.sender.take() {
            Some(h) => h.join().unwrap_or(Err(EngineError::Panicked("sender"))),
            None => Err(EngineError::Panicked("sender")),
        };
        self.ring.stop();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        result.map(|mut s| {
            s.underruns = self.ring.underruns();
            s
        })
    }
}

/// Control of an engine's live output from another thread (see [`EngineHandle::control`]).
#[derive(Clone)]
pub struct EngineControl {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EngineControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineControl").finish_non_exhaustive()
    }
}

impl EngineControl {
    /// Stops live output for good: the target drops to muted or off at the very next send,
    /// a pending switch to live is cancelled, and every later request for live output is
    /// refused ([`EngineError::Fenced`]). Returns whether the target was live.
    pub fn fence_live(&self) -> bool {
        // SeqCst, paired with the sender's `in_flight` store and fence load: either the
        // sender sees the fence, or `settled_last_live` sees its send in flight.
        self.shared.fenced.store(true, Ordering::SeqCst);
        let shared = &self.shared;
        shared.post(Command::FenceLive, |t| shared.drop_live(t))
    }

    /// The last datagram sent.
    pub fn last_sent(&self) -> Option<LastSent> {
        self.shared.progress().last
    }

    /// The last datagram actually handed to the kernel on the live target.
    pub fn last_live_sent(&self) -> Option<LastSent> {
        self.shared.progress().last_live
    }

    /// After [`fence_live`](EngineControl::fence_live): the index of the last datagram that
    /// went (or is going) to the live group, exact once a send that passed the fence check
    /// before the fence has completed (waited for up to `wait`, in 50 us sleeps). If that
    /// send is still in flight after `wait` (its thread preempted or hung inside it), its
    /// index counts as sent: a peer resuming after it may lose it, but never repeats it.
    pub fn settled_last_live(&self, wait: std::time::Duration) -> Option<u64> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let flight = self.shared.in_flight.load(Ordering::SeqCst);
            let last = self.last_live_sent().map(|l| l.index);
            if flight == 0 {
                return last;
            }
            if std::time::Instant::now() >= deadline {
                return Some(last.map_or(flight - 1, |l| l.max(flight - 1)));
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        if self.sender.is_some() {
            self.stop();
            let _ = self.finish();
        }
    }
}

/// A supervised reader checks in at least this often.
const CHECK_IN_NS: u64 = 5_000_000;

/// Sleeps in short slices until the ring (or engine) stops: an injected hang.
fn hang_until(stopped: impl Fn() -> bool) {
    while !stopped() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Where the reader thread waits for work: `None` ends the thread, `Some(None)` is a
/// check-in with nothing to do.
trait WorkWait {
    fn next(&mut self, ring: &Ring) -> Option<Option<Work>>;
}

/// Waits as long as it takes (no supervisor).
struct Unsupervised;

impl WorkWait for Unsupervised {
    fn next(&mut self, ring: &Ring) -> Option<Option<Work>> {
        ring.work().map(Some)
    }
}

/// Checks in with the supervisor at least every [`CHECK_IN_NS`].
struct CheckingIn<'a>(&'a Supervision);

impl WorkWait for CheckingIn<'_> {
    fn next(&mut self, ring: &Ring) -> Option<Option<Work>> {
        self.0.reader_alive.store(mono_ns(), Ordering::Relaxed);
        ring.work_within(Some(std::time::Duration::from_nanos(CHECK_IN_NS)))
    }
}

/// A reader that hangs from a monotonic instant on (`--inject reader-hang@S`): it stops
/// checking in and rendering until the engine stops.
struct HangingFrom<W> {
    inner: W,
    at_mono_ns: u64,
}

impl<W: WorkWait> WorkWait for HangingFrom<W> {
    fn next(&mut self, ring: &Ring) -> Option<Option<Work>> {
        if mono_ns() >= self.at_mono_ns {
            tracing::warn!("injected fault: the reader thread hangs");
            hang_until(|| ring.stopped());
            return None;
        }
        self.inner.next(ring)
    }
}

fn reader_loop(
    src: DatagramSource<File>,
    spare: Vec<Vec<u8>>,
    ring: &Ring,
    sup: Option<&Supervision>,
) {
    match sup {
        None => render_loop(src, spare, ring, Unsupervised),
        Some(s) if s.faults.reader_hang_at != u64::MAX => {
            let wait = HangingFrom {
                inner: CheckingIn(s),
                at_mono_ns: s.faults.reader_hang_at,
            };
            render_loop(src, spare, ring, wait)
        }
        Some(s) => render_loop(src, spare, ring, CheckingIn(s)),
    }
}

fn render_loop(
    mut src: DatagramSource<File>,
    mut spare: Vec<Vec<u8>>,
    ring: &Ring,
    mut wait: impl WorkWait,
) {
    let slot_len = src.stream().header_len() + crate::ts::packet::DATAGRAM_PAYLOAD;
    // Rendered datagrams of one batch; `spare` holds empty buffers (handed back by the
    // ring for reuse once their slot is overwritten).
    let mut batch: Vec<Vec<u8>> = Vec::new();
    loop {
        let w = match wait.next(ring) {
            None => return,
            Some(None) => continue,
            Some(Some(w)) => w,
        };
        for n in 0..w.count {
            let mut b = spare.pop().unwrap_or_else(|| Vec::with_capacity(slot_len));
            if let Err(e) = src.render(w.start + n, &mut b) {
                ring.fail(e.to_string());
                return;
            }
            batch.push(b);
        }
        ring.store(w, &mut batch);
        spare.append(&mut batch);
        if let Some(q) = ring.quiet().filter(|q| q.active() && ring.filled()) {
            q.ring_full();
        }
    }
}

/// The sender thread's shell around the sans-IO [`Sender`]: it sleeps, sends, publishes
/// and reports; every decision is the sender's.
struct SenderCtx {
    sender: Sender<StreamSchedule>,
    ring: Arc<Ring>,
    shared: Arc<Shared>,
    live: Option<Box<dyn Output>>,
    muted: Option<Box<dyn Output>>,
    gate: Option<OwnershipGate>,
    events: Option<SyncSender<EngineEvent>>,
    waker: Option<Arc<mio::Waker>>,
    log: bool,
    interruptible: bool,
    supervision: Option<Arc<Supervision>>,
    /// The target last published in [`Shared::target`].
    published: Target,
}

/// The pacer thread's clock and sleep. The real one reads CLOCK_MONOTONIC; an injected
/// `pacer-panic` or `pacer-hang` fault wraps it ([`FaultyClock`]), so nothing in the
/// sender's loop checks for faults.
trait PacerClock {
    /// CLOCK_MONOTONIC on the pacer's epoch.
    fn now(&self) -> u64;
}

struct RealClock;

impl PacerClock for RealClock {
    fn now(&self) -> u64 {
        mono_ns() + PACER_EPOCH_NS
    }
}

/// A pacer that panics, or hangs until the engine stops, from a monotonic instant on.
struct FaultyClock {
    panic_at: u64,
    hang_at: u64,
    shared: Arc<Shared>,
}

impl PacerClock for FaultyClock {
    fn now(&self) -> u64 {
        let now = mono_ns();
        if now >= self.panic_at {
            panic!("injected fault: pacer panic");
        }
        if now >= self.hang_at {
            tracing::warn!("injected fault: the pacer thread hangs");
            hang_until(|| self.shared.stop.load(Ordering::Acquire));
        }
        mono_ns() + PACER_EPOCH_NS
    }
}

/// Runs the sender loop on the real clock, or on the faulty one when a pacer fault is armed.
fn run_sender(ctx: SenderCtx) -> Result<EngineStats, EngineError> {
    let faults = ctx.supervision.as_ref().map(|s| s.faults);
    match faults.filter(|f| f.pacer_panic_at != u64::MAX || f.pacer_hang_at != u64::MAX) {
        Some(f) => {
            let clock = FaultyClock {
                panic_at: f.pacer_panic_at,
                hang_at: f.pacer_hang_at,
                shared: ctx.shared.clone(),
            };
            sender_loop(ctx, clock)
        }
        None => sender_loop(ctx, RealClock),
    }
}

impl SenderCtx {
    /// Sleeps until `until` (CLOCK_MONOTONIC), cut short by a ring after `ticket` when
    /// the engine is interruptible.
    fn sleep(&self, ticket: u32, until: u64) {
        if self.interruptible {
            self.shared.bell.sleep_until(ticket, until);
        } else {
            sleep_until_mono(until);
        }
    }

    fn emit(&self, e: EngineEvent) {
        if let Some(tx) = &self.events {
            if tx.try_send(e).is_ok() {
                if let Some(w) = &self.waker {
                    let _ = w.wake();
                }
            }
        }
    }

    /// Hands the mailbox's commands to the sender and publishes its target, under the
    /// mailbox lock (see [`Shared::inbox`]).
    fn sync(&mut self) {
        let mut inbox = self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
        for c in inbox.drain(..) {
            self.sender.command(c);
        }
        self.shared.pending.store(false, Ordering::Release);
        self.published = self.sender.target();
        self.shared
            .target
            .store(self.published as u8, Ordering::Release);
    }

    /// [`Self::sync`] when commands wait or the sender's target changed (one atomic load
    /// and a comparison otherwise).
    fn sync_if_pending(&mut self) -> bool {
        let due =
            self.shared.pending.load(Ordering::Acquire) || self.sender.target() != self.published;
        if due {
            self.sync();
        }
        due
    }

    /// A sleep until the pacer clock's `until`, with the supervisor told when the pacer
    /// will act again.
    fn sleep_pacer(&self, ticket: u32, until: u64) {
        let mono = until.saturating_sub(PACER_EPOCH_NS);
        if let Some(s) = &self.supervision {
            s.pacer_back_by(mono);
        }
        self.sleep(ticket, mono);
    }

    /// Hands the sender's events on as engine events, with (rate-limited) log lines.
    fn report(&mut self, logs: &mut Logs) {
        while let Some(e) = self.sender.poll_event() {
            if self.log {
                self.log_event(&e, logs);
            }
            self.emit(EngineEvent::Sender(e));
        }
    }

    fn log_event(&self, e: &SenderEvent, logs: &mut Logs) {
        match e {
            SenderEvent::Late {
                index,
                lateness_ns,
                behind_ns,
            } => {
                if let Some(quiet) = logs.late.allow(logs.now) {
                    tracing::warn!(
                        index,
                        late_us = lateness_ns / 1000,
                        behind_us = behind_ns / 1000,
                        more = quiet,
                        "pacer woke late; catching up at <= 2x rate"
                    );
                }
            }
            SenderEvent::SendError {
                index,
                target,
                message,
                ..
            } => {
                if let Some(quiet) = logs.err.allow(logs.now) {
                    let out = match target {
                        Target::Live => self.live.as_ref(),
                        _ => self.muted.as_ref(),
                    };
                    let dest = out.map(|o| o.dest().to_string()).unwrap_or_default();
                    tracing::warn!(index, dest = %dest, error = %message, more = quiet, "send failed");
                }
            }
            SenderEvent::GateClosed {
                index, behind_ns, ..
            } => tracing::warn!(
                index,
                behind_us = behind_ns / 1000,
                "ownership gate refused a late live send; live output stopped"
            ),
            SenderEvent::Switched { .. } | SenderEvent::Released { .. } => {}
        }
    }

    /// Publishes what was sent for the handle: one lock per datagram. The last live
    /// datagram is recorded before `in_flight` clears (a fence settling in between must
    /// not read an older one); the counters are published every STATS_EVERY datagrams,
    /// after a failure or a refused send, and at the end.
    fn publish(&self, i: u64, force_stats: bool) {
        let mut p = self
            .shared
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        p.last = self.sender.last().map(on_mono);
        p.last_live = self.sender.last_live().map(on_mono);
        let st = self.sender.stats();
        if force_stats || st.gated != p.stats.gated || i % STATS_EVERY == 0 {
            p.stats = engine_stats(st);
        }
    }
}

/// A sender's record on the monotonic clock.
fn on_mono(l: crate::sender::LastSent) -> LastSent {
    LastSent {
        index: l.index,
        mono_ns: l.at_ns.saturating_sub(PACER_EPOCH_NS),
        target: l.target,
    }
}

fn engine_stats(s: crate::sender::SenderStats) -> EngineStats {
    EngineStats {
        pacer: s.pacer,
        sent_muted: s.sent_muted,
        sent_live: s.sent_live,
        send_errors: s.send_errors,
        gated: s.gated,
        underruns: 0,
        first_index: s.first_index,
    }
}

/// Rate-limited log of a recurring condition.
struct LogLimiter {
    last_ns: u64,
    quiet: u64,
}

impl LogLimiter {
    fn new() -> LogLimiter {
        LogLimiter {
            last_ns: 0,
            quiet: 0,
        }
    }

    /// Whether to log now; returns how many were not logged since the last line.
    fn allow(&mut self, now: u64) -> Option<u64> {
        if self.last_ns == 0 || now.saturating_sub(self.last_ns) >= LOG_INTERVAL_NS {
            self.last_ns = now;
            Some(std::mem::take(&mut self.quiet))
        } else {
            self.quiet += 1;
            None
        }
    }
}

/// The log limiters of a sender loop, and the instant of the events being reported.
struct Logs {
    late: LogLimiter,
    err: LogLimiter,
    now: u64,
}

fn sender_loop(mut ctx: SenderCtx, clock: impl PacerClock) -> Result<EngineStats, EngineError> {
    if !set_thread_timer_slack_1ns() {
        tracing::debug!("PR_SET_TIMERSLACK refused; wakes may be up to 50 us late");
    }
    let mut logs = Logs {
        late: LogLimiter::new(),
        err: LogLimiter::new(),
        now: 0,
    };
    let mut after_send: Option<u64> = None;
    let result = loop {
        // Read before checking stop and commands: a ring after this point cuts the sleep.
        let ticket = ctx.shared.bell.ticket();
        if ctx.shared.stop.load(Ordering::Acquire) {
            break Ok(());
        }
        if ctx.sync_if_pending() {
            // A command (a rewinding switch, say) may move the next deadline.
            after_send = None;
        }
        // Right after a send, the sleep until the next datagram was planned with the
        // send's own clock reading; a send is only ever decided on a fresh one.
        if let Some(until) = after_send.take() {
            ctx.sleep_pacer(ticket, until);
            continue;
        }
        let now = clock.now();
        if ctx.shared.stop.load(Ordering::Acquire) {
            // Stopped while the clock was read (an injected hang ends so).
            break Ok(());
        }
        if let Some(s) = &ctx.supervision {
            s.pacer_back_by(now - PACER_EPOCH_NS);
        }
        let i = match ctx.sender.poll(now) {
            Next::Done => break Ok(()),
            Next::Sleep(t) => {
                ctx.sync_if_pending();
                ctx.report(&mut logs);
                ctx.sleep_pacer(ticket, t);
                continue;
            }
            Next::Due(i) => i,
        };
        let dgram = match ctx.ring.fetch(i) {
            Ok(f) => f,
            Err(FetchError::Stopped) => break Ok(()),
            Err(FetchError::Reader(e)) => break Err(EngineError::Reader(e)),
        };
        // A request posted while the datagram was fetched is seen by this send.
        ctx.sync_if_pending();
        // The fetch takes well under a microsecond unless it waited for the reader: only
        // then is the clock read again; a gated live send reads it afresh (the gate measures
        // the lateness right before the send, so a stall after the decision is caught too).
        let gated_live = ctx.gate.is_some() && ctx.sender.target() == Target::Live;
        let mut t_send = if dgram.waited || gated_live {
            clock.now()
        } else {
            now
        };
        let mut prepared = ctx.sender.prepare(i, t_send);
        if let Prepared::AskGate(check) = prepared {
            let g = ctx.gate.as_ref().expect("a gate is configured when asked");
            let ok = (g.check)(GateCheck {
                now_ns: check.now_ns - PACER_EPOCH_NS,
                ..check
            });
            ctx.sender.gate_answer(ok);
            if ok {
                t_send = clock.now();
            }
            ctx.sync();
            prepared = ctx.sender.prepare(i, t_send);
        }
        if prepared == Prepared::Send(Target::Live) {
            // The fence handshake with `EngineControl::fence_live` (SeqCst both sides).
            ctx.shared.in_flight.store(i + 1, Ordering::SeqCst);
            if ctx.shared.fenced.load(Ordering::SeqCst) {
                ctx.sender.fence_seen();
                ctx.sync();
                prepared = ctx.sender.prepare(i, t_send);
            }
        }
        let outcome = match prepared {
            Prepared::Send(Target::Live) => ctx.live.as_ref().map(|o| o.send(&dgram.bytes)),
            Prepared::Send(_) => ctx.muted.as_ref().map(|o| o.send(&dgram.bytes)),
            Prepared::Skip | Prepared::AskGate(_) => None,
        };
        let outcome = match outcome {
            None => SendOutcome::Skipped,
            Some(Ok(())) => SendOutcome::Sent,
            Some(Err(e)) => SendOutcome::Failed {
                kind: e.kind(),
                message: e.to_string(),
            },
        };
        let failed = matches!(outcome, SendOutcome::Failed { .. });
        after_send = ctx.sender.sent(i, t_send, outcome);
        ctx.publish(i, failed);
        ctx.shared.in_flight.store(0, Ordering::Release);
        ctx.sync_if_pending();
        logs.now = t_send;
        ctx.report(&mut logs);
    };
    ctx.ring.stop();
    {
        let mut p = ctx
            .shared
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        p.stats = engine_stats(ctx.sender.stats());
    }
    ctx.emit(EngineEvent::Finished);
    result.map(|()| engine_stats(ctx.sender.stats()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::sockets::{receiver, sender, SenderOptions};
    use crate::net::url::Framing;
    use crate::stream::testutil::gather;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn group(n: u32) -> SocketAddrV4 {
        let pid = std::process::id();
        SocketAddrV4::new(
            Ipv4Addr::new(239, 255, 91, (pid % 200) as u8 + n as u8),
            20_000 + (pid % 20_000) as u16 + n as u16,
        )
    }

    fn setup(loops: Option<u64>) -> (Vec<u8>, Arc<OutputStream>, File) {
        crate::stream::testutil::engine_session("engine", Framing::Rtp, loops)
    }

    #[test]
    fn plays_a_finite_session_to_live() {
        let (bytes, s, file) = setup(Some(2));
        let g = group(0);
        let rx = receiver(g, Ipv4Addr::LOCALHOST, Some(4 << 20)).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut cfg = EngineConfig::new(s.clone(), vec![file], mono_ns() as i64 + 20_000_000);
        cfg.live = Some(Sink {
            socket: sender(g, &SenderOptions::new(Ipv4Addr::LOCALHOST)).unwrap(),
            dest: g,
        });
        cfg.initial_target = Target::Live;
        cfg.log = false;
        let h = Engine::start(cfg).unwrap();
        let count = s.datagram_count().unwrap();
        let mut got = vec![];
        let mut buf = [0u8; 2048];
        while (got.len() as u64) < count {
            match rx.recv(&mut buf) {
                Ok(n) => got.push(buf[..n].to_vec()),
                Err(e) => panic!("after {} datagrams: {e}; {:?}", got.len(), h.stats()),
            }
        }
        let st = h.join().unwrap();
        assert_eq!(st.pacer.sent, count);
        assert_eq!(st.sent_live, count);
        let mut want = Vec::new();
        for (i, d) in got.iter().enumerate() {
            s.render(i as u64, &gather(&bytes, &s, i as u64), &mut want)
                .unwrap();
            assert_eq!(d, &want, "datagram {i}");
        }
    }

    #[test]
    fn switch_with_rewind_stop_live_and_gate() {
        let (_, s, file) = setup(None);
        let (gl, gm) = (group(1), group(2));
        let opts = SenderOptions::new(Ipv4Addr::LOCALHOST);
        let rx_live = receiver(gl, Ipv4Addr::LOCALHOST, Some(4 << 20)).unwrap();
        rx_live
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let gate_calls = Arc::new(AtomicU64::new(0));
        let mut cfg = EngineConfig::new(s.clone(), vec![file], mono_ns() as i64 + 10_000_000);
        cfg.live = Some(Sink {
            socket: sender(gl, &opts).unwrap(),
            dest: gl,
        });
        cfg.muted = Some(Sink {
            socket: sender(gm, &opts).unwrap(),
            dest: gm,
        });
        cfg.initial_target = Target::Muted;
        cfg.log = false;
        let calls = gate_calls.clone();
        cfg.gate = Some(OwnershipGate {
            after_ns: 1_000_000_000_000, // never in this test unless forced below
            check: Arc::new(move |_| {
                calls.fetch_add(1, Ordering::Relaxed);
                false
            }),
        });
        let (tx, rx_events) = std::sync::mpsc::sync_channel(1024);
        cfg.events = Some(tx);
        let h = Engine::start(cfg).unwrap();
        // Wait until a few hundred datagrams went to muted.
        while h.last_sent().is_none_or_lt(300) {
            std::thread::sleep(Duration::from_millis(2));
        }
        let last = h.last_sent().unwrap();
        assert_eq!(last.target, Target::Muted);
        let from = last.index.saturating_sub(50);
        h.switch_at(from, Target::Live).unwrap();
        // The first live datagram is `from` (rewound), then consecutive ones.
        let mut buf = [0u8; 2048];
        let seq0 = s.rtp_session().unwrap().sequence_base;
        let mut seqs = vec![];
        for _ in 0..200 {
            let n = rx_live.recv(&mut buf).unwrap();
            let (hdr, _) = crate::stream::rtp::RtpHeader::parse(&buf[..n]).unwrap();
            seqs.push(hdr.sequence.wrapping_sub(seq0) as u64);
        }
        assert_eq!(seqs[0], from % 65536);
        assert!(seqs.windows(2).all(|w| w[1] == (w[0] + 1) % 65536));
        let switched = rx_events
            .try_iter()
            .find_map(|e| match e {
                EngineEvent::Sender(SenderEvent::Switched {
                    index,
                    target: Target::Live,
                    rewound,
                }) => Some((index, rewound)),
                _ => None,
            })
            .unwrap();
        assert_eq!(switched.0, from);
        assert!(switched.1 >= 50);
        assert!(h.stop_live());
        assert_eq!(h.target(), Target::Muted);
        assert!(!h.stop_live());
        assert!(matches!(h.set_target(Target::Live), Ok(())));
        h.stop();
        let st = h.join().unwrap();
        assert!(st.pacer.seeks >= 1);
        assert!(st.sent_live >= 200);
        assert_eq!(gate_calls.load(Ordering::Relaxed), st.gated);
    }

    trait LastExt {
        fn is_none_or_lt(&self, n: u64) -> bool;
    }
    impl LastExt for Option<LastSent> {
        fn is_none_or_lt(&self, n: u64) -> bool {
            self.map(|l| l.index < n).unwrap_or(true)
        }
    }

    #[test]
    fn switch_ahead_takes_effect_exactly_at_its_index() {
        let (_, s, file) = setup(None);
        let g = group(4);
        let rx = receiver(g, Ipv4Addr::LOCALHOST, Some(4 << 20)).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut cfg = EngineConfig::new(s.clone(), vec![file], mono_ns() as i64 + 50_000_000);
        cfg.live = Some(Sink {
            socket: sender(g, &SenderOptions::new(Ipv4Addr::LOCALHOST)).unwrap(),
            dest: g,
        });
        cfg.log = false;
        cfg.max_sleep_ns = 1_000_000;
        let h = Engine::start(cfg).unwrap();
        assert_eq!(h.target(), Target::Off);
        h.switch_at(120, Target::Live).unwrap();
        let mut buf = [0u8; 2048];
        let n = rx.recv(&mut buf).unwrap();
        let (hdr, _) = crate::stream::rtp::RtpHeader::parse(&buf[..n]).unwrap();
        let base = s.rtp_session().unwrap().sequence_base;
        assert_eq!(hdr.sequence.wrapping_sub(base), 120);
        assert_eq!(h.target(), Target::Live);
        h.stop();
        let last = h.last_sent().unwrap();
        assert!(h.next_index() > last.index);
        let st = h.join().unwrap();
        assert_eq!(st.first_index, Some(0));
        assert_eq!(st.pacer.seeks, 0);
    }

    /// The index read after a fence is exactly the last datagram the live group got: a
    /// send that passed the fence check before the fence is waited for, none follows.
    #[test]
    fn fence_settles_on_the_last_live_datagram() {
        for round in 0..3u64 {
            let (_, s, file) = setup(None);
            let g = group(5);
            let rx = receiver(g, Ipv4Addr::LOCALHOST, Some(4 << 20)).unwrap();
            rx.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut cfg = EngineConfig::new(s.clone(), vec![file], mono_ns() as i64 + 5_000_000);
            cfg.live = Some(Sink {
                socket: sender(g, &SenderOptions::new(Ipv4Addr::LOCALHOST)).unwrap(),
                dest: g,
            });
            cfg.initial_target = Target::Live;
            cfg.log = false;
            let h = Engine::start(cfg).unwrap();
            std::thread::sleep(Duration::from_millis(30 + 7 * round));
            let c = h.control();
            assert!(c.fence_live());
            let last = c.settled_last_live(Duration::from_millis(1)).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let base = s.rtp_session().unwrap().sequence_base;
            let mut buf = [0u8; 2048];
            let mut got = None;
            while let Ok(n) = rx.recv(&mut buf) {
                let (hdr, _) = crate::stream::rtp::RtpHeader::parse(&buf[..n]).unwrap();
                got = Some(hdr.sequence.wrapping_sub(base) as u64);
            }
            assert_eq!(got, Some(last), "round {round}");
            assert_eq!(h.last_live_sent().map(|l| l.index), Some(last));
            h.stop();
            let _ = h.join();
        }
    }

    #[test]
    fn gate_refusal_drops_live() {
        let (_, s, file) = setup(None);
        let g = group(3);
        // Origin 1 s in the past from datagram 0: every send is far behind, so the gate
        // is asked at the first live send.
        let mut cfg = EngineConfig::new(s, vec![file], mono_ns() as i64 - 1_000_000_000);
        cfg.live = Some(Sink {
            socket: sender(g, &SenderOptions::new(Ipv4Addr::LOCALHOST)).unwrap(),
            dest: g,
        });
        cfg.initial_target = Target::Live;
        cfg.log = false;
        cfg.gate = Some(OwnershipGate {
            after_ns: 10_000_000,
            check: Arc::new(|c| c.late_ns < 10_000_000 && c.behind_ns < 10_000_000),
        });
        let h = Engine::start(cfg).unwrap();
        while h.last_sent().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(h.target(), Target::Off);
        h.stop();
        let st = h.join().unwrap();
        assert_eq!(st.gated, 1);
        assert_eq!(st.sent_live, 0);
    }

    #[test]
    fn bad_configs_are_errors() {
        let (_, s, file) = setup(Some(1));
        let mut cfg = EngineConfig::new(s.clone(), vec![file], mono_ns() as i64);
        cfg.initial_target = Target::Live;
        assert!(matches!(
            Engine::start(cfg),
            Err(EngineError::NoSink(Target::Live))
        ));
        let (_, _, file) = setup(Some(1));
        let mut cfg = EngineConfig::new(s.clone(), vec![file], mono_ns() as i64);
        cfg.start_index = s.datagram_count().unwrap();
        assert!(matches!(
            Engine::start(cfg),
            Err(EngineError::PastEnd { .. })
        ));
    }

    /// A server names the datagrams it hears on a raw UDP live group by their bytes
    /// (`name_recent`); the 25 fps fixture pads with null packets, so some datagrams are
    /// seven nulls and repeat a few datagrams apart. Whatever the position it starts from,
    /// a name is never wrong: unknown until the bytes are unique, then exact.
    #[test]
    fn names_heard_datagrams_right_where_bytes_repeat() {
        let dir = std::env::temp_dir().join(format!("tandem-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cbr-25fps.ts");
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/cbr-25fps.ts"),
            &path,
        )
        .unwrap();
        let asset = crate::net::failover::session::Asset::load(&path).unwrap();
        let s = Arc::new(asset.stream("names".into(), Framing::Udp, Some(1)).unwrap());
        let file = File::open(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let count = s.datagram_count().unwrap();
        let wire: Vec<Vec<u8>> = (0..count)
            .map(|i| {
                let mut d = Vec::new();
                s.render(i, &gather(&bytes, &s, i), &mut d).unwrap();
                d
            })
            .collect();
        // The case that matters is there: identical datagrams a few apart.
        let near_twins = (0..500)
            .filter(|&i| (i + 1..i + 7).any(|j| wire[j] == wire[i]))
            .count();
        assert!(
            near_twins > 10,
            "{near_twins} datagrams with a twin <= 6 apart"
        );
        // Nothing due for 10 s: the reader renders the whole session into the ring.
        let mut cfg = EngineConfig::new(s.clone(), vec![file], mono_ns() as i64 + 10_000_000_000);
        cfg.ahead_ns = 10_000_000_000;
        cfg.log = false;
        let h = Engine::start(cfg).unwrap();
        // The reader renders ahead in batches: the first 500 datagrams (2 s) will do.
        let count = count.min(500);
        let t0 = std::time::Instant::now();
        while !h.ring.holds_equal(count - 1, &wire[count as usize - 1]) {
            assert!(t0.elapsed() < Duration::from_secs(5), "ring not filled");
            std::thread::sleep(Duration::from_millis(10));
        }
        let arrival = |i: u64, late_ns: u64| h.due_mono_ns(i) as u64 + late_ns;
        for late_ns in [50_000, 20_000_000] {
            for start in 0..count {
                // Heard from `start` on, in order, `late_ns` after each is due.
                let mut last = None;
                for i in start..count {
                    let got = h.name_recent(&wire[i as usize], last, arrival(i, late_ns));
                    assert!(
                        got.is_none_or(|g| g == i),
                        "datagram {i} (heard from {start}, {late_ns} ns late) named {got:?}"
                    );
                    if last.is_some() {
                        assert_eq!(got, Some(i));
                    }
                    last = got.or(last);
                }
                assert!(last.is_some(), "nothing named from {start} on");
            }
        }
        h.stop();
        h.join().unwrap();
    }
}
