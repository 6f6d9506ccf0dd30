//! Pacing benchmark: `tandem play` and VideoLAN `multicat` play the same asset AT THE SAME
//! TIME onto two loopback multicast groups; two `tandem recv` instances (kernel receive
//! timestamps) measure them; a side-by-side table with ratios is printed.
//!
//! ```text
//! cargo bench --bench pacing
//! PACING_RUNS=5 PACING_SECONDS=10 PACING_ASSET=assets/demo-25fps.ts cargo bench --bench pacing
//! ```
//! Needs `multicat` and `ingests` (Debian package multicat). Traffic stays on loopback:
//! both senders bind their source to 127.0.0.1 (tandem `--iface 127.0.0.1`, TTL 1;
//! multicat `GROUP:PORT@127.0.0.1`), which Linux routes out of `lo`. The two tools swap
//! groups and start order from run to run (see `SLOTS`).
//!
//! Figures are reported, not asserted (shared, noisy machine). The goal for tandem:
//! departure error p50 <= 30 us, and p50 and p90 each <= 1/4 of multicat's; CPU time per
//! second of stream <= multicat's. CPU is measured two ways for both senders: the whole
//! process (user + system time from wait4, start-up included, over the run's wall time) and
//! the steady state (time on a CPU of all threads from /proc/PID/task/*/schedstat, from
//! 1.5 s after the start to the end of the run); the summary gives the median of the
//! per-run ratios, which cancels most of the noise other jobs add to both alike.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The two receiving slots (group, and the order receivers and senders start in). Which tool
/// gets the first slot alternates from run to run: on this VM the first-started pair runs
/// measurably cheaper (an A/A run of one binary in both slots: ~10 % apart), which a fixed
/// assignment would hand to one tool.
const SLOTS: [&str; 2] = ["239.255.77.1:5001", "239.255.77.2:5002"];
/// Time for the receivers to join before the senders start.
const JOIN_MS: u64 = 400;
/// Steady-state CPU is measured from this long after the senders start (past process
/// start-up, index load, first fill of read-ahead buffers) to the end of the run.
const WARMUP_MS: u64 = 1500;

/// CPU time (ns) of every thread of process `pid` so far, from
/// `/proc/PID/task/*/schedstat` (first field: time on a CPU, ns).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn tandem() -> &'static str {
    env!("CARGO_BIN_EXE_tandem")
}

/// The PID of the first PCR in the file (multicat's `ingests -p` needs it).
fn pcr_pid(ts: &[u8]) -> Option<u16> {
    ts.chunks_exact(188).find_map(|c| {
        let p = tandem::ts::packet::Packet::new_checked(c).ok()?;
        p.pcr().map(|_| p.pid().value())
    })
}

