//! End-to-end tests of `tandem play` on loopback multicast: determinism of two engines,
//! looping across the loop point, RTP headers, SDP opened by ffprobe, signals, bad input.
//!
//! Every test uses its own group and port (derived from the process id and a counter) and
//! its own copy of the fixture (the index is saved beside the asset).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tandem::io::load_or_build;
use tandem::net::sockets::receiver;
use tandem::net::url::Framing;
use tandem::stream::reader::DatagramSource;
use tandem::stream::rtp::{RtpHeader, RtpSession};
use tandem::stream::{OutputStream, SessionParams};
use tandem::ts::packet::{Cc, Packet, Pid, PACKET_SIZE};
use tandem::ts::pcr::{Pcr, HZ};
use tandem::ts::pes::timestamps;

const BIN: &str = env!("CARGO_BIN_EXE_tandem");

static N: AtomicU32 = AtomicU32::new(0);

/// A fresh group:port for one test.
fn group() -> SocketAddrV4 {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    SocketAddrV4::new(
        Ipv4Addr::new(239, 255, 120 + (pid % 100) as u8, (n % 250) as u8 + 1),
        40_000 + ((pid % 2_000) * 8 + n % 8) as u16,
    )
}

/// A fresh scratch directory.
fn scratch() -> PathBuf {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("tandem-play-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Copies a fixture into `dir` (optionally only its first `packets` packets).
fn copy_fixture(name: &str, dir: &Path, packets: Option<usize>) -> PathBuf {
    let mut bytes = std::fs::read(fixture(name)).unwrap();
    if let Some(p) = packets {
        bytes.truncate(p * PACKET_SIZE);
    }
    let to = dir.join(name);
    std::fs::write(&to, bytes).unwrap();
    to
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One received datagram.
struct Rx {
    from: SocketAddr,
    bytes: Vec<u8>,
    at: Instant,
}

/// Collects datagrams of `dest` on a thread until `idle` passes without one after the
/// first, or `limit` passes in total.
fn capture(
    dest: SocketAddrV4,
    idle: Duration,
    limit: Duration,
) -> std::thread::JoinHandle<Vec<Rx>> {
    let sock = receiver(dest, Ipv4Addr::LOCALHOST, Some(8 << 20)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut out: Vec<Rx> = Vec::new();
        let mut buf = vec![0u8; 65536];
        while start.elapsed() < limit {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => out.push(Rx {
                    from,
                    bytes: buf[..n].to_vec(),
                    at: Instant::now(),
                }),
                Err(_) => {
                    if out.last().is_some_and(|r| r.at.elapsed() > idle) {
                        break;
                    }
                }
            }
        }
        out
    })
}

fn play(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("play").args(args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn wait_output(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

/// The session as the library renders it, for comparison with the wire.
fn expected(
    asset: &Path,
    session_id: &str,
    framing: Framing,
    loops: Option<u64>,
) -> (Arc<OutputStream>, DatagramSource<std::fs::File>) {
    let map = load_or_build(asset, false).unwrap();
    let s = Arc::new(
        OutputStream::with_asset(
            Arc::new(map),
            SessionParams {
                session_id: session_id.into(),
                framing,
                loops,
            },
            &std::fs::File::open(asset).unwrap(),
        )
        .unwrap(),
    );
    let src = DatagramSource::with_default_plan(s.clone(), std::fs::File::open(asset).unwrap());
    (s, src)
}

#[test]
fn two_engines_with_the_same_parameters_send_identical_datagrams() {
    let dir = scratch();
    let asset = copy_fixture("cbr-25fps.ts", &dir, None);
    let dest = group();
    let url = format!("rtp://{dest}");
    let start = (unix_ms() + 1_500).to_string();
    let args = [
        asset.to_str().unwrap(),
        "--dest",
        &url,
        "--start-at",
        &start,
        "--session-id",
        "determinism",
    ];
    // Build the index first so both engines start from a saved map.
    let (s, mut src) = expected(&asset, "determinism", Framing::Rtp, Some(1));
    let count = s.datagram_count().unwrap();
    let cap = capture(dest, Duration::from_millis(1_500), Duration::from_secs(20));
    let a = play(&args).spawn().unwrap();
    let b = play(&args).spawn().unwrap();
    let (oa, ob) = (wait_output(a), wait_output(b));
    assert_eq!(
        oa.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&oa.stderr)
    );
    assert_eq!(
        ob.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ob.stderr)
    );
    let got = cap.join().unwrap();
    let mut by_src: HashMap<SocketAddr, Vec<&Rx>> = HashMap::new();
    for r in &got {
        by_src.entry(r.from).or_default().push(r);
    }
    assert_eq!(by_src.len(), 2, "two senders expected");
    let seqs: Vec<&Vec<&Rx>> = by_src.values().collect();
    assert_eq!(seqs[0].len() as u64, count);
    assert_eq!(seqs[1].len() as u64, count);
    let mut want = Vec::new();
    let mut skew = Vec::new();
    for (i, (x, y)) in seqs[0].iter().zip(seqs[1].iter()).enumerate() {
        assert_eq!(x.bytes, y.bytes, "datagram {i} differs");
        src.render(i as u64, &mut want).unwrap();
        assert_eq!(x.bytes, want, "datagram {i} is not the session's");
        skew.push(if x.at > y.at {
            x.at - y.at
        } else {
            y.at - x.at
        });
    }
    check_rtp(
        &seqs[0]
            .iter()
            .map(|r| r.bytes.as_slice())
            .collect::<Vec<_>>(),
        &s,
        "determinism",
        0,
    );
    skew.sort();
    eprintln!(
        "lockstep: |arrival A - arrival B| p50 {:?} p90 {:?} max {:?} (reported, not asserted)",
        skew[skew.len() / 2],
        skew[skew.len() * 9 / 10],
        skew.last().unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// RFC 3550 §5.1 / RFC 2250 header fields of consecutive datagrams from `first`.
fn check_rtp(datagrams: &[&[u8]], s: &OutputStream, session_id: &str, first: u64) {
    let r = RtpSession::from_session_id(session_id);
    for (n, d) in datagrams.iter().enumerate() {
        let i = first + n as u64;
        assert_eq!(d[0] >> 6, 2, "version");
        let (h, payload) = RtpHeader::parse(d).unwrap();
        assert_eq!(h.payload_type, 33);
        assert!(!h.marker);
        assert_eq!(h.ssrc, r.ssrc);
        assert_eq!(h.sequence, r.sequence_base.wrapping_add(i as u16));
        let ts = r
            .timestamp_base
            .wrapping_add((s.departure_ticks(i) / 300) as u32);
        assert_eq!(h.timestamp, ts, "timestamp of datagram {i}");
        assert_eq!(payload.len() % PACKET_SIZE, 0);
        if Some(i + 1) != s.datagram_count() {
            assert_eq!(payload.len(), 7 * PACKET_SIZE);
        }
    }
}

/// The first packet `c >= from` where the video PID starts a PES and every other PID's
/// next packet starts a unit too: a cut there leaves no partial PES at the loop point.
fn clean_cut(bytes: &[u8], video: Pid, from: usize) -> usize {
    let pk: Vec<(Pid, bool)> = bytes
        .chunks_exact(PACKET_SIZE)
        .map(|b| {
            let p = Packet::new_checked(b).unwrap();
            (p.pid(), p.pusi())
        })
        .collect();
    let pids: std::collections::HashSet<Pid> = pk.iter().map(|x| x.0).collect();
    (from..pk.len())
        .find(|&c| {
            if pk[c] != (video, true) {
                return false;
            }
            let mut seen = std::collections::HashSet::new();
            for &(p, u) in &pk[c..] {
                if p == Pid::NULL || !seen.insert(p) {
                    continue;
                }
                if !u {
                    return false;
                }
                if seen.len() + 1 >= pids.len() {
                    break;
                }
            }
            true
        })
        .expect("a clean cut point")
}

#[test]
fn looped_playout_is_continuous_across_the_loop_point_and_decodes() {
    let dir = scratch();
    let full = std::fs::read(fixture("cbr-25fps.ts")).unwrap();
    let map = load_or_build(&copy_fixture("cbr-25fps.ts", &dir, None), false).unwrap();
    let video = map.video_pid.unwrap();
    let cut = clean_cut(&full, video, 800); // ~0.5 s
    let asset = copy_fixture("cbr-25fps.ts", &dir, Some(cut));
    let dest = group();
    let url = format!("udp://{dest}");
    let cap = capture(dest, Duration::from_millis(1_000), Duration::from_secs(20));
    let out = play(&[asset.to_str().unwrap(), "--dest", &url, "--loop=2"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = cap.join().unwrap();
    // The second pass drops the null packets its head would send late (the video cadence
    // loop, `stream::cadence`): the library says how many packets the session has.
    let (s, _) = expected(&asset, "count", Framing::Udp, Some(2));
    assert!(
        s.loop_plan().cadence,
        "the cut asset loops by its video cadence"
    );
    let total = s.total_packets().unwrap();
    assert!(total <= 2 * cut as u64 && total > 2 * cut as u64 - 100);
    assert_eq!(got.len() as u64, total.div_ceil(7));
    assert!(got[..got.len() - 1].iter().all(|r| r.bytes.len() == 1316));
    let ts: Vec<u8> = got.iter().flat_map(|r| r.bytes.clone()).collect();
    assert_eq!(ts.len() as u64, total * PACKET_SIZE as u64);
    let mut video_pts = Vec::new();

    // TR 101 290 1.4 (CC), 2.3b (PCR step 0..100 ms), PTS advancing, across the loop point.
    let mut cc: HashMap<Pid, Cc> = HashMap::new();
    let mut last_pcr: Option<(usize, Pcr)> = None;
    let mut last_pts: HashMap<Pid, u64> = HashMap::new();
    let mut pcr_steps_at_loop = vec![];
    for (j, b) in ts.chunks_exact(PACKET_SIZE).enumerate() {
        let p = Packet::new_checked(b).unwrap();
        if p.pid() != Pid::NULL && p.has_payload() {
            if let Some(prev) = cc.insert(p.pid(), p.cc()) {
                assert!(
                    p.cc().follows(prev),
                    "CC error on PID {} at packet {j}",
                    p.pid()
                );
            }
        }
        if p.pid() == map.pcr_pid {
            if let Some(pcr) = p.pcr() {
                assert!(!p.discontinuity());
                if let Some((jp, prev)) = last_pcr {
                    let step = pcr.ticks_since(prev);
                    assert!(step > 0 && step <= HZ / 10, "PCR step {step} at packet {j}");
                    if jp < cut && j >= cut {
                        pcr_steps_at_loop.push(step);
                    }
                }
                last_pcr = Some((j, pcr));
            }
        }
        if p.pid() == video {
            if let Some(pts) = timestamps(&p).pts {
                video_pts.push(pts);
                if let Some(prev) = last_pts.insert(p.pid(), pts) {
                    assert!(pts > prev, "video PTS not advancing at packet {j}");
                }
            }
        }
    }
    // The frame cadence holds across the loop point: the next pass's first frame is
    // presented exactly one frame (40 ms, 3600 x 1/90 kHz) after the last of the first.
    video_pts.sort_unstable();
    for w in video_pts.windows(2) {
        assert_eq!(w[1] - w[0], 3600, "video PTS step across the capture");
    }
    assert_eq!(
        pcr_steps_at_loop.len(),
        1,
        "one PCR step across the loop point"
    );

    // ffprobe decodes the whole capture without an error, both passes.
    let cap_path = dir.join("capture.ts");
    std::fs::write(&cap_path, &ts).unwrap();
    let frames = |path: &Path| -> (String, String) {
        let o = Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-show_entries"])
            .arg("stream=codec_type,codec_name,nb_read_frames")
            .args(["-of", "compact"])
            .arg(path)
            .output()
            .expect("ffprobe is installed");
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (stdout, stderr) = frames(&cap_path);
    assert_eq!(stderr.trim(), "", "ffprobe reported errors");
    assert!(stdout.contains("codec_name=h264"), "{stdout}");
    assert!(stdout.contains("codec_name=aac"), "{stdout}");
    let (single, _) = frames(&asset);
    let nb = |s: &str, kind: &str| -> u64 {
        s.lines()
            .find(|l| l.contains(&format!("codec_type={kind}")))
            .and_then(|l| l.rsplit("nb_read_frames=").next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(nb(&single, "video") > 0);
    assert_eq!(
        nb(&stdout, "video"),
        2 * nb(&single, "video"),
        "{stdout} vs {single}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sdp_is_written_and_opened_by_ffprobe() {
    if Command::new("ffprobe").arg("-version").output().is_err() {
        eprintln!("ffprobe not installed; skipping");
        return;
    }
    let dir = scratch();
    let asset = copy_fixture("cbr-25fps.ts", &dir, None);
    // ffmpeg joins multicast groups on the default interface, not loopback: use unicast.
    let port = group().port() + 1000;
    let url = format!("rtp://127.0.0.1:{port}");
    let sdp = dir.join("session.sdp");
    let start = (unix_ms() + 2_000).to_string();
    let child = play(&[
        asset.to_str().unwrap(),
        "--dest",
        &url,
        "--sdp",
        sdp.to_str().unwrap(),
        "--start-at",
        &start,
    ])
    .spawn()
    .unwrap();
    let t0 = Instant::now();
    while !std::fs::read_to_string(&sdp).is_ok_and(|s| s.contains("a=rtpmap")) {
        assert!(t0.elapsed() < Duration::from_secs(10), "no SDP written");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&sdp).unwrap();
    assert!(text.starts_with("v=0\r\n"));
    assert!(text.contains(&format!("m=video {port} RTP/AVP 33\r\n")));
    assert!(text.contains("a=rtpmap:33 MP2T/90000\r\n"));
    assert!(text.contains("c=IN IP4 127.0.0.1\r\n"));
    let probe = Command::new("timeout")
        .args([
            "15",
            "ffprobe",
            "-v",
            "error",
            "-protocol_whitelist",
            "file,udp,rtp",
        ])
        .args(["-show_entries", "stream=codec_name", "-of", "compact"])
        .arg(&sdp)
        .output()
        .unwrap();
    let out = wait_output(child);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert!(stdout.contains("codec_name=h264"), "{stdout}");
    assert!(stdout.contains("codec_name=aac"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn signals_stop_cleanly_with_a_summary() {
    let dir = scratch();
    let asset = copy_fixture("cbr-25fps.ts", &dir, None);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let dest = group();
        let url = format!("udp://{dest}");
        let cap = capture(dest, Duration::from_millis(700), Duration::from_secs(20));
        let first = receiver(dest, Ipv4Addr::LOCALHOST, None).unwrap();
        first
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let child = play(&[asset.to_str().unwrap(), "--dest", &url, "--loop"])
            .spawn()
            .unwrap();
        // Signalled once it is on air (a start-up slowed by a loaded machine is not a
        // failure to stop).
        let mut b = [0u8; 2048];
        first.recv(&mut b).expect("the first datagram within 10 s");
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: kill(2) on our own child's pid with a valid signal number.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let t0 = Instant::now();
        let out = wait_output(child);
        assert!(t0.elapsed() < Duration::from_secs(5), "slow to stop");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let sent: u64 = stdout
            .strip_prefix("sent ")
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no summary: {stdout}"));
        assert!(stdout.contains("late wakes"), "{stdout}");
        assert!(stdout.contains("max lateness"), "{stdout}");
        let got = cap.join().unwrap();
        assert!(sent > 0);
        assert_eq!(
            got.len() as u64,
            sent,
            "every datagram counted was received"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn start_in_the_past_joins_the_session_in_progress() {
    let dir = scratch();
    let asset = copy_fixture("cbr-25fps.ts", &dir, None);
    let (s, mut src) = expected(&asset, "join", Framing::Rtp, None);
    let dest = group();
    let url = format!("rtp://{dest}");
    let cap = capture(dest, Duration::from_millis(500), Duration::from_secs(20));
    let child = play(&[
        asset.to_str().unwrap(),
        "--dest",
        &url,
        "--loop",
        "--session-id",
        "join",
        "--start-at",
        &(unix_ms() - 7_000).to_string(),
    ])
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    // SAFETY: kill(2) on our own child's pid with a valid signal number.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = wait_output(child);
    assert_eq!(out.status.code(), Some(0));
    let got = cap.join().unwrap();
    assert!(!got.is_empty());
    let r = RtpSession::from_session_id("join");
    let (h, _) = RtpHeader::parse(&got[0].bytes).unwrap();
    let first = h.sequence.wrapping_sub(r.sequence_base) as u64;
    // 7 s into an endless loop of a 3 s asset: the third pass (loose bound on timing).
    let per_sec = s.map().datagram_count() as f64 / (s.map().loop_period as f64 / HZ as f64);
    assert!(
        first as f64 > 5.0 * per_sec && (first as f64) < 9.0 * per_sec,
        "joined at {first}"
    );
    let mut want = Vec::new();
    for (n, rx) in got.iter().enumerate() {
        src.render(first + n as u64, &mut want).unwrap();
        assert_eq!(rx.bytes, want);
    }
    check_rtp(
        &got.iter().map(|r| r.bytes.as_slice()).collect::<Vec<_>>(),
        &s,
        "join",
        first,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let dir = scratch();
    let good = copy_fixture("cbr-25fps.ts", &dir, None);
    let good = good.to_str().unwrap();
    let missing = dir.join("missing.ts");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                missing.to_str().unwrap().into(),
                "--dest".into(),
                "udp://239.255.1.1:5000".into(),
            ],
            "cannot read",
        ),
        (
            vec![
                copy_fixture("empty.ts", &dir, None)
                    .to_str()
                    .unwrap()
                    .into(),
                "--dest".into(),
                "udp://239.255.1.1:5000".into(),
            ],
            "empty",
        ),
        (
            vec![
                copy_fixture("not-ts.bin", &dir, None)
                    .to_str()
                    .unwrap()
                    .into(),
                "--dest".into(),
                "udp://239.255.1.1:5000".into(),
            ],
            "not an MPEG-TS",
        ),
        (
            vec![
                copy_fixture("no-pcr.ts", &dir, None)
                    .to_str()
                    .unwrap()
                    .into(),
                "--dest".into(),
                "udp://239.255.1.1:5000".into(),
            ],
            "PCR",
        ),
        (
            vec![good.into(), "--dest".into(), "udp://239.255.1.1".into()],
            "bad destination",
        ),
        (
            vec![
                good.into(),
                "--dest".into(),
                "http://239.255.1.1:5000".into(),
            ],
            "bad destination",
        ),
        (
            vec![good.into(), "--dest".into(), "udp://239.255.1.1:0".into()],
            "bad destination",
        ),
        (
            vec![
                good.into(),
                "--dest".into(),
                "udp://239.255.1.1:5000".into(),
                "--iface".into(),
                "198.51.100.77".into(),
            ],
            "198.51.100.77",
        ),
        (
            vec![
                good.into(),
                "--dest".into(),
                "udp://239.255.1.1:5000".into(),
                "--iface".into(),
                "nosuchif0".into(),
            ],
            "nosuchif0",
        ),
        (
            vec![
                good.into(),
                "--dest".into(),
                "udp://239.255.1.1:5000".into(),
                "--sdp".into(),
                dir.join("x.sdp").to_str().unwrap().into(),
            ],
            "--sdp",
        ),
        (
            vec![
                good.into(),
                "--dest".into(),
                "udp://239.255.1.1:5000".into(),
                "--start-at".into(),
                "1000".into(),
            ],
            "already over",
        ),
    ];
    for (args, needle) in cases {
        let out = Command::new(BIN).arg("play").args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("tandem: "), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: want '{needle}' in {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    // Flag errors from clap also exit 2.
    let out = Command::new(BIN)
        .args([
            "play",
            good,
            "--dest",
            "udp://239.255.1.1:5000",
            "--ttl",
            "300",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn departure_timeline_has_no_burst_or_stall_on_edge_case_assets() {
    let dir = scratch();
    for (name, cbr) in [
        ("sync-loss-middle.ts", true),
        ("pcr-wrap-25fps.ts", true),
        ("truncated-tail.ts", true),
        ("pcr-own-pid.ts", true),
        ("pmt-change.ts", true),
        ("cbr-59.94fps.ts", true),
        ("vbr-25fps.ts", false),
    ] {
        let asset = copy_fixture(name, &dir, None);
        let (s, _) = expected(&asset, "edge", Framing::Udp, Some(2));
        let count = s.datagram_count().unwrap();
        let gaps: Vec<u64> = (1..count)
            .map(|i| s.departure_ticks(i) - s.departure_ticks(i - 1))
            .collect();
        let mut sorted = gaps.clone();
        sorted.sort();
        let median = sorted[sorted.len() / 2];
        let (min, max) = (sorted[0], *sorted.last().unwrap());
        eprintln!("{name}: datagram spacing min {min} median {median} max {max} ticks");
        assert!(min > 0, "{name}: two datagrams due at once (burst)");
        // Frame boundaries (frame-aligned reads, `--switch-at frame`) all the way through,
        // also after a PMT moved the video PID: never more than two frames apart.
        let one_pass = count / 2;
        let frame_ticks = s.map().frame_ticks().unwrap();
        for k in (0..one_pass - 20).step_by(10) {
            let b = s.next_boundary(k, tandem::stream::BoundaryKind::Frame);
            let dt = s.departure_ticks(b) - s.departure_ticks(k);
            assert!(
                dt <= 2 * frame_ticks,
                "{name}: next frame start after datagram {k} is {dt} ticks later"
            );
        }
        if cbr {
            // Constant rate, also across the sync loss, the PCR wrap and the loop point.
            assert!(min * 10 >= median * 8, "{name}: burst ({min} vs {median})");
            assert!(max * 10 <= median * 11, "{name}: stall ({max} vs {median})");
        } else {
            assert!(max <= HZ / 10, "{name}: stall of {max} ticks");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sync_loss_asset_plays_its_valid_packets() {
    let dir = scratch();
    let asset = copy_fixture("sync-loss-middle.ts", &dir, None);
    let map = load_or_build(&asset, false).unwrap();
    assert!(map.segments.len() > 1, "fixture has a sync loss");
    let bytes = std::fs::read(&asset).unwrap();
    let valid: Vec<u8> = map
        .segments
        .iter()
        .flat_map(|sg| {
            let a = sg.byte_offset as usize;
            bytes[a..a + sg.packets as usize * PACKET_SIZE].to_vec()
        })
        .collect();
    let dest = group();
    let url = format!("udp://{dest}");
    let cap = capture(dest, Duration::from_millis(1_000), Duration::from_secs(20));
    let out = play(&[asset.to_str().unwrap(), "--dest", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let got: Vec<u8> = cap
        .join()
        .unwrap()
        .into_iter()
        .flat_map(|r| r.bytes)
        .collect();
    assert_eq!(got.len(), valid.len());
    assert!(got == valid, "output is not the asset's valid packets");
    let _ = std::fs::remove_dir_all(&dir);
}
