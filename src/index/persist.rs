//! The saved offset map: `ASSET.tandem-index` beside the asset (or, when that directory is
//! not writable, in `$XDG_CACHE_HOME/tandem/`), and [`load_or_build`], which commands call.
//!
//! File format (all integers little-endian):
//!
//! ```text
//! 0   8  magic "TNDMIDX\0"
//! 8   4  format version (u32) = FORMAT_VERSION
//! 12  8  body length (u64)
//! 20  8  XXH3-64 of the body
//! 28  .. body:
//!        identity: size u64, xxh3-128 u128
//!        source stamp: size u64, mtime (ns since the Unix epoch) i128
//!        packets u64, loop_period u64, pcr_pid u16, video_pid u16 (0xFFFF: none),
//!        frame_rate n u32, d u32 (0/0: none), frames u32
//!        segments:  count u64, then (byte_offset u64, first_packet u64, packets u64)
//!        anchors:   count u64, then (packet u64, time u64, pcr u64)
//!        datagrams: count u64, then (byte_offset u64, time u64, flags u8, frame u32)
//!        pid_cc:    count u64, then (pid u16, first u8, last u8, advance u8)
//! ```
//!
//! A file that fails any check (magic, version, checksum, lengths, consistency) is reported
//! as [`PersistError::Corrupt`] and rebuilt, never trusted and never a panic.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::build::{build, BuildOptions};
use super::error::{IndexError, PersistError};
use super::identity::hash_file;
use super::{Anchor, AssetIdentity, DatagramEntry, OffsetMap, PidCc, Segment};
use crate::ts::packet::{Cc, Pid};
use crate::ts::pcr::{Pcr, PCR_MODULUS};

/// File name suffix of a saved index.
pub const SUFFIX: &str = ".tandem-index";
/// Magic bytes.
pub const MAGIC: [u8; 8] = *b"TNDMIDX\0";
/// Format version; a different version is rebuilt.
pub const FORMAT_VERSION: u32 = 1;
const HEADER: usize = 28;

/// Size and modification time of the asset when the index was made: the cheap staleness
/// check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceStamp {
    /// File size.
    pub size: u64,
    /// mtime, nanoseconds since the Unix epoch (negative before it).
    pub mtime_ns: i128,
}

impl SourceStamp {
    /// The stamp of the file at `path` now.
    pub fn of(path: &Path) -> std::io::Result<SourceStamp> {
        let m = std::fs::metadata(path)?;
        let mtime_ns = match m.modified() {
            Ok(t) => match t.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => d.as_nanos() as i128,
                Err(e) => -(e.duration().as_nanos() as i128),
            },
            Err(_) => 0,
        };
        Ok(SourceStamp {
            size: m.len(),
            mtime_ns,
        })
    }
}

/// `ASSET.tandem-index` beside the asset.
pub fn index_path(asset: &Path) -> PathBuf {
    let mut s = asset.as_os_str().to_owned();
    s.push(SUFFIX);
    PathBuf::from(s)
}

/// The fallback location: `$XDG_CACHE_HOME/tandem/` (else `~/.cache/tandem/`), named by a
/// hash of the asset's absolute path plus its file name.
pub fn cache_index_path(asset: &Path) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let abs = std::fs::canonicalize(asset).unwrap_or_else(|_| asset.to_path_buf());
    let key = xxhash_rust::xxh3::xxh3_64(abs.as_os_str().as_encoded_bytes());
    let name = asset.file_name()?.to_string_lossy().into_owned();
    Some(
        base.join("tandem")
            .join(format!("{key:016x}-{name}{SUFFIX}")),
    )
}

// ---------------------------------------------------------------- encoding

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u128(&mut self, v: u128) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
}

