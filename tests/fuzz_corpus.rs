//! Replays the checked-in fuzz corpora on stable (see docs/fuzzing.md): every file of
//! `fuzz/corpus/<target>/` and of `fuzz/regressions/<target>/` goes through the same body
//! the cargo-fuzz target runs (`tandem::fuzzing`), so a regression of a crash once found
//! fails here, in CI, without a nightly toolchain or libFuzzer.
//!
//! `write_seeds` (ignored) writes the seed inputs the corpora were minimised from:
//! `cargo test --test fuzz_corpus -- --ignored write_seeds` (into `fuzz/seeds/`, not
//! checked in).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tandem::failover::state::State;
use tandem::failover::wire::{self, Body, Header, MonitorCmd, Msg, SenderRole, SyncParams};
use tandem::fuzzing::{fuzz_key, TARGETS};
use tandem::index::{build_bytes, persist, AssetIdentity, BuildOptions};
use tandem::net::url::Framing;
use tandem::stream::{OutputStream, SessionParams};
use tandem::ts::packet::{Packet, PACKET_SIZE};
use tandem::ts::psi::{parse_pat, parse_pmt, SectionAssembler};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn replay(kind: &str, min_files: usize) {
    let mut total = 0;
    for &(name, body) in TARGETS {
        let dir = fuzz_dir().join(kind).join(name);
        let fs = files(&dir);
        assert!(
            fs.len() >= min_files,
            "{}: {} files, expected at least {min_files}",
            dir.display(),
            fs.len()
        );
        for f in fs {
            let data = std::fs::read(&f).expect("read corpus file");
            // A panic names the file: catch it to say which one, then fail.
            let r = std::panic::catch_unwind(|| body(&data));
            assert!(r.is_ok(), "{name}: {} panics", f.display());
            total += 1;
        }
    }
    eprintln!("{kind}: {total} inputs replayed");
}

#[test]
fn corpora_replay_without_panics() {
    // Every target has a corpus: a deleted or emptied one fails here.
    replay("corpus", 1);
}

#[test]
fn regressions_replay_without_panics() {
    replay("regressions", 0);
}

/// The corpora are live: some inputs of each get past the first checks (a corpus of
/// garbage would replay without a panic and prove nothing).
#[test]
fn corpora_reach_the_parsers() {
    let corpus = |t: &str| -> Vec<Vec<u8>> {
        files(&fuzz_dir().join("corpus").join(t))
            .iter()
            .map(|f| std::fs::read(f).expect("read"))
            .collect()
    };
    let key = fuzz_key();
    let count = |t: &str, ok: &dyn Fn(&[u8]) -> bool| corpus(t).iter().filter(|d| ok(d)).count();
    let opts = BuildOptions::default();
    assert!(count("ts_packet", &|d| build_bytes(d, &opts).is_ok()) >= 2);
    assert!(
        count("index_file", &|d| persist::decode(d, Path::new("c"))
            .is_ok())
            >= 1
    );
    assert!(count("psi_section", &|d| parse_pat(d).is_ok()) >= 1);
    assert!(count("psi_section", &|d| parse_pmt(d).is_ok()) >= 1);
    assert!(count("wire_message", &|d| wire::decode(d, &key, None).is_ok()) >= 3);
    assert!(count("recv_rtp", &|d| d.len() > 1316) >= 1);
    let file = Path::new("c.json");
    let text = |d: &[u8]| String::from_utf8_lossy(d).into_owned();
    assert!(
        count("playlist", &|d| tandem::playlist::parse_json(
            &text(d),
            file
        )
        .is_ok())
            >= 2
    );
    assert!(
        count("playlist", &|d| tandem::playlist::parse_m3u(&text(d), file)
            .is_ok())
            >= 1
    );
}

#[test]
fn every_target_has_a_cargo_fuzz_binary() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for &(name, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        let src = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&src).expect("fuzz target source");
        assert!(
            text.contains(&format!("tandem::fuzzing::{name}(data)")),
            "{} does not call tandem::fuzzing::{name}",
            src.display()
        );
    }
}

// ------------------------------------------------------------------------- seeds

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name),
    )
    .expect("fixture")
}

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = fuzz_dir().join("seeds").join(target);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(name), data).expect("write seed");
}

/// Aligned packets `from .. from + n` of a fixture (clipped to the file).
fn packets(data: &[u8], from: usize, n: usize) -> &[u8] {
    let a = (from * PACKET_SIZE).min(data.len());
    let b = ((from + n) * PACKET_SIZE).min(data.len());
    &data[a..b]
}

