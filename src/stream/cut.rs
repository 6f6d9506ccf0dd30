//! In and out points of a playlist item: the part of a clip that plays (sans-IO: planned
//! from the clip's offset map and the packets near the two points, read through
//! [`ReadAt`], so both servers of a pair cut the same packets).
//!
//! - **In** snaps to the first random access point at or after it (in presentation time
//!   from the clip's first frame): a video PES whose packet carries `random_access_indicator`
//!   (ISO/IEC 13818-1 §2.4.3.5), or whose first packet holds an H.264 IDR slice (NAL type 5,
//!   ISO/IEC 14496-10 §7.4.1.2), an HEVC IRAP picture (NAL types 16-21, ITU-T H.265
//!   §7.4.2.2) or an MPEG-2 sequence header (start code 0xB3, ISO/IEC 13818-2 §6.2.2). The
//!   cut starts at that PES's first packet.
//! - **Out** cuts before the first frame, in decode order, whose PTS is at or after it and
//!   above every PTS decoded before it (an I or P picture: B pictures come after their
//!   anchor in decode order): every picture kept is decodable (its references come before it
//!   in decode order) and the pictures kept are exactly those presented before that frame.
//! - **Audio** (ADTS AAC) plays from the frame nearest the in point to the last frame that
//!   ends by the out point, from wherever the muxer sent those frames ([`edge_edits`]).
//! - **Other PIDs** are cut at PES (and section) boundaries: a PID's packets before its first
//!   payload-unit start in the cut, and the packets of a PES the cut's end splits, become
//!   null packets in place (§2.4.3.3), so the datagram layout and the timeline stay those of
//!   the file. Packets without payload (a PCR-only adaptation field) are kept.
//!
//! The cut is a [`Cut`]: an offset map of the packets kept (its byte offsets are the file's,
//! its timeline starts at the cut's first packet) and the packets played as null packets.

use crate::index::{flags, interpolate, Anchor, DatagramEntry, OffsetMap, PidCc, Segment};
use crate::stream::reader::ReadAt;
use crate::ts::packet::{Cc, Packet, Pid, PACKETS_PER_DATAGRAM, PACKET_SIZE};
use crate::ts::pcr::{HZ, PTS_MODULUS};
use crate::units::Ticks27M;

const PPD: u64 = PACKETS_PER_DATAGRAM as u64;
/// Scans for a point start this far (27 MHz ticks, 2 s) before it on the packet timeline:
/// a frame is sent up to its mux delay before it is presented.
const LEAD: u64 = 2 * HZ;

/// The part of a clip an item plays.
#[derive(Debug, Clone, PartialEq)]
pub struct Cut {
    /// The offset map of the packets kept (`packets` of them, from the clip's packet
    /// `first`).
    pub map: OffsetMap,
    /// Packets of `map` played with other bytes (sorted): null packets, and the first
    /// packet of an audio PES the in point splits, rewritten to start at its next whole
    /// frame.
    pub edits: Vec<Edit>,
    /// The clip's packets `[first, end)`.
    pub first: u64,
    /// See `first`.
    pub end: u64,
    /// Where the cut starts and ends, seconds of presentation from the clip's first frame.
    pub in_s: f64,
    /// See `in_s` (the clip's end: its length).
    pub out_s: f64,
}

/// Why an item's in or out point cannot be cut.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CutError {
    /// In and out points need a video PID with timestamps.
    #[error("in and out points need a video stream with timestamps")]
    NoVideo,
    /// No random access point at or after `in`.
    #[error("no random access point (IDR, IRAP or sequence header) at or after \"in\" {0} s")]
    NoRap(f64),
    /// The cut holds fewer than two PCRs.
    #[error("the part from {in_s:.3} s to {out_s:.3} s holds fewer than two PCRs")]
    TooShort {
        /// Where it starts (snapped).
        in_s: f64,
        /// Where it ends.
        out_s: f64,
    },
}

/// A video PES start: its packet, PTS (90 kHz), and whether it is a random access point.
#[derive(Debug, Clone, Copy)]
struct VideoStart {
    packet: u64,
    pts: u64,
    rap: bool,
}

/// A packet of a cut played with other bytes: (packet of the cut's map, its bytes).
pub type Edit = (u64, [u8; PACKET_SIZE]);

