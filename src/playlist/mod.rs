//! Playlists (sans-IO): the schedule of clips a channel plays, parsed from the text of a
//! playlist file. Two formats (docs/playlists.md):
//!
//! - **JSON** in the shape ffplayout's users know: `{"channel", "date", "program": [{"source",
//!   "in", "out", "duration"}, ...]}`, plus tandem's own keys: `loop`, `filler`, `time_zone`,
//!   `day_start` at the top and `start` per item. ffplayout's other item keys (`title`,
//!   `category`, `audio`, `custom_filter`, `description`) are accepted and ignored with a note;
//!   any other key is an error naming the file, the item and the key.
//! - **M3U**: one clip per line; `#` lines (`#EXTM3U`, `#EXTINF`) are comments.
//!
//! [`sniff`] tells a playlist from an asset by content (a transport stream has its sync byte
//! every 188 bytes, ISO/IEC 13818-1 §2.4.3.2). Sources are resolved against the playlist's
//! folder. Nothing here opens a file: the caller reads the text and checks the clips.

pub mod layout;
mod time;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use time::{TimeOfDay, UtcOffset};

/// What a file holds, judged by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A transport stream (or something that is no playlist: the asset code reports it).
    Asset,
    /// A JSON playlist.
    Json,
    /// An M3U playlist.
    M3u,
}

/// Tells a playlist from an asset by the first bytes of the file (up to a few KiB).
pub fn sniff(head: &[u8]) -> Kind {
    if head.first() == Some(&0x47) && (head.len() <= 188 || head[188] == 0x47) {
        return Kind::Asset;
    }
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // A multi-byte character cut at the end of the sample is still text.
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return Kind::Asset,
    };
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with('{') {
        Kind::Json
    } else if t.starts_with("#EXTM3U") || (!t.is_empty() && !text.contains('\0')) {
        Kind::M3u
    } else {
        Kind::Asset
    }
}

/// A parsed playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Playlist {
    /// The file it came from.
    pub file: PathBuf,
    /// Which format.
    pub kind: Kind,
    /// ffplayout's `channel` (a name; informational).
    pub channel: Option<String>,
    /// ffplayout's `date` (`YYYY-MM-DD`): the broadcast day this playlist is for.
    pub date: Option<(u16, u8, u8)>,
    /// The clips, in order.
    pub items: Vec<Item>,
    /// Play the list again from the top when it ends (tandem's `loop`, default `false`).
    pub looped: bool,
    /// A clip looped to fill up to an item with a fixed start time, or in place of a clip
    /// that cannot be played (tandem's `filler`).
    pub filler: Option<PathBuf>,
    /// The channel's time zone for `start` and `day_start` (tandem's `time_zone`; UTC when
    /// absent).
    pub time_zone: UtcOffset,
    /// When the broadcast day starts (tandem's `day_start`, default 00:00:00).
    pub day_start: TimeOfDay,
    /// Keys accepted and ignored (ffplayout's), one note each.
    pub notes: Vec<String>,
}

/// One clip of a playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The clip, resolved against the playlist's folder.
    pub source: PathBuf,
    /// Seconds from the start of the clip where playing starts (`in`, default 0).
    pub in_s: f64,
    /// Seconds from the start of the clip where playing stops (`out`; `None`: the end).
    pub out_s: Option<f64>,
    /// The clip's length as the playlist states it (`duration`; informational, checked
    /// against `out`).
    pub duration_s: Option<f64>,
    /// A fixed start time of day (tandem's `start`).
    pub start: Option<TimeOfDay>,
    /// ffplayout's `title`, if any (shown by `tandem playlist`).
    pub title: Option<String>,
}

impl Item {
    /// Seconds this item plays, when the playlist says (`out - in`).
    pub fn planned_s(&self) -> Option<f64> {
        self.out_s.map(|o| o - self.in_s)
    }
}

