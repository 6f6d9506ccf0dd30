//! Transport packet header and adaptation field (ISO/IEC 13818-1 §2.4.3.2 – §2.4.3.5).

use super::pcr::Pcr;

/// Size of one transport packet (ISO/IEC 13818-1 §2.4.3.2).
pub const PACKET_SIZE: usize = 188;
/// `sync_byte`: "a fixed 8-bit field whose value is '0100 0111' (0x47)" (§2.4.3.3).
pub const SYNC_BYTE: u8 = 0x47;
/// TS packets per UDP/RTP datagram (RFC 2250 §2, SMPTE ST 2022-2: 7 x 188 = 1316 bytes).
pub const PACKETS_PER_DATAGRAM: usize = 7;
/// Payload bytes of one full datagram.
pub const DATAGRAM_PAYLOAD: usize = PACKET_SIZE * PACKETS_PER_DATAGRAM;

/// A 13-bit packet identifier (§2.4.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid(u16);

impl Pid {
    /// Program Association Table PID (§2.4.4.3, table 2-3).
    pub const PAT: Pid = Pid(0x0000);
    /// Null packets (table 2-3).
    pub const NULL: Pid = Pid(0x1FFF);

    /// Builds a PID; values above 0x1FFF are masked to 13 bits.
    pub const fn new(v: u16) -> Pid {
        Pid(v & 0x1FFF)
    }
    /// The numeric value.
    pub const fn value(self) -> u16 {
        self.0
    }
}

impl std::fmt::Display for Pid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A 4-bit `continuity_counter` (§2.4.3.3).
///
/// ```
/// use tandem::ts::packet::Cc;
/// assert!(Cc::new(0).follows(Cc::new(15)));
/// assert!(!Cc::new(2).follows(Cc::new(0)));
/// assert_eq!(Cc::new(14).add(3), Cc::new(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cc(u8);

impl Cc {
    /// Builds a counter from the low 4 bits of `v`.
    pub const fn new(v: u8) -> Cc {
        Cc(v & 0x0F)
    }
    /// The numeric value, 0..=15.
    pub const fn value(self) -> u8 {
        self.0
    }
    /// `self` is the counter that must follow `prev` on a packet with payload:
    /// "incremented by one with each transport stream packet with the same PID" (§2.4.3.3).
    pub const fn follows(self, prev: Cc) -> bool {
        self.0 == (prev.0 + 1) & 0x0F
    }
    /// Wrapping addition modulo 16.
    pub const fn add(self, n: u8) -> Cc {
        Cc(self.0.wrapping_add(n) & 0x0F)
    }
    /// Distance `self - earlier` modulo 16.
    pub const fn since(self, earlier: Cc) -> u8 {
        self.0.wrapping_sub(earlier.0) & 0x0F
    }
}

/// What is wrong with 188 bytes that should be a transport packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer than 188 bytes.
    #[error("short packet: {0} bytes")]
    Short(usize),
    /// First byte is not 0x47.
    #[error("sync byte is 0x{0:02x}, not 0x47")]
    NoSync(u8),
    /// `adaptation_field_length` runs past the end of the packet (§2.4.3.5).
    #[error("adaptation field length {0} exceeds the packet")]
    BadAdaptationLength(u8),
}

/// Byte offsets within the header (§2.4.3.2, table 2-2).
mod field {
    pub const PID_HI: usize = 1;
    pub const PID_LO: usize = 2;
    pub const FLAGS: usize = 3;
    pub const AF_LEN: usize = 4;
    pub const AF_FLAGS: usize = 5;
    pub const PCR: usize = 6;
}

