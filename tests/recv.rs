//! `tandem recv` end to end on loopback multicast: a fixture is sent paced from this test
//! by two source sockets that hand over mid-stream, received by the real driver.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tandem::net::recv_socket::{open_recv_socket, run_on, RecvConfig};
use tandem::net::url::Dest;
use tandem::recv::rtp::RtpHeader;
use tandem::recv::{ClockSource, EndReason, Report};

const FIXTURE: &str = "fixtures/cbr-25fps.ts";

fn fixture() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; rebuild the fixtures with tools/make-assets.sh",
            path.display()
        )
    })
}

/// A group and port no other test (or parallel test binary) uses.
fn unique_dest(scheme: &str) -> Dest {
    static N: AtomicU16 = AtomicU16::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let group = Ipv4Addr::new(239, 255, 100 + (pid % 100) as u8, n as u8 + 1);
    let port = 30_000 + (pid % 20_000) as u16 + n;
    format!("{scheme}://{group}:{port}").parse().unwrap()
}

/// A loopback multicast sender: names its interface, TTL 1, loop on.
fn sender() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let r = socket2::SockRef::from(&s);
    r.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    r.set_multicast_ttl_v4(1).unwrap();
    r.set_multicast_loop_v4(true).unwrap();
    s
}

/// Receives `dest` in a thread until `expect` datagrams (or 10 s), while `send` runs.
fn receive_while(dest: Dest, expect: u64, capture: Option<PathBuf>, send: impl FnOnce()) -> Report {
    let sock = open_recv_socket(&dest, Ipv4Addr::LOCALHOST).unwrap();
    let cfg = RecvConfig {
        dest,
        iface: Ipv4Addr::LOCALHOST,
        duration: Some(Duration::from_secs(10)),
        expect_datagrams: Some(expect),
        capture,
    };
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let h = s.spawn(|| run_on(sock, &cfg, &stop).unwrap());
        send();
        h.join().unwrap()
    })
}

/// Sends datagrams 1 ms apart (absolute schedule, so the test stays short).
fn send_paced(sock: &UdpSocket, dest: SocketAddrV4, datagrams: &[Vec<u8>]) {
    let start = Instant::now();
    for (i, d) in datagrams.iter().enumerate() {
        let due = start + Duration::from_millis(i as u64);
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            thread::sleep(w);
        }
        sock.send_to(d, SocketAddr::V4(dest)).unwrap();
    }
}

const DATAGRAMS: usize = 240;
const HANDOVER: usize = 120;
const PAUSE_MS: u64 = 30;

/// Expected CC errors per PID when datagrams `HANDOVER..HANDOVER+drop` are not sent: a PID
/// shows one error when the number of its payload packets dropped is not a multiple of 16.
fn expected_cc_error_pids(ts: &[u8], drop: usize) -> Vec<u16> {
    let mut per_pid = std::collections::BTreeMap::<u16, usize>::new();
    for p in ts[HANDOVER * 1316..(HANDOVER + drop) * 1316].chunks(188) {
        let pid = u16::from_be_bytes([p[1] & 0x1F, p[2]]);
        if pid != 0x1FFF && p[3] & 0x10 != 0 {
            *per_pid.entry(pid).or_default() += 1;
        }
    }
    per_pid
        .into_iter()
        .filter(|&(_, n)| n % 16 != 0)
        .map(|(p, _)| p)
        .collect()
}

fn handover(drop: usize) -> (Report, Vec<u16>, SocketAddr, SocketAddr) {
    let ts = fixture();
    let datagrams: Vec<Vec<u8>> = ts
        .chunks(1316)
        .take(DATAGRAMS)
        .map(<[u8]>::to_vec)
        .collect();
    let dest = unique_dest("udp");
    let (a, b) = (sender(), sender());
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let report = receive_while(dest, (DATAGRAMS - drop) as u64, None, || {
        send_paced(&a, dest.addr, &datagrams[..HANDOVER]);
        thread::sleep(Duration::from_millis(PAUSE_MS));
        send_paced(&b, dest.addr, &datagrams[HANDOVER + drop..]);
    });
    (report, expected_cc_error_pids(&ts, drop), a_addr, b_addr)
}

