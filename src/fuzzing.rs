//! Fuzz bodies: one plain function per cargo-fuzz target (`fuzz/fuzz_targets/*.rs`), so the
//! fuzzer and the stable replay test (`tests/fuzz_corpus.rs`) run exactly the same code.
//!
//! Each body feeds arbitrary bytes to the crate's public parsing entry points and checks the
//! properties every input must keep: nothing panics (bad input gets a typed error, as
//! `docs/architecture.md` promises), and what is accepted survives a round trip through the
//! crate's own encoder. A body panics (an `assert!`) only when such a property fails; the
//! fuzzer reports that as a crash. See `docs/fuzzing.md`.
//!
//! Where a checksum or MAC would stop almost every mutated input before the parser proper,
//! the body also runs the input with that check made to pass (CRC-32/MPEG-2 of a PSI
//! section recomputed, the offset-map file's length and XXH3-64 recomputed, the sync message
//! signed with [`FUZZ_KEY`]), so the code behind the check is fuzzed too.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::failover::wire::{self, Key, ReplayGuard, HEADER_LEN, MAC_LEN, MAGIC, VERSION};
use crate::index::{build_bytes, persist, BuildOptions, OffsetMap};
use crate::net::url::Framing;
use crate::recv::Analyzer;
use crate::stream::rtp::RtpHeader;
use crate::stream::{BoundaryKind, OutputStream, SessionParams};
use crate::ts::packet::{edit, Packet, PACKET_SIZE, SYNC_BYTE};
use crate::ts::pcr::{pts_add, Pcr, PCR_MODULUS, PTS_MODULUS};
use crate::ts::{pes, psi};

/// The shared secret the wire targets sign and verify with (test-only; never a real key).
pub const FUZZ_KEY: &[u8] = b"tandem fuzzing key, not a secret";

/// The key made from [`FUZZ_KEY`].
pub fn fuzz_key() -> Key {
    Key::from_bytes(FUZZ_KEY).expect("FUZZ_KEY is longer than 16 bytes")
}

/// A fuzz body.
pub type Body = fn(&[u8]);

/// Every target: its name (the directory under `fuzz/corpus/`) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("ts_packet", ts_packet),
    ("pes_header", pes_header),
    ("psi_section", psi_section),
    ("index_file", index_file),
    ("wire_message", wire_message),
    ("wire_message_mac", wire_message_mac),
    ("recv_rtp", recv_rtp),
    ("playlist", playlist),
];

// ------------------------------------------------------------------------- TS packets

/// Reads every field of one checked packet and edits a copy (ISO/IEC 13818-1 §2.4.3.2 -
/// §2.4.3.5: header, adaptation field, PCR; §2.4.3.6 - §2.4.3.7: PES timestamps).
fn one_packet(chunk: &[u8]) {
    let Ok(p) = Packet::new_checked(chunk) else {
        return;
    };
    let _ = (p.tei(), p.pusi(), p.pid(), p.scrambled(), p.cc());
    let _ = (p.discontinuity(), p.random_access(), p.has_adaptation());
    assert!(p.payload().len() <= PACKET_SIZE - 4);
    let pcr = p.pcr();
    if let Some(pcr) = pcr {
        assert!(pcr.ticks() < PCR_MODULUS);
    }
    let ts = pes::timestamps(&p);
    for v in [ts.pts, ts.dts].into_iter().flatten() {
        assert!(v < PTS_MODULUS);
    }
    let mut copy = [0u8; PACKET_SIZE];
    copy.copy_from_slice(p.bytes());
    edit::set_cc(&mut copy, p.cc().add(5));
    let moved = Pcr::from_ticks(PCR_MODULUS - 1);
    assert_eq!(edit::set_pcr(&mut copy, moved), pcr.is_some());
    let q = Packet::new_checked(&copy).expect("edits keep a packet valid");
    assert_eq!(q.cc(), p.cc().add(5));
    assert_eq!(q.pcr(), pcr.map(|_| moved));
}

