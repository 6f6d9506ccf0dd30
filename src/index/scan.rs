//! The streaming scan (sans-IO): bytes in, facts about every packet out.
//!
//! [`Scanner::feed`] takes a buffer and returns how many bytes it consumed; the caller keeps
//! the rest (at most a few packets, needed to confirm a resync) in front of the next read.
//! Memory stays bounded by the size of the results (one entry per datagram, per PCR and per
//! frame), never by the file size.
//!
//! Sync (ISO/IEC 13818-1 §2.4.3.3, TR 101 290 1.1): packets are 188-byte aligned runs
//! starting with 0x47. When a sync byte is missing, the scanner searches for the next offset
//! where 0x47 repeats every 188 bytes for [`CONFIRM`] packets, records the loss and starts a
//! new [`Segment`].

use std::collections::{BTreeMap, HashMap};

use super::report::{Problem, ProgramInfo, MAX_PROBLEMS};
use super::timeline::PcrObs;
use super::Segment;
use crate::ts::packet::{Packet, Pid, PACKETS_PER_DATAGRAM, PACKET_SIZE, SYNC_BYTE};
use crate::ts::pcr::{Pcr, PTS_MODULUS};
use crate::ts::pes;
use crate::ts::psi::{self, SectionAssembler};

/// Consecutive aligned sync bytes needed to (re)acquire sync.
pub const CONFIRM: usize = 5;
/// Bytes searched at the start of a file before it is declared not to be TS.
pub const NOT_TS_LIMIT: u64 = 1 << 20;
/// Video PES starts remembered before the PMT is known.
const MAX_PENDING: usize = 1 << 20;
/// Timestamp steps above this (90 kHz ticks, 1 s) are ignored for the frame rate.
const MAX_FRAME_DELTA: u64 = 90_000;

const NULL: usize = 0x1FFF;

// PidState::flags
const SEEN: u8 = 0x01;
const PAYLOAD_SEEN: u8 = 0x02;
const DUPLICATE: u8 = 0x04;
const WANT_PSI: u8 = 0x08;
const VIDEO: u8 = 0x10;

/// Per-PID counters.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PidState {
    pub count: u64,
    pub flags: u8,
    /// CC of the first/last packet carrying payload.
    pub first_cc: u8,
    pub last_cc: u8,
    /// CC of the first/last packet of any kind.
    pub first_any: u8,
    pub last_any: u8,
}