/// Reads through `inner` with the packets `edits` of `map` (sorted) read as they play: a cut
/// clip as it plays, for planning its joins.
pub struct Edited<'a> {
    /// The clip's bytes.
    pub inner: &'a dyn ReadAt,
    /// Its (cut) map.
    pub map: &'a OffsetMap,
    /// The packets of `map` played with other bytes.
    pub edits: &'a [Edit],
}

impl ReadAt for Edited<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_exact_at(buf, offset)?;
        let end = offset + buf.len() as u64;
        for (p, bytes) in self.edits {
            let Some(o) = self.map.packet_offset(*p) else {
                continue;
            };
            let (a, b) = (o.max(offset), (o + PACKET_SIZE as u64).min(end));
            if a >= b {
                continue;
            }
            let from = (a - o) as usize;
            buf[(a - offset) as usize..(b - offset) as usize]
                .copy_from_slice(&bytes[from..from + (b - a) as usize]);
        }
        Ok(())
    }
}

/// A null packet (PID 0x1FFF, §2.4.3.3).
pub fn null_packet() -> [u8; PACKET_SIZE] {
    let mut b = [0xFFu8; PACKET_SIZE];
    b[..4].copy_from_slice(&[0x47, 0x1F, 0xFF, 0x10]);
    b
}

/// Packet `p` of `map`, if readable and a packet.
fn read(map: &OffsetMap, bytes: &dyn ReadAt, p: u64) -> Option<[u8; PACKET_SIZE]> {
    let mut b = [0u8; PACKET_SIZE];
    let o = map.packet_offset(p)?;
    bytes.read_exact_at(&mut b, o).ok()?;
    Packet::new_checked(&b).ok()?;
    Some(b)
}

/// The video PES start in packet `b`, if it is one.
fn video_start(video: Pid, p: u64, b: &[u8; PACKET_SIZE]) -> Option<VideoStart> {
    let pk = Packet::new_checked(b).ok()?;
    if pk.pid() != video || !pk.pusi() {
        return None;
    }
    let t = crate::ts::pes::timestamps(&pk);
    let pts = t.pts?;
    Some(VideoStart {
        packet: p,
        pts,
        rap: pk.random_access() || rap_in_payload(pk.payload()),
    })
}

/// Whether the start of a video PES payload shows a random access point (the NAL unit or
/// start code types of the module's doc).
fn rap_in_payload(pes: &[u8]) -> bool {
    // Skip the PES header (§2.4.3.7): 9 bytes + PES_header_data_length.
    if pes.len() < 9 || pes[..3] != [0, 0, 1] {
        return false;
    }
    let body = &pes[(9 + pes[8] as usize).min(pes.len())..];
    let mut h264 = None; // Some(true): H.264, Some(false): HEVC (from the access unit delimiter)
    let mut i = 0;
    while i + 4 <= body.len() {
        if body[i..i + 3] != [0, 0, 1] {
            i += 1;
            continue;
        }
        let b = body[i + 3];
        if b == 0xB3 {
            return true; // MPEG-2 sequence header
        }
        match h264 {
            None if b == 0x09 => h264 = Some(true),
            None if b >> 1 & 0x3F == 35 => h264 = Some(false),
            _ => {}
        }
        if h264 != Some(false) && b & 0x1F == 5 && b & 0x80 == 0 {
            return true; // H.264 IDR slice
        }
        if h264 == Some(false) && (16..=21).contains(&(b >> 1 & 0x3F)) {
            return true; // HEVC IRAP
        }
        i += 3;
    }
    false
}

/// `a - b` for 33-bit timestamps, signed.
fn ts_diff(a: u64, b: u64) -> i64 {
    let d = (a + PTS_MODULUS - b % PTS_MODULUS) % PTS_MODULUS;
    if d > PTS_MODULUS / 2 {
        d as i64 - PTS_MODULUS as i64
    } else {
        d as i64
    }
}

/// The first packet whose time is at or after `t`.
fn packet_at(map: &OffsetMap, t: u64) -> u64 {
    let (mut lo, mut hi) = (0u64, map.packets);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if map.packet_time(mid) < t {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Video PES starts from packet `from` on.
fn starts_from<'a>(
    map: &'a OffsetMap,
    bytes: &'a dyn ReadAt,
    video: Pid,
    from: u64,
) -> impl Iterator<Item = VideoStart> + 'a {
    (from..map.packets).filter_map(move |p| video_start(video, p, &read(map, bytes, p)?))
}

