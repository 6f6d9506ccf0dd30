//! Program-specific information: section assembly, the Program Association Table and the
//! Program Map Table (ISO/IEC 13818-1 §2.4.4), each section checked with CRC-32/MPEG-2
//! (Annex A).

use super::packet::{Packet, Pid};

/// CRC-32/MPEG-2 (Annex A: polynomial 0x04C11DB7, initial 0xFFFFFFFF, no reflection,
/// no final XOR). A section including its `CRC_32` field checks to 0.
pub const CRC32_MPEG2: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_MPEG_2);

/// `table_id` of a program_association_section (table 2-31).
pub const TABLE_PAT: u8 = 0x00;
/// `table_id` of a TS_program_map_section (table 2-31).
pub const TABLE_PMT: u8 = 0x02;

/// What is wrong with a PSI section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PsiError {
    /// Fewer bytes than the header or `section_length` says.
    #[error("section truncated")]
    Truncated,
    /// `CRC_32` does not check (Annex A).
    #[error("CRC-32 mismatch (section says 0x{stated:08x}, computed 0x{computed:08x})")]
    Crc { stated: u32, computed: u32 },
    /// Unexpected `table_id`.
    #[error("table_id 0x{0:02x} is not the expected table")]
    TableId(u8),
}

/// Checks length and CRC of one complete section starting at `table_id`; returns the
/// section (header .. CRC inclusive).
pub fn checked_section(buf: &[u8]) -> Result<&[u8], PsiError> {
    if buf.len() < 3 {
        return Err(PsiError::Truncated);
    }
    // §2.4.4.4: section_length, 12 bits, counts the bytes after it including the CRC.
    let len = (((buf[1] & 0x0F) as usize) << 8) | buf[2] as usize;
    let total = 3 + len;
    if len < 9 || buf.len() < total {
        return Err(PsiError::Truncated);
    }
    let sec = &buf[..total];
    let stated = u32::from_be_bytes([
        sec[total - 4],
        sec[total - 3],
        sec[total - 2],
        sec[total - 1],
    ]);
    let computed = CRC32_MPEG2.checksum(&sec[..total - 4]);
    if stated != computed {
        return Err(PsiError::Crc { stated, computed });
    }
    Ok(sec)
}

/// What tells one version of a table from another: `version_number` and the `CRC_32` of a
/// checked section (§2.4.4.3-2.4.4.8). The CRC catches a change that kept its version
/// number (a splice of two files, a careless muxer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionId {
    /// `version_number` (5 bits).
    pub version: u8,
    /// `current_next_indicator`: the section applies now (1) or is the next one (0).
    pub current: bool,
    /// `section_number`.
    pub section_number: u8,
    /// `CRC_32`.
    pub crc: u32,
}

impl SectionId {
    /// Of a checked long-form section (header .. CRC); None if it is too short.
    pub fn of(sec: &[u8]) -> Option<SectionId> {
        if sec.len() < 12 {
            return None;
        }
        let n = sec.len();
        Some(SectionId {
            version: (sec[5] >> 1) & 0x1F,
            current: sec[5] & 1 == 1,
            section_number: sec[6],
            crc: u32::from_be_bytes([sec[n - 4], sec[n - 3], sec[n - 2], sec[n - 1]]),
        })
    }

    /// The section applies now and is the first of its table (the only one for a PMT,
    /// §2.4.4.8; multi-section PATs are followed by their first section).
    pub fn applies(&self) -> bool {
        self.current && self.section_number == 0
    }
}

/// One program of a PAT: `program_number` -> `program_map_PID` (§2.4.4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatEntry {
    /// `program_number` (0 = network PID, not a program).
    pub program_number: u16,
    /// PID of the PMT (or of the NIT for program 0).
    pub pid: Pid,
}

/// Parses a checked PAT section (§2.4.4.3, table 2-30).
pub fn parse_pat(sec: &[u8]) -> Result<Vec<PatEntry>, PsiError> {
    let sec = checked_section(sec)?;
    if sec[0] != TABLE_PAT {
        return Err(PsiError::TableId(sec[0]));
    }
    let body = &sec[8..sec.len() - 4];
    Ok(body
        .chunks_exact(4)
        .map(|c| PatEntry {
            program_number: u16::from_be_bytes([c[0], c[1]]),
            pid: Pid::new(u16::from_be_bytes([c[2], c[3]])),
        })
        .collect())
}

