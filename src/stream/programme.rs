//! A programme: the clips of a session played one after another, the whole sequence once,
//! `n` times or endlessly (sans-IO: planned once from the offset maps and the packets of the
//! joins, so both servers of a pair derive the same programme and datagram `i` stays a pure
//! function of the clips and the session parameters).
//!
//! One asset on a loop is the programme of one clip; a playlist is the programme of its
//! items. The output is cut into *positions*: position `q` plays clip `q mod N` (N clips);
//! position 0 is clip 0 as it is in its file, every later position is its clip rewritten
//! onto the channel's timeline:
//!
//! - **Timestamps.** Position `q` adds `S_q` to every PCR (ISO/IEC 13818-1 §2.4.3.5) and
//!   `S_q / 300` to every PTS/DTS (§2.4.3.7) of its clip; `S_q` is a multiple of 300, so a
//!   clip keeps its own PCR-to-PTS distances (its decoder buffer model, T-STD §2.4.2).
//! - **The video cadence.** Where both clips of a join have a video cadence at the same
//!   frame rate, `S_q` puts the first video frame of position `q` exactly one frame after the
//!   last frame of position `q - 1` (`frames x frame duration` after the first). Where they
//!   have not (no video, another frame rate, a frame count that does not fit the file), the
//!   next clip starts where the previous one's bytes end (its byte span), as loops of such
//!   assets always did.
//! - **The join.** Clip `c` starts on the output timeline at `O_q`; when the previous clip's
//!   packets are still due then (the next clip's first frame is presented earlier relative to
//!   its first packet than the last clip's was: a longer mux delay, or the audio and PCRs a
//!   muxer sends after the last frame), the head of position `q` is queued behind the tail
//!   and its departures re-derived exactly as for a loop ([`super::cadence`]), late null
//!   packets dropped. A silence longer than one frame, or an overlap longer than a quarter
//!   of the clip or one second, falls back to the byte span.
//! - **Decoding order.** Where the next clip's first DTS would come before the previous
//!   clip's last (it reorders B-frames, the previous one does not), the last picture is held
//!   for whole frames: they are added to the PTS/DTS shift, not to the PCR shift, so the
//!   output has no silence and the next clip's frames wait that much longer in the decoder.
//! - **No silence.** Where the next clip would start later than the previous one's bytes
//!   end (its first frame is presented later after its first packet), it starts right after
//!   them instead: that time, like held frames, goes to its PTS/DTS shift only (at most one
//!   frame).
//! - **Audio.** The last audio PES of a clip is trimmed against the first audio PES of the
//!   clip after it ([`AudioTrim`]), so the audio neither overlaps nor leaves a gap of more
//!   than half an audio frame.
//! - **CC.** Every PID's continuity counter continues across the join (§2.4.3.3): position
//!   `q` adds the offset that makes its first packet follow the last one of position `q - 1`.
//! - **PCR discontinuity.** Where the PCR step across the join is 0 or above 100 ms (the
//!   clip's own PCRs jump), the first PCR of the position carries `discontinuity_indicator`.
//!
//! The clips must share one layout (PIDs, PCR PID, stream kinds): tandem does not remap PIDs
//! or write its own PAT/PMT yet (`docs/playlists.md`, "Playing a playlist").

use std::sync::Arc;

use super::cadence::{self, LoopPlan};
use super::cut::{Edit, Edited};
use super::reader::ReadAt;
use super::trim::{self, AudioTrim};
use crate::index::OffsetMap;
use crate::ts::packet::{Pid, PACKET_SIZE};
use crate::ts::pcr::{HZ, PCR_MODULUS, PER_90KHZ, PTS_MODULUS};

/// TR 101 290 2.3b: a PCR step outside 0..=100 ms without the discontinuity flag is an error.
const MAX_PCR_STEP: u64 = HZ / 10;
/// Video PES starts looked at for a clip's first presented frame (covers B-frame reordering).
const FIRST_FRAMES: usize = 16;

/// A clip as the programme plays it.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Its offset map.
    pub map: Arc<OffsetMap>,
    /// The lowest PTS (90 kHz) among its first video frames, if known.
    video_pts: Option<u64>,
    /// The DTS (or PTS) of its first and of its last video PES in file (decode) order.
    video_dts: Option<(u64, u64)>,
    /// Its timeline length on the video cadence (`frames x frame duration`, a multiple of
    /// 300), if it has one.
    cadence: Option<u64>,
    /// The audio trimmed at its end before the clip that follows it.
    trim: AudioTrim,
    /// Its packets played with other bytes (the edges of a cut, `super::cut`), sorted.
    edits: Arc<[Edit]>,
}

