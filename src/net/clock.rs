//! The clocks: CLOCK_MONOTONIC for pacing, CLOCK_REALTIME for shared origins (`--start-at`),
//! absolute sleeps with `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)` and 1 ns timer
//! slack (`PR_SET_TIMERSLACK`, prctl(2)) for microsecond-accurate wakes.
//!
//! A per-process clock offset (`--clock-offset-ms`, set once at startup) is added to every
//! realtime reading: the failover lab uses it to give two servers on one machine skewed
//! clocks.

use std::sync::atomic::{AtomicI64, Ordering};

static REAL_OFFSET_NS: AtomicI64 = AtomicI64::new(0);

/// Sets the offset added to every [`real_ns`] reading (milliseconds, may be negative).
pub fn set_clock_offset_ms(ms: i64) {
    REAL_OFFSET_NS.store(ms.saturating_mul(1_000_000), Ordering::Relaxed);
}

/// The offset currently applied to [`real_ns`], in nanoseconds.
pub fn clock_offset_ns() -> i64 {
    REAL_OFFSET_NS.load(Ordering::Relaxed)
}

fn gettime(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes to it. The
    // clocks used here always exist on Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// CLOCK_MONOTONIC in nanoseconds.
pub fn mono_ns() -> u64 {
    gettime(libc::CLOCK_MONOTONIC)
}

/// CLOCK_REALTIME in nanoseconds since the Unix epoch, plus the process clock offset.
pub fn real_ns() -> u64 {
    let raw = gettime(libc::CLOCK_REALTIME) as i64;
    raw.saturating_add(clock_offset_ns()).max(0) as u64
}

/// Converts a realtime instant (unix ns, offset applied) to the monotonic clock, by
/// reading both clocks back to back (the pair with the tightest bracket of three tries).
/// Signed: an instant before the monotonic clock's zero (before boot) is negative, which
/// happens when a machine that rebooted joins a session started long ago.
pub fn real_to_mono(real: u64) -> i64 {
    let mut best: Option<(u64, u64, u64)> = None;
    for _ in 0..3 {
        let m0 = mono_ns();
        let r = real_ns();
        let m1 = mono_ns();
        let width = m1 - m0;
        if best.map_or(true, |(w, _, _)| width < w) {
            best = Some((width, m0 + width / 2, r));
        }
    }
    let (_, m, r) = best.unwrap_or((0, mono_ns(), real_ns()));
    (m as i128 + real as i128 - r as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Sleeps until CLOCK_MONOTONIC reaches `deadline_ns` (absolute; returns at once if it
/// has passed). Interrupted sleeps resume.
pub fn sleep_until_mono(deadline_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    loop {
        // The system call itself, not glibc's wrapper: the wrapper is a thread
        // cancellation point (two extra calls around every sleep) and nothing here is
        // ever cancelled.
        // SAFETY: `ts` is a valid timespec that outlives the call; with TIMER_ABSTIME the
        // remainder pointer is unused and may be null (clock_nanosleep(2)).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_clock_nanosleep,
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts as *const libc::timespec,
                std::ptr::null_mut::<libc::timespec>(),
            )
        };
        // The raw call returns -errno through errno: 0 on success, -1 with EINTR when a
        // signal handler ran (sleep again to the same absolute deadline).
        if rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// Sets the calling thread's timer slack to 1 ns so absolute sleeps wake on time
/// (default slack is 50 us). Returns whether the kernel accepted it.
pub fn set_thread_timer_slack_1ns() -> bool {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and only changes a per-thread
    // scheduling attribute; no memory is passed.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_origin_maps_to_monotonic() {
        let now_real = real_ns();
        let now_mono = mono_ns();
        let m = real_to_mono(now_real + 2_000_000_000);
        // Near mono + 2 s (loose: a shared machine may stall; this checks sign and scale).
        let d = m as i128 - (now_mono as i128 + 2_000_000_000);
        assert!(d.abs() < 1_000_000_000, "{d}");
        // Before boot: negative, not clamped.
        let before_boot = real_to_mono(now_real - now_mono - 3_600_000_000_000);
        assert!(before_boot < -3_000_000_000_000, "{before_boot}");
        assert!(mono_ns() >= now_mono);
    }

    #[test]
    fn sleep_until_past_deadline_returns() {
        sleep_until_mono(0);
        sleep_until_mono(mono_ns() + 1_000);
        assert!(set_thread_timer_slack_1ns());
    }
}
