//! The saved offset map as bytes: [`encode`] and [`decode`] (pure), the consistency
//! [`check`], and the staleness rule ([`freshness`]). The file store (`ASSET.tandem-index`
//! beside the asset, or `$XDG_CACHE_HOME/tandem/`) and `load_or_build`, which commands
//! call, are at the edge: `io::index_file`.
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

use super::error::PersistError;
use super::{Anchor, AssetIdentity, DatagramEntry, OffsetMap, PidCc, Segment};
use crate::ts::packet::{Cc, Pid};
use crate::ts::pcr::{Pcr, PCR_MODULUS};
use crate::units::Ticks27M;

/// File name suffix of a saved index.
pub const SUFFIX: &str = ".tandem-index";
/// Magic bytes.
pub const MAGIC: [u8; 8] = *b"TNDMIDX\0";
/// Format version; a different version is rebuilt.
pub const FORMAT_VERSION: u32 = 1;
/// Header length: magic, version, body length, body checksum.
pub const HEADER: usize = 28;

/// Size and modification time of the asset when the index was made: the cheap staleness
/// check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceStamp {
    /// File size.
    pub size: u64,
    /// mtime, nanoseconds since the Unix epoch (negative before it).
    pub mtime_ns: i128,
}

/// `ASSET.tandem-index` beside the asset.
pub fn index_path(asset: &Path) -> PathBuf {
    let mut s = asset.as_os_str().to_owned();
    s.push(SUFFIX);
    PathBuf::from(s)
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
        w.u64(e.time.0);
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
            time: Ticks27M(r.u64()?),
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
        if map.packet_offset(p) != Some(e.byte_offset) || it.at(p) != e.time.0 {
            return Err(format!("datagram {d} does not match the segments/anchors"));
        }
    }
    Ok(())
}

/// How a saved index relates to the asset as it is now ([`freshness`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Same size and mtime: use the saved map.
    Fresh,
    /// Same size, different mtime: use the saved map if the asset's content hash still
    /// equals `map.identity` (then re-stamp the index).
    Rehash,
    /// The asset's size changed: rebuild.
    SizeChanged,
}

/// The staleness rule: is the saved `map` (stamped `saved`) the map of the asset stamped
/// `now`?
pub fn freshness(map: &OffsetMap, saved: &SourceStamp, now: &SourceStamp) -> Freshness {
    if map.identity.size != now.size || saved.size != now.size {
        Freshness::SizeChanged
    } else if saved.mtime_ns == now.mtime_ns {
        Freshness::Fresh
    } else {
        Freshness::Rehash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::synth::{synth_ts, SynthOptions};

    #[test]
    fn freshness_rule() {
        let data = synth_ts(&SynthOptions::default());
        let map = crate::index::build_bytes(&data, &Default::default())
            .unwrap()
            .map;
        let st = |size, mtime_ns| SourceStamp { size, mtime_ns };
        let n = data.len() as u64;
        assert_eq!(freshness(&map, &st(n, 7), &st(n, 7)), Freshness::Fresh);
        assert_eq!(freshness(&map, &st(n, 7), &st(n, 8)), Freshness::Rehash);
        assert_eq!(
            freshness(&map, &st(n, 7), &st(n + 1, 7)),
            Freshness::SizeChanged
        );
        assert_eq!(
            freshness(&map, &st(n + 1, 7), &st(n, 7)),
            Freshness::SizeChanged
        );
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
}
