//! [`OutputStream`]: datagram index -> departure time and wire bytes.

use std::sync::Arc;

use super::cadence::LoopPlan;
use super::programme::{ClipRef, Located, Programme};
use super::rtp::{RtpSession, HEADER_LEN};
use super::trim::AudioTrim;
use crate::index::{flags, OffsetMap};
use crate::stream::Framing;
use crate::ts::packet::{edit, Cc, Packet, Pid, PACKETS_PER_DATAGRAM, PACKET_SIZE, SYNC_BYTE};
use crate::ts::pcr::{ticks_to_ns, Pcr, HZ, PCR_MODULUS};
use crate::ts::pes;

const PPD: u64 = PACKETS_PER_DATAGRAM as u64;
/// TR 101 290 2.3b: a PCR step outside 0..=100 ms without the discontinuity flag is an error.
#[cfg(test)]
const MAX_PCR_STEP: u64 = HZ / 10;

/// The parameters that, with the asset, fix every byte of a session's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParams {
    /// Session id: the RTP SSRC, initial sequence number and timestamp are derived from it.
    pub session_id: String,
    /// Raw UDP or RTP.
    pub framing: Framing,
    /// Number of passes over the asset; `None` plays endlessly.
    pub loops: Option<u64>,
}

/// Which datagrams count as a switch point for [`OutputStream::next_boundary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundaryKind {
    /// A datagram carrying a PCR of the PCR PID.
    Pcr,
    /// A datagram in which a video frame starts (PUSI on the video PID).
    Frame,
    /// Either of the above.
    Either,
}

/// Why an offset map cannot be played.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The map holds no packets.
    #[error("the asset holds no valid TS packets")]
    Empty,
    /// Fewer than two PCRs: there is no timeline to pace by (ISO/IEC 13818-1 §2.4.2.2).
    #[error("the asset has {count} PCR(s) on PID {pid}; at least two are needed to pace it")]
    NoPcr {
        /// PCRs found.
        count: usize,
        /// The PCR PID.
        pid: Pid,
    },
    /// The timeline has zero length.
    #[error("the asset's PCR timeline has zero length")]
    ZeroPeriod,
    /// `loops == Some(0)`.
    #[error("the loop count must be at least 1")]
    ZeroLoops,
}

/// Why a datagram could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The index is past the end of a finite session.
    #[error("datagram {index} is past the end of the session ({count} datagrams)")]
    PastEnd {
        /// Requested index.
        index: u64,
        /// Datagrams in the session.
        count: u64,
    },
    /// The caller passed the wrong number of bytes.
    #[error("datagram {index} needs {expected} bytes of asset packets, got {got}")]
    WrongLength {
        /// Datagram index.
        index: u64,
        /// Bytes expected (`188 x packets`).
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// An asset packet does not start with 0x47: the file changed since it was indexed.
    #[error("asset packet {packet} (datagram {index}) has sync byte 0x{byte:02x}; the file changed since it was indexed?")]
    NoSync {
        /// Datagram index.
        index: u64,
        /// Asset packet index (among valid packets).
        packet: u64,
        /// The byte found.
        byte: u8,
    },
}

/// The output of one session: random access to every datagram by index.
#[derive(Debug, Clone)]
pub struct OutputStream {
    /// The clips and how each position follows the one before ([`Programme`]).
    programme: Programme,
    params: SessionParams,
    rtp: Option<RtpSession>,
    /// The loop plan of the first clip on its own (what `tandem index` reports; for one
    /// asset, the plan the programme plays).
    plan: LoopPlan,
    /// Largest clip, in datagrams: a switch boundary is always found within it.
    max_clip_datagrams: u64,
}

impl OutputStream {
    /// Prepares a session over `map`. Fails when the asset cannot be paced. Without the
    /// asset's bytes the loop plan drops no null packets: a player uses
    /// [`Self::with_asset`], and both servers of a pair must build their stream the same way.
    pub fn new(map: Arc<OffsetMap>, params: SessionParams) -> Result<OutputStream, StreamError> {
        check(&map)?;
        let plan = LoopPlan::for_map(&map, None);
        let programme = Programme::single(map, &plan, AudioTrim::default(), params.loops);
        Self::build(programme, plan, params)
    }