#[test]
fn handover_without_loss_is_clean_and_the_gap_is_measured() {
    let (r, expected, a, b) = handover(0);
    assert!(expected.is_empty());
    let run = r.run.as_ref().unwrap();
    assert_eq!(run.clock, ClockSource::Kernel);
    assert_eq!(run.ended_by, EndReason::Expected);
    assert_eq!(r.datagrams, DATAGRAMS as u64);
    assert_eq!(r.datagram_sizes.non_1316, 0);
    assert_eq!(r.sender_changes.count, 1, "{:?}", r.sender_changes);
    let c = &r.sender_changes.list[0];
    assert_eq!(c.from, a.to_string());
    assert_eq!(c.to, b.to_string());
    assert_eq!(c.datagram, HANDOVER as u64);
    // The sender slept at least PAUSE_MS between its last and the next datagram.
    assert!(c.gap_us >= PAUSE_MS as f64 * 1000.0, "{c:?}");
    assert!(c.gap_us < 5e6);
    assert!(r.gaps.max_us >= c.gap_us);
    assert_eq!(c.cc_errors, 0);
    assert_eq!(c.datagrams_missing_est, Some(0), "{c:?}");
    assert_eq!(r.tr101290.cc_error.count, 0, "{:?}", r.tr101290.cc_error);
    assert_eq!(r.tr101290.sync_byte_error.count, 0);
    assert_eq!(r.sources.len(), 2);
    assert_eq!(r.sources[0].datagrams, HANDOVER as u64);
    assert!(r.pacing.timeline.pcr_pid.is_some());
}

#[test]
fn handover_with_loss_costs_one_cc_error_per_pid() {
    let drop = 5;
    let (r, expected, _, _) = handover(drop);
    assert!(!expected.is_empty());
    assert_eq!(r.datagrams, (DATAGRAMS - drop) as u64);
    let c = &r.sender_changes.list[0];
    let mut got = c.cc_error_pids.clone();
    got.sort_unstable();
    assert_eq!(got, expected, "{c:?}");
    assert_eq!(c.cc_errors, expected.len() as u64);
    assert_eq!(c.datagrams_missing_est, Some(drop as i64), "{c:?}");
    let est = c.ts_packets_missing_est.unwrap();
    assert!((est - 7 * drop as i64).abs() <= 2, "{c:?}");
    assert_eq!(r.tr101290.cc_error.count, expected.len() as u64);
    for p in &r.pids {
        let want = u64::from(expected.contains(&p.pid));
        assert_eq!(p.cc_errors, want, "pid {}", p.pid);
    }
    assert!(c.gap_us >= PAUSE_MS as f64 * 1000.0);
}

#[test]
fn rtp_stream_and_capture_round_trip() {
    let ts = fixture();
    let n = 100usize;
    let frames: Vec<Vec<u8>> = ts
        .chunks(1316)
        .take(n)
        .enumerate()
        .filter(|(i, _)| *i != 40) // one datagram lost
        .map(|(i, d)| {
            let seq = 65500u16.wrapping_add(i as u16);
            let mut f = RtpHeader::mp2t(seq, i as u32 * 378, 0xC0FFEE)
                .emit()
                .to_vec();
            f.extend_from_slice(d);
            f
        })
        .collect();
    let dest = unique_dest("rtp");
    let capture = std::env::temp_dir().join(format!("tandem-recv-test-{}.ts", std::process::id()));
    let tx = sender();
    let r = receive_while(dest, (n - 1) as u64, Some(capture.clone()), || {
        send_paced(&tx, dest.addr, &frames);
    });
    let rtp = r.rtp.as_ref().unwrap();
    assert_eq!(rtp.packets, 99);
    assert_eq!(rtp.expected, 100); // the sequence wraps at 65535 on the way
    assert_eq!(rtp.lost, 1);
    assert_eq!(rtp.duplicates, 0);
    assert_eq!(rtp.ssrc, Some(0xC0FFEE));
    assert_eq!(r.datagram_sizes.sizes, vec![(1316, 99)]);
    let got = std::fs::read(&capture).unwrap();
    let _ = std::fs::remove_file(&capture);
    let mut want = ts[..40 * 1316].to_vec();
    want.extend_from_slice(&ts[41 * 1316..n * 1316]);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "capture differs from the sent TS");
    assert_eq!(r.run.as_ref().unwrap().capture_bytes, want.len() as u64);
}

