//! PES header timestamps: reading and shifting PTS/DTS in place (ISO/IEC 13818-1 §2.4.3.6,
//! §2.4.3.7, table 2-21).
//!
//! Only what playout needs: find the PTS/DTS of a PES packet that starts in a TS packet
//! (PUSI set), and add a constant to them (for looping). The 33-bit values are coded as
//! `'0010'|'0011' PTS[32..30] marker PTS[29..15] marker PTS[14..0] marker`.

use super::packet::{Packet, PACKET_SIZE};
use super::pcr::pts_add;

/// `stream_id`s whose PES packets have no optional header (§2.4.3.7, table 2-21 semantics):
/// program_stream_map, padding, private_stream_2, ECM, EMM, directory, DSMCC, H.222.1 type E.
fn has_optional_header(stream_id: u8) -> bool {
    !matches!(
        stream_id,
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xFF | 0xF2 | 0xF8
    )
}

/// PTS and DTS of a PES header, 90 kHz ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timestamps {
    /// Presentation time stamp.
    pub pts: Option<u64>,
    /// Decoding time stamp.
    pub dts: Option<u64>,
}

/// Byte offsets (within the TS packet) of the PTS and DTS fields, if present.
fn locate(pkt: &Packet<'_>) -> (Option<usize>, Option<usize>) {
    if !pkt.pusi() {
        return (None, None);
    }
    let payload = pkt.payload();
    let start = PACKET_SIZE - payload.len();
    if payload.len() < 14 || payload[..3] != [0, 0, 1] || !has_optional_header(payload[3]) {
        return (None, None);
    }
    // '10' marker bits of the optional PES header.
    if payload[6] & 0xC0 != 0x80 {
        return (None, None);
    }
    match payload[7] >> 6 {
        0b10 => (Some(start + 9), None),
        0b11 if payload.len() >= 19 => (Some(start + 9), Some(start + 14)),
        _ => (None, None),
    }
}

fn read_ts(b: &[u8]) -> u64 {
    (((b[0] >> 1) & 0x07) as u64) << 30
        | (b[1] as u64) << 22
        | ((b[2] >> 1) as u64) << 15
        | (b[3] as u64) << 7
        | (b[4] >> 1) as u64
}

fn write_ts(b: &mut [u8], v: u64) {
    let prefix = b[0] & 0xF0;
    b[0] = prefix | (((v >> 30) & 0x07) as u8) << 1 | 1;
    b[1] = (v >> 22) as u8;
    b[2] = (((v >> 15) & 0x7F) as u8) << 1 | 1;
    b[3] = (v >> 7) as u8;
    b[4] = ((v & 0x7F) as u8) << 1 | 1;
}

/// The 5-byte PTS field of a PES header with only a PTS (`'0010'` prefix, markers set,
/// ISO/IEC 13818-1 §2.4.3.7).
pub fn encode_pts(pts: u64) -> [u8; 5] {
    let mut b = [0x20u8, 0, 0, 0, 0];
    write_ts(&mut b, pts);
    b
}

/// Reads the PTS/DTS of a PES packet that starts in `pkt`.
pub fn timestamps(pkt: &Packet<'_>) -> Timestamps {
    let (p, d) = locate(pkt);
    let bytes = pkt.bytes();
    Timestamps {
        pts: p.map(|o| read_ts(&bytes[o..o + 5])),
        dts: d.map(|o| read_ts(&bytes[o..o + 5])),
    }
}

/// Adds `delta90` (90 kHz ticks, modulo 2^33) to the PTS and DTS of a PES packet that
/// starts in the 188-byte packet `buf`. Returns whether anything was changed. Packets that
/// fail `Packet::new_checked` are left untouched.
pub fn shift_timestamps(buf: &mut [u8], delta90: u64) -> bool {
    let Ok(pkt) = Packet::new_checked(buf) else {
        return false;
    };
    let (p, d) = locate(&pkt);
    let mut changed = false;
    for o in [p, d].into_iter().flatten() {
        let v = read_ts(&buf[o..o + 5]);
        write_ts(&mut buf[o..o + 5], pts_add(v, delta90));
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::packet::SYNC_BYTE;
    use crate::ts::pcr::PTS_MODULUS;

    fn pes_packet(pts: u64, dts: Option<u64>) -> [u8; PACKET_SIZE] {
        let mut b = [0u8; PACKET_SIZE];
        b[..4].copy_from_slice(&[SYNC_BYTE, 0x41, 0x00, 0x10]);
        let p = &mut b[4..];
        p[..4].copy_from_slice(&[0, 0, 1, 0xE0]);
        p[6] = 0x80;
        p[7] = if dts.is_some() { 0xC0 } else { 0x80 };
        p[8] = if dts.is_some() { 10 } else { 5 };
        p[9] = if dts.is_some() { 0x30 } else { 0x20 };
        write_ts(&mut p[9..14], pts);
        if let Some(d) = dts {
            p[14] = 0x10;
            write_ts(&mut p[14..19], d);
        }
        b
    }

    #[test]
    fn read_pts_and_dts() {
        let b = pes_packet(123_456, Some(120_000));
        let t = timestamps(&Packet::new_checked(&b).unwrap());
        assert_eq!(
            t,
            Timestamps {
                pts: Some(123_456),
                dts: Some(120_000)
            }
        );
        let b = pes_packet(PTS_MODULUS - 1, None);
        let t = timestamps(&Packet::new_checked(&b).unwrap());
        assert_eq!(
            t,
            Timestamps {
                pts: Some(PTS_MODULUS - 1),
                dts: None
            }
        );
    }

    #[test]
    fn shift_wraps_and_keeps_markers() {
        let mut b = pes_packet(PTS_MODULUS - 10, Some(PTS_MODULUS - 3610));
        assert!(shift_timestamps(&mut b, 3600 + 20));
        let t = timestamps(&Packet::new_checked(&b).unwrap());
        assert_eq!(
            t,
            Timestamps {
                pts: Some(3610),
                dts: Some(10)
            }
        );
        // '0011' prefix and marker bits survive.
        assert_eq!(b[4 + 9] & 0xF1, 0x31);
        assert_eq!(b[4 + 14] & 0xF1, 0x11);
    }

    #[test]
    fn non_pes_untouched() {
        let mut b = pes_packet(1, None);
        b[4 + 3] = 0xBE; // padding stream: no optional header
        let before = b;
        assert!(!shift_timestamps(&mut b, 100));
        assert_eq!(b, before);
    }
}
