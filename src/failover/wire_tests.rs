//! Tests of the wire format: fixed byte arrays, round trips, refusals, proptests.

use super::*;
use proptest::prelude::*;

fn key() -> Key {
    Key::from_bytes(b"0123456789abcdef0123456789abcdef").unwrap()
}

fn header(seq: u64) -> Header {
    Header {
        role: SenderRole::Primary,
        owner: false,
        sender_id: 0x0102_0304,
        boot_id: 0x1111_2222_3333_4444,
        session_id: 0xABCD,
        epoch: 7,
        seq,
        real_ns: 1_700_000_000_000_000_000,
    }
}

fn all_bodies() -> Vec<Body> {
    vec![
        Body::Heartbeat {
            state: State::Primary,
            last_index: Some(123_456),
            last_index_send_real_ns: RealNs(1_700_000_000_123_456_789),
            position: Ticks27M(27_000_000),
        },
        Body::Heartbeat {
            state: State::PrimaryOffline,
            last_index: None,
            last_index_send_real_ns: RealNs(0),
            position: Ticks27M(0),
        },
        Body::SyncRequest,
        Body::SyncParams(SyncParams {
            asset: AssetIdentity {
                size: 105_000_000,
                hash: 0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
            },
            asset_name: "assets/demo-25fps.ts".into(),
            framing: Framing::Rtp,
            loop_count: 0,
            origin_real_ns: RealNs(1_700_000_000_000_000_000),
            origin_index: DatagramIndex(0),
            muted: "239.1.1.2:5002".parse().unwrap(),
            live: "239.1.1.1:5000".parse().unwrap(),
        }),
        Body::Status {
            state: State::SecondarySynchronized,
            locked: true,
            last_index: Some(99),
        },
        Body::TimeRequest { t1: RealNs(5) },
        Body::TimeReply {
            t1: RealNs(5),
            t2: RealNs(6),
            t3: RealNs(7),
        },
        Body::FailedNotice {
            component: "pacer".into(),
            reason: "missed check-in for 12 ms".into(),
            last_index: Some(4_000),
        },
        Body::Takeover {
            epoch: 8,
            from_index: Some(4_001),
        },
        Body::OwnershipQuery { nonce: 42 },
        Body::OwnershipReply {
            nonce: 42,
            state: State::SecondaryNoPrimary,
            on_air: true,
            epoch: 8,
        },
        Body::PlayRequest {
            asset_path: "/srv/é.ts".into(),
            start_real_ns: Some(1_700_000_000_123_456_789),
        },
        Body::StatusRequest,
        Body::StatusReply {
            json: r#"{"state":"Primary"}"#.into(),
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
    ]
}

#[test]
fn hmac_sha256_matches_rfc4231_case_2() {
    // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
    let mut m = HmacSha256::new_from_slice(b"Jefe").unwrap();
    m.update(b"what do ya want for nothing?");
    let full = m.finalize().into_bytes();
    let hex: String = full.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn heartbeat_fixed_bytes() {
    let msg = Msg {
        header: header(1),
        body: Body::Heartbeat {
            state: State::Primary,
            last_index: Some(0x0102),
            last_index_send_real_ns: RealNs(0x0A0B),
            position: Ticks27M(0x0C0D),
        },
    };
    let bytes = encode(&msg, &key()).unwrap();
    #[rustfmt::skip]
    let expect_signed: Vec<u8> = vec![
        b'T', b'N', b'D', b'M', 1, 1, 0, 0,         // magic, version, kind 1, role 0, flags
        0x01, 0x02, 0x03, 0x04,                     // sender id
        0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, // boot id
        0, 0, 0, 0, 0, 0, 0xAB, 0xCD,               // session
        0, 0, 0, 0, 0, 0, 0, 7,                     // epoch
        0, 0, 0, 0, 0, 0, 0, 1,                     // seq
        0x17, 0x97, 0x9c, 0xfe, 0x36, 0x2a, 0x00, 0x00, // real ns 1.7e18
        0, 26,                                      // body length
        2,                                          // state Primary
        1, 0, 0, 0, 0, 0, 0, 0x01, 0x02,            // last_index Some(0x0102)
        0, 0, 0, 0, 0, 0, 0x0A, 0x0B,               // send real ns
        0, 0, 0, 0, 0, 0, 0x0C, 0x0D,               // position
    ];
    assert_eq!(&bytes[..HEADER_LEN + 26], &expect_signed[..]);
    assert_eq!(bytes.len(), HEADER_LEN + 26 + MAC_LEN);
    assert_eq!(&bytes[HEADER_LEN + 26..], &key().tag(&expect_signed)[..]);
    assert_eq!(decode(&bytes, &key(), Some(0xABCD)).unwrap(), msg);
}

#[test]
fn takeover_and_command_fixed_bytes() {
    let msg = Msg {
        header: header(2),
        body: Body::Takeover {
            epoch: 9,
            from_index: None,
        },
    };
    let bytes = encode(&msg, &key()).unwrap();
    assert_eq!(bytes[off::KIND], 8);
    assert_eq!(&bytes[off::BODY_LEN..off::BODY_LEN + 2], &[0, 17]);
    assert_eq!(
        &bytes[HEADER_LEN..HEADER_LEN + 17],
        &[0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    let cmd = Msg {
        header: Header {
            role: SenderRole::Monitor,
            ..header(3)
        },
        body: Body::MonitorCommand(MonitorCmd::Stop),
    };
    let bytes = encode(&cmd, &key()).unwrap();
    assert_eq!(bytes[off::ROLE], 2);
    assert_eq!(&bytes[HEADER_LEN..HEADER_LEN + 1], &[1]);
    assert_eq!(decode(&bytes, &key(), None).unwrap(), cmd);
}

#[test]
fn every_body_round_trips() {
    for (i, body) in all_bodies().into_iter().enumerate() {
        let msg = Msg {
            header: header(i as u64 + 1),
            body,
        };
        let bytes = encode(&msg, &key()).unwrap();
        assert_eq!(decode(&bytes, &key(), Some(0xABCD)).unwrap(), msg, "{i}");
    }
}

#[test]
fn refusals_are_distinct() {
    let msg = Msg {
        header: header(1),
        body: Body::SyncRequest,
    };
    let good = encode(&msg, &key()).unwrap();
    let k = key();
    assert_eq!(
        decode(b"", &k, None),
        Err(WireError::Garbage { found: vec![] })
    );
    assert_eq!(
        decode(b"GET / HTTP/1.1", &k, None),
        Err(WireError::Garbage {
            found: b"GET ".to_vec()
        })
    );
    assert_eq!(
        decode(&good[..30], &k, None),
        Err(WireError::Truncated {
            need: HEADER_LEN + MAC_LEN,
            have: 30
        })
    );
    assert_eq!(
        decode(&good[..good.len() - 1], &k, None),
        Err(WireError::Truncated {
            need: good.len(),
            have: good.len() - 1
        })
    );
    let mut long = good.clone();
    long.push(0);
    assert_eq!(
        decode(&long, &k, None),
        Err(WireError::TrailingBytes { extra: 1 })
    );
    let mut v2 = good.clone();
    v2[off::VERSION] = 2;
    assert_eq!(
        decode(&v2, &k, None),
        Err(WireError::WrongVersion { got: 2 })
    );
    assert_eq!(
        decode(&good, &k, Some(0x9999)),
        Err(WireError::OtherSession {
            got: 0xABCD,
            want: 0x9999
        })
    );
    let other = Key::from_bytes(b"another key of 32 bytes.........").unwrap();
    assert_eq!(decode(&good, &other, None), Err(WireError::BadMac));
    // Authentic but unknown kind.
    let mut unknown = good.clone();
    unknown[off::KIND] = 99;
    let n = unknown.len() - MAC_LEN;
    let tag = k.tag(&unknown[..n]);
    unknown[n..].copy_from_slice(&tag);
    assert_eq!(decode(&unknown, &k, None), Err(WireError::UnknownKind(99)));
    // Authentic but a bad state code, located by offset.
    let mut bad_state = encode(
        &Msg {
            header: header(1),
            body: Body::Status {
                state: State::Primary,
                locked: false,
                last_index: None,
            },
        },
        &k,
    )
    .unwrap();
    bad_state[HEADER_LEN] = 77;
    let n = bad_state.len() - MAC_LEN;
    let tag = k.tag(&bad_state[..n]);
    bad_state[n..].copy_from_slice(&tag);
    assert_eq!(
        decode(&bad_state, &k, None),
        Err(WireError::BadField {
            field: "status state",
            offset: HEADER_LEN
        })
    );
}

#[test]
fn owner_flag() {
    let msg = Msg {
        header: Header {
            owner: true,
            ..header(1)
        },
        body: Body::SyncRequest,
    };
    let bytes = encode(&msg, &key()).unwrap();
    assert_eq!(bytes[off::FLAGS], flag::OWNER);
    assert_eq!(decode(&bytes, &key(), None).unwrap(), msg);
    // Unknown flag bits are refused even on an authentic message.
    let mut odd = bytes.clone();
    odd[off::FLAGS] = 0x03;
    let n = odd.len() - MAC_LEN;
    let tag = key().tag(&odd[..n]);
    odd[n..].copy_from_slice(&tag);
    assert_eq!(
        decode(&odd, &key(), None),
        Err(WireError::BadField {
            field: "flags",
            offset: off::FLAGS
        })
    );
}

#[test]
fn session_zero_is_accepted_for_clients() {
    let msg = Msg {
        header: Header {
            role: SenderRole::Client,
            session_id: 0,
            ..header(1)
        },
        body: Body::PlayRequest {
            asset_path: "a.ts".into(),
            start_real_ns: None,
        },
    };
    let bytes = encode(&msg, &key()).unwrap();
    assert_eq!(decode(&bytes, &key(), Some(0xABCD)).unwrap(), msg);
}

#[test]
fn keys() {
    assert_eq!(
        Key::from_bytes(b"short").unwrap_err(),
        KeyError::TooShort(5)
    );
    let a = Key::derive_from_session(1);
    let b = Key::derive_from_session(2);
    assert!(a.is_derived());
    assert!(!key().is_derived());
    let msg = Msg {
        header: Header {
            session_id: 1,
            ..header(1)
        },
        body: Body::StatusRequest,
    };
    let bytes = encode(&msg, &a).unwrap();
    assert!(decode(&bytes, &a, Some(1)).is_ok());
    assert_eq!(decode(&bytes, &b, None), Err(WireError::BadMac));
    assert!(
        !format!("{a:?}").contains("mac"),
        "no key material in Debug"
    );
}

#[test]
fn too_large_body_is_refused() {
    let msg = Msg {
        header: header(1),
        body: Body::StatusReply {
            json: "x".repeat(MAX_BODY + 1),
        },
    };
    assert!(matches!(encode(&msg, &key()), Err(WireError::TooLarge(_))));
}

/// A correctly signed message whose body is over `MAX_BODY` (it still fits a UDP datagram)
/// is refused like one `encode` would not make: before, it was accepted and could not be
/// re-encoded (fuzzing/regressions: `wire_message_mac/body-over-max`).
#[test]
fn signed_body_over_max_is_refused() {
    let ok = Msg {
        header: header(1),
        body: Body::StatusReply {
            json: "x".repeat(MAX_BODY - 2),
        },
    };
    let bytes = encode(&ok, &key()).unwrap();
    assert_eq!(decode(&bytes, &key(), None), Ok(ok));
    let mut big = bytes[..HEADER_LEN].to_vec();
    let json = "x".repeat(MAX_BODY - 1);
    big[52..54].copy_from_slice(&((json.len() + 2) as u16).to_be_bytes());
    big.extend_from_slice(&(json.len() as u16).to_be_bytes());
    big.extend_from_slice(json.as_bytes());
    let tag = key().tag(&big);
    big.extend_from_slice(&tag);
    assert_eq!(
        decode(&big, &key(), None),
        Err(WireError::TooLarge(MAX_BODY + 1))
    );
}

#[test]
fn replay_guard() {
    let mut g = ReplayGuard::new();
    let mut s = Stamper::new(SenderRole::Secondary, 5, 1_000, 0xABCD);
    let h1 = s.header(1, false, 10);
    let h2 = s.header(1, false, 11);
    assert_eq!((h1.seq, h2.seq), (1, 2));
    assert_eq!(g.check(&h1), Ok(()));
    assert_eq!(g.check(&h2), Ok(()));
    assert_eq!(
        g.check(&h1),
        Err(ReplayError::Replayed {
            sender: 5,
            seq: 1,
            last: 2
        })
    );
    assert!(g.check(&h2).is_err(), "same seq twice");
    // The sender restarts: new (higher) boot id, sequence starts over.
    let mut s2 = Stamper::new(SenderRole::Secondary, 5, 2_000, 0xABCD);
    let r1 = s2.header(1, false, 12);
    assert_eq!(g.check(&r1), Ok(()));
    // A replay of the old boot is refused.
    let h3 = s.header(1, false, 13);
    assert_eq!(
        g.check(&h3),
        Err(ReplayError::OldBoot {
            sender: 5,
            boot: 1_000,
            current: 2_000
        })
    );
    // Another sender is independent.
    let mut other = Stamper::new(SenderRole::Primary, 6, 1, 0xABCD);
    assert_eq!(g.check(&other.header(1, false, 1)), Ok(()));
}

fn arb_state() -> impl Strategy<Value = State> {
    (0u8..9).prop_map(|c| State::from_code(c).unwrap())
}

fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (
            arb_state(),
            any::<Option<u64>>(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(|(state, last_index, t, position)| Body::Heartbeat {
                state,
                last_index,
                last_index_send_real_ns: RealNs(t),
                position: Ticks27M(position),
            }),
        Just(Body::SyncRequest),
        (
            any::<u64>(),
            any::<u128>(),
            any::<bool>(),
            any::<u32>(),
            "[a-z/.]{0,40}"
        )
            .prop_map(
                |(size, hash, rtp, loops, name)| Body::SyncParams(SyncParams {
                    asset: AssetIdentity { size, hash },
                    asset_name: name,
                    framing: if rtp { Framing::Rtp } else { Framing::Udp },
                    loop_count: loops,
                    origin_real_ns: RealNs(size ^ 5),
                    origin_index: DatagramIndex(size / 3),
                    muted: SocketAddrV4::new(Ipv4Addr::new(239, 0, 0, 2), loops as u16),
                    live: SocketAddrV4::new(Ipv4Addr::new(239, 0, 0, 1), 5000),
                })
            ),
        (arb_state(), any::<bool>(), any::<Option<u64>>()).prop_map(|(state, locked, li)| {
            Body::Status {
                state,
                locked,
                last_index: li,
            }
        }),
        any::<(u64, u64, u64)>().prop_map(|(t1, t2, t3)| Body::TimeReply {
            t1: RealNs(t1),
            t2: RealNs(t2),
            t3: RealNs(t3),
        }),
        (".{0,20}", ".{0,60}", any::<Option<u64>>()).prop_map(|(c, r, l)| {
            Body::FailedNotice {
                component: c,
                reason: r,
                last_index: l,
            }
        }),
        (any::<u64>(), any::<Option<u64>>())
            .prop_map(|(epoch, from_index)| Body::Takeover { epoch, from_index }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(at_index, epoch)| Body::HandOver { at_index, epoch }),
        (any::<u64>(), arb_state(), any::<bool>(), any::<u64>()).prop_map(
            |(nonce, state, on_air, epoch)| Body::OwnershipReply {
                nonce,
                state,
                on_air,
                epoch
            }
        ),
        (0u8..3).prop_map(|c| Body::MonitorCommand(match c {
            0 => MonitorCmd::Takeover,
            1 => MonitorCmd::Stop,
            _ => MonitorCmd::Fail,
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode(&bytes, &key(), Some(0xABCD));
        let _ = decode(&bytes, &key(), None);
    }

    #[test]
    fn decode_never_panics_on_mangled_valid_messages(
        body in arb_body(),
        cut in any::<prop::sample::Index>(),
        patch in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut bytes = encode(&Msg { header: header(1), body }, &key()).unwrap();
        for (at, v) in patch {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        let n = cut.index(bytes.len() + 1);
        let _ = decode(&bytes[..n], &key(), None);
    }

    #[test]
    fn round_trip(
        body in arb_body(),
        seq in any::<u64>(),
        epoch in any::<u64>(),
        owner in any::<bool>(),
    ) {
        let msg = Msg { header: Header { seq, epoch, owner, ..header(1) }, body };
        let bytes = encode(&msg, &key()).unwrap();
        prop_assert_eq!(decode(&bytes, &key(), Some(0xABCD)).unwrap(), msg);
    }

    #[test]
    fn any_single_bit_flip_is_rejected(body in arb_body(), bit in any::<prop::sample::Index>()) {
        let msg = Msg { header: header(1), body };
        let mut bytes = encode(&msg, &key()).unwrap();
        let b = bit.index(bytes.len() * 8);
        bytes[b / 8] ^= 1 << (b % 8);
        prop_assert!(decode(&bytes, &key(), None).is_err());
        prop_assert!(decode(&bytes, &key(), Some(0xABCD)).is_err());
    }
}