/// A clip to plan: its offset map, its bytes, and the packets played with other bytes.
#[derive(Clone, Copy)]
pub struct ClipRef<'a> {
    /// The (cut) offset map.
    pub map: &'a Arc<OffsetMap>,
    /// The clip's bytes (its file).
    pub bytes: &'a dyn ReadAt,
    /// Packets of `map` played with other bytes (sorted; empty for a whole clip).
    pub edits: &'a Arc<[Edit]>,
}

/// How a position's clip follows the position before it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Join {
    /// `O_q - O_{q-1}`: how much later on the output timeline this clip's packet 0 is due.
    step: u64,
    /// `S_q - S_{q-1}` modulo [`PCR_MODULUS`], a multiple of 300.
    shift: u64,
    /// Ticks (27 MHz, a multiple of 300) added to the PTS/DTS shift but not to the PCR
    /// shift: the held frames (see `held`). The next clip's frames then reach the decoder
    /// that much earlier relative to their presentation than in their file, instead of a
    /// silence of that length in the output.
    hold: u64,
    /// Whether the step follows the video cadence.
    cadence: bool,
    /// Frames the last picture of the previous clip is held on the cadence, so that the
    /// next clip's first decoding time comes after the previous clip's last one (a clip with
    /// B-frame reordering after one without: its first DTS is that much before its first PTS).
    held: u64,
    /// Re-derived head: (clip packet, departure offset from `O_q`), covering clip packets
    /// `0 .. region` (the rest of the region are dropped null packets).
    head: Vec<(u64, u64)>,
    region: u64,
    /// The first PCR of the position carries `discontinuity_indicator`.
    discontinuity: bool,
    /// CC offset added by this join, per PID (8192 entries).
    cc: Vec<u8>,
}

impl Join {
    fn dropped(&self) -> u64 {
        self.region - self.head.len() as u64
    }
}

/// Where output packet `j` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// Position (0 = the first clip as it is in its file).
    pub position: u64,
    /// Clip index.
    pub clip: usize,
    /// Packet of that clip (index among its valid packets).
    pub packet: u64,
    /// Offset of the packet within its position's output packets.
    pub within: u64,
}

/// The clips of a session and how each position follows the one before.
#[derive(Debug, Clone)]
pub struct Programme {
    clips: Vec<Clip>,
    /// `joins[c]`: how clip `c` follows clip `c - 1` (clip 0 follows the last clip).
    joins: Vec<Join>,
    /// Positions of the session (`None`: endless).
    positions: Option<u64>,
    /// Over the cycle of positions `1 ..= N` (position `1 + x` is clip `(1 + x) mod N`):
    /// output packets before position `1 + x` (N + 1 entries), and the step, shift and CC
    /// offsets from position 0 to position `1 + x` (N entries each).
    cycle_packets: Vec<u64>,
    cycle_time: Vec<u64>,
    cycle_shift: Vec<u64>,
    cycle_hold: Vec<u64>,
    cycle_cc: Vec<Vec<u8>>,
}

impl Programme {
    /// One asset played `passes` times (`None`: endlessly) with a loop plan and audio trim
    /// made for it.
    pub fn single(
        map: Arc<OffsetMap>,
        plan: &LoopPlan,
        trim: AudioTrim,
        passes: Option<u64>,
    ) -> Programme {
        let mut cc = vec![0u8; 8192];
        for e in &map.pid_cc {
            cc[e.pid.value() as usize] = trim.advance(e.pid).unwrap_or(e.advance) & 0x0F;
        }
        let mut join = Join {
            step: plan.period,
            shift: plan.period % PCR_MODULUS,
            hold: 0,
            cadence: plan.cadence,
            held: 0,
            head: plan.head().to_vec(),
            region: plan.region(),
            discontinuity: false,
            cc,
        };
        join.discontinuity = pcr_discontinuity(&map, &map, &join);
        let clip = Clip {
            map,
            video_pts: None,
            video_dts: None,
            cadence: plan.cadence.then_some(plan.period),
            trim,
            edits: Arc::from(Vec::new()),
        };
        Self::assemble(vec![clip], vec![join], passes)
    }

