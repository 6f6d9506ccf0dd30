//! SIGINT and SIGTERM for the long-running commands: blocked in every thread (threads
//! spawned later inherit the mask) and collected with `sigtimedwait(2)`.

use std::time::Duration;

/// SIGINT and SIGTERM, blocked in every thread and collected with `sigtimedwait`.
pub struct Signals(libc::sigset_t);

impl Signals {
    /// Blocks SIGINT/SIGTERM in the calling thread (threads spawned later inherit it).
    pub fn block() -> anyhow::Result<Signals> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it before any use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t; the calls only write to it / the thread mask.
        let rc = unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
        };
        if rc != 0 {
            anyhow::bail!(
                "blocking SIGINT/SIGTERM: {}",
                std::io::Error::from_raw_os_error(rc)
            );
        }
        Ok(Signals(set))
    }

    /// Waits up to `timeout` for one of the signals; returns its number.
    pub fn wait(&self, timeout: Duration) -> Option<i32> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `self.0` is an initialised sigset_t, `ts` a valid timespec, and a null
        // siginfo pointer is allowed (sigtimedwait(2)).
        let sig = unsafe { libc::sigtimedwait(&self.0, std::ptr::null_mut(), &ts) };
        (sig > 0).then_some(sig)
    }
}
