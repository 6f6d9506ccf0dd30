//! The snapshot published for the HTTP listener (`crate::net::http`): built from the status
//! object and the channel's counters at most every [`PUBLISH_EVERY_NS`], so that serving
//! `/metrics` never touches the event loop.

use super::{Now, Server};
use crate::failover::alarms::Alarm;
use crate::metrics::Snapshot;

/// How often the snapshot is refreshed (a scrape sees values at most this old).
pub(super) const PUBLISH_EVERY_NS: u64 = 200_000_000;

impl Server {
    /// Refreshes the published snapshot when one is due (no-op without `--http-listen`).
    pub(super) fn publish(&mut self, now: Now) {
        let due = match &self.host.http {
            Some((_, last)) => *last == 0 || now.mono.saturating_sub(*last) >= PUBLISH_EVERY_NS,
            None => false,
        };
        if !due {
            return;
        }
        let m = self.ch.node.machine();
        let stats = self.ch.engine.as_ref().map(|r| r.handle.stats());
        let alarms = self.ch.alarms.active();
        let snap = Snapshot {
            channel: self.cfg.channel.clone(),
            state: m.state(),
            on_air: m.sending_live(),
            epoch: m.epoch(),
            peer: self.cfg.sync_peer.to_string(),
            sync_link_up: self.host.last_peer_rx.is_some()
                && !alarms.contains(&Alarm::SyncLinkLost),
            alarms,
            sent_live: stats.map_or(0, |s| s.sent_live),
            sent_muted: stats.map_or(0, |s| s.sent_muted),
            late_wakes: stats.map_or(0, |s| s.pacer.late_wakes),
            lateness: stats.map_or_else(Default::default, |s| s.pacer.lateness),
            counters: self.ch.counters.clone(),
            status: self.status_json(),
        };
        if let Some((shared, last)) = &mut self.host.http {
            *shared.lock().unwrap_or_else(|e| e.into_inner()) = Some(snap);
            *last = now.mono.max(1);
        }
    }
}
