//! systemd: the unit file passes `systemd-analyze verify`, and the servers speak the notify
//! protocol (sd_notify(3)) to a socket this test provides as systemd would: READY and STATUS
//! at start, WATCHDOG pings while the event loop runs, none once it hangs, STOPPING on a stop.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

const SEC: Duration = Duration::from_secs(1);

#[test]
fn the_unit_file_verifies() {
    verify_unit("tandem@.service", "tandem@news.service");
}

#[test]
fn the_serve_unit_file_verifies_and_reloads_by_sighup() {
    let unit = verify_unit("tandem-serve.service", "tandem-serve.service");
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    assert!(unit.contains("ExecStart=/usr/local/bin/tandem serve "));
}

/// `systemd-analyze verify` of `tools/systemd/FILE` installed as `as_name`; the unit's text.
fn verify_unit(file: &str, as_name: &str) -> String {
    let dir = scratch("unit");
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tools/systemd")
            .join(file),
    )
    .unwrap();
    // The one change: the binary under test instead of the installed path, which
    // `systemd-analyze verify` requires to exist.
    assert!(unit.contains("ExecStart=/usr/local/bin/tandem "));
    let path = dir.join(as_name);
    std::fs::write(&path, unit.replace("/usr/local/bin/tandem", BIN)).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package; .ci/run installs it)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
    for want in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "DynamicUser=yes",
    ] {
        assert!(unit.contains(want), "{want}");
    }
    unit
}

/// Messages received on `sock` until `until` holds for the list or `timeout`, each with
/// when it arrived.
fn collect(
    sock: &UnixDatagram,
    got: &mut Vec<(Instant, String)>,
    timeout: Duration,
    until: impl Fn(&[(Instant, String)]) -> bool,
) {
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    while t0.elapsed() < timeout && !until(got) {
        if let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            for line in text.lines() {
                got.push((Instant::now(), line.to_string()));
            }
        }
    }
}

fn count(got: &[(Instant, String)], what: &str) -> usize {
    got.iter().filter(|(_, l)| l == what).count()
}

/// A primary started as systemd would (`NOTIFY_SOCKET` bound by the test, `WATCHDOG_USEC`
/// when given), with `extra` flags: (scratch, the socket, the server).
fn notified_primary(
    name: &str,
    extra: &[&str],
    watchdog_usec: Option<&str>,
) -> (Scratch, UnixDatagram, Proc) {
    let dir = scratch(name);
    let asset = fixture("cbr-25fps.ts", &dir).display().to_string();
    let net = Net::new();
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut a = vec!["primary".to_string(), asset, "--loop".into()];
    a.extend(net.primary_args("udp"));
    a.extend(args(extra));
    let mut env = vec![("NOTIFY_SOCKET", path.display().to_string())];
    if let Some(u) = watchdog_usec {
        env.push(("WATCHDOG_USEC", u.to_string()));
    }
    let p = Proc::spawn_env("primary", BIN, &dir, &a, &env);
    (dir, sock, p)
}

#[test]
fn the_notify_protocol_ready_status_watchdog_and_its_silence_when_the_loop_hangs() {
    let (_dir, sock, p) =
        notified_primary("notify", &["--inject=heartbeat-hang@2"], Some("400000"));
    let mut got = Vec::new();
    collect(&sock, &mut got, 5 * SEC, |g| {
        count(g, "READY=1") == 1
            && g.iter()
                .any(|(_, l)| l.starts_with("STATUS=Primary_no_secondary"))
            && count(g, "WATCHDOG=1") >= 4
    });
    assert_eq!(count(&got, "READY=1"), 1, "{got:?}\n{}", p.log_text());
    assert!(
        got.iter()
            .any(|(_, l)| l.starts_with("STATUS=Primary_no_secondary, epoch ")),
        "{got:?}"
    );
    assert!(count(&got, "WATCHDOG=1") >= 4, "{got:?}");
    // The event loop hangs 2 s after the start: the pings stop (within half the 400 ms
    // interval of its last check-in) while the process lives on.
    p.wait_log("injected fault: the event loop", 5 * SEC);
    let hung = Instant::now();
    collect(&sock, &mut got, SEC, |_| false);
    let late: Vec<_> = got
        .iter()
        .filter(|(t, l)| l == "WATCHDOG=1" && t.duration_since(hung) > Duration::from_millis(250))
        .collect();
    assert!(late.is_empty(), "pings after the hang: {late:?}");
    assert!(p.child.is_some());
}

#[test]
fn a_stop_says_stopping() {
    let (_dir, sock, mut p) = notified_primary("notify-stop", &[], None);
    let mut got = Vec::new();
    collect(&sock, &mut got, 5 * SEC, |g| count(g, "READY=1") == 1);
    assert_eq!(count(&got, "READY=1"), 1, "{got:?}");
    assert_eq!(
        count(&got, "WATCHDOG=1"),
        0,
        "no watchdog asked for: {got:?}"
    );
    p.signal(libc::SIGTERM);
    collect(&sock, &mut got, 5 * SEC, |g| count(g, "STOPPING=1") == 1);
    assert_eq!(count(&got, "STOPPING=1"), 1, "{got:?}");
    let (code, _) = p.wait_exit(5 * SEC);
    assert_eq!(code, Some(0));
}
