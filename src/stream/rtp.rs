//! RTP fixed header for MPEG-TS (RFC 3550 §5.1, RFC 2250 §2 and RFC 3551 §6: payload type 33,
//! `MP2T`, 90 kHz clock).
//!
//! Every field of the header of datagram `i` is a function of `i` and the session: the SSRC,
//! the initial sequence number and the initial timestamp are derived from the session id
//! (RFC 3550 §5.1 asks for random initial values; a hash of the session id is as
//! unpredictable to an outsider and lets two engines of a redundant pair agree on them).

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Length of the fixed header without CSRCs (RFC 3550 §5.1).
pub const HEADER_LEN: usize = 12;
/// Static payload type of MPEG-2 transport streams (RFC 3551 §6, table 5: `MP2T`).
pub const PAYLOAD_TYPE_MP2T: u8 = 33;
/// RTP version (RFC 3550 §5.1: "This field identifies the version of RTP ... is two (2)").
pub const VERSION: u8 = 2;

/// The fields of an RTP fixed header that a TS sender uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit. RFC 2250 §2: "Set to 1 whenever the timestamp is discontinuous".
    pub marker: bool,
    /// Payload type, 7 bits (33 for MP2T).
    pub payload_type: u8,
    /// Sequence number, +1 per datagram, wrapping (RFC 3550 §5.1).
    pub sequence: u16,
    /// 90 kHz timestamp: "the target transmission time of the first byte of the packet"
    /// (RFC 2250 §2).
    pub timestamp: u32,
    /// Synchronization source identifier.
    pub ssrc: u32,
}

/// Why bytes are not an RTP packet we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Fewer bytes than the header announces.
    #[error("RTP packet too short: {len} bytes, header needs {need}")]
    Short {
        /// Bytes available.
        len: usize,
        /// Bytes the header (with CSRCs / extension / padding) needs.
        need: usize,
    },
    /// Version field is not 2.
    #[error("RTP version {0}, expected 2")]
    Version(u8),
}

impl RtpHeader {
    /// A plain MP2T header (payload type 33, marker clear).
    pub fn mp2t(sequence: u16, timestamp: u32, ssrc: u32) -> RtpHeader {
        RtpHeader {
            marker: false,
            payload_type: PAYLOAD_TYPE_MP2T,
            sequence,
            timestamp,
            ssrc,
        }
    }

