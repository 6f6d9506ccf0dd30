//! Metrics for Prometheus (sans-IO): what one channel's server exposes at `/metrics`, built
//! from a [`Snapshot`] the event loop publishes a few times a second, rendered in the
//! Prometheus text exposition format with the `prometheus-client` crate. The HTTP listener
//! that serves it is `crate::net::http`; the names and their meanings are listed in
//! `docs/operations.md`.

use std::collections::BTreeMap;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::failover::alarms::Alarm;
use crate::failover::machine::Transition;
use crate::failover::state::State;

#[cfg(test)]
mod tests;

/// Counters the driver keeps for one channel (they only grow).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelCounters {
    /// Takeovers of the live group by this server, by the trigger that made it go on air.
    pub switches: BTreeMap<&'static str, u64>,
    /// Heartbeats of the peer that did not arrive (gaps of more than 1.5 periods, counted
    /// in whole periods).
    pub heartbeats_missed: u64,
    /// The gap of the last switch measured on the live group (ns).
    pub last_switch_gap_ns: Option<u64>,
    last_peer_rx: Option<u64>,
}

impl ChannelCounters {
    /// A state change: a move on air from a state that was not (a standby taking over, a
    /// failed or stepped-down server coming back) counts as a switch under its trigger. A
    /// primary's own start (`Primary_offline` -> `Primary_no_secondary`) does not.
    pub fn on_transition(&mut self, t: &Transition) {
        if t.to.on_air() && !t.from.on_air() && t.from != State::PrimaryOffline {
            *self.switches.entry(t.trigger.name()).or_default() += 1;
        }
    }

    /// A message from the peer arrived at `rx_mono_ns`; heartbeats come every `period_ns`.
    pub fn on_peer_heard(&mut self, rx_mono_ns: u64, period_ns: u64) {
        let period = period_ns.max(1);
        if let Some(last) = self.last_peer_rx {
            let gap = rx_mono_ns.saturating_sub(last);
            if gap * 2 > period * 3 {
                self.heartbeats_missed += gap / period - 1;
            }
        }
        self.last_peer_rx = Some(self.last_peer_rx.map_or(rx_mono_ns, |l| l.max(rx_mono_ns)));
    }
}

