//! `tandem bench failover` end to end, kept small for CI: a few trials prove the harness
//! works (real processes, real sockets, JSON and HTML written). Latencies are reported by
//! the benchmark, never asserted here (shared, noisy machine).

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tandem-test-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Removes a passing test's outputs, and the shared directory once it is empty.
fn clean(files: &[&PathBuf]) {
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    if let Some(dir) = files.first().and_then(|f| f.parent()) {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Runs the benchmark and returns its exit code and parsed JSON. A run in which a stall of
/// this shared machine made the secondary take over before the fault was injected (by the
/// rules; the trial says `switched_before_fault` and has no detection latency) measured
/// nothing of the fault: it is run again, three runs at most.
fn bench(args: &[&str], json: &PathBuf) -> (i32, serde_json::Value) {
    let mut last = bench_once(args, json);
    for attempt in 1..3 {
        let early = last.1["trials"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["switched_before_fault"] == true));
        if !early {
            break;
        }
        eprintln!("run {attempt}: a stall switched a trial before its fault; again");
        last = bench_once(args, json);
    }
    last
}

/// One run of the benchmark.
fn bench_once(args: &[&str], json: &PathBuf) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .current_dir(root())
        .args(["bench", "failover"])
        .args(args)
        .arg("--json")
        .arg(json)
        .arg("--quiet")
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        code == 0 || code == 1,
        "exit {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("RESULT: "), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap())
        .unwrap_or_else(|e| panic!("{e}\n{stdout}\n{stderr}"));
    // The exit code follows the verdict.
    assert_eq!(code == 0, v["verdict"]["pass"] == true, "{stdout}");
    (code, v)
}

fn assert_real_trials(v: &serde_json::Value, n: usize) {
    assert_eq!(v["schema"], "tandem.bench.failover/1");
    let trials = v["trials"].as_array().unwrap();
    assert_eq!(trials.len(), n, "{v}");
    for t in trials {
        assert_eq!(t["outcome"], "switched", "{t}");
        let gap = t["gap_ns"].as_u64().expect("gap measured");
        assert!(gap > 0, "{t}");
        assert!(t["detection_ns"].is_i64(), "{t}");
        assert!(t["switch_ns"].is_i64(), "{t}");
        assert!(t["fault_real_ns"].as_u64().unwrap() > 0);
        assert!(
            t["first_secondary_rx_ns"].as_u64().unwrap()
                > t["last_primary_rx_ns"].as_u64().unwrap()
        );
        assert!(t["datagrams_lost"].is_u64(), "{t}");
        assert!(t["cc_errors"].is_u64(), "{t}");
    }
    assert_eq!(v["metrics"]["gap"]["samples"].as_u64(), Some(n as u64));
    assert!(v["metrics"]["gap"]["max"].as_u64().unwrap() > 0);
    assert!(!v["metrics"]["gap"]["hdr"].as_str().unwrap().is_empty());
    assert!(v["machine"]["cores"].as_u64().unwrap() >= 1);
    assert_eq!(v["asset"]["frame_ns"], 40_000_000);
}

/// The CI share of the benchmark: three kill trials of a real pair.
#[test]
fn three_kill_trials_of_a_real_pair_give_real_numbers() {
    let json = tmp("kill.json");
    let (_, v) = bench(
        &["fixtures/cbr-25fps.ts", "--trials", "3", "--fault", "kill"],
        &json,
    );
    assert_real_trials(&v, 3);
    assert_eq!(v["settings"]["pair"], "tandem primary/secondary");
    assert_eq!(v["settings"]["switch_at"], "seamless");
    // The servers' own heartbeat settings, read from tandem status.
    let e = &v["settings"]["effective"];
    assert!(e["heartbeat_us"].as_u64().unwrap() > 0, "{e}");
    assert!(e["detection_window_us"].as_u64().unwrap() > 0, "{e}");
    for t in v["trials"].as_array().unwrap() {
        // The secondary's own event log named the declaration.
        assert!(
            t["declared_reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{t}"
        );
        // The fault's phase is drawn within one frame (40 ms) and measured when the signal
        // is sent: a loaded machine can deliver it a few ms late, never a frame late.
        assert!(t["phase_ns"].as_u64().unwrap() < 80_000_000, "{t}");
        assert_eq!(t["sender_changes"], 1, "{t}");
    }
    clean(&[&json]);
}

/// The `link` fault in a namespace lab (CI runs as root; without root this fails, it does not
/// skip): the primary's port on the live network goes down while its sync link stays up.
/// Heartbeats never go missing, so only the live-path rule can declare it.
#[test]
fn link_fault_is_declared_by_the_live_path_rule_and_loses_nothing() {
    let json = tmp("link.json");
    let (_, v) = bench(
        &["fixtures/cbr-25fps.ts", "--trials", "3", "--fault", "link"],
        &json,
    );
    assert_real_trials(&v, 3);
    assert_eq!(v["settings"]["fault"], "link");
    for t in v["trials"].as_array().unwrap() {
        let why = t["declared_reason"].as_str().unwrap_or_default();
        assert!(why.contains("live path broken"), "{t}");
        assert_eq!(t["sender_changes"], 1, "{t}");
        // Seamless: the secondary continues after the last datagram the viewer got.
        assert_eq!(t["datagrams_lost"], 0, "{t}");
        assert_eq!(t["duplicates"], 0, "{t}");
    }
    clean(&[&json]);
}

#[test]
fn harness_check_with_two_players_writes_json_and_html() {
    let json = tmp("fake.json");
    let html = tmp("fake.html");
    let (_, v) = bench(
        &[
            "fixtures/cbr-25fps.ts",
            "--trials",
            "2",
            "--fault",
            "kill",
            "--pair",
            "fake-play",
            "--settle-ms",
            "100",
            "--tail-ms",
            "200",
            "--report",
            html.to_str().unwrap(),
        ],
        &json,
    );
    assert_real_trials(&v, 2);
    assert_eq!(v["settings"]["fault"], "kill");
    // The fake pair's phase is known from its --start-at.
    assert!(v["trials"][0]["phase_ns"].as_u64().unwrap() < 40_000_000);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("cbr-25fps.ts"));
    clean(&[&json, &html]);
}

#[test]
fn bad_input_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .current_dir(root())
        .args(["bench", "failover", "fixtures/not-ts.bin", "--trials", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .current_dir(root())
        .args([
            "bench",
            "failover",
            "fixtures/cbr-25fps.ts",
            "--switch-at",
            "never",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--switch-at never"));
}
