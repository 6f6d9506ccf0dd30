//! A `timerfd` (timerfd_create(2)) on CLOCK_MONOTONIC, armed with absolute deadlines, for the
//! failover event loop: heartbeat and detector deadlines with microsecond resolution,
//! registered with mio like any other file descriptor.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A non-blocking CLOCK_MONOTONIC timer file descriptor.
#[derive(Debug)]
pub struct TimerFd {
    fd: OwnedFd,
}

impl TimerFd {
    /// A disarmed timer.
    pub fn new() -> io::Result<TimerFd> {
        // SAFETY: timerfd_create takes no pointers; it returns a new descriptor or -1.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by timerfd_create, is valid and owned by nobody
        // else, so OwnedFd may take it over (and close it once).
        Ok(TimerFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Arms the timer to expire at the CLOCK_MONOTONIC instant `deadline_ns` (absolute; an
    /// instant already past expires at once).
    pub fn arm_at(&self, deadline_ns: u64) -> io::Result<()> {
        // it_value = 0 would disarm: the earliest instant is 1 ns.
        let d = deadline_ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (d / 1_000_000_000) as libc::time_t,
                tv_nsec: (d % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: `self.fd` is an open timerfd; `spec` is a valid itimerspec that outlives
        // the call, and a null old-value pointer is allowed (timerfd_settime(2)).
        let rc = unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Consumes an expiry, if any (non-blocking), so the descriptor stops being readable.
    pub fn clear(&self) {
        let mut n = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live 8-byte buffer from an open descriptor;
        // on a non-blocking timerfd with no expiry it fails with EAGAIN, which is ignored.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), n.as_mut_ptr().cast(), n.len()) };
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::clock::mono_ns;

    #[test]
    fn expires_at_an_absolute_deadline() {
        let t = TimerFd::new().unwrap();
        let mut poll = mio::Poll::new().unwrap();
        poll.registry()
            .register(
                &mut mio::unix::SourceFd(&t.as_raw_fd()),
                mio::Token(0),
                mio::Interest::READABLE,
            )
            .unwrap();
        let mut ev = mio::Events::with_capacity(4);
        t.arm_at(mono_ns() + 2_000_000).unwrap();
        poll.poll(&mut ev, Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(ev.iter().count(), 1);
        t.clear();
        // A deadline in the past fires at once.
        t.arm_at(1).unwrap();
        poll.poll(&mut ev, Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(ev.iter().count(), 1);
        t.clear();
    }
}
