//! Feeds [`OutputStream::render`] from the asset file: reads frame-aligned chunks with
//! positioned reads (`pread`), so any datagram index can be rendered at any time (the
//! failover secondary rewinds to a boundary in the past).

use std::io;
use std::sync::Arc;

use super::chunk::ChunkPlan;
use super::{OutputStream, RenderError};
use crate::ts::packet::{PACKETS_PER_DATAGRAM, PACKET_SIZE};

/// Positioned reads from an asset (a file: implemented at the edge, `io::asset`; or bytes in
/// memory for tests).
pub trait ReadAt {
    /// Fills `buf` from byte `offset` (like `std::os::unix::fs::FileExt::read_exact_at`).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Arc<T> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
}

/// Why a datagram could not be produced from the file.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The read failed (file truncated or unreadable since it was indexed).
    #[error("reading {len} bytes of the asset at byte offset {offset}: {source}")]
    Io {
        /// Byte offset of the read.
        offset: u64,
        /// Bytes requested.
        len: usize,
        /// The OS error.
        source: io::Error,
    },
    /// The map does not place an asset packet (inconsistent map).
    #[error("the offset map does not place asset packet {0}")]
    Unmapped(u64),
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// Chunk bounds of the defaults: frame-aligned chunks of at least 256 KiB (a few frames:
/// one positioned read per tenth of a second or so at 14 Mb/s, fewer system calls and
/// wakes of the reader), at most 1 MiB.
pub const CHUNK_MIN_BYTES: usize = 256 * 1024;
/// See [`CHUNK_MIN_BYTES`].
pub const CHUNK_MAX_BYTES: usize = 1 << 20;

/// Renders datagrams of a session from its clips' files, one chunk in memory at a time.
pub struct DatagramSource<R> {
    stream: Arc<OutputStream>,
    /// One source per clip of the stream, in order.
    srcs: Vec<R>,
    /// One chunk plan per clip.
    plans: Vec<ChunkPlan>,
    chunk: Vec<u8>,
    /// Clip `c`'s packets `[first, end)` held in `chunk`, which starts at its file's byte
    /// `byte_start`: `(c, first, end, byte_start)`.
    loaded: Option<(usize, u64, u64, u64)>,
    reads: u64,
}

impl<R: ReadAt> DatagramSource<R> {
    /// A source over one asset with the given chunk plan.
    pub fn new(stream: Arc<OutputStream>, src: R, plan: ChunkPlan) -> DatagramSource<R> {
        DatagramSource {
            stream,
            srcs: vec![src],
            plans: vec![plan],
            chunk: Vec::new(),
            loaded: None,
            reads: 0,
        }
    }

    /// A source over one asset with the default plan ([`CHUNK_MIN_BYTES`],
    /// [`CHUNK_MAX_BYTES`]).
    pub fn with_default_plan(stream: Arc<OutputStream>, src: R) -> DatagramSource<R> {
        Self::with_sources(stream, vec![src])
    }

    /// A source over the stream's clips (`srcs[c]` holds clip `c`), each with the default
    /// plan.
    pub fn with_sources(stream: Arc<OutputStream>, srcs: Vec<R>) -> DatagramSource<R> {
        let plans = stream
            .programme()
            .clips()
            .iter()
            .map(|c| ChunkPlan::new(&c.map, CHUNK_MIN_BYTES, CHUNK_MAX_BYTES))
            .collect();
        DatagramSource {
            stream,
            srcs,
            plans,
            chunk: Vec::new(),
            loaded: None,
            reads: 0,
        }
    }

    /// The session.
    pub fn stream(&self) -> &Arc<OutputStream> {
        &self.stream
    }

    /// Number of chunk reads so far.
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Renders datagram `i` into `out` (see [`OutputStream::render`]): the packets are
    /// copied once, from the chunk into `out`, and rewritten there.
    pub fn render(&mut self, i: u64, out: &mut Vec<u8>) -> Result<(), SourceError> {
        let n = self.stream.packets_in(i);
        out.clear();
        if n == 0 {
            self.stream.render(i, &[], out)?;
        }
        out.resize(self.stream.header_len(), 0);
        for m in 0..n as u64 {
            let l = self.stream.locate_clip(i * PACKETS_PER_DATAGRAM as u64 + m);
            let at = self.packet(l.clip, l.packet)?;
            out.extend_from_slice(&self.chunk[at..at + PACKET_SIZE]);
        }
        self.stream.render_over(i, out)?;
        Ok(())
    }

