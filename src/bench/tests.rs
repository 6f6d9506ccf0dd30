//! Tests of the report side on synthetic trial records.

use std::net::SocketAddr;

use super::machine::MachineInfo;
use super::stall::{largest_gap_in, StallLog};
use super::summary::{BenchReport, Metric, Unit, Verdict};
use super::trial::{Arrival, Outcome, Trial, TrialInput};
use super::{html, text, AssetInfo, Fault, Settings};
use crate::recv::{Analyzer, Report};
use crate::stream::Framing;

const MS: u64 = 1_000_000;
const FRAME: u64 = 40 * MS;
const T0: u64 = 1_700_000_000_000_000_000;

fn pri() -> SocketAddr {
    "127.0.0.1:40001".parse().unwrap()
}
fn sec() -> SocketAddr {
    "127.0.0.1:40002".parse().unwrap()
}

fn report(changes: u64, cc: u64) -> Report {
    let mut r = Analyzer::new(Framing::Udp).report();
    r.sender_changes.count = changes;
    r.tr101290.cc_error.count = cc;
    r
}

/// The primary every 4 ms up to `last_ms`, the secondary every 4 ms from `first_ms`.
fn arrivals(last_ms: u64, first_ms: u64, until_ms: u64) -> Vec<Arrival> {
    let mut v = Vec::new();
    let mut t = 0;
    while t <= last_ms {
        v.push(Arrival {
            src: pri(),
            rx_ns: T0 + t * MS,
        });
        t += 4;
    }
    let mut t = first_ms;
    while t <= until_ms {
        v.push(Arrival {
            src: sec(),
            rx_ns: T0 + t * MS,
        });
        t += 4;
    }
    v
}

fn input<'a>(
    live: &'a [Arrival],
    muted: &'a [u64],
    r: &'a Report,
    stalls: &'a StallLog,
) -> TrialInput<'a> {
    TrialInput {
        n: 1,
        fault_real_ns: T0 + 101 * MS,
        phase_ns: Some(21 * MS),
        declared: Some((T0 + 106 * MS, "3 heartbeats missed".into())),
        live,
        muted_rx: muted,
        report: r,
        machine_stalls: stalls,
        frame_ns: FRAME,
        datagram_ns: 4 * MS,
        stall_threshold_ns: 5 * MS,
        error: None,
        primary_state_at_fault: Some("Primary".into()),
        secondary_state_at_fault: Some("Secondary_synchronized".into()),
        primary_retook: None,
        switch_late_ns: Some(3 * MS as i64),
    }
}

fn muted_every_4ms(until_ms: u64) -> Vec<u64> {
    (0..=until_ms / 4)
        .map(|k| T0 + 2 * MS + k * 4 * MS)
        .collect()
}

#[test]
fn a_clean_switch_gives_detection_switch_and_gap() {
    let live = arrivals(100, 107, 300);
    let muted = muted_every_4ms(106);
    let r = report(1, 0);
    let stalls = StallLog::default();
    let t = Trial::from_input(&input(&live, &muted, &r, &stalls));
    assert_eq!(t.outcome, Outcome::Switched);
    assert_eq!(t.detection_ns, Some(5 * MS as i64));
    assert_eq!(t.switch_ns, Some(MS as i64));
    assert_eq!(t.last_primary_rx_ns, Some(T0 + 100 * MS));
    assert_eq!(t.first_secondary_rx_ns, Some(T0 + 107 * MS));
    assert_eq!(t.gap_ns, Some(7 * MS));
    assert_eq!(t.switch_late_ns, Some(3 * MS as i64));
    assert_eq!(t.primary_after_switch, 0);
    assert_eq!(t.declared_reason.as_deref(), Some("3 heartbeats missed"));
    assert_eq!(t.datagrams_lost, Some(0));
    assert!(!t.stall.spoiled, "{:?}", t.stall);
    assert!(t.inside_frame(FRAME));
    assert!(!t.inside_frame(6 * MS));
}

