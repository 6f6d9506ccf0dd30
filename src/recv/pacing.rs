//! Pacing figures of a received stream, measured against the stream's own PCR timeline (the
//! figures of README.md, "Measured"):
//!
//! - **departure error**: for every datagram, its receive time minus the time of its first
//!   TS packet on the PCR timeline (ISO/IEC 13818-1 §2.4.2.2: the byte arrival schedule
//!   interpolated linearly between two PCRs of the PCR PID, here by packet position), with
//!   the median offset removed. This is the "target transmission time of the first byte"
//!   of RFC 2250 §2.
//! - **PCR arrival jitter**: receive time of each PCR-bearing packet minus its PCR, median
//!   removed (what an IP probe calls PCR overall jitter).
//! - **media delivery index** (RFC 4445): delay factor and media loss rate per 1 s interval.
//!
//! The timeline unwraps PCR across 2^33 x 300 and starts a new *segment* at a PCR
//! discontinuity (flagged, or a step outside 0..100 ms, or no packets between two PCRs);
//! each segment has its own median removed. Datagrams before the first PCR of a segment,
//! or after the last PCR of one, have no interpolation interval and are counted as
//! unmeasured.
//!
//! Memory: one `i64` per measured datagram and per PCR (about 11 MB per hour of a
//! 2.5 Mb/s stream, 40 MB at 14 Mb/s); everything else is bounded.

use std::collections::VecDeque;

use serde::Serialize;

use super::stats::{deviations_from_segment_medians, percentiles_ns, Percentiles};
use crate::ts::packet::PACKET_SIZE;
use crate::ts::pcr::{Pcr, HZ};

/// A step between PCRs above this starts a new segment (2.3b threshold, 100 ms).
pub const MAX_PCR_STEP_TICKS: u64 = HZ / 10;
/// Datagrams waiting for the next PCR beyond this are dropped as unmeasured, so a
/// stream without PCR cannot grow memory.
pub const MAX_PENDING: usize = 1 << 16;

#[derive(Debug, Clone, Copy)]
struct PcrPoint {
    pos: u64,
    /// Unwrapped ticks since the first PCR of the segment.
    ticks: u64,
    raw: Pcr,
}

/// Departure error and PCR jitter over the PCR timeline of one PID.
#[derive(Debug, Default)]
pub struct Timeline {
    pcr_pid: Option<u16>,
    last: Option<PcrPoint>,
    seg_rx0: u64,
    pending: VecDeque<(u64, u64)>,
    errors: Vec<i64>,
    error_starts: Vec<usize>,
    jitter: Vec<i64>,
    jitter_starts: Vec<usize>,
    unmeasured: u64,
    segments: u64,
    rate_packets: u64,
    rate_ticks: u64,
    last_missing: Option<f64>,
}

/// Largest unflagged PCR step over which missing packets are still estimated.
pub const MAX_ESTIMATE_STEP_TICKS: u64 = 10 * HZ;

/// The `pacing.departure_error` and `pacing.pcr_jitter` JSON objects and the bitrate.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TimelineReport {
    /// PID whose PCRs define the timeline (the first PID seen carrying a PCR).
    pub pcr_pid: Option<u16>,
    /// Segments of continuous PCR (1 + discontinuities).
    pub segments: u64,
    /// `|error - median|` over all measured datagrams.
    pub departure_error: Percentiles,
    /// Datagrams without a PCR interval to measure against.
    pub unmeasured_datagrams: u64,
    /// `|jitter - median|` over PCR-bearing packets of the timeline PID.
    pub pcr_jitter: Percentiles,
    /// Transport bitrate from packets between PCRs (bit/s), when known.
    pub bitrate_bps: Option<f64>,
}

