//! The audio at a loop point (sans-IO: planned once from the asset's bytes through
//! [`ReadAt`]).
//!
//! With the video cadence ([`super::cadence`]) the next pass's first video frame comes exactly
//! one frame after the last; the audio of a pass, though, usually ends a little later than its
//! video (a muxer packs several AAC frames per PES, 8 in the bundled assets), so the next
//! pass's first audio frame would start before the last one of the pass before has played
//! out: an overlap of one or two AAC frames, which decoders see as audio timestamps going
//! back. The trim cuts the last audio PES of each AAC (ADTS) PID at an ADTS frame boundary
//! (ISO/IEC 13818-7 §6.2), keeping the frames that end no later than half a frame past the
//! next pass's first audio frame: what is left is a gap or an overlap of at most half a frame.
//!
//! In the bytes (ISO/IEC 13818-1 §2.4.3.6, §2.4.3.5): the PES's `PES_packet_length` shrinks by
//! the bytes cut; the packet in which the cut falls keeps its first bytes and fills the rest
//! with adaptation-field stuffing; the packets after it become null packets in place (the
//! datagram layout and the timeline do not move); the PID's CC advance per pass counts only
//! the packets kept. A pass followed by no other (the last of a finite session) is not
//! trimmed. Audio other than ADTS, or a last PES that a PCR or another PID's data shares, is
//! left alone.

use super::cut::null_packet;
use super::reader::ReadAt;
use crate::index::OffsetMap;
use crate::ts::packet::{Cc, Packet, Pid, PACKET_SIZE, SYNC_BYTE};
use crate::ts::pcr::{HZ, PTS_MODULUS};
use crate::ts::pes;

/// How far back from the end of a pass the last audio PES is looked for (27 MHz ticks, 2 s).
const LOOK_BACK: u64 = 2 * HZ;
/// How far into a pass its first audio PES is looked for (27 MHz ticks, 2 s).
const LOOK_AHEAD: u64 = 2 * HZ;

/// Packet rewrites that trim the audio at the end of every pass followed by another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudioTrim {
    /// Asset packet -> its bytes in a trimmed pass (sorted by packet).
    replaced: Vec<(u64, Box<[u8; PACKET_SIZE]>)>,
    /// CC advance per pass of the trimmed PIDs.
    advance: Vec<(Pid, u8)>,
    /// Per trimmed PID: (PID, AAC frames cut, ticks of 90 kHz the last kept frame ends
    /// before (negative: after) the next pass's first frame starts).
    report: Vec<(Pid, u32, i64)>,
}

/// One packet of a PES, as read.
pub(crate) struct PesPacket {
    /// Its packet index in the map.
    pub p: u64,
    /// Its bytes.
    pub bytes: [u8; PACKET_SIZE],
    /// Offset of the payload in the packet.
    pub payload_at: usize,
}

/// An ADTS audio PES reassembled from its packets.
pub(crate) struct AdtsPes {
    /// The PES bytes (every packet's payload, back to back).
    pub bytes: Vec<u8>,
    /// Where each packet's payload starts in `bytes`.
    pub starts: Vec<usize>,
    /// `PES_packet_length` (0: unbounded).
    pub pes_len: usize,
    /// Its PTS (90 kHz).
    pub pts: u64,
    /// Where the PES ends in `bytes`.
    pub end: usize,
    /// The ADTS frames: (offset in `bytes`, duration in 90 kHz ticks).
    pub frames: Vec<(usize, u64)>,
    /// Where the last whole frame ends in `bytes`.
    pub frames_end: usize,
}

