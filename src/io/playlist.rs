//! Playlist files: tell a playlist from an asset by its first bytes and read it
//! (`crate::playlist` parses the text).

use std::io::Read;
use std::path::Path;

use crate::playlist::{self, Kind, Playlist, PlaylistError};

/// Bytes read to tell a playlist from an asset.
const SNIFF_BYTES: usize = 4096;

/// What the file at `path` holds; `Kind::Asset` when it cannot be read (the asset code then
/// reports the error with its byte offset).
pub fn kind_of(path: &Path) -> Kind {
    let Ok(f) = std::fs::File::open(path) else {
        return Kind::Asset;
    };
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    if f.take(SNIFF_BYTES as u64).read_to_end(&mut head).is_err() {
        return Kind::Asset;
    }
    playlist::sniff(&head)
}

/// Reads and parses the playlist at `path` (`None`: the file is an asset).
pub fn read(path: &Path) -> Result<Option<Playlist>, PlaylistError> {
    let kind = kind_of(path);
    if kind == Kind::Asset {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| PlaylistError {
        file: path.to_path_buf(),
        line: 0,
        item: 0,
        key: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    playlist::parse(&text, path, kind).map(Some)
}

/// An error for a command that takes an asset but was given a playlist (playing playlists is
/// the playlists work in progress: `tandem playlist` checks one); `None` for an asset.
pub fn not_yet_playable(path: &Path) -> Option<String> {
    let kind = match kind_of(path) {
        Kind::Asset => return None,
        Kind::Json => "JSON",
        Kind::M3u => "M3U",
    };
    Some(format!(
        "{}: a playlist ({kind}), not a transport stream; playing playlists is not built yet: `tandem playlist {}` checks it (docs/playlists.md)",
        path.display(),
        path.display()
    ))
}