fn all_messages() -> Vec<Msg> {
    let header = Header {
        role: SenderRole::Primary,
        owner: true,
        sender_id: 7,
        boot_id: 1_700_000_000_000_000_000,
        session_id: 0x1234_5678_9abc_def0,
        epoch: 3,
        seq: 42,
        real_ns: 1_700_000_000_123_456_789,
    };
    let bodies = vec![
        Body::Heartbeat {
            state: State::Primary,
            last_index: Some(1234),
            last_index_send_real_ns: tandem::units::RealNs(1_700_000_000_100_000_000),
            position: tandem::units::Ticks27M(27_000_000),
        },
        Body::SyncRequest,
        Body::SyncParams(SyncParams {
            asset: AssetIdentity {
                size: 942_444,
                hash: 0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
            },
            asset_name: "fixtures/cbr-25fps.ts".into(),
            framing: Framing::Rtp,
            loop_count: 0,
            origin_real_ns: tandem::units::RealNs(1_700_000_001_000_000_000),
            origin_index: tandem::units::DatagramIndex(0),
            muted: SocketAddrV4::new(Ipv4Addr::new(239, 255, 42, 2), 5004),
            live: SocketAddrV4::new(Ipv4Addr::new(239, 255, 42, 1), 5004),
        }),
        Body::Status {
            state: State::SecondarySynchronized,
            locked: true,
            last_index: None,
        },
        Body::TimeRequest {
            t1: tandem::units::RealNs(11),
        },
        Body::TimeReply {
            t1: tandem::units::RealNs(11),
            t2: tandem::units::RealNs(22),
            t3: tandem::units::RealNs(33),
        },
        Body::FailedNotice {
            component: "sender".into(),
            reason: "send(2) failed: ENETUNREACH".into(),
            last_index: Some(99),
        },
        Body::Takeover {
            epoch: 4,
            from_index: Some(100),
        },
        Body::OwnershipQuery { nonce: 5 },
        Body::OwnershipReply {
            nonce: 5,
            state: State::Failed,
            on_air: false,
            epoch: 4,
        },
        Body::PlayRequest {
            asset_path: "assets/demo-25fps.ts".into(),
            start_real_ns: Some(1_700_000_002_000_000_000),
        },
        Body::StatusRequest,
        Body::StatusReply {
            json: r#"{"state":"Primary","epoch":3}"#.into(),
        },
        Body::MonitorCommand(MonitorCmd::Takeover),
        Body::MonitorCommand(MonitorCmd::Stop),
        Body::MonitorCommand(MonitorCmd::Fail),
        Body::HandOver {
            at_index: 123_456,
            epoch: 7,
        },
        Body::SwitchoverRequest,
        Body::ReloadRequest,
    ];
    bodies
        .into_iter()
        .map(|body| Msg { header, body })
        .collect()
}

