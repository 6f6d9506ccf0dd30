//! The receiving analyzer behind `tandem recv`, the project's measuring instrument
//! (sans-IO: it is fed datagrams with their receive time and never reads a clock).
//!
//! [`Analyzer::push`] takes each datagram's bytes, source address and receive time (ns,
//! the kernel's `SO_TIMESTAMPNS` when the driver has it); [`Analyzer::report`] returns a
//! [`Report`], serialised by `tandem recv --json` as one JSON object.
//!
//! # JSON schema `tandem.recv/1`
//!
//! Stable: fields are only ever added. Durations ending in `_us` are microseconds (f64,
//! ns resolution), `_ms` milliseconds, `_s` seconds since the first datagram; `_ns`
//! values are receive-clock instants (unix ns with kernel timestamps). Percentile
//! objects are `{samples, p50_us, p90_us, p99_us, p999_us, max_us}` (nearest rank). A
//! "check" is `{count, first: [{t_s, rx_ns, datagram, pid, detail}]}` with at most 8
//! occurrences.
//!
//! ```text
//! schema            "tandem.recv/1"
//! framing           "udp" | "rtp"
//! run               null | {url, iface, clock: "kernel"|"user", socket_drops,
//!                   seconds, expect_datagrams, expect_met, ended_by:
//!                   "deadline"|"signal"|"expected", capture, capture_bytes}  (driver)
//! first_rx_ns, last_rx_ns, duration_s
//! datagrams, ts_bytes, ts_packets
//! datagram_sizes    {non_1316, partial_packets, sizes: [[bytes, count], ...]}
//! sources           [{addr, datagrams, first_s, last_s}], other_source_datagrams
//! sender_changes    {count, list: [{t_s, rx_ns, datagram, from, to, gap_us,
//!                   rtp_seq_missing, cc_errors, cc_lost_packets, cc_error_pids,
//!                   ts_packets_missing_est, datagrams_missing_est}]}
//! gaps              {intervals, p50_us, p90_us, p99_us, p999_us (histogram, 3
//!                   significant digits), max_us (exact), max_at_s, over_5ms,
//!                   over_10ms, over_20ms, negative}
//! tr101290          {sync_loss, sync_byte_error, pat_error, cc_error, pmt_error,
//!                   transport_error, crc_error, pcr_repetition_error,
//!                   pcr_discontinuity_error, malformed_packet}: checks (1.1, 1.2,
//!                   1.3a, 1.4, 1.5a, 2.1, 2.2, 2.3a, 2.3b; the last is not TR 101 290)
//! pids              [{pid, packets, cc_errors, cc_lost_packets, pcrs, discontinuities,
//!                   scrambled}], pmt_pids [..]
//! pacing            {pcr_pid, segments, departure_error: percentiles of |error -
//!                   median|, unmeasured_datagrams, pcr_jitter: percentiles,
//!                   bitrate_bps, mdi: {intervals, df_max_ms, df_mean_ms, mlr_max,
//!                   lost_packets}}
//! rtp               null | {packets, parse_errors (check), expected, received, lost,
//!                   duplicates, reordered, out_of_window, resyncs, ssrc,
//!                   ssrc_change_count, ssrc_changes: [{t_s, datagram, from, to}],
//!                   wrong_payload_type (check), payload_types: [[pt, count]],
//!                   interarrival_jitter_us, interarrival_jitter_max_us}
//! warnings          [string]
//! ```
//!
//! Definitions of the pacing figures are in [`pacing`]; of the checks in [`tr101290`];
//! of a sender change in [`senders`].
//!
//! Memory: bounded except one `i64` per datagram and per PCR for the pacing percentiles
//! (about 40 MB for an hour at 14 Mb/s); fine for runs up to an hour.

pub mod pacing;
pub mod rtp;
pub mod rtp_monitor;
pub mod senders;
pub mod stats;
pub mod tr101290;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stream::Framing;
use crate::ts::packet::{DATAGRAM_PAYLOAD, PACKET_SIZE, SYNC_BYTE};
use pacing::{Mdi, MdiReport, Timeline, TimelineReport};
use rtp_monitor::{RtpMonitor, RtpReport};
use senders::{SenderChanges, Senders, Source};
use stats::At;
use tr101290::{PidStats, Tr101290, TsChecks};

/// Identifies the JSON layout; bumped only on an incompatible change.
pub const SCHEMA: &str = "tandem.recv/1";

/// Largest gap recorded in the histogram (1 h, in us); longer gaps saturate.
const GAP_HIST_MAX_US: u64 = 3_600_000_000;

