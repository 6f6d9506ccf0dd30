//! RTP for MPEG-TS as a receiver sees it: the fixed header (RFC 3550 §5.1), the payload
//! after CSRCs, header extension (§5.3.1) and padding, and sequence-number accounting in
//! the style of RFC 3550 Appendix A.1 (loss, duplicates, reordering, resynchronisation).

/// A.1 `MAX_DROPOUT`: larger forward jumps are treated as a restart of the sequence.
pub const MAX_DROPOUT: u16 = 3000;
/// A.1 `MAX_MISORDER`: how far behind the highest sequence a packet may arrive late.
pub const MAX_MISORDER: u16 = 100;

/// The header codec is the sender's ([`crate::stream::rtp`]): one parser for both sides.
pub use crate::stream::rtp::{
    RtpError, RtpHeader, HEADER_LEN as FIXED_HEADER, PAYLOAD_TYPE_MP2T as PT_MP2T, VERSION,
};

/// Parses an RTP packet; returns the header and the payload with CSRCs, extension and
/// padding removed (RFC 3550 §5.1, §5.3.1).
pub fn parse(buf: &[u8]) -> Result<(RtpHeader, &[u8]), RtpError> {
    RtpHeader::parse(buf)
}

/// What one sequence number did to the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqEvent {
    /// First packet of a source (or after a resynchronisation).
    First,
    /// In order; `missing` sequence numbers were skipped before it.
    InOrder {
        /// Packets skipped (0 for the next expected one).
        missing: u16,
    },
    /// Already received (within the last 1024 sequence numbers).
    Duplicate,
    /// Arrived late but not received before: fills a hole counted as lost.
    Reordered,
    /// A jump larger than `MAX_DROPOUT` (or further back than `MAX_MISORDER`): discarded
    /// unless the next packet confirms it (A.1 `bad_seq`).
    OutOfWindow,
    /// Two consecutive packets confirmed a jump: the sequence restarted here.
    Resync,
}

/// Window of received extended sequence numbers, for duplicate detection.
const WINDOW: u64 = 1024;

/// Sequence-number statistics of one source (RFC 3550 Appendix A.1 and A.3).
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    started: bool,
    /// Highest extended sequence number (cycles * 65536 + seq).
    max_ext: u64,
    base_ext: u64,
    bad_seq: Option<u16>,
    seen: Vec<u64>,
    /// Packets counted as received (no duplicates, no discarded jumps).
    received: u64,
    /// Expected packets of finished runs (before a resync).
    expected_before: u64,
    /// Duplicates.
    pub duplicates: u64,
    /// Late packets that filled a hole.
    pub reordered: u64,
    /// Resynchronisations after a large jump.
    pub resyncs: u64,
    /// Packets discarded as out of window.
    pub out_of_window: u64,
}

impl SeqTracker {
    /// The highest sequence number seen, if any.
    pub fn max_seq(&self) -> Option<u16> {
        self.started.then_some(self.max_ext as u16)
    }

    /// Packets expected (A.3: `extended_max - base_seq + 1`, summed over runs).
    pub fn expected(&self) -> u64 {
        if !self.started {
            return self.expected_before;
        }
        self.expected_before + (self.max_ext - self.base_ext + 1)
    }

    /// Distinct packets received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Cumulative packets lost (A.3: expected - received); never negative.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    fn bit(&mut self, ext: u64) -> (usize, u64) {
        if self.seen.is_empty() {
            self.seen = vec![0; (WINDOW / 64) as usize];
        }
        let i = ext % WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    fn mark(&mut self, ext: u64) {
        let (w, b) = self.bit(ext);
        self.seen[w] |= b;
    }

    fn is_marked(&mut self, ext: u64) -> bool {
        let (w, b) = self.bit(ext);
        self.seen[w] & b != 0
    }

    fn clear(&mut self, ext: u64) {
        let (w, b) = self.bit(ext);
        self.seen[w] &= !b;
    }

    fn restart(&mut self, seq: u16) {
        if self.started {
            self.expected_before += self.max_ext - self.base_ext + 1;
        }
        self.started = true;
        // Start well above 0 so late packets of the first cycle have an extended number.
        self.max_ext = (1 << 16) | seq as u64;
        self.base_ext = self.max_ext;
        self.bad_seq = None;
        self.seen.iter_mut().for_each(|w| *w = 0);
        self.mark(self.max_ext);
        self.received += 1;
    }

