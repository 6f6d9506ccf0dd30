//! Child processes of the benchmark: this same executable started as `tandem primary`,
//! `tandem secondary` or `tandem play` (optionally inside a lab namespace with `ip netns
//! exec`, which keeps the process id), its output to a log file, signalled by process id
//! and always killed and reaped when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context;

use crate::net::clock::real_ns;

/// Makes `cmd`'s process receive SIGKILL when the benchmark dies (prctl(2)
/// PR_SET_PDEATHSIG), so an interrupted benchmark leaves no server running.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
    // which is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A child process that is SIGKILLed (after a SIGCONT) and reaped when dropped.
pub struct Proc {
    child: Child,
    /// What it is, for messages.
    pub name: String,
    /// Its stderr/stdout log.
    pub log: PathBuf,
}

impl Proc {
    /// Starts `tandem ARGS` (inside network namespace `netns` when given), output to `log`.
    pub fn spawn(
        name: &str,
        args: &[String],
        netns: Option<&str>,
        log: &Path,
    ) -> anyhow::Result<Proc> {
        let exe = std::env::current_exe().context("finding the tandem executable")?;
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let out = File::create(log).with_context(|| format!("{}", log.display()))?;
        let err = out.try_clone()?;
        die_with_parent(&mut cmd);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: tandem {}", args.join(" ")))?;
        Ok(Proc {
            child,
            name: name.to_string(),
            log: log.to_path_buf(),
        })
    }

    /// Its process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `sig`; returns the realtime instant just before the kill(2) call (unix ns).
    pub fn signal(&self, sig: libc::c_int) -> anyhow::Result<u64> {
        let t = real_ns();
        // SAFETY: kill(2) with the id of a child we have not reaped yet (so the id cannot
        // have been reused), and a valid signal number.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        if rc != 0 {
            anyhow::bail!(
                "signal {sig} to {} (pid {}): {}",
                self.name,
                self.pid(),
                std::io::Error::last_os_error()
            );
        }
        Ok(t)
    }

    /// Whether it is still running (a stopped process is running).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `n` lines of its log (for error messages).
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join(" | ")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.running() {
            // SAFETY: as in `signal`: our unreaped child, valid signal numbers.
            unsafe {
                libc::kill(self.pid(), libc::SIGCONT);
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A packet capture of the live group's port with nanosecond timestamps (`tcpdump -i IFACE
/// --time-stamp-precision=nano -w FILE udp and dst port P`; the muted group has another
/// port). `--immediate-mode`: without it TPACKET_V3 hands packets over in blocks, and a
/// short trial can end before the first block does.: the independent receiver of the
/// benchmark's gap figures. Stopped with SIGINT (so it flushes) when dropped.
pub struct Tcpdump(Option<Proc>);

impl Tcpdump {
    /// Starts tcpdump and waits until it says it is listening.
    pub fn start(
        iface: &str,
        dest: std::net::SocketAddrV4,
        file: &Path,
        netns: Option<&str>,
    ) -> anyhow::Result<Tcpdump> {
        let log = file.with_extension("tcpdump.log");
        let out = File::create(&log)?;
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "tcpdump"]);
                c
            }
            None => Command::new("tcpdump"),
        };
        die_with_parent(&mut cmd);
        cmd.args([
            "-i",
            iface,
            "-n",
            "-U",
            "--immediate-mode",
            "--time-stamp-precision=nano",
            "-w",
        ])
        .arg(file)
        .args(["udp", "and", "dst", "port", &dest.port().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(out.try_clone()?));
        let child = cmd.spawn().context("starting tcpdump (installed?)")?;
        let mut p = Proc {
            child,
            name: "tcpdump".into(),
            log: log.clone(),
        };
        let start = std::time::Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("listening on") {
                return Ok(Tcpdump(Some(p)));
            }
            if !p.running() || start.elapsed().as_secs() >= 5 {
                anyhow::bail!("tcpdump did not start: {}", text.trim());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Stops the capture and waits until the file is complete.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.0.take() {
            let _ = p.signal(libc::SIGINT);
            for _ in 0..200 {
                if !p.running() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        self.stop();
    }
}
