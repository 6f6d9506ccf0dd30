//! The command line: clap parses raw flags, each command validates them into the objects
//! it runs, and `run` maps errors to exit codes (ripgrep style).

use clap::{Parser, Subcommand};

pub mod bench;
pub mod demo;
pub mod demo_pair;
pub mod index;
pub mod monitor;
pub mod pair;
pub mod play;
pub mod playlist;
pub mod probe;
pub mod recv;
pub mod request;
pub mod serve;
pub mod server;
pub(crate) mod signals;
pub mod startup;
pub mod status;
pub mod sync;

/// Exit code for bad input (file, URL, flag) that stops a run.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code when a run started but failed (socket error, peer failure).
pub const EXIT_RUNTIME: i32 = 1;

/// tandem: frame-accurate MPEG-TS multicast playout with primary/secondary failover.
#[derive(Debug, Parser)]
#[command(name = "tandem", version, about, long_about = None)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Every command tandem has.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmarks: `tandem bench failover ASSET` measures the switch against one frame.
    Bench(bench::BenchArgs),
    /// The whole method on loopback: a pair plays the bundled asset, the primary is killed,
    /// the receiver shows the switch (`--play-only`: one engine, no failover).
    Demo(demo::DemoArgs),
    /// Analyse an asset: programs, PIDs, PCR, bitrate, frame rate, problems.
    Probe(probe::ProbeArgs),
    /// Build (or refresh) the saved offset map of an asset.
    Index(index::IndexArgs),
    /// Play an asset onto UDP/RTP multicast, paced by its PCR timeline.
    Play(play::PlayArgs),
    /// Check a playlist (JSON in ffplayout's shape, or M3U) as a channel would load it: keys,
    /// clips, in/out points, streams; prints the schedule (see docs/playlists.md).
    Playlist(playlist::PlaylistArgs),
    /// Receive udp:// or rtp:// and measure it: TR 101 290, RTP, gaps, pacing (--json).
    Recv(recv::RecvArgs),
    /// Run the primary server of a failover pair (plays on the live group).
    Primary(server::PrimaryArgs),
    /// Run the secondary server of a failover pair (follows in lockstep, takes over).
    Secondary(server::SecondaryArgs),
    /// Run a primary and a secondary on this computer as two processes (claim 27).
    Pair(pair::PairArgs),
    /// Send a user's request to the servers' control ports (e.g. play an asset).
    Request(request::RequestArgs),
    /// Show a server's failover state, peer, position and counters.
    Status(status::StatusArgs),
    /// Component monitor: watch heartbeats and the live group, command the switch.
    Monitor(monitor::MonitorArgs),
    /// Synchronisation component: fetch the primary's parameters, deliver them to the
    /// secondary, wait until it is synchronised.
    Sync(sync::SyncArgs),
    /// Serve many channels on this host from one TOML file (`--check`: validate it and
    /// print the plan; see docs/serve.md).
    #[command(after_help = "\
Each host of a pair runs `tandem serve` with the same channel list; a channel is on air on
the host its `primary` key names and stands by on the other (active/active), one sync link
and one control port per host.

Examples:
  tandem serve /etc/tandem/serve.toml --check      validate, print the plan
  tandem serve /etc/tandem/serve.toml              run until SIGINT/SIGTERM
  tandem status 127.0.0.1:7411                     the host's channels, one line each
  tandem status 127.0.0.1:7411 --channel news      one channel in full
  tandem request switchover --to 127.0.0.1:7411 --channel news
  kill -HUP $PID  (or: tandem request reload --to 127.0.0.1:7411)   apply an edited file")]
    Serve(serve::ServeArgs),
}

/// Parses the command line, runs the command, returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result: anyhow::Result<i32> = match cli.command {
        Command::Bench(a) => bench::run(&a),
        Command::Demo(a) => demo::run(&a),
        Command::Probe(a) => probe::run(&a),
        Command::Index(a) => index::run(&a),
        Command::Play(a) => play::run(&a),
        Command::Playlist(a) => playlist::run(&a),
        Command::Recv(args) => recv::run(args),
        Command::Primary(a) => server::run_primary(&a),
        Command::Secondary(a) => server::run_secondary(&a),
        Command::Request(a) => request::run(&a),
        Command::Pair(a) => pair::run(&a),
        Command::Status(a) => status::run(&a),
        Command::Monitor(a) => monitor::run(&a),
        Command::Sync(a) => sync::run(&a),
        Command::Serve(a) => serve::run(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tandem: {e:#}");
            EXIT_RUNTIME
        }
    }
}

/// Logs go to stderr; `RUST_LOG` overrides the `-v` level.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