    /// The programme of `clips` (each with its bytes, for the packets of its joins) played
    /// `passes` times (`None`: endlessly). One clip is planned exactly as [`Self::single`]
    /// with [`LoopPlan::for_asset`] and [`AudioTrim::plan`].
    pub fn plan(refs: &[ClipRef<'_>], passes: Option<u64>) -> Programme {
        // Planning reads packet by packet near the joins: through a block cache, and a cut
        // clip as it plays (its edge packets edited).
        let cached: Vec<BlockCache<'_>> = refs.iter().map(|c| BlockCache::new(c.bytes)).collect();
        let readers: Vec<Edited<'_>> = refs
            .iter()
            .zip(&cached)
            .map(|(c, b)| Edited {
                inner: b,
                map: c.map,
                edits: c.edits,
            })
            .collect();
        let clips: Vec<(Arc<OffsetMap>, &dyn ReadAt)> = refs
            .iter()
            .zip(&readers)
            .map(|(c, r)| (c.map.clone(), r as &dyn ReadAt))
            .collect();
        if clips.len() == 1 && refs[0].edits.is_empty() {
            let (map, bytes) = (&clips[0].0, clips[0].1);
            let plan = LoopPlan::for_asset(map, bytes);
            let trim = if passes == Some(1) {
                AudioTrim::default()
            } else {
                AudioTrim::plan(map, plan.period, bytes)
            };
            return Self::single(map.clone(), &plan, trim, passes);
        }
        let n = clips.len();
        // A clip that comes back (a filler, an advert, a loop of a few clips) is planned
        // once: what is planned depends only on the clips' content (their identities).
        let id = |c: usize| (clips[c].0.identity.size, clips[c].0.identity.hash);
        let mut facts = std::collections::HashMap::new();
        let mut planned: Vec<Clip> = Vec::with_capacity(n);
        for (c, (map, bytes)) in clips.iter().enumerate() {
            let (video_pts, video_dts, cadence) = *facts.entry(id(c)).or_insert_with(|| {
                let lp = LoopPlan::for_map(map, None);
                (
                    first_video_pts(map, *bytes),
                    video_dts(map, *bytes),
                    lp.cadence.then_some(lp.period),
                )
            });
            planned.push(Clip {
                map: map.clone(),
                video_pts,
                video_dts,
                cadence,
                trim: AudioTrim::default(),
                edits: Arc::new([]),
            });
        }
        for (c, r) in planned.iter_mut().zip(refs) {
            c.edits = r.edits.clone();
        }
        let mut made = std::collections::HashMap::new();
        let mut joins: Vec<Join> = (0..n)
            .map(|c| {
                let prev = (c + n - 1) % n;
                made.entry((id(prev), id(c)))
                    .or_insert_with(|| join(&planned[prev], &planned[c], clips[c].1))
                    .clone()
            })
            .collect();
        let mut trims = std::collections::HashMap::new();
        // The trims need each join's shift; the CC offsets need the trims.
        for c in 0..n {
            let next = (c + 1) % n;
            if passes == Some(1) && next == 0 {
                continue; // the last clip of a single pass is followed by nothing
            }
            let (map, bytes) = (&planned[c].map, clips[c].1);
            let (next_map, next_bytes) = (&planned[next].map, clips[next].1);
            let shift90 = ((joins[next].shift + joins[next].hold) % PCR_MODULUS) / PER_90KHZ;
            let first_next = |pid: Pid| {
                trim::first_pts(next_map, pid, next_bytes).map(|p| (p + shift90) % PTS_MODULUS)
            };
            planned[c].trim = trims
                .entry((id(c), id(next), shift90))
                .or_insert_with(|| AudioTrim::plan_before(map, bytes, &first_next))
                .clone();
        }
        for c in 0..n {
            let prev = (c + n - 1) % n;
            joins[c].cc = cc_offsets(&planned[prev], &planned[c]);
        }
        Self::assemble(planned, joins, passes)
    }

    fn assemble(clips: Vec<Clip>, joins: Vec<Join>, passes: Option<u64>) -> Programme {
        let n = clips.len();
        let mut cycle_packets = vec![0u64];
        let (mut cycle_time, mut cycle_shift, mut cycle_cc) = (Vec::new(), Vec::new(), Vec::new());
        let (mut cycle_hold, mut h) = (Vec::new(), 0u64);
        let (mut t, mut s, mut cc) = (0u64, 0u64, vec![0u8; 8192]);
        for x in 0..n {
            let c = (1 + x) % n;
            let j = &joins[c];
            let len = clips[c].map.packets - j.dropped();
            cycle_packets.push(cycle_packets[x] + len);
            t = t.saturating_add(j.step);
            s = (s + j.shift) % PCR_MODULUS;
            h = (h + j.hold) % PCR_MODULUS;
            cycle_hold.push(h);
            for (a, b) in cc.iter_mut().zip(&j.cc) {
                *a = (*a + b) & 0x0F;
            }
            cycle_time.push(t);
            cycle_shift.push(s);
            cycle_cc.push(cc.clone());
        }
        Programme {
            positions: passes.map(|p| p.saturating_mul(n as u64)),
            clips,
            joins,
            cycle_packets,
            cycle_time,
            cycle_shift,
            cycle_hold,
            cycle_cc,
        }
    }

    /// The clips.
    pub fn clips(&self) -> &[Clip] {
        &self.clips
    }

    /// Positions in the session (`None`: endless).
    pub fn positions(&self) -> Option<u64> {
        self.positions
    }

    /// Output packets of the whole session (`None`: endless).
    pub fn total_packets(&self) -> Option<u64> {
        self.positions.map(|q| self.packets_before(q))
    }

    /// Output packets before position `q`.
    pub fn packets_before(&self, q: u64) -> u64 {
        if q == 0 {
            return 0;
        }
        let n = self.clips.len() as u64;
        let p0 = self.clips[0].map.packets;
        let per_cycle = self.cycle_packets[n as usize];
        let (cyc, x) = ((q - 1) / n, (q - 1) % n);
        p0.saturating_add(cyc.saturating_mul(per_cycle))
            .saturating_add(self.cycle_packets[x as usize])
    }

    /// Output packets of one cycle of positions (each clip once, after the first pass's clip
    /// 0) and its length on the timeline (27 MHz ticks).
    pub fn cycle(&self) -> (u64, u64) {
        let n = self.clips.len();
        (self.cycle_packets[n], self.cycle_time[n - 1])
    }

    /// Where output packet `j` comes from.
    pub fn locate(&self, j: u64) -> Located {
        let p0 = self.clips[0].map.packets;
        if j < p0 {
            return Located {
                position: 0,
                clip: 0,
                packet: j,
                within: j,
            };
        }
        let n = self.clips.len();
        let per_cycle = self.cycle_packets[n].max(1);
        let r = j - p0;
        let (cyc, rem) = (r / per_cycle, r % per_cycle);
        let x = self.cycle_packets.partition_point(|&b| b <= rem) - 1;
        let c = (1 + x) % n;
        let within = rem - self.cycle_packets[x];
        let jn = &self.joins[c];
        let packet = match jn.head.get(within as usize) {
            Some(&(p, _)) => p,
            None => within + jn.dropped(),
        };
        Located {
            position: 1 + cyc * n as u64 + x as u64,
            clip: c,
            packet,
            within,
        }
    }

    /// `(O_q, S_q)`: where position `q`'s clip starts on the output timeline (27 MHz ticks)
    /// and the shift of its PCRs (modulo [`PCR_MODULUS`]).
    pub fn origin(&self, q: u64) -> (u64, u64) {
        if q == 0 {
            return (0, 0);
        }
        let n = self.clips.len() as u64;
        let (cyc, x) = ((q - 1) / n, ((q - 1) % n) as usize);
        let per = self.cycle_time[n as usize - 1];
        let t = (cyc as u128 * per as u128 + self.cycle_time[x] as u128).min(u64::MAX as u128);
        let sp = self.cycle_shift[n as usize - 1] as u128;
        let s = ((cyc as u128 % PCR_MODULUS as u128) * sp + self.cycle_shift[x] as u128)
            % PCR_MODULUS as u128;
        (t as u64, s as u64)
    }

    /// The PTS/DTS shift of position `q` (90 kHz, modulo 2^33): `S_q / 300` plus the frames
    /// held at the joins so far.
    pub fn pts_shift(&self, q: u64) -> u64 {
        let (_, s) = self.origin(q);
        if q == 0 {
            return 0;
        }
        let n = self.clips.len() as u64;
        let (cyc, x) = ((q - 1) / n, ((q - 1) % n) as usize);
        let hp = self.cycle_hold[n as usize - 1] as u128;
        let h = ((cyc as u128 % PCR_MODULUS as u128) * hp + self.cycle_hold[x] as u128)
            % PCR_MODULUS as u128;
        ((s as u128 + h) % PCR_MODULUS as u128) as u64 / PER_90KHZ
    }

    /// Departure of output packet `j` (27 MHz ticks from the session origin), with the clip
    /// packet's own time computed by `nominal(clip, packet)` when needed.
    pub fn time_of(&self, j: u64, nominal: impl FnOnce(usize, u64) -> u64) -> u64 {
        let l = self.locate(j);
        let (o, _) = self.origin(l.position);
        let own = self
            .delayed(&l)
            .unwrap_or_else(|| nominal(l.clip, l.packet));
        o.saturating_add(own)
    }

    /// The re-derived offset of a head packet.
    fn delayed(&self, l: &Located) -> Option<u64> {
        if l.position == 0 {
            return None;
        }
        self.joins[l.clip]
            .head
            .get(l.within as usize)
            .map(|&(_, t)| t)
    }

    /// How much later than its clip's own time output packet `j` departs (ticks): the
    /// correction of a PCR it carries.
    pub fn delay(&self, l: &Located) -> u64 {
        self.delayed(l).map_or(0, |t| {
            t.saturating_sub(self.clips[l.clip].map.packet_time(l.packet))
        })
    }

    /// CC offset of `pid` in position `q`.
    pub fn cc_shift(&self, pid: Pid, q: u64) -> u8 {
        if q == 0 {
            return 0;
        }
        let n = self.clips.len() as u64;
        let (cyc, x) = ((q - 1) / n, ((q - 1) % n) as usize);
        let i = pid.value() as usize;
        let per = self.cycle_cc[n as usize - 1][i] as u64;
        (((cyc % 16) * per + self.cycle_cc[x][i] as u64) % 16) as u8
    }

    /// Whether the first PCR of position `q >= 1`'s clip is flagged as a discontinuity, and
    /// which packet carries it.
    pub fn discontinuity(&self, clip: usize) -> Option<u64> {
        let j = &self.joins[clip];
        j.discontinuity
            .then(|| self.clips[clip].map.anchors.first().map(|a| a.packet))
            .flatten()
    }

    /// The bytes packet `p` of `clip` plays with, where the edge of a cut edits it.
    pub fn edited(&self, clip: usize, p: u64) -> Option<&[u8; PACKET_SIZE]> {
        let e = &self.clips[clip].edits;
        e.binary_search_by_key(&p, |x| x.0).ok().map(|i| &e[i].1)
    }

    /// The bytes of packet `p` of `clip` where its audio is trimmed before the next clip.
    pub fn trimmed(&self, clip: usize, p: u64) -> Option<&[u8; PACKET_SIZE]> {
        self.clips[clip].trim.packet(p)
    }

    /// Whether position `q` is followed by another (its audio is trimmed).
    pub fn followed(&self, q: u64) -> bool {
        self.positions.map_or(true, |n| q + 1 < n)
    }

    /// Whether the join into `clip` follows the video cadence.
    pub fn cadence_join(&self, clip: usize) -> bool {
        self.joins[clip].cadence
    }

    /// The audio trim at the end of `clip`.
    pub fn trim(&self, clip: usize) -> &AudioTrim {
        &self.clips[clip].trim
    }

    /// Frames the picture before `clip` is held at its join (see [`Join`]).
    pub fn held_frames(&self, clip: usize) -> u64 {
        self.joins[clip].held
    }

    /// Packets of `clip` re-derived at the head of its join, and null packets dropped there.
    pub fn head(&self, clip: usize) -> (usize, u64) {
        let j = &self.joins[clip];
        (j.head.len(), j.dropped())
    }
}

/// A [`ReadAt`] that serves small reads from a few cached blocks of the one under it
/// (planning reads packet by packet near the joins: one system call per block instead of
/// per packet). Reads that do not fit in one block go straight through.
struct BlockCache<'a> {
    inner: &'a dyn ReadAt,
    blocks: std::cell::RefCell<Vec<(u64, Vec<u8>)>>,
}

