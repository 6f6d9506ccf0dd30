//! `tandem playlist LIST` as a user runs it: a good playlist (JSON and M3U) prints its
//! schedule and exits 0; clips that cannot be played, clips whose streams differ from the
//! channel's, misspelled keys and bad values exit 2 naming the file, the item and the key;
//! `tandem play` plays a playlist as one stream and refuses what is not built yet.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tandem");

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tandem-playlist-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for f in ["cbr-25fps.ts", "vbr-25fps.ts", "cbr-29.97fps.ts"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures")
                .join(f),
            d.join(f),
        )
        .unwrap();
    }
    d
}

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(BIN).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_good_playlist_prints_its_schedule() {
    let d = scratch("good");
    let list = d.join("day.json");
    std::fs::write(
        &list,
        r#"{"channel": "News", "date": "2026-12-03", "loop": true, "program": [
            {"in": 0, "out": 2.0, "duration": 3.0, "source": "cbr-25fps.ts", "title": "Opener"},
            {"in": 0.5, "source": "vbr-25fps.ts", "custom_filter": ""}]}"#,
    )
    .unwrap();
    let (code, out, err) = run(&["playlist", list.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("2 items, channel \"News\", date 2026-12-03"),
        "{out}"
    );
    assert!(out.contains("cbr-25fps.ts  \"Opener\""), "{out}");
    // As a channel plays them: 2.000 s (50 frames) of the first clip; the second from its
    // random access point at 1.000 s (in 0.5 snaps forward) to its end, 50 frames.
    assert!(out.contains("0.000     2.000     2.000      50"), "{out}");
    assert!(out.contains("1.000     3.000     2.000      50"), "{out}");
    assert!(out.contains("total 4.000 s per pass"), "{out}");
    assert!(
        out.contains("note: item 2: key \"custom_filter\" is ffplayout's"),
        "{out}"
    );
    assert!(out.contains("ok: every item can be played"), "{out}");
    let m3u = d.join("list.json");
    std::fs::write(&m3u, "#EXTM3U\n#EXTINF:3,one\ncbr-25fps.ts\nvbr-25fps.ts\n").unwrap();
    let (code, out, err) = run(&["playlist", m3u.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("(M3U, 2 items)") && out.contains("total 6.000 s"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn every_problem_is_named_and_exits_2() {
    let d = scratch("bad");
    let list = d.join("bad.json");
    std::fs::write(
        &list,
        r#"{"program": [{"source": "cbr-25fps.ts"}, {"source": "cbr-29.97fps.ts"},
            {"source": "gone.ts"}, {"source": "cbr-25fps.ts", "in": 9}]}"#,
    )
    .unwrap();
    let (code, _, err) = run(&["playlist", list.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].contains("item 2: ")
            && lines[0].contains("frame rate 29.970 fps (item 1: 25.000 fps)"),
        "{err}"
    );
    assert!(
        lines[1].contains("item 3: ") && lines[1].contains("no such file"),
        "{err}"
    );
    assert!(
        lines[2].contains("item 4: ") && lines[2].contains("\"in\" 9 s is not inside the clip"),
        "{err}"
    );
    // A misspelled key: one line, file, item and key.
    std::fs::write(
        &list,
        r#"{"program": [{"source": "cbr-25fps.ts"}, {"source": "a.ts", "ot": 3}]}"#,
    )
    .unwrap();
    let (code, _, err) = run(&["playlist", list.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "{}: item 2: key \"ot\": unknown key",
            list.display()
        )),
        "{err}"
    );
    // Broken JSON: the line.
    std::fs::write(&list, "{\"program\": [\n {\"source\": \"a.ts\"\n]}").unwrap();
    let (code, _, err) = run(&["playlist", list.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{}:3: not valid JSON", list.display())),
        "{err}"
    );
    // An asset is not a playlist.
    let (code, _, err) = run(&["playlist", d.join("cbr-25fps.ts").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("not a playlist"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

/// `tandem play LIST`: the clips of a playlist (the last one between in and out points)
/// play one after another as one stream; the
/// receiver counts no CC or PCR discontinuity error and every datagram sent, and ffprobe
/// decodes exactly the frames of the clips with every video PTS step one frame, but for the
/// join where the picture is held because the next clip reorders B-frames (2 frames here).
#[test]
fn play_plays_a_playlist_as_one_stream() {
    let d = scratch("play");
    let m3u = d.join("list.m3u");
    std::fs::write(
        &m3u,
        r#"{"program": [{"source": "cbr-25fps.ts"}, {"source": "vbr-25fps.ts"},
            {"source": "cbr-25fps.ts", "in": 0.9, "out": 2.5, "duration": 3}]}"#,
    )
    .unwrap();
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let url = format!("udp://239.255.42.7:{port}");
    let cap = d.join("cap.ts");
    let rx = Command::new(BIN)
        .args(["recv", &url, "--seconds", "20", "--json", "--capture"])
        .arg(&cap)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    let (code, out, err) = run(&["play", m3u.to_str().unwrap(), "--dest", &url]);
    assert_eq!(code, 0, "{out}{err}");
    let sent: u64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    // The receiver stops after --seconds; ask it to stop now.
    std::thread::sleep(std::time::Duration::from_millis(300));
    sigint(rx.id());
    let r = rx.wait_with_output().unwrap();
    let r: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(r["datagrams"], sent, "{r}");
    let t = &r["tr101290"];
    for k in [
        "cc_error",
        "pcr_discontinuity_error",
        "sync_loss",
        "pat_error",
        "pmt_error",
    ] {
        assert_eq!(t[k]["count"], 0, "{k}: {r}");
    }
    // 75 + 75 + 38 frames (the last item from its RAP at 1.0 s to 2.5 s), decoded.
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&cap)
        .output()
        .expect("ffprobe");
    let mut pts: Vec<i64> = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    pts.sort_unstable();
    assert_eq!(pts.len(), 188, "video frames in the capture");
    let steps: Vec<i64> = pts.windows(2).map(|w| w[1] - w[0]).collect();
    let odd: Vec<i64> = steps.iter().copied().filter(|&s| s != 3600).collect();
    assert_eq!(odd, vec![3 * 3600], "video PTS steps other than one frame");
    let _ = std::fs::remove_dir_all(&d);
}

/// SIGINT to a child (the receiver prints its report on it).
fn sigint(pid: u32) {
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
}

/// What playing a playlist does not do yet is refused before anything is sent, naming the
/// file, the item and the key.
#[test]
fn play_refuses_what_is_not_built_yet() {
    let d = scratch("refuse");
    let list = d.join("day.json");
    std::fs::write(
        &list,
        r#"{"program": [{"source": "cbr-25fps.ts"}, {"source": "vbr-25fps.ts", "start": "18:00:00"}]}"#,
    )
    .unwrap();
    let (code, _, err) = run(&[
        "play",
        list.to_str().unwrap(),
        "--dest",
        "udp://239.255.42.1:5000",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("day.json") && err.contains("item 2") && err.contains("\"start\""),
        "{err}"
    );
    // The check says the same as the player.
    let (code, _, err) = run(&["playlist", list.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("item 2") && err.contains("not built yet"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