#[test]
fn a_retake_by_the_rules_is_reported_apart_not_as_a_return() {
    // Switch at 107 ms; the new owner stalls; the original primary, by then its
    // synchronised secondary, declares it failed and takes the group back at 320 ms.
    let mut live = arrivals(100, 107, 300);
    for k in 0..10 {
        live.push(Arrival {
            src: pri(),
            rx_ns: T0 + (310 + 4 * k) * MS,
        });
    }
    let muted = muted_every_4ms(106);
    let mut r = report(2, 0);
    let change = |gap_us: f64| crate::recv::senders::SenderChange {
        t_s: 0.0,
        rx_ns: 0,
        datagram: 0,
        from: String::new(),
        to: String::new(),
        gap_us,
        rtp_seq_missing: None,
        cc_errors: 0,
        cc_lost_packets: 0,
        cc_error_pids: Vec::new(),
        datagrams_missing_est: None,
        ts_packets_missing_est: None,
    };
    r.sender_changes.list = vec![change(7_000.0), change(10_000.0)];
    let stalls = StallLog::default();
    let mut i = input(&live, &muted, &r, &stalls);
    let retook = Some((
        T0 + 309 * MS,
        "FailureDeclared: 3 heartbeats missed".to_string(),
    ));
    i.primary_retook = retook.clone();
    let t = Trial::from_input(&i);
    assert_eq!(t.primary_after_switch, 10);
    assert_eq!(t.retake_gap_ns, Some(10 * MS));
    assert!(t.inside_frame(FRAME));
    let m = Metric::from_values(Unit::Ns, vec![t.gap_ns.map(|g| g as i64)]);
    let v = Verdict::judge(std::slice::from_ref(&t), FRAME, &m);
    assert!(v.pass, "{:?}", v.failures);
    assert_eq!((v.retakes, v.extra_sender_changes), (1, 0));
    assert!(v.retake_lines[0].contains("3 heartbeats missed"));
    // A return with no takeover in the primary's own log (by itself) fails.
    i.primary_retook = None;
    let t = Trial::from_input(&i);
    assert!(!t.inside_frame(FRAME));
    // A "retake" logged before the switch (the primary's own earlier history) is not one.
    i.primary_retook = Some((T0 + 50 * MS, "FailureDeclared".into()));
    assert!(!Trial::from_input(&i).inside_frame(FRAME));
    // The same second change with a gap over a frame fails.
    let mut r2 = r.clone();
    r2.sender_changes.list[1].gap_us = 41_000.0;
    let mut i2 = input(&live, &muted, &r2, &stalls);
    i2.primary_retook = retook;
    assert!(!Trial::from_input(&i2).inside_frame(FRAME));
}

#[test]
fn the_primary_coming_back_is_not_inside_a_frame() {
    let mut live = arrivals(100, 107, 300);
    live.push(Arrival {
        src: pri(),
        rx_ns: T0 + 301 * MS,
    });
    let muted = muted_every_4ms(106);
    let r = report(2, 1);
    let stalls = StallLog::default();
    let t = Trial::from_input(&input(&live, &muted, &r, &stalls));
    assert_eq!(t.primary_after_switch, 1);
    assert_eq!(t.sender_changes, 2);
    assert_eq!(t.cc_errors, 1);
    assert!(!t.inside_frame(FRAME));
    let trials = [t];
    let m = Metric::from_values(Unit::Ns, vec![trials[0].gap_ns.map(|g| g as i64)]);
    let v = Verdict::judge(&trials, FRAME, &m);
    assert!(!v.pass);
    assert_eq!(v.extra_sender_changes, 1);
    assert!(
        v.failures[0].contains("2 changes of sender"),
        "{:?}",
        v.failures
    );
    assert!(
        v.failures[0].contains("primary sent 1 datagrams"),
        "{:?}",
        v.failures
    );
}

#[test]
fn no_other_sender_is_no_switch_and_an_error_is_an_error() {
    let live = arrivals(100, 1000, 0);
    let r = report(0, 0);
    let stalls = StallLog::default();
    let mut i = input(&live, &[], &r, &stalls);
    i.declared = None;
    let t = Trial::from_input(&i);
    assert_eq!(t.outcome, Outcome::NoSwitch);
    assert_eq!(t.gap_ns, None);
    assert_eq!(t.detection_ns, None);
    i.error = Some("secondary never synchronised".into());
    let e = Trial::from_input(&i);
    assert_eq!(e.outcome, Outcome::Error);
    let gap = Metric::from_values(Unit::Ns, vec![None, None]);
    let v = Verdict::judge(&[t, e], FRAME, &gap);
    assert!(!v.pass);
    assert_eq!((v.not_switched, v.errors, v.switched), (1, 1, 0));
    assert!(v.failures[1].contains("secondary never synchronised"));
}

