//! Synthetic assets with a matching offset map, for unit tests of the stream, the reader
//! and the engine (the real map builder lives in `index`).

use std::collections::BTreeMap;

use super::OutputStream;
use crate::index::{flags, Anchor, AssetIdentity, DatagramEntry, OffsetMap, PidCc, Segment};
use crate::ts::packet::{Cc, Pid, PACKET_SIZE, SYNC_BYTE};
use crate::ts::pcr::{Pcr, HZ};
use crate::units::Ticks27M;

/// Shape of a synthetic asset.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Valid packets.
    pub packets: u64,
    /// Constant rate: timeline ticks per packet (a multiple of 300).
    pub ticks_per_packet: u64,
    /// A PCR (and a video frame start) on every packet index multiple of this.
    pub pcr_every: u64,
    /// From this packet on, raw PCRs jump by +10 s (a discontinuity the timeline bridges).
    pub pcr_jump_at: Option<u64>,
    /// Insert this many junk bytes before this packet (a sync loss).
    pub junk_before: Option<(u64, usize)>,
    /// Frame starts (and PCRs) only before this packet: the rest of the pass is the tail a
    /// muxer sends after the last frame.
    pub frames_before: Option<u64>,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            packets: 700,
            ticks_per_packet: 16_200, // ~2.5 Mb/s
            pcr_every: 40,
            pcr_jump_at: None,
            junk_before: None,
            frames_before: None,
        }
    }
}

const VIDEO: u16 = 0x100;
const AUDIO: u16 = 0x101;
const PCR0: u64 = 600 * HZ; // raw PCR of packet 0

fn ts_field(prefix: u8, v: u64) -> [u8; 5] {
    [
        prefix << 4 | (((v >> 30) & 7) as u8) << 1 | 1,
        (v >> 22) as u8,
        (((v >> 15) & 0x7F) as u8) << 1 | 1,
        (v >> 7) as u8,
        ((v & 0x7F) as u8) << 1 | 1,
    ]
}