/// What the event loop publishes for `/metrics` and `/api/v1/status`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The channel's name (label `channel`).
    pub channel: String,
    /// The state of the nine (`docs/states.md`).
    pub state: State,
    /// This server sends on the live group.
    pub on_air: bool,
    /// The highest epoch this server knows.
    pub epoch: u64,
    /// The peer's sync address (label `peer`).
    pub peer: String,
    /// The peer was heard within the alarm's hold-off.
    pub sync_link_up: bool,
    /// Active alarms.
    pub alarms: Vec<Alarm>,
    /// Datagrams handed to the kernel on the live and the muted group (this engine's run).
    pub sent_live: u64,
    /// See `sent_live`.
    pub sent_muted: u64,
    /// Sends decided later than the pacer's late threshold.
    pub late_wakes: u64,
    /// Every send's lateness, by bucket (this engine's run).
    pub lateness: crate::pacing::LatenessHistogram,
    /// Counters kept by the driver.
    pub counters: ChannelCounters,
    /// The whole status object (schema `tandem.status/1`), for `/api/v1/status`.
    pub status: serde_json::Value,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Channel {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelState {
    channel: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelReason {
    channel: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelOutput {
    channel: String,
    output: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelAlarm {
    channel: String,
    alarm: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Peer {
    peer: String,
}

/// A histogram whose buckets were counted elsewhere (the pacer's [`LatenessHistogram`]):
/// rendered as a Prometheus histogram, filled by [`ConstHistogram::set`].
#[derive(Debug, Default)]
struct ConstHistogram(std::sync::Mutex<HistogramValues>);

/// Sum, count and `(upper bound, count in the bucket alone)` per bucket.
type HistogramValues = (f64, u64, Vec<(f64, u64)>);

impl ConstHistogram {
    /// `sum`, and per bucket `(upper bound, count in that bucket alone)`; the last bound is
    /// `f64::MAX` (`+Inf`).
    fn set(&self, sum: f64, buckets: Vec<(f64, u64)>) {
        let count = buckets.iter().map(|b| b.1).sum();
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = (sum, count, buckets);
    }
}

impl prometheus_client::metrics::TypedMetric for ConstHistogram {
    const TYPE: prometheus_client::metrics::MetricType =
        prometheus_client::metrics::MetricType::Histogram;
}

impl prometheus_client::encoding::EncodeMetric for ConstHistogram {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(g.0, g.1, &g.2, None)
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Histogram
    }
}

/// Registers a family and returns it for filling.
fn family<L, M>(reg: &mut Registry, name: &str, help: &str) -> Family<L, M>
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
    M: prometheus_client::metrics::TypedMetric
        + prometheus_client::encoding::EncodeMetric
        + Default
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let f = Family::<L, M>::default();
    reg.register(name, help, f.clone());
    f
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The snapshots (one per channel) in the Prometheus text format (OpenMetrics flavour of
/// `prometheus-client`, ending with `# EOF`).
pub fn render(snapshots: &[Snapshot]) -> String {
    let mut reg = Registry::default();
    let state: Family<ChannelState, Gauge> = family(
        &mut reg,
        "tandem_channel_state",
        "1 for the channel's current state of the nine (docs/states.md), 0 for the others",
    );
    let on_air: Family<Channel, Gauge> = family(
        &mut reg,
        "tandem_channel_on_air",
        "1 while this server sends the channel on its live group",
    );
    let epoch: Family<Channel, Gauge> = family(
        &mut reg,
        "tandem_channel_epoch",
        "The highest ownership epoch this server knows for the channel",
    );
    let switches: Family<ChannelReason, Counter> = family(
        &mut reg,
        "tandem_switches",
        "Takeovers of the live group by this server, by the trigger that made it go on air",
    );
    let gap: Family<Channel, Gauge<f64, std::sync::atomic::AtomicU64>> = family(
        &mut reg,
        "tandem_last_switch_gap_seconds",
        "The last switch onto this server, measured on the live group: the old owner's last datagram to this server's first, on arrival",
    );
    let missed: Family<Channel, Counter> = family(
        &mut reg,
        "tandem_heartbeats_missed",
        "Heartbeats of the peer that did not arrive",
    );
    let link: Family<Peer, Gauge> = family(
        &mut reg,
        "tandem_sync_link_up",
        "1 while the peer is heard on the sync link (within the alarm hold-off)",
    );
    let sent: Family<ChannelOutput, Counter> = family(
        &mut reg,
        "tandem_datagrams_sent",
        "Datagrams handed to the kernel, by output (live, muted), since the engine started",
    );
    let late: Family<Channel, Counter> = family(
        &mut reg,
        "tandem_pacer_late_wakes",
        "Sends decided later than the pacer's late threshold, since the engine started",
    );
    let lateness: Family<Channel, ConstHistogram> = family(
        &mut reg,
        "tandem_send_lateness_seconds",
        "How late each send was decided after its allowed time (timer wake-up and scheduling delay), since the engine started",
    );
    let alarm: Family<ChannelAlarm, Gauge> = family(
        &mut reg,
        "tandem_alarm_active",
        "1 while the alarm is raised (sync_link_lost, pair_unprotected, pacer_late, refused_messages)",
    );
    let item: Family<Channel, Gauge> = family(
        &mut reg,
        "tandem_playlist_item",
        "For a channel playing a playlist: the item (1-based) of the last datagram this server sent",
    );
    let items: Family<Channel, Gauge> = family(
        &mut reg,
        "tandem_playlist_items",
        "For a channel playing a playlist: the number of items in it",
    );
    for s in snapshots {
        let ch = || Channel {
            channel: s.channel.clone(),
        };
        let pl = &s.status["playlist"];
        if let (Some(i), Some(n)) = (pl["item"].as_u64(), pl["items"].as_u64()) {
            item.get_or_create(&ch()).set(gauge(i));
            items.get_or_create(&ch()).set(gauge(n));
        }
        for st in State::ALL {
            state
                .get_or_create(&ChannelState {
                    channel: s.channel.clone(),
                    state: st.name().to_string(),
                })
                .set(i64::from(st == s.state));
        }
        on_air.get_or_create(&ch()).set(i64::from(s.on_air));
        epoch.get_or_create(&ch()).set(gauge(s.epoch));
        for (reason, n) in &s.counters.switches {
            switches
                .get_or_create(&ChannelReason {
                    channel: s.channel.clone(),
                    reason: (*reason).to_string(),
                })
                .inc_by(*n);
        }
        if let Some(g) = s.counters.last_switch_gap_ns {
            gap.get_or_create(&ch()).set(g as f64 / 1e9);
        }
        missed
            .get_or_create(&ch())
            .inc_by(s.counters.heartbeats_missed);
        link.get_or_create(&Peer {
            peer: s.peer.clone(),
        })
        .set(i64::from(s.sync_link_up));
        for (output, n) in [("live", s.sent_live), ("muted", s.sent_muted)] {
            sent.get_or_create(&ChannelOutput {
                channel: s.channel.clone(),
                output: output.to_string(),
            })
            .inc_by(n);
        }
        late.get_or_create(&ch()).inc_by(s.late_wakes);
        let bounds = crate::pacing::LATENESS_BOUNDS_NS
            .iter()
            .map(|&b| b as f64 / 1e9)
            .chain([f64::MAX]);
        lateness.get_or_create(&ch()).set(
            s.lateness.sum_ns as f64 / 1e9,
            bounds.zip(s.lateness.counts).collect(),
        );
        for a in Alarm::ALL {
            alarm
                .get_or_create(&ChannelAlarm {
                    channel: s.channel.clone(),
                    alarm: a.name().to_string(),
                })
                .set(i64::from(s.alarms.contains(&a)));
        }
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}