/// A playlist that cannot be used: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaylistError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 when not known).
    pub line: usize,
    /// 1-based item number (0: not an item's error).
    pub item: usize,
    /// The key (empty when not a key's error).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for PlaylistError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        write!(f, ": ")?;
        if self.item > 0 {
            write!(f, "item {}: ", self.item)?;
        }
        if !self.key.is_empty() {
            write!(f, "key \"{}\": ", self.key)?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for PlaylistError {}

/// ffplayout's item keys that tandem accepts and ignores.
const FFPLAYOUT_ITEM_KEYS: [&str; 5] =
    ["title", "category", "audio", "custom_filter", "description"];
/// tandem's item keys.
const ITEM_KEYS: [&str; 5] = ["source", "in", "out", "duration", "start"];
/// Top-level keys: ffplayout's and tandem's.
const TOP_KEYS: [&str; 7] = [
    "channel",
    "date",
    "program",
    "loop",
    "filler",
    "time_zone",
    "day_start",
];
/// ffplayout's top-level keys that tandem ignores.
const FFPLAYOUT_TOP_KEYS: [&str; 2] = ["modified", "length"];

/// Parses a playlist of either format (`kind` from [`sniff`]).
pub fn parse(text: &str, file: &Path, kind: Kind) -> Result<Playlist, PlaylistError> {
    match kind {
        Kind::Json => parse_json(text, file),
        Kind::M3u => parse_m3u(text, file),
        Kind::Asset => Err(PlaylistError {
            file: file.to_path_buf(),
            line: 0,
            item: 0,
            key: String::new(),
            message: "this is a transport stream, not a playlist".into(),
        }),
    }
}

/// Parses a JSON playlist.
pub fn parse_json(text: &str, file: &Path) -> Result<Playlist, PlaylistError> {
    let err = |item: usize, key: &str, message: String| PlaylistError {
        file: file.to_path_buf(),
        line: 0,
        item,
        key: key.to_string(),
        message,
    };
    let v: Value =
        serde_json::from_str(text.trim_start_matches('\u{feff}')).map_err(|e| PlaylistError {
            file: file.to_path_buf(),
            line: e.line(),
            item: 0,
            key: String::new(),
            message: format!("not valid JSON: {e}"),
        })?;
    let Value::Object(top) = v else {
        return Err(err(
            0,
            "",
            "a JSON playlist is one object with a \"program\" array".into(),
        ));
    };
    let mut notes = Vec::new();
    for k in top.keys() {
        if FFPLAYOUT_TOP_KEYS.contains(&k.as_str()) {
            notes.push(format!("key \"{k}\" is ffplayout's; tandem ignores it"));
        } else if !TOP_KEYS.contains(&k.as_str()) {
            return Err(err(
                0,
                k,
                format!("unknown key (known: {})", TOP_KEYS.join(", ")),
            ));
        }
    }
    let text_of = |key: &str| -> Result<Option<String>, PlaylistError> {
        match top.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(err(0, key, format!("must be a string, not {other}"))),
        }
    };
    let channel = text_of("channel")?;
    let date = match text_of("date")? {
        None => None,
        Some(d) => Some(time::parse_date(&d).map_err(|m| err(0, "date", m))?),
    };
    let looped = match top.get("loop") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(err(
                0,
                "loop",
                format!("must be true or false, not {other}"),
            ))
        }
    };
    let dir = file.parent().unwrap_or(Path::new(""));
    let filler = text_of("filler")?.map(|f| resolve(dir, &f));
    let time_zone = match text_of("time_zone")? {
        None => UtcOffset::UTC,
        Some(z) => UtcOffset::parse(&z).map_err(|m| err(0, "time_zone", m))?,
    };
    let day_start = match text_of("day_start")? {
        None => TimeOfDay::MIDNIGHT,
        Some(t) => TimeOfDay::parse(&t).map_err(|m| err(0, "day_start", m))?,
    };
    let program = match top.get("program") {
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(err(
                0,
                "program",
                format!("must be an array of items, not {other}"),
            ))
        }
        None => {
            return Err(err(
                0,
                "program",
                "missing: the array of items to play".into(),
            ))
        }
    };
    if program.is_empty() {
        return Err(err(
            0,
            "program",
            "empty: a playlist plays at least one item".into(),
        ));
    }
    let mut items = Vec::with_capacity(program.len());
    for (n, it) in program.iter().enumerate() {
        let n = n + 1;
        let Value::Object(obj) = it else {
            return Err(err(n, "", format!("must be an object, not {it}")));
        };
        items.push(item(obj, n, dir, &mut notes).map_err(|(key, m)| err(n, &key, m))?);
    }
    check_starts(&items).map_err(|(n, m)| err(n, "start", m))?;
    Ok(Playlist {
        file: file.to_path_buf(),
        kind: Kind::Json,
        channel,
        date,
        items,
        looped,
        filler,
        time_zone,
        day_start,
        notes,
    })
}