/// Reassembles a PES (its packets in order) and lists its ADTS frames (ISO/IEC 13818-7
/// §6.2); `None` when it is not an MPEG audio PES of whole ADTS frames. `split`: the packets
/// are the first part of a PES only (the frames are those that are whole in them; `end`
/// stays where the PES says it ends).
pub(crate) fn parse_adts(pes: &[PesPacket], split: bool) -> Option<AdtsPes> {
    // The PES header (up to its length field and flags) must sit in the first packet.
    if pes.is_empty() || PACKET_SIZE - pes[0].payload_at < 9 {
        return None;
    }
    // The PES bytes and where each packet's payload starts in them.
    let mut bytes = Vec::new();
    let mut starts = Vec::new();
    for pk in pes {
        starts.push(bytes.len());
        bytes.extend_from_slice(&pk.bytes[pk.payload_at..]);
    }
    if bytes.len() < 9 || bytes[..3] != [0, 0, 1] || !(0xC0..=0xDF).contains(&bytes[3]) {
        return None; // not an MPEG audio stream_id (§2.4.3.7, Table 2-22)
    }
    let pes_len = u16::from_be_bytes([bytes[4], bytes[5]]) as usize;
    let header = 9 + bytes[8] as usize;
    let first = Packet::new_checked(&pes[0].bytes).ok()?;
    let pts = pes::timestamps(&first).pts?;
    let end = if pes_len == 0 {
        bytes.len()
    } else {
        (6 + pes_len).min(bytes.len())
    };
    // ADTS frames: (offset in the PES, duration in 90 kHz).
    let mut frames = Vec::new();
    let mut at = header;
    while at + 7 <= end {
        let h = &bytes[at..at + 7];
        if h[0] != 0xFF || h[1] & 0xF6 != 0xF0 {
            return None; // not ADTS (ISO/IEC 13818-7 §6.2: syncword 0xFFF, layer 00)
        }
        let len = ((h[3] as usize & 3) << 11) | ((h[4] as usize) << 3) | (h[5] as usize >> 5);
        let rate = match h[2] >> 2 & 0xF {
            0 => 96_000,
            1 => 88_200,
            2 => 64_000,
            3 => 48_000,
            4 => 44_100,
            5 => 32_000,
            6 => 24_000,
            7 => 22_050,
            8 => 16_000,
            9 => 12_000,
            10 => 11_025,
            11 => 8_000,
            12 => 7_350,
            _ => return None,
        };
        let blocks = (h[6] & 3) as u64 + 1;
        if split && len >= 7 && at + len > bytes.len() {
            break; // the first frame the split leaves partial
        }
        if len < 7 || at + len > end {
            return None;
        }
        frames.push((at, blocks * 1024 * 90_000 / rate));
        at += len;
    }
    if frames.is_empty() {
        return None;
    }
    let end = if split && pes_len != 0 {
        6 + pes_len
    } else {
        end
    };
    Some(AdtsPes {
        bytes,
        starts,
        pes_len,
        pts,
        end,
        frames,
        frames_end: at,
    })
}

impl AudioTrim {
    /// Plans the trim for passes `period` ticks apart.
    pub fn plan(map: &OffsetMap, period: u64, asset: &dyn ReadAt) -> AudioTrim {
        let next = |pid: Pid| first_pts(map, pid, asset).map(|f| (f + period / 300) % PTS_MODULUS);
        Self::plan_before(map, asset, &next)
    }

    /// Plans the trim of the end of `map` before a clip whose first audio PES of `pid` is
    /// presented at `next(pid)` (90 kHz, on `map`'s own timestamps).
    pub fn plan_before(
        map: &OffsetMap,
        asset: &dyn ReadAt,
        next: &dyn Fn(Pid) -> Option<u64>,
    ) -> AudioTrim {
        let mut t = AudioTrim::default();
        if map.packets < 2 {
            return t;
        }
        let read = |p: u64| read_packet(map, asset, p);
        for (pid, pes) in last_pes_per_pid(map, &read) {
            if Some(pid) == map.video_pid || pid == map.pcr_pid {
                continue;
            }
            let Some(next) = next(pid) else {
                continue;
            };
            if let Some(done) = trim_one(&pes, next, false) {
                let first_cc = map.pid_cc.iter().find(|e| e.pid == pid).map(|e| e.first);
                let Some(first_cc) = first_cc else { continue };
                t.advance.push((pid, done.last_cc.add(1).since(first_cc)));
                t.report.push((pid, done.frames_cut, done.gap));
                t.replaced.extend(done.replaced);
            }
        }
        t.replaced.sort_by_key(|r| r.0);
        t
    }

    /// The bytes of asset packet `p` in a trimmed pass, if the trim rewrites it.
    pub fn packet(&self, p: u64) -> Option<&[u8; PACKET_SIZE]> {
        self.replaced
            .binary_search_by_key(&p, |r| r.0)
            .ok()
            .map(|i| &*self.replaced[i].1)
    }

    /// The CC advance per pass of `pid` if the trim changes it.
    pub fn advance(&self, pid: Pid) -> Option<u8> {
        self.advance.iter().find(|a| a.0 == pid).map(|a| a.1)
    }

    /// Per trimmed PID: AAC frames cut and the gap left (90 kHz ticks, negative: overlap).
    pub fn report(&self) -> &[(Pid, u32, i64)] {
        &self.report
    }

    /// Whether anything is trimmed.
    pub fn is_empty(&self) -> bool {
        self.replaced.is_empty()
    }
}