impl<'a> BlockCache<'a> {
    /// Block size: 32 KiB, 174 packets.
    const BLOCK: u64 = 32 * 1024;
    /// Blocks kept per clip (the most recently used last): planning reads near a clip's
    /// start and near its end (64 KiB per clip while planning).
    const KEEP: usize = 2;

    fn new(inner: &'a dyn ReadAt) -> BlockCache<'a> {
        BlockCache {
            inner,
            blocks: std::cell::RefCell::new(Vec::new()),
        }
    }
}

impl ReadAt for BlockCache<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let b = offset / Self::BLOCK;
        let end = offset + buf.len() as u64;
        if end > (b + 1) * Self::BLOCK {
            return self.inner.read_exact_at(buf, offset);
        }
        let mut blocks = self.blocks.borrow_mut();
        let at = match blocks.iter().position(|x| x.0 == b) {
            Some(i) => {
                let x = blocks.remove(i);
                blocks.push(x);
                blocks.len() - 1
            }
            None => {
                // The block, or as much of it as the file holds.
                let mut data = vec![0u8; Self::BLOCK as usize];
                let mut len = data.len();
                while len > 0
                    && self
                        .inner
                        .read_exact_at(&mut data[..len], b * Self::BLOCK)
                        .is_err()
                {
                    len /= 2;
                }
                let need = (end - b * Self::BLOCK) as usize;
                if len < need {
                    return self.inner.read_exact_at(buf, offset);
                }
                data.truncate(len);
                if blocks.len() == Self::KEEP {
                    blocks.remove(0);
                }
                blocks.push((b, data));
                blocks.len() - 1
            }
        };
        let data = &blocks[at].1;
        let from = (offset - b * Self::BLOCK) as usize;
        match data.get(from..from + buf.len()) {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => self.inner.read_exact_at(buf, offset),
        }
    }
}