impl Timeline {
    /// A datagram arrived whose first TS packet has stream position `first_pos` (count of
    /// TS packets received before it). Call before feeding its PCRs.
    pub fn datagram(&mut self, rx_ns: u64, first_pos: u64) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
            self.unmeasured += 1;
        }
        self.pending.push_back((rx_ns, first_pos));
    }

    /// Packets missing in the PCR interval closed by the last timeline PCR: the packets
    /// the stream's rate so far puts between the two PCRs minus those received (negative
    /// when packets were repeated). Meaningful for CBR streams; `None` without a rate, at
    /// a flagged discontinuity or over a step above 10 s.
    pub fn last_interval_missing(&self) -> Option<f64> {
        self.last_missing
    }

    /// A PCR on `pid` at stream position `pos`, received at `rx_ns`. Returns whether it is
    /// on the timeline PID (the first PID seen with a PCR).
    pub fn pcr(&mut self, pid: u16, pos: u64, pcr: Pcr, discontinuity: bool, rx_ns: u64) -> bool {
        if *self.pcr_pid.get_or_insert(pid) != pid {
            return false;
        }
        self.last_missing = self.last.and_then(|l| {
            let step = pcr.ticks_since(l.raw);
            if discontinuity || self.rate_ticks == 0 || step > MAX_ESTIMATE_STEP_TICKS {
                return None;
            }
            let expected = step as f64 * self.rate_packets as f64 / self.rate_ticks as f64;
            Some(expected - pos.saturating_sub(l.pos) as f64)
        });
        let continued = self.last.and_then(|l| {
            let step = pcr.ticks_since(l.raw);
            (!discontinuity && step <= MAX_PCR_STEP_TICKS && pos > l.pos).then_some((l, step))
        });
        let point = match continued {
            Some((l, step)) => {
                let p = PcrPoint {
                    pos,
                    ticks: l.ticks + step,
                    raw: pcr,
                };
                self.rate_packets += pos - l.pos;
                self.rate_ticks += step;
                while let Some(&(rx, q)) = self.pending.front() {
                    if q >= pos {
                        break;
                    }
                    self.pending.pop_front();
                    let t_ns = interpolate_ns(&l, &p, q);
                    self.errors.push(self.rel(rx) - t_ns);
                }
                p
            }
            None => {
                // New segment: what waited before this PCR cannot be placed.
                while self.pending.front().is_some_and(|&(_, q)| q < pos) {
                    self.pending.pop_front();
                    self.unmeasured += 1;
                }
                self.segments += 1;
                self.error_starts.push(self.errors.len());
                self.jitter_starts.push(self.jitter.len());
                self.seg_rx0 = rx_ns;
                PcrPoint {
                    pos,
                    ticks: 0,
                    raw: pcr,
                }
            }
        };
        let t_ns = ticks_ns(point.ticks);
        while let Some(&(rx, q)) = self.pending.front() {
            if q != pos {
                break;
            }
            self.pending.pop_front();
            self.errors.push(self.rel(rx) - t_ns);
        }
        self.jitter.push(self.rel(rx_ns) - t_ns);
        self.last = Some(point);
        true
    }

    fn rel(&self, rx_ns: u64) -> i64 {
        (rx_ns as i128 - self.seg_rx0 as i128) as i64
    }

    /// The figures so far (datagrams still waiting for a PCR are counted as unmeasured).
    pub fn report(&self) -> TimelineReport {
        let dev = deviations_from_segment_medians(&self.errors, &self.error_starts);
        let jit = deviations_from_segment_medians(&self.jitter, &self.jitter_starts);
        TimelineReport {
            pcr_pid: self.pcr_pid,
            segments: self.segments,
            departure_error: percentiles_ns(dev),
            unmeasured_datagrams: self.unmeasured + self.pending.len() as u64,
            pcr_jitter: percentiles_ns(jit),
            bitrate_bps: (self.rate_ticks > 0).then(|| {
                (self.rate_packets * PACKET_SIZE as u64 * 8) as f64 * HZ as f64
                    / self.rate_ticks as f64
            }),
        }
    }

    /// Raw (not median-removed) departure errors in ns, for tests and tools.
    pub fn raw_errors(&self) -> &[i64] {
        &self.errors
    }
}

fn ticks_ns(ticks: u64) -> i64 {
    (ticks as i128 * 1000 / 27) as i64
}

/// Time (ns since the segment's first PCR) of stream position `q`, `a.pos <= q < b.pos`.
fn interpolate_ns(a: &PcrPoint, b: &PcrPoint, q: u64) -> i64 {
    let dt = (b.ticks - a.ticks) as i128;
    let dp = (b.pos - a.pos) as i128;
    let ticks_x_dp = a.ticks as i128 * dp + dt * (q - a.pos) as i128;
    (ticks_x_dp * 1000 / (dp * 27)) as i64
}

/// RFC 4445 media delivery index over fixed 1 s intervals of receive time.
///
/// Datagrams are grouped into 1 s buckets of receive time. The virtual buffer of a bucket
/// starts empty at its first arrival and drains at the bucket's own mean rate: its bytes
/// divided by the time from its first arrival to the first arrival of the next bucket.
/// So an error in a nominal rate cannot inflate DF, while a stall followed by a burst
/// shows up in full (a stall before the next bucket counts in this one). DF of an
/// ideally paced stream is exactly one datagram's duration. The last, incomplete bucket
/// is not reported.
#[derive(Debug, Default)]
pub struct Mdi {
    start: Option<u64>,
    arrivals: Vec<(u64, u32)>,
    lost: u64,
    df_ms: Vec<f64>,
    mlr: Vec<u64>,
    lost_total: u64,
}

