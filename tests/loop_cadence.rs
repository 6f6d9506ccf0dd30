//! The loop point of every bundled asset with video, rendered through the output stream for
//! three passes and read back packet by packet: the video cadence holds exactly (every step
//! of the sorted video PTS is one frame, within the 90 kHz rounding of 59.94 fps), audio
//! continues (every AAC frame starts where the one before ends, within half a frame at the
//! joins, where the last audio PES of a pass is trimmed at an ADTS frame), CC continues, PTS/DTS increase per PID in decode order
//! and PCR steps stay within 100 ms (ISO/IEC 13818-1 §2.4.3.5, TR 101 290 2.3b). Prints, per
//! asset, what the join looks like (the figures of the playlists issue's loop measure).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tandem::index::{build_bytes, BuildOptions, OffsetMap};
use tandem::stream::cut::{cut, Edit};
use tandem::stream::programme::ClipRef;
use tandem::stream::reader::ReadAt;
use tandem::stream::{Framing, OutputStream, SessionParams};
use tandem::ts::packet::{Cc, Packet, Pid, PACKET_SIZE};
use tandem::ts::pcr::{Pcr, PTS_MODULUS};
use tandem::ts::pes::timestamps;

const PASSES: u64 = 3;

struct Join {
    video_frame_90k: f64,
    worst_video_step_error: f64,
    audio_join_ms: f64,
    max_pcr_step_ms: f64,
    head_delay_ms: f64,
    dropped: u64,
    min_spacing: f64,
    /// PCR discontinuities flagged (steps above 100 ms at a join).
    flagged: u64,
}

fn unwrap(prev: Option<u64>, raw: u64) -> u64 {
    match prev {
        None => raw,
        Some(p) => {
            let base = p - p % PTS_MODULUS;
            let mut v = base + raw;
            if v + PTS_MODULUS / 2 < p {
                v += PTS_MODULUS;
            }
            v
        }
    }
}

fn check(name: &str) -> Join {
    check_clips(name, &[name])
}

/// The programme of `names` played [`PASSES`] times, checked as one stream.
fn check_clips(name: &str, names: &[&str]) -> Join {
    let whole: Vec<Item<'_>> = names.iter().map(|n| (*n, None)).collect();
    check_cuts(name, &whole)
}

/// A clip of a playlist, whole or cut at `(in, out)` seconds.
type Item<'a> = (&'a str, Option<(f64, Option<f64>)>);
/// The clips of a playlist.
type Items<'a> = [Item<'a>];
/// A clip's bytes, (cut) map and the packets played as null packets.
type Loaded = (Vec<u8>, Arc<OffsetMap>, Arc<[Edit]>);