/// How `to` follows `from`: on the video cadence where both have one at the same frame rate
/// and the join fits, else by `from`'s byte span.
fn join(from: &Clip, to: &Clip, bytes: &dyn ReadAt) -> Join {
    let empty = || Join {
        step: 0,
        shift: 0,
        hold: 0,
        cadence: false,
        held: 0,
        head: Vec::new(),
        region: 0,
        discontinuity: false,
        cc: vec![0u8; 8192],
    };
    let d_pcr0 = signed_pcr(pcr0(&to.map) + PCR_MODULUS - pcr0(&from.map));
    let cadence = (|| {
        let (a, b) = (from.cadence?, to.cadence?);
        let _ = b;
        let frame = from.map.frame_ticks()?;
        if to.map.frame_ticks()? != frame {
            return None;
        }
        let (va, vb) = (from.video_pts?, to.video_pts?);
        let d90 = (va + PTS_MODULUS - vb) % PTS_MODULUS;
        let d90 = if d90 > PTS_MODULUS / 2 {
            d90 as i128 - PTS_MODULUS as i128
        } else {
            d90 as i128
        };
        let shift = a as i128 + d90 * PER_90KHZ as i128;
        // Decoding order: the next clip's first DTS after the previous clip's last one
        // (§2.4.3.7); where reordering differs, whole frames of hold.
        let mut held = 0u64;
        if let (Some((_, last)), Some((first, _))) = (from.video_dts, to.video_dts) {
            let frame90 = (frame / PER_90KHZ).max(1) as i128;
            let gap = signed_pts(
                first + (shift / PER_90KHZ as i128).rem_euclid(PTS_MODULUS as i128) as u64,
                last,
            );
            if gap <= 0 {
                held = ((1 - gap) + frame90 - 1).div_euclid(frame90) as u64;
            }
        }
        let hold = cadence::round_300(frame * held);
        let step = shift + d_pcr0;
        let span = from.map.loop_period as i128;
        let overlap = span - step;
        if step <= 0
            || -overlap > frame as i128
            || overlap > to.map.loop_period as i128 / 4
            || overlap > HZ as i128
        {
            return None;
        }
        // A silence (the next clip's first frame is presented later after its first packet
        // than the previous clip's was): the next clip starts right after the previous
        // one's bytes, its PTS/DTS still on the cadence, so the PCR steps across the join
        // stay those of the clips.
        let silence = (-overlap).max(0) / 300 * 300;
        let (shift, step, overlap) = (shift - silence, step - silence, overlap + silence);
        let mut j = empty();
        j.step = step as u64;
        j.shift = shift.rem_euclid(PCR_MODULUS as i128) as u64;
        j.cadence = true;
        j.held = held;
        j.hold = hold + silence as u64;
        if overlap > 0 {
            let (head, region) = head_of(from, to, j.step, bytes)?;
            j.head = head;
            j.region = region;
        }
        Some(j)
    })();
    let mut j = cadence.unwrap_or_else(|| {
        // The byte span: the next clip's packet 0 right after the previous clip's last
        // packet, its PCR shift rounded to whole 90 kHz ticks.
        let span = from.map.loop_period as i128;
        let shift = (span - d_pcr0 + 150).div_euclid(300) * 300;
        let mut j = empty();
        j.step = (shift + d_pcr0).max(1) as u64;
        j.shift = shift.rem_euclid(PCR_MODULUS as i128) as u64;
        if let Some((head, region)) = head_of(from, to, j.step, bytes) {
            j.head = head;
            j.region = region;
        }
        j
    });
    j.discontinuity = pcr_discontinuity(&from.map, &to.map, &j);
    j
}