#[test]
fn cli_prints_json_and_exits_2_on_a_bad_interface() {
    let exe = env!("CARGO_BIN_EXE_tandem");
    let out = std::process::Command::new(exe)
        .args([
            "recv",
            "udp://239.255.1.1:5000",
            "--iface",
            "192.0.2.77",
            "--seconds",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("192.0.2.77"), "{err}");

    // A real run: the child joins, we send until it has what it expects.
    let dest = unique_dest("udp");
    let url = dest.to_string();
    let mut child = std::process::Command::new(exe)
        .args([
            "recv",
            &url,
            "--json",
            "--seconds",
            "10",
            "--expect-datagrams",
            "20",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ts = fixture();
    let tx = sender();
    let start = Instant::now();
    let mut i = 0usize;
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(10) {
        let d = &ts[(i % 500) * 1316..(i % 500 + 1) * 1316];
        tx.send_to(d, SocketAddr::V4(dest.addr)).unwrap();
        i += 1;
        thread::sleep(Duration::from_millis(2));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "tandem.recv/1");
    assert_eq!(v["run"]["ended_by"], "expected");
    assert_eq!(v["run"]["clock"], "kernel");
    assert!(v["datagrams"].as_u64().unwrap() >= 20);
}

/// Every fixture through the analyzer (no sockets): datagrams of 1316 bytes 4.2112 ms
/// apart (2.5 Mb/s), as a raw sender would emit the file.
fn analyze_file(name: &str) -> Report {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    let data = std::fs::read(&path).unwrap();
    let mut a = tandem::recv::Analyzer::new(tandem::net::url::Framing::Udp);
    let src = SocketAddr::from(([127, 0, 0, 1], 4000));
    for (i, d) in data.chunks(1316).enumerate() {
        a.push(d, src, 1_000_000_000 + i as u64 * 4_211_200);
    }
    a.report()
}

#[test]
fn fixtures_through_the_analyzer() {
    let r = analyze_file("cbr-25fps.ts");
    let t = &r.tr101290;
    let total = t.sync_loss.count
        + t.sync_byte_error.count
        + t.pat_error.count
        + t.cc_error.count
        + t.pmt_error.count
        + t.crc_error.count
        + t.pcr_repetition_error.count
        + t.pcr_discontinuity_error.count;
    assert_eq!(total, 0, "{t:?}");
    assert_eq!(r.pacing.timeline.segments, 1);
    // The file is CBR at 2.5 Mb/s, so the synthetic send times follow its PCRs.
    assert!(
        r.pacing.timeline.departure_error.p99_us < 5.0,
        "{:?}",
        r.pacing.timeline
    );
    let bps = r.pacing.timeline.bitrate_bps.unwrap();
    assert!((bps - 2_500_000.0).abs() < 2_500.0, "{bps}");

    let r = analyze_file("sync-loss-middle.ts");
    assert_eq!(r.tr101290.sync_loss.count, 1);
    assert!(r.tr101290.sync_byte_error.count > 100);

    let r = analyze_file("no-pcr.ts");
    assert_eq!(r.pacing.timeline.pcr_pid, None);
    assert!(r.warnings.iter().any(|w| w.contains("no PCR")));

    let r = analyze_file("pcr-own-pid.ts");
    assert_eq!(r.pacing.timeline.pcr_pid, Some(0x1FF));
    assert_eq!(r.tr101290.pcr_repetition_error.count, 0);

    let r = analyze_file("pcr-wrap-25fps.ts");
    assert_eq!(r.pacing.timeline.segments, 1);
    assert_eq!(r.tr101290.pcr_discontinuity_error.count, 0);
    assert!(r.pacing.timeline.departure_error.p99_us < 5.0);

    let r = analyze_file("truncated-tail.ts");
    assert_eq!(r.datagram_sizes.partial_packets, 1);

    let r = analyze_file("not-ts.bin");
    assert!(r.tr101290.sync_byte_error.count > 300);
    assert_eq!(r.tr101290.sync_loss.count, 0); // never acquired

    assert_eq!(analyze_file("empty.ts").datagrams, 0);

    let r = analyze_file("vbr-25fps.ts");
    assert_eq!(r.tr101290.cc_error.count, 0);
}
