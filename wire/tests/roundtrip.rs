//! Property tests of the wire codec: round trips, streaming, header limits, truncation and
//! decoder poisoning, plus hand-written byte vectors that pin the layout.

use proptest::prelude::*;
use proptest::sample::Index;
use xoq_wire::limits::{
    MAX_BAUD, MAX_BODY, MAX_BREAK_MS, MAX_DATA, MAX_DEVICE_INFO, MAX_NAME, MAX_SETTINGS, MAX_TEXT,
};
use xoq_wire::message::HEADER_LEN;
use xoq_wire::{
    Access, BusState, CanCounters, CanFrame, CanSettings, DeviceInfo, DeviceKind, DeviceSettings,
    ErrorCode, FlowControl, FlushQueue, FrameDecoder, Hello, LineSettings, Message, ModemLines,
    ModemStatus, Parity, Refusal, StopBits, Welcome, WireError,
};

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// A string of at most `max` bytes of UTF-8: arbitrary characters (multi-byte included), an
/// ASCII string of exactly `max` bytes, or a multi-byte string filling the limit exactly.
fn text(max: usize) -> impl Strategy<Value = String> {
    let arbitrary = prop::collection::vec(any::<char>(), 0..=max).prop_map(move |chars| {
        let mut s = String::new();
        for c in chars {
            if s.len() + c.len_utf8() > max {
                break;
            }
            s.push(c);
        }
        s
    });
    prop_oneof![
        6 => arbitrary,
        1 => Just("n".repeat(max)),
        // 'é' is two bytes; pad with one ASCII byte when `max` is odd.
        1 => Just(format!("{}{}", "é".repeat(max / 2), "z".repeat(max % 2))),
    ]
}

fn name() -> impl Strategy<Value = String> {
    text(MAX_NAME)
}

fn bytes_up_to(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), 0..=max.min(4096)),
        1 => any::<u8>().prop_map(move |b| vec![b; max]),
    ]
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..=4096),
        1 => Just(Vec::new()),
        1 => any::<u8>().prop_map(|b| vec![b; MAX_DATA]),
    ]
}

fn parity() -> impl Strategy<Value = Parity> {
    prop::sample::select(vec![
        Parity::None,
        Parity::Odd,
        Parity::Even,
        Parity::Mark,
        Parity::Space,
    ])
}

fn stop_bits() -> impl Strategy<Value = StopBits> {
    prop::sample::select(vec![StopBits::One, StopBits::Two])
}

fn flow() -> impl Strategy<Value = FlowControl> {
    prop::sample::select(vec![
        FlowControl::None,
        FlowControl::Software,
        FlowControl::Hardware,
    ])
}

fn baud() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 1..=MAX_BAUD,
        1 => prop::sample::select(vec![1, 50, 9600, 115_200, 1_000_000, MAX_BAUD]),
    ]
}

fn line_settings() -> impl Strategy<Value = LineSettings> {
    (baud(), 5u8..=8, parity(), stop_bits(), flow()).prop_map(
        |(baud, data_bits, parity, stop_bits, flow)| LineSettings {
            baud,
            data_bits,
            parity,
            stop_bits,
            flow,
        },
    )
}

fn modem_lines() -> impl Strategy<Value = ModemLines> {
    (any::<bool>(), any::<bool>()).prop_map(|(dtr, rts)| ModemLines { dtr, rts })
}

fn modem_status() -> impl Strategy<Value = ModemStatus> {
    // All 64 combinations of the six lines.
    (0u8..64).prop_map(|b| ModemStatus {
        dtr: b & 1 != 0,
        rts: b & 2 != 0,
        cts: b & 4 != 0,
        dsr: b & 8 != 0,
        dcd: b & 16 != 0,
        ri: b & 32 != 0,
    })
}

fn flush_queue() -> impl Strategy<Value = FlushQueue> {
    prop::sample::select(vec![
        FlushQueue::Input,
        FlushQueue::Output,
        FlushQueue::Both,
    ])
}

fn access() -> impl Strategy<Value = Access> {
    prop::sample::select(vec![Access::ReadOnly, Access::ReadWrite])
}

/// Every code, known or not, in its canonical form (`Other(n)` only for unassigned `n`).
fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        3 => (1u16..=12).prop_map(ErrorCode::from_u16),
        1 => any::<u16>().prop_map(ErrorCode::from_u16),
    ]
}

fn can_settings() -> impl Strategy<Value = CanSettings> {
    (any::<bool>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
        |(fd, bitrate, data_bitrate, max_age_us)| CanSettings {
            fd,
            bitrate,
            data_bitrate,
            max_age_us,
        },
    )
}