/// A checked read-only view of one 188-byte transport packet.
#[derive(Clone, Copy)]
pub struct Packet<'a> {
    buf: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Checks length, sync byte and adaptation field length; after this no accessor panics.
    pub fn new_checked(buf: &'a [u8]) -> Result<Packet<'a>, PacketError> {
        if buf.len() < PACKET_SIZE {
            return Err(PacketError::Short(buf.len()));
        }
        let buf = &buf[..PACKET_SIZE];
        if buf[0] != SYNC_BYTE {
            return Err(PacketError::NoSync(buf[0]));
        }
        let p = Packet { buf };
        if p.has_adaptation() {
            let len = buf[field::AF_LEN];
            // §2.4.3.5: 0..=182 with payload, 183 without.
            let max = if p.has_payload() { 182 } else { 183 };
            if len > max {
                return Err(PacketError::BadAdaptationLength(len));
            }
        }
        Ok(p)
    }

    /// The raw 188 bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }
    /// `transport_error_indicator`.
    pub fn tei(&self) -> bool {
        self.buf[field::PID_HI] & 0x80 != 0
    }
    /// `payload_unit_start_indicator`.
    pub fn pusi(&self) -> bool {
        self.buf[field::PID_HI] & 0x40 != 0
    }
    /// The 13-bit PID.
    pub fn pid(&self) -> Pid {
        Pid::new(u16::from_be_bytes([
            self.buf[field::PID_HI],
            self.buf[field::PID_LO],
        ]))
    }
    /// `transport_scrambling_control` != 0.
    pub fn scrambled(&self) -> bool {
        self.buf[field::FLAGS] & 0xC0 != 0
    }
    /// `adaptation_field_control` bit 1: an adaptation field is present.
    pub fn has_adaptation(&self) -> bool {
        self.buf[field::FLAGS] & 0x20 != 0
    }
    /// `adaptation_field_control` bit 0: a payload is present.
    pub fn has_payload(&self) -> bool {
        self.buf[field::FLAGS] & 0x10 != 0
    }
    /// `continuity_counter`.
    pub fn cc(&self) -> Cc {
        Cc::new(self.buf[field::FLAGS])
    }
    /// `adaptation_field_length`, or 0 without an adaptation field.
    fn af_len(&self) -> usize {
        if self.has_adaptation() {
            self.buf[field::AF_LEN] as usize
        } else {
            0
        }
    }
    /// Adaptation field flags byte, when the field has one.
    fn af_flags(&self) -> Option<u8> {
        (self.af_len() >= 1).then(|| self.buf[field::AF_FLAGS])
    }
    /// `discontinuity_indicator` (§2.4.3.5).
    pub fn discontinuity(&self) -> bool {
        self.af_flags().is_some_and(|f| f & 0x80 != 0)
    }
    /// `random_access_indicator` (§2.4.3.5).
    pub fn random_access(&self) -> bool {
        self.af_flags().is_some_and(|f| f & 0x40 != 0)
    }
    /// The `program_clock_reference` when `PCR_flag` is set and the field is long enough.
    pub fn pcr(&self) -> Option<Pcr> {
        let flags = self.af_flags()?;
        if flags & 0x10 == 0 || self.af_len() < 7 {
            return None;
        }
        let b: [u8; 6] = self.buf[field::PCR..field::PCR + 6].try_into().ok()?;
        Some(Pcr::from_field(b))
    }
    /// The payload bytes (empty when there is none).
    pub fn payload(&self) -> &'a [u8] {
        if !self.has_payload() {
            return &[];
        }
        let start = if self.has_adaptation() {
            5 + self.af_len()
        } else {
            4
        };
        self.buf.get(start..).unwrap_or(&[])
    }
}

/// In-place edits of a packet already validated with [`Packet::new_checked`].
pub mod edit {
    use super::{field, Cc, Packet, PACKET_SIZE};
    use crate::ts::pcr::Pcr;

    /// Sets the continuity counter.
    pub fn set_cc(buf: &mut [u8], cc: Cc) {
        if buf.len() >= PACKET_SIZE {
            buf[field::FLAGS] = (buf[field::FLAGS] & 0xF0) | cc.value();
        }
    }

    /// Rewrites the PCR if the packet carries one; returns whether it did.
    pub fn set_pcr(buf: &mut [u8], pcr: Pcr) -> bool {
        let has = Packet::new_checked(buf)
            .ok()
            .and_then(|p| p.pcr())
            .is_some();
        if has {
            buf[field::PCR..field::PCR + 6].copy_from_slice(&pcr.to_field());
        }
        has
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcr_packet(pcr: Pcr) -> [u8; PACKET_SIZE] {
        let mut b = [0xFFu8; PACKET_SIZE];
        b[0] = SYNC_BYTE;
        b[1] = 0x41; // PUSI, PID 0x100
        b[2] = 0x00;
        b[3] = 0x37; // AF + payload, CC 7
        b[4] = 7;
        b[5] = 0x50; // RAI + PCR flag
        b[6..12].copy_from_slice(&pcr.to_field());
        b
    }

    #[test]
    fn header_fields() {
        let b = pcr_packet(Pcr::from_ticks(123_456_789));
        let p = Packet::new_checked(&b).unwrap();
        assert_eq!(p.pid(), Pid::new(0x100));
        assert!(p.pusi());
        assert!(!p.tei());
        assert_eq!(p.cc(), Cc::new(7));
        assert!(p.random_access());
        assert!(!p.discontinuity());
        assert_eq!(p.pcr(), Some(Pcr::from_ticks(123_456_789)));
        assert_eq!(p.payload().len(), 188 - 12);
    }

    #[test]
    fn rejects_bad_packets() {
        assert_eq!(
            Packet::new_checked(&[0x47; 10]).err(),
            Some(PacketError::Short(10))
        );
        let mut b = pcr_packet(Pcr::from_ticks(0));
        b[0] = 0x46;
        assert_eq!(
            Packet::new_checked(&b).err(),
            Some(PacketError::NoSync(0x46))
        );
        let mut b = pcr_packet(Pcr::from_ticks(0));
        b[4] = 183;
        assert_eq!(
            Packet::new_checked(&b).err(),
            Some(PacketError::BadAdaptationLength(183))
        );
    }

    #[test]
    fn edit_round_trip() {
        let mut b = pcr_packet(Pcr::from_ticks(1));
        assert!(edit::set_pcr(&mut b, Pcr::from_ticks(987_654_321_000)));
        edit::set_cc(&mut b, Cc::new(3));
        let p = Packet::new_checked(&b).unwrap();
        assert_eq!(p.pcr(), Some(Pcr::from_ticks(987_654_321_000)));
        assert_eq!(p.cc(), Cc::new(3));
    }
}
