//! `tandem playlist LIST`: checks a playlist (JSON or M3U, docs/playlists.md) the way a
//! channel would load it: the file's keys and values, then every clip (readable, a transport
//! stream, indexed, `in`/`out` inside it, the same streams as the first clip) and the filler.
//! Prints the schedule; exit 0 when every item can be played, 2 with every problem listed.

use std::path::{Path, PathBuf};

use super::EXIT_BAD_INPUT;
use crate::playlist::layout::Streams;
use crate::playlist::{Item, Kind, Playlist};
use crate::ts::pcr::HZ;

/// `tandem playlist`.
#[derive(Debug, clap::Args)]
pub struct PlaylistArgs {
    /// The playlist: JSON (ffplayout's shape plus tandem's keys) or M3U (one clip per line);
    /// told apart from an asset by content.
    pub list: PathBuf,
}

/// A clip as checked.
struct Clip {
    duration_s: f64,
    frames: u32,
    streams: Streams,
}

fn load(source: &Path) -> Result<Clip, String> {
    if !source.exists() {
        return Err(format!("{}: no such file", source.display()));
    }
    if crate::io::playlist::kind_of(source) != Kind::Asset {
        return Err(format!(
            "{}: a playlist, not a clip (playlists do not nest)",
            source.display()
        ));
    }
    let map =
        crate::net::priority::quietly("playlist clip", || crate::io::load_or_build(source, false))
            .map_err(|e| e.to_string())?;
    let period = crate::stream::LoopPlan::for_map(&map, None).period;
    Ok(Clip {
        duration_s: period as f64 / HZ as f64,
        frames: map.frames,
        streams: Streams::of(&map),
    })
}

fn check_item(it: &Item, clip: &Clip) -> Vec<String> {
    let mut e = Vec::new();
    if it.in_s >= clip.duration_s {
        e.push(format!(
            "\"in\" {} s is not inside the clip ({:.3} s)",
            it.in_s, clip.duration_s
        ));
    }
    if let Some(o) = it.out_s {
        // One frame of slack: `duration` in playlists is often rounded.
        if o > clip.duration_s + 0.05 {
            e.push(format!(
                "\"out\" {o} s is past the clip's end ({:.3} s)",
                clip.duration_s
            ));
        }
    }
    e
}

/// Runs `tandem playlist`.
pub fn run(a: &PlaylistArgs) -> anyhow::Result<i32> {
    let pl: Playlist = match crate::io::playlist::read(&a.list) {
        Ok(Some(p)) => p,
        Ok(None) => {
            eprintln!(
                "tandem playlist: {}: a transport stream (or unreadable), not a playlist",
                a.list.display()
            );
            return Ok(EXIT_BAD_INPUT);
        }
        Err(e) => {
            eprintln!("tandem playlist: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let kind = if pl.kind == Kind::Json { "JSON" } else { "M3U" };
    println!(
        "playlist {} ({kind}, {} item{}{}{})",
        pl.file.display(),
        pl.items.len(),
        if pl.items.len() == 1 { "" } else { "s" },
        pl.channel
            .as_ref()
            .map(|c| format!(", channel \"{c}\""))
            .unwrap_or_default(),
        pl.date
            .map(|(y, m, d)| format!(", date {y:04}-{m:02}-{d:02}"))
            .unwrap_or_default()
    );
    let z = pl.time_zone.0;
    println!(
        "  loop {}, day start {}, time zone UTC{}{:02}:{:02}",
        if pl.looped { "on" } else { "off" },
        pl.day_start,
        if z < 0 { '-' } else { '+' },
        z.abs() / 60,
        z.abs() % 60
    );
    let mut problems = Vec::new();
    let mut first: Option<Streams> = None;
    let mut total = 0.0;
    println!(
        "  {:>3}  {:>12}  {:>8}  {:>8}  {:>8}  {:>6}  source",
        "#", "start", "in", "out", "plays", "frames"
    );
    for (n, it) in pl.items.iter().enumerate() {
        let n = n + 1;
        let start = it
            .start
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into());
        match load(&it.source) {
            Ok(clip) => {
                let item_problems = check_item(it, &clip);
                let fine = item_problems.is_empty();
                for e in item_problems {
                    problems.push(format!("item {n}: {e}"));
                }
                match &first {
                    None => first = Some(clip.streams.clone()),
                    Some(f) => {
                        let d = clip.streams.differences(f);
                        if !d.is_empty() {
                            problems.push(format!(
                                "item {n}: {}: its streams differ from the channel's (item 1): {}",
                                it.source.display(),
                                d.join("; ")
                            ));
                        }
                    }
                }
                let mut out = it.out_s.unwrap_or(clip.duration_s).min(clip.duration_s);
                let (mut in_s, mut frames) = (it.in_s, clip.frames);
                // As a channel plays it: the points snapped to frames, or why it cannot.
                match crate::io::playlist::clip(it) {
                    Ok(c) => {
                        if let Some((a, b)) = c.cut {
                            (in_s, out, frames) = (a, b, c.map.frames);
                        }
                    }
                    Err(e) if fine => problems.push(format!("item {n}: {e}")),
                    Err(_) => {}
                }
                let plays = (out - in_s).max(0.0);
                total += plays;
                println!(
                    "  {n:>3}  {start:>12}  {:>8.3}  {out:>8.3}  {plays:>8.3}  {:>6}  {}{}",
                    in_s,
                    frames,
                    it.source.display(),
                    it.title
                        .as_ref()
                        .map(|t| format!("  \"{t}\""))
                        .unwrap_or_default()
                );
            }
            Err(e) => {
                problems.push(format!("item {n}: {e}"));
                println!(
                    "  {n:>3}  {start:>12}  {:>8.3}  {:>8}  {:>8}  {:>6}  {}  (cannot be played)",
                    it.in_s,
                    "?",
                    "?",
                    "?",
                    it.source.display()
                );
            }
        }
    }
    if let Some(f) = &pl.filler {
        match load(f) {
            Ok(clip) => {
                if let Some(first) = &first {
                    let d = clip.streams.differences(first);
                    if !d.is_empty() {
                        problems.push(format!(
                            "filler {}: its streams differ from the channel's (item 1): {}",
                            f.display(),
                            d.join("; ")
                        ));
                    }
                }
                println!("  filler {} ({:.3} s)", f.display(), clip.duration_s);
            }
            Err(e) => problems.push(format!("filler: {e}")),
        }
    }
    println!(
        "  total {:.3} s{}",
        total,
        if pl.looped { " per pass" } else { "" }
    );
    for note in &pl.notes {
        println!("  note: {note}");
    }
    if problems.is_empty() {
        println!("ok: every item can be played");
        Ok(0)
    } else {
        for p in &problems {
            eprintln!("tandem playlist: {}: {p}", pl.file.display());
        }
        Ok(EXIT_BAD_INPUT)
    }
}
