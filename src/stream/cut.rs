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
    /// Packets of `map` played as null packets (sorted).
    pub nulls: Vec<u64>,
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

/// Reads through `inner` with the packets `nulls` of `map` (sorted) read as null packets
/// (ISO/IEC 13818-1 §2.4.3.3): a cut clip as it plays, for planning its joins.
pub struct Nulled<'a> {
    /// The clip's bytes.
    pub inner: &'a dyn ReadAt,
    /// Its (cut) map.
    pub map: &'a OffsetMap,
    /// The packets of `map` played as null packets.
    pub nulls: &'a [u64],
}

impl ReadAt for Nulled<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_exact_at(buf, offset)?;
        let end = offset + buf.len() as u64;
        for &p in self.nulls {
            let Some(o) = self.map.packet_offset(p) else {
                continue;
            };
            let (a, b) = (o.max(offset), (o + PACKET_SIZE as u64).min(end));
            if a >= b {
                continue;
            }
            let null = null_packet();
            let from = (a - o) as usize;
            buf[(a - offset) as usize..(b - offset) as usize]
                .copy_from_slice(&null[from..from + (b - a) as usize]);
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
    let nulls = edge_nulls(map, bytes, video, first, end);
    let sub = submap(map, bytes, video, first, end, &nulls).ok_or(CutError::TooShort {
        in_s: in_at,
        out_s: out_at,
    })?;
    Ok(Cut {
        map: sub,
        nulls: nulls.into_iter().map(|p| p - first).collect(),
        first,
        end,
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

/// The clip packets in `[first, end)` that play as null packets: per PID other than the
/// video and the null PID, the payload packets before its first payload-unit start, and
/// those of a PES (or section) that `end` splits.
fn edge_nulls(map: &OffsetMap, bytes: &dyn ReadAt, video: Pid, first: u64, end: u64) -> Vec<u64> {
    let pids: Vec<Pid> = map
        .pid_cc
        .iter()
        .map(|e| e.pid)
        .filter(|&p| p != video && p != Pid::NULL)
        .collect();
    let mut nulls = Vec::new();
    if first > 0 {
        let mut started: Vec<Pid> = Vec::new();
        for (p, pid, pusi) in payload_packets(map, bytes, &pids, first..end) {
            if started.len() == pids.len() {
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
    if end < map.packets {
        // Which PIDs the end splits: their first payload packet from `end` on does not
        // start a unit.
        let mut seen: Vec<Pid> = Vec::new();
        let mut split: Vec<Pid> = Vec::new();
        for (_, pid, pusi) in payload_packets(map, bytes, &pids, end..map.packets) {
            if seen.len() == pids.len() {
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
        // Their packets back to their last unit start.
        for (p, pid, pusi) in payload_packets(map, bytes, &pids, (first..end).rev()) {
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
    nulls.sort_unstable();
    nulls.dedup();
    nulls
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
    first: u64,
    end: u64,
    nulls: &[u64],
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
    let n_in = frame_number(map, bytes, video, first);
    let n_out = frame_number(map, bytes, video, end);
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
            if nulls.binary_search(&p).is_ok() {
                continue;
            }
            let Some(b) = read(map, bytes, p) else {
                continue;
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