#[test]
#[ignore = "writes fuzz/seeds/; run by hand when the corpora are rebuilt"]
fn write_seeds() {
    let ts_names = [
        "cbr-25fps.ts",
        "cbr-29.97fps.ts",
        "cbr-59.94fps.ts",
        "vbr-25fps.ts",
        "pcr-own-pid.ts",
        "pcr-wrap-25fps.ts",
        "pmt-change.ts",
        "no-pcr.ts",
        "sync-loss-middle.ts",
        "truncated-tail.ts",
    ];
    // ts_packet: the first 42 packets (6 datagrams) of each fixture, which hold the PAT,
    // the PMT and at least two PCRs; plus the places where something happens (byte
    // offsets from `tandem probe`).
    for name in ts_names {
        let d = fixture(name);
        write("ts_packet", &format!("{name}-head"), packets(&d, 0, 42));
    }
    let d = fixture("sync-loss-middle.ts");
    write(
        "ts_packet",
        "sync-loss-at-94000",
        &d[94_000 - 20 * 188..94_000 + 22 * 188],
    );
    let d = fixture("pmt-change.ts");
    write(
        "ts_packet",
        "pmt-change-at-486920",
        &d[486_920 - 20 * 188..486_920 + 22 * 188],
    );
    write(
        "ts_packet",
        "pat-change-at-519068",
        &d[519_068 - 20 * 188..519_068 + 22 * 188],
    );
    let d = fixture("truncated-tail.ts");
    write(
        "ts_packet",
        "truncated-tail-end",
        &d[d.len() - 42 * 188 + 100..],
    );
    write("ts_packet", "not-ts", &fixture("not-ts.bin")[..2000]);
    write("ts_packet", "empty", &[]);

    // pes_header: PES-starting packets (PUSI, payload 00 00 01) of each PID of two fixtures,
    // from their 4th byte on.
    for name in ["cbr-25fps.ts", "vbr-25fps.ts", "pcr-own-pid.ts"] {
        let d = fixture(name);
        let mut seen = std::collections::BTreeSet::new();
        for c in d.chunks_exact(PACKET_SIZE).take(3000) {
            let Ok(p) = Packet::new_checked(c) else {
                continue;
            };
            let pl = p.payload();
            if p.pusi() && pl.len() > 3 && pl[..3] == [0, 0, 1] {
                let k = (p.pid().value(), p.has_adaptation(), pl[7] >> 6);
                if seen.insert(k) {
                    write(
                        "pes_header",
                        &format!("{name}-pid{}-af{}-ptsdts{}", k.0, k.1 as u8, k.2),
                        &c[3..],
                    );
                }
            }
        }
    }

    // psi_section: the distinct PAT/PMT sections of the fixtures.
    let mut n = 0;
    let mut seen = std::collections::BTreeSet::new();
    for name in [
        "cbr-25fps.ts",
        "pmt-change.ts",
        "pcr-own-pid.ts",
        "vbr-25fps.ts",
    ] {
        let d = fixture(name);
        let mut asm = std::collections::BTreeMap::<u16, SectionAssembler>::new();
        for c in d.chunks_exact(PACKET_SIZE) {
            let Ok(p) = Packet::new_checked(c) else {
                continue;
            };
            // PAT, and the PMT PIDs ffmpeg uses (0x1000..).
            if p.pid().value() != 0 && p.pid().value() < 0x1000 || p.pid().value() == 0x1FFF {
                continue;
            }
            for sec in asm.entry(p.pid().value()).or_default().push(&p) {
                if seen.insert(sec.clone()) {
                    write("psi_section", &format!("{name}-section{n}"), &sec);
                    n += 1;
                }
            }
        }
    }

    // wire_message / wire_message_mac: every message kind, encoded by the crate's encoder.
    let key = fuzz_key();
    for (i, m) in all_messages().iter().enumerate() {
        let b = wire::encode(m, &key).expect("encode");
        let kind = b[5];
        write("wire_message", &format!("kind{kind:02}-{i}"), &b);
        let mut inner = b[5..52].to_vec();
        inner.extend_from_slice(&b[54..b.len() - 16]);
        write("wire_message_mac", &format!("kind{kind:02}-{i}"), &inner);
    }
    // ... and one with the session-derived key, one truncated.
    let m = &all_messages()[0];
    let b = wire::encode(m, &wire::Key::derive_from_session(m.header.session_id)).unwrap();
    write("wire_message", "derived-key", &b);
    write("wire_message", "truncated", &b[..30]);

    // recv_rtp: datagrams of real RTP sessions rendered by the output stream (the first
    // 12 datagrams over 3 fixtures, 1.1 ms apart), as records `len, src, dt` + datagram; one
    // session with a lost and a reordered datagram and a second sender.
    for name in ["cbr-25fps.ts", "vbr-25fps.ts", "pcr-wrap-25fps.ts"] {
        let d = fixture(name);
        let asset = packets(&d, 0, 700);
        let built = build_bytes(asset, &BuildOptions::default()).expect("build");
        let map = Arc::new(built.map);
        let out = OutputStream::new(
            map.clone(),
            SessionParams {
                session_id: "seed".into(),
                framing: Framing::Rtp,
                loops: None,
            },
        )
        .expect("stream");
        let mut dgs = Vec::new();
        for i in 0..12u64 {
            let mut pk = Vec::new();
            for j in i * 7..i * 7 + 7 {
                let (_, p) = out.locate(j);
                let o = map.packet_offset(p).unwrap() as usize;
                pk.extend_from_slice(&asset[o..o + PACKET_SIZE]);
            }
            let mut dg = Vec::new();
            out.render(i, &pk, &mut dg).expect("render");
            dgs.push(dg);
        }
        let record = |src: u8, dt: u16, dg: &[u8], v: &mut Vec<u8>| {
            v.extend_from_slice(&(dg.len() as u16).to_be_bytes());
            v.push(src);
            v.extend_from_slice(&dt.to_be_bytes());
            v.extend_from_slice(dg);
        };
        let mut v = Vec::new();
        for dg in &dgs {
            record(0, 1100, dg, &mut v);
        }
        write("recv_rtp", &format!("{name}-12"), &v);
        if name == "cbr-25fps.ts" {
            let mut v = Vec::new();
            for (i, dg) in dgs.iter().enumerate() {
                match i {
                    3 => continue,
                    5 => {
                        record(0, 1100, &dgs[6], &mut v);
                        record(0, 50, dg, &mut v);
                    }
                    6 => {}
                    9.. => record(1, 3000, dg, &mut v),
                    _ => record(0, 1100, dg, &mut v),
                }
            }
            write("recv_rtp", "cbr-25fps-loss-reorder-switch", &v);
            // Raw TS sent to an rtp:// receiver, and a clock step back.
            let mut v = Vec::new();
            record(0, 1000, &dgs[0][12..], &mut v);
            record(0x80, 500, &dgs[1], &mut v);
            write("recv_rtp", "raw-ts-and-clock-step", &v);
        }
    }
}