/// Interval length of the media delivery index.
pub const MDI_INTERVAL_NS: u64 = 1_000_000_000;

/// The `pacing.mdi` JSON object.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MdiReport {
    /// Complete 1 s intervals measured.
    pub intervals: u64,
    /// Largest delay factor (ms).
    pub df_max_ms: Option<f64>,
    /// Mean delay factor (ms).
    pub df_mean_ms: Option<f64>,
    /// Largest media loss rate: TS packets lost (continuity counter) in one interval.
    pub mlr_max: u64,
    /// TS packets lost over the run (continuity counter, lower bound).
    pub lost_packets: u64,
}

impl Mdi {
    /// One datagram of `bytes` TS bytes at `rx_ns`, showing `lost_packets` CC losses.
    pub fn push(&mut self, rx_ns: u64, bytes: usize, lost_packets: u64) {
        let start = *self.start.get_or_insert(rx_ns);
        if rx_ns >= start.saturating_add(MDI_INTERVAL_NS) {
            self.close(rx_ns);
            let skip = (rx_ns - start) / MDI_INTERVAL_NS;
            self.start = Some(start + skip * MDI_INTERVAL_NS);
        }
        self.arrivals.push((rx_ns, bytes as u32));
        self.lost += lost_packets;
        self.lost_total += lost_packets;
    }

    fn close(&mut self, end_ns: u64) {
        let total: u64 = self.arrivals.iter().map(|&(_, b)| b as u64).sum();
        let start = self.arrivals.first().map_or(end_ns, |a| a.0);
        if total > 0 && end_ns > start {
            let rate = total as f64 / (end_ns - start) as f64; // bytes per ns
            let (mut vb_min, mut vb_max, mut received) = (0f64, 0f64, 0f64);
            for &(t, b) in &self.arrivals {
                // A receive time before the first one (clock step) counts as the first.
                let pre = received - rate * t.saturating_sub(start) as f64;
                received += b as f64;
                vb_min = vb_min.min(pre);
                vb_max = vb_max.max(pre + b as f64);
            }
            self.df_ms.push((vb_max - vb_min) / rate / 1e6);
            self.mlr.push(self.lost);
        }
        self.arrivals.clear();
        self.lost = 0;
    }