/// The TS bytes of a datagram: all of it for `udp://`, the RTP payload for `rtp://`
/// (what `--capture` writes).
pub fn ts_payload(framing: Framing, datagram: &[u8]) -> Option<&[u8]> {
    match framing {
        Framing::Udp => Some(datagram),
        Framing::Rtp => rtp::parse(datagram).ok().map(|(_, p)| p),
    }
}

/// Which clock stamped the datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockSource {
    /// `SO_TIMESTAMPNS`: taken by the kernel when the datagram arrived.
    Kernel,
    /// The receiving thread's clock after `recvmsg` returned (includes its scheduling).
    User,
}

/// Why the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EndReason {
    /// `--seconds` elapsed.
    Deadline,
    /// SIGINT/SIGTERM.
    Signal,
    /// `--expect-datagrams` datagrams arrived.
    Expected,
}

/// What the driver knows about the run (the JSON `run` object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    /// The URL received.
    pub url: String,
    /// Interface address the group was joined on.
    pub iface: String,
    /// Clock of the receive times.
    pub clock: ClockSource,
    /// Datagrams the kernel dropped because the socket buffer was full (`SO_RXQ_OVFL`),
    /// when the kernel reported it.
    pub socket_drops: Option<u64>,
    /// `--seconds`.
    pub seconds: Option<f64>,
    /// `--expect-datagrams`.
    pub expect_datagrams: Option<u64>,
    /// Whether at least that many arrived.
    pub expect_met: Option<bool>,
    /// Why the run ended.
    pub ended_by: EndReason,
    /// `--capture` file.
    pub capture: Option<String>,
    /// Bytes written to it.
    pub capture_bytes: u64,
}

/// The JSON `datagram_sizes` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SizeReport {
    /// Datagrams whose TS payload is not 1316 bytes (7 packets).
    pub non_1316: u64,
    /// Datagrams whose payload is not a whole number of 188-byte packets.
    pub partial_packets: u64,
    /// `[payload bytes, count]`, by size.
    pub sizes: Vec<(usize, u64)>,
}

/// The JSON `gaps` object: time between consecutive datagrams.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GapReport {
    /// Number of gaps (datagrams - 1).
    pub intervals: u64,
    /// Median (histogram value, us).
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest gap, exact.
    pub max_us: f64,
    /// When it ended (s since the first datagram).
    pub max_at_s: Option<f64>,
    /// Gaps of at least 5 ms.
    pub over_5ms: u64,
    /// Gaps of at least 10 ms.
    pub over_10ms: u64,
    /// Gaps of at least 20 ms.
    pub over_20ms: u64,
    /// Receive times that went backwards (clock step); counted as 0.
    pub negative: u64,
}

/// The JSON `pacing` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PacingReport {
    /// Departure error, PCR jitter and bitrate.
    #[serde(flatten)]
    pub timeline: TimelineReport,
    /// RFC 4445 media delivery index.
    pub mdi: MdiReport,
}

/// Everything measured in a run; see the module documentation for the JSON layout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// Framing analysed.
    pub framing: Framing,
    /// Filled by the driver.
    pub run: Option<RunInfo>,
    /// Receive time of the first datagram.
    pub first_rx_ns: Option<u64>,
    /// Receive time of the last datagram.
    pub last_rx_ns: Option<u64>,
    /// From the first to the last datagram.
    pub duration_s: f64,
    /// Datagrams received.
    pub datagrams: u64,
    /// TS bytes (RTP headers excluded).
    pub ts_bytes: u64,
    /// 188-byte packets.
    pub ts_packets: u64,
    /// Size histogram.
    pub datagram_sizes: SizeReport,
    /// Senders seen.
    pub sources: Vec<Source>,
    /// Datagrams from senders beyond the first 32.
    pub other_source_datagrams: u64,
    /// Changes of sender.
    pub sender_changes: SenderChanges,
    /// Inter-arrival gaps.
    pub gaps: GapReport,
    /// ETSI TR 101 290 checks.
    pub tr101290: Tr101290,
    /// Per-PID statistics.
    pub pids: Vec<PidStats>,
    /// PMT PIDs of the last PAT.
    pub pmt_pids: Vec<u16>,
    /// Pacing figures.
    pub pacing: PacingReport,
    /// RTP figures (`rtp://` only).
    pub rtp: Option<RtpReport>,
    /// Things a user should know about the measurement.
    pub warnings: Vec<String>,
}