/// Serialises `map` with the asset's `stamp`.
pub fn encode(map: &OffsetMap, stamp: &SourceStamp) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(256 + map.datagrams.len() * 21));
    w.u64(map.identity.size);
    w.u128(map.identity.hash);
    w.u64(stamp.size);
    w.u128(stamp.mtime_ns as u128);
    w.u64(map.packets);
    w.u64(map.loop_period);
    w.u16(map.pcr_pid.value());
    w.u16(map.video_pid.map_or(0xFFFF, |p| p.value()));
    let (n, d) = map.frame_rate.unwrap_or((0, 0));
    w.u32(n);
    w.u32(d);
    w.u32(map.frames);
    w.u64(map.segments.len() as u64);
    for s in &map.segments {
        w.u64(s.byte_offset);
        w.u64(s.first_packet);
        w.u64(s.packets);
    }
    w.u64(map.anchors.len() as u64);
    for a in &map.anchors {
        w.u64(a.packet);
        w.u64(a.time);
        w.u64(a.pcr.ticks());
    }
    w.u64(map.datagrams.len() as u64);
    for e in &map.datagrams {
        w.u64(e.byte_offset);
        w.u64(e.time);
        w.u8(e.flags);
        w.u32(e.frame);
    }
    w.u64(map.pid_cc.len() as u64);
    for c in &map.pid_cc {
        w.u16(c.pid.value());
        w.u8(c.first.value());
        w.u8(c.last.value());
        w.u8(c.advance);
    }
    let body = w.0;
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// A bounds-checked reader over the body; every failure names the byte offset.
struct R<'a> {
    b: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> R<'a> {
    fn corrupt(&self, reason: impl Into<String>) -> PersistError {
        PersistError::Corrupt {
            path: self.path.to_path_buf(),
            offset: (HEADER + self.pos) as u64,
            reason: reason.into(),
        }
    }
    fn take<const N: usize>(&mut self) -> Result<[u8; N], PersistError> {
        let s = self
            .b
            .get(self.pos..self.pos + N)
            .ok_or_else(|| self.corrupt("unexpected end of data"))?;
        self.pos += N;
        // The slice has exactly N bytes.
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, PersistError> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, PersistError> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, PersistError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, PersistError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn u128(&mut self) -> Result<u128, PersistError> {
        Ok(u128::from_le_bytes(self.take()?))
    }
    /// A count of entries of `size` bytes each that must fit in what is left.
    fn count(&mut self, size: usize) -> Result<usize, PersistError> {
        let n = self.u64()?;
        let left = (self.b.len() - self.pos) as u64;
        if !matches!(n.checked_mul(size as u64), Some(need) if need <= left) {
            return Err(self.corrupt(format!("count {n} exceeds the data")));
        }
        Ok(n as usize)
    }
    fn pid(&mut self) -> Result<Pid, PersistError> {
        let v = self.u16()?;
        if v > 0x1FFF {
            return Err(self.corrupt(format!("PID {v} out of range")));
        }
        Ok(Pid::new(v))
    }
}