#[test]
fn stalls_of_each_witness_spoil_a_trial() {
    // Primary silent 12 ms before the fault (stalled), secondary fine.
    let mut live: Vec<Arrival> = arrivals(84, 200, 300);
    live.push(Arrival {
        src: pri(),
        rx_ns: T0 + 96 * MS,
    });
    live.push(Arrival {
        src: pri(),
        rx_ns: T0 + 100 * MS,
    });
    live.sort_by_key(|a| a.rx_ns);
    let muted = muted_every_4ms(199);
    let r = report(1, 0);
    let stalls = StallLog::default();
    let t = Trial::from_input(&input(&live, &muted, &r, &stalls));
    assert_eq!(t.stall.primary_ns, 8 * MS, "{:?}", t.stall);
    assert_eq!(t.stall.secondary_ns, 0);
    assert!(t.stall.spoiled);
    // The machine watcher: a 15 ms stall ending 2 ms after the fault.
    let mut log = StallLog::default();
    log.record(T0 + 103 * MS, 15 * MS);
    log.record(T0 + 10 * MS, 30 * MS); // long before: not this trial's
    let live = arrivals(100, 107, 300);
    let muted = muted_every_4ms(106);
    let t = Trial::from_input(&input(&live, &muted, &r, &log));
    assert_eq!(t.stall.machine_ns, 15 * MS);
    assert!(t.stall.spoiled);
    assert_eq!(log.count, 2);
    assert_eq!(log.max_ns, 30 * MS);
    // The secondary's muted stream stops 20 ms before its first live datagram.
    let muted: Vec<u64> = muted_every_4ms(86);
    let t = Trial::from_input(&input(&live, &muted, &r, &StallLog::default()));
    assert_eq!(t.stall.secondary_ns, (107 - 86) * MS - 4 * MS);
    assert!(t.stall.spoiled);
}

#[test]
fn largest_gap_in_a_window() {
    let t = [10, 20, 30, 60, 70];
    assert_eq!(largest_gap_in(&t, 25, 35), 30); // 30 -> 60 spans the window's end
    assert_eq!(largest_gap_in(&t, 0, 15), 10);
    assert_eq!(largest_gap_in(&t, 65, 100), 30); // silent from 70 up to 100
    assert_eq!(largest_gap_in(&t, 0, 5), 0); // nothing yet
    assert_eq!(largest_gap_in(&[], 0, 5), 0);
    assert_eq!(largest_gap_in(&t, 40, 30), 0);
}

#[test]
fn metric_percentiles_max_and_hdr_round_trip() {
    let vals: Vec<Option<i64>> = (1..=1000).map(|k| Some(k * 10_000)).chain([None]).collect();
    let m = Metric::from_values(Unit::Ns, vals);
    assert_eq!(m.samples, 1000);
    assert_eq!(m.max, 10_000_000);
    let near = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.001;
    assert!(near(m.p50, 5_000_000), "{}", m.p50);
    assert!(near(m.p90, 9_000_000), "{}", m.p90);
    assert!(near(m.p99, 9_900_000), "{}", m.p99);
    assert!(near(m.p999, 9_990_000), "{}", m.p999);
    assert_eq!(m.values.len(), 1001);
    assert_eq!(m.values[1000], None);
    let h = m.histogram().expect("hdr decodes");
    assert_eq!(h.len(), 1000);
    assert_eq!(h.value_at_quantile(0.5), m.p50);
    let neg = Metric::from_values(Unit::Ns, vec![Some(-5), Some(7)]);
    assert_eq!((neg.negative, neg.samples, neg.max), (1, 2, 7));
    let one = Metric::from_values(Unit::Ns, vec![Some(494_670_242)]);
    assert_eq!(
        (one.p50, one.p999, one.max),
        (494_670_242, 494_670_242, 494_670_242)
    );
    let empty = Metric::from_values(Unit::Count, vec![]);
    assert_eq!((empty.samples, empty.p99, empty.max), (0, 0, 0));
}

fn synthetic_trials(gaps_ms: &[u64]) -> Vec<Trial> {
    let r = report(1, 0);
    let stalls = StallLog::default();
    gaps_ms
        .iter()
        .enumerate()
        .map(|(k, g)| {
            let live = arrivals(100, 100 + g, 300);
            let muted = muted_every_4ms(100 + g - 1);
            let mut i = input(&live, &muted, &r, &stalls);
            i.n = k as u32 + 1;
            Trial::from_input(&i)
        })
        .collect()
}