    /// [`Self::new`] with the asset at hand: the head of a later pass may drop its late null
    /// packets so that a constant-rate asset stays constant-rate across the loop point (see
    /// [`LoopPlan`]); only the packets of the join are read.
    pub fn with_asset(
        map: Arc<OffsetMap>,
        params: SessionParams,
        asset: &dyn super::reader::ReadAt,
    ) -> Result<OutputStream, StreamError> {
        Self::with_clips(&[(map, asset)], params)
    }

    /// A session over clips played one after another (a playlist; one clip is
    /// [`Self::with_asset`]): `params.loops` passes over all of them. Only the packets of
    /// the joins are read. Fails when a clip cannot be paced.
    pub fn with_clips(
        clips: &[(Arc<OffsetMap>, &dyn super::reader::ReadAt)],
        params: SessionParams,
    ) -> Result<OutputStream, StreamError> {
        let none: Arc<[super::cut::Edit]> = Arc::new([]);
        let refs: Vec<ClipRef<'_>> = clips
            .iter()
            .map(|(map, bytes)| ClipRef {
                map,
                bytes: *bytes,
                edits: &none,
            })
            .collect();
        Self::with_cuts(&refs, params)
    }

    /// [`Self::with_clips`] with the packets of each clip that play with other bytes (the
    /// edges of an item's in and out points, `super::cut`).
    pub fn with_cuts(
        refs: &[ClipRef<'_>],
        params: SessionParams,
    ) -> Result<OutputStream, StreamError> {
        if refs.is_empty() {
            return Err(StreamError::Empty);
        }
        for c in refs {
            check(c.map)?;
        }
        if params.loops == Some(0) {
            return Err(StreamError::ZeroLoops);
        }
        let plan = LoopPlan::for_asset(refs[0].map, refs[0].bytes);
        let programme = Programme::plan(refs, params.loops);
        Self::build(programme, plan, params)
    }

    fn build(
        programme: Programme,
        plan: LoopPlan,
        params: SessionParams,
    ) -> Result<OutputStream, StreamError> {
        if params.loops == Some(0) {
            return Err(StreamError::ZeroLoops);
        }
        let rtp = (params.framing == Framing::Rtp)
            .then(|| RtpSession::from_session_id(&params.session_id));
        let max_clip_datagrams = programme
            .clips()
            .iter()
            .map(|c| c.map.datagram_count())
            .max()
            .unwrap_or(0);
        Ok(OutputStream {
            programme,
            params,
            rtp,
            plan,
            max_clip_datagrams,
        })
    }

    /// The offset map of the first clip (of the asset, for a session over one).
    pub fn map(&self) -> &Arc<OffsetMap> {
        &self.programme.clips()[0].map
    }

    /// The clips and their joins.
    pub fn programme(&self) -> &Programme {
        &self.programme
    }

    /// How passes of the first clip follow each other on their own (the shift per pass, by
    /// the video cadence where the asset allows it); for a session over one asset, how its
    /// passes follow each other.
    pub fn loop_plan(&self) -> &LoopPlan {
        &self.plan
    }

    /// The audio cut at the end of each pass of the first clip ([`AudioTrim`]).
    pub fn audio_trim(&self) -> &AudioTrim {
        self.programme.trim(0)
    }

    /// Timeline length of one cycle of the programme (for one asset: the shift per pass,
    /// [`LoopPlan::period`]), 27 MHz ticks.
    pub fn period(&self) -> u64 {
        self.programme.cycle().1
    }

    /// The session parameters.
    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// The RTP constants (`None` for raw UDP).
    pub fn rtp_session(&self) -> Option<RtpSession> {
        self.rtp
    }

    /// Whether passes of the first clip after the first start with a flagged PCR
    /// discontinuity (its own PCRs do not continue across its end, e.g. it holds a PCR
    /// discontinuity itself).
    pub fn loop_discontinuity(&self) -> bool {
        self.programme.discontinuity(0).is_some()
    }

    /// Output packets of the whole session (`None` = endless).
    pub fn total_packets(&self) -> Option<u64> {
        self.programme.total_packets()
    }

    /// Datagrams in the session (`None` = endless).
    pub fn datagram_count(&self) -> Option<u64> {
        self.total_packets().map(|p| p.div_ceil(PPD))
    }

    /// Number of TS packets in datagram `i`: 7, fewer for the last one of a finite session,
    /// 0 past the end.
    pub fn packets_in(&self, i: u64) -> usize {
        let first = i.saturating_mul(PPD);
        match self.total_packets() {
            None => PACKETS_PER_DATAGRAM,
            Some(t) => t.saturating_sub(first).min(PPD) as usize,
        }
    }

    /// Wire length of datagram `i` (header + packets).
    pub fn datagram_len(&self, i: u64) -> usize {
        let n = self.packets_in(i);
        if n == 0 {
            0
        } else {
            self.header_len() + n * PACKET_SIZE
        }
    }

    /// Bytes before the TS packets: 12 for RTP, 0 for raw UDP.
    pub fn header_len(&self) -> usize {
        if self.rtp.is_some() {
            HEADER_LEN
        } else {
            0
        }
    }

    /// `(position, clip packet)` of output packet `j`: for one asset, `(pass, asset
    /// packet)` (passes after the first may be shorter by the late null packets their head
    /// drops, see [`LoopPlan`]). [`Self::locate_clip`] also names the clip.
    pub fn locate(&self, j: u64) -> (u64, u64) {
        let l = self.programme.locate(j);
        (l.position, l.packet)
    }

    /// Where output packet `j` comes from: position, clip and packet.
    pub fn locate_clip(&self, j: u64) -> Located {
        self.programme.locate(j)
    }

    /// Departure time of datagram `i` in 27 MHz ticks relative to the session origin: the
    /// timeline time of its first packet (RFC 2250 §2, target transmission time of the
    /// first byte): its clip's `packet_time` plus the position's origin on the channel's
    /// timeline (the head of a later position re-derived behind the tail of the one before,
    /// see [`Programme`]).
    pub fn departure_ticks(&self, i: u64) -> u64 {
        self.packet_departure_ticks(i.saturating_mul(PPD))
    }

    /// Departure time of output packet `j` (27 MHz ticks from the session origin).
    pub fn packet_departure_ticks(&self, j: u64) -> u64 {
        let clips = self.programme.clips();
        self.programme
            .time_of(j, |c, p| clips[c].map.packet_time(p))
    }

    /// [`Self::departure_ticks`] in nanoseconds.
    pub fn departure_ns(&self, i: u64) -> u64 {
        ticks_to_ns(self.departure_ticks(i))
    }

    /// [`Self::departure_ns`] with a cursor over the PCR anchors: `hint` is the anchor pair
    /// used last (start with 0). For a pacer asking datagram after datagram this replaces
    /// the search over the anchors with two comparisons; the value is exactly the same.
    pub fn departure_ns_hinted(&self, i: u64, hint: &mut usize) -> u64 {
        let j = i.saturating_mul(PPD);
        let l = self.programme.locate(j);
        let a = &self.programme.clips()[l.clip].map.anchors;
        let n = a.len();
        if n < 2 {
            return self.departure_ns(i);
        }
        let p = l.packet;
        // The pair (h - 1, h) that `index::interpolate` picks for p: the first anchor after
        // p, clamped to 1 ..= n - 1.
        let h = *hint;
        let fits = (1..n).contains(&h)
            && (h == 1 || a[h - 1].packet <= p)
            && (h == n - 1 || a[h].packet > p);
        let h = if fits {
            h
        } else {
            a.partition_point(|x| x.packet <= p).clamp(1, n - 1)
        };
        *hint = h;
        let t = self
            .programme
            .time_of(j, |_, p| crate::index::interpolate(&a[h - 1..=h], p));
        ticks_to_ns(t)
    }

    /// The first datagram whose departure is at or after `ticks` (for joining a session in
    /// progress); equals [`Self::datagram_count`] when the session is over by then.
    pub fn index_at(&self, ticks: u64) -> u64 {
        let hi = match self.datagram_count() {
            Some(c) => c,
            None => {
                let (_, per) = self.programme.cycle();
                let n = self.programme.clips().len() as u64;
                let cycles = ticks / per.max(1) + 2;
                let q = cycles.saturating_mul(n).saturating_add(1);
                self.programme.packets_before(q).div_ceil(PPD) + 1
            }
        };
        let (mut lo, mut hi) = (0u64, hi);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.departure_ticks(mid) < ticks {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Nominal bitrate of the output TS in bits per second (packets over the timeline of
    /// one cycle).
    pub fn bitrate(&self) -> f64 {
        let (packets, per) = self.programme.cycle();
        (packets * PACKET_SIZE as u64 * 8) as f64 * HZ as f64 / per.max(1) as f64
    }

    /// [`flags`] of datagram `i`: `HAS_PCR` is exact (from the PCR anchors); `FRAME_START`
    /// is set when a clip datagram holding one of its packets has it (exact when the
    /// position starts on a datagram boundary, otherwise it may also be set on the datagram
    /// before).
    pub fn flags(&self, i: u64) -> u8 {
        let mut f = 0;
        for m in 0..self.packets_in(i) as u64 {
            let l = self.programme.locate(i * PPD + m);
            let map = &self.programme.clips()[l.clip].map;
            if map
                .anchors
                .binary_search_by_key(&l.packet, |a| a.packet)
                .is_ok()
            {
                f |= flags::HAS_PCR;
            }
            if let Some(e) = map.datagrams.get((l.packet / PPD) as usize) {
                f |= e.flags & flags::FRAME_START;
            }
        }
        f
    }

    /// The first datagram after `after` that is a boundary of `kind` (the failover switch
    /// point). `Frame` falls back to `Pcr` for assets without video frame starts. For a
    /// finite session, returns [`Self::datagram_count`] when no boundary is left.
    pub fn next_boundary(&self, after: u64, kind: BoundaryKind) -> u64 {
        let has_frames = self.programme.clips().iter().all(|c| {
            c.map.frames > 0
                && c.map
                    .datagrams
                    .iter()
                    .any(|d| d.flags & flags::FRAME_START != 0)
        });
        let mask = match kind {
            BoundaryKind::Pcr => flags::HAS_PCR,
            BoundaryKind::Frame if has_frames => flags::FRAME_START,
            BoundaryKind::Frame => flags::HAS_PCR,
            BoundaryKind::Either => flags::HAS_PCR | flags::FRAME_START,
        };
        let count = self.datagram_count().unwrap_or(u64::MAX);
        // Every clip holds a PCR, so the largest clip and a bit is always enough.
        let limit = after.saturating_add(self.max_clip_datagrams + 2).min(count);
        let mut i = after.saturating_add(1);
        while i < limit {
            if self.flags(i) & mask != 0 {
                return i;
            }
            i += 1;
        }
        limit
    }

    /// Renders datagram `i` into `out` (cleared first): the RTP header for RTP framing, then
    /// its packets with the rewriting of position `q` ([`Programme`]): PCR + `S_q` (plus
    /// the delay of a re-derived head packet, §2.4.3.5), PTS/DTS + `S_q / 300` (§2.4.3.7),
    /// CC + the position's offset per PID (§2.4.3.3); for one asset, `S_q = q x period`.
    /// `asset` holds the datagram's clip packets (see [`Self::locate_clip`]) back to back.
    pub fn render(&self, i: u64, asset: &[u8], out: &mut Vec<u8>) -> Result<(), RenderError> {
        out.clear();
        out.resize(self.header_len(), 0);
        out.extend_from_slice(asset);
        self.render_over(i, out)
    }

    /// [`Self::render`] in place: `out` holds [`Self::header_len`] bytes (any value)
    /// followed by the datagram's asset packets; the header is written over the first and
    /// the packets are rewritten where they are (no copy).
    pub fn render_over(&self, i: u64, out: &mut [u8]) -> Result<(), RenderError> {
        let n = self.packets_in(i);
        if n == 0 {
            return Err(RenderError::PastEnd {
                index: i,
                count: self.datagram_count().unwrap_or(u64::MAX),
            });
        }
        let base = self.header_len();
        if out.len() != base + n * PACKET_SIZE {
            return Err(RenderError::WrongLength {
                index: i,
                expected: n * PACKET_SIZE,
                got: out.len().saturating_sub(base),
            });
        }
        if let Some(rtp) = &self.rtp {
            out[..base].copy_from_slice(&rtp.header(i, self.departure_ticks(i)).emit());
        }
        for m in 0..n {
            let j = i * PPD + m as u64;
            let l = self.programme.locate(j);
            let pkt = &mut out[base + m * PACKET_SIZE..base + (m + 1) * PACKET_SIZE];
            if pkt[0] != SYNC_BYTE {
                return Err(RenderError::NoSync {
                    index: i,
                    packet: l.packet,
                    byte: pkt[0],
                });
            }
            if let Some(b) = self.programme.edited(l.clip, l.packet) {
                pkt.copy_from_slice(b);
            }
            if self.programme.followed(l.position) {
                if let Some(b) = self.programme.trimmed(l.clip, l.packet) {
                    pkt.copy_from_slice(b);
                }
            }
            if l.position > 0 {
                self.rewrite(pkt, &l);
            }
        }
        Ok(())
    }

    /// The rewriting of output packet `l` of position `q >= 1`.
    fn rewrite(&self, pkt: &mut [u8], l: &Located) {
        let Ok(view) = Packet::new_checked(pkt) else {
            // An adaptation field we cannot parse: only the header's CC is safe to touch.
            let pid = Pid::new(u16::from_be_bytes([pkt[1], pkt[2]]));
            let cc = Cc::new(pkt[3]).add(self.programme.cc_shift(pid, l.position));
            edit::set_cc(pkt, cc);
            return;
        };
        let (pid, cc, pcr, pusi, scrambled) = (
            view.pid(),
            view.cc(),
            view.pcr(),
            view.pusi(),
            view.scrambled(),
        );
        edit::set_cc(pkt, cc.add(self.programme.cc_shift(pid, l.position)));
        let (_, shift) = self.programme.origin(l.position);
        if let Some(pcr) = pcr {
            let delay = self.programme.delay(l) % PCR_MODULUS;
            edit::set_pcr(pkt, pcr.add(shift).add(delay));
            if self.programme.discontinuity(l.clip) == Some(l.packet) {
                // adaptation field flags byte: discontinuity_indicator (§2.4.3.5).
                pkt[5] |= 0x80;
            }
        }
        if pusi && !scrambled {
            pes::shift_timestamps(pkt, self.programme.pts_shift(l.position));
        }
    }

    /// The PCR an analyzer reads from output packet `j` if it carries clip PCR `raw`.
    pub fn output_pcr(&self, raw: Pcr, j: u64) -> Pcr {
        let l = self.programme.locate(j);
        let (_, shift) = self.programme.origin(l.position);
        raw.add(shift).add(self.programme.delay(&l) % PCR_MODULUS)
    }
}

/// Whether `map` can be paced.
fn check(map: &OffsetMap) -> Result<(), StreamError> {
    if map.packets == 0 {
        return Err(StreamError::Empty);
    }
    if map.anchors.len() < 2 {
        return Err(StreamError::NoPcr {
            count: map.anchors.len(),
            pid: map.pcr_pid,
        });
    }
    if map.loop_period == 0 {
        return Err(StreamError::ZeroPeriod);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{self, Spec};
    use super::*;
    use crate::stream::rtp::RtpHeader;
    use crate::ts::pcr::PTS_MODULUS;
    use crate::ts::pes::timestamps;
    use std::collections::HashMap;

    fn stream(spec: &Spec, framing: Framing, loops: Option<u64>) -> (Vec<u8>, OutputStream) {
        let (bytes, map) = testutil::asset(spec);
        let s = OutputStream::new(
            Arc::new(map),
            SessionParams {
                session_id: "test".into(),
                framing,
                loops,
            },
        )
        .unwrap();
        (bytes, s)
    }

    /// Renders the whole session by gathering packets straight from the asset bytes.
    fn render_all(bytes: &[u8], s: &OutputStream) -> Vec<Vec<u8>> {
        let count = s.datagram_count().unwrap();
        (0..count)
            .map(|i| {
                let asset = testutil::gather(bytes, s, i);
                let mut out = Vec::new();
                s.render(i, &asset, &mut out).unwrap();
                out
            })
            .collect()
    }

    #[test]
    fn first_pass_is_the_asset() {
        let spec = Spec::default();
        let (bytes, s) = stream(&spec, Framing::Udp, Some(1));
        let all: Vec<u8> = render_all(&bytes, &s).concat();
        assert_eq!(all, bytes);
        assert_eq!(s.datagram_count(), Some(spec.packets.div_ceil(7)));
    }

    #[test]
    fn loop_keeps_cc_pcr_pts_continuous() {
        let spec = Spec {
            packets: 1000, // 1000 % 7 = 6: datagrams straddle the loop point
            ..Spec::default()
        };
        let (bytes, s) = stream(&spec, Framing::Udp, Some(3));
        let out = render_all(&bytes, &s);
        assert_eq!(out.len() as u64, (3 * 1000u64).div_ceil(7));
        assert_eq!(out.last().unwrap().len(), (3000 % 7) as usize * 188);
        assert!(out[..out.len() - 1].iter().all(|d| d.len() == 1316));
        let ts: Vec<u8> = out.concat();
        let mut last_cc: HashMap<Pid, Cc> = HashMap::new();
        let mut last_pcr: Option<Pcr> = None;
        let mut pts_by_pass: Vec<Vec<u64>> = vec![vec![]; 3];
        for (j, pkt) in ts.chunks(188).enumerate() {
            let p = Packet::new_checked(pkt).unwrap();
            if p.pid() != Pid::NULL && p.has_payload() {
                if let Some(prev) = last_cc.get(&p.pid()) {
                    assert!(p.cc().follows(*prev), "CC error at output packet {j}");
                }
                last_cc.insert(p.pid(), p.cc());
            }
            if let Some(pcr) = p.pcr() {
                if let Some(prev) = last_pcr {
                    let step = pcr.ticks_since(prev);
                    assert!(step > 0 && step <= MAX_PCR_STEP, "PCR step {step} at {j}");
                    // The step is the packet distance at the asset's rate.
                    assert_eq!(step % spec.ticks_per_packet, 0);
                }
                last_pcr = Some(pcr);
            }
            if let Some(pts) = timestamps(&p).pts {
                pts_by_pass[j / 1000].push(pts);
            }
        }
        assert!(!s.loop_discontinuity());
        let per_loop = s.map().loop_period / 300;
        assert_eq!(per_loop, 1000 * spec.ticks_per_packet / 300);
        for k in 1..3 {
            assert_eq!(pts_by_pass[k].len(), pts_by_pass[0].len());
            for (a, b) in pts_by_pass[0].iter().zip(&pts_by_pass[k]) {
                assert_eq!(*b, (a + k as u64 * per_loop) % PTS_MODULUS);
            }
        }
    }

    /// The cadence plan end to end: across every loop point the video PTS step is exactly
    /// one frame, every PCR is its packet's departure time, departures never go back and
    /// never come faster than twice the asset's rate, CC continues per PID.
    #[test]
    fn a_cadence_loop_keeps_the_frame_step_and_pcrs_on_departure_times() {
        let spec = super::super::cadence::tests::overlapping();
        let (bytes, s) = stream(&spec, Framing::Udp, Some(3));
        assert!(s.loop_plan().cadence);
        assert_eq!(s.period(), 25 * 1_080_000);
        assert!(!s.loop_discontinuity());
        let ts: Vec<u8> = render_all(&bytes, &s).concat();
        assert_eq!(ts.len() as u64, 3 * spec.packets * 188);
        let mut video_pts = Vec::new();
        let mut pcr_minus_departure = None;
        let mut last_cc: HashMap<Pid, Cc> = HashMap::new();
        let mut prev_dep = None;
        for (j, pkt) in ts.chunks(188).enumerate() {
            let j = j as u64;
            let p = Packet::new_checked(pkt).unwrap();
            let dep = s.packet_departure_ticks(j);
            if let Some(prev) = prev_dep {
                assert!(
                    dep >= prev + spec.ticks_per_packet / 2,
                    "packet {j}: {prev} -> {dep}"
                );
            }
            prev_dep = Some(dep);
            if let Some(pcr) = p.pcr() {
                let d = pcr.add(PCR_MODULUS - dep % PCR_MODULUS);
                assert_eq!(
                    *pcr_minus_departure.get_or_insert(d),
                    d,
                    "PCR of packet {j}"
                );
            }
            if p.pid() != Pid::NULL && p.has_payload() {
                if let Some(prev) = last_cc.get(&p.pid()) {
                    assert!(p.cc().follows(*prev), "CC error at output packet {j}");
                }
                last_cc.insert(p.pid(), p.cc());
            }
            if p.pid() == Pid::new(0x100) {
                if let Some(pts) = timestamps(&p).pts {
                    video_pts.push(pts);
                }
            }
        }
        assert_eq!(video_pts.len(), 75);
        for w in video_pts.windows(2) {
            assert_eq!(w[1] - w[0], 3600, "video PTS step");
        }
        // The head of a later pass departs behind the tail; the first pass is the asset.
        assert_eq!(s.packet_departure_ticks(0), 0);
        assert!(
            s.packet_departure_ticks(spec.packets) > s.packet_departure_ticks(spec.packets - 1)
        );
        assert_eq!(s.index_at(s.departure_ticks(200)), 200);
    }

    #[test]
    fn hinted_departures_equal_plain_ones_in_any_order() {
        let spec = Spec {
            packets: 1000,
            junk_before: Some((333, 77)),
            ..Spec::default()
        };
        let (_, s) = stream(&spec, Framing::Rtp, Some(3));
        assert!(s.map().anchors.len() > 2);
        let count = s.datagram_count().unwrap();
        let mut hint = 0;
        // In order (the pacer), backwards (rewinds) and jumping about (seeks).
        let order = (0..count)
            .chain((0..count).rev())
            .chain((0..count).map(|i| (i * 7919) % count));
        for i in order {
            assert_eq!(
                s.departure_ns_hinted(i, &mut hint),
                s.departure_ns(i),
                "{i}"
            );
        }
        // A stale or absurd hint is only a hint.
        for bad in [0, 1, usize::MAX, s.map().anchors.len()] {
            let mut h = bad;
            assert_eq!(s.departure_ns_hinted(200, &mut h), s.departure_ns(200));
        }
    }

    #[test]
    fn render_over_matches_render() {
        let spec = Spec {
            packets: 1000,
            ..Spec::default()
        };
        let (bytes, s) = stream(&spec, Framing::Rtp, Some(2));
        let mut a = Vec::new();
        for i in [0, 142, 143, 285] {
            let asset = testutil::gather(&bytes, &s, i);
            s.render(i, &asset, &mut a).unwrap();
            let mut b = vec![0xAA; HEADER_LEN];
            b.extend_from_slice(&asset);
            s.render_over(i, &mut b).unwrap();
            assert_eq!(a, b, "datagram {i}");
        }
        let mut short = vec![0u8; HEADER_LEN + 100];
        assert!(matches!(
            s.render_over(0, &mut short),
            Err(RenderError::WrongLength { got: 100, .. })
        ));
    }

    #[test]
    fn departure_times_follow_the_timeline_across_loops() {
        let spec = Spec {
            packets: 1000,
            ..Spec::default()
        };
        let (_, s) = stream(&spec, Framing::Udp, None);
        assert_eq!(s.datagram_count(), None);
        let tpp = spec.ticks_per_packet;
        for i in [0u64, 1, 142, 143, 500, 10_000] {
            assert_eq!(s.departure_ticks(i), 7 * i * tpp, "datagram {i}");
            assert_eq!(s.index_at(s.departure_ticks(i)), i);
            assert_eq!(s.index_at(s.departure_ticks(i) + 1), i + 1);
        }
        assert_eq!(s.index_at(0), 0);
        let bits = s.bitrate();
        let want = 188.0 * 8.0 * 27e6 / tpp as f64;
        assert!((bits - want).abs() < 1e-6 * want, "{bits} vs {want}");
    }

    #[test]
    fn finite_session_index_at_end() {
        let (_, s) = stream(&Spec::default(), Framing::Udp, Some(2));
        let c = s.datagram_count().unwrap();
        assert_eq!(s.index_at(u64::MAX / 2), c);
        assert_eq!(s.packets_in(c), 0);
        let mut out = Vec::new();
        assert_eq!(
            s.render(c, &[], &mut out),
            Err(RenderError::PastEnd { index: c, count: c })
        );
    }

    #[test]
    fn rtp_header_per_datagram() {
        let spec = Spec::default();
        let (bytes, s) = stream(&spec, Framing::Rtp, Some(2));
        let out = render_all(&bytes, &s);
        let rtp = RtpSession::from_session_id("test");
        for (i, d) in out.iter().enumerate() {
            let (h, payload) = RtpHeader::parse(d).unwrap();
            assert_eq!(h.payload_type, 33);
            assert_eq!(h.ssrc, rtp.ssrc);
            assert_eq!(h.sequence, rtp.sequence_base.wrapping_add(i as u16));
            let ts = (s.departure_ticks(i as u64) / 300) as u32;
            assert_eq!(h.timestamp, rtp.timestamp_base.wrapping_add(ts));
            assert_eq!(payload.len(), s.packets_in(i as u64) * 188);
            assert_eq!(d.len(), s.datagram_len(i as u64));
        }
    }

    #[test]
    fn render_is_a_pure_function_of_the_index() {
        let spec = Spec {
            packets: 1000,
            ..Spec::default()
        };
        let (bytes, s) = stream(&spec, Framing::Rtp, None);
        let (_, s2) = stream(&spec, Framing::Rtp, None);
        let mut a = Vec::new();
        let mut b = Vec::new();
        for i in [5000u64, 3, 5000, 142, 7] {
            s.render(i, &testutil::gather(&bytes, &s, i), &mut a)
                .unwrap();
            s2.render(i, &testutil::gather(&bytes, &s2, i), &mut b)
                .unwrap();
            assert_eq!(a, b);
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let (bytes, s) = stream(&Spec::default(), Framing::Udp, None);
        let mut out = Vec::new();
        assert!(matches!(
            s.render(0, &bytes[..100], &mut out),
            Err(RenderError::WrongLength { got: 100, .. })
        ));
        let mut junk = testutil::gather(&bytes, &s, 3);
        junk[188 * 2] = 0;
        assert_eq!(
            s.render(3, &junk, &mut out),
            Err(RenderError::NoSync {
                index: 3,
                packet: 23,
                byte: 0
            })
        );
        let (_, mut map) = testutil::asset(&Spec::default());
        map.anchors.truncate(1);
        let params = SessionParams {
            session_id: String::new(),
            framing: Framing::Udp,
            loops: None,
        };
        assert!(matches!(
            OutputStream::new(Arc::new(map.clone()), params.clone()),
            Err(StreamError::NoPcr { count: 1, .. })
        ));
        map.packets = 0;
        assert_eq!(
            OutputStream::new(Arc::new(map), params).err(),
            Some(StreamError::Empty)
        );
    }

    #[test]
    fn boundaries() {
        let spec = Spec {
            packets: 1000,
            ..Spec::default()
        };
        let (_, s) = stream(&spec, Framing::Udp, None);
        // PCRs (and frame starts) sit on asset packets that are multiples of `pcr_every`.
        let pcr_at = |j: u64| (j % 1000) % spec.pcr_every == 0;
        let has = |i: u64| (7 * i..7 * i + 7).any(pcr_at);
        for after in [0u64, 3, 140, 141, 142, 143, 1000, 1001] {
            let b = s.next_boundary(after, BoundaryKind::Pcr);
            assert!(b > after && has(b), "after {after}: {b}");
            assert!((after + 1..b).all(|i| !has(i)), "after {after}: {b}");
            let f = s.next_boundary(after, BoundaryKind::Frame);
            assert!(f > after && f <= b, "after {after}: frame {f} pcr {b}");
        }
        let (_, fin) = stream(&spec, Framing::Udp, Some(1));
        assert_eq!(fin.next_boundary(142, BoundaryKind::Pcr), 143);
    }

    #[test]
    fn flags_pcr_discontinuity_at_loop_when_asset_pcrs_jump() {
        let spec = Spec {
            pcr_jump_at: Some(500),
            ..Spec::default()
        };
        let (bytes, s) = stream(&spec, Framing::Udp, Some(2));
        assert!(s.loop_discontinuity());
        let ts = render_all(&bytes, &s).concat();
        let first = s.map().anchors[0].packet as usize;
        let in_pass = |k: usize| {
            Packet::new_checked(&ts[(k * spec.packets as usize + first) * 188..])
                .unwrap()
                .discontinuity()
        };
        assert!(!in_pass(0));
        assert!(in_pass(1));
    }
}
