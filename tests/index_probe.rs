//! `tandem probe` / `tandem index` on every fixture (see tools/make-assets.sh), run through
//! the built binary, checked against figures measured independently with ffprobe:
//!
//! ```text
//! ffprobe -v error -show_entries format=duration -of csv=p=0 FILE
//! ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets FILE
//! ```
//! ffprobe's duration (from PTS, last packet end) is 3.021333 s for the 3 s fixtures and
//! 4.021333 s for the wrap fixture; the PCR timeline ends a few ms earlier.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tandem");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run tandem")
}

fn probe_json(name: &str) -> Value {
    let f = fixture(name);
    let out = run(&["probe", "--json", f.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

/// (fixture, fps, frames (ffprobe), ffprobe duration, bitrate)
const GOOD: [(&str, f64, u64, f64, f64); 9] = [
    ("cbr-25fps.ts", 25.0, 75, 3.021333, 2_500_000.0),
    (
        "cbr-29.97fps.ts",
        30000.0 / 1001.0,
        90,
        3.021333,
        2_500_000.0,
    ),
    ("cbr-50fps.ts", 50.0, 150, 3.021333, 3_000_000.0),
    (
        "cbr-59.94fps.ts",
        60000.0 / 1001.0,
        180,
        3.021333,
        3_000_000.0,
    ),
    ("vbr-25fps.ts", 25.0, 75, 3.021333, 0.0),
    ("pcr-wrap-25fps.ts", 25.0, 100, 4.021333, 2_500_000.0),
    ("pcr-own-pid.ts", 25.0, 75, 3.021333, 0.0),
    ("truncated-tail.ts", 25.0, 75, 3.021333, 2_500_000.0),
    ("sync-loss-middle.ts", 25.0, 75, 3.021333, 2_500_000.0),
];

#[test]
fn probe_figures_match_ffprobe() {
    for (name, fps, frames, dur, bitrate) in GOOD {
        let j = probe_json(name);
        assert!(
            (f(&j["frame_rate"]) - fps).abs() < 1e-6,
            "{name}: {}",
            j["frame_rate"]
        );
        assert!(
            (f(&j["frame_duration_ms"]) - 1000.0 / fps).abs() < 1e-6,
            "{name}"
        );
        assert_eq!(j["frames"], frames, "{name}");
        let d = f(&j["duration_s"]);
        assert!(
            (d - dur).abs() < 0.05,
            "{name}: duration {d} vs ffprobe {dur}"
        );
        if bitrate > 0.0 {
            // CBR with -muxrate: the PCR timeline gives the mux rate exactly.
            assert!(
                (f(&j["bitrate_bps"]) - bitrate).abs() < 10.0,
                "{name}: {}",
                j["bitrate_bps"]
            );
        }
        assert_eq!(j["video_pid"], 256, "{name}");
        assert_eq!(
            j["identity"]["size"],
            std::fs::metadata(fixture(name)).unwrap().len()
        );
        assert_eq!(j["identity"]["xxh3_128"].as_str().unwrap().len(), 32);
        let packets = j["packets"].as_u64().unwrap();
        assert_eq!(j["datagrams"], packets.div_ceil(7));
    }
}

#[test]
fn pcr_pid_and_vbr_bitrate() {
    let j = probe_json("cbr-25fps.ts");
    assert_eq!(j["pcr_pid"], 256);
    assert_eq!(j["packets"], 942_444 / 188);
    assert_eq!(j["problems"].as_array().unwrap().len(), 0);
    // PCRs on a PID of their own (0x1FF, adaptation-only packets).
    let j = probe_json("pcr-own-pid.ts");
    assert_eq!(j["pcr_pid"], 0x1FF);
    assert_eq!(
        j["problems"].as_array().unwrap().len(),
        0,
        "{}",
        j["problems"]
    );
    let pcr_only = j["pids"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == 0x1FF)
        .unwrap();
    assert_eq!(pcr_only["packets"], j["pcr_count"]);
    // VBR: 170328 bytes over ~3.05 s.
    let j = probe_json("vbr-25fps.ts");
    let expect = 170_328.0 * 8.0 / f(&j["duration_s"]);
    assert!((f(&j["bitrate_bps"]) - expect).abs() < 1.0);
    assert!(f(&j["bitrate_bps"]) > 400_000.0 && f(&j["bitrate_bps"]) < 500_000.0);
}

#[test]
fn problems_at_the_right_byte_offsets() {
    let j = probe_json("sync-loss-middle.ts");
    let p = j["problems"].as_array().unwrap();
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0]["kind"], "sync_loss");
    assert_eq!(p[0]["byte_offset"], 94_000); // garbage inserted after packet 500
    assert_eq!(p[0]["skipped"], 77);
    assert_eq!(j["segments"], 2);
    assert_eq!(j["packets"], 942_444 / 188); // no packet lost

    let j = probe_json("truncated-tail.ts");
    let p = j["problems"].as_array().unwrap();
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0]["kind"], "truncated");
    assert_eq!(p[0]["byte_offset"], 5012 * 188);
    assert_eq!(p[0]["bytes"], 88);
    assert_eq!(j["packets"], 5012);

    // The human table names them too.
    let out = run(&["probe", fixture("sync-loss-middle.ts").to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("sync loss at byte 94000"), "{text}");
    assert!(text.contains("25 fps (25/1)"), "{text}");
}