/// The lowest PTS among the clip's first frames (its presentation start).
fn first_pts(map: &OffsetMap, bytes: &dyn ReadAt, video: Pid) -> Option<u64> {
    let mut best: Option<u64> = None;
    for s in starts_from(map, bytes, video, 0).take(16) {
        best = Some(match best {
            Some(b) if ts_diff(s.pts, b) >= 0 => b,
            _ => s.pts,
        });
    }
    best
}

/// Cuts `map` (the clip's bytes at `bytes`) from `in_s` to `out_s` (seconds of presentation
/// from its first frame; `None`: to its end).
pub fn cut(
    map: &OffsetMap,
    bytes: &dyn ReadAt,
    in_s: f64,
    out_s: Option<f64>,
) -> Result<Cut, CutError> {
    let video = map.video_pid.ok_or(CutError::NoVideo)?;
    let v0 = first_pts(map, bytes, video).ok_or(CutError::NoVideo)?;
    let frame90 = map.frame_ticks().unwrap_or(HZ / 25) / 300;
    let to90 = |s: f64| (s.max(0.0) * 90_000.0).round() as i64;
    // In: the first random access point presented at or after it.
    let (first, in_pts) = if in_s <= 0.0 {
        (0, v0)
    } else {
        let from = packet_at(map, ((in_s * HZ as f64) as u64).saturating_sub(LEAD));
        starts_from(map, bytes, video, from)
            .find(|s| s.rap && ts_diff(s.pts, v0) >= to90(in_s))
            .map(|s| (s.packet, s.pts))
            .ok_or(CutError::NoRap(in_s))?
    };
    // Out: before the first new-highest PTS at or after it, in decode order.
    let last = last_pts(map, bytes, video);
    let (end, out_pts) = match out_s {
        Some(o) if to90(o) < ts_diff(last, v0) + frame90 as i64 / 2 => {
            let target = to90(o);
            let from = packet_at(map, ((o * HZ as f64) as u64).saturating_sub(LEAD)).max(first + 1);
            let mut max: Option<u64> = None;
            let mut found = None;
            for s in starts_from(map, bytes, video, from) {
                let above = max.map_or(true, |m| ts_diff(s.pts, m) > 0);
                if above && ts_diff(s.pts, v0) >= target && s.packet > first {
                    found = Some((s.packet, s.pts));
                    break;
                }
                if above {
                    max = Some(s.pts);
                }
            }
            found.unwrap_or((map.packets, last + frame90))
        }
        _ => (map.packets, last + frame90),
    };
    let in_at = ts_diff(in_pts, v0) as f64 / 90_000.0;
    let out_at = ts_diff(out_pts, v0) as f64 / 90_000.0;
    let (lo, hi, edits) = edge_edits(map, bytes, video, (first, end), (in_pts, out_pts));
    let sub =
        submap(map, bytes, video, (lo, hi), (first, end), &edits).ok_or(CutError::TooShort {
            in_s: in_at,
            out_s: out_at,
        })?;
    Ok(Cut {
        map: sub,
        edits: edits.into_iter().map(|(p, b)| (p - lo, b)).collect(),
        first: lo,
        end: hi,
        in_s: in_at,
        out_s: out_at,
    })
}

/// The highest PTS among the clip's last frames.
fn last_pts(map: &OffsetMap, bytes: &dyn ReadAt, video: Pid) -> u64 {
    let end = map.packet_time(map.packets.saturating_sub(1));
    let from = packet_at(map, end.saturating_sub(LEAD));
    let mut best: Option<u64> = None;
    for s in starts_from(map, bytes, video, from) {
        best = Some(match best {
            Some(b) if ts_diff(s.pts, b) <= 0 => b,
            _ => s.pts,
        });
    }
    best.unwrap_or(0)
}

