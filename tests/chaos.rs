//! CI's share of the chaos benchmark: `tandem bench chaos` for 60 s with a fixed seed on a
//! pair in the namespace lab (two hosts and a viewer), kill -9 and restarts, SIGSTOP, the
//! sync link down, the live port of the server on air down. It fails on a crash or on time
//! with two senders on the live group (the run's goals) and prints the loss figures.
//!
//! Root only (CI runs as root): it FAILS when it cannot build the lab, it never skips. The
//! benchmark removes its lab itself (also when it fails).

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tandem");

#[test]
fn a_minute_of_mixed_faults_crashes_nothing_and_never_puts_two_senders_on_air() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = std::env::temp_dir().join(format!("tandem-chaos-test-{}", std::process::id()));
    let json = work.join("chaos.json");
    std::fs::create_dir_all(&work).unwrap();
    let out = Command::new(BIN)
        .current_dir(&root)
        .args(["bench", "chaos", "fixtures/cbr-25fps.ts", "--seconds", "60"])
        .args(["--seed", "7", "--lab", "tch", "--quiet"])
        .arg("--json")
        .arg(&json)
        .arg("--work-dir")
        .arg(&work)
        .output()
        .expect("running tandem bench chaos");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&json)
            .unwrap_or_else(|e| panic!("no report ({e}): {stdout}{stderr}")),
    )
    .unwrap();
    assert_eq!(report["schema"], "tandem.bench.chaos/1");
    let faults = report["faults"].as_array().unwrap();
    assert!(
        faults.len() >= 8,
        "a minute holds at least 8 faults: {report}"
    );
    let kinds: std::collections::BTreeSet<&str> =
        faults.iter().filter_map(|f| f["kind"].as_str()).collect();
    assert!(kinds.len() >= 3, "several kinds: {kinds:?}");
    let f = &report["figures"];
    // 55 s of a 2.5 Mb/s stream: about 13,000 datagrams; the output must have gone on.
    assert!(f["datagrams"].as_u64().unwrap() > 10_000, "{f}");
    // Every change of sender came after a fault.
    for c in f["changes"].as_array().unwrap() {
        assert!(c["after_fault"].is_string(), "{c}");
    }
    // The goals.
    assert_eq!(report["crashes"], serde_json::json!([]), "{report}");
    assert_eq!(f["two_senders_ms"], 0.0, "{f}");
    assert!(out.status.success(), "goals not met: {stdout}");
    assert_eq!(report["goals"]["met"], true);
    let _ = std::fs::remove_dir_all(&work);
}