/// The last complete PES of every PID that starts one within [`LOOK_BACK`] of the end, with
/// no PCR in it.
fn last_pes_per_pid(
    map: &OffsetMap,
    read: &dyn Fn(u64) -> Option<[u8; PACKET_SIZE]>,
) -> Vec<(Pid, Vec<PesPacket>)> {
    let end_time = map.packet_time(map.packets - 1);
    let mut open: Vec<(Pid, Vec<PesPacket>, bool)> = Vec::new(); // (pid, packets backwards, spoiled)
    let mut done = Vec::new();
    let mut p = map.packets;
    while p > 0 {
        p -= 1;
        if end_time.saturating_sub(map.packet_time(p)) > LOOK_BACK {
            break;
        }
        let Some(b) = read(p) else { continue };
        let Ok(pk) = Packet::new_checked(&b) else {
            continue;
        };
        let pid = pk.pid();
        if pid == Pid::NULL || done.iter().any(|(d, _): &(Pid, Vec<PesPacket>)| *d == pid) {
            continue;
        }
        let i = match open.iter().position(|o| o.0 == pid) {
            Some(i) => i,
            None => {
                open.push((pid, Vec::new(), false));
                open.len() - 1
            }
        };
        if pk.pcr().is_some() || pk.scrambled() {
            open[i].2 = true;
        }
        if !pk.has_payload() {
            continue;
        }
        let payload_at = PACKET_SIZE - pk.payload().len();
        open[i].1.push(PesPacket {
            p,
            bytes: b,
            payload_at,
        });
        if pk.pusi() {
            let (pid, mut pkts, spoiled) = open.swap_remove(i);
            pkts.reverse();
            if !spoiled {
                done.push((pid, pkts));
            } else {
                done.push((pid, Vec::new()));
            }
        }
    }
    done.retain(|d| !d.1.is_empty());
    done
}

/// Packet `p` of `map` read from `asset` (`None`: unreadable or not a packet).
fn read_packet(map: &OffsetMap, asset: &dyn ReadAt, p: u64) -> Option<[u8; PACKET_SIZE]> {
    let mut b = [0u8; PACKET_SIZE];
    let o = map.packet_offset(p)?;
    asset.read_exact_at(&mut b, o).ok()?;
    (b[0] == SYNC_BYTE).then_some(b)
}

/// The PTS of the first PES of `pid` within [`LOOK_AHEAD`] of the start of `map`.
pub fn first_pts(map: &OffsetMap, pid: Pid, asset: &dyn ReadAt) -> Option<u64> {
    first_pts_by(map, pid, &|p| read_packet(map, asset, p))
}

fn first_pts_by(
    map: &OffsetMap,
    pid: Pid,
    read: &dyn Fn(u64) -> Option<[u8; PACKET_SIZE]>,
) -> Option<u64> {
    let t0 = map.packet_time(0);
    for p in 0..map.packets {
        if map.packet_time(p).saturating_sub(t0) > LOOK_AHEAD {
            return None;
        }
        let Some(b) = read(p) else { continue };
        let Ok(pk) = Packet::new_checked(&b) else {
            continue;
        };
        if pk.pid() == pid && pk.pusi() {
            return pes::timestamps(&pk).pts;
        }
    }
    None
}

struct Trimmed {
    replaced: Vec<(u64, Box<[u8; PACKET_SIZE]>)>,
    last_cc: Cc,
    frames_cut: u32,
    gap: i64,
}

