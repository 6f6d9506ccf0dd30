//! Quiet start-up and the real-time pacer on real processes (issue 13, docs/startup.md):
//! `--rt-priority` read back from the kernel (`/proc/PID/task/TID/stat`) where permitted and
//! refused with a warning (the play goes on) where not; `--quiet-startup` on by default,
//! `--no-quiet-startup` off, and `tandem pair` hands both to its servers. No timing
//! assertions.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The (policy, rt_priority) fields of `/proc/PID/task/TID/stat` (proc(5): fields 41 and 40)
/// of the thread of `pid` named `name`.
fn thread_policy(pid: i32, name: &str) -> Option<(u32, u32)> {
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let dir = t.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the command name in parentheses start at field 3.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        return Some((f[41 - 3].parse().ok()?, f[40 - 3].parse().ok()?));
    }
    None
}

const SCHED_FIFO: u32 = 1;

fn play_args(asset: &Path, net: &Net, extra: &[&str]) -> Vec<String> {
    let mut v = args(&[
        "play",
        &asset.display().to_string(),
        "--dest",
        &format!("udp://{}", net.live),
    ]);
    v.extend(args(extra));
    v
}

/// Waits until thread `name` of `p` exists and returns its policy.
fn wait_thread(p: &Proc, name: &str) -> (u32, u32) {
    let t0 = std::time::Instant::now();
    loop {
        if let Some(x) = thread_policy(p.pid(), name) {
            return x;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no thread {name}:\n{}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn rt_priority_puts_the_pacer_at_sched_fifo_where_permitted() {
    // Whether this process may use SCHED_FIFO (root here; unprivileged: refused).
    let permitted = std::thread::spawn(|| tandem::net::priority::pacer_thread(Some(1)))
        .join()
        .unwrap();
    let dir = scratch("rt");
    let asset = fixture("cbr-25fps.ts", &dir);
    let net = Net::new();
    let mut p = Proc::spawn(
        "play",
        &dir,
        &play_args(&asset, &net, &["--rt-priority", "7", "--loop"]),
    );
    p.wait_log("playing", Duration::from_secs(30));
    let (policy, prio) = wait_thread(&p, "tandem-sender");
    let (reader_policy, _) = wait_thread(&p, "tandem-reader");
    p.signal(libc::SIGTERM);
    let (code, log) = p.wait_exit(Duration::from_secs(10));
    if permitted {
        assert_eq!((policy, prio), (SCHED_FIFO, 7), "{log}");
        assert!(!log.contains("refused"), "{log}");
    } else {
        assert_ne!(policy, SCHED_FIFO, "{log}");
        assert!(log.contains("SCHED_FIFO refused"), "{log}");
    }
    assert_ne!(reader_policy, SCHED_FIFO, "only the pacer is real-time");
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn rt_priority_refused_is_a_warning_and_the_play_goes_on() {
    // Root may always use SCHED_FIFO: drop CAP_SYS_NICE for the child (RLIMIT_RTPRIO 0).
    let root = euid() == 0;
    let setpriv = Command::new("setpriv")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if root && !setpriv {
        eprintln!("skipped: root and no setpriv to drop CAP_SYS_NICE");
        return;
    }
    let dir = scratch("rt-refused");
    let asset = fixture("cbr-25fps.ts", &dir);
    let net = Net::new();
    let log = dir.join("play.log");
    let mut cmd = if root {
        let mut c = Command::new("prlimit");
        c.args(["--rtprio=0:0", "--", "setpriv", "--inh-caps=-sys_nice"])
            .args(["--bounding-set=-sys_nice", "--", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    cmd.args(play_args(&asset, &net, &["--rt-priority", "50"]))
        .args(["--start-at", &near_the_end()])
        .env("RUST_LOG", "info");
    let (out, text) = output_and_log(cmd, &log);
    assert!(
        text.contains("--rt-priority 50: SCHED_FIFO refused"),
        "{text}"
    );
    assert!(text.contains("playing"), "{text}");
    assert!(out.status.success(), "{text}");
}

/// Runs `cmd` to its end with stderr in `log`; its output and the log without colours.
fn output_and_log(mut cmd: Command, log: &Path) -> (std::process::Output, String) {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    (out, strip_ansi(&std::fs::read_to_string(log).unwrap()))
}

/// A `--start-at` that joins the 3.0 s fixture's one pass 2.5 s in: half a second to play.
fn near_the_end() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    (now - 2_500).to_string()
}

/// geteuid(2) through /proc (no unsafe in the tests).
fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(u32::MAX)
}

#[test]
fn quiet_startup_is_the_default_and_no_quiet_startup_turns_it_off() {
    let dir = scratch("quiet-flag");
    let asset = fixture("cbr-25fps.ts", &dir);
    let net = Net::new();
    for (extra, quiet) in [(&[][..], true), (&["--no-quiet-startup"][..], false)] {
        let log = dir.join("play.log");
        let mut a = play_args(&asset, &net, extra);
        a.extend(args(&["--start-at", &near_the_end(), "-v"]));
        let mut cmd = Command::new(BIN);
        cmd.args(&a).env_remove("RUST_LOG");
        let (out, text) = output_and_log(cmd, &log);
        assert!(out.status.success(), "{text}");
        assert_eq!(
            text.contains("offset map: at idle CPU and I/O priority (quiet start-up)"),
            quiet,
            "{extra:?}: {text}"
        );
        assert_eq!(
            text.contains("start-up work at normal priority"),
            !quiet,
            "{extra:?}: {text}"
        );
    }
}

#[test]
fn pair_hands_the_startup_flags_to_both_servers() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct P {
        #[command(flatten)]
        pair: tandem::cli::pair::PairArgs,
    }
    let lines = |extra: &[&str]| {
        let mut a = vec![
            "pair",
            "a.ts",
            "--dest",
            "udp://239.255.1.1:5000",
            "--muted",
            "udp://239.255.1.2:5000",
        ];
        a.extend(extra);
        tandem::cli::pair::command_lines(&P::parse_from(a).pair)
    };
    let (pl, sl) = lines(&["--no-quiet-startup", "--rt-priority", "20"]);
    for l in [&pl, &sl] {
        assert!(l.contains(&"--no-quiet-startup".to_string()), "{l:?}");
        assert!(l.contains(&"--rt-priority=20".to_string()), "{l:?}");
    }
    let (pl, _) = lines(&[]);
    assert!(!pl
        .iter()
        .any(|a| a.contains("quiet") || a.contains("rt-priority")));
}