/// The analyzer: feed it every datagram with [`Analyzer::push`].
pub struct Analyzer {
    framing: Framing,
    first_rx: Option<u64>,
    last_rx: Option<u64>,
    datagrams: u64,
    ts_bytes: u64,
    ts_packets: u64,
    sizes: BTreeMap<usize, u64>,
    non_1316: u64,
    partial: u64,
    senders: Senders,
    gaps: Histogram<u64>,
    gap_max_ns: u64,
    gap_max_at: Option<u64>,
    gap_over: [u64; 3],
    gap_negative: u64,
    checks: TsChecks,
    timeline: Timeline,
    mdi: Mdi,
    rtp: Option<RtpMonitor>,
    looks_like_rtp: u64,
    looks_like_raw: u64,
    /// A sender change (its generation) waiting for the PCR interval that spans it.
    estimate_pending: Option<u32>,
}

impl Analyzer {
    /// An analyzer for datagrams framed as `framing`.
    pub fn new(framing: Framing) -> Analyzer {
        Analyzer {
            framing,
            first_rx: None,
            last_rx: None,
            datagrams: 0,
            ts_bytes: 0,
            ts_packets: 0,
            sizes: BTreeMap::new(),
            non_1316: 0,
            partial: 0,
            senders: Senders::default(),
            // 1 us .. 1 h with 3 significant digits: fixed size, ~100 KB.
            gaps: Histogram::new_with_max(GAP_HIST_MAX_US, 3)
                .expect("constant histogram bounds are valid"),
            gap_max_ns: 0,
            gap_max_at: None,
            gap_over: [0; 3],
            gap_negative: 0,
            checks: TsChecks::default(),
            timeline: Timeline::default(),
            mdi: Mdi::default(),
            rtp: (framing == Framing::Rtp).then(RtpMonitor::default),
            looks_like_rtp: 0,
            looks_like_raw: 0,
            estimate_pending: None,
        }
    }

    /// Datagrams pushed so far.
    pub fn datagrams(&self) -> u64 {
        self.datagrams
    }

    fn at(&self, rx_ns: u64) -> At {
        let first = self.first_rx.unwrap_or(rx_ns);
        At {
            rx_ns,
            t_s: rx_ns.saturating_sub(first) as f64 / 1e9,
            datagram: self.datagrams,
        }
    }

    /// Analyzes one datagram received from `src` at `rx_ns` (ns on the receive clock).
    pub fn push(&mut self, datagram: &[u8], src: SocketAddr, rx_ns: u64) {
        let start = *self.first_rx.get_or_insert(rx_ns);
        let at = self.at(rx_ns);
        self.record_gap(rx_ns);

        // RTP header first: a sender change needs the sequence state before this packet.
        let (payload, rtp_seq_missing) = match (self.framing, self.rtp.as_mut()) {
            (Framing::Rtp, Some(mon)) => match rtp::parse(datagram) {
                Ok((h, p)) => {
                    let missing = mon.seq_missing_before(&h);
                    mon.packet(&h, at);
                    (p, missing)
                }
                Err(e) => {
                    mon.parse_error(e, at);
                    if datagram.first() == Some(&SYNC_BYTE) {
                        self.looks_like_raw += 1;
                    }
                    self.senders.datagram(src, at);
                    self.finish(rx_ns);
                    return;
                }
            },
            _ => {
                if datagram.first() != Some(&SYNC_BYTE)
                    && datagram.len() > 12
                    && datagram[0] >> 6 == 2
                    && datagram[12] == SYNC_BYTE
                {
                    self.looks_like_rtp += 1;
                }
                (datagram, None)
            }
        };
        let changed = self.senders.datagram(src, at).is_some();
        let generation = self.senders.generation();
        if changed {
            if let Some(c) = self.senders.last_change_mut() {
                c.rtp_seq_missing = rtp_seq_missing;
            }
            self.estimate_pending = Some(generation);
        }

        *self.sizes.entry(payload.len()).or_default() += 1;
        if payload.len() != DATAGRAM_PAYLOAD {
            self.non_1316 += 1;
        }
        if payload.len() % PACKET_SIZE != 0 {
            self.partial += 1;
        }
        self.ts_bytes += payload.len() as u64;

        self.timeline.datagram(rx_ns, self.ts_packets);
        let mut lost_here = 0u64;
        for chunk in payload.chunks_exact(PACKET_SIZE) {
            let pos = self.ts_packets;
            self.ts_packets += 1;
            let Some(s) = self.checks.packet(chunk, at, generation) else {
                continue;
            };
            if let Some(lost) = s.cc_error_lost {
                lost_here += lost as u64;
                if s.first_since_generation && generation > 0 {
                    if let Some(c) = self.senders.last_change_mut() {
                        c.cc_errors += 1;
                        c.cc_lost_packets += lost as u64;
                        if !c.cc_error_pids.contains(&s.pid.value()) {
                            c.cc_error_pids.push(s.pid.value());
                        }
                    }
                }
            }
            if let Some(pcr) = s.pcr {
                let on_timeline =
                    self.timeline
                        .pcr(s.pid.value(), pos, pcr, s.discontinuity, rx_ns);
                if on_timeline {
                    self.estimate_missing_at_change();
                }
            }
        }
        self.mdi.push(rx_ns, payload.len(), lost_here);
        self.checks.check_psi_intervals(at, start);
        self.finish(rx_ns);
    }