    /// Figures over the complete intervals so far.
    pub fn report(&self) -> MdiReport {
        let n = self.df_ms.len();
        MdiReport {
            intervals: n as u64,
            df_max_ms: self.df_ms.iter().copied().reduce(f64::max),
            df_mean_ms: (n > 0).then(|| self.df_ms.iter().sum::<f64>() / n as f64),
            mlr_max: self.mlr.iter().copied().max().unwrap_or(0),
            lost_packets: self.lost_total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::pcr::{ns_to_ticks, PCR_MODULUS};

    /// 7-packet datagrams of a CBR stream at `rate` bit/s, PCR on the first packet of
    /// every `pcr_every`-th datagram, starting at PCR `pcr0`; `jitter(i)` ns is added to
    /// datagram i's receive time.
    fn feed(
        tl: &mut Timeline,
        datagrams: u64,
        rate: u64,
        pcr_every: u64,
        pcr0: u64,
        jitter: impl Fn(u64) -> i64,
    ) {
        let ns_per_packet = 188.0 * 8.0 * 1e9 / rate as f64;
        let base = 1_700_000_000_000_000_000u64;
        for i in 0..datagrams {
            let pos = 7 * i;
            let t = (pos as f64 * ns_per_packet) as u64;
            let rx = (base + t) as i64 + jitter(i);
            tl.datagram(rx as u64, pos);
            if i % pcr_every == 0 {
                let pcr = Pcr::from_ticks(pcr0 + ns_to_ticks(t));
                tl.pcr(256, pos, pcr, false, rx as u64);
            }
        }
    }

    #[test]
    fn perfectly_paced_stream_has_no_error() {
        let mut tl = Timeline::default();
        feed(&mut tl, 2000, 2_500_000, 5, 0, |_| 0);
        let r = tl.report();
        assert_eq!(r.pcr_pid, Some(256));
        assert_eq!(r.segments, 1);
        // Everything after the last PCR waits; nothing before the first.
        assert_eq!(r.departure_error.samples, 1996);
        assert!(r.departure_error.max_us < 0.1, "{r:?}");
        assert!(r.pcr_jitter.max_us < 0.1);
        let bps = r.bitrate_bps.unwrap();
        assert!((bps - 2_500_000.0).abs() < 10.0, "{bps}");
    }

    #[test]
    fn known_jitter_gives_its_amplitude() {
        let mut tl = Timeline::default();
        // Of every three datagrams: on time (with the PCR), +100 us, -100 us.
        feed(&mut tl, 2000, 2_500_000, 3, 0, |i| match i % 3 {
            0 => 0,
            1 => 100_000,
            _ => -100_000,
        });
        let r = tl.report();
        // 667 on time, 1332 off by 100 us: median 0, p50 of |deviation| = 100 us.
        assert_eq!(r.departure_error.samples, 1999);
        assert!((r.departure_error.p50_us - 100.0).abs() < 0.1, "{r:?}");
        assert!((r.departure_error.max_us - 100.0).abs() < 0.1);
        // PCR datagrams are all on time: no PCR jitter.
        assert!(r.pcr_jitter.max_us < 0.1);
    }

    #[test]
    fn one_in_ten_late_shows_at_p99_not_p90() {
        let mut tl = Timeline::default();
        feed(&mut tl, 10_001, 2_500_000, 10, 0, |i| {
            if i % 10 == 5 {
                500_000
            } else {
                0
            }
        });
        let r = tl.report();
        assert!(r.departure_error.p90_us < 0.1, "{r:?}");
        assert!((r.departure_error.p99_us - 500.0).abs() < 0.1);
    }

    #[test]
    fn pcr_wrap_is_unwrapped() {
        let mut tl = Timeline::default();
        // Starts 0.5 s before the PCR wraps; 2 s of stream.
        feed(&mut tl, 900, 2_500_000, 5, PCR_MODULUS - HZ / 2, |_| 0);
        let r = tl.report();
        assert_eq!(r.segments, 1);
        assert!(r.departure_error.max_us < 0.1, "{r:?}");
    }

    #[test]
    fn discontinuity_starts_a_segment_with_its_own_median() {
        let mut tl = Timeline::default();
        feed(&mut tl, 500, 2_500_000, 5, 0, |_| 0);
        // Same receive clock continues, PCR jumps by 10 s, timing otherwise perfect.
        let ns_per_packet = 188.0 * 8.0 * 1e9 / 2_500_000.0;
        let base = 1_700_000_000_000_000_000u64;
        for i in 500..1000u64 {
            let pos = 7 * i;
            let t = (pos as f64 * ns_per_packet) as u64;
            tl.datagram(base + t, pos);
            if i % 5 == 0 {
                tl.pcr(
                    256,
                    pos,
                    Pcr::from_ticks(10 * HZ + ns_to_ticks(t)),
                    false,
                    base + t,
                );
            }
        }
        let r = tl.report();
        assert_eq!(r.segments, 2);
        assert!(r.departure_error.max_us < 0.1, "{r:?}");
        // The 4 datagrams between the last PCR of segment 1 and the jump are unmeasured.
        assert_eq!(r.unmeasured_datagrams, 4 + 4);
    }

    #[test]
    fn other_pcr_pids_are_ignored() {
        let mut tl = Timeline::default();
        tl.datagram(0, 0);
        tl.pcr(256, 0, Pcr::from_ticks(0), false, 0);
        tl.pcr(300, 3, Pcr::from_ticks(99 * HZ), false, 0);
        assert_eq!(tl.report().pcr_pid, Some(256));
        assert_eq!(tl.report().segments, 1);
    }

    #[test]
    fn mdi_of_ideal_stream_is_one_datagram() {
        let mut m = Mdi::default();
        // 1316 bytes every 4.2112 ms = 2.5 Mb/s, 3 s.
        let gap = 4_211_200u64;
        for i in 0..713u64 {
            m.push(i * gap, 1316, 0);
        }
        let r = m.report();
        assert_eq!(r.intervals, 2);
        // One datagram at 2.5 Mb/s is 4.2112 ms.
        let df = r.df_max_ms.unwrap();
        assert!((df - 4.2112).abs() < 0.001, "{df}");
    }

    #[test]
    fn mdi_burst_raises_df_and_counts_loss() {
        let mut m = Mdi::default();
        let gap = 4_211_200u64;
        for i in 0..713u64 {
            // Datagrams 100..150 held back and sent in a burst at 150.
            let t = if (100..150).contains(&i) {
                150 * gap
            } else {
                i * gap
            };
            m.push(t, 1316, u64::from(i == 200) * 7);
        }
        let r = m.report();
        assert!(r.df_max_ms.unwrap() > 200.0, "{r:?}");
        assert_eq!(r.mlr_max, 7);
        assert_eq!(r.lost_packets, 7);
    }
}