/// Offset of the first packet on `pid` that starts a section whose `version_number` is
/// `version` (single-packet sections, as in the fixtures): found here byte by byte, apart
/// from the scanner.
fn first_section_with_version(bytes: &[u8], pid: u16, version: u8) -> u64 {
    for (k, p) in bytes.chunks_exact(188).enumerate() {
        let this = ((p[1] as u16 & 0x1F) << 8) | p[2] as u16;
        if this != pid || p[1] & 0x40 == 0 {
            continue;
        }
        let start = if p[3] & 0x20 != 0 {
            5 + p[4] as usize
        } else {
            4
        };
        let s = start + 1 + p[start] as usize;
        if (p[s + 5] >> 1) & 0x1F == version {
            return k as u64 * 188;
        }
    }
    panic!("no section version {version} on PID {pid}");
}

/// A PMT that moves the video to a new PID mid-file, then a PAT that adds a program
/// (fixtures/pmt-change.ts, `tools/ts-edit.py pmtchange`): both reported at the byte where
/// they take effect, and the frame starts follow the new video PID, so every frame of the
/// file is counted (75, as in the file it was made from). Repeated identical tables are
/// not changes.
#[test]
fn psi_changes_are_reported_and_frames_follow_the_new_video_pid() {
    let bytes = std::fs::read(fixture("pmt-change.ts")).unwrap();
    let pmt_at = first_section_with_version(&bytes, 0x1000, 1);
    let pat_at = first_section_with_version(&bytes, 0, 1);
    let j = probe_json("pmt-change.ts");
    let p = j["problems"].as_array().unwrap();
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0]["kind"], "psi_change");
    assert_eq!(p[0]["table"], "PMT");
    assert_eq!(p[0]["byte_offset"], pmt_at);
    assert_eq!(
        (p[0]["version_from"].as_u64(), p[0]["version_to"].as_u64()),
        (Some(0), Some(1))
    );
    let d = p[0]["detail"].as_str().unwrap();
    assert!(
        d.contains("added PID 512 H.264") && d.contains("gone PID 256"),
        "{d}"
    );
    assert!(d.contains("frame starts follow video PID 512"), "{d}");
    assert_eq!(p[1]["table"], "PAT");
    assert_eq!(p[1]["byte_offset"], pat_at);
    assert!(
        p[1]["detail"]
            .as_str()
            .unwrap()
            .contains("added program 2 (PMT PID 4112)"),
        "{p:?}"
    );
    assert_eq!(j["frames"], 75, "frames on PID 256 then 512");
    assert_eq!(f(&j["frame_rate"]), 25.0);
    assert_eq!(
        j["programs"].as_array().unwrap().len(),
        2,
        "{}",
        j["programs"]
    );
    // The file it was made from repeats the same PAT and PMT throughout: no change.
    let j = probe_json("pcr-own-pid.ts");
    assert_eq!(
        j["problems"].as_array().unwrap().len(),
        0,
        "{}",
        j["problems"]
    );
    assert_eq!(j["frames"], 75);
    // The human report says it too.
    let out = run(&["probe", fixture("pmt-change.ts").to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!(
            "PMT of program 1 (PID 4096) changed at byte {pmt_at}: version 0 -> 1"
        )),
        "{text}"
    );
}

