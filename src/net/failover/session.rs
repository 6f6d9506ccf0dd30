//! The asset and session of a failover server: the offset map, the output stream both
//! servers render identically, and where its timeline sits on this server's clocks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::failover::wire::SyncParams;
use crate::index::{AssetIdentity, OffsetMap};
use crate::io::playlist::Source;
use crate::net::url::Framing;
use crate::stream::{OutputStream, SessionParams};
use crate::ts::pcr::{ns_to_ticks, ticks_to_ns};
use crate::units::Ticks27M;

/// Frame duration assumed for assets without a known frame rate (25 fps).
pub const DEFAULT_FRAME_NS: u64 = 40_000_000;

/// A loaded asset, or a playlist's clips.
#[derive(Debug, Clone)]
pub struct Asset {
    /// Where it is on this server (the asset, or the playlist).
    pub path: PathBuf,
    /// The clips it plays (one for an asset).
    pub source: Source,
    /// The offset map of its (first) clip.
    pub map: Arc<OffsetMap>,
    /// One video frame, ns (or [`DEFAULT_FRAME_NS`]).
    pub frame_ns: u64,
    /// Largest departure gap between two consecutive datagrams, ns.
    pub max_gap_ns: u64,
}

impl Asset {
    /// Loads (or builds and saves) the offset map of `path`.
    /// Start-up work: at idle priority with quiet start-up (`net::priority::quietly`).
    pub fn load(path: &Path) -> anyhow::Result<Asset> {
        crate::net::priority::quietly("asset", || Asset::load_now(path))
    }

    fn load_now(path: &Path) -> anyhow::Result<Asset> {
        // The index and playlist errors name the file already.
        let source = Source::load(path, false)?;
        let map = source.clips[0].map.clone();
        let frame_ns = map
            .frame_ticks()
            .map(ticks_to_ns)
            .filter(|&f| f > 0)
            .unwrap_or(DEFAULT_FRAME_NS);
        let max_gap = source
            .clips
            .iter()
            .flat_map(|c| {
                c.map
                    .datagrams
                    .windows(2)
                    .map(|w| w[1].time.since(w[0].time))
            })
            .max()
            .unwrap_or(Ticks27M(0));
        // Across the loop point (a short silence where the video cadence is longer than the
        // byte span, see `stream::cadence`).
        let join = map.datagrams.last().map_or(0, |last| {
            let period = crate::stream::LoopPlan::for_map(&map, None).period;
            (period + map.packet_time(0)).saturating_sub(last.time.0)
        });
        let max_gap = max_gap.max(Ticks27M(join));
        Ok(Asset {
            path: path.to_path_buf(),
            frame_ns,
            max_gap_ns: max_gap.to_ns(),
            map,
            source,
        })
    }

    /// Its identity.
    pub fn identity(&self) -> AssetIdentity {
        self.source.identity()
    }

    /// The session text both servers derive the RTP SSRC etc. from: `--session-id`, or the
    /// same default as `tandem play` (content hash @ live group).
    pub fn session_text(&self, session_id: Option<&str>, live: std::net::SocketAddrV4) -> String {
        match session_id {
            Some(s) => s.to_string(),
            None => format!("{:032x}@{}", self.identity().hash, live),
        }
    }

    /// The output stream of a session over this asset (or playlist).
    pub fn stream(
        &self,
        session: String,
        framing: Framing,
        loops: Option<u64>,
    ) -> anyhow::Result<OutputStream> {
        let files = self.source.open()?;
        self.source.stream(
            &files,
            SessionParams {
                session_id: session,
                framing,
                loops,
            },
        )
    }

    /// Opens the clip files, in order (for an engine).
    pub fn open(&self) -> anyhow::Result<Vec<std::fs::File>> {
        self.source.open()
    }
}

/// `--loop` as given (`None`: one pass; `Some(0)`: endless; `Some(n)`: n passes) to the
/// stream's loop count.
pub fn loops_of(flag: Option<u64>) -> Option<u64> {
    match flag {
        None => Some(1),
        Some(0) => None,
        Some(n) => Some(n),
    }
}

/// The stream's loop count to the wire's (0 = endless).
pub fn loop_count_wire(loops: Option<u64>) -> u32 {
    loops.map_or(0, |n| n.min(u32::MAX as u64) as u32)
}

/// The wire's loop count to the stream's.
pub fn loops_from_wire(n: u32) -> Option<u64> {
    (n != 0).then_some(n as u64)
}

/// Where a session's timeline sits on one server's realtime clock: datagram
/// `origin_index` departs at `origin_real_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    /// Realtime ns (this server's clock, `net::clock::real_ns`).
    pub origin_real_ns: u64,
    /// The datagram departing then.
    pub origin_index: u64,
}

impl Timeline {
    /// The timeline of parameters stamped on another server's clock, moved onto ours with
    /// the measured offset (theirs minus ours, RFC 5905 §8).
    pub fn from_params(p: &SyncParams, offset_ns: i64) -> Timeline {
        Timeline {
            origin_real_ns: (p.origin_real_ns.0 as i128 - offset_ns as i128).max(0) as u64,
            origin_index: p.origin_index.0,
        }
    }

    /// Realtime ns of timeline time 0 (may be before 1970 for absurd inputs: i128).
    pub fn zero_real(&self, s: &OutputStream) -> i128 {
        self.origin_real_ns as i128 - s.departure_ns(self.origin_index) as i128
    }

    /// When datagram `i` is due, realtime ns.
    pub fn due_real(&self, s: &OutputStream, i: u64) -> i128 {
        self.zero_real(s) + s.departure_ns(i) as i128
    }

    /// The first datagram due at or after realtime `real`.
    pub fn index_at(&self, s: &OutputStream, real: u64) -> u64 {
        let rel = real as i128 - self.zero_real(s);
        if rel <= 0 {
            0
        } else {
            s.index_at(ns_to_ticks(rel.min(u64::MAX as i128) as u64))
        }
    }
}
