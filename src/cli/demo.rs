//! `tandem demo`: the README's first command, the whole method on loopback.
//!
//! A primary and a secondary (two real processes, claim 27) play the bundled asset in
//! lockstep — the primary on the live group, the secondary into the muted group — while the
//! project's own analyzer receives the live group with kernel timestamps. Midway the primary
//! is killed with SIGKILL; the secondary detects it and takes the live group. The demo then
//! prints the states both servers went through, what the receiver saw at the change of
//! sender (gap, packets lost, CC errors) against one frame, and how to watch it in ffplay or
//! VLC. `--play-only` shows a single `tandem play` instead.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::net::clock::real_ns;
use crate::net::recv_socket::{open_recv_socket, run_on, RecvConfig};
use crate::net::url::{Dest, Framing};

use super::EXIT_BAD_INPUT;

/// The bundled asset, relative to the repository root.
pub const DEMO_ASSET: &str = "assets/demo-25fps.ts";

/// Flags of `tandem demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Asset to play (default: the bundled assets/demo-25fps.ts).
    #[arg(long, value_name = "FILE")]
    pub asset: Option<PathBuf>,
    /// Where to play it: a loopback multicast group by default.
    #[arg(long, value_name = "URL", default_value = "rtp://239.255.42.1:5004")]
    pub dest: String,
    /// The muted group of the secondary (failover demo).
    #[arg(long, value_name = "URL", default_value = "rtp://239.255.42.2:5004")]
    pub muted: String,
    /// Seconds of stream before the primary is killed (failover demo).
    #[arg(long, value_name = "S", default_value_t = 4.0)]
    pub kill_after: f64,
    /// Seconds the receiver listens in all (failover demo).
    #[arg(long, value_name = "S", default_value_t = 8.0)]
    pub seconds: f64,
    /// Only play the asset once with `tandem play` and analyse it (no failover pair).
    #[arg(long)]
    pub play_only: bool,
    /// Print the receiver's report as JSON (schema tandem.recv/1) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Finds the asset: as given, else relative to the current directory, else to the source
/// tree the binary was built from.
pub fn locate_asset(given: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = given {
        return Some(p.to_path_buf());
    }
    [
        PathBuf::from(DEMO_ASSET),
        Path::new(env!("CARGO_MANIFEST_DIR")).join(DEMO_ASSET),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Kills and reaps a child process when dropped (a demo never leaves senders behind).
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tandem ARGS...` (this same executable) as a separate process.
pub fn spawn_self(args: &[String], quiet: bool) -> std::io::Result<ChildGuard> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(args).stdin(Stdio::null());
    if quiet {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    cmd.spawn().map(ChildGuard)
}

/// How a person watches `dest` on this machine's loopback interface.
pub fn watch_hint(dest: &Dest) -> String {
    let (g, p) = (dest.addr.ip(), dest.addr.port());
    let scheme = match dest.framing {
        Framing::Udp => "udp",
        Framing::Rtp => "rtp",
    };
    format!(
        "  ffplay -hide_banner '{scheme}://{g}:{p}?localaddr=127.0.0.1'\n  \
         cvlc --miface=lo {scheme}://@{g}:{p}      (VLC refuses to run as root: use another user)\n  \
         (replay the stream meanwhile with: tandem play {DEMO_ASSET} --dest {dest} --loop)"
    )
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<i32> {
    if args.play_only {
        play_only(args)
    } else {
        super::demo_pair::run(args)
    }
}

/// The single-engine demo (`--play-only`).
fn play_only(args: &DemoArgs) -> anyhow::Result<i32> {
    let Some(asset) = locate_asset(args.asset.as_deref()) else {
        eprintln!("tandem demo: the bundled asset {DEMO_ASSET} was not found (run from the repository root or pass --asset FILE)");
        return Ok(EXIT_BAD_INPUT);
    };
    let dest: Dest = match args.dest.parse() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("tandem demo: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let map = match crate::io::load_or_build(&asset, false) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("tandem demo: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let duration_s = map.loop_period as f64 / 27e6;
    let iface = Ipv4Addr::LOCALHOST;
    // Join first, so the receiver hears the first datagram.
    let sock = match open_recv_socket(&dest, iface) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tandem demo: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let start_at_ms = real_ns() / 1_000_000 + 500;
    let play_args: Vec<String> = vec![
        "play".into(),
        asset.display().to_string(),
        "--dest".into(),
        dest.to_string(),
        "--iface".into(),
        iface.to_string(),
        "--start-at".into(),
        start_at_ms.to_string(),
    ];
    eprintln!(
        "tandem demo: playing {} ({duration_s:.1} s) to {dest} on loopback, receiving it with the analyzer\n  \
         sender:   tandem {}\n  receiver: tandem recv {dest} --iface 127.0.0.1",
        asset.display(),
        play_args.join(" ")
    );
    let mut player = spawn_self(&play_args, false)?;
    let cfg = RecvConfig {
        dest,
        iface,
        duration: Some(Duration::from_secs_f64(duration_s + 1.5)),
        expect_datagrams: Some(map.datagram_count()),
        capture: None,
    };
    let report = run_on(sock, &cfg, &AtomicBool::new(false))?;
    let status = player.0.wait()?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", super::recv::human(&report));
        println!(
            "\nsent {} datagrams, received {}; play exited with {status}.\nWatch it yourself (the demo stream is over; start it again looping):\n{}",
            map.datagram_count(),
            report.datagrams,
            watch_hint(&dest)
        );
    }
    let clean = status.success() && report.datagrams == map.datagram_count();
    Ok(if clean { 0 } else { super::EXIT_RUNTIME })
}
