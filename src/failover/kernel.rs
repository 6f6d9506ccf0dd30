//! The supervisor core, the "kernel" of claims 14-16.
//!
//! Claim 14: a kernel running on the primary detects failures. Claim 15: the applications
//! critical to the server's operation register with it. Claim 16: a failure is determined
//! when the kernel recognises a critical application failure.
//!
//! Components (the engine's reader and pacer threads, the sync-link driver, ...) register
//! with a name, whether they are critical, and a check-in interval. A component that does
//! not check in within its interval, or that reports a failure (the driver reports a caught
//! panic or a fatal error this way), has failed. A critical failure gives
//! [`Verdict::Failed`] once; the server then goes `Failed`. A non-critical failure gives
//! [`Verdict::Degraded`]: logged, the server keeps running.
//!
//! Sans-IO: the caller supplies `now` (ns, monotonic) and asks [`Kernel::next_deadline`]
//! when to poll again.
//!
//! # The supervisor's own stalls
//! When the whole process is paused (a VM stall), no component can check in, and the kernel
//! must not blame them for it. The supervisor itself was stalled when a poll comes more than
//! the *stall slack* after the earliest deadline the kernel knew at its previous poll, or,
//! when the driver promises to poll at least every `poll_period` ([`Kernel::set_poll_period`]),
//! more than `poll_period + slack` after the previous poll. Then every healthy component's
//! window restarts at that poll (it gets one full interval to check in again). A component
//! that really died is caught one interval later. Components should check in much more often
//! than their interval: a stall shorter than the threshold still eats into their window.

use std::collections::BTreeMap;

/// Why a component is considered failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// No check-in for longer than the interval.
    MissedCheckIn {
        /// Last check-in (or registration) instant, ns.
        last_ns: u64,
        /// The component's interval, ns.
        interval_ns: u64,
        /// When the miss was seen, ns.
        seen_ns: u64,
    },
    /// The component (or the driver on its behalf) reported a failure.
    Reported(String),
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::MissedCheckIn {
                last_ns,
                interval_ns,
                seen_ns,
            } => write!(
                f,
                "no check-in for {} us (interval {} us)",
                seen_ns.saturating_sub(*last_ns) / 1_000,
                interval_ns / 1_000
            ),
            Why::Reported(r) => f.write_str(r),
        }
    }
}

/// What the kernel concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A critical component failed: the server has failed (claim 16).
    Failed {
        /// The component's name.
        component: String,
        /// Why.
        why: Why,
    },
    /// A non-critical component failed: log it, keep running.
    Degraded {
        /// The component's name.
        component: String,
        /// Why.
        why: Why,
    },
}

/// Why a kernel call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// A component of that name is registered already.
    #[error("component '{0}' is already registered")]
    Duplicate(String),
    /// No component of that name is registered.
    #[error("no component named '{0}' is registered")]
    Unknown(String),
    /// A check-in interval of 0 was given.
    #[error("component '{0}': check-in interval must be > 0")]
    ZeroInterval(String),
}

#[derive(Debug, Clone)]
struct Component {
    critical: bool,
    interval_ns: u64,
    last_ns: u64,
    failed: Option<Why>,
    reported: bool,
}

/// The supervisor.
#[derive(Debug, Clone)]
pub struct Kernel {
    components: BTreeMap<String, Component>,
    failed: bool,
    stall_slack_ns: u64,
    due_at_last_poll: Option<u64>,
    poll_period_ns: Option<u64>,
    last_poll: Option<u64>,
}

impl Default for Kernel {
    fn default() -> Kernel {
        Kernel::new()
    }
}

/// Default stall slack: 1 ms.
pub const DEFAULT_STALL_SLACK_NS: u64 = 1_000_000;

impl Kernel {
    /// An empty kernel with the default stall slack.
    pub fn new() -> Kernel {
        Kernel::with_stall_slack(DEFAULT_STALL_SLACK_NS)
    }

    /// An empty kernel: a poll later than `slack_ns` after the earliest deadline known at the
    /// previous poll is taken as a stall of the supervisor itself.
    pub fn with_stall_slack(slack_ns: u64) -> Kernel {
        Kernel {
            components: BTreeMap::new(),
            failed: false,
            stall_slack_ns: slack_ns,
            due_at_last_poll: None,
            poll_period_ns: None,
            last_poll: None,
        }
    }

    /// The driver polls at least this often (the failover node polls at every heartbeat): a
    /// longer gap between polls is a stall of the supervisor itself.
    pub fn set_poll_period(&mut self, period_ns: u64) {
        self.poll_period_ns = Some(period_ns);
    }

