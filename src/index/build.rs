//! `index::build`: one streaming pass over an asset -> [`OffsetMap`] + [`Report`].
//!
//! The asset is read through [`Read`] (the file is opened at the edge, `io::asset`) in
//! 1 MiB chunks into one reused buffer and fed to the sans-IO [`Scanner`]; the XXH3-128 identity hash is computed over the same chunks. Everything
//! derived (timeline, datagram table, frame rate) is computed from the scan's facts in
//! [`finish`], a pure function of the file content.

use std::io::Read;
use std::path::Path;

use super::error::{BuildError, IndexError};
use super::report::{PcrSpacing, PidCount, Problem, Report};
use super::scan::Scanner;
use super::timeline::{self, frame_rate_from_delta, round_up_300, PcrObs};
use super::{flags, AssetIdentity, DatagramEntry, Interpolator, OffsetMap, PidCc, Segment};
use crate::ts::packet::{Cc, Pid, PACKETS_PER_DATAGRAM, PACKET_SIZE};
use crate::units::Ticks27M;

/// Read size of the scan.
pub const CHUNK: usize = 1 << 20;

/// How to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildOptions {
    /// Compute the XXH3-128 content hash (identity). Without it `identity.hash` is 0.
    pub hash: bool,
    /// Program number to follow (default: the first program of the PAT).
    pub program: Option<u16>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            hash: true,
            program: None,
        }
    }
}

/// A built map with the scan report.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// The offset map.
    pub map: OffsetMap,
    /// Programs, PID counts, PCR spacing, problems.
    pub report: Report,
}

/// Scans everything `r` yields once and builds its offset map; `path` names the asset in
/// errors, `on_progress` hears the bytes read so far (every 16 MiB and at the end).
///
/// Errors: a failed read ([`IndexError::Io`], with the byte offset), or content that
/// cannot be played ([`IndexError::Build`]: empty, not TS, no packets, fewer than two PCRs).
pub fn build_from<R: Read>(
    r: &mut R,
    path: &Path,
    opts: &BuildOptions,
    on_progress: &mut dyn FnMut(u64),
) -> Result<Built, IndexError> {
    let scanned =
        scan_reader(r, opts, on_progress).map_err(|(offset, e)| IndexError::io(path, offset, e))?;
    finish(scanned).map_err(|e| IndexError::build(path, e))
}

/// Builds from bytes in memory (tests, synthetic streams).
pub fn build_bytes(data: &[u8], opts: &BuildOptions) -> Result<Built, BuildError> {
    let mut r = data;
    let scanned =
        scan_reader(&mut r, opts, &mut |_| {}).map_err(|_| BuildError::NoPackets { size: 0 })?;
    finish(scanned)
}

/// What one pass produced before derivation.
pub struct Scanned {
    scanner: Scanner,
    size: u64,
    hash: Option<u128>,
}

/// Reads `r` to the end through the scanner (and the hasher). Errors carry the byte offset.
pub fn scan_reader<R: Read>(
    r: &mut R,
    opts: &BuildOptions,
    on_progress: &mut dyn FnMut(u64),
) -> Result<Scanned, (u64, std::io::Error)> {
    scan_reader_chunked(r, opts, on_progress, CHUNK)
}

/// [`scan_reader`] with a given buffer size (at least 4 KiB; smaller values are raised).
pub fn scan_reader_chunked<R: Read>(
    r: &mut R,
    opts: &BuildOptions,
    on_progress: &mut dyn FnMut(u64),
    chunk: usize,
) -> Result<Scanned, (u64, std::io::Error)> {
    let mut scanner = Scanner::new(opts.program);
    let mut hasher = opts.hash.then(xxhash_rust::xxh3::Xxh3::new);
    // The scanner keeps fewer than CONFIRM packets unconsumed, so this always has room.
    let mut buf = vec![0u8; chunk.max(4096)];
    let mut filled = 0usize;
    let mut total = 0u64;
    let mut last_report = 0u64;
    loop {
        let n = match r.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err((total, e)),
        };
        if let Some(h) = hasher.as_mut() {
            h.update(&buf[filled..filled + n]);
        }
        total += n as u64;
        filled += n;
        let eof = n == 0;
        // Feed when the buffer is full (or at the end), so the scanner sees large slices.
        if eof || filled == buf.len() {
            let used = scanner.feed(&buf[..filled], eof);
            buf.copy_within(used..filled, 0);
            filled -= used;
        }
        if total - last_report >= 16 * CHUNK as u64 {
            on_progress(total);
            last_report = total;
        }
        if eof {
            break;
        }
        if scanner.failed() {
            // Not TS: no need to read (or hash) the rest.
            break;
        }
    }
    on_progress(total);
    Ok(Scanned {
        scanner,
        size: total,
        hash: hasher.map(|h| h.digest128()),
    })
}