/// One JSON item; errors as `(key, message)`.
fn item(
    obj: &Map<String, Value>,
    n: usize,
    dir: &Path,
    notes: &mut Vec<String>,
) -> Result<Item, (String, String)> {
    for k in obj.keys() {
        if FFPLAYOUT_ITEM_KEYS.contains(&k.as_str()) {
            if k != "title" {
                notes.push(format!(
                    "item {n}: key \"{k}\" is ffplayout's; tandem ignores it"
                ));
            }
        } else if !ITEM_KEYS.contains(&k.as_str()) {
            return Err((
                k.clone(),
                format!(
                    "unknown key (tandem's: {}; ffplayout's, ignored: {})",
                    ITEM_KEYS.join(", "),
                    FFPLAYOUT_ITEM_KEYS.join(", ")
                ),
            ));
        }
    }
    let source = match obj.get("source") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) => return Err(("source".into(), "empty".into())),
        Some(other) => return Err(("source".into(), format!("must be a path, not {other}"))),
        None => return Err(("source".into(), "missing: the clip to play".into())),
    };
    if source.contains("://") {
        return Err((
            "source".into(),
            format!("{source}: remote sources are not supported; give a file path"),
        ));
    }
    let seconds = |key: &str| -> Result<Option<f64>, (String, String)> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(x)) => match x.as_f64() {
                Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
                _ => Err((
                    key.into(),
                    format!("must be a number of seconds >= 0, not {x}"),
                )),
            },
            Some(other) => Err((
                key.into(),
                format!("must be a number of seconds, not {other}"),
            )),
        }
    };
    let in_s = seconds("in")?.unwrap_or(0.0);
    let out_s = seconds("out")?;
    let duration_s = seconds("duration")?;
    if let Some(o) = out_s {
        if o <= in_s {
            return Err((
                "out".into(),
                format!("{o} s is not after \"in\" ({in_s} s)"),
            ));
        }
        if let Some(d) = duration_s {
            if o > d + 1e-6 {
                return Err((
                    "out".into(),
                    format!("{o} s is past the clip's duration ({d} s)"),
                ));
            }
        }
    }
    let start = match obj.get("start") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(TimeOfDay::parse(s).map_err(|m| ("start".to_string(), m))?),
        Some(other) => {
            return Err((
                "start".into(),
                format!("must be \"HH:MM:SS[.mmm]\", not {other}"),
            ))
        }
    };
    let title = match obj.get("title") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    Ok(Item {
        source: resolve(dir, &source),
        in_s,
        out_s,
        duration_s,
        start,
        title,
    })
}

/// Fixed start times must follow each other within the broadcast day.
fn check_starts(items: &[Item]) -> Result<(), (usize, String)> {
    let mut prev: Option<(usize, TimeOfDay)> = None;
    for (n, it) in items.iter().enumerate() {
        if let Some(s) = it.start {
            if let Some((pn, p)) = prev {
                if s <= p {
                    return Err((n + 1, format!("{s} is not after item {pn}'s start ({p})")));
                }
            }
            prev = Some((n + 1, s));
        }
    }
    Ok(())
}

/// Parses an M3U playlist: one source per line, `#` lines are comments.
pub fn parse_m3u(text: &str, file: &Path) -> Result<Playlist, PlaylistError> {
    let dir = file.parent().unwrap_or(Path::new(""));
    let mut items = Vec::new();
    for (l, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let path = line.strip_prefix("file://").unwrap_or(line);
        if path.contains("://") {
            return Err(PlaylistError {
                file: file.to_path_buf(),
                line: l + 1,
                item: items.len() + 1,
                key: String::new(),
                message: format!("{line}: remote sources are not supported; give a file path"),
            });
        }
        items.push(Item {
            source: resolve(dir, path),
            in_s: 0.0,
            out_s: None,
            duration_s: None,
            start: None,
            title: None,
        });
    }
    if items.is_empty() {
        return Err(PlaylistError {
            file: file.to_path_buf(),
            line: 0,
            item: 0,
            key: String::new(),
            message: "no clips: an M3U playlist names one clip per line".into(),
        });
    }
    Ok(Playlist {
        file: file.to_path_buf(),
        kind: Kind::M3u,
        channel: None,
        date: None,
        items,
        looped: false,
        filler: None,
        time_zone: UtcOffset::UTC,
        day_start: TimeOfDay::MIDNIGHT,
        notes: Vec::new(),
    })
}

/// A source path against the playlist's folder.
fn resolve(dir: &Path, source: &str) -> PathBuf {
    let p = Path::new(source);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}