/// `ts_packet`: the bytes as a transport stream. Every 188-byte slice goes through
/// [`Packet::new_checked`] and its accessors; the whole input goes through the streaming
/// index build ([`build_bytes`]: sync search, PAT/PMT, PCR timeline, frames), the probe
/// figures, the offset-map file round trip and the output stream's loop rewriting of the
/// first datagrams of passes 0 and 1.
pub fn ts_packet(data: &[u8]) {
    for chunk in data.chunks(PACKET_SIZE) {
        one_packet(chunk);
    }
    let opts = BuildOptions {
        hash: true,
        program: None,
    };
    let Ok(built) = build_bytes(data, &opts) else {
        return;
    };
    let map = &built.map;
    assert_eq!(
        persist::check(map),
        Ok(()),
        "a built map passes the load check"
    );
    let stamp = persist::SourceStamp {
        size: data.len() as u64,
        mtime_ns: 0,
    };
    let bytes = persist::encode(map, &stamp);
    let (back, _) = persist::decode(&bytes, Path::new("fuzz")).expect("own encoding decodes");
    assert_eq!(&back, map);
    let probe = crate::probe::analyse(&built);
    let _ = serde_json::to_string(&probe);
    render_some(map, data);
}

/// Renders the first datagrams of the first two passes of a session over `map` (RTP
/// framing, two loops) from `asset`, as the engine does.
fn render_some(map: &OffsetMap, asset: &[u8]) {
    let params = SessionParams {
        session_id: "fuzz".into(),
        framing: Framing::Rtp,
        loops: Some(2),
    };
    // With the asset at hand, as `play` and the servers build it: the loop plan may drop the
    // join's late null packets and the audio trim rewrites the last audio PES of a pass.
    let Ok(out) = OutputStream::with_asset(Arc::new(map.clone()), params, &asset.to_vec()) else {
        return;
    };
    let per_pass = map.datagram_count();
    let mut buf = Vec::new();
    for i in [0, 1, per_pass.saturating_sub(1), per_pass, per_pass + 1] {
        let n = out.packets_in(i) as u64;
        if n == 0 {
            continue;
        }
        let mut pkts = Vec::new();
        for j in i * 7..i * 7 + n {
            let (_, p) = out.locate(j);
            let Some(off) = map.packet_offset(p) else {
                return;
            };
            let Some(b) = usize::try_from(off)
                .ok()
                .and_then(|o| asset.get(o..o + PACKET_SIZE))
            else {
                return;
            };
            pkts.extend_from_slice(b);
        }
        // The map was built from `asset`, so every packet it names starts with 0x47.
        out.render(i, &pkts, &mut buf)
            .expect("datagrams of a map built from these bytes render");
        assert_eq!(buf.len(), out.datagram_len(i));
        for pkt in buf[out.header_len()..].chunks(PACKET_SIZE) {
            assert!(
                Packet::new_checked(pkt).is_ok(),
                "a rendered packet (loop rewriting, audio trim) is a valid TS packet"
            );
        }
        let _ = (out.departure_ns(i), out.flags(i));
    }
}

/// `pes_header`: the input is a TS packet from its fourth byte on (the
/// `adaptation_field_control`/`continuity_counter` byte, then the adaptation field and
/// payload), behind a header with `payload_unit_start_indicator` set, padded with 0xFF to
/// 188 bytes; so the PES header parser (ISO/IEC 13818-1 §2.4.3.6, table 2-21) is always
/// reached. Reads the PTS/DTS, shifts them and checks the shift by reading them again.
pub fn pes_header(data: &[u8]) {
    let mut pkt = [0xFFu8; PACKET_SIZE];
    pkt[..3].copy_from_slice(&[SYNC_BYTE, 0x41, 0x00]);
    let n = data.len().min(PACKET_SIZE - 3);
    pkt[3..3 + n].copy_from_slice(&data[..n]);
    // The trailing bytes (if any) pick the shift.
    let mut d = [0u8; 8];
    let tail = data.get(PACKET_SIZE - 3..).unwrap_or(&[]);
    let k = tail.len().min(8);
    d[..k].copy_from_slice(&tail[..k]);
    let delta = u64::from_le_bytes(d) % PTS_MODULUS;
    one_packet(&pkt);
    let Ok(p) = Packet::new_checked(&pkt) else {
        assert!(!pes::shift_timestamps(&mut pkt.clone(), delta));
        return;
    };
    let before = pes::timestamps(&p);
    let mut shifted = pkt;
    let changed = pes::shift_timestamps(&mut shifted, delta);
    assert_eq!(changed, before.pts.is_some() || before.dts.is_some());
    let q = Packet::new_checked(&shifted).expect("a shift keeps a packet valid");
    let after = pes::timestamps(&q);
    assert_eq!(after.pts, before.pts.map(|v| pts_add(v, delta)));
    assert_eq!(after.dts, before.dts.map(|v| pts_add(v, delta)));
    // Only the timestamp fields may change.
    assert_eq!((q.pid(), q.cc()), (p.pid(), p.cc()));
    assert_eq!(q.payload().len(), p.payload().len());
}

