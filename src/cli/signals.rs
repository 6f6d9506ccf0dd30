//! SIGINT and SIGTERM for the long-running commands: blocked in every thread (threads
//! spawned later inherit the mask) and collected with `sigtimedwait(2)`.

use std::time::Duration;

/// SIGINT and SIGTERM, blocked in every thread and collected with `sigtimedwait`.
pub struct Signals(libc::sigset_t);

impl Signals {
    /// Blocks SIGINT/SIGTERM in the calling thread (threads spawned later inherit it).
    pub fn block() -> anyhow::Result<Signals> {
        Self::block_these(&[libc::SIGINT, libc::SIGTERM])
    }

    /// [`Signals::block`] and SIGHUP too (a reload, `tandem serve`).
    pub fn block_with_hup() -> anyhow::Result<Signals> {
        Self::block_these(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP])
    }

    fn block_these(sigs: &[libc::c_int]) -> anyhow::Result<Signals> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it before any use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t; the calls only write to it / the thread mask.
        let rc = unsafe {
            libc::sigemptyset(&mut set);
            for &s in sigs {
                libc::sigaddset(&mut set, s);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
        };
        if rc != 0 {
            anyhow::bail!(
                "blocking signals {sigs:?}: {}",
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

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn note_interrupt(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Installs SIGINT/SIGTERM handlers that only raise a flag, for commands that must finish
/// their step and clean up (e.g. a benchmark's namespace lab) instead of dying. Unlike
/// [`Signals::block`], nothing is inherited by child processes: exec resets handled signals
/// to their default. Returns the flag.
pub fn interrupt_flag() -> &'static std::sync::atomic::AtomicBool {
    // SAFETY: `sigaction` is given a zero-initialised struct with a valid handler address
    // (an `extern "C" fn(c_int)` that only stores to a static atomic) and an empty mask;
    // the old-action pointer may be null (sigaction(2)).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = note_interrupt as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
    &INTERRUPTED
}