impl PidState {
    pub fn seen(&self) -> bool {
        self.flags & SEEN != 0
    }
    pub fn payload_seen(&self) -> bool {
        self.flags & PAYLOAD_SEEN != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// Searching; `since` is where the loss began (the file start for the first search).
    Searching {
        since: u64,
        initial: bool,
    },
    Synced,
}

/// Outcome of a resync search in one buffer.
enum Search {
    /// Aligned packets start at this index.
    Found(usize),
    /// No candidate before this index; more data is needed to decide from there on.
    NeedMore(usize),
}

/// PAT/PMT state. PAT and PMT PIDs are followed to the end of the file: a table that
/// changes (ISO/IEC 13818-1 §2.4.4.3, §2.4.4.8: a new `version_number`) is reported where
/// it changes, and a new video PID in the played program's PMT moves the frame starts.
#[derive(Debug, Default)]
struct Psi {
    assemblers: HashMap<u16, SectionAssembler>,
    programs: Vec<ProgramInfo>,
    /// Per program: the version and CRC of its PMT in force (None: not seen yet).
    pmt: Vec<Option<psi::SectionId>>,
    /// The version and CRC of the PAT in force (None: not seen yet).
    pat: Option<psi::SectionId>,
}

/// The scanner. Feed it the file in order, then call [`Scanner::finish`] (in `build`).
#[derive(Debug)]
pub struct Scanner {
    want_program: Option<u16>,
    state: Sync,
    /// File offset of the next unconsumed byte.
    offset: u64,
    pub(crate) packets: u64,
    pub(crate) segments: Vec<Segment>,
    pub(crate) datagram_offsets: Vec<u64>,
    pub(crate) pids: Vec<PidState>,
    /// PCRs per PID, in packet order.
    pub(crate) pcrs: HashMap<u16, Vec<PcrObs>>,
    /// PID order of first PCR.
    pub(crate) pcr_pid_order: Vec<u16>,
    psi: Psi,
    /// The program whose PMT decided the video PID (None: not yet).
    pub(crate) selected: Option<usize>,
    pub(crate) video_pid: Option<Pid>,
    /// Packet indices of frame starts (PUSI on the video PID).
    pub(crate) frame_starts: Vec<u64>,
    last_ts: Option<u64>,
    /// Histogram of video timestamp steps, 90 kHz ticks.
    pub(crate) frame_deltas: BTreeMap<u64, u64>,
    /// Video PES starts seen before the video PID was known: (packet, pid, DTS-or-PTS).
    pending_video: Vec<(u64, u16, Option<u64>)>,
    pub(crate) problems: Vec<Problem>,
    pub(crate) problems_dropped: u64,
    /// A 0x47 was seen at offset 0.
    pub(crate) starts_with_sync: bool,
    /// No sync within [`NOT_TS_LIMIT`].
    pub(crate) not_ts: bool,
}

impl Scanner {
    /// A scanner for one pass; `program` selects a program number (default: the first in
    /// the PAT).
    pub fn new(program: Option<u16>) -> Scanner {
        let mut pids = vec![PidState::default(); 8192];
        pids[0].flags |= WANT_PSI;
        Scanner {
            want_program: program,
            state: Sync::Searching {
                since: 0,
                initial: true,
            },
            offset: 0,
            packets: 0,
            segments: Vec::new(),
            datagram_offsets: Vec::new(),
            pids,
            pcrs: HashMap::new(),
            pcr_pid_order: Vec::new(),
            psi: Psi::default(),
            selected: None,
            video_pid: None,
            frame_starts: Vec::new(),
            last_ts: None,
            frame_deltas: BTreeMap::new(),
            pending_video: Vec::new(),
            problems: Vec::new(),
            problems_dropped: 0,
            starts_with_sync: false,
            not_ts: false,
        }
    }

    /// Bytes consumed so far (the file offset of the next byte to feed).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The scan cannot succeed any more (not TS); the caller may stop reading.
    pub fn failed(&self) -> bool {
        self.not_ts
    }

    /// Scans `buf` (the bytes from [`Scanner::offset`] on) and returns how many bytes were
    /// consumed. Unconsumed bytes (fewer than [`CONFIRM`] packets) must be fed again, with
    /// more data behind them, in the next call. With `eof` everything is consumed.
    pub fn feed(&mut self, buf: &[u8], eof: bool) -> usize {
        if self.offset == 0 && buf.first() == Some(&SYNC_BYTE) {
            self.starts_with_sync = true;
        }
        let mut pos = 0;
        loop {
            match self.state {
                Sync::Synced => {
                    while pos + PACKET_SIZE <= buf.len() && buf[pos] == SYNC_BYTE {
                        let at = self.offset + pos as u64;
                        self.packet(&buf[pos..pos + PACKET_SIZE], at);
                        pos += PACKET_SIZE;
                    }
                    if pos + PACKET_SIZE <= buf.len() {
                        // A missing sync byte where the next packet should start.
                        self.end_segment();
                        self.state = Sync::Searching {
                            since: self.offset + pos as u64,
                            initial: false,
                        };
                        continue;
                    }
                    if eof && pos < buf.len() {
                        let at = self.offset + pos as u64;
                        let bytes = (buf.len() - pos) as u64;
                        if buf[pos] == SYNC_BYTE {
                            self.problem(Problem::Truncated {
                                byte_offset: at,
                                bytes,
                            });
                        } else {
                            self.problem(Problem::SyncLoss {
                                byte_offset: at,
                                skipped: bytes,
                            });
                        }
                        pos = buf.len();
                    }
                    break;
                }
                Sync::Searching { since, initial } => match find_sync(&buf[pos..], eof) {
                    Search::Found(o) => {
                        pos += o;
                        let at = self.offset + pos as u64;
                        if at > since {
                            self.problem(Problem::SyncLoss {
                                byte_offset: since,
                                skipped: at - since,
                            });
                        }
                        self.segments.push(Segment {
                            byte_offset: at,
                            first_packet: self.packets,
                            packets: 0,
                        });
                        self.state = Sync::Synced;
                    }
                    Search::NeedMore(o) => {
                        pos += o;
                        if eof {
                            // Nothing aligned up to the end of the file.
                            let end = self.offset + buf.len() as u64;
                            // (At the start, `finish` tells not-TS from no-packets.)
                            if !initial && end > since {
                                self.problem(Problem::SyncLoss {
                                    byte_offset: since,
                                    skipped: end - since,
                                });
                            }
                            pos = buf.len();
                        } else if initial && self.offset + pos as u64 >= NOT_TS_LIMIT {
                            self.not_ts = true;
                            pos = buf.len();
                        }
                        break;
                    }
                },
            }
        }
        if eof {
            self.end_segment();
        }
        self.offset += pos as u64;
        pos
    }

