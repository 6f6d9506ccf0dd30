//! Analyzer tests on synthetic packet sequences (no sockets, no clock).

use std::net::SocketAddr;

use super::*;
use crate::ts::packet::PACKET_SIZE;
use crate::ts::pcr::{ns_to_ticks, Pcr};
use crate::ts::psi::CRC32_MPEG2;

const VIDEO: u16 = 0x100;
const PMT: u16 = 0x1000;
const RATE: f64 = 2_500_000.0;
const BASE: u64 = 1_700_000_000_000_000_000;

fn ns_per_packet() -> f64 {
    188.0 * 8.0 * 1e9 / RATE
}

fn with_crc(mut s: Vec<u8>) -> Vec<u8> {
    let crc = CRC32_MPEG2.checksum(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

fn pat() -> Vec<u8> {
    with_crc(vec![
        0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00,
    ])
}

fn pmt() -> Vec<u8> {
    with_crc(vec![
        0x02, 0xB0, 0x12, 0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x00, 0xF0, 0x00, 0x1B, 0xE1, 0x00,
        0xF0, 0x00,
    ])
}

/// Builds one packet. `pcr` adds an adaptation field with the PCR.
#[derive(Clone, Copy, Default)]
struct Pkt {
    pid: u16,
    cc: u8,
    payload: bool,
    pcr: Option<u64>,
    disc: bool,
    adaptation_only: bool,
}

fn build(p: Pkt, section: Option<&[u8]>) -> [u8; PACKET_SIZE] {
    let mut b = [0xFFu8; PACKET_SIZE];
    b[0] = 0x47;
    b[1] = (p.pid >> 8) as u8 | if section.is_some() { 0x40 } else { 0 };
    b[2] = p.pid as u8;
    let has_af = p.pcr.is_some() || p.disc || p.adaptation_only;
    let afc = match (has_af, p.payload && !p.adaptation_only) {
        (true, true) => 0x30,
        (true, false) => 0x20,
        (false, _) => 0x10,
    };
    b[3] = afc | (p.cc & 0x0F);
    let mut i = 4;
    if has_af {
        let len = if p.adaptation_only { 183 } else { 7 };
        b[4] = len;
        b[5] = if p.disc { 0x80 } else { 0 } | if p.pcr.is_some() { 0x10 } else { 0 };
        if let Some(t) = p.pcr {
            b[6..12].copy_from_slice(&Pcr::from_ticks(t).to_field());
        }
        i = 5 + len as usize;
    }
    if let Some(s) = section {
        b[i] = 0; // pointer_field
        b[i + 1..i + 1 + s.len()].copy_from_slice(s);
    }
    b
}

/// A CBR stream: packet k is PAT (k % 70 == 0), PMT (k % 70 == 1), else video, with a
/// PCR on video packet k % 14 == 2. Time of packet k is k packet durations.
struct Gen {
    cc: std::collections::HashMap<u16, u8>,
    k: u64,
}

impl Gen {
    fn new() -> Gen {
        Gen {
            cc: Default::default(),
            k: 0,
        }
    }

    fn next_cc(&mut self, pid: u16) -> u8 {
        let c = self.cc.entry(pid).or_insert(15);
        *c = (*c + 1) & 15;
        *c
    }

    fn packet(&mut self) -> [u8; PACKET_SIZE] {
        let k = self.k;
        self.k += 1;
        let t = (k as f64 * ns_per_packet()) as u64;
        match k % 70 {
            0 => {
                let cc = self.next_cc(0);
                build(
                    Pkt {
                        pid: 0,
                        cc,
                        payload: true,
                        ..Default::default()
                    },
                    Some(&pat()),
                )
            }
            1 => {
                let cc = self.next_cc(PMT);
                build(
                    Pkt {
                        pid: PMT,
                        cc,
                        payload: true,
                        ..Default::default()
                    },
                    Some(&pmt()),
                )
            }
            _ => {
                let cc = self.next_cc(VIDEO);
                let pcr = (k % 14 == 2).then(|| ns_to_ticks(t));
                build(
                    Pkt {
                        pid: VIDEO,
                        cc,
                        payload: true,
                        pcr,
                        ..Default::default()
                    },
                    None,
                )
            }
        }
    }

    /// The next datagram and its ideal send time.
    fn datagram(&mut self) -> (Vec<u8>, u64) {
        let t = BASE + (self.k as f64 * ns_per_packet()) as u64;
        let mut d = Vec::with_capacity(1316);
        for _ in 0..7 {
            d.extend_from_slice(&self.packet());
        }
        (d, t)
    }
}

fn src(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn clean_run(datagrams: usize) -> Report {
    let mut a = Analyzer::new(Framing::Udp);
    let mut g = Gen::new();
    for _ in 0..datagrams {
        let (d, t) = g.datagram();
        a.push(&d, src(1000), t);
    }
    a.report()
}

#[test]
fn clean_stream_has_no_errors_and_no_departure_error() {
    let r = clean_run(1000);
    assert_eq!(r.datagrams, 1000);
    assert_eq!(r.ts_packets, 7000);
    assert_eq!(r.datagram_sizes.non_1316, 0);
    assert_eq!(r.datagram_sizes.sizes, vec![(1316, 1000)]);
    let t = &r.tr101290;
    for (name, c) in [
        ("sync", &t.sync_loss),
        ("sync byte", &t.sync_byte_error),
        ("pat", &t.pat_error),
        ("cc", &t.cc_error),
        ("pmt", &t.pmt_error),
        ("crc", &t.crc_error),
        ("pcr rep", &t.pcr_repetition_error),
        ("pcr disc", &t.pcr_discontinuity_error),
    ] {
        assert_eq!(c.count, 0, "{name}: {:?}", c.first);
    }
    assert_eq!(r.pmt_pids, vec![PMT]);
    assert_eq!(r.pacing.timeline.pcr_pid, Some(VIDEO));
    assert!(r.pacing.timeline.departure_error.samples > 990);
    assert!(r.pacing.timeline.departure_error.max_us < 0.1);
    assert!((r.pacing.timeline.bitrate_bps.unwrap() - RATE).abs() < 5.0);
    assert_eq!(r.sender_changes.count, 0);
    assert_eq!(r.sources.len(), 1);
    // 4.21 ms between datagrams.
    assert!((r.gaps.max_us - 4211.2).abs() < 0.01, "{:?}", r.gaps);
    assert!((r.gaps.p50_us - 4211.0).abs() < 5.0);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let df = r.pacing.mdi.df_max_ms.unwrap();
    assert!((df - 4.2112).abs() < 0.01, "{df}");
}

#[test]
fn dropped_packet_is_one_cc_error_on_its_pid() {
    let mut a = Analyzer::new(Framing::Udp);
    let mut g = Gen::new();
    for i in 0..100 {
        let (mut d, t) = g.datagram();
        if i == 50 {
            // Remove the 4th packet (video) and send 6 packets.
            d.drain(3 * 188..4 * 188);
        }
        a.push(&d, src(1000), t);
    }
    let r = a.report();
    assert_eq!(r.tr101290.cc_error.count, 1);
    assert_eq!(r.tr101290.cc_error.first[0].pid, Some(VIDEO));
    assert_eq!(r.tr101290.cc_error.first[0].datagram, 50);
    let v = r.pids.iter().find(|p| p.pid == VIDEO).unwrap();
    assert_eq!((v.cc_errors, v.cc_lost_packets), (1, 1));
    assert_eq!(r.datagram_sizes.non_1316, 1);
    assert_eq!(r.datagram_sizes.sizes, vec![(1128, 1), (1316, 99)]);
    assert_eq!(r.pacing.mdi.lost_packets, 1);
}

fn cc_run(seq: &[Pkt]) -> Report {
    let mut a = Analyzer::new(Framing::Udp);
    for (i, p) in seq.iter().enumerate() {
        a.push(&build(*p, None), src(1), BASE + i as u64 * 1000);
    }
    a.report()
}

fn v(cc: u8) -> Pkt {
    Pkt {
        pid: VIDEO,
        cc,
        payload: true,
        ..Default::default()
    }
}

#[test]
fn one_duplicate_is_allowed_two_are_an_error() {
    let r = cc_run(&[v(1), v(2), v(2), v(3)]);
    assert_eq!(r.tr101290.cc_error.count, 0);
    let r = cc_run(&[v(1), v(2), v(2), v(2), v(3)]);
    assert_eq!(r.tr101290.cc_error.count, 1);
}

#[test]
fn out_of_order_and_wrap() {
    let r = cc_run(&[v(14), v(15), v(0), v(1)]);
    assert_eq!(r.tr101290.cc_error.count, 0);
    let r = cc_run(&[v(1), v(3), v(2), v(4)]);
    assert_eq!(r.tr101290.cc_error.count, 3);
}

#[test]
fn adaptation_only_packets_do_not_increment() {
    let ao = Pkt {
        adaptation_only: true,
        ..v(2)
    };
    let r = cc_run(&[v(1), v(2), ao, v(3)]);
    assert_eq!(r.tr101290.cc_error.count, 0);
}

#[test]
fn discontinuity_indicator_allows_a_jump() {
    let jump = Pkt { disc: true, ..v(9) };
    let r = cc_run(&[v(1), v(2), jump, v(10)]);
    assert_eq!(r.tr101290.cc_error.count, 0);
    let r = cc_run(&[v(1), v(2), v(9), v(10)]);
    assert_eq!(r.tr101290.cc_error.count, 1);
    assert_eq!(r.pids[0].cc_lost_packets, 6);
}

#[test]
fn null_packets_are_not_checked() {
    let null = |cc| Pkt {
        pid: 0x1FFF,
        cc,
        payload: true,
        ..Default::default()
    };
    let r = cc_run(&[null(0), null(0), null(0), null(7)]);
    assert_eq!(r.tr101290.cc_error.count, 0);
}

fn pcr_run(pcrs: &[(u64, u64, bool)]) -> Report {
    // (rx offset ns, pcr ticks, discontinuity flag)
    let mut a = Analyzer::new(Framing::Udp);
    for (i, &(rx, pcr, disc)) in pcrs.iter().enumerate() {
        let p = Pkt {
            pcr: Some(pcr),
            disc,
            ..v(i as u8)
        };
        a.push(&build(p, None), src(1), BASE + rx);
    }
    a.report()
}

#[test]
fn pcr_repetition_over_40ms() {
    let ms = 1_000_000u64;
    let tick_ms = 27_000u64;
    let r = pcr_run(&[(0, 0, false), (40 * ms, 40 * tick_ms, false)]);
    assert_eq!(r.tr101290.pcr_repetition_error.count, 0);
    let r = pcr_run(&[
        (0, 0, false),
        (20 * ms, 20 * tick_ms, false),
        (61 * ms, 61 * tick_ms, false),
    ]);
    assert_eq!(r.tr101290.pcr_repetition_error.count, 1);
    assert_eq!(r.tr101290.pcr_repetition_error.first[0].datagram, 2);
    assert_eq!(r.tr101290.pcr_discontinuity_error.count, 0);
}

#[test]
fn pcr_step_outside_0_100ms_needs_the_flag() {
    let ms = 1_000_000u64;
    let tick_ms = 27_000u64;
    // Forward 150 ms and backwards, both unflagged.
    let r = pcr_run(&[
        (0, 1000 * tick_ms, false),
        (20 * ms, 1150 * tick_ms, false),
        (40 * ms, 500 * tick_ms, false),
    ]);
    assert_eq!(r.tr101290.pcr_discontinuity_error.count, 2);
    // Same with the flag: no error, and the pacing timeline restarts.
    let r = pcr_run(&[
        (0, 1000 * tick_ms, false),
        (20 * ms, 1150 * tick_ms, true),
        (40 * ms, 500 * tick_ms, true),
    ]);
    assert_eq!(r.tr101290.pcr_discontinuity_error.count, 0);
    assert_eq!(r.pacing.timeline.segments, 3);
}

#[test]
fn sync_loss_after_two_bad_sync_bytes() {
    let mut a = Analyzer::new(Framing::Udp);
    let mut g = Gen::new();
    for i in 0..20 {
        let (mut d, t) = g.datagram();
        if i == 10 {
            d[2 * 188] = 0x00;
            d[3 * 188] = 0x48;
        }
        if i == 15 {
            d[0] = 0x00; // a single bad byte: error, no loss
        }
        a.push(&d, src(1), t);
    }
    let r = a.report();
    assert_eq!(r.tr101290.sync_byte_error.count, 3);
    assert_eq!(r.tr101290.sync_loss.count, 1);
    assert_eq!(r.tr101290.sync_loss.first[0].datagram, 10);
    assert_eq!(r.tr101290.sync_byte_error.first[1].detail, "sync byte 0x48");
}

#[test]
fn pat_and_pmt_absence_over_half_a_second() {
    let mut a = Analyzer::new(Framing::Udp);
    let mut g = Gen::new();
    // 300 datagrams at 4.2 ms = 1.26 s; PAT/PMT removed between 0.2 s and 0.8 s.
    for _ in 0..300 {
        let (mut d, t) = g.datagram();
        let t_rel = t - BASE;
        if (200_000_000..800_000_000).contains(&t_rel) {
            for p in d.chunks_mut(188) {
                let pid = u16::from_be_bytes([p[1] & 0x1F, p[2]]);
                if pid == 0 || pid == PMT {
                    p[1] = 0x1F;
                    p[2] = 0xFF; // turn into a null packet
                }
            }
        }
        a.push(&d, src(1), t);
    }
    let r = a.report();
    assert_eq!(r.tr101290.pat_error.count, 1, "{:?}", r.tr101290.pat_error);
    assert_eq!(r.tr101290.pmt_error.count, 1);
    assert_eq!(r.tr101290.pmt_error.first[0].pid, Some(PMT));
    let t = r.tr101290.pat_error.first[0].t_s;
    assert!(t > 0.6 && t < 0.75, "{t}");
}

#[test]
fn pat_crc_error_is_reported() {
    let mut bad = pat();
    bad[8] ^= 0xFF;
    let p = build(
        Pkt {
            pid: 0,
            payload: true,
            ..Default::default()
        },
        Some(&bad),
    );
    let mut a = Analyzer::new(Framing::Udp);
    a.push(&p, src(1), BASE);
    let r = a.report();
    assert_eq!(r.tr101290.crc_error.count, 1);
    assert_eq!(r.tr101290.crc_error.first[0].pid, Some(0));
}

#[test]
fn sender_change_gap_and_cc_errors_at_the_change() {
    for drop in [0usize, 3] {
        let mut a = Analyzer::new(Framing::Udp);
        let mut g = Gen::new();
        let mut extra_ns = 0;
        for i in 0..200 {
            let (d, t) = g.datagram();
            if (100..100 + drop).contains(&i) {
                continue;
            }
            let from = if i < 100 { 1000 } else { 2000 };
            if i == 100 + drop {
                extra_ns = 25_000_000; // the new sender starts 25 ms late
            }
            a.push(&d, src(from), t + extra_ns);
        }
        let r = a.report();
        assert_eq!(r.sender_changes.count, 1);
        let c = &r.sender_changes.list[0];
        assert_eq!(c.from, "127.0.0.1:1000");
        assert_eq!(c.to, "127.0.0.1:2000");
        assert_eq!(c.datagram, 100);
        let expect_gap = (1 + drop) as f64 * 7.0 * ns_per_packet() / 1000.0 + 25_000.0;
        assert!(
            (c.gap_us - expect_gap).abs() < 0.01,
            "{} {expect_gap}",
            c.gap_us
        );
        assert_eq!(c.ts_packets_missing_est, Some(7 * drop as i64));
        assert_eq!(c.datagrams_missing_est, Some(drop as i64));
        if drop == 0 {
            assert_eq!(c.cc_errors, 0);
            assert_eq!(r.tr101290.cc_error.count, 0);
        } else {
            // 21 packets dropped: datagrams 100..103 hold packets 700..721; packet 700 is
            // a PAT, 701 a PMT, the rest video. PAT/PMT come again at 770, video at 721.
            assert_eq!(c.cc_error_pids, vec![VIDEO, 0, PMT]);
            assert_eq!(c.cc_errors, 3);
            assert_eq!(c.cc_lost_packets, 19 % 16 + 1 + 1);
            assert_eq!(r.tr101290.cc_error.count, 3);
        }
        assert_eq!(r.sources.len(), 2);
        assert_eq!(r.sources[1].datagrams, (100 - drop) as u64);
    }
}

#[test]
fn rtp_loss_duplicate_and_reorder() {
    let mut a = Analyzer::new(Framing::Rtp);
    let mut g = Gen::new();
    let mut frames = Vec::new();
    for i in 0..20u16 {
        let (d, t) = g.datagram();
        let mut f = RtpHeader_mp2t(100 + i);
        f.extend_from_slice(&d);
        frames.push((f, t));
    }
    // order: 0..5, skip 5, 6, 7, 7 again, 9, 8, 10..20
    let order = [
        0, 1, 2, 3, 4, 6, 7, 7, 9, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
    ];
    for (n, &i) in order.iter().enumerate() {
        let (f, _) = &frames[i];
        a.push(f, src(1), BASE + n as u64 * 4_000_000);
    }
    let r = a.report();
    let rtp = r.rtp.as_ref().unwrap();
    assert_eq!(rtp.packets, 20);
    assert_eq!(rtp.lost, 1);
    assert_eq!(rtp.duplicates, 1);
    assert_eq!(rtp.reordered, 1);
    assert_eq!(rtp.ssrc, Some(0x1234_5678));
    assert_eq!(rtp.payload_types, vec![(33, 20)]);
    // The TS inside sees the same problems.
    assert!(r.tr101290.cc_error.count > 0);
    assert_eq!(r.datagram_sizes.sizes, vec![(1316, 20)]);
}

#[allow(non_snake_case)]
fn RtpHeader_mp2t(seq: u16) -> Vec<u8> {
    rtp::RtpHeader::mp2t(seq, seq as u32 * 3000, 0x1234_5678)
        .emit()
        .to_vec()
}

#[test]
fn rtp_sender_change_reports_sequence_gap() {
    let mut a = Analyzer::new(Framing::Rtp);
    let mut g = Gen::new();
    for i in 0..10u16 {
        let (d, t) = g.datagram();
        if i == 5 || i == 6 {
            continue;
        }
        let mut f = RtpHeader_mp2t(i);
        f.extend_from_slice(&d);
        a.push(&f, src(if i < 5 { 1 } else { 2 }), t);
    }
    let r = a.report();
    assert_eq!(r.sender_changes.list[0].rtp_seq_missing, Some(2));
    assert_eq!(r.rtp.unwrap().lost, 2);
}

#[test]
fn garbage_is_counted_not_panicking() {
    let mut a = Analyzer::new(Framing::Rtp);
    a.push(&[], src(1), 0);
    a.push(&[0x80], src(1), 1);
    a.push(&[0x47; 188], src(1), 2);
    let mut f = RtpHeader_mp2t(1);
    f.extend_from_slice(&[0x47, 0xFF, 0xFF, 0x3F, 0xFF]); // AF length 255
    f.resize(12 + 188 + 50, 0x47);
    a.push(&f, src(1), 3);
    let r = a.report();
    assert_eq!(r.rtp.as_ref().unwrap().parse_errors.count, 3);
    assert_eq!(r.datagrams, 4);
    assert_eq!(r.datagram_sizes.partial_packets, 1);
    assert!(r.warnings[0].contains("udp://"), "{:?}", r.warnings);
    assert_eq!(r.tr101290.malformed_packet.count, 1);

    let mut u = Analyzer::new(Framing::Udp);
    u.push(&f, src(1), 0);
    assert!(u.report().warnings[0].contains("rtp://"));
}

#[test]
fn departure_error_of_a_jittered_stream_through_the_analyzer() {
    let mut a = Analyzer::new(Framing::Udp);
    let mut g = Gen::new();
    for i in 0..3000u64 {
        let (d, t) = g.datagram();
        // Every 4th datagram 200 us late.
        a.push(&d, src(1), t + if i % 4 == 3 { 200_000 } else { 0 });
    }
    let r = a.report();
    let d = &r.pacing.timeline.departure_error;
    assert!(d.p50_us < 0.1, "{d:?}");
    assert!((d.p90_us - 200.0).abs() < 0.1, "{d:?}");
    assert!((d.max_us - 200.0).abs() < 0.1);
}

#[test]
fn report_serialises_with_the_documented_top_level_fields() {
    let r = clean_run(10);
    let v = serde_json::to_value(&r).unwrap();
    for key in [
        "schema",
        "framing",
        "run",
        "first_rx_ns",
        "datagrams",
        "ts_packets",
        "datagram_sizes",
        "sources",
        "sender_changes",
        "gaps",
        "tr101290",
        "pids",
        "pacing",
        "rtp",
        "warnings",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["schema"], "tandem.recv/1");
    assert_eq!(v["framing"], "udp");
    assert!(v["pacing"]["departure_error"]["p50_us"].is_number());
    assert!(v["pacing"]["mdi"]["df_max_ms"].is_null());
    assert!(v["tr101290"]["cc_error"]["count"].is_number());
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn mutated_stream() -> impl Strategy<Value = Vec<(Vec<u8>, u64, u16)>> {
        // Real datagrams with random byte flips, truncations and clock jumps.
        proptest::collection::vec(
            (
                0usize..1316,
                any::<u8>(),
                0usize..1400,
                0u64..50_000_000,
                0u16..3,
            ),
            1..60,
        )
        .prop_map(|edits| {
            let mut g = Gen::new();
            edits
                .into_iter()
                .map(|(at, byte, len, dt, port)| {
                    let (mut d, t) = g.datagram();
                    d[at] = byte;
                    d.truncate(len.max(1));
                    (d, t.wrapping_sub(dt), port)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            datagrams in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..1500), any::<u64>()), 0..30),
            rtp in any::<bool>(),
        ) {
            let framing = if rtp { Framing::Rtp } else { Framing::Udp };
            let mut a = Analyzer::new(framing);
            for (d, t) in &datagrams {
                a.push(d, src(1), *t);
            }
            let r = a.report();
            prop_assert_eq!(r.datagrams, datagrams.len() as u64);
            prop_assert!(serde_json::to_string(&r).is_ok());
        }

        #[test]
        fn mutated_streams_never_panic(stream in mutated_stream(), rtp in any::<bool>()) {
            let framing = if rtp { Framing::Rtp } else { Framing::Udp };
            let mut a = Analyzer::new(framing);
            for (i, (d, t, port)) in stream.iter().enumerate() {
                let mut f = Vec::new();
                if rtp {
                    f.extend_from_slice(&RtpHeader_mp2t(i as u16 * 7));
                }
                f.extend_from_slice(d);
                a.push(&f, src(1000 + port), *t);
            }
            let r = a.report();
            prop_assert_eq!(r.datagrams, stream.len() as u64);
            prop_assert!(serde_json::to_string(&r).is_ok());
        }
    }
}