/// The head of `to` behind the tail of `from` when `to` starts `step` after it (see
/// [`cadence`]).
fn head_of(
    from: &Clip,
    to: &Clip,
    step: u64,
    bytes: &dyn ReadAt,
) -> Option<(Vec<(u64, u64)>, u64)> {
    let m = &to.map;
    let is_null = |p: u64| cadence::is_null_packet(m, bytes, p);
    let prev = from.map.packet_time(from.map.packets.saturating_sub(1)) as i128 - step as i128;
    cadence::head_behind(m, prev, Some(&is_null))
}

/// Whether the PCR step across a join is not a valid continuation (0, or above 100 ms).
fn pcr_discontinuity(from: &OffsetMap, to: &OffsetMap, j: &Join) -> bool {
    let (Some(last), Some(first)) = (from.anchors.last(), to.anchors.first()) else {
        return false;
    };
    let delay = j
        .head
        .iter()
        .find(|h| h.0 == first.packet)
        .map_or(0, |h| h.1.saturating_sub(to.packet_time(first.packet)));
    let step = first
        .pcr
        .add((j.shift + delay) % PCR_MODULUS)
        .ticks_since(last.pcr);
    step == 0 || step > MAX_PCR_STEP
}

/// The CC offset per PID that makes `to`'s first packet follow `from`'s last (trimmed) one.
fn cc_offsets(from: &Clip, to: &Clip) -> Vec<u8> {
    let mut cc = vec![0u8; 8192];
    for e in &to.map.pid_cc {
        if e.pid == Pid::NULL {
            continue;
        }
        let Ok(i) = from.map.pid_cc.binary_search_by_key(&e.pid, |f| f.pid) else {
            continue;
        };
        let f = from.map.pid_cc[i];
        let adv = from.trim.advance(f.pid).unwrap_or(f.advance);
        let last = f.first.add(adv); // the CC after `from`'s last kept packet
        cc[e.pid.value() as usize] = last.since(e.first) & 0x0F;
    }
    cc
}