fn bench_report(trials: Vec<Trial>) -> BenchReport {
    BenchReport::new(
        Settings {
            fault: Fault::Kill,
            switch_at: "seamless".into(),
            trials: trials.len() as u32,
            miss: Some(3),
            heartbeat_us: None,
            framing: "rtp".into(),
            seed: 7,
            pair: "tandem primary/secondary".into(),
            inject: None,
            stall_threshold_us: 5000,
            lab: None,
            command: "tandem bench failover <x>".into(),
            effective: Some(super::Effective {
                heartbeat_us: 4444,
                miss: 3,
                detection_window_us: 13333,
            }),
        },
        AssetInfo {
            path: "fixtures/cbr-25fps.ts".into(),
            size: 942444,
            hash: "f1bc".into(),
            frame_rate: "25/1".into(),
            frame_ns: FRAME,
            datagram_ns: 4 * MS,
            duration_s: 3.0,
        },
        MachineInfo::parse(
            "processor : 0\nmodel name : Test CPU\nprocessor : 1\n",
            "0.5 0.4 0.3 1/2 3",
            "6.1.0\n",
            "box",
            1,
        ),
        trials,
        &StallLog::default(),
        5 * MS,
        T0,
        T0 + 1,
    )
}

#[test]
fn verdict_pass_fail_and_aim() {
    let r = bench_report(synthetic_trials(&[3, 5, 7, 9]));
    assert!(r.verdict.pass, "{:?}", r.verdict.failures);
    assert_eq!(r.verdict.switched, 4);
    assert_eq!(r.verdict.over_aim, 0);
    assert!(r.verdict.aim_met);
    assert_eq!(r.metrics.gap.max, 9 * MS);
    let r = bench_report(synthetic_trials(&[3, 12, 41]));
    assert!(!r.verdict.pass);
    assert_eq!(r.verdict.over_frame, 1);
    assert_eq!(r.verdict.over_aim, 2);
    assert!(!r.verdict.aim_met);
    assert_eq!(r.verdict.failures.len(), 1);
    assert!(r.verdict.failures[0].starts_with("trial 3: gap 41.000 ms >= frame 40.000 ms"));
    let table = text::table(&r);
    assert!(table.contains("FAIL (max 41.000 >= 40.000 ms)"), "{table}");
    assert!(table.contains("RESULT: FAIL (seamless mode)"), "{table}");
    assert!(
        table.contains("heartbeat 4444 us x miss 3 = detection window 13.333 ms"),
        "{table}"
    );
    let ok = text::table(&bench_report(synthetic_trials(&[3])));
    assert!(ok.contains("PASS (max 3.000 < 40.000 ms)"), "{ok}");
    assert!(ok.contains("RESULT: PASS"), "{ok}");
}

#[test]
fn json_has_schema_trials_metrics_and_round_trips() {
    let r = bench_report(synthetic_trials(&[3, 5, 7]));
    let s = serde_json::to_string(&r).unwrap();
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v["schema"], "tandem.bench.failover/1");
    assert_eq!(v["trials"].as_array().unwrap().len(), 3);
    assert_eq!(v["trials"][1]["gap_ns"], 5 * MS);
    assert_eq!(v["trials"][0]["outcome"], "switched");
    assert_eq!(v["metrics"]["gap"]["unit"], "ns");
    assert_eq!(v["metrics"]["late"]["max"], 3 * MS);
    assert_eq!(v["metrics"]["gap"]["max"], 7 * MS);
    assert_eq!(v["metrics"]["gap"]["values"][2], 7 * MS);
    assert!(!v["metrics"]["gap"]["hdr"].as_str().unwrap().is_empty());
    assert_eq!(v["settings"]["fault"], "kill");
    assert_eq!(v["machine"]["cores"], 2);
    assert_eq!(v["machine"]["cpu_model"], "Test CPU");
    assert_eq!(v["verdict"]["pass"], true);
    let back: BenchReport = serde_json::from_str(&s).unwrap();
    assert_eq!(back, r);
}