// ------------------------------------------------------------------------- PSI

fn parse_section(sec: &[u8]) {
    let checked = psi::checked_section(sec);
    if let Ok(s) = checked {
        let id = psi::SectionId::of(s);
        if let Some(id) = id {
            let _ = id.applies();
        }
    }
    let pat = psi::parse_pat(sec);
    let pmt = psi::parse_pmt(sec);
    if checked.is_err() {
        assert!(pat.is_err() && pmt.is_err());
    }
    if let Ok(pmt) = pmt {
        for s in &pmt.streams {
            let _ = (s.is_video(), s.kind());
        }
    }
}

/// `psi_section`: the input as one PSI section (ISO/IEC 13818-1 §2.4.4: PAT §2.4.4.3, PMT
/// §2.4.4.8, CRC-32/MPEG-2 Annex A) as it is, then with its `section_length` set to the
/// input's length and a correct `CRC_32` appended (so the table parsers are reached), then
/// cut into TS packets (`pointer_field` 0, §2.4.4.1) through the section assembler.
pub fn psi_section(data: &[u8]) {
    parse_section(data);
    if data.len() >= 3 {
        let mut s = data[..data.len().min(0xFFF + 3 - 4)].to_vec();
        let len = s.len() - 3 + 4;
        s[1] = (s[1] & 0xF0) | (len >> 8) as u8;
        s[2] = len as u8;
        let crc = psi::CRC32_MPEG2.checksum(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        assert!(psi::checked_section(&s).is_ok() || len < 9);
        parse_section(&s);
    }
    let mut asm = psi::SectionAssembler::default();
    let mut payload = vec![0u8];
    payload.extend_from_slice(data);
    for (n, part) in payload.chunks(PACKET_SIZE - 4).enumerate() {
        let mut pkt = [0xFFu8; PACKET_SIZE];
        let pusi = if n == 0 { 0x40 } else { 0 };
        pkt[..4].copy_from_slice(&[SYNC_BYTE, pusi, 0x00, 0x10 | (n as u8 & 0x0F)]);
        pkt[4..4 + part.len()].copy_from_slice(part);
        let p = Packet::new_checked(&pkt).expect("a built packet is valid");
        for sec in asm.push(&p) {
            parse_section(&sec);
        }
    }
}

// ------------------------------------------------------------------------- offset map

/// Decodes `bytes` as an index file; what decodes must re-encode to the same bytes and
/// drive an output stream without a panic.
fn decode_index(bytes: &[u8]) {
    let Ok((map, stamp)) = persist::decode(bytes, Path::new("fuzz.tandem-index")) else {
        return;
    };
    assert_eq!(
        persist::encode(&map, &stamp),
        bytes,
        "the file format has one encoding"
    );
    let _ = map.frame_ticks();
    let _ = map.packet_time(map.packets);
    for framing in [Framing::Udp, Framing::Rtp] {
        for loops in [None, Some(3)] {
            let params = SessionParams {
                session_id: "fuzz".into(),
                framing,
                loops,
            };
            let Ok(out) = OutputStream::new(Arc::new(map.clone()), params) else {
                continue;
            };
            let mut hint = 0;
            let per_pass = map.datagram_count();
            for i in [0, 1, per_pass.saturating_sub(1), per_pass, 3 * per_pass] {
                assert_eq!(out.departure_ns_hinted(i, &mut hint), out.departure_ns(i));
                let _ = (out.flags(i), out.datagram_len(i));
                let _ = out.next_boundary(i, BoundaryKind::Frame);
                let _ = out.next_boundary(i, BoundaryKind::Either);
            }
            let _ = out.index_at(map.loop_period.saturating_mul(2));
            let _ = out.index_at(u64::MAX);
            let _ = out.bitrate();
        }
    }
}

/// `index_file`: the input as a saved offset map (`ASSET.tandem-index`, format in
/// [`persist`]) through [`persist::decode`], as it is and with the header's body length and
/// XXH3-64 checksum made to match (so the body parser and the consistency check are
/// reached; an input that does not start with the magic becomes the body of a file).
pub fn index_file(data: &[u8]) {
    decode_index(data);
    let body = if data.starts_with(&persist::MAGIC) {
        data.get(28..).unwrap_or(&[])
    } else {
        data
    };
    let mut file = Vec::with_capacity(28 + body.len());
    file.extend_from_slice(&persist::MAGIC);
    file.extend_from_slice(&persist::FORMAT_VERSION.to_le_bytes());
    file.extend_from_slice(&(body.len() as u64).to_le_bytes());
    file.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(body).to_le_bytes());
    file.extend_from_slice(body);
    decode_index(&file);
}

