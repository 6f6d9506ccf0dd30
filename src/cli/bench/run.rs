//! The trial loop of `tandem bench failover`: one fresh pair per trial, the fault at a
//! random phase, the observations turned into `bench::trial::Trial`s, then the outputs.

use std::io::IsTerminal;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::lab::{set_link, Host, Lab};
use super::procs::{Proc, Tcpdump};
use super::receiver::Receiver;
use super::watcher::Watcher;
use super::{FailoverArgs, PairKind};
use crate::bench::machine::MachineInfo;
use crate::bench::phase::phase_in_frame;
use crate::bench::rng::Rng;
use crate::bench::summary::BenchReport;
use crate::bench::trial::{Arrival, Trial, TrialInput};
use crate::bench::{events, html, text, AssetInfo, Effective, Fault, Settings};
use crate::cli::{EXIT_BAD_INPUT, EXIT_RUNTIME};
use crate::index::OffsetMap;
use crate::io::load_or_build;
use crate::net::clock::{mono_ns, real_ns, sleep_until_mono};
use crate::net::url::{Dest, Framing};
use crate::recv::{Analyzer, Report};
use crate::ts::pcr::HZ;
use crate::units::RealNs;

/// Everything a trial needs.
struct Ctx<'a> {
    a: &'a FailoverArgs,
    asset: String,
    map: Arc<OffsetMap>,
    /// Ticks between passes (the stream's loop plan).
    period_ticks: u64,
    frame_ns: u64,
    datagram_ns: u64,
    framing: Framing,
    rng: Rng,
    work: PathBuf,
    lab: Option<Lab>,
    watcher: Watcher,
    stall_ns: u64,
    base: u32,
    effective: Option<Effective>,
    attempt: u32,
}

/// Addresses of one trial.
struct Addrs {
    live: Dest,
    muted: Dest,
    pri_iface: Ipv4Addr,
    sec_iface: Ipv4Addr,
    view_iface: Ipv4Addr,
    pri_sync: String,
    sec_sync: String,
    pri_control: String,
    sec_control: String,
}

/// What a trial observed (filled as far as it got).
#[derive(Default)]
struct Obs {
    live: Vec<Arrival>,
    muted: Vec<u64>,
    report: Option<Report>,
    fault_real_ns: u64,
    origin_real_ns: Option<u64>,
    declared: Option<(u64, String)>,
    note: Option<String>,
    primary_state: Option<String>,
    /// The primary's own takeover by the rules after the switch (its event log).
    primary_retook: Option<(u64, String)>,
    secondary_state: Option<String>,
    switch_late_ns: Option<i64>,
}

fn bad(msg: String) -> anyhow::Result<i32> {
    eprintln!("tandem bench failover: {msg}");
    Ok(EXIT_BAD_INPUT)
}

