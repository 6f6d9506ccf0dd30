//! The start-up rule of an active/active host (`tandem serve`, `docs/serve.md`): a channel
//! this host serves as the secondary, whose preferred primary has not been heard since the
//! channel started, is taken by this host as its primary once [`AbsentParams::wait_ns`] has
//! passed. Taking it is a start as the primary, which verifies that nobody is on air before
//! the first live datagram (the `Start` hold of `crate::failover::machine`): a primary that
//! is on air after all (heard late) answers, and this host joins it as the secondary again;
//! when the preferred host returns later, its own start as the primary finds this host on
//! air and it joins as the secondary (a failed or absent server never takes a channel back
//! by itself).
//!
//! The rule only looks at the channel's state: `Secondary_offline` means no primary has been
//! heard (a secondary leaves it on the first heartbeat of a primary, `docs/states.md`), and
//! it fires once per channel start.

use super::state::State;

/// The rule's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbsentParams {
    /// How long a secondary channel waits for its primary before this host takes it, ns.
    pub wait_ns: u64,
}

impl Default for AbsentParams {
    /// 3 s: long enough for a host started a moment after its peer to be heard (its first
    /// heartbeats follow its start within milliseconds), short enough that viewers of a
    /// channel whose preferred host is down get it within a few seconds.
    fn default() -> AbsentParams {
        AbsentParams {
            wait_ns: 3_000_000_000,
        }
    }
}

/// The rule for one channel started as the secondary at `started` (mono ns).
#[derive(Debug, Clone)]
pub struct AbsentPrimary {
    params: AbsentParams,
    started: u64,
    fired: bool,
}

impl AbsentPrimary {
    /// The rule for a channel started at `started`.
    pub fn new(params: AbsentParams, started: u64) -> AbsentPrimary {
        AbsentPrimary {
            params,
            started,
            fired: false,
        }
    }

    /// Whether this host takes the channel now (true once): `state` is the channel's state
    /// at `now`; `None` while it has published none.
    pub fn poll(&mut self, now: u64, state: Option<State>) -> bool {
        if self.fired || now < self.deadline() {
            return false;
        }
        if state == Some(State::SecondaryOffline) {
            self.fired = true;
            return true;
        }
        false
    }

    /// When [`AbsentPrimary::poll`] may first answer true.
    pub fn deadline(&self) -> u64 {
        self.started.saturating_add(self.params.wait_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_secondary_that_never_heard_its_primary_is_taken_once_after_the_wait() {
        let mut r = AbsentPrimary::new(AbsentParams::default(), 10 * S);
        assert!(!r.poll(12 * S, Some(State::SecondaryOffline)), "too early");
        assert!(r.poll(13 * S, Some(State::SecondaryOffline)));
        assert!(!r.poll(14 * S, Some(State::SecondaryOffline)), "once");
    }

    #[test]
    fn a_secondary_that_heard_its_primary_stays_one() {
        for st in [
            State::Secondary,
            State::SecondarySynchronizing,
            State::SecondarySynchronized,
            State::SecondaryNoPrimary,
            State::Failed,
        ] {
            let mut r = AbsentPrimary::new(AbsentParams::default(), 0);
            assert!(!r.poll(60 * S, Some(st)), "{st:?}");
        }
        let mut r = AbsentPrimary::new(AbsentParams::default(), 0);
        assert!(!r.poll(60 * S, None), "no state published yet");
        assert!(
            r.poll(61 * S, Some(State::SecondaryOffline)),
            "then published"
        );
    }
}
