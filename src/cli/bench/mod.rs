//! `tandem bench failover ASSET`: the failover latency benchmark (claims 2-3). Per trial it
//! starts a real pair (two processes, unique groups and ports), a receiver with kernel
//! timestamps on the live and the muted group, waits until the secondary is
//! `Secondary_synchronized`, injects the fault at a uniformly random phase within a frame,
//! and records detection, switch and gap latencies, losses, CC errors and duplicates into
//! hdrhistogram histograms (`crate::bench`). Outputs: a table on the terminal, `--json`
//! (schema `tandem.bench.failover/1`) and `--report` (self-contained HTML). Exit code 1
//! when any trial did not switch inside one frame, 2 on bad input.
//!
//! ```text
//! tandem bench failover fixtures/cbr-25fps.ts --trials 300 --fault kill --json k25.json --report k25.html
//! tandem bench failover fixtures/cbr-59.94fps.ts --trials 100 --fault stop --switch-at pcr
//! tandem bench failover assets/demo-25fps.ts --trials 100 --fault link      (root: namespace lab)
//! ```

mod chaos;
mod lab;
mod procs;
mod receiver;
mod run;
mod watcher;

pub use lab::{lab_script, set_link, Host, Lab};
pub use procs::{Proc, Tcpdump};
pub use receiver::{enter_netns, Receiver};
pub use watcher::Watcher;

use std::path::PathBuf;

use crate::bench::Fault;

/// `tandem bench ...`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: BenchCommand,
}

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Failover latency: a real pair, a receiver, N faults at random phases; histograms of
    /// detection, switch and gap against one frame.
    Failover(FailoverArgs),
    /// A long run of mixed faults on a pair in a namespace lab (root): kill -9 of the server
    /// on air or the standby and its restart, SIGSTOP, sync link down, live port down, from
    /// a seeded schedule; an independent receiver reports loss, changes of sender with the
    /// fault before each, two-sender time and silences. Exit 1 when a goal fails (a crash,
    /// two senders at once). See docs/chaos.md.
    Chaos(ChaosArgs),
}

/// Flags of `tandem bench chaos`.
#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// The MPEG-TS asset the pair plays (looped), over RTP.
    pub asset: PathBuf,
    /// Length of the run (the faults come 3-5 s apart after a 5 s warm-up).
    #[arg(long, default_value_t = 300, value_name = "S")]
    pub seconds: u64,
    /// Seed of the fault schedule (the same seed, the same faults at the same times).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the report (schema tandem.bench.chaos/1) to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Heartbeats missed before a failure is declared (default: the servers').
    #[arg(long, value_name = "N")]
    pub miss: Option<u32>,
    /// Heartbeat period (default: the servers', from the frame rate).
    #[arg(long, value_name = "US")]
    pub heartbeat_us: Option<u64>,
    /// Lab id (tools/netns-lab.sh; 1-3 lowercase letters/digits).
    #[arg(long, default_value = "bch", value_name = "ID")]
    pub lab: String,
    /// Where the servers' logs go (default: a new directory under the temp dir).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Do not print each fault as it is applied.
    #[arg(long)]
    pub quiet: bool,
}

/// How the pair is played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PairKind {
    /// `tandem primary` + `tandem secondary` (the product).
    Tandem,
    /// Harness check without failover: `tandem play` as the primary; after the fault the
    /// benchmark itself starts a second `tandem play` joining the session in progress
    /// (declared = when it started it). Gaps include a process start: not a failover figure.
    FakePlay,
}

/// Flags of `tandem bench failover`.
#[derive(Debug, clap::Args)]
pub struct FailoverArgs {
    /// The MPEG-TS asset the pair plays (looped).
    pub asset: PathBuf,
    /// Number of trials (one fresh pair each).
    #[arg(long, default_value_t = 20)]
    pub trials: u32,
    /// The fault: kill (SIGKILL), stop (SIGSTOP, SIGCONT after the switch), kernel (a
    /// critical component of the primary fails for real, --inject-kind), link (namespace
    /// lab, root: the primary's port on the live network goes down).
    #[arg(long, value_enum, default_value = "kill")]
    pub fault: Fault,
    /// Where the secondary joins the live group, given to both servers:
    /// seamless | pcr | frame.
    #[arg(long, default_value = "seamless", value_name = "MODE")]
    pub switch_at: String,
    /// Write the report as JSON (schema tandem.bench.failover/1) to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report (plots, asset, settings, machine) to FILE.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Heartbeats missed before the failure is declared (default: the servers' default).
    #[arg(long, value_name = "N")]
    pub miss: Option<u32>,
    /// Heartbeat period in microseconds (default: the servers' default, derived from the
    /// frame rate).
    #[arg(long, value_name = "US")]
    pub heartbeat_us: Option<u64>,
    /// Framing of the stream: rtp (losses and duplicates exact from sequence numbers) or
    /// udp (estimated from the PCR rate).
    #[arg(long, default_value = "rtp", value_parser = ["rtp", "udp"])]
    pub framing: String,
    /// The component fault of `--fault kernel`: reader-hang, pacer-panic, pacer-hang,
    /// send-error, heartbeat-hang.
    #[arg(long, default_value = "pacer-panic", value_name = "KIND")]
    pub inject_kind: String,
    /// Seed of the random fault phases (default: from the clock; printed in the report).
    #[arg(long)]
    pub seed: Option<u64>,
    /// A trial is counted as spoiled by a stall when a stall of at least this many ms
    /// overlaps it (it stays in the figures).
    #[arg(long, default_value_t = 5.0, value_name = "MS")]
    pub stall_ms: f64,
    /// Time the pair runs synchronised before the fault (ms).
    #[arg(long, default_value_t = 300, value_name = "MS")]
    pub settle_ms: u64,
    /// Time the receiver keeps listening after the switch (ms; `stop` also watches the
    /// resumed primary this long).
    #[arg(long, default_value_t = 400, value_name = "MS")]
    pub tail_ms: u64,
    /// Give up on a trial whose secondary is not synchronised after this many seconds.
    #[arg(long, default_value_t = 10.0, value_name = "S")]
    pub sync_timeout_s: f64,
    /// Run the pair and the receiver as three hosts of a namespace lab (root; always on
    /// for `--fault link`): primary, secondary and viewer, live and sync networks apart.
    #[arg(long)]
    pub in_lab: bool,
    /// Namespace lab id (1-3 lowercase letters/digits).
    #[arg(long, default_value = "bfl", value_name = "ID")]
    pub lab: String,
    /// Capture every trial's live group with tcpdump (nanosecond timestamps) into DIR, for
    /// an independent check of the gaps (tools/pcap-gap.py).
    #[arg(long, value_name = "DIR")]
    pub capture_dir: Option<PathBuf>,
    /// Keep the servers' logs and event logs here (default: a temporary directory, kept
    /// only when a trial fails).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// What plays the pair (fake-play: a harness check without failover).
    #[arg(long, value_enum, default_value = "tandem")]
    pub pair: PairKind,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `tandem bench ...`.
pub fn run(args: &BenchArgs) -> anyhow::Result<i32> {
    match &args.which {
        BenchCommand::Failover(a) => run::failover(a),
        BenchCommand::Chaos(a) => chaos::chaos(a),
    }
}
