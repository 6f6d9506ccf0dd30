//! The HTTP listener of the servers (`--http-listen`): Prometheus metrics at `/metrics` and
//! the status at `/api/v1/status`, read over a real TCP connection from a running pair, and
//! followed across a kill -9 of the primary.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::*;

const SEC: Duration = Duration::from_secs(1);
const CALM: [&str; 2] = ["--heartbeat-us=10000", "--miss=10"];

/// A loopback port free right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// The value of `series` (name and labels, exactly) in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Scrapes `addr` until `want(text)` holds or `timeout`; returns the last scrape.
fn scrape_until(addr: SocketAddr, timeout: Duration, want: impl Fn(&str) -> bool) -> String {
    let t0 = Instant::now();
    let mut last = String::new();
    while t0.elapsed() < timeout {
        if let Ok((200, body)) = http_get(addr, "/metrics") {
            if want(&body) {
                return body;
            }
            last = body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    last
}

fn state_is(text: &str, ch: &str, st: &str) -> bool {
    sample(
        text,
        &format!(r#"tandem_channel_state{{channel="{ch}",state="{st}"}}"#),
    ) == Some(1.0)
}

#[test]
fn metrics_follow_the_pair_across_a_kill_of_the_primary() {
    let dir = scratch("http");
    let asset = fixture("cbr-25fps.ts", &dir).display().to_string();
    let net = Net::new();
    let (hp, hs): (SocketAddr, SocketAddr) = (
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
    );
    let mut pa = vec!["primary".to_string(), asset.clone(), "--loop".into()];
    pa.extend(net.primary_args("udp"));
    pa.extend(args(&CALM));
    pa.extend(args(&[&format!("--http-listen={hp}"), "--channel=news"]));
    let mut p = Proc::spawn("primary", &dir, &pa);
    let mut sa = vec!["secondary".to_string(), asset, "--loop".into()];
    sa.extend(net.secondary_args("udp"));
    sa.extend(args(&CALM));
    sa.extend(args(&[&format!("--http-listen={hs}"), "--channel=news"]));
    // The secondary's events, one datagram per line, to a collector of the test's own.
    let events = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    events
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    sa.push(format!(
        "--event-log=udp://{}",
        events.local_addr().unwrap()
    ));
    let s = Proc::spawn("secondary", &dir, &sa);
    wait_state(net.ctl_s, "Secondary_synchronized", 10 * SEC, &[&p, &s]);
    wait_state(net.ctl_p, "Primary", 5 * SEC, &[&p, &s]);

    let mp = scrape_until(hp, 5 * SEC, |t| state_is(t, "news", "Primary"));
    assert!(state_is(&mp, "news", "Primary"), "{mp}\n{}", p.log_text());
    assert_eq!(
        sample(&mp, r#"tandem_channel_on_air{channel="news"}"#),
        Some(1.0),
        "{mp}"
    );
    let peer = format!(r#"tandem_sync_link_up{{peer="{}"}}"#, net.sync_s);
    assert_eq!(sample(&mp, &peer), Some(1.0), "{mp}");
    assert!(
        sample(
            &mp,
            r#"tandem_datagrams_sent_total{channel="news",output="live"}"#
        )
        .is_some_and(|n| n > 0.0),
        "{mp}"
    );
    // The pacer's send lateness, as a histogram: every send counted, +Inf holds them all.
    let count = sample(&mp, r#"tandem_send_lateness_seconds_count{channel="news"}"#);
    assert!(count.is_some_and(|n| n > 0.0), "{mp}");
    assert_eq!(
        sample(
            &mp,
            r#"tandem_send_lateness_seconds_bucket{le="+Inf",channel="news"}"#
        ),
        count,
        "{mp}"
    );
    let ms = scrape_until(hs, 5 * SEC, |t| {
        state_is(t, "news", "Secondary_synchronized")
    });
    assert!(state_is(&ms, "news", "Secondary_synchronized"), "{ms}");
    assert_eq!(
        sample(&ms, r#"tandem_channel_on_air{channel="news"}"#),
        Some(0.0),
        "{ms}"
    );
    assert!(
        !ms.contains("tandem_switches_total{"),
        "no switch yet: {ms}"
    );
    assert_eq!(
        sample(
            &ms,
            r#"tandem_alarm_active{channel="news",alarm="pair_unprotected"}"#
        ),
        Some(0.0),
        "{ms}"
    );
    // The status object, as `tandem status` shows it.
    let (code, body) = http_get(hs, "/api/v1/status").unwrap();
    assert_eq!(code, 200, "{body}");
    let st: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(st["schema"], "tandem.status/1", "{st}");
    assert_eq!(st["state"], "Secondary_synchronized", "{st}");
    assert_eq!(http_get(hs, "/nothing-here").unwrap().0, 404);

    p.kill9();
    let ms = scrape_until(hs, 5 * SEC, |t| {
        sample(t, r#"tandem_channel_on_air{channel="news"}"#) == Some(1.0)
            && sample(
                t,
                r#"tandem_alarm_active{channel="news",alarm="pair_unprotected"}"#,
            ) == Some(1.0)
    });
    assert!(
        state_is(&ms, "news", "Secondary_no_primary"),
        "{ms}\n{}",
        s.log_text()
    );
    let switched: f64 = ms
        .lines()
        .filter(|l| l.starts_with(r#"tandem_switches_total{channel="news""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(switched, 1.0, "one takeover: {ms}");
    assert!(
        sample(&ms, r#"tandem_heartbeats_missed_total{channel="news"}"#).is_some(),
        "{ms}"
    );
    // The switch, measured on the live group by the new owner: the gap from the primary's
    // last datagram to the secondary's first, as its socket received them.
    let ms = scrape_until(hs, 5 * SEC, |t| {
        t.contains("tandem_last_switch_gap_seconds{")
    });
    let gap = sample(&ms, r#"tandem_last_switch_gap_seconds{channel="news"}"#);
    assert!(gap.is_some_and(|g| g > 0.0 && g < 1.0), "{gap:?}\n{ms}");
    let (_, body) = http_get(hs, "/api/v1/status").unwrap();
    let st: serde_json::Value = serde_json::from_str(&body).unwrap();
    let sw = &st["switches"][0];
    assert_eq!(sw["reason"], "FailureDeclared", "{st}");
    assert!(sw["gap_us"].as_u64().is_some_and(|g| g > 0), "{st}");
    // The event lines: a transition to Secondary_no_primary and the switch with its gap.
    let mut lines = Vec::new();
    let mut buf = [0u8; 2048];
    let until = std::time::Instant::now() + 3 * SEC;
    while std::time::Instant::now() < until
        && !lines
            .iter()
            .any(|l: &serde_json::Value| l["event"] == "switch")
    {
        if let Ok(n) = events.recv(&mut buf) {
            let v: serde_json::Value = serde_json::from_slice(&buf[..n])
                .unwrap_or_else(|e| panic!("not one JSON line per datagram: {e}"));
            lines.push(v);
        }
    }
    let ev = lines
        .iter()
        .find(|l| l["event"] == "switch")
        .unwrap_or_else(|| panic!("no switch event: {lines:?}"));
    assert_eq!(ev["channel"], "news", "{ev}");
    assert_eq!(ev["reason"], "FailureDeclared", "{ev}");
    let gap_ms = ev["gap_ms"].as_f64().unwrap_or(-1.0);
    assert!(
        gap_ms > 0.0 && (gap_ms - gap.unwrap() * 1e3).abs() < 0.01,
        "{ev}"
    );
    if !ev["old_last_index"].is_null() {
        assert_eq!(ev["lost"], 0, "seamless: nothing lost: {ev}");
    }
    assert!(
        lines.iter().any(|l| l["event"] == "transition"
            && l["to"] == "Secondary_no_primary"
            && l["channel"] == "news"),
        "{lines:?}"
    );
}

#[test]
fn a_remote_http_address_needs_the_explicit_flag() {
    let dir = scratch("http-remote");
    let asset = fixture("cbr-25fps.ts", &dir).display().to_string();
    let net = Net::new();
    let mut a = vec!["primary".to_string(), asset];
    a.extend(net.primary_args("udp"));
    a.push("--http-listen=0.0.0.0:9".into());
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = run(&refs);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--http-listen 0.0.0.0:9") && err.contains("--http-allow-remote"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// `GET` of a Prometheus query; the `data.result` array.
fn prom_query(prom: SocketAddr, q: &str) -> Option<Vec<serde_json::Value>> {
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (code, body) = http_get(prom, &format!("/api/v1/query?query={enc}")).ok()?;
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"].as_array().cloned()
}

/// A real Prometheus server (Debian's `prometheus`, installed by `.ci/run`) scrapes both
/// servers of a running pair every second and answers queries: exactly one server of the
/// channel on air, and it is the primary's listener; the secondary's listener reports
/// `Secondary_synchronized`; no alarm is active.
#[test]
fn a_real_prometheus_scrapes_the_pair_and_answers_queries() {
    let dir = scratch("prometheus");
    let asset = fixture("cbr-25fps.ts", &dir).display().to_string();
    let net = Net::new();
    let (hp, hs, pp): (SocketAddr, SocketAddr, SocketAddr) = (
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
    );
    let mut pa = vec!["primary".to_string(), asset.clone(), "--loop".into()];
    pa.extend(net.primary_args("udp"));
    pa.extend(args(&CALM));
    pa.push(format!("--http-listen={hp}"));
    let p = Proc::spawn("primary", &dir, &pa);
    let mut sa = vec!["secondary".to_string(), asset, "--loop".into()];
    sa.extend(net.secondary_args("udp"));
    sa.extend(args(&CALM));
    sa.push(format!("--http-listen={hs}"));
    let s = Proc::spawn("secondary", &dir, &sa);
    let conf = dir.join("prometheus.yml");
    std::fs::write(
        &conf,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: tandem\n    static_configs:\n      - targets: [\"{hp}\", \"{hs}\"]\n"
        ),
    )
    .unwrap();
    let prom = Proc::spawn_program(
        "prometheus",
        "prometheus",
        &dir,
        &[
            format!("--config.file={}", conf.display()),
            format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            format!("--web.listen-address={pp}"),
        ],
    );
    wait_state(net.ctl_s, "Secondary_synchronized", 10 * SEC, &[&p, &s]);
    let t0 = Instant::now();
    let mut last = None;
    let q_primary = r#"tandem_channel_state{channel="main",state="Primary"} == 1"#;
    let q_sync = r#"tandem_channel_state{channel="main",state="Secondary_synchronized"} == 1"#;
    while t0.elapsed() < 25 * SEC {
        let a = prom_query(pp, q_primary);
        let b = prom_query(pp, q_sync);
        let on_air = prom_query(pp, r#"sum(tandem_channel_on_air{channel="main"})"#);
        let alarms = prom_query(pp, "sum(tandem_alarm_active)");
        // The 90th percentile of the primary's send lateness, from the histogram.
        let p90 = prom_query(
            pp,
            &format!(
                r#"histogram_quantile(0.9, tandem_send_lateness_seconds_bucket{{instance="{hp}"}})"#
            ),
        );
        let p90_ok = p90.as_ref().is_some_and(|r| {
            r.first()
                .and_then(|x| x["value"][1].as_str())
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|v| v.is_finite() && (0.0..0.05).contains(&v))
        });
        if let (Some(a), Some(b), Some(on_air), Some(alarms), true) =
            (&a, &b, &on_air, &alarms, p90_ok)
        {
            let inst = |r: &Vec<serde_json::Value>| {
                r.iter()
                    .map(|x| x["metric"]["instance"].as_str().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
            };
            let val = |r: &Vec<serde_json::Value>| {
                r.first()
                    .and_then(|x| x["value"][1].as_str())
                    .and_then(|v| v.parse::<f64>().ok())
            };
            if inst(a) == [hp.to_string()]
                && inst(b) == [hs.to_string()]
                && val(on_air) == Some(1.0)
                && val(alarms) == Some(0.0)
            {
                return;
            }
        }
        last = Some((a, b, on_air, alarms));
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "Prometheus did not answer as expected in 25 s: {last:?}\n--- prometheus ---\n{}\n--- primary ---\n{}",
        prom.log_text(),
        p.log_text()
    );
}

/// The channel row of the status page at `url` after a real browser (headless Chromium,
/// Debian's `chromium`, installed by `.ci/run`) ran its script for a while: the attributes
/// of `<tr class="channel" ...>` as (name, value).
fn page_row(url: &str, profile: &std::path::Path) -> Vec<(String, String)> {
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=3000",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            url,
        ])
        .output()
        .expect("chromium (Debian's package; .ci/run installs it)");
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    let Some(row) = dom
        .split("<tr class=\"channel\"")
        .nth(1)
        .and_then(|r| r.split('>').next())
    else {
        panic!("no channel row in the page:\n{dom}");
    };
    row.split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.trim_matches('"').to_string()))
        })
        .collect()
}

fn attr<'a>(row: &'a [(String, String)], name: &str) -> &'a str {
    row.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// The status page in a real browser: the secondary's page shows it synchronised and off
/// air; after a kill -9 of the primary it shows it on air in `Secondary_no_primary` with one
/// switch, the page having fetched the status by itself.
#[test]
fn the_status_page_in_a_real_browser_shows_the_switch() {
    let dir = scratch("page");
    let asset = fixture("cbr-25fps.ts", &dir).display().to_string();
    let net = Net::new();
    let hs: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut pa = vec!["primary".to_string(), asset.clone(), "--loop".into()];
    pa.extend(net.primary_args("udp"));
    pa.extend(args(&CALM));
    let mut p = Proc::spawn("primary", &dir, &pa);
    let mut sa = vec!["secondary".to_string(), asset, "--loop".into()];
    sa.extend(net.secondary_args("udp"));
    sa.extend(args(&CALM));
    sa.extend(args(&[&format!("--http-listen={hs}"), "--channel=news"]));
    let s = Proc::spawn("secondary", &dir, &sa);
    wait_state(net.ctl_s, "Secondary_synchronized", 10 * SEC, &[&p, &s]);
    let url = format!("http://{hs}/");
    let profile = dir.join("chromium");
    let row = page_row(&url, &profile);
    assert_eq!(attr(&row, "data-channel"), "news", "{row:?}");
    assert_eq!(
        attr(&row, "data-state"),
        "Secondary_synchronized",
        "{row:?}"
    );
    assert_eq!(attr(&row, "data-on-air"), "0", "{row:?}");
    assert_eq!(attr(&row, "data-switches"), "0", "{row:?}");
    // What it plays: the asset (not a playlist).
    assert_eq!(attr(&row, "data-playing"), "cbr-25fps.ts", "{row:?}");
    assert_eq!(attr(&row, "data-playlist-item"), "", "{row:?}");
    // The secondary's pacer sends on the muted group: the page shows the bucket bound of
    // its 99th-percentile send lateness (pacing::LATENESS_BOUNDS_NS, in ms, or "inf").
    let p99 = attr(&row, "data-lateness-p99-ms");
    assert!(
        p99 == "inf"
            || p99
                .parse::<f64>()
                .is_ok_and(
                    |v| [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0].contains(&v)
                ),
        "{row:?}"
    );
    p.kill9();
    wait_state(net.ctl_s, "Secondary_no_primary", 5 * SEC, &[&s]);
    // Right after the takeover the output may still be held while ownership is verified
    // (a stall of this loaded machine): the page says "not on air" then, truthfully; it is
    // loaded again (four times at most) until the server sends.
    let mut row = page_row(&url, &profile);
    for _ in 0..3 {
        if attr(&row, "data-on-air") == "1" && !attr(&row, "data-last-gap-ms").is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        row = page_row(&url, &profile);
    }
    assert_eq!(attr(&row, "data-state"), "Secondary_no_primary", "{row:?}");
    assert_eq!(attr(&row, "data-on-air"), "1", "{row:?}");
    assert_eq!(attr(&row, "data-switches"), "1", "{row:?}");
    // The gap the new owner measured on the live group, on the page.
    let gap: f64 = attr(&row, "data-last-gap-ms").parse().unwrap_or(-1.0);
    assert!(gap > 0.0 && gap < 1000.0, "{row:?}");
}