/// What plays of a cut, per PID: the packet range it spans and the packets of that range
/// played with other bytes (clip numbering, sorted).
///
/// The video plays `[first, end)` (from the random access point to the out frame). An ADTS
/// audio PID plays its PES that holds the in point to its PES that holds the out point,
/// wherever the muxer put them (audio is usually sent a little after the video it goes
/// with): the first of them starts again at the audio frame nearest the in point (a new PES
/// header with that frame's PTS, §2.4.3.7, in the packet that holds it; the packets before
/// it become null packets), the last is cut after the last frame that ends no later than
/// half a frame past the out point ([`super::trim::cut_split_pes`]). The range of the cut is
/// the union of these; in it, a video packet outside `[first, end)` keeps only its PCR (an
/// adaptation field without payload, §2.4.3.5, or a null packet without a PCR), an audio
/// packet outside its PES becomes a null packet, and any other PID plays from its first
/// unit start to its last whole unit (the packets outside become null packets).
fn edge_edits(
    map: &OffsetMap,
    bytes: &dyn ReadAt,
    video: Pid,
    (first, end): (u64, u64),
    (in_pts, out_pts): (u64, u64),
) -> (u64, u64, Vec<Edit>) {
    let pids: Vec<Pid> = map
        .pid_cc
        .iter()
        .map(|e| e.pid)
        .filter(|&p| p != video && p != Pid::NULL)
        .collect();
    let mut edits: Vec<Edit> = Vec::new();
    let (mut lo, mut hi) = (first, end);
    let mut audio: Vec<(Pid, u64, u64)> = Vec::new();
    for &pid in &pids {
        if let Some((a, b, e)) = audio_span(map, bytes, pid, (first, end), (in_pts, out_pts)) {
            lo = lo.min(a);
            hi = hi.max(b);
            audio.push((pid, a, b));
            edits.extend(e);
        }
    }
    let mut nulls = Vec::new();
    // Audio outside its PES, video outside [first, end).
    let mut video_cc: Option<(Cc, Cc)> = None; // CC before the first kept, of the last kept
    for p in lo..hi {
        if (first..end).contains(&p) && audio.iter().all(|a| (a.1..a.2).contains(&p)) {
            continue;
        }
        let Some(b) = read(map, bytes, p) else {
            continue;
        };
        let Ok(pk) = Packet::new_checked(&b) else {
            continue;
        };
        let pid = pk.pid();
        if pid == video && !(first..end).contains(&p) {
            let cc = video_cc.get_or_insert_with(|| video_ccs(map, bytes, video, first, end));
            match pk.pcr() {
                Some(_) => {
                    let keep = if p < first { cc.0 } else { cc.1 };
                    edits.push((p, pcr_only(&b, keep)));
                }
                None => nulls.push(p),
            }
        } else if let Some(a) = audio.iter().find(|a| a.0 == pid) {
            if !(a.1..a.2).contains(&p) && pk.has_payload() {
                nulls.push(p);
            }
        }
    }
    // Other PIDs: whole units only, at the edges of [lo, hi).
    let others: Vec<Pid> = pids
        .iter()
        .copied()
        .filter(|p| !audio.iter().any(|a| a.0 == *p))
        .collect();
    if lo > 0 {
        let mut started: Vec<Pid> = Vec::new();
        for (p, pid, pusi) in payload_packets(map, bytes, &others, lo..hi) {
            if started.len() == others.len() {
                break;
            }
            if started.contains(&pid) {
                continue;
            }
            if pusi {
                started.push(pid);
            } else {
                nulls.push(p);
            }
        }
    }
    if hi < map.packets {
        // Which PIDs the end splits: their first payload packet from `hi` on does not start
        // a unit; their packets back to their last unit start become null packets.
        let mut seen: Vec<Pid> = Vec::new();
        let mut split: Vec<Pid> = Vec::new();
        for (_, pid, pusi) in payload_packets(map, bytes, &others, hi..map.packets) {
            if seen.len() == others.len() {
                break;
            }
            if seen.contains(&pid) {
                continue;
            }
            seen.push(pid);
            if !pusi {
                split.push(pid);
            }
        }
        for (p, pid, pusi) in payload_packets(map, bytes, &others, (lo..hi).rev()) {
            if split.is_empty() {
                break;
            }
            if !split.contains(&pid) {
                continue;
            }
            nulls.push(p);
            if pusi {
                split.retain(|&x| x != pid);
            }
        }
    }
    edits.extend(nulls.into_iter().map(|p| (p, null_packet())));
    edits.sort_by_key(|e| e.0);
    edits.dedup_by_key(|e| e.0);
    (lo, hi, edits)
}