/// The PCR value (27 MHz, modulo the wrap) the clip's packet 0 would carry.
fn pcr0(map: &OffsetMap) -> u64 {
    map.anchors.first().map_or(0, |a| {
        (a.pcr.ticks() + PCR_MODULUS - a.time % PCR_MODULUS) % PCR_MODULUS
    })
}

/// `a - b` for 33-bit timestamps as a signed value in (-wrap/2, wrap/2].
fn signed_pts(a: u64, b: u64) -> i128 {
    let d = (a % PTS_MODULUS + PTS_MODULUS - b % PTS_MODULUS) % PTS_MODULUS;
    if d > PTS_MODULUS / 2 {
        d as i128 - PTS_MODULUS as i128
    } else {
        d as i128
    }
}

/// A PCR difference modulo the wrap as a signed value in (-wrap/2, wrap/2].
fn signed_pcr(d: u64) -> i128 {
    let d = d % PCR_MODULUS;
    if d > PCR_MODULUS / 2 {
        d as i128 - PCR_MODULUS as i128
    } else {
        d as i128
    }
}

/// The DTS (or PTS where it has none) of the clip's first and last video PES, in file order.
fn video_dts(map: &OffsetMap, bytes: &dyn ReadAt) -> Option<(u64, u64)> {
    let video = map.video_pid?;
    let mut b = [0u8; PACKET_SIZE];
    let mut dts_at = |p: u64| -> Option<u64> {
        let o = map.packet_offset(p)?;
        bytes.read_exact_at(&mut b, o).ok()?;
        let pk = crate::ts::packet::Packet::new_checked(&b).ok()?;
        if pk.pid() != video || !pk.pusi() {
            return None;
        }
        let t = crate::ts::pes::timestamps(&pk);
        t.dts.or(t.pts)
    };
    let end = map.packet_time(map.packets.saturating_sub(1));
    let first = (0..map.packets)
        .take_while(|&p| map.packet_time(p) <= 2 * HZ)
        .find_map(&mut dts_at)?;
    let last = (0..map.packets)
        .rev()
        .take_while(|&p| end.saturating_sub(map.packet_time(p)) <= 2 * HZ)
        .find_map(&mut dts_at)?;
    Some((first, last))
}

