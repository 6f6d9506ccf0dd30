//! `tandem serve`: two host processes on loopback serve the same channel list, each the
//! preferred primary of some channels (active/active), over one sync link and one control
//! port per host; a switchover moves one channel alone, nothing lost, and a kill -9 of one
//! host fails over every channel it had on air, each inside one frame with nothing lost.

mod common;

use std::net::SocketAddrV4;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const SEC: Duration = Duration::from_secs(1);

/// The listing of a host (`tandem status HOST:PORT --json` without `--channel`).
fn listing(ctl: SocketAddrV4, key: &Path) -> Option<serde_json::Value> {
    status_with(ctl, &[&format!("--key-file={}", key.display())])
        .filter(|v| v["schema"] == "tandem.serve-status/1")
}

/// name -> (state, on air) of a listing.
fn states(l: &serde_json::Value) -> Vec<(String, String, bool)> {
    l["channels"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or("").to_string(),
                        c["state"].as_str().unwrap_or("").to_string(),
                        c["on_air"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

struct Host {
    name: &'static str,
    http: Option<std::net::SocketAddr>,
    sync: SocketAddrV4,
    peer: SocketAddrV4,
    ctl: SocketAddrV4,
}

/// Hosts a and b on `net`'s sync and control addresses (a the first, b the second), no HTTP.
fn hosts(net: &Net) -> (Host, Host) {
    (
        Host {
            name: "a",
            http: None,
            sync: net.sync_p,
            peer: net.sync_s,
            ctl: net.ctl_p,
        },
        Host {
            name: "b",
            http: None,
            sync: net.sync_s,
            peer: net.sync_p,
            ctl: net.ctl_s,
        },
    )
}

/// A configuration of two channels (detection window 10 x 10 ms: wider than the default
/// third of a frame, so that the stalls of this shared machine, tens of ms in a debug build
/// with several channels on two cores, do not swap roles before the test does; the kill
/// test narrows it): `news` prefers host a, `sport` host b, plus `extra`
/// lines (more channels).
fn config(h: &Host, key: &Path, asset: &Path, news: &Net, sport: &Net, extra: &str) -> String {
    format!(
        r#"# a test host
[host]
name = "{name}"
sync_listen = "{sync}"
sync_peer = "{peer}"
control_listen = "{ctl}"
key_file = "{key}"
{http}

[[channel]]
name = "news"
asset = "{asset}"
live = "rtp://{news_live}"
muted = "rtp://{news_muted}"
primary = "a"
loop = true
miss = 10
heartbeat_us = 10000

[[channel]]
name = "sport"
asset = "{asset}"
live = "rtp://{sport_live}"
muted = "rtp://{sport_muted}"
primary = "b"
loop = true
miss = 10
heartbeat_us = 10000
{extra}"#,
        name = h.name,
        http = h
            .http
            .map(|a| format!("http_listen = \"{a}\""))
            .unwrap_or_default(),
        sync = h.sync,
        peer = h.peer,
        ctl = h.ctl,
        key = key.display(),
        asset = asset.display(),
        news_live = news.live,
        news_muted = news.muted,
        sport_live = sport.live,
        sport_muted = sport.muted,
    )
}

/// Waits until both listings show every channel of `names` with exactly one host on air
/// (`Primary`) and the other `Secondary_synchronized`; returns the listings.
fn settled(
    a: SocketAddrV4,
    b: SocketAddrV4,
    key: &Path,
    names: &[&str],
    procs: [&Proc; 2],
) -> (serde_json::Value, serde_json::Value) {
    let t0 = Instant::now();
    let mut last = String::new();
    while t0.elapsed() < 20 * SEC {
        if let (Some(la), Some(lb)) = (listing(a, key), listing(b, key)) {
            let (sa, sb) = (states(&la), states(&lb));
            let ok = names.iter().all(|n| {
                let x = sa.iter().find(|c| c.0 == *n);
                let y = sb.iter().find(|c| c.0 == *n);
                matches!(
                    (x, y),
                    (Some(x), Some(y)) if matches!(
                        (x.1.as_str(), x.2, y.1.as_str(), y.2),
                        ("Primary", true, "Secondary_synchronized", false)
                            | ("Secondary_synchronized", false, "Primary", true)
                    )
                )
            });
            if ok {
                return (la, lb);
            }
            last = format!("{sa:?}\n{sb:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "the channels did not settle in 20 s: {last}\n--- a ---\n{}\n--- b ---\n{}",
        procs[0].log_text(),
        procs[1].log_text()
    );
}

/// The host's listing once it shows `names` on air (a live output held for a moment while
/// ownership is verified reads as off air), or the last one after 3 s.
fn on_air_for(ctl: SocketAddrV4, key: &Path, names: &[&str]) -> serde_json::Value {
    on_air_for_within(ctl, key, names, 3 * SEC)
}

/// [`on_air_for`] with another time limit.
fn on_air_for_within(
    ctl: SocketAddrV4,
    key: &Path,
    names: &[&str],
    limit: Duration,
) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let l = listing(ctl, key).unwrap_or_default();
        if names.iter().all(|n| on_air(&l, n)) || t0.elapsed() > limit {
            return l;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn on_air(l: &serde_json::Value, name: &str) -> bool {
    states(l).iter().any(|c| c.0 == name && c.2)
}

#[test]
fn two_hosts_serve_channels_active_active_and_a_killed_host_fails_over_its_channels() {
    for attempt in 1..=3 {
        if kill_attempt() {
            return;
        }
        eprintln!("attempt {attempt}: a stall of this machine moved a channel by the rules before the test did; again");
    }
    panic!("a stall takeover before the kill in three attempts");
}

/// Takeovers by missed heartbeats and failures declared by a server's kernel (a pacer late
/// past its tolerance) in the logs of `procs`: stalls of this machine, when the test caused
/// none.
fn stall_takeovers(procs: &[&Proc]) -> usize {
    procs
        .iter()
        .map(|p| {
            let t = strip_ansi(&p.log_text());
            t.matches("FailureDeclared: ").count() + t.matches(" -> Failed: ").count()
        })
        .sum()
}

/// One run of the kill test (detection window 10 x 2.5 ms, so that the switch at the kill
/// falls inside one frame); false when a stall moved a channel before the kill.
fn kill_attempt() -> bool {
    let dir = scratch("serve");
    let asset = fixture("cbr-25fps.ts", &dir);
    let key = dir.join("tandem.key");
    std::fs::write(&key, "a shared secret of the two test hosts\n").unwrap();
    let (hosts_net, news, sport) = (Net::new(), Net::new(), Net::new());
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let ha = Host {
        name: "a",
        http: Some(http),
        sync: hosts_net.sync_p,
        peer: hosts_net.sync_s,
        ctl: hosts_net.ctl_p,
    };
    let hb = Host {
        name: "b",
        http: None,
        sync: hosts_net.sync_s,
        peer: hosts_net.sync_p,
        ctl: hosts_net.ctl_s,
    };
    // A third channel whose asset does not exist: it reports its error, the others run.
    let broken = format!(
        "\n[[channel]]\nname = \"broken\"\nasset = \"{}\"\nlive = \"udp://{}\"\nmuted = \"udp://{}\"\nprimary = \"a\"\n",
        dir.join("missing.ts").display(),
        hosts_net.live,
        hosts_net.muted
    );
    for h in [&ha, &hb] {
        std::fs::write(
            dir.join(format!("{}.toml", h.name)),
            config(h, &key, &asset, &news, &sport, &broken)
                .replace("heartbeat_us = 10000", "heartbeat_us = 2500"),
        )
        .unwrap();
    }
    let conf = |h: &str| dir.join(format!("{h}.toml")).display().to_string();
    let mut a = Proc::spawn("a", &dir, &args(&["serve", &conf("a")]));
    let b = Proc::spawn("b", &dir, &args(&["serve", &conf("b")]));
    let (la, lb) = settled(ha.ctl, hb.ctl, &key, &["news", "sport"], [&a, &b]);

    // Active/active: each host carries the channel that prefers it.
    assert!(
        on_air(&la, "news") && on_air(&lb, "sport"),
        "news on a and sport on b:\n{la}\n{lb}"
    );
    assert!(!on_air(&la, "sport") && !on_air(&lb, "news"));
    // The broken channel says why and runs nowhere.
    let broken_a = la["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "broken")
        .unwrap()
        .clone();
    assert!(
        broken_a["error"]
            .as_str()
            .is_some_and(|e| e.contains("missing.ts")),
        "{broken_a}"
    );
    // One channel in full, routed by its name.
    let key_flag = format!("--key-file={}", key.display());
    let one = status_with(hb.ctl, &[&key_flag, "--channel=sport"]).expect("sport's status");
    assert_eq!(one["schema"], "tandem.status/1", "{one}");
    assert_eq!(one["channel"], "sport");
    assert_eq!(state(&one), "Primary");

    // Host a's one HTTP listener: every channel's metrics, the listing with each status.
    let (code, metrics) = http_get(http, "/metrics").unwrap();
    assert_eq!(code, 200, "{metrics}");
    for want in [
        r#"tandem_channel_state{channel="news",state="Primary"} 1"#,
        r#"tandem_channel_state{channel="sport",state="Secondary_synchronized"} 1"#,
    ] {
        assert!(metrics.contains(want), "{want} in {metrics}");
    }
    let (code, body) = http_get(http, "/api/v1/status").unwrap();
    assert_eq!(code, 200);
    let l: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(l["schema"], "tandem.serve-status/1");
    assert_eq!(l["channels"][1]["status"]["channel"], "sport", "{l}");

    // A planned switchover of one channel: sport moves to host a, nothing lost or
    // repeated, and news does not notice.
    let rx_news = Recv::start(&dir, &format!("rtp://{}", news.live), 3.0, None);
    let rx_sport = Recv::start(&dir, &format!("rtp://{}", sport.live), 3.0, None);
    std::thread::sleep(Duration::from_millis(800));
    let out = run(&[
        "request",
        "switchover",
        &format!("--to={}", hb.ctl),
        "--channel=sport",
        &key_flag,
    ]);
    assert!(out.status.success(), "{out:?}");
    let (rn, rs) = (rx_news.report(), rx_sport.report());
    if stall_takeovers(&[&a, &b]) > 0 {
        return false;
    }
    assert_eq!(rn["sender_changes"]["count"], 0, "news: {rn}");
    // Nothing lost or repeated. One change of sender, unless the old owner was catching
    // up after a stall of its own when the new one started on time: then a few datagrams
    // arrive out of order (docs/failover.md, "A hand-over behind a stall").
    let changes = rs["sender_changes"]["count"].as_u64().unwrap();
    assert!(changes >= 1, "sport moved to a: {rs}");
    assert_eq!(rs["rtp"]["lost"], 0, "sport: {rs}");
    assert_eq!(rs["rtp"]["duplicates"], 0, "sport: {rs}");
    if changes > 1 {
        eprintln!(
            "sport: {changes} changes of sender, {} reordered",
            rs["rtp"]["reordered"]
        );
    }
    assert_eq!(rn["tr101290"]["cc_error"]["count"], 0, "news: {rn}");
    let la = on_air_for(ha.ctl, &key, &["news", "sport"]);
    assert!(on_air(&la, "news") && on_air(&la, "sport"), "{la}");

    // kill -9 of host a, on air for both: each channel moves to b inside one frame.
    let rx_news = Recv::start(&dir, &format!("rtp://{}", news.live), 4.0, None);
    let rx_sport = Recv::start(&dir, &format!("rtp://{}", sport.live), 4.0, None);
    std::thread::sleep(Duration::from_millis(1200));
    if stall_takeovers(&[&a, &b]) > 0 {
        return false;
    }
    a.kill9();
    let (rn, rs) = (rx_news.report(), rx_sport.report());
    for (name, r) in [("news", &rn), ("sport", &rs)] {
        assert!(
            r["datagrams"].as_u64().unwrap() > 600,
            "{name}: 4 s of a 2.5 Mb/s channel: {r}"
        );
        assert_eq!(r["tr101290"]["cc_error"]["count"], 0, "{name}: {r}");
        assert_eq!(r["sender_changes"]["count"], 1, "{name} moved to b: {r}");
        // The switch: inside one frame (40 ms at 25 fps), no datagram missing.
        let change = &r["sender_changes"]["list"][0];
        assert!(
            change["gap_us"].as_f64().unwrap() < 40_000.0,
            "{name}: {change}"
        );
        assert_eq!(change["datagrams_missing_est"], 0, "{name}: {change}");
    }
    assert_eq!(rn["rtp"]["lost"], 0, "news: {rn}");
    assert_eq!(rn["rtp"]["duplicates"], 0, "news: {rn}");
    let lb = on_air_for(hb.ctl, &key, &["news", "sport"]);
    assert!(on_air(&lb, "news") && on_air(&lb, "sport"), "{lb}");
    let text = strip_ansi(&b.log_text());
    assert!(
        text.matches("FailureDeclared").count() >= 2,
        "b logged why it took both: {text}"
    );
    true
}

#[test]
fn a_bad_file_names_the_line_and_nothing_starts() {
    let dir = scratch("serve-bad");
    let net = Net::new();
    let bad = format!(
        "[host]\nname = \"a\"\nsync_listen = \"{}\"\nsync_peer = \"{}\"\ncontrol_listen = \"{}\"\n\n[[channel]]\nname = \"news\"\nlive = \"udp://{}\"\nmuted = \"udp://{}\"\nprimary = \"a\"\ncolour = \"red\"\n",
        net.sync_p, net.sync_s, net.ctl_p, net.live, net.muted
    );
    let p = dir.join("bad.toml");
    std::fs::write(&p, bad).unwrap();
    let out = run(&["serve", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:12") && err.contains("colour"),
        "{err}"
    );
    assert!(
        std::net::UdpSocket::bind(net.ctl_p).is_ok(),
        "nothing bound"
    );
}

/// Host a is down when host b starts: after the wait (3 s) b takes news (which prefers a)
/// as its primary, having verified that nobody is on air; when a comes back it finds b on
/// air for news and joins as its secondary, and takes nothing back by itself.
#[test]
fn a_channel_whose_preferred_host_is_absent_is_taken_and_the_returning_host_joins_it() {
    let dir = scratch("serve-absent");
    let asset = fixture("cbr-25fps.ts", &dir);
    let key = dir.join("tandem.key");
    std::fs::write(&key, "a shared secret of the two test hosts\n").unwrap();
    let (hosts_net, news, sport) = (Net::new(), Net::new(), Net::new());
    let (ha, hb) = hosts(&hosts_net);
    for h in [&ha, &hb] {
        std::fs::write(
            dir.join(format!("{}.toml", h.name)),
            config(h, &key, &asset, &news, &sport, ""),
        )
        .unwrap();
    }
    let conf = |h: &str| dir.join(format!("{h}.toml")).display().to_string();
    let b = Proc::spawn("b", &dir, &args(&["serve", &conf("b")]));
    // b carries both channels within a few seconds.
    let lb = on_air_for_within(hb.ctl, &key, &["news", "sport"], 10 * SEC);
    assert!(
        on_air(&lb, "news") && on_air(&lb, "sport"),
        "{lb}\n{}",
        b.log_text()
    );
    let text = strip_ansi(&b.log_text());
    assert!(text.contains("no primary heard for 3 s"), "{text}");
    // a returns: it joins news as the secondary (b stays on air) and sport as before.
    let rx = Recv::start(&dir, &format!("rtp://{}", news.live), 4.0, None);
    let a = Proc::spawn("a", &dir, &args(&["serve", &conf("a")]));
    let (la, lb) = settled(ha.ctl, hb.ctl, &key, &["news", "sport"], [&a, &b]);
    assert!(on_air(&lb, "news") && on_air(&lb, "sport"), "{lb}");
    assert!(!on_air(&la, "news") && !on_air(&la, "sport"), "{la}");
    let r = rx.report();
    let text = strip_ansi(&a.log_text());
    assert!(
        text.contains("news}: state Primary_no_secondary -> Secondary_synchronizing: PeerOnAir"),
        "a's start as news's primary found b on air and joined it: {text}"
    );
    // a joining as the secondary repeats nothing on the live group. (A stall of b's news
    // longer than the 25 ms window on this shared machine is a takeover by the rules,
    // printed; a single datagram lost by a server holding and resuming under such stalls
    // has been seen, on one sender, and is an open finding of issue 9: printed here, the
    // kill and switchover tests assert on loss.)
    if r["sender_changes"]["count"] != 0 || r["rtp"]["lost"] != 0 {
        eprintln!(
            "news: sender changes {}, RTP lost {}",
            r["sender_changes"], r["rtp"]["lost"]
        );
    }
    assert_eq!(r["rtp"]["duplicates"], 0, "{r}");
}

/// A channel defined differently on the two hosts (here its loop) does not pair: the
/// secondary's host says what differs, in its listing and its log, and the host on air
/// reports the channel unprotected; the channels defined the same pair as usual.
#[test]
fn a_channel_defined_differently_on_the_two_hosts_refuses_to_pair_and_says_what_differs() {
    let dir = scratch("serve-differs");
    let asset = fixture("cbr-25fps.ts", &dir);
    let key = dir.join("tandem.key");
    std::fs::write(&key, "a shared secret of the two test hosts\n").unwrap();
    let (hosts_net, news, sport, weather) = (Net::new(), Net::new(), Net::new(), Net::new());
    let (ha, hb) = hosts(&hosts_net);
    let w = channel("weather", &asset, &weather, "a");
    let w_b = w.replace("loop = true", "loop = 2");
    assert_ne!(w, w_b);
    for (h, extra) in [(&ha, &w), (&hb, &w_b)] {
        std::fs::write(
            dir.join(format!("{}.toml", h.name)),
            config(h, &key, &asset, &news, &sport, extra),
        )
        .unwrap();
    }
    let conf = |h: &str| dir.join(format!("{h}.toml")).display().to_string();
    let a = Proc::spawn("a", &dir, &args(&["serve", &conf("a")]));
    let b = Proc::spawn("b", &dir, &args(&["serve", &conf("b")]));
    settled(ha.ctl, hb.ctl, &key, &["news", "sport"], [&a, &b]);
    let t0 = Instant::now();
    let (mut why, mut unprotected) = (String::new(), false);
    while t0.elapsed() < 10 * SEC && (why.is_empty() || !unprotected) {
        let find = |l: Option<serde_json::Value>| {
            l.and_then(|l| {
                l["channels"]
                    .as_array()?
                    .iter()
                    .find(|c| c["name"] == "weather")
                    .cloned()
            })
        };
        if let Some(c) = find(listing(hb.ctl, &key)) {
            why = c["last_error"].as_str().unwrap_or("").to_string();
        }
        if let Some(c) = find(listing(ha.ctl, &key)) {
            unprotected = c["on_air"] == true
                && c["alarms"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x.to_string().contains("pair_unprotected")));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        why.contains("defined differently on the two hosts")
            && why.contains("loop endless there, 2 passes here"),
        "b's weather: {why:?}\n{}",
        b.log_text()
    );
    assert!(
        unprotected,
        "a's weather is not reported unprotected\n{}",
        a.log_text()
    );
    let text = strip_ansi(&b.log_text());
    assert!(
        text.contains("defined differently on the two hosts"),
        "{text}"
    );
}

/// A channel of `tandem serve` plays a playlist (`playlist = "..."`): both hosts pair on
/// it and the one on air says where in the list it is.
#[test]
fn a_channel_plays_a_playlist() {
    let dir = scratch("serve-playlist");
    let asset = fixture("cbr-25fps.ts", &dir);
    let other = fixture("pcr-wrap-25fps.ts", &dir);
    let list = dir.join("movies.m3u");
    std::fs::write(&list, format!("{}\n{}\n", asset.display(), other.display())).unwrap();
    let key = dir.join("tandem.key");
    std::fs::write(&key, "a shared secret of the two test hosts\n").unwrap();
    let (hosts_net, news, sport, movies) = (Net::new(), Net::new(), Net::new(), Net::new());
    let (ha, hb) = hosts(&hosts_net);
    let m = channel("movies", &list, &movies, "a").replace("asset = ", "playlist = ");
    for h in [&ha, &hb] {
        std::fs::write(
            dir.join(format!("{}.toml", h.name)),
            config(h, &key, &asset, &news, &sport, &m),
        )
        .unwrap();
    }
    let conf = |h: &str| dir.join(format!("{h}.toml")).display().to_string();
    let a = Proc::spawn("a", &dir, &args(&["serve", &conf("a")]));
    let b = Proc::spawn("b", &dir, &args(&["serve", &conf("b")]));
    let (la, _) = settled(ha.ctl, hb.ctl, &key, &["news", "sport", "movies"], [&a, &b]);
    let on = if on_air(&la, "movies") {
        ha.ctl
    } else {
        hb.ctl
    };
    let key_flag = format!("--key-file={}", key.display());
    let st = status_with(on, &[&key_flag, "--channel=movies"]).expect("movies' status");
    assert_eq!(st["playlist"]["items"], 2, "{st}");
    assert!(
        st["asset"].as_str().unwrap_or("").ends_with("movies.m3u"),
        "{st}"
    );
}

/// A channel table: `name` on `net`'s groups, preferring host `primary`.
fn channel(name: &str, asset: &Path, net: &Net, primary: &str) -> String {
    format!(
        "\n[[channel]]\nname = \"{name}\"\nasset = \"{}\"\nlive = \"rtp://{}\"\nmuted = \"rtp://{}\"\nprimary = \"{primary}\"\nloop = true\nmiss = 10\nheartbeat_us = 10000\n",
        asset.display(),
        net.live,
        net.muted
    )
}

/// SIGHUP (host b) and `tandem request reload` (host a): a channel added starts on both hosts, a removed one stops, a changed one on air
/// is handed to the peer before its restart, an unchanged one loses nothing; a bad file
/// changes nothing.
#[test]
fn a_reload_adds_removes_and_changes_channels_without_a_glitch_on_the_rest() {
    let dir = scratch("serve-reload");
    let asset = fixture("cbr-25fps.ts", &dir);
    let key = dir.join("tandem.key");
    std::fs::write(&key, "a shared secret of the two test hosts\n").unwrap();
    let (hosts_net, news, sport, extra, weather) =
        (Net::new(), Net::new(), Net::new(), Net::new(), Net::new());
    let (ha, hb) = hosts(&hosts_net);
    let write = |sport_change: &str, more: &str| {
        for h in [&ha, &hb] {
            std::fs::write(
                dir.join(format!("{}.toml", h.name)),
                config(
                    h,
                    &key,
                    &asset,
                    &news,
                    &sport,
                    &format!("{sport_change}{more}"),
                ),
            )
            .unwrap();
        }
    };
    write("", &channel("extra", &asset, &extra, "b"));
    let conf = |h: &str| dir.join(format!("{h}.toml")).display().to_string();
    let a = Proc::spawn("a", &dir, &args(&["serve", &conf("a")]));
    let b = Proc::spawn("b", &dir, &args(&["serve", &conf("b")]));
    settled(ha.ctl, hb.ctl, &key, &["news", "sport", "extra"], [&a, &b]);

    let rx_news = Recv::start(&dir, &format!("rtp://{}", news.live), 9.0, None);
    let rx_sport = Recv::start(&dir, &format!("rtp://{}", sport.live), 9.0, None);
    // sport changed, extra removed, weather added.
    write(
        "failback_after_s = 45\n",
        &channel("weather", &asset, &weather, "a"),
    );
    b.signal(libc::SIGHUP);
    b.wait_log("reload: channel 'sport' changed: restarted", 10 * SEC);
    settled(ha.ctl, hb.ctl, &key, &["news", "sport"], [&a, &b]);
    // Host a by `tandem request reload` (b had SIGHUP): the answer says what changed.
    let key_flag = format!("--key-file={}", key.display());
    let ctl_a = format!("--to={}", ha.ctl);
    let out = run(&["request", "reload", &ctl_a, &key_flag]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        said.contains("channel 'weather' added: started")
            && said.contains("channel 'extra' removed: stopped")
            && said.contains("channel 'sport' changed"),
        "{said}"
    );
    let (la, lb) = settled(
        ha.ctl,
        hb.ctl,
        &key,
        &["news", "sport", "weather"],
        [&a, &b],
    );
    for l in [&la, &lb] {
        let names: Vec<String> = states(l).into_iter().map(|c| c.0).collect();
        assert_eq!(names, ["news", "sport", "weather"], "{l}");
    }
    let (rn, rs) = (rx_news.report(), rx_sport.report());
    // news is not touched by the reload; this machine's stalls (tens of ms in a debug
    // build with six channels on two cores) may still move it, seamlessly.
    if rn["sender_changes"]["count"] != 0 {
        eprintln!(
            "news changed sender (a stall takeover): {}",
            rn["sender_changes"]
        );
    }
    for c in rn["sender_changes"]["list"].as_array().unwrap() {
        assert_eq!(c["datagrams_missing_est"], 0, "news: {c}");
    }
    assert_eq!(rn["rtp"]["lost"], 0, "news: {rn}");
    assert_eq!(rn["rtp"]["duplicates"], 0, "news: {rn}");
    // sport, on air where it was reloaded, was handed to the peer before its restart (and
    // back): nothing lost or repeated (a hand-over behind a stall may reorder a few
    // datagrams: docs/failover.md).
    assert!(
        rs["sender_changes"]["count"].as_u64().unwrap() >= 1,
        "sport: {rs}"
    );
    assert_eq!(rs["rtp"]["lost"], 0, "sport: {rs}");
    assert_eq!(rs["rtp"]["duplicates"], 0, "sport: {rs}");
    assert!(strip_ansi(&b.log_text()).contains("reload: channel 'extra' removed: stopped"));

    // A bad file changes nothing.
    std::fs::write(dir.join("a.toml"), "[host]\nname = 7\n").unwrap();
    let out = run(&["request", "reload", &ctl_a, &key_flag]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        err.contains("nothing changed") && err.contains("a.toml:2"),
        "{err}"
    );
    a.wait_log("reload refused, nothing changed", 5 * SEC);
    let la = listing(ha.ctl, &key).unwrap();
    assert_eq!(states(&la).len(), 3, "{la}");
}

/// A fault of one channel fails over that channel alone: host a is on air for news and
/// sport, news's reader hangs (an injected fault), news moves to host b inside one frame
/// with nothing lost, sport stays on host a with no change of sender.
#[test]
fn a_fault_of_one_channel_fails_over_that_channel_alone() {
    for attempt in 1..=3 {
        if fault_attempt() {
            return;
        }
        eprintln!(
            "attempt {attempt}: a stall of this machine failed sport over by the rules; again"
        );
    }
    panic!("sport failed over by itself in three attempts");
}

/// One run of the fault test; false when sport (no fault injected) failed over anyway, by
/// the rules, after a stall of this machine (its pacer late past the kernel's tolerance, or
/// its heartbeats missed).
fn fault_attempt() -> bool {
    let dir = scratch("serve-fault");
    let asset = fixture("cbr-25fps.ts", &dir);
    let key = dir.join("tandem.key");
    std::fs::write(&key, "a shared secret of the two test hosts\n").unwrap();
    let (hosts_net, news, sport) = (Net::new(), Net::new(), Net::new());
    let (ha, hb) = hosts(&hosts_net);
    for h in [&ha, &hb] {
        // Both channels prefer a; the fault is a's, in news only.
        let mut text = config(h, &key, &asset, &news, &sport, "")
            .replace("primary = \"b\"", "primary = \"a\"");
        if h.name == "a" {
            text = text.replacen(
                "heartbeat_us = 10000\n",
                "heartbeat_us = 10000\ninject = [\"reader-hang@3\"]\n",
                1,
            );
        }
        std::fs::write(dir.join(format!("{}.toml", h.name)), text).unwrap();
    }
    let conf = |h: &str| dir.join(format!("{h}.toml")).display().to_string();
    let a = Proc::spawn("a", &dir, &args(&["serve", &conf("a")]));
    let b = Proc::spawn("b", &dir, &args(&["serve", &conf("b")]));
    let rx_news = Recv::start(&dir, &format!("rtp://{}", news.live), 8.0, None);
    let rx_sport = Recv::start(&dir, &format!("rtp://{}", sport.live), 8.0, None);
    let (la, _) = settled(ha.ctl, hb.ctl, &key, &["news", "sport"], [&a, &b]);
    assert!(on_air(&la, "news") && on_air(&la, "sport"), "{la}");
    let (rn, rs) = (rx_news.report(), rx_sport.report());
    if strip_ansi(&a.log_text()).contains("sport}: state Primary -> ") {
        return false;
    }
    assert_eq!(rn["sender_changes"]["count"], 1, "news moved to b: {rn}");
    let change = &rn["sender_changes"]["list"][0];
    assert_eq!(change["datagrams_missing_est"], 0, "{change}");
    assert!(change["gap_us"].as_f64().unwrap() < 40_000.0, "{change}");
    assert_eq!(rn["rtp"]["lost"], 0, "{rn}");
    assert_eq!(rs["sender_changes"]["count"], 0, "sport stayed on a: {rs}");
    let lb = on_air_for(hb.ctl, &key, &["news"]);
    assert!(on_air(&lb, "news") && !on_air(&lb, "sport"), "{lb}");
    let text = strip_ansi(&b.log_text());
    assert!(text.contains("FailedNotice"), "the kernel's notice: {text}");
    true
}

/// Fail-back (opt-in): b took news while a was down; once a has been synchronised for
/// `failback_after_s` (1 s here), b hands news back to it by a switchover.
#[test]
fn fail_back_hands_a_channel_back_to_its_preferred_host() {
    let dir = scratch("serve-failback");
    let asset = fixture("cbr-25fps.ts", &dir);
    let key = dir.join("tandem.key");
    std::fs::write(&key, "a shared secret of the two test hosts\n").unwrap();
    let (hosts_net, news, sport) = (Net::new(), Net::new(), Net::new());
    let (ha, hb) = hosts(&hosts_net);
    for h in [&ha, &hb] {
        let text = config(h, &key, &asset, &news, &sport, "").replacen(
            "heartbeat_us = 10000\n",
            "heartbeat_us = 10000\nfailback = true\nfailback_after_s = 1\n",
            1,
        );
        std::fs::write(dir.join(format!("{}.toml", h.name)), text).unwrap();
    }
    let conf = |h: &str| dir.join(format!("{h}.toml")).display().to_string();
    let b = Proc::spawn("b", &dir, &args(&["serve", &conf("b")]));
    let lb = on_air_for_within(hb.ctl, &key, &["news"], 10 * SEC);
    assert!(on_air(&lb, "news"), "b took news: {lb}");
    let rx = Recv::start(&dir, &format!("rtp://{}", news.live), 7.0, None);
    let a = Proc::spawn("a", &dir, &args(&["serve", &conf("a")]));
    b.wait_log("fail-back: handed back to host a", 10 * SEC);
    let la = on_air_for(ha.ctl, &key, &["news"]);
    assert!(on_air(&la, "news"), "news back on a: {la}");
    let r = rx.report();
    assert!(r["sender_changes"]["count"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(r["rtp"]["duplicates"], 0, "{r}");
    let text = strip_ansi(&a.log_text());
    assert!(
        text.contains("HandOverOffered"),
        "a took news by a hand-over: {text}"
    );
}

/// The HTTP API of a host: a switchover of one channel by its name (with the bearer token
/// of `token_file`) moves that channel to the other host; a reload applies the file, and a
/// broken file is refused with its line and changes nothing.
#[test]
fn the_http_api_of_a_host_switches_a_channel_over_and_reloads_its_file() {
    let dir = scratch("serve-api");
    let asset = fixture("cbr-25fps.ts", &dir);
    let key = dir.join("tandem.key");
    std::fs::write(&key, "a shared secret of the two test hosts\n").unwrap();
    let token = "serve-test-token-0123456789";
    std::fs::write(dir.join("token"), format!("{token}\n")).unwrap();
    let (hosts_net, news, sport) = (Net::new(), Net::new(), Net::new());
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let (mut ha, hb) = hosts(&hosts_net);
    ha.http = Some(http);
    let token_line = format!(
        "token_file = \"{}\"\nhttp_listen",
        dir.join("token").display()
    );
    for h in [&ha, &hb] {
        let text =
            config(h, &key, &asset, &news, &sport, "").replacen("http_listen", &token_line, 1);
        std::fs::write(dir.join(format!("{}.toml", h.name)), text).unwrap();
    }
    let conf = |h: &str| dir.join(format!("{h}.toml"));
    let a = Proc::spawn("a", &dir, &args(&["serve", conf("a").to_str().unwrap()]));
    let b = Proc::spawn("b", &dir, &args(&["serve", conf("b").to_str().unwrap()]));
    settled(ha.ctl, hb.ctl, &key, &["news", "sport"], [&a, &b]);
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];
    // Without the token, or for a channel the host does not run: refused, nothing moves.
    let post = |path: &str, h: &[(&str, &str)]| http_request(http, "POST", path, h).unwrap();
    assert_eq!(post("/api/v1/channels/news/switchover", &[]).0, 401);
    let (code, _, body) = post("/api/v1/channels/weather/switchover", &auth);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("weather"), "{body}");
    let (code, _, body) = post("/api/v1/switchover", &auth);
    assert_eq!(code, 404, "a host needs the channel's name: {body}");
    // news (on air on a) moves to b.
    let (code, _, body) = post("/api/v1/channels/news/switchover", &auth);
    assert_eq!(code, 202, "{body}\n{}", a.log_text());
    let offer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(offer["accepted"], true, "{offer}");
    let lb = on_air_for(hb.ctl, &key, &["news", "sport"]);
    assert!(on_air(&lb, "news") && on_air(&lb, "sport"), "{lb}");
    // A reload of an unchanged file: applied, nothing to do.
    let (code, _, body) = post("/api/v1/reload", &auth);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"reloaded\":true"), "{body}");
    // A broken file: 422 with the line, and the channels run on.
    let good = std::fs::read_to_string(conf("a")).unwrap();
    std::fs::write(conf("a"), good.replace("miss = 10", "miss = \"ten\"")).unwrap();
    let (code, _, body) = post("/api/v1/reload", &auth);
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("a.toml:") && body.contains("nothing changed"),
        "{body}"
    );
    let la = listing(ha.ctl, &key).unwrap();
    assert_eq!(states(&la).len(), 2, "{la}");
}