/// One sender's figures from its receiver's JSON plus its CPU time.
#[derive(Debug, Clone, Default)]
struct Figures {
    dep: [f64; 5],
    pcr_jitter_p50: f64,
    df_max_ms: f64,
    max_gap_us: f64,
    cpu_ms_per_s: f64,
    steady_cpu_ms_per_s: f64,
    datagrams: u64,
    non_1316: u64,
    cc_errors: u64,
    stream_s: f64,
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn figures(report: &Value, cpu_s: f64, ran_s: f64, steady: f64) -> Figures {
    let d = &report["pacing"]["departure_error"];
    Figures {
        dep: [
            f(&d["p50_us"]),
            f(&d["p90_us"]),
            f(&d["p99_us"]),
            f(&d["p999_us"]),
            f(&d["max_us"]),
        ],
        pcr_jitter_p50: f(&report["pacing"]["pcr_jitter"]["p50_us"]),
        df_max_ms: f(&report["pacing"]["mdi"]["df_max_ms"]),
        max_gap_us: f(&report["gaps"]["max_us"]),
        cpu_ms_per_s: cpu_s * 1000.0 / ran_s,
        steady_cpu_ms_per_s: steady,
        datagrams: report["datagrams"].as_u64().unwrap_or(0),
        non_1316: report["datagram_sizes"]["non_1316"].as_u64().unwrap_or(0),
        cc_errors: report["tr101290"]["cc_error"]["count"]
            .as_u64()
            .unwrap_or(0),
        stream_s: f(&report["duration_s"]),
    }
}

/// Starts `cmd` with stderr (and stdout unless already set) going to `log`.
fn spawn(cmd: &mut Command, log: &Path, own_stdout: bool) -> Child {
    let err = std::fs::File::create(log).expect("log file");
    if !own_stdout {
        cmd.stdout(err.try_clone().expect("log file"));
    }
    cmd.stdin(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// Stops a sender with SIGINT and returns its CPU time (user + system, s) from wait4.
fn stop_and_cpu(child: Child) -> f64 {
    let pid = child.id() as libc::pid_t;
    // SAFETY: `pid` is our own child, not yet reaped (we never call wait on `child`).
    unsafe { libc::kill(pid, libc::SIGINT) };
    let mut status = 0;
    // SAFETY: rusage is a plain C struct, valid when zeroed.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child `pid`; `status` and `ru` are live and writable.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(rc, pid, "wait4 failed");
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn one_run(dir: &Path, asset: &Path, seconds: f64, run: usize) -> (Figures, Figures) {
    let recv = |group: &str, name: &str| {
        let out = std::fs::File::create(dir.join(format!("{name}-{run}.json"))).unwrap();
        let mut c = Command::new(tandem());
        c.args([
            "recv",
            &format!("udp://{group}"),
            "--iface",
            "127.0.0.1",
            "--seconds",
            &format!("{}", seconds + JOIN_MS as f64 / 1000.0),
            "--json",
        ])
        .stdout(out);
        spawn(&mut c, &dir.join(format!("recv-{name}-{run}.log")), true)
    };
    let tandem_first = run % 2 == 0;
    let (g_tandem, g_multicat) = if tandem_first {
        (SLOTS[0], SLOTS[1])
    } else {
        (SLOTS[1], SLOTS[0])
    };
    let (mut rt, mut rm) = if tandem_first {
        let rt = recv(g_tandem, "tandem");
        (rt, recv(g_multicat, "multicat"))
    } else {
        let rm = recv(g_multicat, "multicat");
        (recv(g_tandem, "tandem"), rm)
    };
    std::thread::sleep(Duration::from_millis(JOIN_MS));

    let start = Instant::now();
    let start_play = || {
        spawn(
            Command::new(tandem()).args([
                "play",
                asset.to_str().unwrap(),
                "--dest",
                &format!("udp://{g_tandem}"),
                "--iface",
                "127.0.0.1",
                "--loop",
            ]),
            &dir.join(format!("play-{run}.log")),
            false,
        )
    };
    let start_multicat = || {
        spawn(
            Command::new("multicat").args([
                "-U",
                asset.to_str().unwrap(),
                &format!("{g_multicat}@127.0.0.1"),
            ]),
            &dir.join(format!("multicat-{run}.log")),
            false,
        )
    };
    let (play, mc) = if tandem_first {
        let p = start_play();
        (p, start_multicat())
    } else {
        let m = start_multicat();
        (start_play(), m)
    };
    std::thread::sleep(Duration::from_millis(WARMUP_MS));
    let (t0, c0) = (Instant::now(), (cpu_ns(play.id()), cpu_ns(mc.id())));
    let st = rt.wait().expect("recv tandem");
    let sm = rm.wait().expect("recv multicat");
    let ran = start.elapsed().as_secs_f64();
    let steady_s = t0.elapsed().as_secs_f64();
    let c1 = (cpu_ns(play.id()), cpu_ns(mc.id()));
    let steady = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e6 / steady_s;
    let (steady_play, steady_mc) = (steady(c0.0, c1.0), steady(c0.1, c1.1));
    let cpu_play = stop_and_cpu(play);
    let cpu_mc = stop_and_cpu(mc);
    assert!(
        st.success() && sm.success(),
        "a receiver failed, see {}",
        dir.display()
    );
    let read = |name: &str| -> Value {
        let p = dir.join(format!("{name}-{run}.json"));
        serde_json::from_slice(&std::fs::read(&p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    (
        figures(&read("tandem"), cpu_play, ran, steady_play),
        figures(&read("multicat"), cpu_mc, ran, steady_mc),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn rows(t: &Figures, m: &Figures) -> Vec<(&'static str, f64, f64)> {
    vec![
        ("departure error p50 (us)", t.dep[0], m.dep[0]),
        ("departure error p90 (us)", t.dep[1], m.dep[1]),
        ("departure error p99 (us)", t.dep[2], m.dep[2]),
        ("departure error p99.9 (us)", t.dep[3], m.dep[3]),
        ("departure error max (us)", t.dep[4], m.dep[4]),
        (
            "PCR arrival jitter p50 (us)",
            t.pcr_jitter_p50,
            m.pcr_jitter_p50,
        ),
        ("MDI DF max (ms)", t.df_max_ms, m.df_max_ms),
        ("largest gap (us)", t.max_gap_us, m.max_gap_us),
        (
            "CPU ms per s, whole process",
            t.cpu_ms_per_s,
            m.cpu_ms_per_s,
        ),
        (
            "CPU ms per s, steady state",
            t.steady_cpu_ms_per_s,
            m.steady_cpu_ms_per_s,
        ),
    ]
}

fn print_table(title: &str, r: &[(&str, f64, f64)]) {
    println!("\n{title}");
    println!(
        "{:<30} {:>12} {:>12} {:>16}",
        "", "tandem", "multicat", "tandem/multicat"
    );
    for (name, t, m) in r {
        println!("{name:<30} {t:>12.1} {m:>12.1} {:>16.3}", t / m);
    }
}

// An entry point: its main() may exit (clippy.toml).
#[allow(clippy::disallowed_methods)]
fn main() {
    // `cargo bench` passes --bench; a plain `cargo test --benches` passes nothing useful.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let asset_src = root.join(env_or("PACING_ASSET", "assets/demo-25fps.ts".to_string()));
    let seconds: f64 = env_or("PACING_SECONDS", 10.0);
    let runs: usize = env_or("PACING_RUNS", 3);
    for tool in ["multicat", "ingests"] {
        if Command::new(tool).arg("-h").output().is_err() {
            eprintln!("pacing bench: {tool} not found (apt-get install multicat)");
            std::process::exit(1);
        }
    }
    let help = Command::new(tandem()).args(["play", "--help"]).output();
    if !help.is_ok_and(|o| o.status.success()) {
        eprintln!("pacing bench: this build has no `tandem play`");
        std::process::exit(1);
    }

    let dir = std::env::temp_dir().join(format!("tandem-pacing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let asset = dir.join(asset_src.file_name().unwrap());
    std::fs::copy(&asset_src, &asset).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (tools/make-assets.sh builds it)",
            asset_src.display()
        )
    });
    let ts = std::fs::read(&asset).unwrap();
    let pid = pcr_pid(&ts).expect("asset has a PCR");
    let ok = Command::new("ingests")
        .args(["-p", &pid.to_string(), asset.to_str().unwrap()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ingests failed");
    // Build tandem's offset map now so play's start-up does not include it.
    let _ = Command::new(tandem())
        .args(["index", asset.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();

    println!(
        "pacing: {} ({} bytes, PCR PID {pid}), {seconds} s per run, {runs} runs, both senders at the same time",
        asset_src.display(),
        ts.len()
    );
    println!("logs and JSON reports: {}", dir.display());
    let mut all = Vec::new();
    for run in 0..runs {
        let (t, m) = one_run(&dir, &asset, seconds, run);
        print_table(
            &format!(
                "run {} ({} started first): tandem {} datagrams ({} not 1316, {} CC errors, {:.2} s), multicat {} ({} not 1316, {} CC errors, {:.2} s)",
                run + 1,
                if run % 2 == 0 { "tandem" } else { "multicat" },
                t.datagrams,
                t.non_1316,
                t.cc_errors,
                t.stream_s,
                m.datagrams,
                m.non_1316,
                m.cc_errors,
                m.stream_s
            ),
            &rows(&t, &m),
        );
        all.push((t, m));
        std::thread::sleep(Duration::from_millis(300));
    }
    let per_run: Vec<Vec<(&str, f64, f64)>> = all.iter().map(|(t, m)| rows(t, m)).collect();
    let med: Vec<(&str, f64, f64)> = (0..per_run[0].len())
        .map(|i| {
            (
                per_run[0][i].0,
                median(per_run.iter().map(|r| r[i].1).collect()),
                median(per_run.iter().map(|r| r[i].2).collect()),
            )
        })
        .collect();
    print_table(&format!("median of {runs} runs"), &med);
    let ratios: Vec<(f64, f64)> = all
        .iter()
        .map(|(t, m)| (t.dep[0] / m.dep[0], t.dep[1] / m.dep[1]))
        .collect();
    // Both senders ran side by side, so a per-run ratio cancels most of the machine's
    // noise (other jobs slow both alike).
    for (name, pick) in [
        (
            "whole process (start-up included)",
            (|f: &Figures| f.cpu_ms_per_s) as fn(&Figures) -> f64,
        ),
        ("steady state (from 1.5 s on)", |f: &Figures| {
            f.steady_cpu_ms_per_s
        }),
    ] {
        let cpu: Vec<f64> = all.iter().map(|(t, m)| pick(t) / pick(m)).collect();
        let med = median(cpu.clone());
        println!(
            "CPU tandem/multicat, {name}, per run: {}; median {med:.3} {}",
            cpu.iter()
                .map(|r| format!("{r:.3}"))
                .collect::<Vec<_>>()
                .join(" "),
            if med <= 1.0 {
                "(tandem <= multicat: MET)"
            } else {
                "(tandem > multicat: MISSED)"
            }
        );
    }
    // Keep the JSON reports and logs, not the asset copy and its indexes.
    for ext in ["ts", "aux", "ts.tandem-index"] {
        let _ = std::fs::remove_file(asset.with_extension(ext));
    }
    let p50 = med[0].1;
    let r50 = median(ratios.iter().map(|r| r.0).collect());
    let r90 = median(ratios.iter().map(|r| r.1).collect());
    println!(
        "\ngoal: tandem p50 <= 30 us: {:.1} us {}; p50 ratio <= 0.25: {r50:.3} {}; p90 ratio <= 0.25: {r90:.3} {}",
        p50,
        if p50 <= 30.0 { "MET" } else { "MISSED" },
        if r50 <= 0.25 { "MET" } else { "MISSED" },
        if r90 <= 0.25 { "MET" } else { "MISSED" },
    );
}