// ------------------------------------------------------------------------- wire messages

/// What every accepted message must satisfy: it re-encodes, the re-encoding decodes to the
/// same message, and the replay guard takes it once and refuses it the second time.
fn accepted(msg: &wire::Msg, key: &Key) {
    let again = wire::encode(msg, key).expect("an accepted message can be encoded");
    assert_eq!(
        wire::decode(&again, key, Some(msg.header.session_id)).as_ref(),
        Ok(msg)
    );
    let mut guard = ReplayGuard::new();
    assert!(guard.check(&msg.header).is_ok());
    assert!(guard.check(&msg.header).is_err());
}

fn decode_wire(bytes: &[u8], key: &Key) {
    let any = wire::decode(bytes, key, None);
    let session = bytes
        .get(20..28)
        .map(|s| u64::from_be_bytes(s.try_into().expect("8 bytes")));
    for want in [Some(1), session] {
        let r = wire::decode(bytes, key, want);
        if let Ok(m) = &r {
            assert_eq!(any.as_ref(), Ok(m));
        }
    }
    if let Ok(m) = any {
        accepted(&m, key);
    }
    let _ = wire::decode(bytes, &Key::derive_from_session(session.unwrap_or(0)), None);
}

/// `wire_message`: the input as one sync/heartbeat/control datagram through
/// [`wire::decode`] with [`FUZZ_KEY`] and with the session-derived key (magic, version,
/// length, session and MAC checks; the corpus holds messages signed with [`FUZZ_KEY`], so
/// mutations of their bodies that keep the MAC are rare: see `wire_message_mac`).
pub fn wire_message(data: &[u8]) {
    decode_wire(data, &fuzz_key());
}

/// `wire_message_mac`: a message made from the input and signed with [`FUZZ_KEY`], so the
/// parser behind the MAC check (header fields, every body kind) is reached. The input is
/// the message without magic, version, body length and MAC: bytes 5..52 of the header
/// (kind, role, flags, sender, boot, session, epoch, seq, time; zero-padded when short)
/// followed by the body. The MAC is RFC 2104 HMAC-SHA256 truncated to 16 bytes (§5),
/// computed here independently of `wire`.
pub fn wire_message_mac(data: &[u8]) {
    const FIXED: usize = 52 - 5;
    let mut head = [0u8; FIXED];
    let n = data.len().min(FIXED);
    head[..n].copy_from_slice(&data[..n]);
    let body = data.get(FIXED..).unwrap_or(&[]);
    let body = &body[..body.len().min(u16::MAX as usize)];
    let mut msg = Vec::with_capacity(HEADER_LEN + body.len() + MAC_LEN);
    msg.extend_from_slice(&MAGIC);
    msg.push(VERSION);
    msg.extend_from_slice(&head);
    msg.extend_from_slice(&(body.len() as u16).to_be_bytes());
    msg.extend_from_slice(body);
    let mut mac = Hmac::<Sha256>::new_from_slice(FUZZ_KEY).expect("HMAC takes any key length");
    mac.update(&msg);
    let tag = mac.finalize().into_bytes();
    msg.extend_from_slice(&tag[..MAC_LEN]);
    let key = fuzz_key();
    let r = wire::decode(&msg, &key, None);
    assert!(
        !matches!(r, Err(wire::WireError::BadMac)),
        "a message signed with the key passes the MAC check"
    );
    decode_wire(&msg, &key);
}