    fn end_segment(&mut self) {
        if let Some(s) = self.segments.last_mut() {
            s.packets = self.packets - s.first_packet;
        }
    }

    pub(crate) fn problem(&mut self, p: Problem) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(p);
        } else {
            self.problems_dropped += 1;
        }
    }

    /// One aligned packet (`b[0] == 0x47`, 188 bytes) at file offset `at`.
    #[inline]
    fn packet(&mut self, b: &[u8], at: u64) {
        let idx = self.packets;
        self.packets += 1;
        if idx % PACKETS_PER_DATAGRAM as u64 == 0 {
            self.datagram_offsets.push(at);
        }
        let pid = ((b[1] as usize & 0x1F) << 8) | b[2] as usize;
        let flags = b[3];
        let cc = flags & 0x0F;
        let has_payload = flags & 0x10 != 0;
        let has_af = flags & 0x20 != 0;
        let af_len = if has_af { b[4] } else { 0 };
        let st = &mut self.pids[pid];
        st.count += 1;
        if st.flags & SEEN == 0 {
            st.flags |= SEEN;
            st.first_any = cc;
        }
        st.last_any = cc;
        if has_af && af_len > if has_payload { 182 } else { 183 } {
            self.problem(Problem::BadAdaptationField {
                pid: Pid::new(pid as u16),
                byte_offset: at,
            });
            return;
        }
        let af_flags = if af_len > 0 { b[5] } else { 0 };
        let disc = af_flags & 0x80 != 0;
        // Continuity (§2.4.3.3, TR 101 290 1.4): +1 per packet with payload, one duplicate
        // allowed, anything goes after discontinuity_indicator; not checked on the null PID.
        if has_payload && pid != NULL {
            if st.flags & PAYLOAD_SEEN == 0 {
                st.flags |= PAYLOAD_SEEN;
                st.first_cc = cc;
                st.last_cc = cc;
            } else {
                let expected = (st.last_cc + 1) & 0x0F;
                if disc || cc == expected {
                    st.flags &= !DUPLICATE;
                } else if cc == st.last_cc && st.flags & DUPLICATE == 0 {
                    st.flags |= DUPLICATE;
                } else {
                    st.flags &= !DUPLICATE;
                    st.last_cc = cc;
                    self.problem(Problem::CcError {
                        pid: Pid::new(pid as u16),
                        byte_offset: at,
                        packet: idx,
                        expected,
                        found: cc,
                    });
                    return self.packet_rest(b, pid, af_flags, af_len, disc, idx, at);
                }
                st.last_cc = cc;
            }
        }
        self.packet_rest(b, pid, af_flags, af_len, disc, idx, at)
    }

    /// PCR, PSI and video handling of a packet.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn packet_rest(
        &mut self,
        b: &[u8],
        pid: usize,
        af_flags: u8,
        af_len: u8,
        disc: bool,
        idx: u64,
        at: u64,
    ) {
        // PCR_flag (§2.4.3.4): 6 bytes after the flags byte.
        if af_flags & 0x10 != 0 && af_len >= 7 {
            let f: [u8; 6] = [b[6], b[7], b[8], b[9], b[10], b[11]];
            let obs = PcrObs {
                packet: idx,
                pcr: Pcr::from_field(f),
                flagged: disc,
            };
            let list = self.pcrs.entry(pid as u16).or_default();
            if list.is_empty() {
                self.pcr_pid_order.push(pid as u16);
            }
            list.push(obs);
        }
        let interest = self.pids[pid].flags & (WANT_PSI | VIDEO);
        let pusi = b[1] & 0x40 != 0;
        if interest == 0 && !(pusi && self.video_pid.is_none() && pid != NULL) {
            return;
        }
        let Ok(pkt) = Packet::new_checked(b) else {
            return;
        };
        if interest & WANT_PSI != 0 {
            self.psi_packet(&pkt, pid, at);
        }
        if !pusi {
            return;
        }
        if interest & VIDEO != 0 {
            let ts = video_ts(&pkt);
            self.frame_start(idx, ts);
        } else if self.video_pid.is_none()
            && pid != 0
            && self.pending_video.len() < MAX_PENDING
            && is_video_pes(pkt.payload())
        {
            self.pending_video.push((idx, pid as u16, video_ts(&pkt)));
        }
    }

    fn frame_start(&mut self, idx: u64, ts: Option<u64>) {
        self.frame_starts.push(idx);
        if let Some(ts) = ts {
            if let Some(prev) = self.last_ts {
                let d = (ts + PTS_MODULUS - prev) % PTS_MODULUS;
                if d > 0 && d <= MAX_FRAME_DELTA {
                    *self.frame_deltas.entry(d).or_default() += 1;
                }
            }
            self.last_ts = Some(ts);
        }
    }

    fn psi_packet(&mut self, pkt: &Packet<'_>, pid: usize, at: u64) {
        let sections = self.psi.assemblers.entry(pid as u16).or_default().push(pkt);
        for sec in sections {
            if pid == 0 {
                match psi::parse_pat(&sec) {
                    Ok(entries) => self.pat(&sec, entries, at),
                    Err(e) => self.psi_problem(pid, at, format!("PAT: {e}")),
                }
            } else {
                match psi::parse_pmt(&sec) {
                    Ok(pmt) => self.pmt(pid, &sec, pmt, at),
                    Err(psi::PsiError::TableId(_)) => {}
                    Err(e) => self.psi_problem(pid, at, format!("PMT: {e}")),
                }
            }
        }
    }

    /// A checked PAT section: the programs of the first; later ones reported when they
    /// differ, their new programs added.
    fn pat(&mut self, sec: &[u8], entries: Vec<psi::PatEntry>, at: u64) {
        let Some(id) = psi::SectionId::of(sec).filter(|i| i.applies()) else {
            return;
        };
        let prev = self.psi.pat.replace(id);
        if prev == Some(id) {
            return;
        }
        let mut added = Vec::new();
        for e in entries.iter().filter(|e| e.program_number != 0) {
            let known = self
                .psi
                .programs
                .iter()
                .any(|p| p.program_number == e.program_number && p.pmt_pid == e.pid);
            if !known {
                self.psi.pmt.push(None);
                self.psi.programs.push(ProgramInfo {
                    program_number: e.program_number,
                    pmt_pid: e.pid,
                    pcr_pid: None,
                    streams: Vec::new(),
                });
                self.pids[e.pid.value() as usize].flags |= WANT_PSI;
                added.push(format!("program {} (PMT PID {})", e.program_number, e.pid));
            }
        }
        let Some(prev) = prev else {
            return;
        };
        let removed: Vec<String> = self
            .psi
            .programs
            .iter()
            .filter(|p| {
                !entries
                    .iter()
                    .any(|e| e.program_number == p.program_number && e.pid == p.pmt_pid)
            })
            .map(|p| format!("program {} (PMT PID {})", p.program_number, p.pmt_pid))
            .collect();
        let mut detail = Vec::new();
        if !added.is_empty() {
            detail.push(format!("added {}", added.join(", ")));
        }
        if !removed.is_empty() {
            detail.push(format!("gone {}", removed.join(", ")));
        }
        self.problem(Problem::PsiChange {
            pid: Pid::new(0),
            byte_offset: at,
            table: "PAT".into(),
            program: None,
            version_from: prev.version,
            version_to: id.version,
            detail: detail.join("; "),
        });
    }

    fn psi_problem(&mut self, pid: usize, at: u64, message: String) {
        self.problem(Problem::Psi {
            pid: Pid::new(pid as u16),
            byte_offset: at,
            message,
        });
    }

    /// A checked PMT section: the first of each program fixes its streams (and the video
    /// PID of the played program); a later one that differs is reported, its new streams
    /// added, and a new video PID of the played program takes the frame starts from here.
    fn pmt(&mut self, pid: usize, sec: &[u8], pmt: psi::Pmt, at: u64) {
        let Some(id) = psi::SectionId::of(sec).filter(|i| i.applies()) else {
            return;
        };
        let psi = &mut self.psi;
        let Some(i) = (0..psi.programs.len()).find(|&i| {
            let p = &psi.programs[i];
            p.pmt_pid.value() as usize == pid && p.program_number == pmt.program_number
        }) else {
            return;
        };
        match psi.pmt[i].replace(id) {
            None => self.first_pmt(i, pmt),
            Some(prev) if prev != id => self.pmt_change(i, prev, id, pmt, at),
            Some(_) => {}
        }
    }

    fn first_pmt(&mut self, i: usize, pmt: psi::Pmt) {
        let prog = &mut self.psi.programs[i];
        prog.pcr_pid = (pmt.pcr_pid != Pid::NULL).then_some(pmt.pcr_pid);
        prog.streams = pmt.streams;
        let wanted = match self.want_program {
            Some(n) => n == self.psi.programs[i].program_number,
            None => self.selected.is_none(),
        };
        if wanted && self.selected.is_none() {
            self.selected = Some(i);
            let video = self.psi.programs[i]
                .streams
                .iter()
                .find(|s| s.is_video())
                .map(|s| s.pid);
            if let Some(v) = video {
                self.set_video(v);
            }
        }
    }

    fn pmt_change(
        &mut self,
        i: usize,
        prev: psi::SectionId,
        id: psi::SectionId,
        pmt: psi::Pmt,
        at: u64,
    ) {
        let prog = &mut self.psi.programs[i];
        let (program, pmt_pid) = (prog.program_number, prog.pmt_pid);
        let mut detail = Vec::new();
        if prev.version == id.version {
            detail.push("content changed without a new version_number (§2.4.4.8)".to_string());
        }
        let new_pcr = (pmt.pcr_pid != Pid::NULL).then_some(pmt.pcr_pid);
        if new_pcr != prog.pcr_pid {
            let name = |p: Option<Pid>| p.map_or("none".to_string(), |p| p.to_string());
            detail.push(format!(
                "PCR_PID {} -> {} (the timeline keeps the PCRs of PID {})",
                name(prog.pcr_pid),
                name(new_pcr),
                name(prog.pcr_pid)
            ));
        }
        let name = |s: &psi::EsInfo| format!("PID {} {}", s.pid, s.kind());
        for s in &pmt.streams {
            if !prog.streams.iter().any(|o| o.pid == s.pid) {
                detail.push(format!("added {}", name(s)));
                prog.streams.push(*s);
            }
        }
        for o in &prog.streams {
            if !pmt.streams.iter().any(|s| s.pid == o.pid) {
                detail.push(format!("gone {}", name(o)));
            }
        }
        if self.selected == Some(i) {
            let video = pmt.streams.iter().find(|s| s.is_video()).map(|s| s.pid);
            let current = (0..8192u16).find(|&p| self.pids[p as usize].flags & VIDEO != 0);
            if let (Some(v), Some(c)) = (video, current) {
                if v.value() != c {
                    self.pids[c as usize].flags &= !VIDEO;
                    self.pids[v.value() as usize].flags |= VIDEO;
                    self.last_ts = None;
                    detail.push(format!("frame starts follow video PID {v} from here"));
                }
            }
        }
        self.problem(Problem::PsiChange {
            pid: pmt_pid,
            byte_offset: at,
            table: "PMT".into(),
            program: Some(program),
            version_from: prev.version,
            version_to: id.version,
            detail: detail.join("; "),
        });
    }

    /// Fixes the video PID and replays the frame starts seen on it before it was known.
    pub(crate) fn set_video(&mut self, v: Pid) {
        self.video_pid = Some(v);
        self.pids[v.value() as usize].flags |= VIDEO;
        let pending = std::mem::take(&mut self.pending_video);
        for (idx, pid, ts) in pending {
            if pid == v.value() {
                self.frame_start(idx, ts);
            }
        }
    }

    /// When no PMT named a video stream: the first PID that carried a video PES.
    pub(crate) fn fallback_video(&mut self) {
        if self.video_pid.is_none() && self.selected.is_none() {
            if let Some(&(_, pid, _)) = self.pending_video.first() {
                self.set_video(Pid::new(pid));
            }
        }
    }

    /// Programs found in the PAT (with their PMTs where seen).
    pub(crate) fn programs(&self) -> &[ProgramInfo] {
        &self.psi.programs
    }
}