/// [`check_clips`] with in and out points: every cut clip starts at a random access point
/// and holds exactly the frames between its points.
fn check_cuts(name: &str, items: &Items<'_>) -> Join {
    let clips: Vec<Loaded> = items
        .iter()
        .map(|(n, points)| {
            let bytes = std::fs::read(format!("{}/{n}", env!("CARGO_MANIFEST_DIR"))).unwrap();
            let map = build_bytes(&bytes, &BuildOptions::default()).unwrap().map;
            match points {
                None => (bytes, Arc::new(map), Arc::from(Vec::<Edit>::new())),
                Some((a, b)) => {
                    let c = cut(&map, &bytes, *a, *b).unwrap();
                    (bytes, Arc::new(c.map), Arc::from(c.edits))
                }
            }
        })
        .collect();
    let refs: Vec<ClipRef<'_>> = clips
        .iter()
        .map(|(b, m, n)| ClipRef {
            map: m,
            bytes: b as &dyn ReadAt,
            edits: n,
        })
        .collect();
    let s = OutputStream::with_cuts(
        &refs,
        SessionParams {
            session_id: "cadence".into(),
            framing: Framing::Udp,
            loops: Some(PASSES),
        },
    )
    .unwrap();
    let map = clips[0].1.clone();
    for c in 0..clips.len() {
        assert!(
            s.programme().cadence_join(c),
            "{name}: no cadence join into clip {c}"
        );
    }
    let frame_ticks = map.frame_ticks().unwrap();
    let video = map.video_pid.unwrap();
    let mut out = Vec::new();
    let mut d = Vec::new();
    for i in 0..s.datagram_count().unwrap() {
        let mut asset = Vec::new();
        for m in 0..s.packets_in(i) as u64 {
            let l = s.locate_clip(7 * i + m);
            let (bytes, cmap, _) = &clips[l.clip];
            let o = cmap.packet_offset(l.packet).unwrap() as usize;
            asset.extend_from_slice(&bytes[o..o + PACKET_SIZE]);
        }
        s.render(i, &asset, &mut d).unwrap();
        out.extend_from_slice(&d);
    }
    let frames: u64 = clips.iter().map(|c| c.1.frames as u64).sum();
    // A cut clip starts on a random access point: its first video payload, as played, is a
    // PES start that carries one.
    for (bytes, m, edits) in &clips {
        for p in 0..m.packets {
            let o = m.packet_offset(p).unwrap() as usize;
            let b: [u8; PACKET_SIZE] = match edits.binary_search_by_key(&p, |e| e.0) {
                Ok(i) => edits[i].1,
                Err(_) => bytes[o..o + PACKET_SIZE].try_into().unwrap(),
            };
            let pk = Packet::new_checked(&b).unwrap();
            if pk.pid() == video && pk.has_payload() {
                assert!(
                    pk.pusi() && pk.random_access(),
                    "{name}: a clip starts off a RAP"
                );
                break;
            }
        }
    }
    let mut last_cc: HashMap<Pid, Cc> = HashMap::new();
    // Per PID: every PES of the output, reassembled (for the ADTS frames of the audio).
    let mut units: BTreeMap<Pid, Vec<Vec<u8>>> = BTreeMap::new();
    // Per PID: (unwrapped PTS, unwrapped DTS-or-PTS) of every PES start, in output order.
    let mut pes: BTreeMap<Pid, Vec<(u64, u64)>> = BTreeMap::new();
    let mut last_pcr: Option<Pcr> = None;
    let mut max_pcr_step = 0u64;
    let mut flagged = 0u64;
    for (j, pkt) in out.chunks(PACKET_SIZE).enumerate() {
        let p = Packet::new_checked(pkt).unwrap();
        if p.pid() != Pid::NULL && p.has_payload() {
            if let Some(prev) = last_cc.get(&p.pid()) {
                assert!(
                    p.cc().follows(*prev),
                    "{name}: CC error on PID {} at output packet {j}",
                    p.pid()
                );
            }
            last_cc.insert(p.pid(), p.cc());
        }
        if p.pid() == map.pcr_pid {
            if let Some(pcr) = p.pcr() {
                if let Some(prev) = last_pcr {
                    let step = pcr.ticks_since(prev);
                    if p.discontinuity() {
                        // Only where the step is not a valid continuation (a clip whose PCRs
                        // are sparse at its end or start: flagged, §2.4.3.5).
                        assert!(
                            step == 0 || step > 27_000_000 / 10,
                            "{name}: a discontinuity flagged at a PCR step of {step} at output packet {j}"
                        );
                        flagged += 1;
                    } else {
                        assert!(
                            step > 0 && step <= 27_000_000 / 10,
                            "{name}: PCR step {step} at output packet {j}"
                        );
                        max_pcr_step = max_pcr_step.max(step);
                    }
                }
                last_pcr = Some(pcr);
            }
        }
        if p.pid() != Pid::NULL && p.has_payload() {
            let u = units.entry(p.pid()).or_default();
            if p.pusi() {
                u.push(Vec::new());
            }
            if let Some(last) = u.last_mut() {
                last.extend_from_slice(p.payload());
            }
        }
        let t = timestamps(&p);
        if let Some(pts) = t.pts {
            let v = pes.entry(p.pid()).or_default();
            let (pp, pd) = v.last().map_or((None, None), |&(a, b)| (Some(a), Some(b)));
            let dts = t.dts.unwrap_or(pts);
            v.push((unwrap(pp, pts), unwrap(pd, dts)));
        }
    }
    // Decode order: DTS (or PTS) increases per PID across every join.
    for (pid, v) in &pes {
        for w in v.windows(2) {
            assert!(
                w[1].1 > w[0].1,
                "{name}: PID {pid}: DTS {} then {}",
                w[0].1,
                w[1].1
            );
        }
    }
    // Video: the sorted PTS step by exactly one frame everywhere, joins included.
    let frame_90k = frame_ticks as f64 / 300.0;
    let mut vp: Vec<u64> = pes[&video].iter().map(|x| x.0).collect();
    vp.sort_unstable();
    assert_eq!(vp.len() as u64, PASSES * frames, "{name}: video PES count");
    let mut worst = 0f64;
    // Joins where the picture before is held (a clip with B-frame reordering after one
    // without): a step of 1 + held frames there, and nowhere else.
    let n = clips.len() as u64;
    let mut holds: Vec<u64> = (1..PASSES * n)
        .map(|q| s.programme().held_frames((q % n) as usize))
        .filter(|&h| h > 0)
        .collect();
    let held_joins = holds.len();
    let max_held = holds.iter().copied().max().unwrap_or(0);
    for w in vp.windows(2) {
        let step = (w[1] - w[0]) as f64;
        let e = (step - frame_90k).abs();
        if e > 0.5 {
            let at = holds
                .iter()
                .position(|&h| (step - (1 + h) as f64 * frame_90k).abs() <= 0.5);
            assert!(
                at.is_some(),
                "{name}: video PTS step {} (frame {frame_90k}; held joins left: {holds:?})",
                w[1] - w[0]
            );
            holds.swap_remove(at.unwrap());
            continue;
        }
        worst = worst.max(e);
    }
    assert!(holds.is_empty(), "{name}: held joins not seen: {holds:?}");
    // Audio: every AAC (ADTS) frame of the output, start and duration (90 kHz); sorted, each
    // frame starts where the one before ends, within half a frame at the joins (the trim).
    let mut audio_err = 0f64;
    for (pid, pes_list) in &units {
        if *pid == video {
            continue;
        }
        let mut starts: Vec<(u64, u64)> = Vec::new();
        let mut prev: Option<u64> = None;
        for u in pes_list {
            if u.len() < 14 || u[..3] != [0, 0, 1] || !(0xC0..=0xDF).contains(&u[3]) {
                continue;
            }
            let t = &u[9..14];
            let raw = ((t[0] as u64 >> 1) & 7) << 30
                | (t[1] as u64) << 22
                | (t[2] as u64 >> 1) << 15
                | (t[3] as u64) << 7
                | t[4] as u64 >> 1;
            let mut pts = unwrap(prev, raw);
            prev = Some(pts);
            let len = u16::from_be_bytes([u[4], u[5]]) as usize;
            let end = if len == 0 {
                u.len()
            } else {
                (6 + len).min(u.len())
            };
            let mut at = 9 + u[8] as usize;
            while at + 7 <= end && u[at] == 0xFF && u[at + 1] & 0xF6 == 0xF0 {
                let h = &u[at..at + 7];
                let flen =
                    ((h[3] as usize & 3) << 11) | ((h[4] as usize) << 3) | (h[5] as usize >> 5);
                let rate = [
                    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025,
                    8000,
                ][(h[2] >> 2 & 0xF) as usize % 12];
                let d = ((h[6] & 3) as u64 + 1) * 1024 * 90_000 / rate;
                assert!(
                    flen >= 7 && at + flen <= end,
                    "{name}: PID {pid}: ADTS frame cut short"
                );
                starts.push((pts, d));
                pts += d;
                at += flen;
            }
        }
        if starts.len() < 10 {
            continue;
        }
        starts.sort_unstable();
        let d = starts[0].1 as f64;
        let mut gaps_at_holds = 0;
        for w in starts.windows(2) {
            let err = w[1].0 as f64 - (w[0].0 + w[0].1) as f64;
            if err > d / 2.0 + 1.0 && gaps_at_holds < held_joins {
                // Where the picture is held, the audio of the next clip starts as much later:
                // a gap of at most the held frames.
                assert!(
                    err <= max_held as f64 * frame_90k + d / 2.0 + 1.0,
                    "{name}: PID {pid}: audio gap {err} ticks at a held join"
                );
                gaps_at_holds += 1;
                continue;
            }
            assert!(
                err.abs() <= d / 2.0 + 1.0,
                "{name}: PID {pid}: audio frame at {} starts {err} ticks after the previous ends",
                w[1].0
            );
            if err.abs() > audio_err.abs() {
                audio_err = err;
            }
        }
        audio_err /= 90.0; // ms
    }
    // Departures: never two at once, and where the asset is constant-rate (its head has
    // stuffing to drop) the spacing across the joins stays that of the asset.
    let count = s.datagram_count().unwrap();
    let mut gaps: Vec<u64> = (1..count)
        .map(|i| s.departure_ticks(i) - s.departure_ticks(i - 1))
        .collect();
    gaps.sort_unstable();
    let (min, median) = (gaps[0], gaps[gaps.len() / 2]);
    assert!(min > 0, "{name}: two datagrams due at once");
    let dropped: u64 = (0..clips.len()).map(|c| s.programme().head(c).1).sum();
    if dropped > 0 {
        assert!(
            min * 10 >= median * 8,
            "{name}: burst ({min} vs {median} ticks)"
        );
    } else {
        // No faster than twice the mean rate, or than the asset itself goes.
        let per_pass = map.datagram_count();
        let own_min = (1..per_pass)
            .map(|i| s.departure_ticks(i) - s.departure_ticks(i - 1))
            .min()
            .unwrap();
        let half_mean = s.period() / (s.programme().cycle().0 / 7).max(1) / 2;
        let _ = per_pass;
        assert!(
            min + 1 >= own_min.min(half_mean),
            "{name}: datagrams {min} ticks apart (asset: {own_min}, half the mean: {half_mean})"
        );
    }
    let head = s.programme().head(0).0 as u64;
    let head_delay = if head > 0 && clips.len() == 1 {
        s.packet_departure_ticks(map.packets) as f64 - (s.period() + map.packet_time(0)) as f64
    } else {
        0.0
    };
    Join {
        video_frame_90k: frame_90k,
        worst_video_step_error: worst,
        audio_join_ms: audio_err,
        max_pcr_step_ms: max_pcr_step as f64 / 27_000.0,
        head_delay_ms: head_delay / 27_000.0,
        dropped,
        min_spacing: min as f64 / median as f64,
        flagged,
    }
}