/// Runs the benchmark; returns the exit code.
pub fn failover(a: &FailoverArgs) -> anyhow::Result<i32> {
    if a.trials == 0 {
        return bad("--trials must be at least 1".into());
    }
    if !["seamless", "pcr", "frame"].contains(&a.switch_at.as_str()) {
        return bad(format!(
            "--switch-at {}: expected seamless, pcr or frame",
            a.switch_at
        ));
    }
    if a.pair == PairKind::FakePlay && matches!(a.fault, Fault::Kernel | Fault::Link) {
        return bad("--pair fake-play measures only kill and stop faults".into());
    }
    let in_lab = a.in_lab || a.fault == Fault::Link;
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if in_lab && unsafe { libc::geteuid() } != 0 {
        return bad("--fault link and --in-lab build a namespace lab: run as root".into());
    }
    if !(a.stall_ms.is_finite() && a.stall_ms > 0.0) {
        return bad(format!("--stall-ms {}: must be positive", a.stall_ms));
    }
    let map = match load_or_build(&a.asset, false) {
        Ok(m) => Arc::new(m),
        Err(e) => return bad(format!("{}: {e}", a.asset.display())),
    };
    let Some(frame_ticks) = map.frame_ticks() else {
        return bad(format!(
            "{}: no video frame rate found; the benchmark measures against one frame",
            a.asset.display()
        ));
    };
    let frame_ns = frame_ticks * 1000 / 27;
    let period_ticks = crate::stream::LoopPlan::for_map(&map, None).period;
    let period_ns = (period_ticks as u128 * 1_000_000_000 / HZ as u128) as u64;
    let datagram_ns = period_ns / map.datagram_count().max(1);
    let seed = a
        .seed
        .unwrap_or_else(|| real_ns() ^ ((std::process::id() as u64) << 32));
    let stall_ns = (a.stall_ms * 1e6) as u64;
    let (work, temp_work) = match &a.work_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("tandem-bench-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("{}", work.display()))?;
    if let Some(d) = &a.capture_dir {
        std::fs::create_dir_all(d).with_context(|| format!("{}", d.display()))?;
    }
    let lab = if in_lab {
        Some(Lab::up(&a.lab).context("building the namespace lab")?)
    } else {
        None
    };
    let machine = gather_machine();
    let started = real_ns();
    let mut ctx = Ctx {
        a,
        asset: a.asset.display().to_string(),
        map: map.clone(),
        period_ticks,
        frame_ns,
        datagram_ns,
        framing: if a.framing == "udp" {
            Framing::Udp
        } else {
            Framing::Rtp
        },
        rng: Rng::new(seed),
        work: work.clone(),
        lab,
        watcher: Watcher::start(stall_ns).context("starting the stall watcher")?,
        stall_ns,
        base: std::process::id(),
        effective: None,
        attempt: 0,
    };
    let pb = if a.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(a.trials as u64), ProgressDrawTarget::hidden())
    } else {
        let pb = ProgressBar::new(a.trials as u64);
        pb.set_style(
            ProgressStyle::with_template(
                "{spinner} trial {pos}/{len} [{bar:30}] {elapsed_precise} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb
    };
    let mut trials = Vec::with_capacity(a.trials as usize);
    let mut worst = 0u64;
    // Ctrl-C / SIGTERM end the run after the trial in progress: its servers are stopped, the
    // namespace lab removed, and what was measured is reported.
    let interrupted = crate::cli::signals::interrupt_flag();
    for n in 1..=a.trials {
        if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
            eprintln!(
                "tandem bench failover: interrupted after {} of {} trials; reporting those",
                n - 1,
                a.trials
            );
            break;
        }
        let t = ctx.trial(n);
        if let Some(g) = t.gap_ns {
            worst = worst.max(g);
        }
        pb.set_message(format!(
            "last gap {} ms, worst {:.3} ms",
            t.gap_ns
                .map_or("-".into(), |g| format!("{:.3}", g as f64 / 1e6)),
            worst as f64 / 1e6
        ));
        if !a.quiet && !std::io::stderr().is_terminal() && (n % 25 == 0 || n == a.trials) {
            eprintln!("tandem bench failover: {n}/{} trials", a.trials);
        }
        pb.inc(1);
        trials.push(t);
    }
    pb.finish_and_clear();
    let stalls = ctx.watcher.snapshot();
    let effective = ctx.effective;
    drop(ctx);
    let settings = Settings {
        fault: a.fault,
        switch_at: a.switch_at.clone(),
        trials: a.trials,
        miss: a.miss,
        heartbeat_us: a.heartbeat_us,
        framing: a.framing.clone(),
        seed,
        pair: match a.pair {
            PairKind::Tandem => "tandem primary/secondary".into(),
            PairKind::FakePlay => "fake-play (harness check, not a failover)".into(),
        },
        inject: (a.fault == Fault::Kernel).then(|| a.inject_kind.clone()),
        stall_threshold_us: stall_ns / 1000,
        lab: in_lab.then(|| a.lab.clone()),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        effective,
    };
    let (fr_n, fr_d) = map.frame_rate.unwrap_or((0, 1));
    let asset = AssetInfo {
        path: a.asset.display().to_string(),
        size: map.identity.size,
        hash: format!("{:032x}", map.identity.hash),
        frame_rate: format!("{fr_n}/{fr_d}"),
        frame_ns,
        datagram_ns,
        duration_s: period_ns as f64 / 1e9,
    };
    let report = BenchReport::new(
        settings,
        asset,
        machine,
        trials,
        &stalls,
        stall_ns,
        started,
        real_ns(),
    );
    print!("{}", text::table(&report));
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("{}", p.display()))?;
        println!("JSON: {}", p.display());
    }
    if let Some(p) = &a.report {
        std::fs::write(p, html::page(&report)).with_context(|| format!("{}", p.display()))?;
        println!("HTML report: {}", p.display());
    }
    if temp_work && report.verdict.pass {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        println!("server logs and event logs: {}", work.display());
    }
    if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(130);
    }
    Ok(if report.verdict.pass { 0 } else { EXIT_RUNTIME })
}