/// The CC of the video packet before the first kept one and of the last kept one (what a
/// PCR-only packet outside the video's range carries: no payload, no increment, §2.4.3.3).
fn video_ccs(map: &OffsetMap, bytes: &dyn ReadAt, video: Pid, first: u64, end: u64) -> (Cc, Cc) {
    let cc = |mut it: Box<dyn Iterator<Item = u64> + '_>| {
        it.find_map(|p| {
            let b = read(map, bytes, p)?;
            let pk = Packet::new_checked(&b).ok()?;
            (pk.pid() == video && pk.has_payload()).then(|| pk.cc())
        })
    };
    let f = cc(Box::new(first..end)).unwrap_or(Cc::new(0));
    let l = cc(Box::new((first..end).rev())).unwrap_or(f);
    (Cc::new(f.value().wrapping_sub(1)), l)
}

/// `pkt` with its adaptation field (and PCR) only: no payload (adaptation_field_control
/// `10`), the CC set to `cc`.
fn pcr_only(pkt: &[u8; PACKET_SIZE], cc: Cc) -> [u8; PACKET_SIZE] {
    let mut b = [0xFFu8; PACKET_SIZE];
    let af_len = pkt[4] as usize;
    b[..4].copy_from_slice(&pkt[..4]);
    b[1] &= !0x40; // no payload, no unit start
    b[3] = 0x20 | cc.value();
    b[4] = 183;
    // The adaptation field as it was (flags, PCR, ...), then stuffing.
    let keep = af_len.min(183);
    b[5..5 + keep].copy_from_slice(&pkt[5..5 + keep]);
    b
}

/// The span of an ADTS audio PID in a cut (see [`edge_edits`]): its first and end packet and
/// the edits of its first and last PES; `None` when it is not ADTS audio (or its PES are not
/// found near the points).
fn audio_span(
    map: &OffsetMap,
    bytes: &dyn ReadAt,
    pid: Pid,
    (first, end): (u64, u64),
    (in_pts, out_pts): (u64, u64),
) -> Option<(u64, u64, Vec<Edit>)> {
    let only = [pid];
    let from = packet_at(map, map.packet_time(first).saturating_sub(LEAD));
    let to = packet_at(map, map.packet_time(end.saturating_sub(1)) + LEAD).min(map.packets);
    let starts: Vec<(u64, u64)> = payload_packets(map, bytes, &only, from..to)
        .filter(|x| x.2)
        .filter_map(|(p, _, _)| {
            let b = read(map, bytes, p)?;
            let pk = Packet::new_checked(&b).ok()?;
            Some((p, crate::ts::pes::timestamps(&pk).pts?))
        })
        .collect();
    // The PES holding a point: the last one that starts at or before it.
    let holding = |t: u64| starts.iter().rposition(|s| ts_diff(s.1, t) <= 0);
    let h = holding(in_pts).unwrap_or(0);
    let t = holding(out_pts.wrapping_sub(1))?;
    if t <= h {
        return None;
    }
    let next_start = |i: usize| starts.get(i + 1).map_or(map.packets, |s| s.0);
    let packets_of = |i: usize| -> Option<Vec<super::trim::PesPacket>> {
        payload_packets(map, bytes, &only, starts[i].0..next_start(i))
            .map(|(p, _, _)| pes_packet(map, bytes, p))
            .collect()
    };
    // A PES that cannot be cut at a frame is left out whole (the PES after the first, or
    // the one before the last).
    let mut edits = Vec::new();
    let a = match packets_of(h).and_then(|pes| audio_head(&pes, in_pts)) {
        Some(e) => {
            edits.extend(e);
            starts[h].0
        }
        None => starts[h + 1].0,
    };
    let b = match packets_of(t)
        .and_then(|pes| super::trim::cut_split_pes(&pes, out_pts % PTS_MODULUS))
    {
        Some(e) => {
            edits.extend(e);
            next_start(t)
        }
        None => starts[t].0,
    };
    // An ADTS PID at all: its first PES parses.
    super::trim::parse_adts(&packets_of(h)?, false)?;
    Some((a, b, edits))
}