#[test]
fn html_is_self_contained_with_plots_and_escaped_text() {
    let mut r = bench_report(synthetic_trials(&[3, 12, 41]));
    r.settings.command = "tandem bench failover <script>".into();
    let page = html::page(&r);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_eq!(
        page.matches("<svg").count(),
        3,
        "CDF, histogram, phase plot"
    );
    assert!(page.contains("&lt;script&gt;"));
    assert!(!page.contains("<script"));
    assert!(!page.contains("src=\"http"));
    assert!(page.contains("FAIL"));
    assert!(page.contains("Test CPU"));
    assert!(page.contains("fixtures/cbr-25fps.ts"));
}

#[test]
fn machine_info_parses_proc_texts() {
    let m = MachineInfo::parse(
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n",
        "1.25 0.80 0.55 2/345 6789\n",
        "6.8.0-45-generic\n",
        "bench-host\n",
        9,
    );
    assert_eq!(m.cores, 2);
    assert_eq!(m.cpu_model, "Intel(R) Xeon(R) CPU @ 2.20GHz");
    assert_eq!(m.kernel, "6.8.0-45-generic");
    assert_eq!(m.load_avg, [1.25, 0.80, 0.55]);
    assert_eq!(m.hostname, "bench-host");
    assert!(m.line().contains("2 x Intel"));
    let empty = MachineInfo::parse("", "garbage", "", "", 4);
    assert_eq!(empty.cores, 4);
    assert_eq!(empty.load_avg, [0.0; 3]);
}

#[test]
fn frame_rate_labels() {
    assert_eq!(text::fps("25/1"), "25");
    assert_eq!(text::fps("60000/1001"), "59.94");
    assert_eq!(text::fps("30000/1001"), "29.97");
    assert_eq!(text::fps("0/0"), "0/0");
    assert_eq!(text::fps("x"), "x");
}

#[test]
fn a_switch_before_the_fault_is_flagged_and_has_no_detection_latency() {
    // The primary failed by itself at 60 ms (its kernel), the secondary took over at 66 ms;
    // the benchmark's kill came at 101 ms.
    let live = arrivals(60, 66, 300);
    let muted = muted_every_4ms(65);
    let r = report(1, 0);
    let stalls = StallLog::default();
    let mut i = input(&live, &muted, &r, &stalls);
    i.declared = Some((T0 + 65 * MS, "FailedNotice: pacer".into()));
    let t = Trial::from_input(&i);
    assert!(t.switched_before_fault);
    assert_eq!(t.outcome, Outcome::Switched);
    assert_eq!(t.gap_ns, Some(6 * MS));
    assert_eq!(t.detection_ns, None);
    assert_eq!(t.switch_ns, Some(MS as i64));
    // Stall windows centre on the primary's last datagram, not on the later fault.
    assert_eq!(t.stall.primary_ns, 0, "{:?}", t.stall);
    assert!(t.inside_frame(FRAME));
    let gap = Metric::from_values(Unit::Ns, vec![Some(6 * MS as i64)]);
    let v = Verdict::judge(&[t], FRAME, &gap);
    assert!(v.pass);
    assert_eq!(v.switched_before_fault, 1);
}

#[test]
fn no_switch_names_a_secondary_that_was_not_ready() {
    let live = arrivals(100, 1000, 0);
    let r = report(0, 0);
    let stalls = StallLog::default();
    let mut i = input(&live, &[], &r, &stalls);
    i.declared = None;
    i.secondary_state_at_fault = Some("Failed".into());
    let t = Trial::from_input(&i);
    let gap = Metric::from_values(Unit::Ns, vec![None]);
    let v = Verdict::judge(&[t], FRAME, &gap);
    assert_eq!(v.secondary_not_ready, 1);
    assert!(
        v.failures[0].contains("the secondary was Failed at the fault"),
        "{:?}",
        v.failures
    );
}

#[test]
fn muted_datagrams_after_the_switch_do_not_count_as_a_secondary_stall() {
    let live = arrivals(100, 107, 300);
    // Muted stream up to the switch, then (old primary resynchronising) 46 ms later.
    let mut muted = muted_every_4ms(106);
    muted.push(T0 + 153 * MS);
    let r = report(1, 0);
    let stalls = StallLog::default();
    let t = Trial::from_input(&input(&live, &muted, &r, &stalls));
    assert!(!t.stall.spoiled, "{:?}", t.stall);
    assert_eq!(t.stall.secondary_ns, 0);
}
