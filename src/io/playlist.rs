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
use crate::stream::cut::Edit;
use crate::stream::programme::ClipRef;
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

/// One clip of a [`Source`]: its file, the offset map of the part that plays (the whole
/// clip, or an item's cut between its in and out points), and the packets of that part
/// played with other bytes.
#[derive(Debug, Clone)]
pub struct SourceClip {
    /// The clip's file.
    pub path: PathBuf,
    /// The offset map of what plays.
    pub map: Arc<OffsetMap>,
    /// Packets of `map` played with other bytes (the edges of a cut).
    pub edits: Arc<[Edit]>,
    /// Where the cut starts and ends (seconds from the clip's first frame), if cut.
    pub cut: Option<(f64, f64)>,
}

/// What a session plays: one asset, or the clips of a playlist in order.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file given (the asset, or the playlist).
    pub path: PathBuf,
    /// The clips in playing order (one for an asset).
    pub clips: Vec<SourceClip>,
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
                clips: vec![SourceClip {
                    path: path.to_path_buf(),
                    map: Arc::new(map),
                    edits: Arc::new([]),
                    cut: None,
                }],
                looped: None,
            });
        };
        let mut clips = Vec::with_capacity(pl.items.len());
        let mut problems = Vec::new();
        let mut first: Option<Streams> = None;
        // An item that comes back with the same points is loaded once (its map shared).
        let mut seen: Vec<(&Item, SourceClip)> = Vec::new();
        for (n, it) in pl.items.iter().enumerate() {
            let n = n + 1;
            let same = |x: &&(&Item, SourceClip)| {
                x.0.source == it.source
                    && x.0.in_s == it.in_s
                    && x.0.out_s == it.out_s
                    && x.0.start == it.start
            };
            let loaded = match seen.iter().find(same) {
                Some((_, c)) => Ok(c.clone()),
                None => clip(it).inspect(|c| seen.push((it, c.clone()))),
            };
            match loaded {
                Ok(c) => {
                    let streams = Streams::of(&c.map);
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
                    if let Some((a, b)) = c.cut {
                        tracing::info!(
                            "{}: item {n}: {} plays from {a:.3} s to {b:.3} s (in and out snapped to frames)",
                            path.display(),
                            it.source.display()
                        );
                    }
                    clips.push(c);
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
            return self.clips[0].map.identity;
        }
        let mut bytes = Vec::with_capacity(self.clips.len() * 24 + 8);
        bytes.extend_from_slice(b"playlist");
        let mut size = 0u64;
        for m in self.clips.iter().map(|c| &c.map) {
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
            .map(|c| {
                File::open(&c.path).with_context(|| format!("{}: cannot open", c.path.display()))
            })
            .collect()
    }

    /// The output stream of a session over these clips; `files` from [`Self::open`].
    pub fn stream(&self, files: &[File], params: SessionParams) -> anyhow::Result<OutputStream> {
        let refs: Vec<ClipRef<'_>> = self
            .clips
            .iter()
            .zip(files)
            .map(|(c, f)| ClipRef {
                map: &c.map,
                bytes: f as &dyn ReadAt,
                edits: &c.edits,
            })
            .collect();
        OutputStream::with_cuts(&refs, params).with_context(|| format!("{}", self.path.display()))
    }
}

/// Whether `path` is a playlist with `"loop": true` (it then plays endlessly unless `--loop`
/// says otherwise); `false` for an asset or an unreadable file (its load reports why).
pub fn loops_by_default(path: &Path) -> bool {
    matches!(read(path), Ok(Some(p)) if p.looped)
}

/// The part of an item's clip that plays (its in and out points snapped to frames), after
/// the checks of what is not built yet; the error names the clip and the reason.
pub fn clip(it: &Item) -> Result<SourceClip, String> {
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
    let whole = it.in_s <= 0.0 && it.out_s.map_or(true, |o| o + frame / 2.0 >= len);
    if whole {
        return Ok(SourceClip {
            path: source.clone(),
            map: Arc::new(map),
            edits: Arc::new([]),
            cut: None,
        });
    }
    let file = File::open(source).map_err(|e| format!("{}: cannot open: {e}", source.display()))?;
    let c = crate::stream::cut::cut(&map, &file, it.in_s, it.out_s)
        .map_err(|e| format!("{}: {e}", source.display()))?;
    Ok(SourceClip {
        path: source.clone(),
        map: Arc::new(c.map),
        edits: Arc::from(c.edits),
        cut: Some((c.in_s, c.out_s)),
    })
}