    /// The first timeline PCR after a sender change closes the interval spanning it.
    fn estimate_missing_at_change(&mut self) {
        let Some(g) = self.estimate_pending.take() else {
            return;
        };
        if g != self.senders.generation() {
            return;
        }
        let est = self.timeline.last_interval_missing();
        if let Some(c) = self.senders.last_change_mut() {
            c.ts_packets_missing_est = est.map(|m| m.round() as i64);
            c.datagrams_missing_est = est.map(|m| (m / 7.0).round() as i64);
        }
    }

    fn finish(&mut self, rx_ns: u64) {
        self.last_rx = Some(rx_ns);
        self.datagrams += 1;
    }

    fn record_gap(&mut self, rx_ns: u64) {
        let Some(prev) = self.last_rx else {
            return;
        };
        let gap = if rx_ns < prev {
            self.gap_negative += 1;
            0
        } else {
            rx_ns - prev
        };
        self.gaps.saturating_record(gap / 1000);
        if gap > self.gap_max_ns || self.gap_max_at.is_none() {
            self.gap_max_ns = gap;
            self.gap_max_at = Some(rx_ns);
        }
        for (i, limit) in [5_000_000u64, 10_000_000, 20_000_000].iter().enumerate() {
            if gap >= *limit {
                self.gap_over[i] += 1;
            }
        }
    }

    /// The report so far (cheap enough to call at the end of a run; it sorts the stored
    /// pacing samples).
    pub fn report(&self) -> Report {
        let first = self.first_rx.unwrap_or(0);
        let q = |p: f64| self.gaps.value_at_quantile(p) as f64;
        let n = self.gaps.len();
        let gaps = GapReport {
            intervals: n,
            p50_us: if n > 0 { q(0.5) } else { 0.0 },
            p90_us: if n > 0 { q(0.9) } else { 0.0 },
            p99_us: if n > 0 { q(0.99) } else { 0.0 },
            p999_us: if n > 0 { q(0.999) } else { 0.0 },
            max_us: self.gap_max_ns as f64 / 1000.0,
            max_at_s: self
                .gap_max_at
                .map(|t| t.saturating_sub(first) as f64 / 1e9),
            over_5ms: self.gap_over[0],
            over_10ms: self.gap_over[1],
            over_20ms: self.gap_over[2],
            negative: self.gap_negative,
        };
        let mut warnings = Vec::new();
        if self.datagrams == 0 {
            warnings.push("no datagrams received".into());
        }
        if self.looks_like_rtp > 0 {
            warnings.push(format!(
                "{} datagrams look like RTP carrying TS; receive with rtp:// instead of udp://",
                self.looks_like_rtp
            ));
        }
        if self.looks_like_raw > 0 {
            warnings.push(format!(
                "{} datagrams start with a TS sync byte, not an RTP header; receive with udp://",
                self.looks_like_raw
            ));
        }
        let timeline = self.timeline.report();
        if self.ts_packets > 0 && timeline.pcr_pid.is_none() {
            warnings.push("no PCR seen: pacing figures are not available".into());
        }
        Report {
            schema: SCHEMA,
            framing: self.framing,
            run: None,
            first_rx_ns: self.first_rx,
            last_rx_ns: self.last_rx,
            duration_s: match (self.first_rx, self.last_rx) {
                (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e9,
                _ => 0.0,
            },
            datagrams: self.datagrams,
            ts_bytes: self.ts_bytes,
            ts_packets: self.ts_packets,
            datagram_sizes: SizeReport {
                non_1316: self.non_1316,
                partial_packets: self.partial,
                sizes: self.sizes.iter().map(|(&k, &v)| (k, v)).collect(),
            },
            sources: self.senders.sources(),
            other_source_datagrams: self.senders.other_datagrams,
            sender_changes: self.senders.changes.clone(),
            gaps,
            tr101290: self.checks.report.clone(),
            pids: self.checks.pid_stats(),
            pmt_pids: self.checks.pmt_pids(),
            pacing: PacingReport {
                timeline,
                mdi: self.mdi.report(),
            },
            rtp: self.rtp.as_ref().map(RtpMonitor::report),
            warnings,
        }
    }
}

#[cfg(test)]
mod tests;