/// The first PES of an audio span (its packets, whole) started again at the ADTS frame
/// nearest `in_pts` (ISO/IEC 13818-7 §6.2): the packet holding that frame's start gets a PES
/// header with the frame's PTS (§2.4.3.7) in place of the bytes before it (adaptation field
/// stuffing, §2.4.3.5, takes up the difference), the packets before it become null packets,
/// the packets after it are unchanged. `None` when the PES is not ADTS audio or no frame
/// start leaves room for the header.
fn audio_head(pes: &[super::trim::PesPacket], in_pts: u64) -> Option<Vec<Edit>> {
    let a = super::trim::parse_adts(pes, false)?;
    let mut t = a.pts;
    for (k, &(off, dur)) in a.frames.iter().enumerate() {
        // Frames that end before the in point by more than half a frame are dropped.
        if ts_diff(t + dur / 2, in_pts) < 0 {
            t += dur;
            continue;
        }
        if k == 0 {
            return Some(Vec::new()); // the PES starts there already
        }
        // The packet holding this frame's start, and what it keeps.
        let j = a.starts.partition_point(|&x| x <= off) - 1;
        let e = (a.starts.get(j + 1).copied().unwrap_or(a.bytes.len())).min(a.end);
        let header = 14;
        if header + (e - off) > PACKET_SIZE - 5 {
            t += dur;
            continue; // no room for the header in that packet: the next frame
        }
        let mut payload = Vec::with_capacity(header + e - off);
        let len = if a.pes_len == 0 { 0 } else { 8 + a.end - off };
        payload.extend_from_slice(&[0, 0, 1, a.bytes[3]]);
        payload.extend_from_slice(&(len as u16).to_be_bytes());
        payload.extend_from_slice(&[0x80, 0x80, 5]);
        payload.extend_from_slice(&crate::ts::pes::encode_pts(t % PTS_MODULUS));
        payload.extend_from_slice(&a.bytes[off..e]);
        let keep = &pes[j];
        let mut out: Vec<Edit> = pes[..j].iter().map(|x| (x.p, null_packet())).collect();
        let hdr = [
            keep.bytes[0],
            keep.bytes[1] | 0x40,
            keep.bytes[2],
            keep.bytes[3],
        ];
        out.push((keep.p, super::trim::packet_with(hdr, &payload)));
        return Some(out);
    }
    None
}

/// Packet `p` as a [`super::trim::PesPacket`].
fn pes_packet(map: &OffsetMap, bytes: &dyn ReadAt, p: u64) -> Option<super::trim::PesPacket> {
    let b = read(map, bytes, p)?;
    let pk = Packet::new_checked(&b).ok()?;
    let payload_at = PACKET_SIZE - pk.payload().len();
    Some(super::trim::PesPacket {
        p,
        bytes: b,
        payload_at,
    })
}

/// The packets in `range` of one of `pids` that carry a payload: (packet, PID, whether it
/// starts a unit).
fn payload_packets<'a>(
    map: &'a OffsetMap,
    bytes: &'a dyn ReadAt,
    pids: &'a [Pid],
    range: impl Iterator<Item = u64> + 'a,
) -> impl Iterator<Item = (u64, Pid, bool)> + 'a {
    range.filter_map(move |p| {
        let b = read(map, bytes, p)?;
        let pk = Packet::new_checked(&b).ok()?;
        (pids.contains(&pk.pid()) && pk.has_payload()).then(|| (p, pk.pid(), pk.pusi()))
    })
}

/// The number of the video frame that starts at packet `p` (a video PES start): the video
/// PES starts before it.
fn frame_number(map: &OffsetMap, bytes: &dyn ReadAt, video: Pid, p: u64) -> u64 {
    if p >= map.packets {
        return map.frames as u64;
    }
    let d = (p / PPD) as usize;
    let Some(e) = map.datagrams.get(d) else {
        return 0;
    };
    let base = d as u64 * PPD;
    let is_start = |q: u64| {
        read(map, bytes, q)
            .and_then(|b| video_start(video, q, &b))
            .is_some()
    };
    let k = (base..p).filter(|&q| is_start(q)).count() as u64;
    let started_before = map.datagrams[..d]
        .iter()
        .any(|x| x.flags & flags::FRAME_START != 0);
    if is_start(base) || !started_before {
        e.frame as u64 + k
    } else {
        e.frame as u64 + k + 1
    }
}