    /// Accounts for one packet (RFC 3550 A.1 `update_seq`, plus a window for duplicates).
    pub fn push(&mut self, seq: u16) -> SeqEvent {
        if !self.started {
            self.restart(seq);
            return SeqEvent::First;
        }
        let udelta = seq.wrapping_sub(self.max_ext as u16);
        if udelta == 0 {
            self.duplicates += 1;
            return SeqEvent::Duplicate;
        }
        if udelta < MAX_DROPOUT {
            // In order, with a permissible gap.
            let new_max = self.max_ext + udelta as u64;
            let clear_from = new_max.saturating_sub(WINDOW - 1).max(self.max_ext + 1);
            for e in clear_from..new_max {
                self.clear(e);
            }
            self.max_ext = new_max;
            self.mark(new_max);
            self.received += 1;
            self.bad_seq = None;
            return SeqEvent::InOrder {
                missing: udelta - 1,
            };
        }
        if udelta <= u16::MAX - MAX_MISORDER + 1 {
            // A very large jump: A.1 waits for a second, sequential packet.
            if self.bad_seq == Some(seq) {
                self.resyncs += 1;
                self.restart(seq);
                return SeqEvent::Resync;
            }
            self.bad_seq = Some(seq.wrapping_add(1));
            self.out_of_window += 1;
            return SeqEvent::OutOfWindow;
        }
        // Behind the highest sequence number by less than MAX_MISORDER.
        let behind = (u16::MAX - udelta) as u64 + 1;
        let ext = self.max_ext - behind;
        if ext < self.base_ext || self.is_marked(ext) {
            self.duplicates += 1;
            return SeqEvent::Duplicate;
        }
        self.mark(ext);
        self.received += 1;
        self.reordered += 1;
        SeqEvent::Reordered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(t: &mut SeqTracker, seqs: &[u16]) -> Vec<SeqEvent> {
        seqs.iter().map(|&s| t.push(s)).collect()
    }

    #[test]
    fn loss_is_counted() {
        let mut t = SeqTracker::default();
        let ev = feed(&mut t, &[10, 11, 14, 15]);
        assert_eq!(ev[2], SeqEvent::InOrder { missing: 2 });
        assert_eq!(t.expected(), 6);
        assert_eq!(t.received(), 4);
        assert_eq!(t.lost(), 2);
    }

    #[test]
    fn wrap_is_in_order() {
        let mut t = SeqTracker::default();
        feed(&mut t, &[65534, 65535, 0, 1]);
        assert_eq!(t.lost(), 0);
        assert_eq!(t.expected(), 4);
        assert_eq!(t.max_seq(), Some(1));
    }

    #[test]
    fn duplicates_and_reorder() {
        let mut t = SeqTracker::default();
        let ev = feed(&mut t, &[1, 2, 2, 4, 3, 3, 1, 5]);
        assert_eq!(ev[2], SeqEvent::Duplicate);
        assert_eq!(ev[4], SeqEvent::Reordered);
        assert_eq!(ev[5], SeqEvent::Duplicate);
        assert_eq!(ev[6], SeqEvent::Duplicate);
        assert_eq!(t.duplicates, 3);
        assert_eq!(t.reordered, 1);
        assert_eq!(t.lost(), 0);
        assert_eq!(t.received(), 5);
    }

    #[test]
    fn reorder_across_wrap() {
        let mut t = SeqTracker::default();
        let ev = feed(&mut t, &[65534, 0, 65535, 1]);
        assert_eq!(ev[1], SeqEvent::InOrder { missing: 1 });
        assert_eq!(ev[2], SeqEvent::Reordered);
        assert_eq!(t.lost(), 0);
    }

    #[test]
    fn large_jump_needs_confirmation() {
        let mut t = SeqTracker::default();
        let ev = feed(&mut t, &[100, 101, 30000, 102, 40000, 40001, 40002]);
        assert_eq!(ev[2], SeqEvent::OutOfWindow);
        assert_eq!(ev[3], SeqEvent::InOrder { missing: 0 });
        assert_eq!(ev[4], SeqEvent::OutOfWindow);
        assert_eq!(ev[5], SeqEvent::Resync);
        assert_eq!(t.resyncs, 1);
        assert_eq!(t.out_of_window, 2);
        // Runs 100..=102 and 40001..=40002: nothing lost.
        assert_eq!(t.expected(), 5);
        assert_eq!(t.lost(), 0);
    }
}
