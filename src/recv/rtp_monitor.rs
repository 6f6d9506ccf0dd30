//! Per-run RTP accounting: sequence loss, duplicates and reordering (RFC 3550 A.1/A.3)
//! per SSRC, SSRC changes and the payload type check (RFC 3551: 33 = MP2T).

use serde::Serialize;

use super::rtp::{RtpError, RtpHeader, SeqEvent, SeqTracker, PT_MP2T};
use super::stats::{At, Check};

/// SSRC changes kept in the list.
pub const MAX_SSRC_CHANGES: usize = 100;

/// One change of SSRC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SsrcChange {
    /// Seconds since the first datagram.
    pub t_s: f64,
    /// Datagram index.
    pub datagram: u64,
    /// Previous SSRC.
    pub from: u32,
    /// New SSRC.
    pub to: u32,
}

/// The JSON `rtp` object (present for `rtp://`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RtpReport {
    /// Valid RTP packets.
    pub packets: u64,
    /// Datagrams that are not valid RTP (first occurrences with the reason).
    pub parse_errors: Check,
    /// Packets expected from the sequence numbers (A.3), summed over SSRCs and resyncs.
    pub expected: u64,
    /// Distinct packets received.
    pub received: u64,
    /// `expected - received` (A.3 cumulative number of packets lost).
    pub lost: u64,
    /// Packets received more than once.
    pub duplicates: u64,
    /// Late packets that filled a hole.
    pub reordered: u64,
    /// Packets discarded as a jump beyond MAX_DROPOUT / MAX_MISORDER.
    pub out_of_window: u64,
    /// Restarts of the sequence after a confirmed jump.
    pub resyncs: u64,
    /// Current SSRC.
    pub ssrc: Option<u32>,
    /// Number of SSRC changes.
    pub ssrc_change_count: u64,
    /// The first SSRC changes.
    pub ssrc_changes: Vec<SsrcChange>,
    /// Packets whose payload type is not 33 (MP2T).
    pub wrong_payload_type: Check,
    /// Payload types seen with their counts, as `[pt, count]`.
    pub payload_types: Vec<(u8, u64)>,
    /// RFC 3550 §6.4.1 interarrival jitter at the end of the run (us, 90 kHz clock of
    /// MP2T assumed), and its largest value during the run.
    pub interarrival_jitter_us: f64,
    /// See `interarrival_jitter_us`.
    pub interarrival_jitter_max_us: f64,
}

/// RTP state of a run.
#[derive(Debug, Default)]
pub struct RtpMonitor {
    seq: SeqTracker,
    done: SeqTracker,
    report: RtpReport,
    pt_counts: Vec<u64>,
    /// Previous relative transit time (90 kHz units) and the jitter estimate (units x 16).
    transit: Option<i64>,
    jitter16: i64,
    jitter16_max: i64,
}

impl RtpMonitor {
    /// Sequence numbers skipped if `h` arrived now from the same SSRC (negative: behind).
    pub fn seq_missing_before(&self, h: &RtpHeader) -> Option<i32> {
        if self.report.ssrc != Some(h.ssrc) {
            return None;
        }
        let max = self.seq.max_seq()?;
        Some(h.sequence.wrapping_sub(max).wrapping_sub(1) as i16 as i32)
    }

    /// Accounts for one valid packet.
    pub fn packet(&mut self, h: &RtpHeader, at: At) -> SeqEvent {
        self.report.packets += 1;
        if self.pt_counts.is_empty() {
            self.pt_counts = vec![0; 128];
        }
        self.pt_counts[h.payload_type as usize & 0x7F] += 1;
        if h.payload_type != PT_MP2T {
            let pt = h.payload_type;
            self.report.wrong_payload_type.hit(at, None, || {
                format!("payload type {pt}, expected 33 (MP2T)")
            });
        }
        match self.report.ssrc {
            Some(old) if old != h.ssrc => {
                self.report.ssrc_change_count += 1;
                if self.report.ssrc_changes.len() < MAX_SSRC_CHANGES {
                    self.report.ssrc_changes.push(SsrcChange {
                        t_s: at.t_s,
                        datagram: at.datagram,
                        from: old,
                        to: h.ssrc,
                    });
                }
                self.retire();
                self.transit = None;
            }
            _ => {}
        }
        self.report.ssrc = Some(h.ssrc);
        self.jitter(h.timestamp, at.rx_ns);
        self.seq.push(h.sequence)
    }