/// Parses an index file's bytes (`path` names it in errors).
pub fn decode(bytes: &[u8], path: &Path) -> Result<(OffsetMap, SourceStamp), PersistError> {
    let corrupt = |offset: u64, reason: &str| PersistError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.to_string(),
    };
    if bytes.len() < HEADER || bytes[..8] != MAGIC {
        return Err(corrupt(0, "not a tandem index (bad magic)"));
    }
    let word = |o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&bytes[o..o + 8]);
        u64::from_le_bytes(a)
    };
    let mut v = [0u8; 4];
    v.copy_from_slice(&bytes[8..12]);
    let version = u32::from_le_bytes(v);
    if version != FORMAT_VERSION {
        return Err(corrupt(
            8,
            &format!("format version {version}, expected {FORMAT_VERSION}"),
        ));
    }
    let body = &bytes[HEADER..];
    if word(12) != body.len() as u64 {
        return Err(corrupt(12, "body length does not match the file"));
    }
    if word(20) != xxhash_rust::xxh3::xxh3_64(body) {
        return Err(corrupt(20, "checksum mismatch"));
    }
    let mut r = R {
        b: body,
        pos: 0,
        path,
    };
    let identity = AssetIdentity {
        size: r.u64()?,
        hash: r.u128()?,
    };
    let stamp = SourceStamp {
        size: r.u64()?,
        mtime_ns: r.u128()? as i128,
    };
    let packets = r.u64()?;
    let loop_period = r.u64()?;
    let pcr_pid = r.pid()?;
    let video_pid = match r.u16()? {
        0xFFFF => None,
        v if v <= 0x1FFF => Some(Pid::new(v)),
        v => return Err(r.corrupt(format!("video PID {v} out of range"))),
    };
    let frame_rate = match (r.u32()?, r.u32()?) {
        (0, 0) => None,
        (n, d) if n > 0 && d > 0 => Some((n, d)),
        (n, d) => return Err(r.corrupt(format!("frame rate {n}/{d}"))),
    };
    let frames = r.u32()?;
    let n = r.count(24)?;
    let mut segments = Vec::with_capacity(n);
    for _ in 0..n {
        segments.push(Segment {
            byte_offset: r.u64()?,
            first_packet: r.u64()?,
            packets: r.u64()?,
        });
    }
    let n = r.count(24)?;
    let mut anchors = Vec::with_capacity(n);
    for _ in 0..n {
        let packet = r.u64()?;
        let time = r.u64()?;
        let pcr = r.u64()?;
        if pcr >= PCR_MODULUS {
            return Err(r.corrupt("PCR out of range"));
        }
        anchors.push(Anchor {
            packet,
            time,
            pcr: Pcr::from_ticks(pcr),
        });
    }
    let n = r.count(21)?;
    let mut datagrams = Vec::with_capacity(n);
    for _ in 0..n {
        datagrams.push(DatagramEntry {
            byte_offset: r.u64()?,
            time: r.u64()?,
            flags: r.u8()?,
            frame: r.u32()?,
        });
    }
    let n = r.count(5)?;
    let mut pid_cc = Vec::with_capacity(n);
    for _ in 0..n {
        let pid = r.pid()?;
        let (first, last, advance) = (r.u8()?, r.u8()?, r.u8()?);
        if first > 15 || last > 15 || advance > 15 {
            return Err(r.corrupt("CC out of range"));
        }
        pid_cc.push(PidCc {
            pid,
            first: Cc::new(first),
            last: Cc::new(last),
            advance,
        });
    }
    if r.pos != body.len() {
        return Err(r.corrupt("trailing bytes"));
    }
    let map = OffsetMap {
        identity,
        packets,
        segments,
        anchors,
        loop_period,
        pcr_pid,
        video_pid,
        frame_rate,
        frames,
        datagrams,
        pid_cc,
    };
    check(&map).map_err(|reason| corrupt(HEADER as u64, &reason))?;
    Ok((map, stamp))
}

/// Consistency rules every map built by `index::build` satisfies (so downstream code may
/// index without panicking).
pub fn check(map: &OffsetMap) -> Result<(), String> {
    if map.packets == 0 {
        return Err("no packets".into());
    }
    if map.datagrams.len() as u64 != map.datagram_count() {
        return Err(format!(
            "{} datagram entries for {} packets",
            map.datagrams.len(),
            map.packets
        ));
    }
    let mut next = 0u64;
    let mut end = 0u64;
    for s in &map.segments {
        if s.first_packet != next || s.packets == 0 || s.byte_offset < end {
            return Err("segments do not tile the packets".into());
        }
        next = s
            .first_packet
            .checked_add(s.packets)
            .ok_or("segment overflow")?;
        end = s
            .packets
            .checked_mul(crate::ts::packet::PACKET_SIZE as u64)
            .and_then(|n| n.checked_add(s.byte_offset))
            .ok_or("segment overflow")?;
    }
    if next != map.packets || end > map.identity.size {
        return Err("segments do not match the packet count or file size".into());
    }
    if map.anchors.len() < 2
        || map
            .anchors
            .windows(2)
            .any(|w| w[0].packet >= w[1].packet || w[0].time > w[1].time)
        || map.anchors.last().is_some_and(|a| a.packet >= map.packets)
    {
        return Err("anchors not increasing or out of range".into());
    }
    if map.pid_cc.windows(2).any(|w| w[0].pid >= w[1].pid) {
        return Err("pid_cc not sorted".into());
    }
    if map.loop_period
        != super::timeline::round_up_300(super::interpolate(&map.anchors, map.packets))
    {
        return Err("loop period does not match the anchors".into());
    }
    // The datagram table must be what the segments and anchors say.
    let mut it = super::Interpolator::new(&map.anchors);
    for (d, e) in map.datagrams.iter().enumerate() {
        let p = d as u64 * crate::ts::packet::PACKETS_PER_DATAGRAM as u64;
        if map.packet_offset(p) != Some(e.byte_offset) || it.at(p) != e.time {
            return Err(format!("datagram {d} does not match the segments/anchors"));
        }
    }
    Ok(())
}