#[test]
fn timeline_continuous_across_pcr_wrap() {
    let m = tandem::io::asset::build(
        &fixture("pcr-wrap-25fps.ts"),
        &tandem::index::BuildOptions::default(),
        false,
    )
    .unwrap();
    let a = &m.map.anchors;
    let wraps = a.windows(2).filter(|w| w[1].pcr < w[0].pcr).count();
    assert_eq!(wraps, 1, "the fixture's PCR wraps once");
    for w in a.windows(2) {
        let dt = w[1].time - w[0].time;
        assert_eq!(dt, w[1].pcr.ticks_since(w[0].pcr));
        assert!(dt > 0 && dt < 27_000_000 / 10, "step {dt}");
    }
    assert_eq!(m.map.packet_time(0), 0);
    assert!(m.report.problems.is_empty(), "{:?}", m.report.problems);
    // 4 s at 2.5 Mb/s.
    let secs = m.map.loop_period as f64 / 27e6;
    assert!((secs - 4.015).abs() < 0.01, "{secs}");
    let times: Vec<u64> = m.map.datagrams.iter().map(|d| d.time.0).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn bad_files_exit_2_with_one_line() {
    for (name, needle) in [
        ("no-pcr.ts", "no PCR timeline"),
        ("not-ts.bin", "not an MPEG-TS file"),
        ("empty.ts", "empty file"),
        ("does-not-exist.ts", "cannot read at byte 0"),
    ] {
        let p = fixture(name);
        for cmd in ["probe", "index"] {
            let out = run(&[cmd, p.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(2), "{cmd} {name}");
            let err = String::from_utf8(out.stderr).unwrap();
            assert_eq!(err.lines().count(), 1, "{cmd} {name}: {err}");
            assert!(
                err.contains(name) && err.contains(needle),
                "{cmd} {name}: {err}"
            );
            assert!(out.stdout.is_empty());
        }
    }
    let out = run(&["probe", fixture("no-pcr.ts").to_str().unwrap()]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bytes 0..942444"), "{err}");
}

/// A private copy of a fixture, so `tandem index` writes its index outside fixtures/.
fn copy_fixture(name: &str, tag: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("tandem-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::copy(fixture(name), &p).unwrap();
    (dir, p)
}

#[test]
fn index_builds_saves_and_reloads() {
    let (dir, asset) = copy_fixture("cbr-29.97fps.ts", "index");
    let a = asset.to_str().unwrap();
    let out = run(&["index", a]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let saved = format!("{a}.tandem-index");
    assert!(text.contains(&format!("built, saved to {saved}")), "{text}");
    assert!(text.contains("718 datagrams"), "{text}");
    assert!(
        text.contains("90 frames at 29.970 fps (30000/1001)"),
        "{text}"
    );
    assert!(Path::new(&saved).exists());
    let out = run(&["index", a]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("loaded from"), "{text}");
    let out = run(&["index", "--force", a]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("built, saved"), "{text}");
    // The saved map is the map a fresh build gives.
    let loaded = tandem::io::load_or_build(&asset, false).unwrap();
    let fresh = tandem::io::asset::build(&asset, &Default::default(), false)
        .unwrap()
        .map;
    assert_eq!(loaded, fresh);
    std::fs::remove_dir_all(dir).unwrap();
}
