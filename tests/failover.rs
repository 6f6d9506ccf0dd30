//! Integration tests of the failover pair with real processes and real sockets on loopback:
//! `tandem primary` / `tandem secondary` (and `monitor`, `sync`, `request`, `status`), a
//! `tandem recv` receiver on the live group, faults made for real (kill -9, SIGSTOP,
//! injected component faults).
//!
//! Each scenario uses its own ports and groups (see `common::Net`) and runs a few seconds.

mod common;

use std::time::Duration;

use common::*;

const SEC: Duration = Duration::from_secs(1);

/// Starts a synchronised pair on `fixture` with extra flags; returns (dir, net, asset,
/// primary, secondary).
#[allow(dead_code)]
fn pair(
    name: &str,
    fixture_name: &str,
    scheme: &str,
    p_extra: &[&str],
    s_extra: &[&str],
) -> (std::path::PathBuf, Net, String, Proc, Proc) {
    let dir = scratch(name);
    let asset = fixture(fixture_name, &dir).display().to_string();
    let net = Net::new();
    let mut pa = vec!["primary".to_string(), asset.clone(), "--loop".into()];
    pa.extend(net.primary_args(scheme));
    pa.extend(args(p_extra));
    let p = Proc::spawn("primary", &dir, &pa);
    let mut sa = vec!["secondary".to_string(), asset.clone(), "--loop".into()];
    sa.extend(net.secondary_args(scheme));
    sa.extend(args(s_extra));
    let s = Proc::spawn("secondary", &dir, &sa);
    wait_state(net.ctl_s, "Secondary_synchronized", 10 * SEC, &[&p, &s]);
    wait_state(net.ctl_p, "Primary", 5 * SEC, &[&p, &s]);
    (dir, net, asset, p, s)
}

/// The one change of sender in a receiver report: (gap us, cc errors, TS packets missing).
fn one_switch(r: &serde_json::Value, logs: &[&Proc]) -> (f64, u64, i64) {
    let ch = &r["sender_changes"];
    let dump = || {
        logs.iter()
            .map(|p| format!("--- {} ---\n{}", p.name, p.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(ch["count"], 1, "sender changes: {ch}\n{}", dump());
    let c = &ch["list"][0];
    (
        c["gap_us"].as_f64().unwrap(),
        c["cc_errors"].as_u64().unwrap(),
        c["ts_packets_missing_est"].as_i64().unwrap_or(i64::MAX),
    )
}

/// Starts the two servers (without waiting).
fn spawn_pair(
    dir: &std::path::Path,
    net: &Net,
    asset: &str,
    scheme: &str,
    p_extra: &[&str],
    s_extra: &[&str],
) -> (Proc, Proc) {
    let mut pa = vec!["primary".to_string(), asset.to_string()];
    pa.extend(net.primary_args(scheme));
    pa.extend(args(p_extra));
    let p = Proc::spawn("primary", dir, &pa);
    let mut sa = vec!["secondary".to_string(), asset.to_string()];
    sa.extend(net.secondary_args(scheme));
    sa.extend(args(s_extra));
    let s = Proc::spawn("secondary", dir, &sa);
    (p, s)
}

/// kill -9 of the primary mid-session: one change of sender inside one frame, nothing lost,
/// and the capture of the whole session (one pass) decodes to every frame of the asset.
fn kill_9_case(fixture_name: &str, scheme: &str, frame_us: f64) {
    let dir = scratch("kill9");
    let asset = fixture(fixture_name, &dir).display().to_string();
    let net = Net::new();
    let cap = dir.join("capture.ts");
    let rx = Recv::start(&dir, &net.live_url(scheme), 4.5, Some(&cap));
    let (mut p, mut s) = spawn_pair(&dir, &net, &asset, scheme, &[], &[]);
    wait_state(net.ctl_s, "Secondary_synchronized", 10 * SEC, &[&p, &s]);
    p.wait_log("on air", SEC);
    std::thread::sleep(Duration::from_millis(1200));
    p.kill9();
    s.wait_log("Secondary_synchronized -> Secondary_no_primary", 3 * SEC);
    let st = status(net.ctl_s).unwrap();
    assert_eq!(state(&st), "Secondary_no_primary");
    assert_eq!(st["switches"].as_array().unwrap().len(), 1, "{st}");
    // The secondary plays the session to its end and exits.
    let (code, _) = s.wait_exit(10 * SEC);
    assert_eq!(code, Some(0), "{}", s.log_text());
    let r = rx.report();
    let (gap_us, cc, missing) = one_switch(&r, &[&s]);
    assert!(
        gap_us < frame_us,
        "gap {gap_us} us is not inside one frame ({frame_us} us)"
    );
    assert_eq!(cc, 0, "CC errors at the switch: {r}");
    assert_eq!(missing, 0, "TS packets missing at the switch: {r}");
    assert_eq!(r["tr101290"]["cc_error"]["count"], 0, "{r}");
    let frames = ffprobe_ok(&cap).unwrap();
    let whole = ffprobe_ok(std::path::Path::new(&asset)).unwrap();
    assert_eq!(
        frames, whole,
        "frames decoded from the capture vs the asset"
    );
}

#[test]
fn kill_9_primary_seamless_switch_inside_one_frame_25fps_udp() {
    kill_9_case("cbr-25fps.ts", "udp", 40_000.0);
}

#[test]
fn kill_9_primary_seamless_switch_inside_one_frame_5994fps_rtp() {
    kill_9_case("cbr-59.94fps.ts", "rtp", 16_683.0);
}