/// Reads and parses the index file at `path`.
pub fn load(path: &Path) -> Result<(OffsetMap, SourceStamp), PersistError> {
    let bytes = std::fs::read(path).map_err(|error| PersistError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    decode(&bytes, path)
}

/// Writes `map` to `path` atomically (temporary file + rename), creating the directory.
pub fn save_to(map: &OffsetMap, stamp: &SourceStamp, path: &Path) -> Result<(), PersistError> {
    let io = |error| PersistError::Io {
        path: path.to_path_buf(),
        error,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}-{seq}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let res = std::fs::write(&tmp, encode(map, stamp)).and_then(|()| std::fs::rename(&tmp, path));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(io)
}

/// Saves beside the asset, else in the cache directory. Returns where it went.
pub fn save(map: &OffsetMap, stamp: &SourceStamp, asset: &Path) -> Result<PathBuf, PersistError> {
    let beside = index_path(asset);
    match save_to(map, stamp, &beside) {
        Ok(()) => Ok(beside),
        Err(first) => match cache_index_path(asset) {
            Some(cache) => {
                save_to(map, stamp, &cache)?;
                tracing::debug!("{first}; saved the index in {}", cache.display());
                Ok(cache)
            }
            None => Err(first),
        },
    }
}

/// Options of [`load_or_build_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Progress bar on stderr while building (large files, terminal only).
    pub progress: bool,
    /// Ignore any saved index: rebuild and save.
    pub force: bool,
    /// Program number to follow (default: the first of the PAT).
    pub program: Option<u16>,
}

/// Where a map came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Loaded from this index file.
    Loaded(PathBuf),
    /// Built now; saved to this file (None: could not be saved anywhere).
    Built {
        /// Where it was saved.
        saved: Option<PathBuf>,
    },
}

/// A map and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The map.
    pub map: OffsetMap,
    /// Loaded or built.
    pub origin: Origin,
}

/// Loads the saved index of `asset` if it is valid and matches the asset, else builds and
/// saves one. What every command calls.
pub fn load_or_build(asset: &Path, progress: bool) -> Result<OffsetMap, IndexError> {
    load_or_build_with(
        asset,
        &LoadOptions {
            progress,
            ..LoadOptions::default()
        },
    )
    .map(|l| l.map)
}

/// [`load_or_build`] with options, telling where the map came from.
///
/// A saved index is used when its size and mtime match the asset; when only the mtime
/// differs the asset is re-hashed and the index used (and re-stamped) if the hash matches.
/// A corrupt index is rebuilt with a warning. A map that cannot be saved is still returned.
pub fn load_or_build_with(asset: &Path, opts: &LoadOptions) -> Result<Loaded, IndexError> {
    let stamp = SourceStamp::of(asset).map_err(|e| IndexError::io(asset, 0, e))?;
    if !opts.force {
        let candidates = [Some(index_path(asset)), cache_index_path(asset)];
        for path in candidates.into_iter().flatten() {
            if !path.exists() {
                continue;
            }
            match load(&path) {
                Ok((map, saved)) => {
                    if let Some(map) = validate(asset, &path, map, &saved, &stamp, opts)? {
                        return Ok(Loaded {
                            map,
                            origin: Origin::Loaded(path),
                        });
                    }
                }
                Err(e) => tracing::warn!("{e}; rebuilding the index"),
            }
        }
    }
    let built = build(
        asset,
        &BuildOptions {
            hash: true,
            program: opts.program,
            progress: opts.progress,
        },
    )?;
    let map = built.map;
    let saved = match save(&map, &stamp, asset) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!("cannot save the index ({e}); continuing with the map in memory");
            None
        }
    };
    Ok(Loaded {
        map,
        origin: Origin::Built { saved },
    })
}

