//! Frame-aligned read chunks (both engines read the same asset in frame-aligned chunks): a
//! chunk runs from one datagram of the map that starts a video frame to a later
//! one, so a read never splits a frame; assets without frame starts, or frames larger than
//! the cap, are cut at a fixed number of datagrams.

use std::ops::Range;

use crate::index::{flags, OffsetMap};
use crate::ts::packet::DATAGRAM_PAYLOAD;

/// The chunks of one pass, as ranges of map datagrams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkPlan {
    /// First map datagram of every chunk (starts with 0, strictly increasing).
    starts: Vec<u64>,
    /// Map datagrams in one pass.
    datagrams: u64,
}

impl ChunkPlan {
    /// Plans chunks over `map`: each chunk starts at a frame-start datagram (or at 0), holds
    /// at least `min_bytes` when frames allow it (0 = one frame per chunk) and at most
    /// `max_bytes` (rounded to whole datagrams, at least one).
    pub fn new(map: &OffsetMap, min_bytes: usize, max_bytes: usize) -> ChunkPlan {
        let datagrams = map.datagram_count();
        let min_d = (min_bytes / DATAGRAM_PAYLOAD) as u64;
        let max_d = ((max_bytes / DATAGRAM_PAYLOAD) as u64).max(1).max(min_d);
        let frame_starts: Vec<u64> = map
            .datagrams
            .iter()
            .enumerate()
            .filter(|(_, d)| d.flags & flags::FRAME_START != 0)
            .map(|(i, _)| i as u64)
            .filter(|&i| i < datagrams)
            .collect();
        let mut starts = vec![0u64];
        let mut start = 0u64;
        loop {
            let lo = start + min_d.max(1);
            let cap = start + max_d;
            if lo >= datagrams {
                break;
            }
            let x = frame_starts.partition_point(|&f| f < lo);
            let next = match frame_starts.get(x) {
                Some(&f) if f <= cap => f,
                _ => cap,
            };
            if next >= datagrams {
                break;
            }
            starts.push(next);
            start = next;
        }
        ChunkPlan { starts, datagrams }
    }

    /// Number of chunks.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether the plan is empty (never: a plan holds at least one chunk).
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The map datagrams of the chunk holding map datagram `d`.
    pub fn chunk_of(&self, d: u64) -> Range<u64> {
        let x = self.starts.partition_point(|&s| s <= d).max(1) - 1;
        let end = self.starts.get(x + 1).copied().unwrap_or(self.datagrams);
        self.starts[x]..end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::testutil::{asset, Spec};

    #[test]
    fn one_frame_per_chunk() {
        let (_, map) = asset(&Spec::default()); // frame start every 40 packets
        let plan = ChunkPlan::new(&map, 0, 1 << 20);
        let starts: Vec<u64> = (0..plan.len()).map(|c| plan.starts[c]).collect();
        let want: Vec<u64> = map
            .datagrams
            .iter()
            .enumerate()
            .filter(|(_, d)| d.flags & flags::FRAME_START != 0)
            .map(|(i, _)| i as u64)
            .collect();
        assert_eq!(starts, want);
        assert_eq!(plan.chunk_of(0), 0..want[1]);
        assert_eq!(plan.chunk_of(want[1]), want[1]..want[2]);
        let last = *want.last().unwrap();
        assert_eq!(plan.chunk_of(map.datagram_count() - 1), last..100);
    }

    #[test]
    fn min_and_max_sizes() {
        let (_, map) = asset(&Spec::default());
        let plan = ChunkPlan::new(&map, 10 * 1316, 1 << 20);
        for c in 0..plan.len() {
            let r = plan.chunk_of(plan.starts[c]);
            assert!(r.end - r.start >= 10 || r.end == 100, "{r:?}");
            assert!(map.datagrams[r.start as usize].flags & flags::FRAME_START != 0);
        }
        let plan = ChunkPlan::new(&map, 0, 3 * 1316);
        assert!((0..100).all(|d| {
            let r = plan.chunk_of(d);
            r.contains(&d) && r.end - r.start <= 3
        }));
    }
}
