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

/// The longest a receiver runs: it is stopped (`Recv::stop`) once the scenario is over, so
/// a slow start of the servers on a loaded machine cannot push the events out of its window.
const RX_MAX_S: f64 = 60.0;

/// Detection settings for scenarios that do not measure the switch time: a 100 ms window, so
/// that the stalls of this shared machine (10-50 ms under load) do not swap the
/// roles before the fault under test.
const CALM: [&str; 2] = ["--heartbeat-us=10000", "--miss=10"];

fn calm(extra: &[&'static str]) -> Vec<&'static str> {
    CALM.iter().copied().chain(extra.iter().copied()).collect()
}

/// Starts a synchronised pair on `fixture` with extra flags; returns (dir, net, asset,
/// primary, secondary).
fn pair(
    name: &str,
    fixture_name: &str,
    scheme: &str,
    p_extra: &[&str],
    s_extra: &[&str],
) -> (common::Scratch, Net, String, Proc, Proc) {
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

/// kill -9 of the server on air mid-session: one change of sender inside one frame after the
/// kill, nothing lost, and the capture of the whole session (one pass) decodes to every
/// frame of the asset.
///
/// The default detection window is a third of a frame (5.6 ms at 59.94 fps), and this
/// shared machine stalls a process that long every few seconds even when idle: a stall
/// before the kill is a failure the standby must act on, and the pair swaps roles (the
/// method working, not a fault of the test). So the test does not insist on the first
/// primary: once the pair is stable it kills whichever server is on air, and asserts on the
/// change of sender that follows the kill. The whole capture is asserted too (no CC error,
/// every frame), so a takeover before the kill must be seamless as well. Only a takeover in
/// the few milliseconds between finding the server on air and killing it makes the run say
/// nothing; it is run again (at most three times).
fn kill_9_case(fixture_name: &str, scheme: &str, frame_us: f64, stall_first: bool) {
    kill_9_case_at(fixture_name, &[], None, scheme, frame_us, stall_first)
}

/// [`kill_9_case`] over a playlist of `clips` (fixtures; empty: the one fixture) with the
/// kill aimed at `kill_at_ms` after the origin of the session (a join).
fn kill_9_case_at(
    fixture_name: &str,
    clips: &[&str],
    kill_at_ms: Option<u64>,
    scheme: &str,
    frame_us: f64,
    stall_first: bool,
) {
    for attempt in 1..=3 {
        if kill_9_attempt(
            fixture_name,
            clips,
            kill_at_ms,
            scheme,
            frame_us,
            stall_first,
        ) {
            return;
        }
        eprintln!("attempt {attempt}: the roles changed between finding the server on air and the kill; again");
    }
    panic!("the roles changed at the moment of the kill in three attempts");
}

/// Occurrences of `needle` in the log of `p`.
fn log_count(p: &Proc, needle: &str) -> usize {
    p.log_text().matches(needle).count()
}

/// Waits until one server reports `Primary` and the other `Secondary_synchronized`; returns
/// the index (0: the first primary, 1: the first secondary) of the one on air.
fn stable_pair(net: &Net, procs: [&Proc; 2]) -> usize {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < 10 * SEC {
        let a = status(net.ctl_p).map(|s| state(&s)).unwrap_or_default();
        let b = status(net.ctl_s).map(|s| state(&s)).unwrap_or_default();
        match (a.as_str(), b.as_str()) {
            ("Primary", "Secondary_synchronized") => return 0,
            ("Secondary_synchronized", "Primary") => return 1,
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    panic!(
        "the pair did not settle into Primary + Secondary_synchronized in 10 s\n--- primary ---\n{}\n--- secondary ---\n{}",
        procs[0].log_text(),
        procs[1].log_text()
    );
}

/// Wall-clock now in ns (the receiver's kernel timestamps are CLOCK_REALTIME).
fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// One run of [`kill_9_case`]; false when the roles changed at the moment of the kill.
/// `stall_first`: stop the first primary for 40 ms (SIGSTOP) before the kill, so that the
/// first secondary takes over and the first primary comes back as the secondary; the kill
/// is then of the first secondary, and the takeover by a server that joined a session in
/// progress is the one measured.
fn kill_9_attempt(
    fixture_name: &str,
    clips: &[&str],
    kill_at_ms: Option<u64>,
    scheme: &str,
    frame_us: f64,
    stall_first: bool,
) -> bool {
    const TAKE: &str = "Secondary_synchronized -> Secondary_no_primary";
    let dir = scratch("kill9");
    let asset = if clips.is_empty() {
        fixture(fixture_name, &dir).display().to_string()
    } else {
        let list: Vec<String> = clips
            .iter()
            .map(|c| fixture(c, &dir).display().to_string())
            .collect();
        let m3u = dir.join(fixture_name);
        std::fs::write(&m3u, list.join("\n")).unwrap();
        m3u.display().to_string()
    };
    let net = Net::new();
    let cap = dir.join("capture.ts");
    let rx = Recv::start(&dir, &net.live_url(scheme), RX_MAX_S, Some(&cap));
    let (p, s) = spawn_pair(&dir, &net, &asset, scheme, &[], &[]);
    wait_state(net.ctl_s, "Secondary_synchronized", 10 * SEC, &[&p, &s]);
    p.wait_log("on air", SEC);
    std::thread::sleep(Duration::from_millis(1200));
    if stall_first {
        p.signal(libc::SIGSTOP);
        std::thread::sleep(Duration::from_millis(40));
        p.signal(libc::SIGCONT);
        s.wait_log("-> Secondary_no_primary", SEC);
        std::thread::sleep(Duration::from_millis(300));
    }
    // The roles, and the transitions so far, read with no change in between (a status
    // query spawns a process: a takeover can slip in while it runs).
    // Every state transition of both servers counts ("state A -> B: ..." lines).
    let counts = |a: &Proc, b: &Proc| [a, b].map(|x| log_count(x, " -> "));
    let mut settled = None;
    for _ in 0..20 {
        let before = counts(&p, &s);
        let on_air = stable_pair(&net, [&p, &s]);
        let standby_ctl = if on_air == 0 { net.ctl_s } else { net.ctl_p };
        let switches = status(standby_ctl).unwrap()["switches"]
            .as_array()
            .unwrap()
            .len();
        if counts(&p, &s) == before {
            settled = Some((on_air, switches, before));
            break;
        }
    }
    let (on_air, switches_before, before) =
        settled.expect("the pair kept swapping roles for 20 tries");
    assert!(
        !stall_first || on_air == 1,
        "a 40 ms stop of the primary swapped no roles"
    );
    let (mut victim, mut standby, standby_ctl) = if on_air == 0 {
        (p, s, net.ctl_s)
    } else {
        eprintln!(
            "a stall before the kill swapped the roles; killing the first secondary, now on air"
        );
        (s, p, net.ctl_p)
    };
    let took_before = log_count(&standby, TAKE);
    if !clips.is_empty() {
        // The server on air says where in the playlist it is (before the first join).
        let victim_ctl = if on_air == 0 { net.ctl_p } else { net.ctl_s };
        let st = status(victim_ctl).unwrap();
        assert_eq!(st["playlist"]["items"], clips.len(), "{st}");
        assert_eq!(st["playlist"]["item"], 1, "{st}");
        assert_eq!(st["playlist"]["pass"], 1, "{st}");
    }
    if let Some(at) = kill_at_ms {
        let log = victim.log_text();
        let origin: u64 = log
            .split("origin_unix_ms=")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|v| v.parse().ok())
            .expect("the origin in the log");
        let due = (origin + at) * 1_000_000;
        let now = now_ns();
        if now < due {
            std::thread::sleep(Duration::from_nanos(due - now));
        }
        eprintln!(
            "kill {:+.1} ms from its aim, {at} ms after the origin",
            (now_ns() as f64 - due as f64) / 1e6
        );
    }
    let kill_ns = now_ns();
    victim.kill9();
    let after = if on_air == 0 {
        counts(&victim, &standby)
    } else {
        counts(&standby, &victim)
    };
    if after != before {
        return false;
    }
    let t0 = std::time::Instant::now();
    while log_count(&standby, TAKE) == took_before {
        assert!(
            t0.elapsed() < 3 * SEC,
            "no takeover after the kill\n{}",
            standby.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = status(standby_ctl).unwrap();
    assert_eq!(state(&st), "Secondary_no_primary");
    assert_eq!(
        st["switches"].as_array().unwrap().len(),
        switches_before + 1,
        "{st}"
    );
    // The standby plays the session to its end and exits.
    let (code, _) = standby.wait_exit(10 * SEC);
    assert_eq!(code, Some(0), "{}", standby.log_text());
    let r = rx.stop();
    let (gap_us, cc, missing) = switch_after(&r, kill_ns, &[&standby]);
    assert!(
        gap_us < frame_us,
        "gap {gap_us} us is not inside one frame ({frame_us} us)"
    );
    assert_eq!(cc, 0, "CC errors at the switch: {r}");
    assert_eq!(missing, 0, "TS packets missing at the switch: {r}");
    assert_eq!(r["tr101290"]["cc_error"]["count"], 0, "{r}");
    let frames = ffprobe_ok(&cap).unwrap();
    let whole = if clips.is_empty() {
        ffprobe_ok(std::path::Path::new(&asset)).unwrap()
    } else {
        clips
            .iter()
            .map(|c| ffprobe_ok(&dir.join(c)).unwrap())
            .sum()
    };
    assert_eq!(
        frames, whole,
        "frames decoded from the capture vs the asset"
    );
    true
}

/// The one change of sender received after `after_ns` (CLOCK_REALTIME): (gap us, cc
/// errors, TS packets missing).
fn switch_after(r: &serde_json::Value, after_ns: u64, logs: &[&Proc]) -> (f64, u64, i64) {
    let list = r["sender_changes"]["list"].as_array().unwrap();
    let after: Vec<_> = list
        .iter()
        .filter(|c| c["rx_ns"].as_u64().unwrap() > after_ns)
        .collect();
    let dump = || {
        logs.iter()
            .map(|p| format!("--- {} ---\n{}", p.name, p.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        after.len(),
        1,
        "changes of sender after the kill: {}\n{}",
        r["sender_changes"],
        dump()
    );
    let c = after[0];
    (
        c["gap_us"].as_f64().unwrap(),
        c["cc_errors"].as_u64().unwrap(),
        c["ts_packets_missing_est"].as_i64().unwrap_or(i64::MAX),
    )
}

#[test]
fn kill_9_primary_seamless_switch_inside_one_frame_25fps_udp() {
    kill_9_case("cbr-25fps.ts", "udp", 40_000.0, false);
}

/// The takeover by a server that came back as the secondary and joined the session in
/// progress: on raw UDP it must name the datagrams it hears on the live group right even
/// where their bytes repeat (null datagrams), or its takeover skips or repeats some.
#[test]
fn kill_9_after_a_role_swap_is_seamless_too_25fps_udp() {
    kill_9_case("cbr-25fps.ts", "udp", 40_000.0, true);
}

/// A pair on a playlist, the kill aimed a frame before the first join (3 s in, where the
/// second clip starts): datagram i is the same on both servers across joins, so the switch
/// is as seamless there as anywhere (the receiver and ffprobe check the whole capture).
/// The second clip is VBR (datagram gaps up to ~80 ms) and reorders B-frames (the join
/// holds two frames): the detector's live rule follows the schedule (the next datagram's due
/// time), so it does not wait out the VBR clip's largest gap while the CBR one plays.
#[test]
fn kill_9_at_a_playlist_join_is_seamless() {
    kill_9_case_at(
        "list.m3u",
        &["cbr-25fps.ts", "vbr-25fps.ts"],
        Some(2_960),
        "rtp",
        40_000.0,
        false,
    );
}

#[test]
fn kill_9_primary_seamless_switch_inside_one_frame_5994fps_rtp() {
    kill_9_case("cbr-59.94fps.ts", "rtp", 16_683.0, false);
}

/// Claim 1: both servers wait for an asset request, then start in lockstep.
#[test]
fn asset_request_starts_both_servers_in_lockstep() {
    let dir = scratch("request");
    let asset = fixture("cbr-25fps.ts", &dir).display().to_string();
    let net = Net::new();
    let rx = Recv::start(&dir, &net.live_url("rtp"), RX_MAX_S, None);
    let mut pa = vec!["primary".to_string(), "--loop".into()];
    pa.extend(net.primary_args("rtp"));
    pa.extend(args(&CALM));
    let p = Proc::spawn("primary", &dir, &pa);
    let mut sa = vec!["secondary".to_string(), "--loop".into()];
    sa.extend(net.secondary_args("rtp"));
    sa.extend(args(&CALM));
    let s = Proc::spawn("secondary", &dir, &sa);
    wait_state(net.ctl_p, "Primary_offline", 5 * SEC, &[&p, &s]);
    wait_state(net.ctl_s, "Secondary_offline", 5 * SEC, &[&p, &s]);
    let to = format!("{},{}", net.ctl_p, net.ctl_s);
    let out = run(&[
        "request",
        "play",
        &asset,
        "--to",
        &to,
        "--start-in-ms",
        "400",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_state(net.ctl_s, "Secondary_synchronized", 5 * SEC, &[&p, &s]);
    let st = wait_state(net.ctl_p, "Primary", 2 * SEC, &[&p, &s]);
    assert_eq!(st["asset"], asset.as_str());
    // Both started the session from its first datagram at the requested time.
    assert!(
        p.log_text().contains("on air start_index=0"),
        "{}",
        p.log_text()
    );
    assert!(
        s.log_text()
            .contains("muted output started, joining the session in progress start_index=0"),
        "{}",
        s.log_text()
    );
    // A second of the pair in lockstep on the live group.
    std::thread::sleep(SEC);
    let r = rx.stop();
    assert_eq!(r["sender_changes"]["count"], 0, "{r}");
    assert!(r["datagrams"].as_u64().unwrap() > 100, "{r}");
    let rtp = &r["rtp"];
    assert_eq!(
        (rtp["lost"].as_u64(), rtp["duplicates"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );
    // A request for a file that does not exist is refused, and the server says so.
    let out = run(&[
        "request",
        "play",
        "/nonexistent.ts",
        "--to",
        &net.ctl_p.to_string(),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Primary"));
}

/// Garbage, truncated, wrong-version, bad-MAC, other-session and replayed datagrams on the
/// sync and control ports are counted and never acted on.
#[test]
fn bad_input_on_sync_and_control_ports_is_counted_and_ignored() {
    use tandem::failover::wire::{encode, Body, Header, Key, Msg, SenderRole};
    let (_dir, net, _, p, s) = pair("garbage", "cbr-25fps.ts", "udp", &calm(&[]), &calm(&[]));
    let session = tandem::net::failover::link::wire_session(None, net.live);
    let key = Key::derive_from_session(session);
    let msg = |sender_id: u32, seq: u64, session_id: u64| Msg {
        header: Header {
            role: SenderRole::Client,
            owner: false,
            sender_id,
            boot_id: 1,
            session_id,
            epoch: 0,
            seq,
            real_ns: 0,
        },
        body: Body::StatusRequest,
    };
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for (k, to) in [net.sync_p, net.ctl_p, net.sync_s, net.ctl_s]
        .into_iter()
        .enumerate()
    {
        let good = encode(&msg(70 + k as u32, 1, session), &key).unwrap();
        let mut wrong_version = good.clone();
        wrong_version[4] = 9;
        let mut bad_mac = good.clone();
        let n = bad_mac.len();
        bad_mac[n - 1] ^= 0xFF;
        let other_session = encode(
            &msg(70, 2, session ^ 1),
            &Key::derive_from_session(session ^ 1),
        )
        .unwrap();
        for d in [
            b"hello, garbage".to_vec(),
            good[..20].to_vec(),
            wrong_version.clone(),
            bad_mac.clone(),
            other_session.clone(),
            vec![0u8; 3000],
            good.clone(),
            good.clone(), // replay
        ] {
            sock.send_to(&d, to).unwrap();
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    for (ctl, want) in [
        (net.ctl_p, "Primary"),
        (net.ctl_s, "Secondary_synchronized"),
    ] {
        let st = status(ctl).unwrap();
        assert_eq!(state(&st), want, "{st}");
        for link in ["sync", "control"] {
            let r = &st["rejected"][link];
            assert_eq!(r["garbage"], 2, "{link}: {r}");
            assert_eq!(r["truncated"], 1, "{link}: {r}");
            assert_eq!(r["wrong_version"], 1, "{link}: {r}");
            assert_eq!(r["bad_mac"], 1, "{link}: {r}");
            assert_eq!(r["other_session"], 1, "{link}: {r}");
            assert_eq!(r["replayed"], 1, "{link}: {r}");
        }
    }
    assert!(p.log_text().contains("refused a datagram"));
    assert!(s.log_text().contains("refused a datagram"));
}

#[test]
fn bad_command_lines_exit_2_with_one_line() {
    for a in [
        vec!["primary", "--dest", "udp://nonsense"],
        vec!["secondary", "--dest", "udp://239.255.1.1:5000"],
        vec![
            "primary",
            "--dest",
            "udp://239.255.1.1:5000",
            "--sync-listen",
            "x:1",
        ],
        vec![
            "primary",
            "/nonexistent.ts",
            "--dest",
            "udp://239.255.1.1:5000",
        ],
        vec![
            "primary",
            "--dest",
            "udp://239.255.1.1:5000",
            "--inject",
            "nope@1",
        ],
        vec!["request", "play", "a.ts", "--to", "nonsense"],
        vec!["status", "nonsense"],
    ] {
        let out = run(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{a:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{a:?}: {err}");
    }
    // Nobody listening: a runtime failure.
    let out = run(&["status", "127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(1));
}

/// A fault injected for real into the primary at 2.5 s: the secondary takes over on the
/// primary's Failed notice (not by counting missed heartbeats), inside one frame, with
/// nothing lost or repeated on the live group.
///
/// The kernel declares a fault up to one datagram interval plus its tolerance (20 ms at
/// 25 fps) after the last send, so a stall of this VM at that moment can push the gap past
/// `max_gap_us`: such a run is reported and run again, three times at most; every other
/// check fails at once.
fn injected_fault_case(fault: &str, primary_says: &str, secondary_says: &str, max_gap_us: f64) {
    let mut gaps = Vec::new();
    for attempt in 1..=3 {
        let gap_us = injected_fault_attempt(fault, primary_says, secondary_says);
        if gap_us < max_gap_us {
            return;
        }
        eprintln!("attempt {attempt}: gap {gap_us} us is past {max_gap_us} us; again");
        gaps.push(gap_us);
    }
    panic!("the gap was past {max_gap_us} us in three attempts: {gaps:?} us");
}

/// One run of [`injected_fault_case`]: asserts everything but the gap, which it returns
/// (the failed primary stays off air: exactly one change of sender, nothing lost).
fn injected_fault_attempt(fault: &str, primary_says: &str, secondary_says: &str) -> f64 {
    let inject = format!("--inject={fault}@2.5");
    let mut pe = calm(&["--loop"]);
    pe.push(&inject);
    let dir = scratch("inject");
    let asset = fixture("cbr-25fps.ts", &dir).display().to_string();
    let net = Net::new();
    // Joined before the servers start: the fault (2.5 s after the primary's start) falls
    // inside the receiver's run however long the pair takes to synchronise.
    let rx = Recv::start(&dir, &net.live_url("udp"), RX_MAX_S, None);
    let (p, s) = spawn_pair(&dir, &net, &asset, "udp", &pe, &calm(&["--loop"]));
    s.wait_log("Secondary_synchronized -> Secondary_no_primary", 10 * SEC);
    let log = s.log_text();
    assert!(
        log.contains(&format!(
            "Secondary_no_primary: FailedNotice: primary failed: {secondary_says}"
        )),
        "{log}"
    );
    if !primary_says.is_empty() {
        p.wait_log(primary_says, 5 * SEC);
    }
    let r = rx.stop();
    let (gap_us, cc, missing) = one_switch(&r, &[&p, &s]);
    assert_eq!((cc, missing), (0, 0), "{r}");
    gap_us
}

#[test]
fn kernel_detects_a_hung_reader() {
    injected_fault_case(
        "reader-hang",
        "-> Failed: kernel: reader: missed its check-in deadline",
        "reader: missed its check-in deadline",
        40_000.0,
    );
}

#[test]
fn kernel_detects_a_pacer_panic() {
    injected_fault_case(
        "pacer-panic",
        "-> Failed: kernel: pacer: panicked: injected fault: pacer panic",
        "pacer: panicked",
        40_000.0,
    );
}

#[test]
fn kernel_detects_a_hung_pacer() {
    injected_fault_case(
        "pacer-hang",
        "-> Failed: kernel: pacer: missed its check-in deadline",
        "pacer: missed its check-in deadline",
        40_000.0,
    );
}

/// The event loop itself hangs (heartbeats stop) while the engine keeps the live group
/// fed: missed heartbeats alone would never fire (the live group is not silent); the
/// kernel thread fences the output and sends the notice itself.
#[test]
fn kernel_detects_a_hung_event_loop() {
    // The loop's two duties (heartbeat, sync) stop together; either is reported first.
    // The loop's deadline is max(8 heartbeat periods, 100 ms); the gap does not depend on
    // it (the output runs until the fence, the notice goes out at once).
    injected_fault_case(
        "heartbeat-hang",
        "missed its check-in deadline",
        "",
        120_000.0,
    );
}

/// A primary failed by its kernel (a hung pacer, a timing verdict) recovers by itself: the
/// secondary takes over inside one frame on the Failed notice; the failed server retires its
/// engine, and after the hold-off, with the new owner's heartbeats arriving, raises
/// `Recover`, resynchronises behind it and reports `Secondary_synchronized`; the new owner
/// becomes `Primary` (redundancy regained). The receiver sees exactly one change of sender
/// and nothing lost: the recovered server never comes back on the live group by itself.
#[test]
fn failed_primary_recovers_as_the_secondary() {
    recovery_case(&[]);
}

/// The same with primary-initiated synchronisation (claim 5): the recovered server never
/// asks; the new owner pushes the parameters to it.
#[test]
fn failed_primary_recovers_with_primary_initiated_sync() {
    recovery_case(&["--sync-init=primary"]);
}

/// A pacer hang is declared by the kernel one datagram interval plus its tolerance (20 ms
/// at 25 fps) after the last send, so a stall of this VM at that moment can push the gap
/// past one frame: such a run is reported and run again, three times at most; every other
/// check fails at once.
fn recovery_case(extra: &[&'static str]) {
    let mut gaps = Vec::new();
    for attempt in 1..=3 {
        match recovery_attempt(extra) {
            Ok(()) => return,
            Err(gap_us) => {
                eprintln!("attempt {attempt}: gap {gap_us} us is past one frame; again");
                gaps.push(gap_us);
            }
        }
    }
    panic!("the gap was past one frame (40 ms) in three attempts: {gaps:?} us");
}

/// One run; `Err(gap_us)` when everything held but the gap was past one frame.
fn recovery_attempt(extra: &[&'static str]) -> Result<(), f64> {
    let mut pe = calm(&["--loop"]);
    pe.push("--inject=pacer-hang@2.5");
    pe.extend_from_slice(extra);
    let mut se = calm(&["--loop"]);
    se.extend_from_slice(extra);
    let dir = scratch("recover");
    let asset = fixture("cbr-25fps.ts", &dir).display().to_string();
    let net = Net::new();
    let rx = Recv::start(&dir, &net.live_url("udp"), RX_MAX_S, None);
    let (p, s) = spawn_pair(&dir, &net, &asset, "udp", &pe, &se);
    s.wait_log("Secondary_synchronized -> Secondary_no_primary", 10 * SEC);
    assert!(
        s.log_text()
            .contains("FailedNotice: primary failed: pacer: missed its check-in deadline"),
        "{}",
        s.log_text()
    );
    p.wait_log(
        "-> Failed: kernel: pacer: missed its check-in deadline",
        5 * SEC,
    );
    let st = wait_state(net.ctl_p, "Secondary_synchronized", 10 * SEC, &[&p, &s]);
    assert_eq!(st["role"], "secondary", "{st}");
    let st = wait_state(net.ctl_s, "Primary", 5 * SEC, &[&p, &s]);
    assert!(st["epoch"].as_u64().unwrap() >= 2, "{st}");
    let log = p.log_text();
    assert!(
        log.contains("recovering: failed") && log.contains("by timing verdict"),
        "{log}"
    );
    assert!(
        log.contains("Failed -> Secondary_synchronizing: Recover"),
        "{log}"
    );
    // The recovered server stays off the live group.
    std::thread::sleep(Duration::from_millis(500));
    let r = rx.stop();
    let (gap_us, cc, missing) = one_switch(&r, &[&p, &s]);
    assert_eq!((cc, missing), (0, 0), "{r}");
    if gap_us < 40_000.0 {
        Ok(())
    } else {
        Err(gap_us)
    }
}

/// Claim 13: the primary sees its own sends fail, declares itself failed, stops and tells
/// the secondary.
#[test]
fn self_detection_of_send_errors() {
    injected_fault_case(
        "send-error",
        "-> Failed: OutputFailure: send error",
        "output: send error",
        40_000.0,
    );
}

/// Claim 4: the secondary asks for the parameters.
#[test]
fn sync_initiated_by_the_secondary() {
    let (_d, _n, _, p, s) = pair(
        "sync-sec",
        "cbr-25fps.ts",
        "udp",
        &calm(&["--sync-init=secondary"]),
        &calm(&["--sync-init=secondary"]),
    );
    assert!(s
        .log_text()
        .contains("asking the primary for the session parameters"));
    assert!(p.log_text().contains("sending the session parameters"));
    assert!(!p.log_text().contains("pushing the session parameters"));
}

/// Claim 5: the primary pushes its parameters when the secondary appears.
#[test]
fn sync_initiated_by_the_primary() {
    let (_d, _n, _, p, s) = pair(
        "sync-pri",
        "cbr-25fps.ts",
        "udp",
        &calm(&["--sync-init=primary"]),
        &calm(&["--sync-init=primary"]),
    );
    assert!(p
        .log_text()
        .contains("pushing the session parameters to the peer"));
    assert!(!s.log_text().contains("asking the primary"));
}

/// Claim 6: a separate synchronisation component fetches the parameters from the primary
/// and delivers them to the secondary; it exits 0 once the secondary is synchronised.
#[test]
fn sync_initiated_by_a_component() {
    let dir = scratch("sync-comp");
    let asset = fixture("cbr-25fps.ts", &dir).display().to_string();
    let net = Net::new();
    let (p, s) = spawn_pair(
        &dir,
        &net,
        &asset,
        "rtp",
        &calm(&["--loop", "--sync-init=component"]),
        &calm(&["--loop", "--sync-init=component"]),
    );
    wait_state(net.ctl_p, "Primary_no_secondary", 5 * SEC, &[&p, &s]);
    // Without the component the secondary stays unsynchronised.
    std::thread::sleep(Duration::from_millis(700));
    let st = status(net.ctl_s).unwrap();
    assert_eq!(state(&st), "Secondary", "{st}");
    let out = run(&[
        "sync",
        "--primary",
        &net.ctl_p.to_string(),
        "--secondary",
        &net.ctl_s.to_string(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Secondary_synchronized"), "{text}");
    wait_state(net.ctl_p, "Primary", 2 * SEC, &[&p, &s]);
    assert!(!s.log_text().contains("asking the primary"));
    // A secondary holding another asset refuses the parameters and `tandem sync` says so.
    let other = fixture("cbr-29.97fps.ts", &dir).display().to_string();
    let net2 = Net::new();
    let (p2, s2) = spawn_pair(
        &dir,
        &net2,
        &asset,
        "rtp",
        &calm(&["--loop", "--sync-init=component"]),
        &calm(&["--loop", "--sync-init=component"]),
    );
    drop(s2);
    let mut sa = vec![
        "secondary".to_string(),
        other,
        "--loop".into(),
        "--sync-init=component".into(),
    ];
    sa.extend(net2.secondary_args("rtp"));
    sa.extend(args(&CALM));
    let s3 = Proc::spawn("secondary-other", &dir, &sa);
    wait_state(net2.ctl_s, "Secondary", 5 * SEC, &[&p2, &s3]);
    let out = run(&[
        "sync",
        "--primary",
        &net2.ctl_p.to_string(),
        "--secondary",
        &net2.ctl_s.to_string(),
        "--timeout-ms",
        "1500",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("asset mismatch"), "{err}");
    assert!(s3.log_text().contains("refusing to synchronise"));
}

/// Claim 12: a component monitor detects the failure and commands the switch (the
/// secondary's own detector is off).
#[test]
fn monitor_detects_and_commands_the_switch() {
    for attempt in 1..=3 {
        if monitor_attempt() {
            return;
        }
        eprintln!(
            "attempt {attempt}: a stall made the monitor declare a failure before the kill; again"
        );
    }
    panic!("the monitor declared a failure before the kill in three attempts");
}

/// One run; false when the monitor declared a server failed before the test's kill (a stall
/// of this machine longer than the monitor's 13 ms window, which the method answers by
/// switching: the run is then not the one measured).
fn monitor_attempt() -> bool {
    let dir = scratch("monitor");
    let asset = fixture("cbr-25fps.ts", &dir).display().to_string();
    let net = Net::new();
    let mon = format!("--monitor={}", net.monitor);
    let m = Proc::spawn(
        "monitor",
        &dir,
        &args(&[
            "monitor",
            &format!("--listen={}", net.monitor),
            &format!("--live=udp://{}", net.live),
            &format!("--primary-control={}", net.ctl_p),
            &format!("--secondary-control={}", net.ctl_s),
        ]),
    );
    let (mut p, s) = spawn_pair(
        &dir,
        &net,
        &asset,
        "udp",
        &["--loop", &mon],
        &["--loop", &mon, "--no-detect"],
    );
    let early = |m: &Proc| m.log_text().contains("declared failed");
    if try_wait_state(net.ctl_s, "Secondary_synchronized", 10 * SEC).is_none() && early(&m) {
        return false;
    }
    wait_state(net.ctl_s, "Secondary_synchronized", SEC, &[&p, &s, &m]);
    m.wait_log("watching the server on air", 3 * SEC);
    let rx = Recv::start(&dir, &net.live_url("udp"), RX_MAX_S, None);
    std::thread::sleep(Duration::from_millis(500));
    if early(&m) {
        return false;
    }
    p.kill9();
    s.wait_log(
        "Secondary_synchronized -> Secondary_no_primary: MonitorTakeover",
        3 * SEC,
    );
    m.wait_log("declared failed", SEC);
    let r = rx.stop();
    let (gap_us, cc, missing) = one_switch(&r, &[&s, &m]);
    assert!(gap_us < 40_000.0, "gap {gap_us} us");
    assert_eq!((cc, missing), (0, 0), "{r}");
    // The monitor now watches the new server on air.
    m.wait_log("watching the server on air", SEC);
    true
}

/// SIGSTOP of the primary: the secondary takes over; after SIGCONT the old primary sends
/// nothing on the live group (its sockets are drained before its timers and its engine's
/// late send waits for the ownership check), steps down, resynchronises behind the new
/// owner, and the new owner becomes `Primary`.
#[test]
fn stopped_primary_never_sends_beside_the_new_owner() {
    let (dir, net, _, p, s) = pair("sigstop", "cbr-25fps.ts", "udp", &CALM, &CALM);
    let rx = Recv::start(&dir, &net.live_url("udp"), RX_MAX_S, None);
    std::thread::sleep(Duration::from_millis(400));
    p.signal(libc::SIGSTOP);
    s.wait_log("-> Secondary_no_primary", 3 * SEC);
    std::thread::sleep(Duration::from_millis(300));
    p.signal(libc::SIGCONT);
    wait_state(net.ctl_p, "Secondary_synchronized", 5 * SEC, &[&p, &s]);
    wait_state(net.ctl_s, "Primary", 2 * SEC, &[&p, &s]);
    // The returned server stays off the live group.
    std::thread::sleep(Duration::from_millis(500));
    let r = rx.stop();
    let (gap_us, cc, missing) = one_switch(&r, &[&p, &s]);
    assert!(gap_us < 150_000.0, "gap {gap_us} us");
    assert_eq!((cc, missing), (0, 0), "{r}");
    assert_eq!(r["tr101290"]["cc_error"]["count"], 0, "{r}");
    let sources = r["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2, "{r}");
    let log = p.log_text();
    assert!(
        log.contains("Primary -> Secondary_synchronizing"),
        "the old primary stepped down: {log}"
    );
}

/// The old primary, restarted after a crash, comes back as a secondary: it synchronises
/// behind the new owner, which becomes `Primary`; the live group never changes sender again.
#[test]
fn old_primary_returns_as_secondary() {
    let (dir, net, asset, mut p, s) = pair("return", "cbr-25fps.ts", "rtp", &CALM, &CALM);
    let rx = Recv::start(&dir, &net.live_url("rtp"), RX_MAX_S, None);
    std::thread::sleep(Duration::from_millis(300));
    p.kill9();
    s.wait_log("-> Secondary_no_primary", 3 * SEC);
    wait_state(net.ctl_s, "Secondary_no_primary", SEC, &[&s]);
    let mut a = vec!["secondary".to_string(), asset, "--loop".into()];
    a.extend(args(&[
        &format!("--dest=rtp://{}", net.live),
        &format!("--muted=udp://{}", net.muted),
        &format!("--sync-listen={}", net.sync_p),
        &format!("--sync-peer={}", net.sync_s),
        &format!("--control-listen={}", net.ctl_p),
    ]));
    a.extend(args(&CALM));
    let back = Proc::spawn("returned", &dir, &a);
    wait_state(net.ctl_p, "Secondary_synchronized", 5 * SEC, &[&back, &s]);
    let st = wait_state(net.ctl_s, "Primary", 2 * SEC, &[&back, &s]);
    assert!(st["epoch"].as_u64().unwrap() >= 2, "{st}");
    // The returned server stays off the live group.
    std::thread::sleep(Duration::from_millis(500));
    let r = rx.stop();
    let (_, cc, missing) = one_switch(&r, &[&back, &s]);
    assert_eq!((cc, missing), (0, 0), "{r}");
    let rtp = &r["rtp"];
    assert_eq!(
        (rtp["lost"].as_u64(), rtp["duplicates"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );
}

/// A secondary started after the primary has been on air for a while locks on without
/// disturbing the primary's output, and can then take over cleanly.
#[test]
fn late_join_does_not_disturb_the_primary() {
    let dir = scratch("late");
    let asset = fixture("cbr-25fps.ts", &dir).display().to_string();
    let net = Net::new();
    let rx = Recv::start(&dir, &net.live_url("rtp"), RX_MAX_S, None);
    let mut pa = vec!["primary".to_string(), asset.clone(), "--loop".into()];
    pa.extend(net.primary_args("rtp"));
    let mut p = Proc::spawn("primary", &dir, &pa);
    wait_state(net.ctl_p, "Primary_no_secondary", 5 * SEC, &[&p]);
    std::thread::sleep(Duration::from_millis(1200));
    let mut sa = vec!["secondary".to_string(), asset, "--loop".into()];
    sa.extend(net.secondary_args("rtp"));
    let s = Proc::spawn("secondary", &dir, &sa);
    wait_state(net.ctl_s, "Secondary_synchronized", 5 * SEC, &[&p, &s]);
    wait_state(net.ctl_p, "Primary", 2 * SEC, &[&p, &s]);
    let joined = s.log_text();
    assert!(
        joined.contains("joining the session in progress"),
        "{joined}"
    );
    assert!(
        !joined.contains("start_index=0 "),
        "it joined at the current index: {joined}"
    );
    std::thread::sleep(Duration::from_millis(500));
    p.kill9();
    s.wait_log("-> Secondary_no_primary", 3 * SEC);
    let r = rx.stop();
    let (gap_us, cc, missing) = one_switch(&r, &[&s]);
    assert!(gap_us < 40_000.0, "gap {gap_us} us");
    assert_eq!((cc, missing), (0, 0), "{r}");
    assert_eq!(r["tr101290"]["cc_error"]["count"], 0, "{r}");
    let rtp = &r["rtp"];
    assert_eq!(
        (rtp["lost"].as_u64(), rtp["duplicates"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );
}

/// The secondary's clock runs 250 ms ahead of the primary's: the offset is measured over the
/// sync link (NTP style), the secondary still locks on and switches cleanly.
#[test]
fn clock_offset_between_the_hosts() {
    let (dir, net, _, mut p, s) = pair(
        "offset",
        "cbr-25fps.ts",
        "udp",
        &[],
        &["--clock-offset-ms=250"],
    );
    let st = status(net.ctl_s).unwrap();
    let off = st["clock_offset_ns"].as_i64().unwrap();
    assert!(
        (off + 250_000_000).abs() < 2_000_000,
        "offset {off} ns (primary minus secondary), expected about -250 ms"
    );
    let rx = Recv::start(&dir, &net.live_url("udp"), RX_MAX_S, None);
    std::thread::sleep(Duration::from_millis(500));
    p.kill9();
    s.wait_log("-> Secondary_no_primary", 3 * SEC);
    let r = rx.stop();
    let (gap_us, cc, missing) = one_switch(&r, &[&s]);
    assert!(gap_us < 40_000.0, "gap {gap_us} us");
    assert_eq!((cc, missing), (0, 0), "{r}");
}

/// `tandem pair`: two processes; killing one leaves the other running (and on air).
#[test]
fn pair_runs_two_independent_processes() {
    let dir = scratch("pair");
    let asset = fixture("cbr-25fps.ts", &dir).display().to_string();
    let net = Net::new();
    let mut pair = Proc::spawn(
        "pair",
        &dir,
        &args(&[
            "pair",
            &asset,
            "--loop",
            &format!("--dest=udp://{}", net.live),
            &format!("--muted=udp://{}", net.muted),
            &format!("--primary-sync={}", net.sync_p),
            &format!("--secondary-sync={}", net.sync_s),
            &format!("--primary-control={}", net.ctl_p),
            &format!("--secondary-control={}", net.ctl_s),
            "--heartbeat-us=10000",
            "--miss=5",
        ]),
    );
    let sst = wait_state(net.ctl_s, "Secondary_synchronized", 10 * SEC, &[&pair]);
    let pst = wait_state(net.ctl_p, "Primary", 5 * SEC, &[&pair]);
    let (ppid, spid) = (pst["pid"].as_i64().unwrap(), sst["pid"].as_i64().unwrap());
    assert_ne!(ppid, spid);
    assert_ne!(ppid, pair.pid() as i64);
    // SAFETY: kill(2) of the primary child (started by the pair under test).
    unsafe {
        libc::kill(ppid as i32, libc::SIGKILL);
    }
    wait_state(net.ctl_s, "Secondary_no_primary", 3 * SEC, &[&pair]);
    pair.signal(libc::SIGTERM);
    let (code, out) = pair.wait_exit(10 * SEC);
    assert_eq!(code, Some(1), "the primary was killed: {out}");
    assert!(out.contains(&format!("primary: pid {ppid}")), "{out}");
    assert!(out.contains(&format!("secondary: pid {spid}")), "{out}");
    assert!(
        out.contains("secondary (pid") && out.contains("exit status: 0"),
        "{out}"
    );
}

/// `--switch-at pcr`: the secondary joins the live group at the first PCR-bearing datagram
/// after the primary's last, even when its time has passed.
#[test]
fn switch_at_the_next_pcr_boundary() {
    use tandem::stream::{BoundaryKind, OutputStream, SessionParams};
    let (dir, net, asset, mut p, s) = pair(
        "pcr",
        "cbr-25fps.ts",
        "udp",
        &["--switch-at=pcr"],
        &["--switch-at=pcr"],
    );
    let rx = Recv::start(&dir, &net.live_url("udp"), RX_MAX_S, None);
    std::thread::sleep(Duration::from_millis(500));
    p.kill9();
    s.wait_log("taking the live group", 3 * SEC);
    let log = s.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("taking the live group"))
        .unwrap();
    let num = |key: &str| -> u64 {
        let v = line.split(key).nth(1).unwrap();
        v.trim_start_matches("Some(")
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (from, last) = (num("from="), num("primary_last="));
    let map = tandem::io::load_or_build(std::path::Path::new(&asset), false).unwrap();
    let stream = OutputStream::with_asset(
        std::sync::Arc::new(map),
        SessionParams {
            session_id: "x".into(),
            framing: tandem::net::url::Framing::Udp,
            loops: None,
        },
        &std::fs::File::open(&asset).unwrap(),
    )
    .unwrap();
    assert_eq!(
        from,
        stream.next_boundary(last, BoundaryKind::Pcr),
        "{line}"
    );
    assert!(from > last);
    let r = rx.stop();
    assert_eq!(r["sender_changes"]["count"], 1, "{r}");
    let ch = &r["sender_changes"]["list"][0];
    // What lies between the primary's last datagram and the boundary is not sent.
    let skipped = (from - last - 1) as i64 * 7;
    assert_eq!(ch["ts_packets_missing_est"].as_i64(), Some(skipped), "{ch}");
}

/// With a key file only that key is accepted: a client without it gets no answer and its
/// request is counted as a bad MAC.
#[test]
fn key_file_is_the_only_key_accepted() {
    let dir = scratch("key");
    let asset = fixture("cbr-25fps.ts", &dir).display().to_string();
    let key = dir.join("pair.key");
    std::fs::write(&key, b"0123456789abcdef0123456789abcdef\n").unwrap();
    let kf = format!("--key-file={}", key.display());
    let net = Net::new();
    let mut extra: Vec<&str> = vec!["--loop", &kf];
    extra.extend(CALM);
    let (p, s) = spawn_pair(&dir, &net, &asset, "udp", &extra, &extra);
    wait_state_with(
        net.ctl_s,
        "Secondary_synchronized",
        10 * SEC,
        &[&p, &s],
        &[&kf],
    );
    wait_state_with(net.ctl_p, "Primary", 5 * SEC, &[&p, &s], &[&kf]);
    let out = run(&["status", &net.ctl_p.to_string()]);
    assert_eq!(out.status.code(), Some(1), "no answer without the key");
    let st = status_with(net.ctl_p, &[&kf]).unwrap();
    assert!(
        st["rejected"]["control"]["bad_mac"].as_u64().unwrap() >= 1,
        "{st}"
    );
    assert!(!p.log_text().contains("no --key-file"));
    assert!(s
        .log_text()
        .contains("Secondary_synchronizing -> Secondary_synchronized"));
}

/// A finite session (one pass) played by `tandem pair` without a fault: both servers end
/// with it and the pair exits 0; the receiver saw one sender and every datagram.
#[test]
fn finite_session_ends_both_servers() {
    let dir = scratch("finite");
    let asset = fixture("cbr-25fps.ts", &dir).display().to_string();
    let net = Net::new();
    let rx = Recv::start(&dir, &net.live_url("udp"), RX_MAX_S, None);
    let mut pair = Proc::spawn(
        "pair",
        &dir,
        &args(&[
            "pair",
            &asset,
            &format!("--dest=udp://{}", net.live),
            &format!("--muted=udp://{}", net.muted),
            &format!("--primary-sync={}", net.sync_p),
            &format!("--secondary-sync={}", net.sync_s),
            &format!("--primary-control={}", net.ctl_p),
            &format!("--secondary-control={}", net.ctl_s),
            "--heartbeat-us=10000",
            "--miss=5",
        ]),
    );
    let (code, out) = pair.wait_exit(15 * SEC);
    assert_eq!(code, Some(0), "{out}\n{}", pair.log_text());
    let r = rx.stop();
    assert_eq!(r["sender_changes"]["count"], 0, "{r}");
    assert_eq!(r["datagrams"], 717, "one pass of the asset: {r}");
    assert_eq!(r["tr101290"]["cc_error"]["count"], 0, "{r}");
}

/// `tandem request switchover`: the primary hands the live group to its synchronised peer
/// at a datagram boundary ahead, and back again; the receiver sees two changes of sender
/// with nothing lost, repeated or out of order (RTP sequence and CC continuous), and the
/// roles swap each time. A request to a server that is not the primary on air is refused
/// with the reason.
#[test]
fn planned_switchover_there_and_back_is_seamless_rtp() {
    // A stall of this VM can make the pair fail over by itself during the run (a takeover
    // by the rules, not the hand-over): such a run says nothing about the hand-over and is
    // run again (at most three times). Whatever else happens is asserted strictly.
    for attempt in 1..=3 {
        if switchover_attempt() {
            return;
        }
        eprintln!("attempt {attempt}: a stall made the pair fail over by itself; again");
    }
    panic!("the pair failed over by itself in three attempts");
}

/// One run; false when a takeover by the rules (a stall) spoiled it.
fn switchover_attempt() -> bool {
    let dir = scratch("switchover");
    let asset = fixture("cbr-25fps.ts", &dir).display().to_string();
    let net = Net::new();
    let (p, s) = spawn_pair(&dir, &net, &asset, "rtp", &["--loop"], &["--loop"]);
    wait_state(net.ctl_s, "Secondary_synchronized", 10 * SEC, &[&p, &s]);
    let ctl_s = net.ctl_s.to_string();
    let refused = run(&["request", "switchover", "--to", &ctl_s]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("refused") && why.contains("not the primary"),
        "{why}"
    );
    let rx = Recv::start(&dir, &net.live_url("rtp"), RX_MAX_S, None);
    std::thread::sleep(Duration::from_millis(500));
    for (from, to) in [(net.ctl_p, net.ctl_s), (net.ctl_s, net.ctl_p)] {
        let out = run(&["request", "switchover", "--to", &from.to_string()]);
        if !out.status.success() && taken_over_by_rules(&p, &s) {
            return false;
        }
        assert!(
            out.status.success(),
            "{}{}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            p.log_text(),
            s.log_text()
        );
        wait_state(to, "Primary", 5 * SEC, &[&p, &s]);
        wait_state(from, "Secondary_synchronized", 10 * SEC, &[&p, &s]);
        std::thread::sleep(Duration::from_millis(500));
    }
    let r = rx.stop();
    let ch = &r["sender_changes"];
    if ch["count"] != 2 && taken_over_by_rules(&p, &s) {
        return false;
    }
    assert_eq!(ch["count"], 2, "{r}\n{}\n{}", p.log_text(), s.log_text());
    for c in ch["list"].as_array().unwrap() {
        assert_eq!(c["cc_errors"], 0, "{c}\n{}\n{}", p.log_text(), s.log_text());
        assert_eq!(c["ts_packets_missing_est"], 0, "{c}");
    }
    assert_eq!(r["tr101290"]["cc_error"]["count"], 0, "{r}");
    let rtp = &r["rtp"];
    assert_eq!(
        (
            rtp["lost"].as_u64(),
            rtp["duplicates"].as_u64(),
            rtp["reordered"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{r}"
    );
    true
}
