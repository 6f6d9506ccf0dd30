//! Asset files: open, build the offset map with an optional progress bar, hash, probe, and
//! positioned reads ([`ReadAt`] for [`std::fs::File`]).

use std::fs::File;
use std::path::Path;

use super::progress;
use crate::index::{build_from, hash_reader, AssetIdentity, BuildOptions, Built, IndexError};
use crate::probe::{analyse, Probe};
use crate::stream::reader::ReadAt;

pub use progress::PROGRESS_MIN_BYTES;

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

/// Opens the asset at `path`; the error names the file at byte 0.
fn open(path: &Path) -> Result<File, IndexError> {
    File::open(path).map_err(|e| IndexError::io(path, 0, e))
}

/// Scans the file at `path` once and builds its offset map; with `progress`, a bar on stderr
/// for files above [`PROGRESS_MIN_BYTES`] when stderr is a terminal.
///
/// Errors: unreadable file ([`IndexError::Io`], with the byte offset), or content that
/// cannot be played ([`IndexError::Build`]: empty, not TS, no packets, fewer than two PCRs).
pub fn build(path: &Path, opts: &BuildOptions, progress: bool) -> Result<Built, IndexError> {
    let mut file = open(path)?;
    let len = file
        .metadata()
        .map_err(|e| IndexError::io(path, 0, e))?
        .len();
    let bar = progress::bar(progress, len);
    let mut on_progress = |n: u64| {
        if let Some(b) = &bar {
            b.set_position(n);
        }
    };
    let built = build_from(&mut file, path, opts, &mut on_progress);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    built
}

/// Identity (size + XXH3-128) of the file at `path`.
pub fn hash_file(path: &Path) -> Result<AssetIdentity, IndexError> {
    let mut f = open(path)?;
    hash_reader(&mut f).map_err(|(off, e)| IndexError::io(path, off, e))
}

/// Scans the file (with the identity hash, progress bar on a terminal) and analyses it,
/// following `program` (default: the first program of the PAT): `tandem probe`.
pub fn probe(path: &Path, program: Option<u16>) -> Result<Probe, IndexError> {
    let built = build(
        path,
        &BuildOptions {
            hash: true,
            program,
        },
        true,
    )?;
    Ok(analyse(&built))
}
