//! Helpers for the failover integration tests: unique ports and groups per test, server
//! processes killed on drop, waiting for a log line or a status, a `tandem recv --json`
//! receiver on the live group.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tandem");

static N: AtomicU32 = AtomicU32::new(0);

/// Addresses of one scenario: sync and control ports of both servers, a monitor port, the
/// live and muted groups.
#[derive(Debug, Clone)]
pub struct Net {
    pub sync_p: SocketAddrV4,
    pub sync_s: SocketAddrV4,
    pub ctl_p: SocketAddrV4,
    pub ctl_s: SocketAddrV4,
    pub monitor: SocketAddrV4,
    pub live: SocketAddrV4,
    pub muted: SocketAddrV4,
}

impl Net {
    /// Fresh addresses (derived from the process id and a counter). Ports that something
    /// else on this machine holds right now (another test run, a leftover process) are
    /// skipped: a server that cannot bind its port exits, which is not what a test tests.
    pub fn new() -> Net {
        let pid = std::process::id();
        loop {
            let n = N.fetch_add(1, Ordering::Relaxed);
            let base = 21_000 + ((pid % 700) * 12 + n * 6) as u16 % 8_000;
            if !(0..6).all(|p| port_free(base + p)) {
                continue;
            }
            let lo = |p: u16| SocketAddrV4::new(Ipv4Addr::LOCALHOST, base + p);
            let g = Ipv4Addr::new(239, 255, 180 + (pid % 40) as u8, (n % 120) as u8 * 2 + 2);
            let g2 = Ipv4Addr::new(239, 255, 180 + (pid % 40) as u8, (n % 120) as u8 * 2 + 3);
            return Net {
                sync_p: lo(0),
                sync_s: lo(1),
                ctl_p: lo(2),
                ctl_s: lo(3),
                monitor: lo(4),
                live: SocketAddrV4::new(g, base + 5),
                muted: SocketAddrV4::new(g2, base + 5),
            };
        }
    }

    /// Flags of the primary (after `primary ASSET`).
    pub fn primary_args(&self, scheme: &str) -> Vec<String> {
        vec![
            format!("--dest={scheme}://{}", self.live),
            format!("--sync-listen={}", self.sync_p),
            format!("--sync-peer={}", self.sync_s),
            format!("--control-listen={}", self.ctl_p),
        ]
    }

    /// Flags of the secondary.
    pub fn secondary_args(&self, scheme: &str) -> Vec<String> {
        vec![
            format!("--dest={scheme}://{}", self.live),
            format!("--muted=udp://{}", self.muted),
            format!("--sync-listen={}", self.sync_s),
            format!("--sync-peer={}", self.sync_p),
            format!("--control-listen={}", self.ctl_s),
        ]
    }

    /// The live URL.
    pub fn live_url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.live)
    }
}

