//! Unit tests of `index::build` on synthetic streams with exactly known timing.

use super::build::{build_bytes, finish, scan_reader_chunked, BuildOptions, Built};
use super::synth::{self, synth_ts, SynthOptions, VIDEO_PID};
use super::*;
use crate::index::error::BuildError;
use crate::index::report::Problem;
use crate::ts::pcr::PCR_MODULUS;

fn built(data: &[u8]) -> Built {
    build_bytes(data, &BuildOptions::default()).expect("build")
}

fn video_count(o: &SynthOptions) -> u64 {
    (0..o.packets)
        .filter(|&i| synth::slot(o, i) == synth::Slot::Video)
        .count() as u64
}

#[test]
fn clean_stream_exact_timeline_and_tables() {
    let o = SynthOptions::default();
    let data = synth_ts(&o);
    let b = built(&data);
    let m = &b.map;
    let tpp = o.ticks_per_packet;
    assert_eq!(m.packets, 2000);
    assert_eq!(m.identity, identity::hash_bytes(&data));
    assert_eq!(m.segments.len(), 1);
    assert_eq!(m.pcr_pid, Pid::new(VIDEO_PID));
    assert_eq!(m.video_pid, Some(Pid::new(VIDEO_PID)));
    assert_eq!(m.frame_rate, Some((25, 1)));
    let frames = (0..o.packets)
        .filter(|&i| synth::is_frame_start(&o, i))
        .count();
    assert_eq!(m.frames as usize, frames);
    assert_eq!(m.anchors.len(), 100);
    assert_eq!(m.packet_time(0), 0);
    assert_eq!(m.loop_period, (2000 * tpp).div_ceil(300) * 300);
    assert_eq!(m.datagrams.len(), 286);
    for (d, e) in m.datagrams.iter().enumerate() {
        let first = d as u64 * 7;
        assert_eq!(e.byte_offset, first * 188);
        assert_eq!(e.time.0, first * tpp, "datagram {d}");
        let pcr = (first..first + 7).any(|i| i < o.packets && synth::has_pcr(&o, i));
        assert_eq!(e.flags & flags::HAS_PCR != 0, pcr, "datagram {d}");
        let fs = (first..first + 7).any(|i| i < o.packets && synth::is_frame_start(&o, i));
        assert_eq!(e.flags & flags::FRAME_START != 0, fs, "datagram {d}");
        let in_progress = (0..=first)
            .filter(|&i| synth::is_frame_start(&o, i))
            .count()
            .saturating_sub(1);
        assert_eq!(e.frame as usize, in_progress, "datagram {d}");
    }
    // CC facts: every PID's payload packets count up by one from 0.
    let v = video_count(&o);
    let vc = m
        .pid_cc
        .iter()
        .find(|c| c.pid == Pid::new(VIDEO_PID))
        .unwrap();
    assert_eq!(
        (vc.first.value(), vc.last.value()),
        (0, ((v - 1) % 16) as u8)
    );
    assert_eq!(vc.advance as u64, v % 16);
    assert_eq!(m.cc_advance(Pid::new(0)), 4); // 4 PATs
    assert_eq!(m.cc_advance(Pid::NULL), 0);
    assert!(m.pid_cc.windows(2).all(|w| w[0].pid < w[1].pid));
    assert!(b.report.problems.is_empty(), "{:?}", b.report.problems);
    assert_eq!(b.report.programs.len(), 1);
    assert_eq!(b.report.frame_delta_90k, Some(3600));
    let sp = b.report.pcr_spacing.unwrap();
    assert_eq!((sp.min, sp.max), (20 * tpp, 20 * tpp));
    persist::check(m).unwrap();
}

#[test]
fn small_buffers_give_the_same_result() {
    let o = SynthOptions::default();
    let mut data = synth_ts(&o);
    // A sync loss and a truncated tail, so resync runs across buffer boundaries.
    data.splice(700 * 188..700 * 188, [0x47u8; 33]);
    data.truncate(data.len() - 60);
    let whole = built(&data);
    for chunk in [4096, 4099, 5000, 9999] {
        let mut r = &data[..];
        let s = scan_reader_chunked(&mut r, &BuildOptions::default(), &mut |_| {}, chunk).unwrap();
        assert_eq!(finish(s).unwrap(), whole, "chunk {chunk}");
    }
}

