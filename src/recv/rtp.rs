//! RTP for MPEG-TS as a receiver sees it: the fixed header (RFC 3550 §5.1), the payload
//! after CSRCs, header extension (§5.3.1) and padding, and sequence-number accounting in
//! the style of RFC 3550 Appendix A.1 (loss, duplicates, reordering, resynchronisation).

/// Length of the fixed RTP header without CSRCs (RFC 3550 §5.1).
pub const FIXED_HEADER: usize = 12;
/// RTP version carried in every packet (RFC 3550 §5.1: "V ... is two (2)").
pub const VERSION: u8 = 2;
/// Static payload type of MPEG-2 transport streams (RFC 3551 §6, `MP2T/90000`).
pub const PT_MP2T: u8 = 33;
/// A.1 `MAX_DROPOUT`: larger forward jumps are treated as a restart of the sequence.
pub const MAX_DROPOUT: u16 = 3000;
/// A.1 `MAX_MISORDER`: how far behind the highest sequence a packet may arrive late.
pub const MAX_MISORDER: u16 = 100;

/// Why a datagram is not a valid RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Fewer bytes than the fixed header, CSRC list or extension needs.
    #[error("RTP packet truncated: {len} bytes, header needs {needed}")]
    Short {
        /// Datagram length.
        len: usize,
        /// Bytes the header claims.
        needed: usize,
    },
    /// Version field is not 2.
    #[error("RTP version {0}, expected 2")]
    Version(u8),
    /// Padding count of zero or larger than the payload (RFC 3550 §5.1, P bit).
    #[error("RTP padding count {0} is invalid")]
    Padding(u8),
}

/// The fields of an RTP header (RFC 3550 §5.1) that a TS receiver uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// P bit: the payload ends with padding.
    pub padding: bool,
    /// X bit: a header extension follows the CSRCs.
    pub extension: bool,
    /// CC: number of CSRC identifiers.
    pub csrc_count: u8,
    /// M bit.
    pub marker: bool,
    /// PT: payload type (33 = MP2T).
    pub payload_type: u8,
    /// Sequence number, +1 per packet, wrapping.
    pub sequence: u16,
    /// Timestamp (90 kHz for MP2T, RFC 2250 §2).
    pub timestamp: u32,
    /// Synchronisation source identifier.
    pub ssrc: u32,
}

impl RtpHeader {
    /// A plain MP2T header (no padding, extension or CSRCs).
    pub fn mp2t(sequence: u16, timestamp: u32, ssrc: u32) -> RtpHeader {
        RtpHeader {
            padding: false,
            extension: false,
            csrc_count: 0,
            marker: false,
            payload_type: PT_MP2T,
            sequence,
            timestamp,
            ssrc,
        }
    }

    /// Encodes the 12-byte fixed header. CSRCs and extension are not written, so the
    /// flags for them are written as 0 (used by tests and test senders).
    pub fn to_bytes(&self) -> [u8; FIXED_HEADER] {
        let mut b = [0u8; FIXED_HEADER];
        b[0] = (VERSION << 6) | (u8::from(self.padding) << 5);
        b[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7F);
        b[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        b[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        b[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        b
    }
}

/// Parses an RTP packet; returns the header and the payload with CSRCs, extension and
/// padding removed (RFC 3550 §5.1, §5.3.1).
pub fn parse(buf: &[u8]) -> Result<(RtpHeader, &[u8]), RtpError> {
    if buf.len() < FIXED_HEADER {
        return Err(RtpError::Short {
            len: buf.len(),
            needed: FIXED_HEADER,
        });
    }
    let version = buf[0] >> 6;
    if version != VERSION {
        return Err(RtpError::Version(version));
    }
    let h = RtpHeader {
        padding: buf[0] & 0x20 != 0,
        extension: buf[0] & 0x10 != 0,
        csrc_count: buf[0] & 0x0F,
        marker: buf[1] & 0x80 != 0,
        payload_type: buf[1] & 0x7F,
        sequence: u16::from_be_bytes([buf[2], buf[3]]),
        timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
    };
    let mut start = FIXED_HEADER + 4 * h.csrc_count as usize;
    if h.extension {
        // §5.3.1: 16-bit profile-defined field, 16-bit length in 32-bit words.
        let ext = buf.get(start..start + 4).ok_or(RtpError::Short {
            len: buf.len(),
            needed: start + 4,
        })?;
        start += 4 + 4 * u16::from_be_bytes([ext[2], ext[3]]) as usize;
    }
    if buf.len() < start {
        return Err(RtpError::Short {
            len: buf.len(),
            needed: start,
        });
    }
    let mut end = buf.len();
    if h.padding {
        // §5.1: "The last octet of the padding contains a count of how many padding
        // octets should be ignored, including itself."
        let n = buf[end - 1];
        if n == 0 || (n as usize) > end - start {
            return Err(RtpError::Padding(n));
        }
        end -= n as usize;
    }
    Ok((h, &buf[start..end]))
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

    /// A header captured from `tandem play rtp://...`-style output: PT 33, seq 0x1234,
    /// ts 0x00ABCDEF, SSRC 0xDEADBEEF.
    const FIXED: [u8; 12] = [
        0x80, 0x21, 0x12, 0x34, 0x00, 0xAB, 0xCD, 0xEF, 0xDE, 0xAD, 0xBE, 0xEF,
    ];

    #[test]
    fn fixed_header_round_trip() {
        let mut pkt = FIXED.to_vec();
        pkt.extend_from_slice(&[0x47; 188]);
        let (h, payload) = parse(&pkt).unwrap();
        assert_eq!(h, RtpHeader::mp2t(0x1234, 0x00AB_CDEF, 0xDEAD_BEEF));
        assert_eq!(payload.len(), 188);
        assert_eq!(h.to_bytes(), FIXED);
        let mut m = h;
        m.marker = true;
        m.payload_type = 96;
        assert_eq!(m.to_bytes()[1], 0x80 | 96);
        assert_eq!(parse(&m.to_bytes()).unwrap().0, m);
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        // V=2, P=1, X=1, CC=2
        let mut pkt = vec![0xB2, 0x21, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        pkt.extend_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2]); // two CSRCs
        pkt.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, 9, 9, 9, 9]); // one-word extension
        pkt.extend_from_slice(&[0x47, 0x00]); // payload
        pkt.extend_from_slice(&[0, 0, 3]); // 3 bytes padding
        let (h, payload) = parse(&pkt).unwrap();
        assert!(h.padding && h.extension);
        assert_eq!(h.csrc_count, 2);
        assert_eq!(payload, &[0x47, 0x00]);
    }

    #[test]
    fn malformed_headers_are_errors() {
        assert_eq!(
            parse(&FIXED[..11]),
            Err(RtpError::Short {
                len: 11,
                needed: 12
            })
        );
        let mut v1 = FIXED;
        v1[0] = 0x40;
        assert_eq!(parse(&v1), Err(RtpError::Version(1)));
        let mut cc = FIXED;
        cc[0] = 0x83; // 3 CSRCs, none present
        assert_eq!(
            parse(&cc),
            Err(RtpError::Short {
                len: 12,
                needed: 24
            })
        );
        let mut pad = FIXED.to_vec();
        pad[0] |= 0x20;
        pad.push(5); // padding count larger than the payload
        assert_eq!(parse(&pad), Err(RtpError::Padding(5)));
        let mut ext = FIXED.to_vec();
        ext[0] |= 0x10;
        ext.extend_from_slice(&[0, 0, 0, 9]); // 9 words missing
        assert!(matches!(parse(&ext), Err(RtpError::Short { .. })));
    }

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
