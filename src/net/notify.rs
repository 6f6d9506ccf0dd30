//! The service manager's notification socket (sd_notify(3), systemd's `Type=notify`): READY
//! once the server listens, STATUS with its state, WATCHDOG pings from the supervisor
//! thread (`crate::failover::watchdog` decides when), STOPPING on a stop. Without
//! `NOTIFY_SOCKET` in the environment (not started by systemd) every call does nothing.

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "sd_notify: cannot reach the service manager");
    }
}

/// The server is ready (its sockets are bound, its event loop about to run).
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A one-line status for `systemctl status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// The server is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Alive (the watchdog's ping).
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// The watchdog interval systemd asks for (`WATCHDOG_USEC`), ns.
pub fn watchdog_interval_ns() -> Option<u64> {
    crate::failover::watchdog::interval_from_env(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}
