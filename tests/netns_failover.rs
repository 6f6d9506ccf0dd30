//! Claim 1's two-computer case across network namespaces: primary, secondary and
//! viewer are three hosts of `tools/netns-lab.sh`, with the live network and the sync
//! network ("the second network") apart. The primary is killed with SIGKILL; the viewer's
//! `tandem recv` must see exactly one change of sender, from the primary's address to the
//! secondary's, a gap shorter than one frame, and the stream continuing from the secondary
//! (ffprobe decodes the capture across the switch).
//!
//! Root only (CI runs as root). The test FAILS when it cannot build the lab, it never skips.
//! The lab is always removed (Drop guard, also when an assertion fails).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tandem");
/// The lab id of this test (nobody else uses it).
const LAB: &str = "nfk";
const FRAME_US: f64 = 40_000.0;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lab_script() -> PathBuf {
    root().join("tools/netns-lab.sh")
}

/// The lab (its id), torn down when dropped.
struct Lab(&'static str);

impl Lab {
    fn up() -> Lab {
        Lab::up_id(LAB)
    }

    fn up_id(id: &'static str) -> Lab {
        // Remove leftovers of an interrupted earlier run first.
        let _ = Command::new("bash")
            .arg(lab_script())
            .args(["down", id])
            .output();
        let out = Command::new("bash")
            .arg(lab_script())
            .args(["up", id])
            .output()
            .expect("running tools/netns-lab.sh");
        let lab = Lab(id);
        assert!(
            out.status.success(),
            "cannot build the namespace lab (root and iproute2 needed; CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    fn addr(&self, host: &str, net: &str) -> String {
        let out = Command::new("bash")
            .arg(lab_script())
            .args(["addr", self.0, host, net])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn ns(&self, host: &str) -> String {
        format!("tl{}-{host}", self.0)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(lab_script())
            .args(["down", self.0])
            .output();
    }
}

/// A process inside a lab host, killed and reaped when dropped.
struct Host(Child, PathBuf);

impl Host {
    fn spawn(ns: &str, args: &[String], log: PathBuf, stdout: Option<PathBuf>) -> Host {
        let err = std::fs::File::create(&log).unwrap();
        let out = match &stdout {
            Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
            None => Stdio::from(err.try_clone().unwrap()),
        };
        let child = Command::new("ip")
            .args(["netns", "exec", ns, BIN])
            .args(args)
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap();
        Host(child, log)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status_state(lab: &Lab, host: &str, ctl: &str, session: &str) -> Option<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns(host), BIN, "status", ctl, "--json"])
        .args(["--session-id", session])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["state"].as_str().map(str::to_string)
}

/// The default detection window is a third of a frame: a stall of this machine longer than
/// that before the kill fails the primary (its kernel's deadlines) and the secondary takes
/// over. Such a run says nothing about the kill; it is run again (at most three times).
/// Whatever follows the kill is asserted strictly.
#[test]
fn kill_9_of_the_primary_across_namespaces_one_switch_inside_one_frame() {
    for attempt in 1..=3 {
        if kill_9_attempt() {
            return;
        }
        eprintln!("attempt {attempt}: the primary failed before the kill (a stall of this machine); again");
    }
    panic!("the primary failed before the kill in three attempts");
}

/// One run; false when the pair did not stay stable until the kill.
fn kill_9_attempt() -> bool {
    let dir = std::env::temp_dir().join(format!("tandem-netns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lab = Lab::up();
    let (pri_live, sec_live, view_live) = (
        lab.addr("pri", "live"),
        lab.addr("sec", "live"),
        lab.addr("view", "live"),
    );
    let (pri_sync, sec_sync) = (lab.addr("pri", "sync"), lab.addr("sec", "sync"));
    let live = "rtp://239.255.211.1:5004";
    let muted = "rtp://239.255.211.2:5004";
    let session = "netns-kill";
    let capture = dir.join("viewer.ts");
    let recv_json = dir.join("recv.json");
    let viewer = Host::spawn(
        &lab.ns("view"),
        &[
            "recv".into(),
            live.into(),
            "--iface".into(),
            view_live.clone(),
            "--json".into(),
            "--seconds".into(),
            "6".into(),
            "--capture".into(),
            capture.display().to_string(),
        ],
        dir.join("recv.log"),
        Some(recv_json.clone()),
    );
    let server = |role: &str, iface: &str, me: &str, peer: &str| -> Vec<String> {
        let v: Vec<String> = vec![
            role.into(),
            "fixtures/cbr-25fps.ts".into(),
            "--dest".into(),
            live.into(),
            "--muted".into(),
            muted.into(),
            "--iface".into(),
            iface.into(),
            "--loop".into(),
            "--session-id".into(),
            session.into(),
            "--sync-listen".into(),
            format!("{me}:7301"),
            "--sync-peer".into(),
            format!("{peer}:7301"),
            "--control-listen".into(),
            "127.0.0.1:7311".into(),
        ];
        v
    };
    let mut primary = Host::spawn(
        &lab.ns("pri"),
        &server("primary", &pri_live, &pri_sync, &sec_sync),
        dir.join("primary.log"),
        None,
    );
    let secondary = Host::spawn(
        &lab.ns("sec"),
        &server("secondary", &sec_live, &sec_sync, &pri_sync),
        dir.join("secondary.log"),
        None,
    );
    // The secondary (another host) reaches Secondary_synchronized over the sync network.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if status_state(&lab, "sec", "127.0.0.1:7311", session).as_deref()
            == Some("Secondary_synchronized")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "secondary not synchronised after 10 s\nprimary:\n{}\nsecondary:\n{}",
            primary.log(),
            secondary.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1200));
    // Before the kill: the secondary never took over, the primary never left the air.
    let took_over = secondary.log().contains("-> Secondary_no_primary");
    primary.0.kill().unwrap(); // SIGKILL (ip netns exec keeps the process id)
    let _ = primary.0.wait();
    let left = ["-> Secondary_synchronizing", "-> Failed"]
        .iter()
        .any(|t| primary.log().contains(t));
    if took_over || left {
        return false;
    }
    // The viewer runs to its end (6 s) and prints its report.
    let mut viewer = viewer;
    let end = Instant::now() + Duration::from_secs(15);
    while viewer.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "viewer did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&recv_json).unwrap())
        .unwrap_or_else(|e| panic!("viewer JSON: {e}\n{}", viewer.log()));
    let changes = &r["sender_changes"];
    assert_eq!(
        changes["count"],
        1,
        "exactly one change of sender: {changes}\nsecondary:\n{}",
        secondary.log()
    );
    let c = &changes["list"][0];
    assert!(
        c["from"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{pri_live}:")),
        "{c}"
    );
    assert!(
        c["to"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{sec_live}:")),
        "{c}"
    );
    let gap = c["gap_us"].as_f64().unwrap();
    assert!(gap < FRAME_US, "gap {gap} us >= one frame");
    // The stream continues from the secondary: over a second of it after the switch.
    let sec_src = r["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["addr"] == c["to"])
        .unwrap();
    assert!(
        sec_src["last_s"].as_f64().unwrap() - sec_src["first_s"].as_f64().unwrap() > 1.0,
        "{sec_src}"
    );
    assert!(sec_src["datagrams"].as_u64().unwrap() > 200, "{sec_src}");
    println!(
        "netns kill -9: gap {gap:.0} us, RTP lost {}, CC errors {}",
        r["rtp"]["lost"], r["tr101290"]["cc_error"]["count"]
    );
    // A decoder reads the capture across the switch.
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&capture)
        .output()
        .expect("ffprobe (installed by .ci/run)");
    // One line per section that lists the stream (program and stream): take the first.
    let frames: u64 = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .find_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .unwrap_or(0);
    assert!(
        frames > 100,
        "ffprobe decoded {frames} frames: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    drop(secondary);
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    true
}

/// The full status of a server inside a lab host.
fn status_json(lab: &Lab, host: &str, ctl: &str, session: &str) -> Option<serde_json::Value> {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns(host), BIN, "status", ctl, "--json"])
        .args(["--session-id", session])
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

fn alarms_of(v: &Option<serde_json::Value>) -> Vec<String> {
    v.as_ref()
        .and_then(|v| v["alarms"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// The sync link cut while the primary stays on air: the secondary rightly does not take
/// over, and both servers raise "sync link lost" and "pair unprotected" (status and event
/// log); when the link returns both alarms clear. Prints how long after the cut each alarm
/// was raised (the goal is within one second; the assertion allows for this VM's stalls).
#[test]
fn a_cut_sync_link_raises_alarms_on_both_servers_and_they_clear_when_it_returns() {
    // A stall of the primary (one heartbeat period, 10 ms) while the link is cut makes it
    // hold its output and verify ownership, which it cannot over a cut link: the secondary
    // then rightly takes the silent group (docs/failover.md, "Holding can last"). That run
    // says nothing about the alarms; it is reported and run again (3 runs at most).
    for attempt in 1..=3 {
        match cut_link_alarms() {
            Ok(()) => return,
            Err(why) => eprintln!("attempt {attempt}: {why}; running again"),
        }
    }
    panic!("three runs in a row were spoiled by stalls of the primary");
}

fn cut_link_alarms() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("tandem-netns-alarm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lab = Lab::up_id("nfa");
    let (pri_live, sec_live) = (lab.addr("pri", "live"), lab.addr("sec", "live"));
    let (pri_sync, sec_sync) = (lab.addr("pri", "sync"), lab.addr("sec", "sync"));
    let session = "netns-alarm";
    let server = |role: &str, iface: &str, me: &str, peer: &str, log: &str| -> Vec<String> {
        [
            role,
            "fixtures/cbr-25fps.ts",
            "--dest",
            "rtp://239.255.212.1:5004",
            "--muted",
            "rtp://239.255.212.2:5004",
            "--iface",
            iface,
            "--loop",
            "--session-id",
            session,
            "--sync-listen",
            &format!("{me}:7301"),
            "--sync-peer",
            &format!("{peer}:7301"),
            "--control-listen",
            "127.0.0.1:7311",
            "--event-log",
            log,
            // Detection speed is not under test here: a calm window (400 ms) keeps a stall
            // of this VM from making the secondary take over before or after the cut. With
            // 100 ms a clean-clone CI run (two pairs on two cores) once saw the primary's
            // output pause that long while the link was cut: the secondary rightly took the
            // group (both paths silent) and the primary stepped down.
            "--heartbeat-us=10000",
            "--miss=40",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (pri_ev, sec_ev) = (dir.join("primary.events"), dir.join("secondary.events"));
    let primary = Host::spawn(
        &lab.ns("pri"),
        &server(
            "primary",
            &pri_live,
            &pri_sync,
            &sec_sync,
            pri_ev.to_str().unwrap(),
        ),
        dir.join("primary.log"),
        None,
    );
    let secondary = Host::spawn(
        &lab.ns("sec"),
        &server(
            "secondary",
            &sec_live,
            &sec_sync,
            &pri_sync,
            sec_ev.to_str().unwrap(),
        ),
        dir.join("secondary.log"),
        None,
    );
    let ctl = "127.0.0.1:7311";
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_state(&lab, "sec", ctl, session).as_deref() != Some("Secondary_synchronized") {
        assert!(
            Instant::now() < deadline,
            "secondary not synchronised after 10 s\n{}\n{}",
            primary.log(),
            secondary.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(700));
    for h in ["pri", "sec"] {
        let a = alarms_of(&status_json(&lab, h, ctl, session));
        assert!(a.is_empty(), "{h}: alarms before the cut: {a:?}");
    }
    let port = format!("tl{}pri-sb", lab.0);
    let cut_real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let ip = |state: &str| {
        let ok = Command::new("ip")
            .args(["link", "set", &port, state])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip link set {port} {state}");
    };
    ip("down");
    let want = ["sync_link_lost", "pair_unprotected"];
    let deadline = Instant::now() + Duration::from_secs(3);
    for h in ["pri", "sec"] {
        loop {
            let a = alarms_of(&status_json(&lab, h, ctl, session));
            if want.iter().all(|w| a.iter().any(|x| x == w)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{h}: alarms {a:?} 3 s after the cut\n{}\n{}",
                primary.log(),
                secondary.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // The primary stays on air; the secondary does not take over.
    let pri_state = status_state(&lab, "pri", ctl, session);
    if pri_state.as_deref() != Some("Primary_no_secondary")
        && primary.log().contains("live output stopped (HoldLive)")
    {
        return Err(format!(
            "the primary stalled and held its output after the cut, state {pri_state:?}"
        ));
    }
    assert_eq!(
        pri_state.as_deref(),
        Some("Primary_no_secondary"),
        "the primary left the air after the cut\n{}\n{}",
        primary.log(),
        secondary.log()
    );
    if secondary.log().contains("-> Secondary_no_primary")
        && primary.log().contains("live output stopped (HoldLive)")
    {
        return Err(
            "the primary stalled and held its output after the cut; the secondary took over".into(),
        );
    }
    assert!(
        !secondary.log().contains("-> Secondary_no_primary"),
        "{}",
        secondary.log()
    );
    ip("up");
    let deadline = Instant::now() + Duration::from_secs(5);
    for h in ["pri", "sec"] {
        loop {
            let a = alarms_of(&status_json(&lab, h, ctl, session));
            if a.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{h}: alarms {a:?} still raised 5 s after the link returned\n{}\n{}",
                primary.log(),
                secondary.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // The event logs carry each alarm raised and cleared, and when.
    for (h, ev) in [("primary", &pri_ev), ("secondary", &sec_ev)] {
        let text = std::fs::read_to_string(ev).unwrap();
        for w in want {
            let lines: Vec<serde_json::Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .filter(|v: &serde_json::Value| v["event"] == "alarm" && v["alarm"] == w)
                .collect();
            let raised = lines.iter().find(|v| v["raised"] == true);
            let cleared = lines.iter().find(|v| v["raised"] == false);
            let (Some(r), Some(_)) = (raised, cleared) else {
                panic!("{h}: {w} raised and cleared in the event log: {lines:?}");
            };
            let after_ms = (r["t_real_ns"].as_u64().unwrap() as f64 - cut_real as f64) / 1e6;
            println!("{h}: {w} raised {after_ms:.0} ms after the cut");
            assert!(
                after_ms > 0.0 && after_ms < 2_500.0,
                "{h}: {w} after {after_ms} ms"
            );
        }
    }
    drop(primary);
    drop(secondary);
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