/// DTS, else PTS, of a PES packet starting in `pkt`.
fn video_ts(pkt: &Packet<'_>) -> Option<u64> {
    let t = pes::timestamps(pkt);
    t.dts.or(t.pts)
}

/// The payload starts a PES packet of a video `stream_id` (0xE0..=0xEF, §2.4.3.7).
fn is_video_pes(payload: &[u8]) -> bool {
    payload.len() >= 4 && payload[..3] == [0, 0, 1] && payload[3] & 0xF0 == 0xE0
}

/// Finds the first offset in `b` where [`CONFIRM`] packets are aligned. At `eof`, a
/// candidate is accepted when every aligned position up to the end holds a sync byte and
/// at least one whole packet remains.
fn find_sync(b: &[u8], eof: bool) -> Search {
    let mut o = 0;
    while o < b.len() {
        let Some(rel) = b[o..].iter().position(|&x| x == SYNC_BYTE) else {
            return Search::NeedMore(b.len());
        };
        o += rel;
        let mut k = 1;
        let mut ok = true;
        while k < CONFIRM {
            let i = o + k * PACKET_SIZE;
            if i >= b.len() {
                break;
            }
            if b[i] != SYNC_BYTE {
                ok = false;
                break;
            }
            k += 1;
        }
        if ok {
            if k == CONFIRM {
                return Search::Found(o);
            }
            // Ran out of data while every position so far matched.
            if !eof {
                return Search::NeedMore(o);
            }
            if o + PACKET_SIZE <= b.len() {
                return Search::Found(o);
            }
        }
        o += 1;
    }
    Search::NeedMore(b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_sync_needs_confirmation() {
        let mut b = vec![0u8; 10 * PACKET_SIZE];
        for k in 0..8 {
            b[3 + k * PACKET_SIZE] = SYNC_BYTE;
        }
        b[1] = SYNC_BYTE; // a lone 0x47 is not sync
        assert!(matches!(find_sync(&b, false), Search::Found(3)));
        // Not enough data to confirm: keep the candidate.
        assert!(matches!(
            find_sync(&b[..3 * PACKET_SIZE], false),
            Search::NeedMore(3)
        ));
        assert!(matches!(
            find_sync(&b[..3 * PACKET_SIZE], true),
            Search::Found(3)
        ));
        assert!(matches!(
            find_sync(&[0u8; 500], false),
            Search::NeedMore(500)
        ));
    }
}
