//! The rendering of a snapshot, and the driver's counters.

use super::*;
use crate::failover::machine::Trigger;

fn transition(from: State, to: State, trigger: Trigger) -> Transition {
    Transition {
        from,
        to,
        trigger,
        detail: String::new(),
        at: 0,
    }
}

fn snapshot() -> Snapshot {
    let mut counters = ChannelCounters::default();
    counters.on_transition(&transition(
        State::PrimaryOffline,
        State::PrimaryNoSecondary,
        Trigger::Started,
    ));
    counters.on_transition(&transition(
        State::SecondarySynchronized,
        State::SecondaryNoPrimary,
        Trigger::FailureDeclared,
    ));
    counters.on_transition(&transition(
        State::SecondaryNoPrimary,
        State::Primary,
        Trigger::SecondarySynchronized,
    ));
    Snapshot {
        channel: "news".into(),
        state: State::Primary,
        on_air: true,
        epoch: 3,
        peer: "10.0.0.2:5000".into(),
        sync_link_up: false,
        alarms: vec![Alarm::SyncLinkLost],
        sent_live: 1_200,
        sent_muted: 40,
        late_wakes: 7,
        lateness: {
            let mut h = crate::pacing::LatenessHistogram::default();
            for ns in [10_000, 30_000, 30_000, 700_000, 60_000_000] {
                h.record(ns);
            }
            h
        },
        counters,
        status: serde_json::json!({}),
    }
}

/// The value of the sample `name{labels}` in `text`.
fn sample(text: &str, series: &str) -> Option<String> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')
            .map(str::to_string)
    })
}

#[test]
fn a_snapshot_renders_every_named_series() {
    let t = render(&[snapshot()]);
    let one = |s: &str| sample(&t, s).unwrap_or_else(|| panic!("no {s} in\n{t}"));
    assert_eq!(
        one(r#"tandem_channel_state{channel="news",state="Primary"}"#),
        "1"
    );
    assert_eq!(
        one(r#"tandem_channel_state{channel="news",state="Secondary_synchronized"}"#),
        "0"
    );
    let states = t
        .lines()
        .filter(|l| l.starts_with("tandem_channel_state{"))
        .count();
    assert_eq!(states, 9, "{t}");
    assert_eq!(one(r#"tandem_channel_on_air{channel="news"}"#), "1");
    assert_eq!(one(r#"tandem_channel_epoch{channel="news"}"#), "3");
    // A start is not a switch; the takeover is; becoming Primary from on air is not.
    assert_eq!(
        one(r#"tandem_switches_total{channel="news",reason="FailureDeclared"}"#),
        "1"
    );
    assert!(!t.contains(r#"reason="Started""#), "{t}");
    assert!(!t.contains(r#"reason="SecondarySynchronized""#), "{t}");
    assert_eq!(one(r#"tandem_sync_link_up{peer="10.0.0.2:5000"}"#), "0");
    assert_eq!(
        one(r#"tandem_datagrams_sent_total{channel="news",output="live"}"#),
        "1200"
    );
    assert_eq!(
        one(r#"tandem_datagrams_sent_total{channel="news",output="muted"}"#),
        "40"
    );
    assert_eq!(one(r#"tandem_pacer_late_wakes_total{channel="news"}"#), "7");
    assert_eq!(
        one(r#"tandem_alarm_active{channel="news",alarm="sync_link_lost"}"#),
        "1"
    );
    assert_eq!(
        one(r#"tandem_alarm_active{channel="news",alarm="pair_unprotected"}"#),
        "0"
    );
    assert!(t.contains("# TYPE tandem_switches counter"), "{t}");
    assert!(t.trim_end().ends_with("# EOF"), "{t}");
    // Not a playlist: no playlist series.
    assert!(!t.contains("tandem_playlist_item{"), "{t}");
}

#[test]
fn a_playlist_channel_says_which_item_is_on_air() {
    let mut s = snapshot();
    s.status = serde_json::json!({"playlist": {"items": 12, "item": 3, "pass": 1}});
    let t = render(&[s]);
    assert_eq!(
        sample(&t, r#"tandem_playlist_item{channel="news"}"#).as_deref(),
        Some("3"),
        "{t}"
    );
    assert_eq!(
        sample(&t, r#"tandem_playlist_items{channel="news"}"#).as_deref(),
        Some("12"),
        "{t}"
    );
}

#[test]
fn missed_heartbeats_are_counted_in_whole_periods() {
    let mut c = ChannelCounters::default();
    let p = 10_000_000;
    c.on_peer_heard(0, p);
    c.on_peer_heard(p, p); // on time
    c.on_peer_heard(p + p * 14 / 10, p); // a little late: nothing missed
    assert_eq!(c.heartbeats_missed, 0);
    c.on_peer_heard(p + p * 14 / 10 + 5 * p, p); // four missing
    assert_eq!(c.heartbeats_missed, 4);
    c.on_peer_heard(3 * p, p); // out of order: nothing
    assert_eq!(c.heartbeats_missed, 4);
}

#[test]
fn the_send_lateness_is_a_cumulative_histogram_in_seconds() {
    let t = render(&[snapshot()]);
    let at = |le: &str| {
        sample(
            &t,
            &format!("tandem_send_lateness_seconds_bucket{{le=\"{le}\",channel=\"news\"}}"),
        )
        .unwrap_or_else(|| panic!("no bucket le={le} in\n{t}"))
    };
    // 10 us and 2 x 30 us, 700 us, 60 ms: cumulative counts per upper bound.
    assert_eq!(at("0.000025"), "1");
    assert_eq!(at("0.00005"), "3");
    assert_eq!(at("0.0005"), "3");
    assert_eq!(at("0.001"), "4");
    assert_eq!(at("0.05"), "4");
    assert_eq!(at("+Inf"), "5");
    assert_eq!(
        sample(&t, "tandem_send_lateness_seconds_count{channel=\"news\"}").as_deref(),
        Some("5")
    );
    let sum: f64 = sample(&t, "tandem_send_lateness_seconds_sum{channel=\"news\"}")
        .unwrap()
        .parse()
        .unwrap();
    assert!((sum - 0.06077).abs() < 1e-9, "{sum}");
    assert!(
        t.contains("# TYPE tandem_send_lateness_seconds histogram"),
        "{t}"
    );
}