/// Nobody on this machine holds UDP `port` (on any address) right now.
fn port_free(port: u16) -> bool {
    std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

/// A fresh scratch directory, removed when the test that made it ends well and kept (its
/// path printed) when the test fails, for the servers' logs.
pub fn scratch(name: &str) -> Scratch {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("tandem-fo-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

/// See [`scratch`].
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test scratch directory kept: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A copy of a fixture in `dir` (its index is built beside it).
pub fn fixture(name: &str, dir: &Path) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    let to = dir.join(name);
    std::fs::copy(&from, &to).unwrap();
    // Build the index once, so two servers starting together do not both build it.
    let out = Command::new(BIN).arg("index").arg(&to).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    to
}

/// A child process with its stderr in a log file, in a process group of its own; the
/// group is killed (SIGKILL) on drop, so the servers that `tandem pair` started do not
/// outlive a failed test (a leftover `--loop` server loads the machine and holds ports).
pub struct Proc {
    pub name: String,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `tandem ARGS` with stderr to `dir/NAME.log`.
    pub fn spawn(name: &str, dir: &Path, args: &[String]) -> Proc {
        Proc::spawn_program(name, BIN, dir, args)
    }

    /// Starts `program ARGS` (killed on drop) with stderr to `dir/NAME.log`.
    pub fn spawn_program(name: &str, program: &str, dir: &Path, args: &[String]) -> Proc {
        Proc::spawn_env(name, program, dir, args, &[])
    }

    /// [`Proc::spawn_program`] with extra environment variables.
    pub fn spawn_env(
        name: &str,
        program: &str,
        dir: &Path,
        args: &[String],
        env: &[(&str, String)],
    ) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(args)
            .process_group(0)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(f)
            .spawn()
            .unwrap();
        Proc {
            name: name.into(),
            child: Some(child),
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// The log so far, without ANSI colours.
    pub fn log_text(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Waits until the log contains `needle`; panics (with the log) after `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if self.log_text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{}: no '{needle}' in the log within {timeout:?}:\n{}",
            self.name,
            self.log_text()
        );
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a child's pid (still ours: not yet waited for) and a signal
        // number; no memory is involved.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for exit (up to `timeout`), returns the exit code and stdout.
    pub fn wait_exit(&mut self, timeout: Duration) -> (Option<i32>, String) {
        let mut c = self.child.take().expect("running");
        let t0 = Instant::now();
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                let mut out = String::new();
                if let Some(mut o) = c.stdout.take() {
                    let _ = o.read_to_string(&mut out);
                }
                return (st.code(), out);
            }
            if t0.elapsed() > timeout {
                kill_group(&c);
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "{}: did not exit within {timeout:?}:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(&c);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// SIGKILL to the process group of `c` (its own: see [`Proc::spawn`]).
fn kill_group(c: &Child) {
    // SAFETY: kill(2) of the process group our child leads (not yet waited for, so the id
    // is still ours); no memory is involved.
    unsafe {
        libc::kill(-(c.id() as i32), libc::SIGKILL);
    }
}

/// Removes ANSI escape sequences.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `tandem status ADDR --json`.
pub fn status(addr: SocketAddrV4) -> Option<serde_json::Value> {
    status_with(addr, &[])
}

/// `tandem status ADDR --json EXTRA...` (e.g. `--key-file=...`).
pub fn status_with(addr: SocketAddrV4, extra: &[&str]) -> Option<serde_json::Value> {
    let out = Command::new(BIN)
        .args(["status", &addr.to_string(), "--json"])
        .args(extra)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// The state in a status object.
pub fn state(s: &serde_json::Value) -> String {
    s["state"].as_str().unwrap_or("").to_string()
}

/// Waits until the server at `addr` reports `want`; panics after `timeout` with `procs`' logs.
pub fn wait_state(
    addr: SocketAddrV4,
    want: &str,
    timeout: Duration,
    procs: &[&Proc],
) -> serde_json::Value {
    wait_state_with(addr, want, timeout, procs, &[])
}

/// [`wait_state`] with extra `tandem status` flags.
pub fn wait_state_with(
    addr: SocketAddrV4,
    want: &str,
    timeout: Duration,
    procs: &[&Proc],
    extra: &[&str],
) -> serde_json::Value {
    let (found, last) = poll_state(addr, want, timeout, extra);
    if let Some(s) = found {
        return s;
    }
    let logs: Vec<String> = procs
        .iter()
        .map(|p| format!("--- {} ---\n{}", p.name, p.log_text()))
        .collect();
    panic!(
        "{addr} not {want} within {timeout:?}; last status {:?}\n{}",
        last.map(|s| state(&s)),
        logs.join("\n")
    );
}

/// Waits until the server at `addr` reports `want`; `None` after `timeout`.
pub fn try_wait_state(
    addr: SocketAddrV4,
    want: &str,
    timeout: Duration,
) -> Option<serde_json::Value> {
    poll_state(addr, want, timeout, &[]).0
}

/// (the status once it is `want`, else the last status seen).
fn poll_state(
    addr: SocketAddrV4,
    want: &str,
    timeout: Duration,
    extra: &[&str],
) -> (Option<serde_json::Value>, Option<serde_json::Value>) {
    let t0 = Instant::now();
    let mut last = None;
    while t0.elapsed() < timeout {
        if let Some(s) = status_with(addr, extra) {
            if state(&s) == want {
                return (Some(s), None);
            }
            last = Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (None, last)
}

/// A `tandem recv --json` run on the live group.
pub struct Recv {
    proc: Proc,
}

impl Recv {
    /// Starts receiving `url` for `seconds` (optionally capturing to `capture`); returns
    /// once the receiver has joined the group.
    pub fn start(dir: &Path, url: &str, seconds: f64, capture: Option<&Path>) -> Recv {
        let mut args = vec![
            "recv".to_string(),
            url.to_string(),
            "--json".into(),
            format!("--seconds={seconds}"),
        ];
        if let Some(c) = capture {
            args.push(format!("--capture={}", c.display()));
        }
        let proc = Proc::spawn("recv", dir, &args);
        proc.wait_log("receiving", Duration::from_secs(20));
        Recv { proc }
    }

    /// Waits for the report (the end of `--seconds`).
    pub fn report(mut self) -> serde_json::Value {
        let (code, out) = self.proc.wait_exit(Duration::from_secs(60));
        assert_eq!(code, Some(0), "recv failed: {}", self.proc.log_text());
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("recv JSON: {e}: {out}"))
    }

    /// Ends the run now (SIGTERM: the receiver stops and reports what it received) and
    /// returns the report; for runs that end with the session rather than a time window.
    pub fn stop(self) -> serde_json::Value {
        // Datagrams still in flight on loopback arrive well within this.
        std::thread::sleep(Duration::from_millis(200));
        self.proc.signal(libc::SIGTERM);
        self.report()
    }
}

/// Runs `tandem ARGS` to completion.
pub fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Arguments as owned strings.
pub fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `ffprobe` decodes the file without errors and finds video frames.
pub fn ffprobe_ok(path: &Path) -> Result<u64, String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .map_err(|e| format!("ffprobe: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("ffprobe failed: {err}"));
    }
    let frames: u64 = text
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .parse()
        .map_err(|_| format!("ffprobe output '{text}', errors '{err}'"))?;
    if !err.trim().is_empty() {
        return Err(format!("ffprobe reported: {err}"));
    }
    Ok(frames)
}

/// `GET path` on `addr`: (status code, body).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, &[]).map(|(code, _, body)| (code, body))
}

/// One HTTP/1.1 request with `headers`: (status code, response head, body).
#[allow(dead_code)]
pub fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String, String)> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    Ok((code, head.to_string(), body.to_string()))
}

/// Whether either server's log shows a takeover by the failover rules (a stall of the
/// machine made one side declare the other failed), which spoils a planned-switchover run.
#[allow(dead_code)]
pub fn taken_over_by_rules(p: &Proc, s: &Proc) -> bool {
    let logs = p.log_text() + &s.log_text();
    [
        "FailureDeclared",
        "FailedNotice",
        "HigherEpoch",
        "PeerOnAir",
    ]
    .iter()
    .any(|t| logs.contains(&format!(": {t}")))
}
