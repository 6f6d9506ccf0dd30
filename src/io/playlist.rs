//! Playlist files: tell a playlist from an asset by its first bytes, read it (`crate::playlist`
//! parses the text) and load what a session plays ([`Source`]: an asset or a playlist's clips).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use super::load_or_build;
use crate::index::{AssetIdentity, OffsetMap};
use crate::playlist::layout::Streams;
use crate::playlist::{self, Item, Kind, Playlist, PlaylistError};
use crate::stream::reader::ReadAt;
use crate::stream::{LoopPlan, OutputStream, SessionParams};
use crate::ts::pcr::HZ;

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

/// What a session plays: one asset, or the clips of a playlist in order.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file given (the asset, or the playlist).
    pub path: PathBuf,
    /// The clips in playing order, with their offset maps (one for an asset).
    pub clips: Vec<(PathBuf, Arc<OffsetMap>)>,
    /// The playlist's `loop` key (`None` for an asset).
    pub looped: Option<bool>,
}

impl Source {
    /// Loads `path`: an asset's offset map (built and saved when missing), or a playlist and
    /// every clip's map. A playlist that cannot be played (a missing clip, clips of different
    /// layouts, keys not built yet) is an error naming the file, the item and the reason.
    pub fn load(path: &Path, progress: bool) -> anyhow::Result<Source> {
        let Some(pl) = read(path)? else {
            let map = load_or_build(path, progress)?;
            return Ok(Source {
                path: path.to_path_buf(),
                clips: vec![(path.to_path_buf(), Arc::new(map))],
                looped: None,
            });
        };
        let mut clips = Vec::with_capacity(pl.items.len());
        let mut problems = Vec::new();
        let mut first: Option<Streams> = None;
        for (n, it) in pl.items.iter().enumerate() {
            let n = n + 1;
            match clip(it) {
                Ok(map) => {
                    let streams = Streams::of(&map);
                    match &first {
                        None => first = Some(streams),
                        Some(f) => {
                            let d = streams.differences(f);
                            if !d.is_empty() {
                                problems.push(format!(
                                    "item {n}: {}: its streams differ from the channel's (item 1): {}",
                                    it.source.display(),
                                    d.join("; ")
                                ));
                            }
                        }
                    }
                    clips.push((it.source.clone(), Arc::new(map)));
                }
                Err(e) => problems.push(format!("item {n}: {e}")),
            }
        }
        if !problems.is_empty() {
            anyhow::bail!(
                "{}: cannot be played: {}",
                path.display(),
                problems.join("; ")
            );
        }
        for note in &pl.notes {
            tracing::info!("{}: {note}", path.display());
        }
        if pl.filler.is_some() {
            tracing::info!(
                "{}: the filler is not used yet (it fills up to fixed start times and stands in for bad clips, which are not built yet)",
                path.display()
            );
        }
        Ok(Source {
            path: path.to_path_buf(),
            clips,
            looped: Some(pl.looped),
        })
    }

    /// Whether this is a playlist.
    pub fn is_playlist(&self) -> bool {
        self.looped.is_some()
    }

    /// The identity two servers compare: the asset's; for a playlist, the byte count of its
    /// clips and an XXH3-128 over each clip's identity in order (the same clips in the same
    /// order are the same programme wherever the files sit).
    pub fn identity(&self) -> AssetIdentity {
        if !self.is_playlist() {
            return self.clips[0].1.identity;
        }
        let mut bytes = Vec::with_capacity(self.clips.len() * 24 + 8);
        bytes.extend_from_slice(b"playlist");
        let mut size = 0u64;
        for (_, m) in &self.clips {
            bytes.extend_from_slice(&m.identity.size.to_le_bytes());
            bytes.extend_from_slice(&m.identity.hash.to_le_bytes());
            size = size.saturating_add(m.identity.size);
        }
        AssetIdentity {
            size,
            hash: crate::index::hash_bytes(&bytes).hash,
        }
    }

    /// The stream's loop count for `--loop` as given (`None`: not given): `--loop` wins; a
    /// playlist without it plays once, or endlessly with `"loop": true`.
    pub fn loops(&self, flag: Option<u64>) -> Option<u64> {
        match (flag, self.looped) {
            (None, Some(true)) => None,
            (None, _) => Some(1),
            (Some(0), _) => None,
            (Some(n), _) => Some(n),
        }
    }

    /// Opens every clip file, in order.
    pub fn open(&self) -> anyhow::Result<Vec<File>> {
        self.clips
            .iter()
            .map(|(p, _)| File::open(p).with_context(|| format!("{}: cannot open", p.display())))
            .collect()
    }

    /// The output stream of a session over these clips; `files` from [`Self::open`].
    pub fn stream(&self, files: &[File], params: SessionParams) -> anyhow::Result<OutputStream> {
        let clips: Vec<(Arc<OffsetMap>, &dyn ReadAt)> = self
            .clips
            .iter()
            .zip(files)
            .map(|((_, m), f)| (m.clone(), f as &dyn ReadAt))
            .collect();
        OutputStream::with_clips(&clips, params).with_context(|| format!("{}", self.path.display()))
    }
}

/// Whether `path` is a playlist with `"loop": true` (it then plays endlessly unless `--loop`
/// says otherwise); `false` for an asset or an unreadable file (its load reports why).
pub fn loops_by_default(path: &Path) -> bool {
    matches!(read(path), Ok(Some(p)) if p.looped)
}

/// The offset map of an item's clip, after the checks of what is not built yet.
fn clip(it: &Item) -> Result<OffsetMap, String> {
    let source = &it.source;
    if !source.exists() {
        return Err(format!("{}: no such file", source.display()));
    }
    if kind_of(source) != Kind::Asset {
        return Err(format!(
            "{}: a playlist, not a clip (playlists do not nest)",
            source.display()
        ));
    }
    if it.start.is_some() {
        return Err("\"start\": fixed start times are not built yet (docs/playlists.md)".into());
    }
    let map = load_or_build(source, false).map_err(|e| e.to_string())?;
    let len = LoopPlan::for_map(&map, None).period as f64 / HZ as f64;
    let frame = map.frame_ticks().unwrap_or(HZ / 25) as f64 / HZ as f64;
    if it.in_s > 0.0 {
        return Err(format!(
            "{}: \"in\" {} s: in points are not built yet, a clip plays from its start (docs/playlists.md)",
            source.display(),
            it.in_s
        ));
    }
    if let Some(out) = it.out_s {
        // A playlist's `out` is often the clip's length rounded: a frame of slack.
        if out + frame < len {
            return Err(format!(
                "{}: \"out\" {out} s: out points are not built yet, a clip plays to its end ({len:.3} s) (docs/playlists.md)",
                source.display()
            ));
        }
    }
    Ok(map)
}