#[test]
fn every_loop_point_keeps_the_video_cadence() {
    for name in [
        "fixtures/cbr-25fps.ts",
        "fixtures/vbr-25fps.ts",
        "fixtures/cbr-29.97fps.ts",
        "fixtures/cbr-50fps.ts",
        "fixtures/cbr-59.94fps.ts",
        "fixtures/pcr-wrap-25fps.ts",
        "assets/demo-25fps.ts",
    ] {
        let j = check(name);
        assert_eq!(
            j.flagged, 0,
            "{name}: a PCR discontinuity flagged at a loop point"
        );
        println!(
            "{name}: video PTS step = frame ({:.1} x 1/90 kHz) within {:.1}; audio join {:+.1} ms (negative: overlap); max PCR step {:.1} ms; head of each later pass delayed {:.1} ms, {} null packets dropped, smallest datagram spacing {:.2} of the median",
            j.video_frame_90k,
            j.worst_video_step_error,
            j.audio_join_ms,
            j.max_pcr_step_ms,
            j.head_delay_ms,
            j.dropped,
            j.min_spacing
        );
    }
}

/// A playlist of four different 25 fps clips (CBR and VBR, different bitrates, one with a PCR
/// wrap inside, the demo asset), three passes: at every join, clip to clip and the last back
/// to the first, the same checks as at a loop point.
#[test]
fn every_join_of_a_playlist_keeps_the_video_cadence() {
    let names = [
        "fixtures/cbr-25fps.ts",
        "fixtures/vbr-25fps.ts",
        "fixtures/pcr-wrap-25fps.ts",
        "assets/demo-25fps.ts",
    ];
    let j = check_clips("playlist", &names);
    println!(
        "playlist of {names:?}: video PTS step = frame ({:.1} x 1/90 kHz) within {:.1}; audio join {:+.1} ms (negative: overlap); max PCR step {:.1} ms (and {} joins flagged as PCR discontinuities); {} null packets dropped per pass, smallest datagram spacing {:.2} of the median",
        j.video_frame_90k,
        j.worst_video_step_error,
        j.audio_join_ms,
        j.max_pcr_step_ms,
        j.flagged,
        j.dropped,
        j.min_spacing
    );
}