/// The offset map of the clip's packets `[first, end)`; `None` with fewer than two PCRs.
fn submap(
    map: &OffsetMap,
    bytes: &dyn ReadAt,
    video: Pid,
    (first, end): (u64, u64),
    (video_first, video_end): (u64, u64),
    edits: &[Edit],
) -> Option<OffsetMap> {
    let packets = end - first;
    let parent: Vec<Anchor> = map
        .anchors
        .iter()
        .filter(|a| (first..end).contains(&a.packet))
        .copied()
        .collect();
    if parent.len() < 2 {
        return None;
    }
    let t0 = interpolate(&parent[..2], first);
    let anchors: Vec<Anchor> = parent
        .iter()
        .map(|a| Anchor {
            packet: a.packet - first,
            time: a.time.saturating_sub(t0),
            pcr: a.pcr,
        })
        .collect();
    let mut segments = Vec::new();
    for s in &map.segments {
        let (a, b) = (
            s.first_packet.max(first),
            (s.first_packet + s.packets).min(end),
        );
        if a < b {
            segments.push(Segment {
                byte_offset: s.byte_offset + (a - s.first_packet) * PACKET_SIZE as u64,
                first_packet: a - first,
                packets: b - a,
            });
        }
    }
    let n_in = frame_number(map, bytes, video, video_first);
    let n_out = frame_number(map, bytes, video, video_end);
    let mut datagrams = Vec::new();
    for d in 0..packets.div_ceil(PPD) {
        let q = first + d * PPD;
        let mut fl = 0;
        if anchors
            .iter()
            .any(|a| (d * PPD..(d + 1) * PPD).contains(&a.packet))
        {
            fl |= flags::HAS_PCR;
        }
        for pd in [q / PPD, (q + PPD - 1).min(end - 1) / PPD] {
            if let Some(e) = map.datagrams.get(pd as usize) {
                fl |= e.flags & flags::FRAME_START;
            }
        }
        let frame = map
            .datagrams
            .get((q / PPD) as usize)
            .map_or(0, |e| (e.frame as u64).saturating_sub(n_in)) as u32;
        datagrams.push(DatagramEntry {
            byte_offset: map.packet_offset(q).unwrap_or(0),
            time: Ticks27M(interpolate(&anchors, d * PPD)),
            flags: fl,
            frame,
        });
    }
    // CC of the first and last payload packet kept per PID: one scan from each end, until
    // every PID is seen.
    let want = map.pid_cc.iter().filter(|e| e.pid != Pid::NULL).count();
    let scan = |range: &mut dyn Iterator<Item = u64>| -> Vec<(Pid, Cc)> {
        let mut found: Vec<(Pid, Cc)> = Vec::new();
        for p in range {
            if found.len() == want {
                break;
            }
            // As played: an edited packet's own bytes.
            let b = match edits.binary_search_by_key(&p, |e| e.0) {
                Ok(i) => edits[i].1,
                Err(_) => match read(map, bytes, p) {
                    Some(b) => b,
                    None => continue,
                },
            };
            let Ok(pk) = Packet::new_checked(&b) else {
                continue;
            };
            if pk.pid() != Pid::NULL && pk.has_payload() && !found.iter().any(|f| f.0 == pk.pid()) {
                found.push((pk.pid(), pk.cc()));
            }
        }
        found
    };
    let firsts = scan(&mut (first..end));
    let lasts = scan(&mut (first..end).rev());
    let mut pid_cc = Vec::new();
    for e in &map.pid_cc {
        if e.pid == Pid::NULL {
            pid_cc.push(*e);
            continue;
        }
        let get = |v: &[(Pid, Cc)]| v.iter().find(|f| f.0 == e.pid).map(|f| f.1);
        let (Some(f), Some(l)) = (get(&firsts), get(&lasts)) else {
            continue;
        };
        pid_cc.push(PidCc {
            pid: e.pid,
            first: f,
            last: l,
            advance: l.add(1).since(f),
        });
    }
    let identity = crate::index::AssetIdentity {
        size: map.identity.size,
        hash: crate::index::hash_bytes(
            &[
                map.identity.hash.to_le_bytes().as_slice(),
                &first.to_le_bytes(),
                &end.to_le_bytes(),
            ]
            .concat(),
        )
        .hash,
    };
    Some(OffsetMap {
        identity,
        packets,
        segments,
        loop_period: crate::index::timeline::round_up_300(interpolate(&anchors, packets)),
        anchors,
        pcr_pid: map.pcr_pid,
        video_pid: map.video_pid,
        frame_rate: map.frame_rate,
        frames: n_out.saturating_sub(n_in) as u32,
        datagrams,
        pid_cc,
    })
}