/// One elementary stream of a PMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EsInfo {
    /// `stream_type` (table 2-34).
    pub stream_type: u8,
    /// `elementary_PID`.
    #[serde(serialize_with = "ser_pid")]
    pub pid: Pid,
}

fn ser_pid<S: serde::Serializer>(p: &Pid, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(p.value())
}

impl EsInfo {
    /// A video stream type (MPEG-1/2 video, MPEG-4 part 2, H.264, HEVC, ...).
    pub fn is_video(&self) -> bool {
        matches!(
            self.stream_type,
            0x01 | 0x02 | 0x10 | 0x1B | 0x20 | 0x24 | 0x42 | 0xD1 | 0xEA
        )
    }
    /// A short human name of the stream type.
    pub fn kind(&self) -> &'static str {
        stream_type_name(self.stream_type)
    }
}

/// Name of a `stream_type` value (table 2-34 and common registrations).
pub fn stream_type_name(t: u8) -> &'static str {
    match t {
        0x01 => "MPEG-1 video",
        0x02 => "MPEG-2 video",
        0x03 => "MPEG-1 audio",
        0x04 => "MPEG-2 audio",
        0x06 => "private PES (AC-3/DVB subtitles/...)",
        0x0F => "AAC (ADTS)",
        0x10 => "MPEG-4 part 2 video",
        0x11 => "AAC (LATM)",
        0x15 => "metadata",
        0x1B => "H.264/AVC video",
        0x24 => "H.265/HEVC video",
        0x81 => "AC-3 audio",
        0x86 => "SCTE-35",
        _ => "other",
    }
}

/// A parsed PMT (§2.4.4.8, table 2-33).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pmt {
    /// `program_number`.
    pub program_number: u16,
    /// `PCR_PID` (0x1FFF: no PCR).
    pub pcr_pid: Pid,
    /// Elementary streams in order.
    pub streams: Vec<EsInfo>,
}

/// Parses a checked PMT section (§2.4.4.8).
pub fn parse_pmt(sec: &[u8]) -> Result<Pmt, PsiError> {
    let sec = checked_section(sec)?;
    if sec[0] != TABLE_PMT {
        return Err(PsiError::TableId(sec[0]));
    }
    let end = sec.len() - 4;
    if end < 12 {
        return Err(PsiError::Truncated);
    }
    let program_number = u16::from_be_bytes([sec[3], sec[4]]);
    let pcr_pid = Pid::new(u16::from_be_bytes([sec[8], sec[9]]));
    let info_len = (((sec[10] & 0x0F) as usize) << 8) | sec[11] as usize;
    let mut i = 12 + info_len;
    let mut streams = Vec::new();
    while i + 5 <= end {
        let stream_type = sec[i];
        let pid = Pid::new(u16::from_be_bytes([sec[i + 1], sec[i + 2]]));
        let es_len = (((sec[i + 3] & 0x0F) as usize) << 8) | sec[i + 4] as usize;
        streams.push(EsInfo { stream_type, pid });
        i += 5 + es_len;
    }
    Ok(Pmt {
        program_number,
        pcr_pid,
        streams,
    })
}

/// Reassembles PSI sections of one PID from its packets (§2.4.4.1 `pointer_field`,
/// §2.4.4.2). Push packets in order; complete sections come out.
#[derive(Debug, Default)]
pub struct SectionAssembler {
    buf: Vec<u8>,
    active: bool,
}

impl SectionAssembler {
    /// Feeds one packet of the PID; returns the sections completed by it (unchecked: pass
    /// them to [`parse_pat`] / [`parse_pmt`], which check the CRC).
    pub fn push(&mut self, pkt: &Packet<'_>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let payload = pkt.payload();
        if payload.is_empty() {
            return out;
        }
        let data = if pkt.pusi() {
            let pointer = payload[0] as usize;
            let Some(rest) = payload.get(1..) else {
                return out;
            };
            // Bytes before the pointer finish the previous section.
            if self.active {
                if let Some(tail) = rest.get(..pointer) {
                    self.buf.extend_from_slice(tail);
                    self.drain(&mut out);
                }
            }
            self.buf.clear();
            self.active = true;
            match rest.get(pointer..) {
                Some(d) => d,
                None => {
                    self.active = false;
                    return out;
                }
            }
        } else if self.active {
            payload
        } else {
            return out;
        };
        self.buf.extend_from_slice(data);
        self.drain(&mut out);
        out
    }

