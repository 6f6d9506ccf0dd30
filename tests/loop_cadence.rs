//! The loop point of every bundled asset with video, rendered through the output stream for
//! three passes and read back packet by packet: the video cadence holds exactly (every step
//! of the sorted video PTS is one frame, within the 90 kHz rounding of 59.94 fps), audio
//! continues within one audio PES (the bundled assets carry 8 AAC frames, 170.7 ms, per PES;
//! the join is not trimmed to AAC frames, so it overlaps by tens of ms: printed), CC continues, PTS/DTS increase per PID in decode order
//! and PCR steps stay within 100 ms (ISO/IEC 13818-1 §2.4.3.5, TR 101 290 2.3b). Prints, per
//! asset, what the join looks like (the figures of the playlists issue's loop measure).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tandem::index::{build_bytes, BuildOptions};
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
    let path = format!("{}/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap();
    let map = Arc::new(build_bytes(&bytes, &BuildOptions::default()).unwrap().map);
    let s = OutputStream::with_asset(
        map.clone(),
        SessionParams {
            session_id: "cadence".into(),
            framing: Framing::Udp,
            loops: Some(PASSES),
        },
        &bytes,
    )
    .unwrap();
    assert!(s.loop_plan().cadence, "{name}: no cadence plan");
    let frame_ticks = map.frame_ticks().unwrap();
    let video = map.video_pid.unwrap();
    let mut out = Vec::new();
    let mut d = Vec::new();
    for i in 0..s.datagram_count().unwrap() {
        let mut asset = Vec::new();
        for m in 0..s.packets_in(i) as u64 {
            let (_, p) = s.locate(7 * i + m);
            let o = map.packet_offset(p).unwrap() as usize;
            asset.extend_from_slice(&bytes[o..o + PACKET_SIZE]);
        }
        s.render(i, &asset, &mut d).unwrap();
        out.extend_from_slice(&d);
    }
    let mut last_cc: HashMap<Pid, Cc> = HashMap::new();
    // Per PID: (unwrapped PTS, unwrapped DTS-or-PTS) of every PES start, in output order.
    let mut pes: BTreeMap<Pid, Vec<(u64, u64)>> = BTreeMap::new();
    let mut last_pcr: Option<Pcr> = None;
    let mut max_pcr_step = 0u64;
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
                    assert!(
                        step > 0 && step <= 27_000_000 / 10,
                        "{name}: PCR step {step} at output packet {j}"
                    );
                    max_pcr_step = max_pcr_step.max(step);
                }
                last_pcr = Some(pcr);
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
    assert_eq!(
        vp.len() as u64,
        PASSES * map.frames as u64,
        "{name}: video PES count"
    );
    let mut worst = 0f64;
    for w in vp.windows(2) {
        let e = ((w[1] - w[0]) as f64 - frame_90k).abs();
        worst = worst.max(e);
        assert!(
            e <= 0.5,
            "{name}: video PTS step {} (frame {frame_90k})",
            w[1] - w[0]
        );
    }
    // Audio: at each join the next pass starts within one PES of where the last audio PES
    // of the pass before ends (its end taken as its PTS plus the median PES duration).
    let pass_90k = s.period() / 300;
    let mut audio_err = 0f64;
    for (pid, v) in &pes {
        if *pid == video {
            continue;
        }
        let mut ap: Vec<u64> = v.iter().map(|x| x.0).collect();
        ap.sort_unstable();
        let per_pass = ap.len() as u64 / PASSES;
        if per_pass < 3 {
            continue;
        }
        let mut steps: Vec<u64> = ap.windows(2).map(|w| w[1] - w[0]).collect();
        steps.sort_unstable();
        let frame = steps[steps.len() / 2] as f64; // the audio PES duration (median)
        let last_of_pass = ap[per_pass as usize - 1];
        let first_next = ap[0] + pass_90k;
        let err = (first_next as f64 - (last_of_pass as f64 + frame)) / frame;
        assert!(
            err.abs() <= 1.0,
            "{name}: PID {pid}: audio join off by {err:.2} PES"
        );
        let ms = err * frame / 90.0;
        if ms.abs() > audio_err.abs() {
            audio_err = ms;
        }
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
    if s.loop_plan().dropped() > 0 {
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
        let half_mean = s.period() / per_pass / 2;
        assert!(
            min + 1 >= own_min.min(half_mean),
            "{name}: datagrams {min} ticks apart (asset: {own_min}, half the mean: {half_mean})"
        );
    }
    let head = s.loop_plan().head_len() as u64;
    let head_delay = if head > 0 {
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
        dropped: s.loop_plan().dropped(),
        min_spacing: min as f64 / median as f64,
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