/// The lowest PTS among the clip's first video frames.
fn first_video_pts(map: &OffsetMap, bytes: &dyn ReadAt) -> Option<u64> {
    let video = map.video_pid?;
    let mut seen = 0;
    let mut best: Option<u64> = None;
    let mut b = [0u8; PACKET_SIZE];
    for p in 0..map.packets {
        if seen >= FIRST_FRAMES || map.packet_time(p) > 2 * HZ {
            break;
        }
        let Some(o) = map.packet_offset(p) else {
            continue;
        };
        if bytes.read_exact_at(&mut b, o).is_err() {
            continue;
        }
        let Ok(pk) = crate::ts::packet::Packet::new_checked(&b) else {
            continue;
        };
        if pk.pid() != video || !pk.pusi() {
            continue;
        }
        seen += 1;
        if let Some(pts) = crate::ts::pes::timestamps(&pk).pts {
            // The lowest in presentation order, across a wrap: the one the others follow.
            best = Some(match best {
                None => pts,
                Some(x) if (x + PTS_MODULUS - pts) % PTS_MODULUS < PTS_MODULUS / 2 => pts,
                Some(x) => x,
            });
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::testutil::{asset, Spec};

    /// The block cache reads what the reader under it holds, across block boundaries and at
    /// the end of the file, and fails where it fails.
    #[test]
    fn the_block_cache_reads_what_is_under_it() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let c = BlockCache::new(&data);
        for (off, len) in [
            (0u64, 188usize),
            (32_700, 188),
            (32_767, 2),
            (65_536, 3),
            (99_900, 100),
            (50_000, 40_000),
            (0, 188),
        ] {
            let mut a = vec![0u8; len];
            c.read_exact_at(&mut a, off).unwrap();
            assert_eq!(
                &a[..],
                &data[off as usize..off as usize + len],
                "{off}+{len}"
            );
        }
        let mut past = [0u8; 188];
        assert!(c.read_exact_at(&mut past, 99_950).is_err());
    }

    /// Two different clips: every output packet is located in its clip, positions follow
    /// each other without a hole, departures never go back, and the cycle holds both clips.
    #[test]
    fn two_clips_follow_each_other() {
        let (a, ma) = asset(&Spec::default());
        let (b, mb) = asset(&Spec {
            packets: 1000,
            ..Spec::default()
        });
        let (ma2, mb2) = (Arc::new(ma.clone()), Arc::new(mb.clone()));
        let none: Arc<[Edit]> = Arc::new([]);
        let refs = [
            ClipRef {
                map: &ma2,
                bytes: &a,
                edits: &none,
            },
            ClipRef {
                map: &mb2,
                bytes: &b,
                edits: &none,
            },
        ];
        let clips: Vec<(Arc<OffsetMap>, &dyn ReadAt)> = vec![(ma2.clone(), &a), (mb2.clone(), &b)];
        let p = Programme::plan(&refs, Some(2));
        assert_eq!(p.positions(), Some(4));
        let total = p.total_packets().unwrap();
        assert_eq!(
            total,
            2 * (ma.packets + mb.packets) - p.head(0).1 - 2 * p.head(1).1
        );
        let mut last = (0u64, 0usize);
        let mut prev_t = 0;
        for j in 0..total {
            let l = p.locate(j);
            assert!(l.position >= last.0, "packet {j}");
            if l.position > last.0 {
                assert_eq!(l.position, last.0 + 1, "packet {j}: a position skipped");
                assert_ne!(l.clip, last.1, "packet {j}");
            }
            last = (l.position, l.clip);
            let t = p.time_of(j, |c, q| clips[c].0.packet_time(q));
            assert!(t >= prev_t, "packet {j}: departure went back");
            prev_t = t;
        }
        assert_eq!(last, (3, 1));
        assert!(!p.followed(3) && p.followed(2));
    }
}