#[test]
fn sync_loss_starts_a_segment() {
    let o = SynthOptions::default();
    let mut data = synth_ts(&o);
    let garbage: Vec<u8> = (0..77u8).map(|i| i.wrapping_mul(37)).collect();
    data.splice(500 * 188..500 * 188, garbage);
    let b = built(&data);
    let m = &b.map;
    assert_eq!(m.packets, 2000);
    assert_eq!(
        m.segments,
        vec![
            Segment {
                byte_offset: 0,
                first_packet: 0,
                packets: 500
            },
            Segment {
                byte_offset: 500 * 188 + 77,
                first_packet: 500,
                packets: 1500
            }
        ]
    );
    assert_eq!(
        b.report.problems,
        vec![Problem::SyncLoss {
            byte_offset: 94_000,
            skipped: 77
        }]
    );
    assert_eq!(m.packet_offset(500), Some(94_077));
    assert_eq!(m.datagrams[72].byte_offset, 504 * 188 + 77);
    // The timeline goes by packet position, so it is unaffected.
    assert_eq!(m.datagrams[100].time.0, 700 * o.ticks_per_packet);
}

#[test]
fn corrupted_sync_byte_drops_one_packet() {
    let o = SynthOptions::default();
    let mut data = synth_ts(&o);
    data[300 * 188] = 0x00;
    let b = built(&data);
    assert_eq!(b.map.packets, 1999);
    assert_eq!(b.map.segments.len(), 2);
    assert_eq!(b.map.segments[1].byte_offset, 301 * 188);
    assert!(b.report.problems.contains(&Problem::SyncLoss {
        byte_offset: 300 * 188,
        skipped: 188
    }));
    // Packet 300 is a video packet: its loss is a CC error on the next one.
    assert!(b.report.problems.iter().any(|p| matches!(p,
        Problem::CcError { pid, byte_offset, .. } if *pid == Pid::new(VIDEO_PID) && *byte_offset == 301 * 188)));
}

#[test]
fn leading_garbage_and_truncated_tail() {
    let o = SynthOptions::default();
    let mut data = vec![0x11u8; 50];
    data.extend(synth_ts(&o));
    data.truncate(data.len() - 100);
    let b = built(&data);
    assert_eq!(b.map.packets, 1999);
    assert_eq!(b.map.segments[0].byte_offset, 50);
    assert_eq!(
        b.report.problems,
        vec![
            Problem::SyncLoss {
                byte_offset: 0,
                skipped: 50
            },
            Problem::Truncated {
                byte_offset: 50 + 1999 * 188,
                bytes: 88
            }
        ]
    );
}

#[test]
fn cc_errors_respect_duplicates_and_discontinuity() {
    let o = SynthOptions::default();
    let data = synth_ts(&o);
    let pkts: Vec<&[u8]> = data.chunks(188).collect();
    let mut out = Vec::new();
    for (i, p) in pkts.iter().enumerate() {
        if i == 104 {
            continue; // a lost video packet
        }
        out.extend_from_slice(p);
        if i == 204 {
            out.extend_from_slice(p); // a duplicate: allowed once
        }
    }
    let b = built(&out);
    let cc: Vec<&Problem> = b
        .report
        .problems
        .iter()
        .filter(|p| matches!(p, Problem::CcError { .. }))
        .collect();
    assert_eq!(cc.len(), 1, "{cc:?}");
    assert!(
        matches!(cc[0], Problem::CcError { byte_offset, packet: 104, .. } if *byte_offset == 104 * 188)
    );
}

