//! Fail-back (opt-in, `failback = true` in `tandem serve`'s file, `docs/serve.md`): a channel
//! on air on the host that is not its preferred primary is handed back to the preferred
//! host once that host has been `Secondary_synchronized` for `after_ns` without a break.
//! A failed or absent server never returns on air by itself; this is the host on air
//! deciding to hand over (a planned, seamless hand-over), and only to a peer that has
//! proved its standby for the whole hold time.

use super::state::State;

/// The rule for one channel.
#[derive(Debug, Clone)]
pub struct Failback {
    after_ns: u64,
    /// Since when the peer has been synchronised behind this host on air.
    since: Option<u64>,
}

impl Failback {
    /// Hands back after the peer has been synchronised for `after_ns`.
    pub fn new(after_ns: u64) -> Failback {
        Failback {
            after_ns,
            since: None,
        }
    }

    /// Whether to hand the channel back now: `on_air` here, and the peer's last reported
    /// state `peer`. After a true answer the hold time starts again (a refused or failed
    /// hand-over is retried only after another whole hold).
    pub fn poll(&mut self, now: u64, on_air: bool, peer: Option<State>) -> bool {
        if !on_air || peer != Some(State::SecondarySynchronized) {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert(now);
        if now.saturating_sub(since) >= self.after_ns {
            self.since = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn hands_back_after_an_unbroken_hold_and_waits_again_after_a_break() {
        let mut f = Failback::new(30 * S);
        let sync = Some(State::SecondarySynchronized);
        assert!(!f.poll(0, true, sync));
        assert!(!f.poll(29 * S, true, sync));
        // A break (the peer resynchronising) starts the hold again.
        assert!(!f.poll(29 * S + 1, true, Some(State::SecondarySynchronizing)));
        assert!(!f.poll(40 * S, true, sync));
        assert!(!f.poll(69 * S, true, sync));
        assert!(f.poll(70 * S, true, sync));
        // Then a whole hold again before a retry.
        assert!(!f.poll(71 * S, true, sync));
        assert!(!f.poll(100 * S, true, sync));
        assert!(f.poll(101 * S, true, sync));
    }

    #[test]
    fn nothing_to_hand_back_when_off_air_or_without_a_standby() {
        let mut f = Failback::new(S);
        for (on_air, peer) in [
            (false, Some(State::SecondarySynchronized)),
            (true, None),
            (true, Some(State::Failed)),
            (true, Some(State::Primary)),
        ] {
            assert!(!f.poll(0, on_air, peer));
            assert!(!f.poll(10 * S, on_air, peer), "{on_air} {peer:?}");
        }
    }
}
