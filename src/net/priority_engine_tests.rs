//! The engine's threads at the priorities `net::priority` documents: the reader's first fill
//! at idle CPU and I/O priority, then back; the pacer never at idle priority; the pacer at
//! SCHED_FIFO with `rt_priority` where permitted. Read back from the kernel by thread id; no
//! timing assertions.

use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clock::mono_ns;
use super::engine::{Engine, EngineConfig, EngineHandle};
use super::priority::{
    can_leave_idle, cpu_policy, io_priority, CpuPolicy, FillEnd, IOPRIO_CLASS_IDLE,
};
use crate::net::url::Framing;
use crate::stream::testutil::engine_session;
use crate::stream::OutputStream;

fn setup() -> (Arc<OutputStream>, File) {
    let (_, s, file) = engine_session("prio", Framing::Udp, None);
    (s, file)
}

/// Polls `f` for up to 60 s (a slow machine only makes this slower, never wrong; an idle
/// priority thread on a fully loaded host gets very little CPU).
fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "timed out");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn tids(h: &EngineHandle) -> (i32, i32) {
    wait_for(|| {
        let (r, s) = h.thread_ids();
        (r != 0 && s != 0).then_some((r, s))
    })
}

#[test]
fn the_first_fill_runs_at_idle_priority_then_the_reader_comes_back() {
    let (s, file) = setup();
    // First datagram due in 400 ms; a 200 ms ring fills long before on a machine that
    // is not overloaded (else the first fetch ends the fill: either way it ends).
    let mut cfg = EngineConfig::new(s, vec![file], mono_ns() as i64 + 400_000_000);
    cfg.ahead_ns = 200_000_000;
    cfg.quiet_fill = true;
    cfg.rt_priority = None;
    cfg.log = false;
    let before = (cpu_policy(0).unwrap(), io_priority(0).unwrap());
    let h = Engine::start(cfg).unwrap();
    let (reader, sender) = tids(&h);
    let q = h.quiet_fill().expect("a quiet fill").clone();
    let end = wait_for(|| Some(q.end()).filter(|e| *e != FillEnd::Running));
    assert!(
        matches!(end, FillEnd::RingFull | FillEnd::FirstFetch),
        "{end:?}"
    );
    let (cpu, io) = q.seen_while_quiet().expect("the reader lowered itself");
    assert_eq!(io.class(), IOPRIO_CLASS_IDLE, "first fill not at idle I/O");
    if can_leave_idle() {
        assert_eq!(cpu, CpuPolicy::Idle, "first fill not at SCHED_IDLE");
    } else {
        assert_ne!(
            cpu,
            CpuPolicy::Idle,
            "lowered a reader that cannot come back"
        );
    }
    // Back to what the engine's threads inherited, read back by thread id.
    assert_eq!(cpu_policy(reader).unwrap(), before.0, "reader left at idle");
    assert_eq!(
        io_priority(reader).unwrap(),
        before.1,
        "reader's I/O left at idle"
    );
    assert_ne!(cpu_policy(sender).unwrap(), CpuPolicy::Idle);
    assert_ne!(io_priority(sender).unwrap().class(), IOPRIO_CLASS_IDLE);
    h.stop();
    h.join().unwrap();
}

#[test]
fn the_first_send_ends_a_quiet_fill_and_the_pacer_is_never_idle() {
    let (s, file) = setup();
    // 3 s of a 13.5 Mb/s stream ahead, first datagram due 30 ms after the start: whichever
    // comes first ends the quiet fill; both leave every thread at its normal priority.
    let mut cfg = EngineConfig::new(s, vec![file], mono_ns() as i64 + 30_000_000);
    cfg.quiet_fill = true;
    cfg.rt_priority = None;
    cfg.log = false;
    let h = Engine::start(cfg).unwrap();
    let (reader, sender) = tids(&h);
    let q = h.quiet_fill().expect("a quiet fill").clone();
    let end = wait_for(|| Some(q.end()).filter(|e| *e != FillEnd::Running));
    assert!(
        matches!(end, FillEnd::RingFull | FillEnd::FirstFetch),
        "{end:?}"
    );
    wait_for(|| (h.stats().pacer.sent > 0 || h.next_index() > 0).then_some(()));
    assert_ne!(cpu_policy(reader).unwrap(), CpuPolicy::Idle);
    assert_ne!(io_priority(reader).unwrap().class(), IOPRIO_CLASS_IDLE);
    assert_ne!(cpu_policy(sender).unwrap(), CpuPolicy::Idle);
    h.stop();
    h.join().unwrap();
}

#[test]
fn no_quiet_fill_when_off_joining_in_progress_or_starting_late() {
    let (s, file) = setup();
    let mut cfg = EngineConfig::new(s.clone(), vec![file], mono_ns() as i64 + 200_000_000);
    cfg.quiet_fill = false;
    cfg.log = false;
    let h = Engine::start(cfg).unwrap();
    assert!(h.quiet_fill().is_none());
    h.stop();
    h.join().unwrap();
    // Due in a minute: the fill would be exposed to starvation for longer than the
    // supervisor's reader deadline.
    let (_, file) = setup();
    let mut cfg = EngineConfig::new(s.clone(), vec![file], mono_ns() as i64 + 60_000_000_000);
    cfg.quiet_fill = true;
    cfg.log = false;
    let h = Engine::start(cfg).unwrap();
    assert!(h.quiet_fill().is_none());
    h.stop();
    h.join().unwrap();
    let (_, file) = setup();
    let mut cfg = EngineConfig::new(s, vec![file], mono_ns() as i64 - 1_000_000_000);
    cfg.quiet_fill = true;
    cfg.start_index = 100;
    cfg.log = false;
    let h = Engine::start(cfg).unwrap();
    assert!(
        h.quiet_fill().is_none(),
        "a session in progress needs its reader now"
    );
    h.stop();
    h.join().unwrap();
}

#[test]
fn rt_priority_is_applied_to_the_pacer_where_permitted() {
    // Whether this process may use SCHED_FIFO at all (root here; refused unprivileged).
    let permitted = std::thread::spawn(|| super::priority::pacer_thread(Some(1)))
        .join()
        .unwrap();
    let (s, file) = setup();
    let mut cfg = EngineConfig::new(s, vec![file], mono_ns() as i64 + 200_000_000);
    cfg.rt_priority = Some(1);
    cfg.quiet_fill = false;
    cfg.log = false;
    let h = Engine::start(cfg).unwrap();
    let (reader, sender) = tids(&h);
    let want = if permitted {
        CpuPolicy::Fifo(1)
    } else {
        cpu_policy(0).unwrap()
    };
    let got = wait_for(|| {
        let p = cpu_policy(sender).unwrap();
        (p == want).then_some(p)
    });
    assert_eq!(got, want);
    // Only the pacer: the reader keeps the normal policy.
    assert!(!matches!(cpu_policy(reader).unwrap(), CpuPolicy::Fifo(_)));
    h.stop();
    h.join().unwrap();
}
