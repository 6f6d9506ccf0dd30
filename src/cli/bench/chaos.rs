//! `tandem bench chaos`: a pair in the namespace lab (two hosts and a viewer, the live and
//! the sync networks), an independent receiver in the viewer's namespace, and faults from
//! the seeded schedule (`crate::bench::chaos`) for the whole run: kill -9 of the server on
//! air or of the standby and its restart with the same command line, SIGSTOP then SIGCONT,
//! the sync link down, the live port of the server on air down. The figures are computed
//! by `crate::bench::chaos_report` (sans-IO); this module only drives.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};

use super::lab::{set_link, Host, Lab};
use super::procs::Proc;
use super::receiver::Receiver;
use super::ChaosArgs;
use crate::bench::chaos::{Fault, Schedule, Target, RESTART_AFTER, SYNC_DOWN};
use crate::bench::chaos_report::{Applied, ChaosFigures, SCHEMA};
use crate::cli::{EXIT_BAD_INPUT, EXIT_RUNTIME};
use crate::io::load_or_build;
use crate::net::clock::real_ns;
use crate::net::url::Dest;
use crate::ts::pcr::HZ;

/// The states in which a server sends on the live group.
const ON_AIR: [&str; 3] = ["Primary", "Primary_no_secondary", "Secondary_no_primary"];

/// One server of the pair: its command line, its running process and its logs.
struct Server {
    host: Host,
    name: &'static str,
    args: Vec<String>,
    proc: Option<Proc>,
    starts: u32,
    control: String,
}

/// The run: the lab, the servers, what was applied and what went wrong.
struct Run<'a> {
    a: &'a ChaosArgs,
    lab: Lab,
    work: PathBuf,
    session: String,
    servers: [Server; 2],
    applied: Vec<Applied>,
    crashes: Vec<String>,
    /// When the schedule's clock started (unix ns).
    started_real_ns: u64,
}

fn bad(msg: String) -> anyhow::Result<i32> {
    eprintln!("tandem bench chaos: {msg}");
    Ok(EXIT_BAD_INPUT)
}