/// A playlist with in and out points: each cut clip starts on a random access point, holds
/// exactly the frames presented between its points, and joins the clips around it on the
/// cadence.
#[test]
fn in_and_out_points_cut_on_frames_and_keep_the_cadence() {
    let items: &Items<'_> = &[
        ("fixtures/cbr-25fps.ts", Some((0.9, Some(2.5)))),
        ("assets/demo-25fps.ts", Some((2.0, Some(4.1)))),
        ("fixtures/pcr-wrap-25fps.ts", None),
        ("fixtures/cbr-25fps.ts", Some((0.0, Some(1.0)))),
    ];
    let j = check_cuts("cut playlist", items);
    println!(
        "cut playlist: video PTS step = frame within {:.1}; audio join {:+.1} ms; max PCR step {:.1} ms ({} flagged)",
        j.worst_video_step_error, j.audio_join_ms, j.max_pcr_step_ms, j.flagged
    );
    // The frames of each cut: a RAP every 25 frames; in snaps forward to it, out keeps the
    // frames presented before it.
    let frames = |n: &str, a: f64, b: Option<f64>| {
        let bytes = std::fs::read(format!("{}/{n}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let map = build_bytes(&bytes, &BuildOptions::default()).unwrap().map;
        let c = cut(&map, &bytes, a, b).unwrap();
        (c.map.frames, c.in_s, c.out_s)
    };
    assert_eq!(
        frames("fixtures/cbr-25fps.ts", 0.9, Some(2.5)),
        (38, 1.0, 2.52)
    );
    assert_eq!(
        frames("assets/demo-25fps.ts", 2.0, Some(4.1)),
        (53, 2.0, 4.12)
    );
    assert_eq!(
        frames("fixtures/cbr-25fps.ts", 0.0, Some(1.0)),
        (25, 0.0, 1.0)
    );
}