/// Cores, CPU model, kernel, load average, host name.
fn gather_machine() -> MachineInfo {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    MachineInfo::parse(
        &read("/proc/cpuinfo"),
        &read("/proc/loadavg"),
        &read("/proc/sys/kernel/osrelease"),
        &read("/proc/sys/kernel/hostname"),
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
    )
}

impl Ctx<'_> {
    /// Groups and ports of trial `n`: distinct per process, trial and setup attempt. Ports
    /// 10000-19999: below the kernel's ephemeral range (32768-60999 by default) and the
    /// ranges the test suites use, so other programs on the machine rarely hold them.
    fn addrs(&self, n: u32) -> anyhow::Result<Addrs> {
        let b = self.base;
        let k = (b % 1000) * 37 + n * 7 + self.attempt * 4_999;
        let port = 10_000 + (k % 9_990) as u16;
        let g2 = 100 + (b % 100) as u8;
        let g3 = (n % 250) as u8 + 1;
        let live_ip = Ipv4Addr::new(239, 253, g2, g3);
        let muted_ip = Ipv4Addr::new(239, 252, g2, g3);
        let scheme = if self.framing == Framing::Rtp {
            "rtp"
        } else {
            "udp"
        };
        let live: Dest = format!("{scheme}://{live_ip}:{port}").parse()?;
        // Its own port too, so a capture of the live port holds the live group only.
        let muted: Dest = format!("{scheme}://{muted_ip}:{}", port + 5).parse()?;
        let lo = Ipv4Addr::LOCALHOST;
        let (pri_iface, sec_iface, view_iface, pri_sync_ip, sec_sync_ip) = match &self.lab {
            Some(l) => (
                l.addr(Host::Pri, "live")?,
                l.addr(Host::Sec, "live")?,
                l.addr(Host::View, "live")?,
                l.addr(Host::Pri, "sync")?,
                l.addr(Host::Sec, "sync")?,
            ),
            None => (lo, lo, lo, lo, lo),
        };
        Ok(Addrs {
            live,
            muted,
            pri_iface,
            sec_iface,
            view_iface,
            pri_sync: format!("{pri_sync_ip}:{}", port + 1),
            sec_sync: format!("{sec_sync_ip}:{}", port + 2),
            pri_control: format!("127.0.0.1:{}", port + 3),
            sec_control: format!("127.0.0.1:{}", port + 4),
        })
    }

    fn netns(&self, h: Host) -> Option<String> {
        self.lab.as_ref().map(|l| l.netns(h))
    }

    /// Runs trial `n`; failures become an error trial, never an abort.
    fn trial(&mut self, n: u32) -> Trial {
        let mut obs = Obs::default();
        // A port held by another program makes a server exit at once ("cannot bind"):
        // that is a setup failure, not a measurement, so the trial is set up again on other
        // ports (at most twice; counted in the trial).
        self.attempt = 0;
        let result = loop {
            let r = match self.a.pair {
                PairKind::Tandem => self.tandem_trial(n, &mut obs),
                PairKind::FakePlay => self.fake_trial(n, &mut obs),
            };
            match &r {
                Err(e)
                    if obs.fault_real_ns == 0
                        && self.attempt < 2
                        && format!("{e:#}").contains("cannot bind") =>
                {
                    self.attempt += 1;
                    obs = Obs::default();
                }
                _ => break r,
            }
        };
        let error = match result {
            Ok(()) => obs.note.clone(),
            Err(e) => Some(format!("{e:#}")),
        };
        let report = obs
            .report
            .take()
            .unwrap_or_else(|| Analyzer::new(self.framing).report());
        let stalls = self.watcher.snapshot();
        let phase_ns = obs.origin_real_ns.and_then(|o| {
            phase_in_frame(
                &self.map,
                self.period_ticks,
                RealNs(o),
                RealNs(obs.fault_real_ns),
            )
        });
        let input = TrialInput {
            n,
            fault_real_ns: obs.fault_real_ns,
            phase_ns,
            declared: obs.declared.clone(),
            live: &obs.live,
            muted_rx: &obs.muted,
            report: &report,
            machine_stalls: &stalls,
            frame_ns: self.frame_ns,
            datagram_ns: self.datagram_ns,
            stall_threshold_ns: self.stall_ns,
            error,
            primary_state_at_fault: obs.primary_state.clone(),
            secondary_state_at_fault: obs.secondary_state.clone(),
            primary_retook: obs.primary_retook.clone(),
            switch_late_ns: obs.switch_late_ns,
        };
        let mut t = Trial::from_input(&input);
        t.setup_retries = self.attempt;
        t
    }

    fn log(&self, n: u32, what: &str) -> PathBuf {
        self.work.join(format!("trial-{n:04}-{what}"))
    }

    /// Sleeps until a uniformly random instant within the next frame (monotonic clock).
    fn random_phase_wait(&mut self) {
        let at = mono_ns() + self.rng.below(self.frame_ns);
        sleep_until_mono(at);
    }

    fn receivers(&self, ad: &Addrs) -> anyhow::Result<(Receiver, Receiver)> {
        let ns = self.netns(Host::View);
        let live = Receiver::start(ad.live, ad.view_iface, ns.clone(), true)?;
        let muted = Receiver::start(ad.muted, ad.view_iface, ns, false)?;
        Ok((live, muted))
    }

    fn tcpdump(&self, n: u32, ad: &Addrs) -> anyhow::Result<Option<Tcpdump>> {
        let Some(dir) = &self.a.capture_dir else {
            return Ok(None);
        };
        let file = dir.join(format!("trial-{n:04}.pcap"));
        let (iface, ns) = match &self.lab {
            Some(l) => (format!("tl{}view-l", l.id), self.netns(Host::View)),
            None => ("lo".to_string(), None),
        };
        Tcpdump::start(&iface, ad.live.addr, &file, ns.as_deref()).map(Some)
    }

    /// Waits for the switch (a second sender on the live group) up to `timeout`.
    fn wait_switch(live: &Receiver, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if live.live.second_source_rx_ns.load(Ordering::Relaxed) != 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    fn switch_timeout(&self) -> Duration {
        Duration::from_nanos((self.frame_ns * 25).max(1_000_000_000))
    }

    fn collect(obs: &mut Obs, live: Receiver, muted: Receiver) {
        let l = live.finish();
        let m = muted.finish();
        obs.live = l.arrivals;
        obs.report = l.report;
        // The secondary's muted stream: the group's first sender (a resynchronising old
        // primary may send there later).
        let first = m.arrivals.first().map(|x| x.src);
        let mut mr: Vec<u64> = m
            .arrivals
            .iter()
            .filter(|x| Some(x.src) == first)
            .map(|x| x.rx_ns)
            .collect();
        mr.sort_unstable();
        obs.muted = mr;
    }

    fn server_args(&self, n: u32, ad: &Addrs, primary: bool, event_log: &Path) -> Vec<String> {
        let a = self.a;
        let mut v = vec![
            if primary { "primary" } else { "secondary" }.to_string(),
            self.asset.clone(),
            "--dest".into(),
            ad.live.to_string(),
            "--loop".into(),
            "--session-id".into(),
            format!("bench-{}-{n}", self.base),
            "--iface".into(),
            if primary { ad.pri_iface } else { ad.sec_iface }.to_string(),
            "--sync-listen".into(),
            if primary { &ad.pri_sync } else { &ad.sec_sync }.clone(),
            "--sync-peer".into(),
            if primary { &ad.sec_sync } else { &ad.pri_sync }.clone(),
            "--control-listen".into(),
            if primary {
                &ad.pri_control
            } else {
                &ad.sec_control
            }
            .clone(),
            "--switch-at".into(),
            a.switch_at.clone(),
            "--event-log".into(),
            event_log.display().to_string(),
        ];
        if !primary {
            v.push("--muted".into());
            v.push(ad.muted.to_string());
        }
        if let Some(m) = a.miss {
            v.push("--miss".into());
            v.push(m.to_string());
        }
        if let Some(h) = a.heartbeat_us {
            v.push("--heartbeat-us".into());
            v.push(h.to_string());
        }
        v
    }

    fn tandem_trial(&mut self, n: u32, obs: &mut Obs) -> anyhow::Result<()> {
        let ad = self.addrs(n)?;
        if let Some(l) = &self.lab {
            set_link(&l.live_port(Host::Pri), true)?;
        }
        let (live, muted) = self.receivers(&ad)?;
        let mut cap = self.tcpdump(n, &ad)?;
        let pri_events = self.log(n, "primary.events");
        let sec_events = self.log(n, "secondary.events");
        let mut pargs = self.server_args(n, &ad, true, &pri_events);
        let sargs = self.server_args(n, &ad, false, &sec_events);
        // kernel: the component fails at a chosen time after the primary started, at a
        // random phase; the secondary must be synchronised by then.
        let inject_at_s = if self.a.fault == Fault::Kernel {
            let s =
                0.5 + self.a.settle_ms as f64 / 1e3 + self.rng.below(self.frame_ns) as f64 / 1e9;
            pargs.push("--inject".into());
            pargs.push(format!("{}@{s:.6}", self.a.inject_kind));
            Some(s)
        } else {
            None
        };
        // The timeline origin is ours, so the fault's phase within the frame is known.
        let origin_ms = real_ns() / 1_000_000 + 150;
        obs.origin_real_ns = Some(origin_ms * 1_000_000);
        pargs.push("--start-at".into());
        pargs.push(origin_ms.to_string());
        let spawn_real = real_ns();
        let mut pri = Proc::spawn(
            "primary",
            &pargs,
            self.netns(Host::Pri).as_deref(),
            &self.log(n, "primary.log"),
        )?;
        let mut sec = Proc::spawn(
            "secondary",
            &sargs,
            self.netns(Host::Sec).as_deref(),
            &self.log(n, "secondary.log"),
        )?;
        // Wait until the secondary is in lockstep and the primary's stream arrives.
        let deadline = Instant::now() + Duration::from_secs_f64(self.a.sync_timeout_s);
        loop {
            let ev = events::parse(&std::fs::read_to_string(&sec_events).unwrap_or_default());
            if events::entered(&ev, "Secondary_synchronized").is_some()
                && live.live.datagrams.load(Ordering::Relaxed) > 0
            {
                break;
            }
            if !pri.running() {
                bail!("primary exited before the fault: {}", pri.log_tail(3));
            }
            if !sec.running() {
                bail!("secondary exited before the fault: {}", sec.log_tail(3));
            }
            if Instant::now() >= deadline {
                bail!(
                    "secondary not Secondary_synchronized after {} s (live datagrams {}): {}",
                    self.a.sync_timeout_s,
                    live.live.datagrams.load(Ordering::Relaxed),
                    sec.log_tail(3)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.effective.is_none() {
            self.effective = self.read_effective(n, &ad);
        }
        match self.a.fault {
            Fault::Kill | Fault::Stop | Fault::Link => {
                std::thread::sleep(Duration::from_millis(self.a.settle_ms));
                self.random_phase_wait();
                obs.fault_real_ns = match self.a.fault {
                    Fault::Kill => pri.signal(libc::SIGKILL)?,
                    Fault::Stop => pri.signal(libc::SIGSTOP)?,
                    _ => {
                        let l = self.lab.as_ref().ok_or_else(|| anyhow!("no lab"))?;
                        set_link(&l.live_port(Host::Pri), false)?
                    }
                };
            }
            Fault::Kernel => {
                let at = spawn_real + (inject_at_s.unwrap_or(0.0) * 1e9) as u64;
                if real_ns() + 50_000_000 > at {
                    bail!(
                        "secondary synchronised too late for the injection at {:.3} s after start",
                        inject_at_s.unwrap_or(0.0)
                    );
                }
                // Wait for the injection to fire (the primary's event log says when).
                let end = Instant::now()
                    + Duration::from_nanos(at.saturating_sub(real_ns()))
                    + Duration::from_secs(2);
                obs.fault_real_ns = loop {
                    let ev =
                        events::parse(&std::fs::read_to_string(&pri_events).unwrap_or_default());
                    if let Some(t) = events::injected(&ev) {
                        // The log gives the instant the fault is armed to strike.
                        while real_ns() < t {
                            std::thread::sleep(Duration::from_micros(500));
                        }
                        break t;
                    }
                    if Instant::now() >= end {
                        obs.note = Some("no inject event in the primary's log: fault time estimated from its start".into());
                        break at;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                };
            }
        }
        let switched = Self::wait_switch(&live, self.switch_timeout());
        if self.a.fault == Fault::Stop {
            pri.signal(libc::SIGCONT)?;
        }
        std::thread::sleep(Duration::from_millis(if switched {
            self.a.tail_ms
        } else {
            50
        }));
        if let Some(c) = cap.as_mut() {
            c.stop();
        }
        Self::collect(obs, live, muted);
        drop(pri);
        drop(sec);
        let ev = events::parse(&std::fs::read_to_string(&sec_events).unwrap_or_default());
        obs.declared = events::declared(&ev);
        obs.switch_late_ns = events::switch_late_ns(&ev);
        obs.secondary_state = events::state_at(&ev, obs.fault_real_ns);
        let pev = events::parse(&std::fs::read_to_string(&pri_events).unwrap_or_default());
        obs.primary_state = events::state_at(&pev, obs.fault_real_ns);
        obs.primary_retook = events::declared(&pev);
        if let Some(l) = &self.lab {
            set_link(&l.live_port(Host::Pri), true)?;
        }
        Ok(())
    }

    /// The secondary's heartbeat settings from `tandem status --json` (its own view).
    fn read_effective(&self, n: u32, ad: &Addrs) -> Option<Effective> {
        let exe = std::env::current_exe().ok()?;
        let mut cmd = match self.netns(Host::Sec) {
            Some(ns) => {
                let mut c = std::process::Command::new("ip");
                c.args(["netns", "exec", &ns]).arg(exe);
                c
            }
            None => std::process::Command::new(exe),
        };
        let out = cmd
            .args(["status", &ad.sec_control, "--json", "--session-id"])
            .arg(format!("bench-{}-{n}", self.base))
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(Effective {
            heartbeat_us: v["heartbeat_us"].as_u64()?,
            miss: v["miss"].as_u64()?,
            detection_window_us: v["detection_window_us"].as_u64()?,
        })
    }

    /// The harness check: `tandem play` as the primary, a second `tandem play` started by
    /// the benchmark after the fault, joining the session in progress.
    fn fake_trial(&mut self, n: u32, obs: &mut Obs) -> anyhow::Result<()> {
        let ad = self.addrs(n)?;
        let (live, muted) = self.receivers(&ad)?;
        let mut cap = self.tcpdump(n, &ad)?;
        let origin_ms = real_ns() / 1_000_000 + 300;
        obs.origin_real_ns = Some(origin_ms * 1_000_000);
        let args = vec![
            "play".to_string(),
            self.asset.clone(),
            "--dest".into(),
            ad.live.to_string(),
            "--iface".into(),
            ad.pri_iface.to_string(),
            "--loop".into(),
            "--start-at".into(),
            origin_ms.to_string(),
            "--session-id".into(),
            format!("bench-{}-{n}", self.base),
        ];
        let mut pri = Proc::spawn(
            "primary (play)",
            &args,
            self.netns(Host::Pri).as_deref(),
            &self.log(n, "primary.log"),
        )?;
        let deadline = Instant::now() + Duration::from_secs_f64(self.a.sync_timeout_s);
        while live.live.datagrams.load(Ordering::Relaxed) == 0 {
            if !pri.running() || Instant::now() >= deadline {
                bail!("tandem play sent nothing: {}", pri.log_tail(3));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(self.a.settle_ms));
        self.random_phase_wait();
        obs.fault_real_ns = pri.signal(if self.a.fault == Fault::Stop {
            libc::SIGSTOP
        } else {
            libc::SIGKILL
        })?;
        let mut args = args;
        args[5] = ad.sec_iface.to_string();
        let declared = real_ns();
        let sec = Proc::spawn(
            "secondary (play)",
            &args,
            self.netns(Host::Sec).as_deref(),
            &self.log(n, "secondary.log"),
        )?;
        obs.declared = Some((
            declared,
            "fake-play: the benchmark started a second player".into(),
        ));
        let switched = Self::wait_switch(&live, self.switch_timeout());
        if self.a.fault == Fault::Stop {
            pri.signal(libc::SIGCONT)?;
        }
        std::thread::sleep(Duration::from_millis(if switched {
            self.a.tail_ms
        } else {
            50
        }));
        if let Some(c) = cap.as_mut() {
            c.stop();
        }
        Self::collect(obs, live, muted);
        drop(pri);
        drop(sec);
        Ok(())
    }
}