    /// Moves complete sections out of the buffer; stops at stuffing (0xFF).
    fn drain(&mut self, out: &mut Vec<Vec<u8>>) {
        loop {
            if self.buf.first() == Some(&0xFF) {
                self.buf.clear();
                self.active = false;
                return;
            }
            if self.buf.len() < 3 {
                return;
            }
            let total = 3 + ((((self.buf[1] & 0x0F) as usize) << 8) | self.buf[2] as usize);
            if self.buf.len() < total {
                return;
            }
            out.push(self.buf.drain(..total).collect());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::packet::{PACKET_SIZE, SYNC_BYTE};

    /// A PAT for program 1 -> PMT PID 0x1000, as ffmpeg writes it.
    fn pat_section() -> Vec<u8> {
        let mut s = vec![
            0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00,
        ];
        let crc = CRC32_MPEG2.checksum(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        s
    }

    fn pmt_section() -> Vec<u8> {
        // program 1, PCR PID 0x100, H.264 on 0x100, AAC on 0x101
        let mut s = vec![
            0x02, 0xB0, 0x17, 0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x00, 0xF0, 0x00, 0x1B, 0xE1,
            0x00, 0xF0, 0x00, 0x0F, 0xE1, 0x01, 0xF0, 0x00,
        ];
        let crc = CRC32_MPEG2.checksum(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        s
    }

    fn packet_with(pid: u16, section: &[u8]) -> [u8; PACKET_SIZE] {
        let mut b = [0xFFu8; PACKET_SIZE];
        b[0] = SYNC_BYTE;
        b[1] = 0x40 | (pid >> 8) as u8;
        b[2] = pid as u8;
        b[3] = 0x10;
        b[4] = 0; // pointer_field
        b[5..5 + section.len()].copy_from_slice(section);
        b
    }

    #[test]
    fn crc_known_value() {
        // The CRC ffmpeg writes for the PAT above.
        assert_eq!(CRC32_MPEG2.checksum(&pat_section()), 0);
    }

    #[test]
    fn pat_and_pmt_round_trip_through_packets() {
        let mut asm = SectionAssembler::default();
        let b = packet_with(0, &pat_section());
        let secs = asm.push(&Packet::new_checked(&b).unwrap());
        assert_eq!(secs.len(), 1);
        let pat = parse_pat(&secs[0]).unwrap();
        assert_eq!(
            pat,
            vec![PatEntry {
                program_number: 1,
                pid: Pid::new(0x1000)
            }]
        );

        let b = packet_with(0x1000, &pmt_section());
        let secs = SectionAssembler::default().push(&Packet::new_checked(&b).unwrap());
        let pmt = parse_pmt(&secs[0]).unwrap();
        assert_eq!(pmt.pcr_pid, Pid::new(0x100));
        assert_eq!(pmt.streams.len(), 2);
        assert!(pmt.streams[0].is_video());
        assert_eq!(pmt.streams[1].stream_type, 0x0F);
    }

    #[test]
    fn crc_error_detected() {
        let mut s = pat_section();
        s[9] ^= 0x01;
        assert!(matches!(parse_pat(&s), Err(PsiError::Crc { .. })));
        assert_eq!(parse_pat(&s[..5]), Err(PsiError::Truncated));
        assert_eq!(parse_pat(&pmt_section()), Err(PsiError::TableId(2)));
    }

    #[test]
    fn section_split_across_packets() {
        let sec = pmt_section();
        let mut a = [0xFFu8; PACKET_SIZE];
        a[..4].copy_from_slice(&[SYNC_BYTE, 0x50, 0x00, 0x10]);
        // Force a split: a 170-byte adaptation field leaves 13 payload bytes.
        a[3] = 0x30;
        a[4] = 169;
        a[5] = 0x00;
        let payload_start = 5 + 169;
        a[payload_start] = 0; // pointer
        let first = PACKET_SIZE - payload_start - 1;
        a[payload_start + 1..].copy_from_slice(&sec[..first]);
        let mut b = [0xFFu8; PACKET_SIZE];
        b[..4].copy_from_slice(&[SYNC_BYTE, 0x10, 0x00, 0x11]);
        b[4..4 + sec.len() - first].copy_from_slice(&sec[first..]);
        let mut asm = SectionAssembler::default();
        assert!(asm.push(&Packet::new_checked(&a).unwrap()).is_empty());
        let secs = asm.push(&Packet::new_checked(&b).unwrap());
        assert_eq!(secs.len(), 1);
        assert_eq!(parse_pmt(&secs[0]).unwrap().streams.len(), 2);
    }
}
