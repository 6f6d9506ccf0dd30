//! The failover benchmark's report side (sans-IO): what one trial measured ([`trial`]), the
//! histograms and the verdict over all trials ([`summary`]), the machine it ran on
//! ([`machine`]), stalls of the machine seen during the run ([`stall`]), and the three
//! outputs: the terminal table ([`text`]), the JSON file (serde of [`summary::BenchReport`])
//! and the self-contained HTML report ([`html`]). `tandem bench failover` (src/cli/bench/)
//! runs the pair, injects the faults and feeds these types.
//!
//! # What is measured
//! - **detection latency**: fault injected -> failure declared (the secondary's
//!   `Secondary_synchronized -> Secondary_no_primary` transition, CLOCK_REALTIME);
//! - **switch latency**: failure declared -> first datagram of the secondary on the live
//!   group (kernel receive timestamp, `SO_TIMESTAMPNS`);
//! - **gap**: the primary's last datagram -> the secondary's first, both kernel receive
//!   timestamps at the receiver (the analyzer's sender change, [`crate::recv::senders`]);
//! - datagrams and TS packets lost, CC errors (ISO/IEC 13818-1 §2.4.3.3), duplicates, at the
//!   receiver.
//!
//! # JSON schema `tandem.bench.failover/1`
//! Stable: fields are only ever added. `_ns` are nanoseconds (instants: unix ns,
//! CLOCK_REALTIME), `_us` microseconds (f64).
//! ```text
//! schema        "tandem.bench.failover/1"
//! version       tandem version
//! started_unix_ns, finished_unix_ns
//! settings      {fault, switch_at, trials, miss, heartbeat_us, framing, seed, pair,
//!                inject, stall_threshold_us, lab, command, effective: null |
//!                {heartbeat_us, miss, detection_window_us}}
//! asset         {path, size, hash, frame_rate, frame_ns, datagram_ns, duration_s}
//! machine       {cores, cpu_model, kernel, load_avg: [1, 5, 15], hostname}
//! trials        [{n, outcome: "switched"|"no_switch"|"error", error, fault_real_ns,
//!                phase_ns, declared_real_ns, declared_reason, detection_ns, switch_ns,
//!                last_primary_rx_ns, first_secondary_rx_ns, gap_ns, sender_changes,
//!                datagrams_lost, ts_packets_lost, cc_errors, duplicates,
//!                primary_after_switch, switched_before_fault, primary_state_at_fault,
//!                secondary_state_at_fault, stall: {machine_ns, primary_ns,
//!                secondary_ns, spoiled}, setup_retries}]
//! metrics       {detection, switch, gap, datagrams_lost, ts_packets_lost, cc_errors,
//!                duplicates}: {unit: "ns"|"count", samples, negative, p50, p90, p99,
//!                p999, max, mean, values: [per trial, in trial order, null when not
//!                measured], hdr: hdrhistogram V2 + DEFLATE, base64}
//! verdict       {pass, frame_ns, limit_ns, aim_ns, trials, switched, not_switched,
//!                errors, over_frame, over_aim, extra_sender_changes, spoiled_by_stalls,
//!                over_frame_spoiled, switched_before_fault, secondary_not_ready,
//!                failures: [string]}
//! machine_stalls {threshold_ns, count, max_ns, total_ns}
//! ```
//! Percentiles are hdrhistogram values (3 significant digits); `max` is exact.

pub mod chaos;
pub mod chaos_report;
pub mod events;
pub mod html;
pub mod machine;
pub mod phase;
pub mod rng;
pub mod stall;
pub mod summary;
pub mod text;
pub mod trial;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

/// Identifies the JSON layout; bumped only on an incompatible change.
pub const SCHEMA: &str = "tandem.bench.failover/1";

/// The fault injected into the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// SIGKILL of the primary process (a crash).
    Kill,
    /// SIGSTOP of the primary (a hung server), SIGCONT after the switch: it must not come
    /// back on the live group.
    Stop,
    /// A critical component of the primary fails for real (`--inject`), its kernel
    /// declares it Failed (claims 14-16).
    Kernel,
    /// In a namespace lab, the primary's port on the live network goes down while its sync
    /// link stays up.
    Link,
}

impl Fault {
    /// The name used on the command line and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Stop => "stop",
            Fault::Kernel => "kernel",
            Fault::Link => "link",
        }
    }
}

/// Settings of a run (the JSON `settings` object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The fault.
    pub fault: Fault,
    /// Where the secondary joins the live group (`seamless`, `pcr`, `frame`), as given to
    /// the pair.
    pub switch_at: String,
    /// Trials asked for.
    pub trials: u32,
    /// `--miss` given to the pair (None: the pair's default).
    pub miss: Option<u32>,
    /// `--heartbeat-us` given to the pair (None: the pair's default).
    pub heartbeat_us: Option<u64>,
    /// `udp` or `rtp`.
    pub framing: String,
    /// Seed of the fault phases.
    pub seed: u64,
    /// What played the pair: `tandem primary/secondary` or the harness check `fake-play`.
    pub pair: String,
    /// The `--inject` component fault (kernel fault only).
    pub inject: Option<String>,
    /// A trial is spoiled by a stall when one of at least this long overlaps it (us).
    pub stall_threshold_us: u64,
    /// Namespace lab id (link fault).
    pub lab: Option<String>,
    /// The command line that ran the benchmark.
    pub command: String,
    /// The servers' effective heartbeat settings, read from the secondary's `tandem
    /// status` during the first trial (None: not read).
    #[serde(default)]
    pub effective: Option<Effective>,
}

/// Heartbeat settings the servers actually used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effective {
    /// Heartbeat period (us).
    pub heartbeat_us: u64,
    /// Missed heartbeats that declare a failure.
    pub miss: u64,
    /// Detection window (us).
    pub detection_window_us: u64,
}

/// The asset (the JSON `asset` object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetInfo {
    /// Path as given.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// XXH3-128 content hash, hex.
    pub hash: String,
    /// Frame rate as `num/den`, e.g. `60000/1001`.
    pub frame_rate: String,
    /// One frame, ns: the limit every gap must stay under.
    pub frame_ns: u64,
    /// Mean time between datagrams at the nominal rate, ns.
    pub datagram_ns: u64,
    /// Duration of one pass, s.
    pub duration_s: f64,
}