    /// Registers a component (claim 15). Its first check-in is due `interval_ns` after `now`.
    pub fn register(
        &mut self,
        name: &str,
        critical: bool,
        interval_ns: u64,
        now: u64,
    ) -> Result<(), KernelError> {
        if interval_ns == 0 {
            return Err(KernelError::ZeroInterval(name.to_string()));
        }
        if self.components.contains_key(name) {
            return Err(KernelError::Duplicate(name.to_string()));
        }
        self.components.insert(
            name.to_string(),
            Component {
                critical,
                interval_ns,
                last_ns: now,
                failed: None,
                reported: false,
            },
        );
        Ok(())
    }

    /// Removes a component (a clean shutdown of it).
    pub fn unregister(&mut self, name: &str) -> Result<(), KernelError> {
        self.components
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| KernelError::Unknown(name.to_string()))
    }

    /// The component is alive at `now`. A check-in after a failure does not undo it.
    pub fn check_in(&mut self, name: &str, now: u64) -> Result<(), KernelError> {
        let c = self
            .components
            .get_mut(name)
            .ok_or_else(|| KernelError::Unknown(name.to_string()))?;
        if c.failed.is_none() {
            c.last_ns = c.last_ns.max(now);
        }
        Ok(())
    }

    /// The component failed (a caught panic, a fatal error). Only the first report counts.
    pub fn report_failure(&mut self, name: &str, reason: &str) -> Result<(), KernelError> {
        let c = self
            .components
            .get_mut(name)
            .ok_or_else(|| KernelError::Unknown(name.to_string()))?;
        if c.failed.is_none() {
            c.failed = Some(Why::Reported(reason.to_string()));
        }
        Ok(())
    }

    /// Marks missed check-ins at `now` and returns the next verdict not yet returned (call
    /// until `None`). After a `Failed` verdict the kernel is [`failed`](Kernel::failed).
    pub fn poll(&mut self, now: u64) -> Option<Verdict> {
        let late_for_deadline = self
            .due_at_last_poll
            .is_some_and(|due| now > due.saturating_add(self.stall_slack_ns));
        let late_for_period = match (self.poll_period_ns, self.last_poll) {
            (Some(p), Some(last)) => {
                now > last.saturating_add(p).saturating_add(self.stall_slack_ns)
            }
            _ => false,
        };
        self.last_poll = Some(self.last_poll.map_or(now, |l| l.max(now)));
        {
            if late_for_deadline || late_for_period {
                // The supervisor was stalled: nobody could check in.
                for c in self.components.values_mut() {
                    if c.failed.is_none() {
                        c.last_ns = c.last_ns.max(now);
                    }
                }
            }
        }
        self.due_at_last_poll = self.next_deadline();
        for c in self.components.values_mut() {
            if c.failed.is_none() && now >= c.last_ns.saturating_add(c.interval_ns) {
                c.failed = Some(Why::MissedCheckIn {
                    last_ns: c.last_ns,
                    interval_ns: c.interval_ns,
                    seen_ns: now,
                });
            }
        }
        // Critical failures first.
        let pick = self
            .components
            .iter()
            .filter(|(_, c)| c.failed.is_some() && !c.reported)
            .min_by_key(|(_, c)| !c.critical)
            .map(|(n, _)| n.clone())?;
        let c = self.components.get_mut(&pick)?;
        c.reported = true;
        let why = c.failed.clone()?;
        if c.critical {
            self.failed = true;
            Some(Verdict::Failed {
                component: pick,
                why,
            })
        } else {
            Some(Verdict::Degraded {
                component: pick,
                why,
            })
        }
    }

    /// The earliest instant at which a component that is still healthy misses its check-in.
    pub fn next_deadline(&self) -> Option<u64> {
        self.components
            .values()
            .filter(|c| c.failed.is_none())
            .map(|c| c.last_ns.saturating_add(c.interval_ns))
            .min()
    }

    /// Whether a critical failure has been given as a verdict.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Names of the registered components with their critical flag and health
    /// (`None` = healthy), for `tandem status`.
    pub fn components(&self) -> impl Iterator<Item = (&str, bool, Option<&Why>)> {
        self.components
            .iter()
            .map(|(n, c)| (n.as_str(), c.critical, c.failed.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn missed_check_in_of_critical_component_fails() {
        let mut k = Kernel::new();
        k.register("pacer", true, 5 * MS, 0).unwrap();
        k.register("stats", false, 100 * MS, 0).unwrap();
        assert_eq!(k.next_deadline(), Some(5 * MS));
        for t in 1..=10 {
            k.check_in("pacer", t * MS).unwrap();
            assert_eq!(k.poll(t * MS), None);
        }
        assert_eq!(k.next_deadline(), Some(15 * MS));
        assert_eq!(k.poll(15 * MS - 1), None);
        assert_eq!(
            k.poll(15 * MS),
            Some(Verdict::Failed {
                component: "pacer".into(),
                why: Why::MissedCheckIn {
                    last_ns: 10 * MS,
                    interval_ns: 5 * MS,
                    seen_ns: 15 * MS
                }
            })
        );
        assert!(k.failed());
        assert_eq!(k.poll(16 * MS), None, "a verdict is given once");
        // A late check-in does not revive it.
        k.check_in("pacer", 17 * MS).unwrap();
        assert_eq!(k.next_deadline(), Some(100 * MS));
    }

    #[test]
    fn non_critical_failure_only_degrades() {
        let mut k = Kernel::new();
        k.register("pacer", true, 5 * MS, 0).unwrap();
        k.register("stats", false, 10 * MS, 0).unwrap();
        k.report_failure("stats", "panicked: index out of bounds")
            .unwrap();
        k.check_in("pacer", 2 * MS).unwrap();
        assert_eq!(
            k.poll(3 * MS),
            Some(Verdict::Degraded {
                component: "stats".into(),
                why: Why::Reported("panicked: index out of bounds".into())
            })
        );
        assert!(!k.failed());
        assert_eq!(k.poll(3 * MS), None);
    }

    #[test]
    fn critical_verdict_comes_first() {
        let mut k = Kernel::new();
        k.register("a-stats", false, MS, 0).unwrap();
        k.register("z-reader", true, MS, 0).unwrap();
        let v = k.poll(2 * MS).unwrap();
        assert!(matches!(v, Verdict::Failed { ref component, .. } if component == "z-reader"));
        assert!(matches!(k.poll(2 * MS), Some(Verdict::Degraded { .. })));
        assert_eq!(k.poll(2 * MS), None);
    }

    #[test]
    fn reported_failure_keeps_first_reason() {
        let mut k = Kernel::new();
        k.register("reader", true, 50 * MS, 0).unwrap();
        k.report_failure("reader", "read error: EIO at byte 1316")
            .unwrap();
        k.report_failure("reader", "second").unwrap();
        assert_eq!(
            k.poll(1),
            Some(Verdict::Failed {
                component: "reader".into(),
                why: Why::Reported("read error: EIO at byte 1316".into())
            })
        );
    }

    #[test]
    fn own_stall_does_not_fail_components() {
        let mut k = Kernel::new();
        k.register("pacer", true, 5 * MS, 0).unwrap();
        k.check_in("pacer", 4 * MS).unwrap();
        assert_eq!(k.poll(4 * MS), None);
        // The whole process was paused from 4 to 40 ms: the poll due at 9 ms comes at 40 ms.
        assert_eq!(k.poll(40 * MS), None);
        assert_eq!(k.next_deadline(), Some(45 * MS));
        // A component that is really dead is caught one interval later.
        assert!(matches!(k.poll(45 * MS), Some(Verdict::Failed { .. })));
        // Slightly late polls (within the slack) are not stalls.
        let mut k = Kernel::new();
        k.register("pacer", true, 5 * MS, 0).unwrap();
        assert_eq!(k.poll(MS), None);
        assert!(matches!(
            k.poll(5 * MS + 500_000),
            Some(Verdict::Failed { .. })
        ));
        // With a poll period: a 4 ms gap between polls (period 1 ms) is a stall even though
        // the deadline known at the previous poll was later.
        let mut k = Kernel::new();
        k.set_poll_period(MS);
        k.register("pacer", true, 5 * MS, 0).unwrap();
        k.check_in("pacer", 2 * MS).unwrap();
        assert_eq!(k.poll(2 * MS), None);
        k.check_in("pacer", 3 * MS).unwrap();
        assert_eq!(k.poll(7 * MS + 100_000), None, "stalled 3 to 7.1 ms");
        assert_eq!(k.next_deadline(), Some(12 * MS + 100_000));
    }

    #[test]
    fn registration_errors() {
        let mut k = Kernel::new();
        k.register("x", true, MS, 0).unwrap();
        assert_eq!(
            k.register("x", false, MS, 0),
            Err(KernelError::Duplicate("x".into()))
        );
        assert_eq!(
            k.register("y", false, 0, 0),
            Err(KernelError::ZeroInterval("y".into()))
        );
        assert_eq!(
            k.check_in("nope", 0),
            Err(KernelError::Unknown("nope".into()))
        );
        assert_eq!(
            k.report_failure("nope", "r"),
            Err(KernelError::Unknown("nope".into()))
        );
        k.unregister("x").unwrap();
        assert_eq!(k.next_deadline(), None);
        assert_eq!(k.poll(u64::MAX), None);
        assert_eq!(k.components().count(), 0);
    }
}
