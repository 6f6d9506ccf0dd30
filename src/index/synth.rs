//! Synthetic transport streams with exactly known timing, for tests (here and in other
//! modules): a PAT, a PMT (program 1, video + PCR on PID 0x100), a video PID with PCRs and
//! PES starts, and null packets, at a constant `ticks_per_packet`.
//!
//! The PCR of packet `i` is `pcr_start + i * ticks_per_packet` (mod 2^33 x 300), so the
//! timeline time of packet `i` is exactly `i * ticks_per_packet`.

use crate::ts::packet::{PACKET_SIZE, SYNC_BYTE};
use crate::ts::pcr::{Pcr, PTS_MODULUS};
use crate::ts::psi::CRC32_MPEG2;

/// PID of the PMT.
pub const PMT_PID: u16 = 0x1000;
/// PID of the video stream (and of the PCR).
pub const VIDEO_PID: u16 = 0x100;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthOptions {
    /// Packets to generate.
    pub packets: u64,
    /// 27 MHz ticks per packet (e.g. 18_048 for 188 bytes at 2.25 Mb/s).
    pub ticks_per_packet: u64,
    /// PCR of packet 0.
    pub pcr_start: u64,
    /// A PCR on every video packet `i` with `i % pcr_every == 2` (0: no PCR at all).
    pub pcr_every: u64,
    /// A PES (frame) start on every video packet `i` with `i % frame_every == 3`.
    pub frame_every: u64,
    /// PTS step per frame, 90 kHz ticks.
    pub frame_delta90: u64,
    /// PAT at `i % psi_every == 0`, PMT at `i % psi_every == 1`.
    pub psi_every: u64,
    /// From this packet on, PCR values jump by `.1` ticks (a PCR discontinuity).
    pub pcr_jump: Option<(u64, u64)>,
    /// Set `discontinuity_indicator` on the PCR packets at these packet indices.
    pub flag_discontinuity_at: Vec<u64>,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            packets: 2000,
            ticks_per_packet: 18_048,
            pcr_start: 1_000_000,
            pcr_every: 20,
            frame_every: 40,
            frame_delta90: 3600,
            psi_every: 500,
            pcr_jump: None,
            flag_discontinuity_at: Vec::new(),
        }
    }
}

/// Kind of the packet at index `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// PAT.
    Pat,
    /// PMT.
    Pmt,
    /// Null packet.
    Null,
    /// Video packet (maybe with PCR / PES start).
    Video,
}

/// The kind of packet `i` under `o`.
pub fn slot(o: &SynthOptions, i: u64) -> Slot {
    if i % o.psi_every == 0 {
        Slot::Pat
    } else if i % o.psi_every == 1 {
        Slot::Pmt
    } else if i % 10 == 9 {
        Slot::Null
    } else {
        Slot::Video
    }
}

/// Packet `i` carries a PCR.
pub fn has_pcr(o: &SynthOptions, i: u64) -> bool {
    slot(o, i) == Slot::Video && o.pcr_every > 0 && i % o.pcr_every == 2
}

/// Packet `i` starts a frame.
pub fn is_frame_start(o: &SynthOptions, i: u64) -> bool {
    slot(o, i) == Slot::Video && o.frame_every > 0 && i % o.frame_every == 3
}

fn section(mut s: Vec<u8>) -> Vec<u8> {
    let crc = CRC32_MPEG2.checksum(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

fn pat() -> Vec<u8> {
    section(vec![
        0x00,
        0xB0,
        0x0D,
        0x00,
        0x01,
        0xC1,
        0x00,
        0x00,
        0x00,
        0x01,
        0xE0 | (PMT_PID >> 8) as u8,
        PMT_PID as u8,
    ])
}

fn pmt() -> Vec<u8> {
    let v = VIDEO_PID;
    section(vec![
        0x02,
        0xB0,
        0x12,
        0x00,
        0x01,
        0xC1,
        0x00,
        0x00,
        0xE0 | (v >> 8) as u8,
        v as u8,
        0xF0,
        0x00,
        0x1B,
        0xE0 | (v >> 8) as u8,
        v as u8,
        0xF0,
        0x00,
    ])
}

fn write_pts(b: &mut [u8], prefix: u8, v: u64) {
    b[0] = prefix << 4 | (((v >> 30) & 0x07) as u8) << 1 | 1;
    b[1] = (v >> 22) as u8;
    b[2] = (((v >> 15) & 0x7F) as u8) << 1 | 1;
    b[3] = (v >> 7) as u8;
    b[4] = ((v & 0x7F) as u8) << 1 | 1;
}

/// Generates the stream.
pub fn synth_ts(o: &SynthOptions) -> Vec<u8> {
    let mut out = Vec::with_capacity(o.packets as usize * PACKET_SIZE);
    let mut cc = [0u8; 3]; // PAT, PMT, video
    let mut frame = 0u64;
    for i in 0..o.packets {
        let mut b = [0xFFu8; PACKET_SIZE];
        b[0] = SYNC_BYTE;
        match slot(o, i) {
            Slot::Pat | Slot::Pmt => {
                let (pid, k, sec) = if slot(o, i) == Slot::Pat {
                    (0u16, 0, pat())
                } else {
                    (PMT_PID, 1, pmt())
                };
                b[1] = 0x40 | (pid >> 8) as u8;
                b[2] = pid as u8;
                b[3] = 0x10 | cc[k];
                cc[k] = (cc[k] + 1) & 0x0F;
                b[4] = 0;
                b[5..5 + sec.len()].copy_from_slice(&sec);
            }
            Slot::Null => {
                b[1] = 0x1F;
                b[2] = 0xFF;
                b[3] = 0x10;
                b[4..].fill(0);
            }
            Slot::Video => {
                let pusi = is_frame_start(o, i);
                b[1] = (if pusi { 0x40 } else { 0 }) | (VIDEO_PID >> 8) as u8;
                b[2] = VIDEO_PID as u8;
                let mut p = 4;
                if has_pcr(o, i) {
                    b[3] = 0x30 | cc[2];
                    b[4] = 7;
                    let disc = o.flag_discontinuity_at.contains(&i);
                    b[5] = 0x10 | if disc { 0x80 } else { 0 };
                    let mut t = o.pcr_start + i * o.ticks_per_packet;
                    if let Some((at, jump)) = o.pcr_jump {
                        if i >= at {
                            t += jump;
                        }
                    }
                    b[6..12].copy_from_slice(&Pcr::from_ticks(t).to_field());
                    p = 12;
                } else {
                    b[3] = 0x10 | cc[2];
                }
                cc[2] = (cc[2] + 1) & 0x0F;
                if pusi {
                    let pts = (90_000 + frame * o.frame_delta90) % PTS_MODULUS;
                    frame += 1;
                    b[p..p + 9].copy_from_slice(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5]);
                    write_pts(&mut b[p + 9..p + 14], 0x2, pts);
                    p += 14;
                }
                b[p..].fill(0xAA);
            }
        }
        out.extend_from_slice(&b);
    }
    out
}