/// A valid CAN frame of every shape: classic, RTR, extended, error, FD with BRS/ESI.
fn can_frame() -> impl Strategy<Value = CanFrame> {
    use xoq_wire::can::{flags, FD_LENGTHS, MAX_EFF_ID, MAX_SFF_ID};
    let classic = (
        any::<bool>(),
        0u32..=MAX_EFF_ID,
        prop::collection::vec(any::<u8>(), 0..=8),
    )
        .prop_map(|(eff, id, data)| {
            let (flags, id) = if eff {
                (flags::EFF, id)
            } else {
                (0, id & MAX_SFF_ID)
            };
            CanFrame {
                id,
                flags,
                len: data.len() as u8,
                data,
                timestamp_us: 0,
            }
        });
    let rtr = (0u32..=MAX_SFF_ID, 0u8..=8).prop_map(|(id, len)| CanFrame {
        id,
        flags: flags::RTR,
        len,
        data: vec![],
        timestamp_us: 0,
    });
    let err = (0u32..=MAX_EFF_ID, prop::collection::vec(any::<u8>(), 8)).prop_map(|(id, data)| {
        CanFrame {
            id,
            flags: flags::ERR,
            len: 8,
            data,
            timestamp_us: 0,
        }
    });
    let fd = (
        0u32..=MAX_SFF_ID,
        prop::sample::select(FD_LENGTHS.to_vec()),
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_flat_map(|(id, len, brs, esi, ts)| {
            prop::collection::vec(any::<u8>(), usize::from(len)).prop_map(move |data| CanFrame {
                id,
                flags: flags::FD
                    | if brs { flags::BRS } else { 0 }
                    | if esi { flags::ESI } else { 0 },
                len,
                data,
                timestamp_us: ts,
            })
        });
    prop_oneof![classic, rtr, err, fd]
}

/// A catalog entry. Serial devices carry serial settings; every other kind (canonical
/// `Other(n)`, n != 1) carries an opaque blob of at most `MAX_SETTINGS` bytes.
fn device_info() -> impl Strategy<Value = DeviceInfo> {
    let serial = (line_settings(), modem_status())
        .prop_map(|(line, modem)| (DeviceKind::Serial, DeviceSettings::Serial { line, modem }));
    let can = can_settings().prop_map(|c| (DeviceKind::Can, DeviceSettings::Can(c)));
    let other = (
        any::<u8>().prop_filter("1 is Serial, 2 is Can", |k| *k != 1 && *k != 2),
        bytes_up_to(MAX_SETTINGS),
    )
        .prop_map(|(k, blob)| (DeviceKind::Other(k), DeviceSettings::Opaque(blob)));
    (
        name(),
        prop_oneof![3 => serial, 2 => can, 1 => other],
        access(),
        any::<u32>(),
    )
        .prop_map(
            |(name, (kind, settings), access, capabilities)| DeviceInfo {
                name,
                kind,
                access,
                capabilities,
                settings,
            },
        )
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), name()).prop_map(|(min_version, max_version, client_name)| {
            Message::Hello(Hello {
                min_version,
                max_version,
                client_name,
            })
        }),
        (
            any::<u16>(),
            name(),
            prop::collection::vec(device_info(), 0..8)
        )
            .prop_map(|(version, server_name, devices)| Message::Welcome(Welcome {
                version,
                server_name,
                devices
            })),
        (error_code(), text(MAX_TEXT))
            .prop_map(|(code, text)| Message::Refused(Refusal { code, text })),
        (name(), access()).prop_map(|(device, access)| Message::Open { device, access }),
        device_info().prop_map(Message::Opened),
        (error_code(), text(MAX_TEXT)).prop_map(|(code, text)| Message::Error { code, text }),
        data().prop_map(Message::Data),
        line_settings().prop_map(Message::LineSettings),
        modem_lines().prop_map(Message::SetModem),
        modem_status().prop_map(Message::ModemStatus),
        (0..=MAX_BREAK_MS).prop_map(|duration_ms| Message::Break { duration_ms }),
        flush_queue().prop_map(Message::Flush),
        any::<u32>().prop_map(|seq| Message::Drain { seq }),
        any::<u32>().prop_map(|seq| Message::Drained { seq }),
        prop::collection::vec(can_frame(), 0..20).prop_map(Message::CanFrames),
        (any::<[u64; 6]>(), any::<u8>()).prop_map(|(v, st)| Message::CanCounters(CanCounters {
            rx_frames: v[0],
            tx_frames: v[1],
            rx_dropped: v[2],
            tx_stale: v[3],
            tx_failed: v[4],
            kernel_dropped: v[5],
            state: match st % 6 {
                0 => BusState::ErrorActive,
                1 => BusState::ErrorWarning,
                2 => BusState::ErrorPassive,
                3 => BusState::BusOff,
                4 => BusState::Stopped,
                _ => BusState::Unknown,
            },
        })),
        (any::<u64>(), any::<u64>()).prop_map(|(client_us, server_us)| Message::TimeSync {
            client_us,
            server_us
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Largest body each known type may declare, as the protocol specifies it.
const TYPE_LIMITS: &[(u8, usize)] = &[
    (0x01, 4 + 2 + MAX_NAME),
    (0x02, MAX_BODY),
    (0x03, 2 + 2 + MAX_TEXT),
    (0x10, 2 + MAX_NAME + 1),
    (0x11, MAX_DEVICE_INFO),
    (0x12, 2 + 2 + MAX_TEXT),
    (0x20, MAX_DATA),
    (0x21, 8),
    (0x22, 1),
    (0x23, 1),
    (0x24, 2),
    (0x25, 1),
    (0x26, 4),
    (0x27, 4),
    (0x30, 2 + 256 * (14 + 64)),
    (0x31, 49),
    (0x32, 16),
];

fn limit_of(t: u8) -> Option<usize> {
    TYPE_LIMITS
        .iter()
        .find(|(ty, _)| *ty == t)
        .map(|(_, max)| *max)
}

fn header(t: u8, len: u32) -> [u8; HEADER_LEN] {
    let l = len.to_be_bytes();
    [t, l[0], l[1], l[2], l[3]]
}

/// Splits the encoding into (type, body), checking the header against the body.
fn split_frame(bytes: &[u8]) -> (u8, &[u8]) {
    assert!(bytes.len() >= HEADER_LEN);
    let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    assert_eq!(
        len,
        bytes.len() - HEADER_LEN,
        "header length must match the body"
    );
    (bytes[0], &bytes[HEADER_LEN..])
}

fn drain(dec: &mut FrameDecoder, out: &mut Vec<Message>) -> Result<(), WireError> {
    while let Some(m) = dec.next_message()? {
        out.push(m);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// (a) encode, then decode the body: the same message, and the header respects the limit.
    #[test]
    fn encode_decode_roundtrip(m in message()) {
        let bytes = m.to_bytes();
        let (t, body) = split_frame(&bytes);
        let max = limit_of(t).expect("encoder used a known type");
        prop_assert!(body.len() <= max, "{} body of {} bytes over limit {}", m.name(), body.len(), max);
        prop_assert_eq!(Message::decode(t, body), Ok(m.clone()));

        // Appending to a non-empty buffer frames the same bytes.
        let mut out = vec![0xAA, 0xBB];
        m.encode(&mut out);
        prop_assert_eq!(&out[2..], &bytes[..]);
    }

    /// (b) a random sequence, concatenated and cut at random places, comes out whole and in
    /// order, then the decoder wants more bytes and holds nothing.
    #[test]
    fn stream_split_at_random_boundaries(
        msgs in prop::collection::vec(message(), 0..12),
        cuts in prop::collection::vec(any::<Index>(), 0..24),
    ) {
        let mut stream = Vec::new();
        for m in &msgs {
            m.encode(&mut stream);
        }
        let mut cut_at: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cut_at.push(0);
        cut_at.push(stream.len());
        cut_at.sort_unstable();
        cut_at.dedup();

        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        for w in cut_at.windows(2) {
            dec.push(&stream[w[0]..w[1]]);
            drain(&mut dec, &mut got).expect("valid stream must decode");
        }
        prop_assert_eq!(&got, &msgs);
        prop_assert_eq!(dec.next_message(), Ok(None));
        prop_assert_eq!(dec.pending(), 0);
    }

    /// (b') the same, byte by byte, for small messages.
    #[test]
    fn stream_byte_by_byte(msgs in prop::collection::vec(message().prop_filter("small", |m| m.to_bytes().len() < 2048), 0..6)) {
        let mut stream = Vec::new();
        for m in &msgs {
            m.encode(&mut stream);
        }
        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        for b in &stream {
            dec.push(std::slice::from_ref(b));
            drain(&mut dec, &mut got).expect("valid stream must decode");
        }
        prop_assert_eq!(&got, &msgs);
        prop_assert_eq!(dec.next_message(), Ok(None));
        prop_assert_eq!(dec.pending(), 0);
    }

    /// (c) a header over its type's limit is refused on its five bytes alone, even after
    /// valid messages on the same stream.
    #[test]
    fn over_limit_header_rejected_before_body(
        prefix in prop::collection::vec(message(), 0..3),
        entry in prop::sample::select(TYPE_LIMITS.to_vec()),
        excess in prop_oneof![Just(1u64), 1u64..=1024, 1u64..=u64::from(u32::MAX)],
    ) {
        let (t, max) = entry;
        let len = (max as u64).saturating_add(excess).min(u64::from(u32::MAX)) as u32;
        prop_assume!(len as usize > max);
        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        let mut stream = Vec::new();
        for m in &prefix {
            m.encode(&mut stream);
        }
        dec.push(&stream);
        drain(&mut dec, &mut got).unwrap();
        prop_assert_eq!(&got, &prefix);
        dec.push(&header(t, len));
        prop_assert_eq!(
            dec.next_message(),
            Err(WireError::TooLong { ty: t, len: len as usize, max })
        );
    }

    /// (c) an unknown type byte is refused on its header, whatever length it declares.
    #[test]
    fn unknown_type_rejected_on_header(t in any::<u8>(), len in any::<u32>()) {
        prop_assume!(limit_of(t).is_none());
        let mut dec = FrameDecoder::new();
        dec.push(&header(t, len));
        prop_assert_eq!(dec.next_message(), Err(WireError::UnknownType(t)));
        prop_assert_eq!(Message::decode(t, &[]), Err(WireError::UnknownType(t)));
    }

    /// (d) every message but `Data` (whose body is all payload) fails when its body is cut
    /// short, both via `Message::decode` and via a frame whose header declares the cut length.
    #[test]
    fn truncated_body_is_an_error(m in message(), cut in any::<Index>()) {
        let bytes = m.to_bytes();
        let (t, body) = split_frame(&bytes);
        prop_assume!(!body.is_empty());
        let drop = 1 + cut.index(body.len()); // 1..=body.len()
        let short = &body[..body.len() - drop];
        if let Message::Data(_) = m {
            // A shorter Data body is a shorter, valid Data message.
            prop_assert_eq!(Message::decode(t, short), Ok(Message::Data(short.to_vec())));
        } else {
            prop_assert!(Message::decode(t, short).is_err(), "{} decoded from {} of {} bytes", m.name(), short.len(), body.len());
            let mut dec = FrameDecoder::new();
            dec.push(&header(t, short.len() as u32));
            dec.push(short);
            prop_assert!(dec.next_message().is_err());
        }
    }

    /// (d) arbitrary bodies never panic the decoder; whatever decodes re-encodes to itself.
    #[test]
    fn arbitrary_body_never_panics(t in prop_oneof![prop::sample::select(TYPE_LIMITS.iter().map(|e| e.0).collect::<Vec<_>>()), any::<u8>()],
                                   body in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(m) = Message::decode(t, &body) {
            let bytes = m.to_bytes();
            let (t2, body2) = split_frame(&bytes);
            prop_assert_eq!(t2, t);
            prop_assert_eq!(body2, &body[..]);
        }
    }

    /// (d) a valid body with trailing bytes is an error too (except Data).
    #[test]
    fn trailing_bytes_are_an_error(m in message(), extra in prop::collection::vec(any::<u8>(), 1..8)) {
        prop_assume!(!matches!(m, Message::Data(_)));
        let bytes = m.to_bytes();
        let (t, body) = split_frame(&bytes);
        let mut long = body.to_vec();
        long.extend_from_slice(&extra);
        prop_assert!(Message::decode(t, &long).is_err());
    }

    /// (e) once the decoder has failed, it keeps failing with the same error, whatever arrives.
    #[test]
    fn decoder_stays_poisoned(
        garbage in prop::collection::vec(any::<u8>(), 0..512),
        more in prop::collection::vec(message(), 0..4),
    ) {
        let mut dec = FrameDecoder::new();
        dec.push(&garbage);
        let mut got = Vec::new();
        let err = match drain(&mut dec, &mut got) {
            Ok(()) => {
                // Garbage that happened to be valid: poison it explicitly.
                dec.push(&header(0xFF, 0));
                dec.next_message().unwrap_err()
            }
            Err(e) => e,
        };
        for _ in 0..3 {
            prop_assert_eq!(dec.next_message(), Err(err.clone()));
        }
        for m in &more {
            dec.push(&m.to_bytes());
            prop_assert_eq!(dec.next_message(), Err(err.clone()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-written vectors: the byte layout, pinned.
// ---------------------------------------------------------------------------------------------

#[test]
fn hello_bytes() {
    let m = Message::Hello(Hello {
        min_version: 1,
        max_version: 3,
        client_name: "bot".into(),
    });
    #[rustfmt::skip]
    let expected = [
        0x01,                   // type Hello
        0x00, 0x00, 0x00, 0x09, // body length 9
        0x00, 0x01,             // min_version 1
        0x00, 0x03,             // max_version 3
        0x00, 0x03, b'b', b'o', b't', // client_name
    ];
    assert_eq!(m.to_bytes(), expected);
    let mut dec = FrameDecoder::new();
    dec.push(&expected);
    assert_eq!(dec.next_message(), Ok(Some(m)));
    assert_eq!(dec.next_message(), Ok(None));
}

#[test]
fn line_settings_bytes() {
    let m = Message::LineSettings(LineSettings {
        baud: 115_200,
        data_bits: 7,
        parity: Parity::Even,
        stop_bits: StopBits::Two,
        flow: FlowControl::Hardware,
    });
    #[rustfmt::skip]
    let expected = [
        0x21,                   // type LineSettings
        0x00, 0x00, 0x00, 0x08, // body length 8
        0x00, 0x01, 0xC2, 0x00, // baud 115200
        0x07,                   // data bits
        0x02,                   // parity Even
        0x02,                   // stop bits 2
        0x02,                   // flow Hardware (RTS/CTS)
    ];
    assert_eq!(m.to_bytes(), expected);
    assert_eq!(Message::decode(0x21, &expected[5..]), Ok(m));
}

#[test]
fn welcome_with_one_serial_device_bytes() {
    let m = Message::Welcome(Welcome {
        version: 1,
        server_name: "r".into(),
        devices: vec![DeviceInfo {
            name: "tty0".into(),
            kind: DeviceKind::Serial,
            access: Access::ReadWrite,
            capabilities: 0b1011,
            settings: DeviceSettings::Serial {
                line: LineSettings::default(),
                modem: ModemStatus {
                    dtr: true,
                    rts: true,
                    ..ModemStatus::default()
                },
            },
        }],
    });
    #[rustfmt::skip]
    let expected = [
        0x02,                   // type Welcome
        0x00, 0x00, 0x00, 0x1E, // body length 30
        0x00, 0x01,             // version 1
        0x00, 0x01, b'r',       // server_name
        0x00, 0x01,             // device count 1
        0x00, 0x04, b't', b't', b'y', b'0', // device name
        0x01,                   // kind Serial
        0x01,                   // access ReadWrite
        0x00, 0x00, 0x00, 0x0B, // capabilities
        0x00, 0x09,             // settings blob length 9
        0x00, 0x01, 0xC2, 0x00, 0x08, 0x00, 0x01, 0x00, // 115200 8N1, no flow
        0x03,                   // modem status: DTR | RTS
    ];
    assert_eq!(m.to_bytes(), expected);
    assert_eq!(Message::decode(0x02, &expected[5..]), Ok(m));
}

#[test]
fn small_messages_bytes() {
    let cases: Vec<(Message, Vec<u8>)> = vec![
        (
            Message::Open {
                device: "a".into(),
                access: Access::ReadOnly,
            },
            vec![0x10, 0, 0, 0, 4, 0x00, 0x01, b'a', 0x00],
        ),
        (
            Message::Error {
                code: ErrorCode::Busy,
                text: "x".into(),
            },
            vec![0x12, 0, 0, 0, 5, 0x00, 0x05, 0x00, 0x01, b'x'],
        ),
        (
            Message::Refused(Refusal {
                code: ErrorCode::Unauthorized,
                text: String::new(),
            }),
            vec![0x03, 0, 0, 0, 4, 0x00, 0x02, 0x00, 0x00],
        ),
        (
            Message::Data(vec![1, 2, 3]),
            vec![0x20, 0, 0, 0, 3, 1, 2, 3],
        ),
        (
            Message::SetModem(ModemLines {
                dtr: false,
                rts: true,
            }),
            vec![0x22, 0, 0, 0, 1, 0x02],
        ),
        (
            Message::ModemStatus(ModemStatus {
                cts: true,
                ri: true,
                ..ModemStatus::default()
            }),
            vec![0x23, 0, 0, 0, 1, 0x24],
        ),
        (
            Message::Break { duration_ms: 250 },
            vec![0x24, 0, 0, 0, 2, 0x00, 0xFA],
        ),
        (
            Message::Flush(FlushQueue::Both),
            vec![0x25, 0, 0, 0, 1, 0x03],
        ),
        (
            Message::Drain { seq: 0x0102_0304 },
            vec![0x26, 0, 0, 0, 4, 1, 2, 3, 4],
        ),
        (
            Message::Drained { seq: 7 },
            vec![0x27, 0, 0, 0, 4, 0, 0, 0, 7],
        ),
    ];
    for (m, bytes) in cases {
        assert_eq!(m.to_bytes(), bytes, "{}", m.name());
        assert_eq!(Message::decode(bytes[0], &bytes[5..]), Ok(m));
    }
}

#[test]
fn data_over_limit_header_rejected_before_body() {
    let mut dec = FrameDecoder::new();
    let h = header(0x20, (MAX_DATA + 1) as u32);
    // The first four header bytes are not enough to judge.
    for b in &h[..4] {
        dec.push(std::slice::from_ref(b));
        assert_eq!(dec.next_message(), Ok(None));
    }
    dec.push(&h[4..]);
    assert_eq!(
        dec.next_message(),
        Err(WireError::TooLong {
            ty: 0x20,
            len: MAX_DATA + 1,
            max: MAX_DATA
        })
    );
    // Exactly MAX_DATA is accepted (and waits for its body).
    let mut dec = FrameDecoder::new();
    dec.push(&header(0x20, MAX_DATA as u32));
    assert_eq!(dec.next_message(), Ok(None));
}

#[test]
fn unknown_type_rejected_before_body() {
    let mut dec = FrameDecoder::new();
    dec.push(&header(0x7F, 3));
    assert_eq!(dec.next_message(), Err(WireError::UnknownType(0x7F)));
    dec.push(&[1, 2, 3]);
    assert_eq!(dec.next_message(), Err(WireError::UnknownType(0x7F)));
}

#[test]
fn out_of_range_values_are_refused() {
    let bad: &[(u8, &[u8])] = &[
        (0x21, &[0, 0, 0, 0, 8, 0, 1, 0]),             // baud 0
        (0x21, &[0x00, 0xF4, 0x24, 0x01, 8, 0, 1, 0]), // baud MAX_BAUD + 1
        (0x21, &[0, 0, 0x25, 0x80, 4, 0, 1, 0]),       // 4 data bits
        (0x21, &[0, 0, 0x25, 0x80, 9, 0, 1, 0]),       // 9 data bits
        (0x21, &[0, 0, 0x25, 0x80, 8, 5, 1, 0]),       // parity 5
        (0x21, &[0, 0, 0x25, 0x80, 8, 0, 0, 0]),       // stop bits 0
        (0x21, &[0, 0, 0x25, 0x80, 8, 0, 3, 0]),       // stop bits 3
        (0x21, &[0, 0, 0x25, 0x80, 8, 0, 1, 3]),       // flow 3
        (0x22, &[0x04]),                               // modem lines: unknown bit
        (0x23, &[0x40]),                               // modem status: unknown bit
        (0x24, &[0x27, 0x11]),                         // break MAX_BREAK_MS + 1
        (0x25, &[0x00]),                               // flush queue 0
        (0x25, &[0x04]),                               // flush queue 4
        (0x10, &[0x00, 0x01, b'a', 0x02]),             // access 2
        (0x10, &[0x00, 0x01, 0xFF, 0x00]),             // device name not UTF-8
    ];
    for (t, body) in bad {
        assert!(
            Message::decode(*t, body).is_err(),
            "type 0x{t:02x} body {body:?} accepted"
        );
    }
    assert_eq!(u32::from_be_bytes([0x00, 0xF4, 0x24, 0x01]), MAX_BAUD + 1);
    assert_eq!(u16::from_be_bytes([0x27, 0x11]), MAX_BREAK_MS + 1);
}

#[test]
fn opaque_settings_at_the_limit_round_trip() {
    let m = Message::Opened(DeviceInfo {
        name: "n".repeat(MAX_NAME),
        kind: DeviceKind::Other(200),
        access: Access::ReadOnly,
        capabilities: u32::MAX,
        settings: DeviceSettings::Opaque(vec![0x5A; MAX_SETTINGS]),
    });
    let bytes = m.to_bytes();
    assert_eq!(Message::decode(bytes[0], &bytes[5..]), Ok(m));
}