/// Trims one PES (its packets in order) so that its audio ends at most half a frame after
/// `next` (90 kHz); `None` when it holds no ADTS audio or needs no trim.
fn trim_one(pes: &[PesPacket], next: u64, split: bool) -> Option<Trimmed> {
    let AdtsPes {
        starts,
        pes_len,
        pts,
        end,
        frames,
        frames_end,
        ..
    } = parse_adts(pes, split)?;
    // Keep the frames that end no later than half a frame after `next`.
    let signed = |a: u64| -> i64 {
        let d = (a + PTS_MODULUS - next) % PTS_MODULUS;
        if d > PTS_MODULUS / 2 {
            d as i64 - PTS_MODULUS as i64
        } else {
            d as i64
        }
    };
    let mut t = pts;
    let mut keep = 0;
    for &(_, d) in &frames {
        if signed(t + d) > d as i64 / 2 {
            break;
        }
        t += d;
        keep += 1;
    }
    if (keep == frames.len() && !split) || keep == 0 {
        // Nothing to cut, or the whole PES (its PID's packet before it is not known here).
        return None;
    }
    // Bytes of the PES kept.
    let cut = frames.get(keep).map_or(frames_end, |f| f.0);
    let dropped = end - cut;
    let mut replaced = Vec::new();
    let mut last_cc = None;
    for (n, pk) in pes.iter().enumerate() {
        let (s, e) = (starts[n], starts[n] + (PACKET_SIZE - pk.payload_at));
        let mut b = pk.bytes;
        if s >= cut {
            replaced.push((pk.p, Box::new(null_packet())));
            continue;
        }
        let mut payload_at = pk.payload_at;
        if e > cut {
            b = stuffed(&b, pk.payload_at, cut - s);
            payload_at = PACKET_SIZE - (cut - s);
        }
        if n == 0 && pes_len != 0 {
            let at = payload_at + 4;
            let v = (pes_len - dropped) as u16;
            b[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
        if b != pk.bytes {
            replaced.push((pk.p, Box::new(b)));
        }
        last_cc = Some(Cc::new(b[3]));
    }
    Some(Trimmed {
        replaced,
        last_cc: last_cc?,
        frames_cut: (frames.len() - keep) as u32,
        gap: -signed(t),
    })
}

/// The packets of an ADTS audio PES that a cut's end splits (`pes`: its packets before the
/// end), cut at the last whole frame that ends no later than half a frame after `next`
/// (90 kHz): the packet of the cut keeps its first bytes, the packets after it become null
/// packets, `PES_packet_length` counts the bytes kept. `None` when it is not ADTS audio or
/// no frame is kept (the caller nulls them all).
pub(crate) fn cut_split_pes(pes: &[PesPacket], next: u64) -> Option<Vec<(u64, [u8; PACKET_SIZE])>> {
    let done = trim_one(pes, next, true)?;
    Some(done.replaced.into_iter().map(|(p, b)| (p, *b)).collect())
}

/// `pkt` with only the first `keep` payload bytes (of the payload at `payload_at`), the
/// rest of the packet filled by adaptation-field stuffing before them (§2.4.3.5).
fn stuffed(pkt: &[u8; PACKET_SIZE], payload_at: usize, keep: usize) -> [u8; PACKET_SIZE] {
    let mut hdr = [pkt[0], pkt[1], pkt[2], pkt[3]];
    hdr[3] &= 0xCF;
    packet_with(hdr, &pkt[payload_at..payload_at + keep])
}

/// A packet with the header `hdr` (its adaptation field control set to adaptation field and
/// payload) carrying `payload` (at most 183 bytes) at its end, adaptation-field stuffing
/// before it (§2.4.3.5).
pub(crate) fn packet_with(hdr: [u8; 4], payload: &[u8]) -> [u8; PACKET_SIZE] {
    let mut b = [0xFFu8; PACKET_SIZE];
    b[..4].copy_from_slice(&hdr);
    b[3] = (b[3] & 0xCF) | 0x30; // adaptation field and payload
    let af_len = PACKET_SIZE - 5 - payload.len(); // bytes after the length byte
    b[4] = af_len as u8;
    if af_len > 0 {
        b[5] = 0x00; // no flags; the rest is stuffing (0xFF)
    }
    b[PACKET_SIZE - payload.len()..].copy_from_slice(payload);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stuffed_packet_keeps_its_first_payload_bytes() {
        let mut pkt = [0u8; PACKET_SIZE];
        pkt[..4].copy_from_slice(&[SYNC_BYTE, 0x41, 0x01, 0x17]); // PUSI, PID 0x101, CC 7
        for (i, b) in pkt[4..].iter_mut().enumerate() {
            *b = i as u8;
        }
        for keep in [1usize, 100, 182, 183] {
            let s = stuffed(&pkt, 4, keep);
            let p = Packet::new_checked(&s).unwrap();
            assert_eq!(p.pid(), Pid::new(0x101));
            assert_eq!(p.cc(), Cc::new(7));
            assert!(p.pusi());
            assert_eq!(p.payload(), &pkt[4..4 + keep], "keep {keep}");
        }
        let n = null_packet();
        let p = Packet::new_checked(&n).unwrap();
        assert_eq!(p.pid(), Pid::NULL);
        assert_eq!(p.payload().len(), 184);
    }

    #[test]
    fn an_asset_without_audio_pes_is_not_trimmed() {
        let (bytes, map) =
            crate::stream::testutil::asset(&crate::stream::testutil::Spec::default());
        let t = AudioTrim::plan(&map, map.loop_period, &bytes);
        assert!(t.is_empty());
        assert!(t.report().is_empty());
    }
}
