//! `tandem status`: the node's snapshot plus what the driver knows (position, peer, clock
//! offset, refused messages, kernel components).

use super::Server;
use crate::net::failover::link::rejects_json;

impl Server {
    /// The status object (JSON schema `tandem.status/1`).
    pub(super) fn status_json(&self) -> serde_json::Value {
        let now = self.now();
        let mut v = self.ch.node.status_json();
        let period = self.ch.node.config().machine.heartbeat_period_ns.max(1);
        let missed = self
            .host
            .last_peer_rx
            .map(|t| now.mono.saturating_sub(t) / period);
        let position = self
            .ch
            .engine
            .as_ref()
            .and_then(|r| r.handle.last_sent())
            .map(|l| {
                serde_json::json!({
                    "last_index": l.index,
                    "target": l.target,
                    "age_us": now.mono.saturating_sub(l.mono_ns) / 1_000,
                })
            });
        // Where a playlist is: the item of the last datagram sent.
        let playlist = match (
            self.ch.asset.as_ref(),
            self.ch.stream.as_ref(),
            self.ch.engine.as_ref().and_then(|r| r.handle.last_sent()),
        ) {
            (Some(a), Some(st), Some(l)) if a.source.is_playlist() => {
                let at = st.locate_clip(l.index.saturating_mul(7));
                let n = a.source.clips.len() as u64;
                let c = &a.source.clips[at.clip];
                Some(serde_json::json!({
                    "items": n,
                    "item": at.clip + 1,
                    "pass": at.position / n.max(1) + 1,
                    "source": c.path.display().to_string(),
                    "cut_s": c.cut.map(|(a, b)| [a, b]),
                }))
            }
            _ => None,
        };
        let stats = self.ch.engine.as_ref().map(|r| r.handle.stats());
        let components = self
            .host
            .supervisor
            .snapshot
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        let extra = serde_json::json!({
            "schema": "tandem.status/1",
            "server_id": self.cfg.server_id,
            "channel": self.cfg.channel,
            "pid": std::process::id(),
            "command": self.cfg.role,
            "boot_id": self.host.boot_id,
            "session": format!("{:016x}", self.host.session),
            "live_group": self.cfg.live.to_string(),
            "muted": self.ch.muted.as_ref().map(|m| m.1.to_string()),
            "asset": self.ch.asset.as_ref().map(|a| a.path.display().to_string()),
            "playlist": playlist,
            "peer": {
                "sync_addr": self.cfg.sync_peer.to_string(),
                "state": self.ch.node.machine().peer_state(),
                "last_index": self.ch.node.machine().peer_last_index(),
                "heartbeats_missed": missed,
                "last_heard_us_ago": self.host.last_peer_rx.map(|t| now.mono.saturating_sub(t) / 1_000),
            },
            "heartbeat_us": period / 1_000,
            "miss": self.ch.node.config().detector.miss,
            "detection_window_us": self.ch.node.config().detector.heartbeat_window() / 1_000,
            "position": position,
            "engine": stats,
            "clock_offset_ns": self.ch.offset_ns,
            "live_datagrams_heard": self.ch.live_heard,
            "other_sender_last_index": self.ch.foreign_last,
            "switch_at": self.cfg.switch_at,
            "sync_init": self.cfg.sync_init,
            "switches": self.ch.switches,
            "rejected": rejects_json(&[
                ("sync", self.host.sync.rejects()),
                ("control", self.host.control.rejects()),
            ]),
            "rejected_total": self.host.sync.rejects().total() + self.host.control.rejects().total(),
            "kernel": components,
            "last_error": self.ch.last_error,
            "alarms": self.ch.alarms.active(),
            "recovery": self.recovery_status(),
        });
        if let (Some(obj), serde_json::Value::Object(more)) = (v.as_object_mut(), extra) {
            for (k, val) in more {
                obj.insert(k, val);
            }
        }
        v
    }
}