/// Is the loaded `map` (stamped `saved`) the map of `asset` (stamped `now`)?
fn validate(
    asset: &Path,
    path: &Path,
    map: OffsetMap,
    saved: &SourceStamp,
    now: &SourceStamp,
    opts: &LoadOptions,
) -> Result<Option<OffsetMap>, IndexError> {
    if opts.program.is_some() {
        // The saved map follows the default program; a selected one is built fresh.
        return Ok(None);
    }
    if map.identity.size != now.size || saved.size != now.size {
        tracing::info!(
            "{}: asset size changed; rebuilding the index",
            path.display()
        );
        return Ok(None);
    }
    if saved.mtime_ns == now.mtime_ns {
        return Ok(Some(map));
    }
    let id = hash_file(asset)?;
    if id != map.identity {
        tracing::info!(
            "{}: asset content changed; rebuilding the index",
            path.display()
        );
        return Ok(None);
    }
    // Same content, new mtime: re-stamp so the next load is cheap (best effort).
    if let Err(e) = save_to(&map, now, path) {
        tracing::debug!("cannot re-stamp {}: {e}", path.display());
    }
    Ok(Some(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::synth::{synth_ts, SynthOptions};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = std::env::temp_dir()
                .join(format!("tandem-persist-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn asset(dir: &TempDir, o: &SynthOptions) -> PathBuf {
        let p = dir.0.join("a.ts");
        std::fs::write(&p, synth_ts(o)).unwrap();
        p
    }

    fn set_mtime(p: &Path, secs: u64) {
        let f = std::fs::File::options().write(true).open(p).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn round_trip() {
        let data = synth_ts(&SynthOptions::default());
        let map = crate::index::build_bytes(&data, &Default::default())
            .unwrap()
            .map;
        let stamp = SourceStamp {
            size: data.len() as u64,
            mtime_ns: -1_234_567_890_123,
        };
        let bytes = encode(&map, &stamp);
        let (back, st) = decode(&bytes, Path::new("x")).unwrap();
        assert_eq!(back, map);
        assert_eq!(st, stamp);
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let data = synth_ts(&SynthOptions::default());
        let map = crate::index::build_bytes(&data, &Default::default())
            .unwrap()
            .map;
        let stamp = SourceStamp {
            size: data.len() as u64,
            mtime_ns: 5,
        };
        let bytes = encode(&map, &stamp);
        let p = Path::new("x.tandem-index");
        for len in (0..bytes.len()).step_by(7) {
            assert!(decode(&bytes[..len], p).is_err(), "prefix {len}");
        }
        let mut b = bytes.clone();
        b[200] ^= 0x40;
        assert!(matches!(
            decode(&b, p),
            Err(PersistError::Corrupt { offset: 20, .. })
        ));
        let mut b = bytes.clone();
        b[8] = 9;
        assert!(matches!(
            decode(&b, p),
            Err(PersistError::Corrupt { offset: 8, .. })
        ));
        // Damage behind a valid checksum: the structural checks must catch or accept it,
        // never panic.
        for i in (HEADER..bytes.len()).step_by(3) {
            let mut b = bytes.clone();
            b[i] ^= 0xA5;
            let sum = xxhash_rust::xxh3::xxh3_64(&b[HEADER..]);
            b[20..28].copy_from_slice(&sum.to_le_bytes());
            if let Ok((m, _)) = decode(&b, p) {
                assert!(check(&m).is_ok());
            }
        }
    }

    #[test]
    fn load_or_build_saves_then_loads() {
        let dir = TempDir::new("load");
        let a = asset(&dir, &SynthOptions::default());
        let first = load_or_build_with(&a, &LoadOptions::default()).unwrap();
        assert_eq!(
            first.origin,
            Origin::Built {
                saved: Some(index_path(&a))
            }
        );
        let second = load_or_build_with(&a, &LoadOptions::default()).unwrap();
        assert_eq!(second.origin, Origin::Loaded(index_path(&a)));
        assert_eq!(second.map, first.map);
        let forced = load_or_build_with(
            &a,
            &LoadOptions {
                force: true,
                ..LoadOptions::default()
            },
        )
        .unwrap();
        assert!(matches!(forced.origin, Origin::Built { .. }));
        assert_eq!(load_or_build(&a, false).unwrap(), first.map);
    }

    #[test]
    fn stale_index_is_rebuilt() {
        let dir = TempDir::new("stale");
        let a = asset(&dir, &SynthOptions::default());
        set_mtime(&a, 1_000_000);
        let old = load_or_build(&a, false).unwrap();
        // Same size, same mtime trick does not apply: new content, new mtime.
        let o2 = SynthOptions {
            ticks_per_packet: 20_000,
            ..SynthOptions::default()
        };
        std::fs::write(&a, synth_ts(&o2)).unwrap();
        set_mtime(&a, 2_000_000);
        let new = load_or_build_with(&a, &LoadOptions::default()).unwrap();
        assert!(matches!(new.origin, Origin::Built { .. }));
        assert_ne!(new.map.identity, old.identity);
        assert_eq!(new.map.datagrams[1].time, 7 * 20_000);
        // Touched but unchanged: re-hashed, loaded, re-stamped.
        set_mtime(&a, 3_000_000);
        let same = load_or_build_with(&a, &LoadOptions::default()).unwrap();
        assert_eq!(same.origin, Origin::Loaded(index_path(&a)));
        let (_, st) = load(&index_path(&a)).unwrap();
        assert_eq!(st.mtime_ns, 3_000_000 * 1_000_000_000);
        // A different size is never loaded.
        let o3 = SynthOptions {
            packets: 1500,
            ..SynthOptions::default()
        };
        std::fs::write(&a, synth_ts(&o3)).unwrap();
        set_mtime(&a, 3_000_000);
        let shorter = load_or_build_with(&a, &LoadOptions::default()).unwrap();
        assert!(matches!(shorter.origin, Origin::Built { .. }));
        assert_eq!(shorter.map.packets, 1500);
    }

    #[test]
    fn corrupt_index_is_rebuilt() {
        let dir = TempDir::new("corrupt");
        let a = asset(&dir, &SynthOptions::default());
        let good = load_or_build(&a, false).unwrap();
        let ip = index_path(&a);
        let mut b = std::fs::read(&ip).unwrap();
        let n = b.len();
        b[n / 2] ^= 0xFF;
        std::fs::write(&ip, &b).unwrap();
        let l = load_or_build_with(&a, &LoadOptions::default()).unwrap();
        assert_eq!(l.map, good);
        assert!(matches!(l.origin, Origin::Built { .. }));
        // Rewritten: loads cleanly now.
        assert!(load(&ip).is_ok());
        std::fs::write(&ip, b"garbage").unwrap();
        assert_eq!(load_or_build(&a, false).unwrap(), good);
        std::fs::write(&ip, b"").unwrap();
        assert_eq!(load_or_build(&a, false).unwrap(), good);
    }

    #[test]
    fn unwritable_beside_falls_back_to_cache() {
        let dir = TempDir::new("cache");
        let a = asset(&dir, &SynthOptions::default());
        // A directory where the index file should go: it cannot be written there.
        std::fs::create_dir(index_path(&a)).unwrap();
        let l = load_or_build_with(&a, &LoadOptions::default()).unwrap();
        let cache = cache_index_path(&a);
        match (&l.origin, &cache) {
            (Origin::Built { saved: Some(p) }, Some(c)) => {
                assert_eq!(p, c);
                let again = load_or_build_with(&a, &LoadOptions::default()).unwrap();
                assert_eq!(again.origin, Origin::Loaded(c.clone()));
                let _ = std::fs::remove_file(c);
            }
            // No HOME/XDG_CACHE_HOME, or the cache is not writable either: still a map.
            (Origin::Built { saved: None }, _) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(l.map.packets, 2000);
    }

    #[test]
    fn missing_asset_is_an_io_error() {
        let e = load_or_build(Path::new("/nonexistent/x.ts"), false).unwrap_err();
        assert!(matches!(e, IndexError::Io { .. }));
        assert!(e
            .to_string()
            .starts_with("/nonexistent/x.ts: cannot read at byte 0"));
    }
}