/// Derives the map and report from one pass (pure: depends on the file content only).
pub fn finish(s: Scanned) -> Result<Built, BuildError> {
    let Scanned {
        mut scanner,
        size,
        hash,
    } = s;
    if size == 0 {
        return Err(BuildError::Empty);
    }
    if scanner.not_ts {
        return Err(BuildError::NotTs {
            scanned: scanner.offset(),
        });
    }
    if scanner.packets == 0 {
        return Err(if scanner.starts_with_sync {
            BuildError::NoPackets { size }
        } else {
            BuildError::NotTs { scanned: size }
        });
    }
    scanner.fallback_video();
    let packets = scanner.packets;
    let segments = scanner.segments.clone();

    // The PCR PID: the PMT's, else the first PID carrying (at least two) PCRs.
    let selected = scanner.selected.map(|i| scanner.programs()[i].clone());
    let pmt_pcr = selected.as_ref().and_then(|p| p.pcr_pid);
    let count = |pid: Pid| scanner.pcrs.get(&pid.value()).map_or(0, Vec::len);
    let pcr_pid = match pmt_pcr {
        Some(p) if count(p) >= 2 => p,
        _ => {
            let Some(&first) = scanner
                .pcr_pid_order
                .iter()
                .find(|&&p| count(Pid::new(p)) >= 2)
            else {
                let pid = pmt_pcr.or(scanner.pcr_pid_order.first().map(|&p| Pid::new(p)));
                return Err(BuildError::NoPcr {
                    pid,
                    found: pid.map_or(0, count),
                    scanned: size,
                });
            };
            let used = Pid::new(first);
            scanner.problem(Problem::PcrPidFallback {
                pmt_pcr_pid: pmt_pcr,
                used,
            });
            used
        }
    };
    let obs: Vec<PcrObs> = scanner.pcrs.remove(&pcr_pid.value()).unwrap_or_default();
    let offset_of = |p: u64| packet_offset(&segments, p).unwrap_or(0);
    let Some(tl) = timeline::timeline(&obs) else {
        return Err(BuildError::NoPcrRate {
            pid: pcr_pid,
            byte_offset: obs.last().map_or(0, |o| offset_of(o.packet)),
        });
    };
    for b in &tl.breaks {
        let a = tl.anchors[b.anchor];
        scanner.problem(Problem::PcrDiscontinuity {
            pid: pcr_pid,
            byte_offset: offset_of(a.packet),
            packet: a.packet,
            flagged: b.flagged,
            step_ticks: b.step_ticks,
        });
    }
    let anchors = tl.anchors;
    let loop_period = round_up_300(super::interpolate(&anchors, packets));

    // PCR spacing over continuous steps.
    let mut spacing: Option<(u64, u64, u64, u64)> = None; // min, max, sum, n
    let mut bi = tl.breaks.iter().map(|b| b.anchor).peekable();
    for i in 1..anchors.len() {
        if bi.peek() == Some(&i) {
            bi.next();
            continue;
        }
        let d = anchors[i].pcr.ticks_since(anchors[i - 1].pcr);
        spacing = Some(match spacing {
            None => (d, d, d, 1),
            Some((lo, hi, sum, n)) => (lo.min(d), hi.max(d), sum + d, n + 1),
        });
    }

    // The datagram table: one linear walk over anchors and frame starts.
    let per = PACKETS_PER_DATAGRAM as u64;
    let frame_starts = &scanner.frame_starts;
    let mut datagrams = Vec::with_capacity(scanner.datagram_offsets.len());
    let mut interp = Interpolator::new(&anchors);
    let (mut ai, mut fi) = (0usize, 0usize);
    for (d, &byte_offset) in scanner.datagram_offsets.iter().enumerate() {
        let first = d as u64 * per;
        let end = first + per;
        let mut fl = 0u8;
        while ai < anchors.len() && anchors[ai].packet < end {
            fl |= flags::HAS_PCR;
            ai += 1;
        }
        // Frame starts at or before `first` (frame in progress), and inside the datagram.
        while fi < frame_starts.len() && frame_starts[fi] <= first {
            fi += 1;
        }
        let frame = fi.saturating_sub(1) as u32;
        if (fi > 0 && frame_starts[fi - 1] == first)
            || (fi < frame_starts.len() && frame_starts[fi] < end)
        {
            fl |= flags::FRAME_START;
        }
        datagrams.push(DatagramEntry {
            byte_offset,
            time: Ticks27M(interp.at(first)),
            flags: fl,
            frame,
        });
    }

    let mut pid_cc = Vec::new();
    let mut pids = Vec::new();
    for (pid, st) in scanner.pids.iter().enumerate() {
        if !st.seen() {
            continue;
        }
        let p = Pid::new(pid as u16);
        pids.push(PidCount {
            pid: p,
            packets: st.count,
        });
        pid_cc.push(if st.payload_seen() && p != Pid::NULL {
            PidCc {
                pid: p,
                first: Cc::new(st.first_cc),
                last: Cc::new(st.last_cc),
                advance: Cc::new(st.last_cc).add(1).since(Cc::new(st.first_cc)),
            }
        } else {
            PidCc {
                pid: p,
                first: Cc::new(st.first_any),
                last: Cc::new(st.last_any),
                advance: 0,
            }
        });
    }

    let frame_delta = timeline::median(&scanner.frame_deltas);
    let map = OffsetMap {
        identity: AssetIdentity {
            size,
            hash: hash.unwrap_or(0),
        },
        packets,
        segments,
        anchors,
        loop_period,
        pcr_pid,
        video_pid: scanner.video_pid,
        frame_rate: frame_delta.and_then(frame_rate_from_delta),
        frames: u32::try_from(frame_starts.len()).unwrap_or(u32::MAX),
        datagrams,
        pid_cc,
    };
    let mut problems = std::mem::take(&mut scanner.problems);
    problems.sort_by_key(problem_offset);
    let report = Report {
        bytes: size,
        programs: scanner.programs().to_vec(),
        program: selected.map(|p| p.program_number),
        pids,
        pcr_spacing: spacing.map(|(min, max, sum, n)| PcrSpacing {
            min,
            mean: sum as f64 / n as f64,
            max,
        }),
        frame_delta_90k: frame_delta,
        problems,
        problems_dropped: scanner.problems_dropped,
    };
    Ok(Built { map, report })
}

fn problem_offset(p: &Problem) -> u64 {
    match p {
        Problem::SyncLoss { byte_offset, .. }
        | Problem::Truncated { byte_offset, .. }
        | Problem::CcError { byte_offset, .. }
        | Problem::PcrDiscontinuity { byte_offset, .. }
        | Problem::BadAdaptationField { byte_offset, .. }
        | Problem::Psi { byte_offset, .. }
        | Problem::PsiChange { byte_offset, .. } => *byte_offset,
        Problem::PcrPidFallback { .. } => 0,
    }
}

/// Byte offset of valid packet `p` given the segments.
fn packet_offset(segments: &[Segment], p: u64) -> Option<u64> {
    let i = segments
        .partition_point(|s| s.first_packet <= p)
        .checked_sub(1)?;
    let s = segments[i];
    (p < s.first_packet + s.packets)
        .then(|| s.byte_offset + (p - s.first_packet) * PACKET_SIZE as u64)
}