/// Builds the asset bytes and their offset map.
pub fn asset(spec: &Spec) -> (Vec<u8>, OffsetMap) {
    let mut bytes = Vec::new();
    let mut segments: Vec<Segment> = Vec::new();
    let mut anchors = Vec::new();
    let mut ccs: BTreeMap<u16, (u8, u8)> = BTreeMap::new();
    let mut next_cc: BTreeMap<u16, u8> = BTreeMap::new();
    let mut pkt_flags = Vec::new();
    let mut frames = 0u32;
    for q in 0..spec.packets {
        if let Some((at, len)) = spec.junk_before {
            if at == q {
                bytes.resize(bytes.len() + len, 0x00);
            }
        }
        if segments.is_empty() || spec.junk_before.is_some_and(|(at, _)| at == q) {
            segments.push(Segment {
                byte_offset: bytes.len() as u64,
                first_packet: q,
                packets: 0,
            });
        }
        segments.last_mut().unwrap().packets += 1;
        let time = q * spec.ticks_per_packet;
        let jump = if spec.pcr_jump_at.is_some_and(|j| q >= j) {
            10 * HZ
        } else {
            0
        };
        let mut b = [0xFFu8; PACKET_SIZE];
        b[0] = SYNC_BYTE;
        let frame_start = q % spec.pcr_every == 0 && spec.frames_before.map_or(true, |n| q < n);
        let (pid, pusi, payload) = if frame_start {
            (VIDEO, true, true)
        } else if q % 13 == 12 {
            (0x1FFF, false, true)
        } else if q % 50 == 2 {
            (0, true, true)
        } else if q % 5 == 1 {
            (AUDIO, q % 20 == 1, true)
        } else {
            (VIDEO, false, true)
        };
        b[1] = ((pusi as u8) << 6) | (pid >> 8) as u8;
        b[2] = pid as u8;
        let cc = if pid == 0x1FFF {
            0
        } else {
            let c = next_cc.entry(pid).or_insert(q as u8 % 16);
            let v = *c;
            *c = (v + 1) & 0x0F;
            v
        };
        let mut f = 0u8;
        let mut start = 4;
        if pid == VIDEO && pusi {
            b[3] = 0x30 | cc;
            b[4] = 7;
            b[5] = 0x50;
            b[6..12].copy_from_slice(&Pcr::from_ticks(PCR0 + time + jump).to_field());
            start = 12;
            anchors.push(Anchor {
                packet: q,
                time,
                pcr: Pcr::from_ticks(PCR0 + time + jump),
            });
            f |= flags::HAS_PCR | flags::FRAME_START;
            frames += 1;
        } else {
            b[3] = 0x10 | cc;
        }
        if pusi && pid != 0 {
            let pts = (PCR0 + time + jump) / 300 + 9000;
            let p = &mut b[start..];
            p[..4].copy_from_slice(&[0, 0, 1, if pid == VIDEO { 0xE0 } else { 0xC0 }]);
            p[4..6].copy_from_slice(&[0, 0]);
            p[6] = 0x80;
            p[7] = 0xC0;
            p[8] = 10;
            p[9..14].copy_from_slice(&ts_field(3, pts));
            p[14..19].copy_from_slice(&ts_field(1, pts - 3600));
        } else if pusi {
            b[4..8].copy_from_slice(&[0, 0, 0xB0, 0x0D]);
        }
        bytes.extend_from_slice(&b);
        pkt_flags.push(f);
        if payload && pid != 0x1FFF {
            let e = ccs.entry(pid).or_insert((cc, cc));
            e.1 = cc;
        }
    }
    let tpp = spec.ticks_per_packet;
    let mut map = OffsetMap {
        identity: AssetIdentity {
            size: bytes.len() as u64,
            hash: 0,
        },
        packets: spec.packets,
        segments,
        anchors,
        loop_period: (spec.packets * tpp).div_ceil(300) * 300,
        pcr_pid: Pid::new(VIDEO),
        video_pid: Some(Pid::new(VIDEO)),
        frame_rate: Some((25, 1)),
        frames,
        datagrams: vec![],
        pid_cc: vec![],
    };
    let mut seen_frames = 0u32;
    for d in 0..map.datagram_count() {
        let range = 7 * d..(7 * d + 7).min(spec.packets);
        let fl = range.clone().fold(0u8, |a, p| a | pkt_flags[p as usize]);
        if pkt_flags[7 * d as usize] & flags::FRAME_START != 0 {
            seen_frames += 1;
        }
        map.datagrams.push(DatagramEntry {
            byte_offset: map.packet_offset(7 * d).unwrap(),
            time: Ticks27M(map.packet_time(7 * d)),
            flags: fl,
            frame: seen_frames.saturating_sub(1),
        });
        seen_frames += range
            .skip(1)
            .filter(|&p| pkt_flags[p as usize] & flags::FRAME_START != 0)
            .count() as u32;
    }
    map.pid_cc = ccs
        .into_iter()
        .map(|(pid, (first, last))| PidCc {
            pid: Pid::new(pid),
            first: Cc::new(first),
            last: Cc::new(last),
            advance: Cc::new(last).add(1).since(Cc::new(first)),
        })
        .collect();
    map.pid_cc.push(PidCc {
        pid: Pid::NULL,
        first: Cc::new(0),
        last: Cc::new(0),
        advance: 0,
    });
    (bytes, map)
}

/// A fast synthetic session for engine tests: 700 packets at 9000 packets/s (13.5 Mb/s,
/// ~1300 datagrams/s), written to a file that is unlinked at once (the open handle keeps
/// it), with the given framing and loop count. Returns the file's bytes too.
pub fn engine_session(
    tag: &str,
    framing: crate::net::url::Framing,
    loops: Option<u64>,
) -> (Vec<u8>, std::sync::Arc<OutputStream>, std::fs::File) {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    let spec = Spec {
        packets: 700,
        ticks_per_packet: 3_000,
        ..Spec::default()
    };
    let (bytes, map) = asset(&spec);
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "tandem-{tag}-{}-{}.ts",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let s = OutputStream::new(
        std::sync::Arc::new(map),
        super::SessionParams {
            session_id: tag.into(),
            framing,
            loops,
        },
    )
    .unwrap();
    (bytes, std::sync::Arc::new(s), file)
}

/// The asset packets of datagram `i`, gathered straight from the asset bytes.
pub fn gather(bytes: &[u8], s: &OutputStream, i: u64) -> Vec<u8> {
    let mut v = Vec::new();
    for m in 0..s.packets_in(i) as u64 {
        let (_, p) = s.locate(7 * i + m);
        let o = s.map().packet_offset(p).unwrap() as usize;
        v.extend_from_slice(&bytes[o..o + PACKET_SIZE]);
    }
    v
}