    /// Writes the 12-byte fixed header (no padding, no extension, CC = 0).
    pub fn emit(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = VERSION << 6;
        b[1] = ((self.marker as u8) << 7) | (self.payload_type & 0x7F);
        b[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        b[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        b[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        b
    }

    /// Parses a datagram: returns the header and the payload (after CSRCs and any header
    /// extension, before any padding; RFC 3550 §5.1, §5.3.1).
    pub fn parse(buf: &[u8]) -> Result<(RtpHeader, &[u8]), RtpError> {
        let short = |need| RtpError::Short {
            len: buf.len(),
            need,
        };
        if buf.len() < HEADER_LEN {
            return Err(short(HEADER_LEN));
        }
        let version = buf[0] >> 6;
        if version != VERSION {
            return Err(RtpError::Version(version));
        }
        let padding = buf[0] & 0x20 != 0;
        let extension = buf[0] & 0x10 != 0;
        let csrcs = (buf[0] & 0x0F) as usize;
        let mut start = HEADER_LEN + 4 * csrcs;
        if extension {
            if buf.len() < start + 4 {
                return Err(short(start + 4));
            }
            let words = u16::from_be_bytes([buf[start + 2], buf[start + 3]]) as usize;
            start += 4 + 4 * words;
        }
        if buf.len() < start {
            return Err(short(start));
        }
        let mut end = buf.len();
        if padding {
            let pad = buf[end - 1] as usize;
            if pad == 0 || end < start + pad {
                return Err(short(start + pad.max(1)));
            }
            end -= pad;
        }
        let h = RtpHeader {
            marker: buf[1] & 0x80 != 0,
            payload_type: buf[1] & 0x7F,
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        };
        Ok((h, &buf[start..end]))
    }
}

/// The per-session constants of an RTP stream, derived from the session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpSession {
    /// SSRC of every datagram.
    pub ssrc: u32,
    /// Sequence number of datagram 0.
    pub sequence_base: u16,
    /// RTP timestamp of timeline time 0 (the session origin).
    pub timestamp_base: u32,
}

impl RtpSession {
    /// Derives SSRC, initial sequence number and initial timestamp from the session id with
    /// XXH3-64 (seed 0 for SSRC and sequence, seed 1 for the timestamp).
    pub fn from_session_id(id: &str) -> RtpSession {
        let h = xxh3_64_with_seed(id.as_bytes(), 0);
        let t = xxh3_64_with_seed(id.as_bytes(), 1);
        RtpSession {
            ssrc: h as u32,
            sequence_base: (h >> 32) as u16,
            timestamp_base: t as u32,
        }
    }

    /// The header of datagram `index` whose first byte departs at `departure_ticks`
    /// (27 MHz, relative to the session origin): sequence `base + index mod 2^16`,
    /// timestamp `base + departure / 300 mod 2^32`.
    pub fn header(&self, index: u64, departure_ticks: u64) -> RtpHeader {
        RtpHeader {
            marker: false,
            payload_type: PAYLOAD_TYPE_MP2T,
            sequence: self.sequence_base.wrapping_add(index as u16),
            timestamp: self
                .timestamp_base
                .wrapping_add((departure_ticks / crate::ts::pcr::PER_90KHZ) as u32),
            ssrc: self.ssrc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emit_known_bytes() {
        let h = RtpHeader {
            marker: true,
            payload_type: 33,
            sequence: 0x1234,
            timestamp: 0xDEADBEEF,
            ssrc: 0x01020304,
        };
        assert_eq!(
            h.emit(),
            [0x80, 0xA1, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4]
        );
    }

    #[test]
    fn parse_skips_csrc_extension_padding() {
        let mut b = vec![0x80 | 0x20 | 0x10 | 0x01, 33, 0, 7, 0, 0, 0, 9, 0, 0, 0, 5];
        b.extend_from_slice(&[0xAA; 4]); // one CSRC
        b.extend_from_slice(&[0xBE, 0xDE, 0, 1, 1, 2, 3, 4]); // extension, one word
        b.extend_from_slice(b"payload");
        b.extend_from_slice(&[0, 0, 3]); // 3 bytes padding
        let (h, p) = RtpHeader::parse(&b).unwrap();
        assert_eq!(p, b"payload");
        assert_eq!(h.sequence, 7);
        assert_eq!(h.timestamp, 9);
        assert_eq!(h.ssrc, 5);
        assert!(!h.marker);
    }

    #[test]
    fn parse_rejects() {
        assert_eq!(
            RtpHeader::parse(&[0x80; 5]),
            Err(RtpError::Short { len: 5, need: 12 })
        );
        assert_eq!(RtpHeader::parse(&[0x40; 12]), Err(RtpError::Version(1)));
        let mut b = [0u8; 12];
        b[0] = 0x81; // one CSRC missing
        assert!(matches!(
            RtpHeader::parse(&b),
            Err(RtpError::Short { need: 16, .. })
        ));
    }

    #[test]
    fn session_is_deterministic_and_distinct() {
        let a = RtpSession::from_session_id("news");
        assert_eq!(a, RtpSession::from_session_id("news"));
        assert_ne!(a.ssrc, RtpSession::from_session_id("sport").ssrc);
        let h = a.header(0x1_0003, 27_000_000);
        assert_eq!(h.sequence, a.sequence_base.wrapping_add(3));
        assert_eq!(h.timestamp, a.timestamp_base.wrapping_add(90_000));
        assert_eq!(h.payload_type, 33);
    }

    proptest! {
        #[test]
        fn round_trip(m: bool, pt in 0u8..128, seq: u16, ts: u32, ssrc: u32, payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let h = RtpHeader { marker: m, payload_type: pt, sequence: seq, timestamp: ts, ssrc };
            let mut b = h.emit().to_vec();
            b.extend_from_slice(&payload);
            let (back, p) = RtpHeader::parse(&b).unwrap();
            prop_assert_eq!(back, h);
            prop_assert_eq!(p, &payload[..]);
        }

        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = RtpHeader::parse(&b);
        }
    }
}
