//! The index file store: `ASSET.tandem-index` beside the asset (or, when that directory is
//! not writable, in `$XDG_CACHE_HOME/tandem/`), and [`load_or_build`], which commands call.
//! The format and the staleness rule are in the core (`index::persist`).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::asset::{build, hash_file};
use crate::index::persist::{
    decode, encode, freshness, index_path, Freshness, SourceStamp, SUFFIX,
};
use crate::index::{BuildOptions, IndexError, OffsetMap, PersistError};

/// The stamp (size, mtime) of the file at `path` now.
pub fn stamp_of(path: &Path) -> std::io::Result<SourceStamp> {
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
    let stamp = stamp_of(asset).map_err(|e| IndexError::io(asset, 0, e))?;
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
        },
        opts.progress,
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
    match freshness(&map, saved, now) {
        Freshness::SizeChanged => {
            tracing::info!(
                "{}: asset size changed; rebuilding the index",
                path.display()
            );
            return Ok(None);
        }
        Freshness::Fresh => return Ok(Some(map)),
        Freshness::Rehash => {}
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
        assert_eq!(new.map.datagrams[1].time.0, 7 * 20_000);
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
