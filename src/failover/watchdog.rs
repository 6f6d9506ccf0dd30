//! The service manager's watchdog (sans-IO): when a server tells systemd it is alive
//! (`WATCHDOG=1`, sd_notify(3)). systemd is the kernel's outer layer: the supervisor watches
//! the components, systemd watches the supervisor and the event loop. A ping goes out every
//! quarter of the interval systemd asked for (`WATCHDOG_USEC`), and only while the event
//! loop checked in within half of it: a hung loop stops the pings, and systemd restarts the
//! service (`Restart=on-failure`) within one interval. A failed server still pings (it
//! recovers by itself behind the server on air, `docs/failover.md`).

/// The watchdog's pacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watchdog {
    interval_ns: u64,
    last_ping: Option<u64>,
}

impl Watchdog {
    /// For the interval systemd asked for (ns, at least 1 ms).
    pub fn new(interval_ns: u64) -> Watchdog {
        Watchdog {
            interval_ns: interval_ns.max(1_000_000),
            last_ping: None,
        }
    }

    /// Whether to ping at `now`, given when the event loop last checked in (same clock).
    pub fn poll(&mut self, now: u64, loop_checked_in: u64) -> bool {
        let due = match self.last_ping {
            Some(t) => now.saturating_sub(t) >= self.interval_ns / 4,
            None => true,
        };
        let fresh = now.saturating_sub(loop_checked_in) < self.interval_ns / 2;
        if due && fresh {
            self.last_ping = Some(now);
        }
        due && fresh
    }

    /// When the next ping may be due.
    pub fn next_deadline(&self, now: u64) -> u64 {
        self.last_ping.map_or(now, |t| t + self.interval_ns / 4)
    }
}

/// The interval systemd asks for, from `WATCHDOG_USEC` and `WATCHDOG_PID` (sd_watchdog_enabled(3):
/// the PID, when given, must be this process's).
pub fn interval_from_env(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<u64> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    match pid.map(|p| p.trim().parse::<u32>()) {
        Some(Ok(p)) if p != own_pid => None,
        Some(Err(_)) => None,
        _ => Some(usec.saturating_mul(1_000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn pings_each_quarter_while_the_loop_is_alive_and_stop_when_it_hangs() {
        let mut w = Watchdog::new(400 * MS);
        let mut pings = vec![];
        // The loop checks in every 10 ms until 1 s, then hangs.
        for t in (0..2_000).map(|i| i * MS) {
            let loop_at = t.min(1_000 * MS) / (10 * MS) * (10 * MS);
            if w.poll(t, loop_at) {
                pings.push(t / MS);
            }
        }
        assert_eq!(
            pings,
            [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100]
        );
        assert_eq!(w.next_deadline(2_000 * MS), 1_200 * MS);
    }

    #[test]
    fn the_interval_comes_from_the_environment() {
        assert_eq!(
            interval_from_env(Some("2000000"), None, 7),
            Some(2_000_000_000)
        );
        assert_eq!(
            interval_from_env(Some("2000000"), Some("7"), 7),
            Some(2_000_000_000)
        );
        assert_eq!(interval_from_env(Some("2000000"), Some("8"), 7), None);
        assert_eq!(interval_from_env(Some("0"), None, 7), None);
        assert_eq!(interval_from_env(Some("x"), None, 7), None);
        assert_eq!(interval_from_env(None, None, 7), None);
    }
}
