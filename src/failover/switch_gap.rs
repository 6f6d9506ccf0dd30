//! What a switch did to the live group, measured by the new owner (sans-IO): the gap between
//! the old owner's last datagram and its own first one, both as its own socket on the live
//! group timestamped them on arrival (`SO_TIMESTAMPNS`: its own datagrams come back by
//! multicast loopback), how late its first datagram was against its due time, and what the
//! receivers lost or saw twice across the switch by datagram index.
//!
//! The driver reports the switch ([`SwitchGap::switched`]), every datagram of another sender
//! ([`SwitchGap::on_foreign`]) and every datagram of its own ([`SwitchGap::on_own`]) heard on
//! the live group; the first of its own after a switch closes the measurement and returns
//! the [`SwitchRecord`]. Old-owner datagrams that still arrive after it are counted as an
//! overlap (two senders on air for a moment).

/// One switch, as measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SwitchRecord {
    /// The trigger that put this server on air (`FailureDeclared`, `HandOverOffered`, ...).
    pub reason: &'static str,
    /// When the switch was decided (mono ns).
    pub decided_mono_ns: u64,
    /// The first datagram this server sent on the live group.
    pub from_index: u64,
    /// The last datagram of the old owner heard before it, if any was heard with its index.
    pub old_last_index: Option<u64>,
    /// Old owner's last datagram to this server's first, on arrival (ns); `None` when this
    /// server never heard the old owner on the live group.
    pub gap_ns: Option<u64>,
    /// This server's first datagram on arrival after its due time (ns; negative: early).
    pub late_ns: Option<i64>,
    /// Datagram indices that nobody sent: between the old owner's last and this server's
    /// first (0 in seamless mode).
    pub lost: Option<u64>,
    /// Datagram indices sent by both (the old owner's last at or after this server's first).
    pub repeated: Option<u64>,
    /// Datagrams of the old owner heard after this server's first (the moment both were on
    /// air).
    pub overlap: u64,
}

/// A switch waiting for this server's first datagram.
#[derive(Debug, Clone, Copy)]
struct Pending {
    reason: &'static str,
    decided: u64,
    from: u64,
    due: Option<u64>,
}

/// The measurement of the switches of one channel.
#[derive(Debug, Clone, Default)]
pub struct SwitchGap {
    /// The last datagram of another sender: (arrival mono ns, index if known).
    foreign: Option<(u64, Option<u64>)>,
    pending: Option<Pending>,
    last: Option<SwitchRecord>,
}

/// A switch whose first datagram was not heard back within this long is given up (no
/// multicast loopback on this socket) and recorded without a gap.
pub const GIVE_UP_NS: u64 = 2_000_000_000;

impl SwitchGap {
    /// This server took the live group at `now`, sending from datagram `from`, due at
    /// `due_mono_ns` (if the driver knows).
    pub fn switched(
        &mut self,
        reason: &'static str,
        now: u64,
        from: u64,
        due_mono_ns: Option<u64>,
    ) {
        self.pending = Some(Pending {
            reason,
            decided: now,
            from,
            due: due_mono_ns,
        });
    }

    /// A datagram of another sender arrived at `rx` (mono ns).
    pub fn on_foreign(&mut self, rx: u64, index: Option<u64>) {
        if self.pending.is_none() {
            if let Some(l) = self.last.as_mut() {
                if rx.saturating_sub(l.decided_mono_ns) < GIVE_UP_NS {
                    l.overlap += 1;
                }
            }
        }
        let index = index.or(self.foreign.and_then(|f| f.1));
        self.foreign = Some((rx, index));
    }

    /// A datagram of this server arrived back at `rx` (mono ns): the first after a switch
    /// closes its measurement.
    pub fn on_own(&mut self, rx: u64) -> Option<SwitchRecord> {
        let p = self.pending.take()?;
        let (gap, old_last) = match self.foreign {
            Some((t, i)) => (Some(rx.saturating_sub(t)), i),
            None => (None, None),
        };
        let r = SwitchRecord {
            reason: p.reason,
            decided_mono_ns: p.decided,
            from_index: p.from,
            old_last_index: old_last,
            gap_ns: gap,
            late_ns: p.due.map(|d| rx as i64 - d as i64),
            lost: old_last.map(|l| p.from.saturating_sub(l + 1)),
            repeated: old_last.map(|l| (l + 1).saturating_sub(p.from)),
            overlap: 0,
        };
        self.last = Some(r.clone());
        Some(r)
    }

    /// A switch never heard back by `now` is closed without its gap.
    pub fn poll(&mut self, now: u64) -> Option<SwitchRecord> {
        let p = self.pending?;
        if now.saturating_sub(p.decided) < GIVE_UP_NS {
            return None;
        }
        self.pending = None;
        let r = SwitchRecord {
            reason: p.reason,
            decided_mono_ns: p.decided,
            from_index: p.from,
            old_last_index: self.foreign.and_then(|f| f.1),
            gap_ns: None,
            late_ns: None,
            lost: None,
            repeated: None,
            overlap: 0,
        };
        self.last = Some(r.clone());
        Some(r)
    }

    /// The last switch measured.
    pub fn last(&self) -> Option<&SwitchRecord> {
        self.last.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_seamless_takeover_has_the_gap_of_the_arrivals_and_loses_nothing() {
        let mut g = SwitchGap::default();
        // The primary's datagrams 0..=99 every 4 ms, the last at 396 ms.
        for i in 0..100 {
            g.on_foreign(i * 4 * MS, Some(i));
        }
        assert!(g.on_own(400 * MS).is_none(), "no switch yet");
        g.switched("FailureDeclared", 410 * MS, 100, Some(400 * MS));
        let r = g.on_own(411 * MS).expect("closed");
        assert_eq!(r.gap_ns, Some(15 * MS));
        assert_eq!(r.late_ns, Some(11 * MS as i64));
        assert_eq!((r.lost, r.repeated), (Some(0), Some(0)));
        assert_eq!(r.old_last_index, Some(99));
        // A datagram of the old owner still in flight: both on air for a moment.
        g.on_foreign(412 * MS, Some(100));
        assert_eq!(g.last().unwrap().overlap, 1);
        assert!(g.on_own(415 * MS).is_none(), "one record per switch");
    }

    #[test]
    fn a_switch_at_a_later_boundary_counts_the_datagrams_nobody_sent() {
        let mut g = SwitchGap::default();
        g.on_foreign(0, Some(7));
        g.switched("FailureDeclared", MS, 12, None);
        let r = g.on_own(2 * MS).unwrap();
        assert_eq!((r.lost, r.repeated, r.late_ns), (Some(4), Some(0), None));
        // A switch before the old owner's last: repeated datagrams.
        g.on_foreign(3 * MS, Some(20));
        g.switched("HandOverOffered", 4 * MS, 18, None);
        let r = g.on_own(5 * MS).unwrap();
        assert_eq!((r.lost, r.repeated), (Some(0), Some(3)));
    }

    #[test]
    fn a_switch_never_heard_back_is_recorded_without_a_gap() {
        let mut g = SwitchGap::default();
        g.switched("MonitorTakeover", 0, 5, None);
        assert!(g.poll(GIVE_UP_NS - 1).is_none());
        let r = g.poll(GIVE_UP_NS).unwrap();
        assert_eq!((r.gap_ns, r.from_index), (None, 5));
        assert!(g.on_own(GIVE_UP_NS + 1).is_none());
    }
}