// ------------------------------------------------------------------------- recv

/// `recv_rtp`: the input as a run of datagrams received by `tandem recv rtp://...`
/// ([`Analyzer`] with RTP framing: RFC 3550 header and sequence accounting, TR 101 290
/// checks, PCR pacing, sender changes, MDI), then the JSON report. Each datagram is a record
/// `len: u16 BE, src: u8, dt: u16 BE` then `len` bytes (clipped to what is left): `src`
/// bits 0-1 pick one of four source addresses, bit 7 makes the receive time go back by
/// `dt` us instead of forward (a clock step). The bytes that remain when no whole record
/// header is left form one last datagram.
pub fn recv_rtp(data: &[u8]) {
    let mut a = Analyzer::new(Framing::Rtp);
    let mut rx: u64 = 1_700_000_000_000_000_000;
    let mut rest = data;
    let mut count = 0u64;
    while !rest.is_empty() {
        let (dg, src, back, dt) = if rest.len() >= 5 {
            let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
            let (src, dt) = (rest[2], u16::from_be_bytes([rest[3], rest[4]]));
            let body = &rest[5..];
            let len = len.min(body.len());
            let dg = &body[..len];
            rest = &body[len..];
            (dg, src & 3, src & 0x80 != 0, dt as u64 * 1000)
        } else {
            let dg = rest;
            rest = &[];
            (dg, 0, false, 0)
        };
        rx = if back {
            rx.saturating_sub(dt)
        } else {
            rx.saturating_add(dt)
        };
        let addr = SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::new(127, 0, 0, 1 + src),
            5004 + src as u16,
        ));
        if let Ok((h, payload)) = RtpHeader::parse(dg) {
            assert!(payload.len() <= dg.len() - 12);
            let _ = h.emit();
        }
        a.push(dg, addr, rx);
        count += 1;
    }
    assert_eq!(a.datagrams(), count);
    let report = a.report();
    assert_eq!(report.datagrams, count);
    serde_json::to_string(&report).expect("the report serialises");
}

// ------------------------------------------------------------------------- playlists

/// `playlist`: the bytes as a playlist file: sniffed ([`crate::playlist::sniff`]), then,
/// as text (UTF-8, invalid sequences replaced), parsed as JSON and as M3U. What parses has
/// at least one item, `in` finite and >= 0, `out` after `in`, fixed starts increasing; what
/// does not is an error that names the file and says what is wrong.
pub fn playlist(data: &[u8]) {
    let _ = crate::playlist::sniff(data);
    let text = String::from_utf8_lossy(data);
    let file = Path::new("fuzz.json");
    for r in [
        crate::playlist::parse_json(&text, file),
        crate::playlist::parse_m3u(&text, file),
    ] {
        match r {
            Ok(p) => {
                assert!(!p.items.is_empty(), "a playlist has items");
                let mut last_start = None;
                for it in &p.items {
                    assert!(it.in_s.is_finite() && it.in_s >= 0.0);
                    if let Some(o) = it.out_s {
                        assert!(o > it.in_s, "out after in");
                    }
                    if let Some(s) = it.start {
                        assert!(last_start < Some(s), "fixed starts increase");
                        assert!(s.0 < 86_400_000);
                        last_start = Some(s);
                    }
                }
            }
            Err(e) => {
                assert!(!e.message.is_empty());
                assert!(e.to_string().starts_with("fuzz.json"));
            }
        }
    }
}