/// Runs `tandem bench chaos`.
pub fn chaos(a: &ChaosArgs) -> anyhow::Result<i32> {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return bad("the chaos run builds a namespace lab: run as root".into());
    }
    if a.seconds < 20 {
        return bad(format!(
            "--seconds {}: at least 20 (5 s of warm-up, then faults 3-5 s apart)",
            a.seconds
        ));
    }
    let map = match load_or_build(&a.asset, false) {
        Ok(m) => m,
        Err(e) => return bad(format!("{}: {e}", a.asset.display())),
    };
    let period_ticks = crate::stream::LoopPlan::for_map(&map, None).period;
    let period_ns = (period_ticks as u128 * 1_000_000_000 / HZ as u128) as u64;
    let interval_ns = period_ns / map.datagram_count().max(1);
    let work = a.work_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("tandem-chaos-{}", std::process::id()))
    });
    std::fs::create_dir_all(&work).with_context(|| format!("{}", work.display()))?;
    let lab = Lab::up(&a.lab).context("building the namespace lab")?;
    let port = 12_000 + (std::process::id() % 2_000) as u16 * 4;
    let live: Dest =
        format!("rtp://239.251.{}.1:{port}", 100 + std::process::id() % 100).parse()?;
    let muted: Dest = format!(
        "rtp://239.250.{}.1:{}",
        100 + std::process::id() % 100,
        port + 3
    )
    .parse()?;
    let ip = |h: Host, net: &str| lab.addr(h, net);
    let (pri_live, sec_live, view_live) = (
        ip(Host::Pri, "live")?,
        ip(Host::Sec, "live")?,
        ip(Host::View, "live")?,
    );
    let (pri_sync, sec_sync) = (
        format!("{}:{}", ip(Host::Pri, "sync")?, port + 1),
        format!("{}:{}", ip(Host::Sec, "sync")?, port + 1),
    );
    let session = format!("chaos-{}-{}", a.seed, std::process::id());
    let control = format!("127.0.0.1:{}", port + 2);
    let server_args = |primary: bool, iface: Ipv4Addr| -> Vec<String> {
        let mut v: Vec<String> = vec![
            if primary { "primary" } else { "secondary" }.into(),
            a.asset.display().to_string(),
            "--dest".into(),
            live.to_string(),
            "--loop".into(),
            "--session-id".into(),
            session.clone(),
            "--iface".into(),
            iface.to_string(),
            "--sync-listen".into(),
            if primary { &pri_sync } else { &sec_sync }.clone(),
            "--sync-peer".into(),
            if primary { &sec_sync } else { &pri_sync }.clone(),
            "--control-listen".into(),
            control.clone(),
        ];
        if !primary {
            v.extend(["--muted".into(), muted.to_string()]);
        }
        if let Some(m) = a.miss {
            v.extend(["--miss".into(), m.to_string()]);
        }
        if let Some(h) = a.heartbeat_us {
            v.extend(["--heartbeat-us".into(), h.to_string()]);
        }
        v
    };
    let servers = [
        Server {
            host: Host::Pri,
            name: "primary",
            args: server_args(true, pri_live),
            proc: None,
            starts: 0,
            control: control.clone(),
        },
        Server {
            host: Host::Sec,
            name: "secondary",
            args: server_args(false, sec_live),
            proc: None,
            starts: 0,
            control,
        },
    ];
    let mut run = Run {
        a,
        lab,
        work: work.clone(),
        session,
        servers,
        applied: Vec::new(),
        crashes: Vec::new(),
        started_real_ns: 0,
    };
    let rx = Receiver::start(live, view_live, Some(run.lab.netns(Host::View)), true)?;
    for k in 0..2 {
        run.start(k)?;
    }
    // The pair synchronised before the clock of the schedule starts.
    let t_sync = Instant::now();
    while run.state(1).as_deref() != Some("Secondary_synchronized") {
        if t_sync.elapsed() > Duration::from_secs(20) {
            return Err(anyhow!(
                "the secondary did not synchronise within 20 s: {}",
                run.log_tail(1)
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let duration = Duration::from_secs(a.seconds);
    let schedule = Schedule::generate(a.seed, duration);
    eprintln!(
        "tandem bench chaos: {} faults over {} s (seed {}), logs in {}",
        schedule.len(),
        a.seconds,
        a.seed,
        work.display()
    );
    let t0 = Instant::now();
    run.started_real_ns = real_ns();
    for (at, fault) in &schedule {
        run.watch_until(t0 + *at);
        if let Err(e) = run.apply(*fault) {
            eprintln!("tandem bench chaos: {}: {e:#}", fault.kind());
        }
    }
    run.watch_until(t0 + duration);
    let cap = rx.finish();
    run.check_crashes();
    let panics = run.panics();
    run.crashes.extend(panics);
    let figures = ChaosFigures::compute(&cap.arrivals, &run.applied, interval_ns);
    let report = cap.report;
    let rtp = report.as_ref().and_then(|r| r.rtp.clone());
    let cc_errors = report.as_ref().map_or(0, |r| r.tr101290.cc_error.count);
    let goals_met = run.crashes.is_empty() && figures.two_senders_ms == 0.0;
    let json = serde_json::json!({
        "schema": SCHEMA,
        "asset": a.asset.display().to_string(),
        "seed": a.seed,
        "seconds": a.seconds,
        "datagram_interval_ns": interval_ns,
        "faults": run.applied,
        "figures": figures,
        "rtp": rtp.as_ref().map(|r| serde_json::json!({
            "lost": r.lost, "duplicates": r.duplicates, "reordered": r.reordered,
        })),
        "cc_errors": cc_errors,
        "crashes": run.crashes,
        "restarts": run.servers.iter().map(|s| s.starts.saturating_sub(1)).sum::<u32>(),
        "goals": {
            "no_crash": run.crashes.is_empty(),
            "no_two_senders": figures.two_senders_ms == 0.0,
            "met": goals_met,
        },
    });
    print!("{}", text(&json, &figures));
    if let Some(p) = &a.json {
        std::fs::write(p, format!("{json:#}\n")).with_context(|| format!("{}", p.display()))?;
    }
    Ok(if goals_met { 0 } else { EXIT_RUNTIME })
}

/// The terminal summary.
fn text(j: &serde_json::Value, f: &ChaosFigures) -> String {
    let mut o = format!(
        "chaos run: {} s, seed {}, {} faults, {} restarts\n",
        j["seconds"],
        j["seed"],
        j["faults"].as_array().map_or(0, |a| a.len()),
        j["restarts"]
    );
    o.push_str(&format!(
        "receiver: {} datagrams, RTP lost {}, duplicates {}, reordered {}, CC errors {}\n",
        f.datagrams,
        j["rtp"]["lost"],
        j["rtp"]["duplicates"],
        j["rtp"]["reordered"],
        j["cc_errors"]
    ));
    o.push_str(&format!(
        "changes of sender {} ({} with no fault before), two senders {:.1} ms, largest silence {:.1} ms (after {}), silences >= 5 ms over the interval: {}\n",
        f.changes.len(),
        f.unprovoked_changes,
        f.two_senders_ms,
        f.largest_silence_ms,
        f.largest_silence_after.unwrap_or("no fault"),
        f.silences_over_5ms
    ));
    o.push_str(&format!(
        "{:<16} {:>6} {:>8} {:>14} {:>20}\n",
        "fault", "count", "changes", "two senders ms", "largest silence ms"
    ));
    for (k, s) in &f.by_kind {
        o.push_str(&format!(
            "{k:<16} {:>6} {:>8} {:>14.1} {:>20.1}\n",
            s.faults, s.changes, s.two_senders_ms, s.largest_silence_ms
        ));
    }
    let crashes = j["crashes"].as_array().map_or(0, |c| c.len());
    o.push_str(&format!(
        "goals: crashes {crashes} (goal 0), two-sender time {:.1} ms (goal 0): {}\n",
        f.two_senders_ms,
        if j["goals"]["met"] == true {
            "MET"
        } else {
            "NOT MET"
        }
    ));
    o
}

impl Run<'_> {
    fn log(&self, k: usize) -> PathBuf {
        let s = &self.servers[k];
        self.work.join(format!("{}-{}.log", s.name, s.starts))
    }

    fn log_tail(&self, k: usize) -> String {
        self.servers[k]
            .proc
            .as_ref()
            .map_or_else(String::new, |p| p.log_tail(5))
    }

    /// Starts (or restarts) server `k` with its command line.
    fn start(&mut self, k: usize) -> anyhow::Result<()> {
        self.servers[k].starts += 1;
        let log = self.log(k);
        let ns = self.lab.netns(self.servers[k].host);
        let s = &mut self.servers[k];
        s.proc = Some(Proc::spawn(s.name, &s.args, Some(&ns), &log)?);
        Ok(())
    }

    /// Server `k`'s state, from `tandem status` in its namespace.
    fn state(&self, k: usize) -> Option<String> {
        let s = &self.servers[k];
        let exe = std::env::current_exe().ok()?;
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.lab.netns(s.host)])
            .arg(exe)
            .args([
                "status",
                &s.control,
                "--json",
                "--session-id",
                &self.session,
            ])
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["state"].as_str().map(str::to_string)
    }

    /// The server on air (by its state), if one is.
    fn on_air(&self) -> Option<usize> {
        (0..2).find(|&k| self.state(k).is_some_and(|s| ON_AIR.contains(&s.as_str())))
    }

    /// Watches for crashes until `t`.
    fn watch_until(&mut self, t: Instant) {
        while Instant::now() < t {
            self.check_crashes();
            std::thread::sleep((t - Instant::now().min(t)).min(Duration::from_millis(100)));
        }
    }

    /// A server that exited without being killed is a crash: recorded, and restarted.
    fn check_crashes(&mut self) {
        for k in 0..2 {
            let exited = self.servers[k].proc.as_mut().is_some_and(|p| !p.running());
            if exited {
                let why = format!(
                    "{} exited by itself (start {}): {}",
                    self.servers[k].name,
                    self.servers[k].starts,
                    self.log_tail(k)
                );
                eprintln!("tandem bench chaos: {why}");
                self.crashes.push(why);
                self.servers[k].proc = None;
                if let Err(e) = self.start(k) {
                    eprintln!("tandem bench chaos: restarting: {e:#}");
                }
            }
        }
    }

    /// Panics written to any server's log.
    fn panics(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(dir) = std::fs::read_dir(&self.work) else {
            return out;
        };
        for e in dir.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("log") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains("panicked at")) {
                out.push(format!("{}: {line}", file_name(&p)));
            }
        }
        out
    }

    /// Applies one fault of the schedule (blocking for its span).
    fn apply(&mut self, f: Fault) -> anyhow::Result<()> {
        let on_air = self.on_air();
        let target = |t: Target| match (t, on_air) {
            (Target::OnAir, Some(k)) => k,
            (Target::Standby, Some(k)) => 1 - k,
            (_, None) => 0,
        };
        let host_name = |k: usize| if k == 0 { "pri" } else { "sec" };
        let (k, at, span) = match f {
            Fault::Kill(t) => {
                let k = target(t);
                let p = self.servers[k]
                    .proc
                    .take()
                    .ok_or_else(|| anyhow!("not running"))?;
                let at = p.signal(libc::SIGKILL)?;
                drop(p);
                std::thread::sleep(RESTART_AFTER);
                self.start(k)?;
                (k, at, RESTART_AFTER)
            }
            Fault::Stop(t, d) => {
                let k = target(t);
                let p = self.servers[k]
                    .proc
                    .as_ref()
                    .ok_or_else(|| anyhow!("not running"))?;
                let at = p.signal(libc::SIGSTOP)?;
                std::thread::sleep(d);
                p.signal(libc::SIGCONT)?;
                (k, at, d)
            }
            Fault::SyncLinkDown => {
                let port = self.lab.sync_port(Host::Pri);
                let at = set_link(&port, false)?;
                std::thread::sleep(SYNC_DOWN);
                set_link(&port, true)?;
                (0, at, SYNC_DOWN)
            }
            Fault::LivePortDown(d) => {
                let k = target(Target::OnAir);
                let port = self.lab.live_port(self.servers[k].host);
                let at = set_link(&port, false)?;
                std::thread::sleep(d);
                set_link(&port, true)?;
                (k, at, d)
            }
        };
        if !self.a.quiet {
            eprintln!(
                "tandem bench chaos: {:>7.1} s {} on {}",
                at.saturating_sub(self.started_real_ns) as f64 / 1e9,
                f.kind(),
                host_name(k)
            );
        }
        self.applied.push(Applied {
            at_real_ns: at,
            kind: f.kind(),
            host: host_name(k),
            span_ns: span.as_nanos() as u64,
        });
        Ok(())
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().to_string())
}
