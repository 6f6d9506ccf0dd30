//! An absolute-deadline sleep that another thread can cut short: the pacer sleeps until its
//! next datagram is due (CLOCK_MONOTONIC, absolute, like `clock_nanosleep(TIMER_ABSTIME)`),
//! and a switch or a stop request rings the bell so it acts at once instead of at its next
//! wake.
//!
//! Built on the Linux futex (futex(2), `FUTEX_WAIT_BITSET` with an absolute CLOCK_MONOTONIC
//! timeout, which honours the thread's timer slack like `clock_nanosleep`). The protocol is
//! the usual one for futexes: read the bell's [`Doorbell::ticket`], check the shared state,
//! then [`Doorbell::sleep_until`] with that ticket; a ring between the check and the sleep
//! changes the word, so the kernel refuses to sleep (EAGAIN) and nothing is missed.

use std::sync::atomic::{AtomicU32, Ordering};

/// A futex word rung by [`Doorbell::ring`].
#[derive(Debug, Default)]
pub struct Doorbell {
    word: AtomicU32,
}

impl Doorbell {
    /// A silent bell.
    pub fn new() -> Doorbell {
        Doorbell::default()
    }

    /// The current ticket: read it *before* checking what a ring announces.
    pub fn ticket(&self) -> u32 {
        self.word.load(Ordering::Acquire)
    }

    /// Wakes a sleeper (and makes any sleep with an older ticket return at once).
    pub fn ring(&self) {
        self.word.fetch_add(1, Ordering::AcqRel);
        // SAFETY: FUTEX_WAKE reads only the address of `word`, a live, aligned AtomicU32
        // owned by `self`; no other memory is passed (the timeout/uaddr2/val3 slots are
        // ignored for FUTEX_WAKE).
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }

    /// Sleeps until CLOCK_MONOTONIC reaches `deadline_ns` or the bell rings after `ticket`
    /// was read. Returns `true` when woken by a ring (or the ticket was already stale).
    pub fn sleep_until(&self, ticket: u32, deadline_ns: u64) -> bool {
        let ts = libc::timespec {
            tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
        };
        loop {
            if self.word.load(Ordering::Acquire) != ticket {
                return true;
            }
            // SAFETY: `word` is a live, aligned AtomicU32 (the futex word); `ts` is a valid
            // timespec that outlives the call; FUTEX_WAIT_BITSET takes an absolute timeout
            // on CLOCK_MONOTONIC (FUTEX_CLOCK_REALTIME not set); uaddr2 is ignored and
            // val3 is the match-any bitset (futex(2)).
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.word.as_ptr(),
                    libc::FUTEX_WAIT_BITSET | libc::FUTEX_PRIVATE_FLAG,
                    ticket,
                    &ts as *const libc::timespec,
                    std::ptr::null::<u32>(),
                    libc::FUTEX_BITSET_MATCH_ANY,
                )
            };
            if rc == 0 {
                // Woken: by a ring (the word changed) or spuriously (check again).
                continue;
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::ETIMEDOUT) => return false,
                Some(libc::EAGAIN) => return true,
                Some(libc::EINTR) => continue,
                // Unsupported futex (never on Linux >= 2.6.25): fall back to a plain sleep.
                _ => {
                    crate::net::clock::sleep_until_mono(deadline_ns);
                    return self.word.load(Ordering::Acquire) != ticket;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::clock::mono_ns;
    use std::sync::Arc;

    #[test]
    fn sleeps_to_the_deadline_without_a_ring() {
        let b = Doorbell::new();
        let t = b.ticket();
        let deadline = mono_ns() + 2_000_000;
        assert!(!b.sleep_until(t, deadline));
        assert!(mono_ns() >= deadline);
        // A deadline in the past returns at once.
        assert!(!b.sleep_until(t, 1));
    }

    #[test]
    fn a_ring_before_the_sleep_is_not_missed() {
        let b = Doorbell::new();
        let t = b.ticket();
        b.ring();
        let start = mono_ns();
        assert!(b.sleep_until(t, start + 10_000_000_000));
        assert!(mono_ns() - start < 5_000_000_000);
    }

    #[test]
    fn a_ring_from_another_thread_wakes_the_sleeper() {
        let b = Arc::new(Doorbell::new());
        let t = b.ticket();
        let b2 = b.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            b2.ring();
        });
        let start = mono_ns();
        // Ten seconds: only the ring can end this sleep within the test's lifetime.
        assert!(b.sleep_until(t, start + 10_000_000_000));
        assert!(mono_ns() - start < 5_000_000_000);
        h.join().unwrap();
    }
}