    /// RFC 3550 A.8: `D = (Rj - Ri) - (Sj - Si)`, `J += (|D| - J) / 16`, in timestamp
    /// units (kept x16 as in A.8 to avoid rounding loss).
    fn jitter(&mut self, timestamp: u32, rx_ns: u64) {
        let arrival = ((rx_ns as u128 * 90_000) / 1_000_000_000) as u32;
        let transit = arrival.wrapping_sub(timestamp) as i32 as i64;
        if let Some(prev) = self.transit {
            let d = (transit - prev).abs();
            self.jitter16 += d - ((self.jitter16 + 8) >> 4);
            self.jitter16_max = self.jitter16_max.max(self.jitter16);
        }
        self.transit = Some(transit);
    }

    /// Counts a datagram that is not RTP.
    pub fn parse_error(&mut self, e: RtpError, at: At) {
        self.report.parse_errors.hit(at, None, || e.to_string());
    }

    /// Folds the current source's counters into the totals.
    fn retire(&mut self) {
        let s = std::mem::take(&mut self.seq);
        self.done.duplicates += s.duplicates;
        self.done.reordered += s.reordered;
        self.done.resyncs += s.resyncs;
        self.done.out_of_window += s.out_of_window;
        self.report.expected += s.expected();
        self.report.received += s.received();
    }

    /// The figures so far.
    pub fn report(&self) -> RtpReport {
        let mut r = self.report.clone();
        r.expected += self.seq.expected();
        r.received += self.seq.received();
        r.lost = r.expected.saturating_sub(r.received);
        r.duplicates = self.done.duplicates + self.seq.duplicates;
        r.reordered = self.done.reordered + self.seq.reordered;
        r.resyncs = self.done.resyncs + self.seq.resyncs;
        r.out_of_window = self.done.out_of_window + self.seq.out_of_window;
        let us = |j16: i64| (j16 >> 4) as f64 * 1e6 / 90_000.0;
        r.interarrival_jitter_us = us(self.jitter16);
        r.interarrival_jitter_max_us = us(self.jitter16_max);
        r.payload_types = self
            .pt_counts
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(pt, &n)| (pt as u8, n))
            .collect();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(i: u64) -> At {
        At {
            rx_ns: i,
            t_s: 0.0,
            datagram: i,
        }
    }

    #[test]
    fn ssrc_change_restarts_accounting() {
        let mut m = RtpMonitor::default();
        for (i, s) in [1u16, 2, 4].iter().enumerate() {
            m.packet(&RtpHeader::mp2t(*s, 0, 0xAA), at(i as u64));
        }
        assert_eq!(m.seq_missing_before(&RtpHeader::mp2t(7, 0, 0xAA)), Some(2));
        assert_eq!(m.seq_missing_before(&RtpHeader::mp2t(3, 0, 0xAA)), Some(-2));
        assert_eq!(m.seq_missing_before(&RtpHeader::mp2t(5, 0, 0xBB)), None);
        for (i, s) in [900u16, 901].iter().enumerate() {
            m.packet(&RtpHeader::mp2t(*s, 0, 0xBB), at(10 + i as u64));
        }
        let mut bad = RtpHeader::mp2t(902, 0, 0xBB);
        bad.payload_type = 96;
        m.packet(&bad, at(20));
        let r = m.report();
        assert_eq!(r.ssrc_change_count, 1);
        assert_eq!(r.ssrc_changes[0].from, 0xAA);
        assert_eq!(r.ssrc_changes[0].to, 0xBB);
        assert_eq!(r.expected, 4 + 3);
        assert_eq!(r.lost, 1);
        assert_eq!(r.wrong_payload_type.count, 1);
        assert_eq!(r.payload_types, vec![(33, 5), (96, 1)]);
    }

    #[test]
    fn interarrival_jitter_follows_a8() {
        let mut m = RtpMonitor::default();
        // Timestamps advance 900 (10 ms); arrivals alternate 9 ms and 11 ms apart, so
        // |D| = 90 units (1 ms) each time: J converges to 90 units = 1000 us.
        let mut rx = 1_000_000_000u64;
        for i in 0..400u32 {
            m.packet(&RtpHeader::mp2t(i as u16, i * 900, 1), at(rx));
            rx += if i % 2 == 0 { 9_000_000 } else { 11_000_000 };
        }
        let r = m.report();
        assert!((r.interarrival_jitter_us - 1000.0).abs() < 20.0, "{r:?}");
        assert!(r.interarrival_jitter_max_us >= r.interarrival_jitter_us);
    }
}