    /// Offset in `chunk` of packet `p` of clip `c`, loading its chunk if needed.
    fn packet(&mut self, c: usize, p: u64) -> Result<usize, SourceError> {
        let map = self.stream.programme().clips()[c].map.clone();
        let off = map.packet_offset(p).ok_or(SourceError::Unmapped(p))?;
        match self.loaded {
            Some((lc, first, end, start)) if lc == c && (first..end).contains(&p) => {
                return Ok((off - start) as usize)
            }
            _ => {}
        }
        let (Some(plan), Some(src)) = (self.plans.get(c), self.srcs.get(c)) else {
            return Err(SourceError::Unmapped(p));
        };
        let ppd = PACKETS_PER_DATAGRAM as u64;
        let r = plan.chunk_of(p / ppd);
        let first = r.start * ppd;
        let end = (r.end * ppd).min(map.packets).max(p + 1);
        let start = map
            .packet_offset(first)
            .ok_or(SourceError::Unmapped(first))?;
        let last = map
            .packet_offset(end - 1)
            .ok_or(SourceError::Unmapped(end - 1))?;
        let len = (last + PACKET_SIZE as u64 - start) as usize;
        self.chunk.resize(len, 0);
        self.loaded = None;
        src.read_exact_at(&mut self.chunk, start)
            .map_err(|source| SourceError::Io {
                offset: start,
                len,
                source,
            })?;
        self.reads += 1;
        self.loaded = Some((c, first, end, start));
        Ok((off - start) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::testutil::{asset, gather, Spec};
    use crate::stream::Framing;
    use crate::stream::SessionParams;

    fn source(spec: &Spec, loops: Option<u64>) -> (Vec<u8>, DatagramSource<Vec<u8>>) {
        let (bytes, map) = asset(spec);
        let s = OutputStream::new(
            Arc::new(map),
            SessionParams {
                session_id: "r".into(),
                framing: Framing::Rtp,
                loops,
            },
        )
        .unwrap();
        let src = DatagramSource::new(
            Arc::new(s),
            bytes.clone(),
            ChunkPlan::new(&asset(spec).1, 0, 1 << 20),
        );
        (bytes, src)
    }

    #[test]
    fn matches_direct_rendering_across_sync_loss_and_loops() {
        let spec = Spec {
            packets: 1000,
            junk_before: Some((333, 77)),
            ..Spec::default()
        };
        let (bytes, mut src) = source(&spec, Some(3));
        let s = src.stream().clone();
        assert_eq!(s.map().segments.len(), 2);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..s.datagram_count().unwrap() {
            src.render(i, &mut a).unwrap();
            s.render(i, &gather(&bytes, &s, i), &mut b).unwrap();
            assert_eq!(a, b, "datagram {i}");
        }
        // One read per frame-aligned chunk and pass, plus re-reads at straddling datagrams.
        let chunks = ChunkPlan::new(s.map(), 0, 1 << 20).len() as u64;
        assert!(src.reads() >= 3 * chunks && src.reads() <= 3 * chunks + 6);
        // Random access (a rewind) gives the same bytes.
        src.render(200, &mut a).unwrap();
        s.render(200, &gather(&bytes, &s, 200), &mut b).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn truncated_file_is_an_io_error() {
        let (mut bytes, map) = asset(&Spec::default());
        bytes.truncate(bytes.len() - 1000);
        let s = Arc::new(
            OutputStream::new(
                Arc::new(map),
                SessionParams {
                    session_id: "r".into(),
                    framing: Framing::Udp,
                    loops: Some(1),
                },
            )
            .unwrap(),
        );
        // One frame per chunk: the first chunk is whole, the last one is cut short.
        let plan = ChunkPlan::new(s.map(), 0, CHUNK_MAX_BYTES);
        let mut src = DatagramSource::new(s.clone(), bytes, plan);
        let mut out = Vec::new();
        src.render(0, &mut out).unwrap();
        let last = s.datagram_count().unwrap() - 1;
        assert!(matches!(
            src.render(last, &mut out),
            Err(SourceError::Io { .. })
        ));
        assert!(matches!(
            src.render(last + 1, &mut out),
            Err(SourceError::Render(RenderError::PastEnd { .. }))
        ));
    }
}
