//! The stall watcher: a thread of the benchmark that sleeps 1 ms at a time (absolute
//! `clock_nanosleep`, 1 ns timer slack) and records every wake that came at least the
//! threshold late. Such a wake means the whole machine (or this process) did not run: the
//! witness for "a machine stall spoiled this trial". About 1000 short wakes a second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::bench::stall::StallLog;
use crate::net::clock::{mono_ns, real_ns, set_thread_timer_slack_1ns, sleep_until_mono};

const TICK_NS: u64 = 1_000_000;

/// A running watcher.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<StallLog>>,
    handle: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching; stalls of at least `threshold_ns` are recorded.
    pub fn start(threshold_ns: u64) -> std::io::Result<Watcher> {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(StallLog::default()));
        let (s, l) = (stop.clone(), log.clone());
        let handle = std::thread::Builder::new()
            .name("bench-stall-watch".into())
            .spawn(move || {
                set_thread_timer_slack_1ns();
                let mut next = mono_ns() + TICK_NS;
                while !s.load(Ordering::Relaxed) {
                    sleep_until_mono(next);
                    let now = mono_ns();
                    let late = now.saturating_sub(next);
                    if late >= threshold_ns {
                        if let Ok(mut g) = l.lock() {
                            g.record(real_ns(), late);
                        }
                    }
                    next = if late > TICK_NS {
                        now + TICK_NS
                    } else {
                        next + TICK_NS
                    };
                }
            })?;
        Ok(Watcher {
            stop,
            log,
            handle: Some(handle),
        })
    }

    /// A copy of the stalls so far.
    pub fn snapshot(&self) -> StallLog {
        self.log.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