#[test]
fn pcr_wrap_is_continuous() {
    let o = SynthOptions {
        pcr_start: PCR_MODULUS - 1000 * 18_048 - 77,
        ..SynthOptions::default()
    };
    let b = built(&synth_ts(&o));
    assert!(b.report.problems.is_empty(), "{:?}", b.report.problems);
    for (d, e) in b.map.datagrams.iter().enumerate() {
        assert_eq!(e.time.0, d as u64 * 7 * o.ticks_per_packet);
    }
    assert!(b.map.anchors.windows(2).any(|w| w[1].pcr < w[0].pcr));
}

#[test]
fn pcr_discontinuity_carried_at_previous_rate() {
    let o = SynthOptions {
        pcr_jump: Some((1000, 5 * 27_000_000)),
        flag_discontinuity_at: vec![1502],
        ..SynthOptions::default()
    };
    let b = built(&synth_ts(&o));
    for (d, e) in b.map.datagrams.iter().enumerate() {
        assert_eq!(e.time.0, d as u64 * 7 * o.ticks_per_packet);
    }
    let disc: Vec<(u64, bool, i64)> = b
        .report
        .problems
        .iter()
        .filter_map(|p| match p {
            Problem::PcrDiscontinuity {
                packet,
                flagged,
                step_ticks,
                byte_offset,
                ..
            } => {
                assert_eq!(*byte_offset, packet * 188);
                Some((*packet, *flagged, *step_ticks))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        disc,
        vec![
            (1002, false, 5 * 27_000_000 + 20 * 18_048),
            (1502, true, 20 * 18_048)
        ]
    );
}

#[test]
fn frame_rates_from_pts() {
    for (delta, rate) in [
        (3003, (30000, 1001)),
        (1800, (50, 1)),
        (1501, (60000, 1001)),
    ] {
        let o = SynthOptions {
            frame_delta90: delta,
            ..SynthOptions::default()
        };
        assert_eq!(built(&synth_ts(&o)).map.frame_rate, Some(rate));
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let opts = BuildOptions::default();
    assert_eq!(build_bytes(&[], &opts), Err(BuildError::Empty));
    let noise: Vec<u8> = (0..70_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80)
        .collect();
    assert_eq!(
        build_bytes(&noise, &opts),
        Err(BuildError::NotTs { scanned: 70_000 })
    );
    assert_eq!(
        build_bytes(&[0x47; 100], &opts),
        Err(BuildError::NoPackets { size: 100 })
    );
    let o = SynthOptions {
        pcr_every: 0,
        ..SynthOptions::default()
    };
    assert_eq!(
        build_bytes(&synth_ts(&o), &opts),
        Err(BuildError::NoPcr {
            pid: Some(Pid::new(VIDEO_PID)),
            found: 0,
            scanned: 2000 * 188
        })
    );
    // Beyond the not-TS limit without any sync: stops early.
    let big = vec![0u8; (scan::NOT_TS_LIMIT + 300_000) as usize];
    assert!(matches!(
        build_bytes(&big, &opts),
        Err(BuildError::NotTs { scanned }) if scanned < big.len() as u64
    ));
}

#[test]
fn no_hash_build_has_zero_hash_same_map() {
    let data = synth_ts(&SynthOptions::default());
    let a = built(&data).map;
    let b = build_bytes(
        &data,
        &BuildOptions {
            hash: false,
            ..BuildOptions::default()
        },
    )
    .unwrap()
    .map;
    assert_eq!(b.identity.hash, 0);
    assert_eq!(b.identity.size, a.identity.size);
    assert_eq!(b.datagrams, a.datagrams);
}

#[test]
fn pcr_pid_fallback_when_pmt_says_none_or_wrong() {
    for (pmt_pcr, named) in [(0x1FFF, None), (0x0200, Some(Pid::new(0x200)))] {
        let o = SynthOptions {
            pmt_pcr_pid: pmt_pcr,
            ..SynthOptions::default()
        };
        let b = built(&synth_ts(&o));
        assert_eq!(b.map.pcr_pid, Pid::new(VIDEO_PID));
        assert_eq!(b.map.anchors.len(), 100);
        assert_eq!(
            b.report.problems,
            vec![Problem::PcrPidFallback {
                pmt_pcr_pid: named,
                used: Pid::new(VIDEO_PID)
            }]
        );
    }
}
