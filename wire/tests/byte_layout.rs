//! Hand-written byte vectors: the wire layout of protocol v1, pinned.

mod common;

use xoq_wire::limits::{MAX_BAUD, MAX_BREAK_MS, MAX_DATA, MAX_NAME, MAX_SETTINGS};
use xoq_wire::{
    Access, Delivery, DeviceInfo, DeviceKind, DeviceSettings, ErrorCode, FlowAction, FlowControl,
    FlushQueue, FrameDecoder, Hello, LineSettings, Message, ModemLines, ModemStatus, Parity,
    Refusal, StopBits, Welcome, WireError,
};

use common::*;

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
                writer: 0x0102_0304_0506_0708,
                delivery: Delivery::Ordered,
            },
            vec![
                0x10, 0, 0, 0, 12, 0x00, 0x01, b'a', 0x00, 1, 2, 3, 4, 5, 6, 7, 8,
            ],
        ),
        (
            Message::Open {
                device: "a".into(),
                access: Access::ReadWrite,
                writer: 0,
                delivery: Delivery::Latest,
            },
            vec![
                0x10, 0, 0, 0, 13, 0x00, 0x01, b'a', 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
            ],
        ),
        (
            Message::TxProgress {
                written: 0x1_0000_0002,
                queued: 3,
            },
            vec![0x29, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3],
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
        (Message::SetBreak(true), vec![0x28, 0, 0, 0, 1, 0x01]),
        (
            Message::VideoMode(xoq_wire::VideoMode {
                width: 1280,
                height: 720,
                fps: 30,
            }),
            vec![0x40, 0, 0, 0, 6, 0x05, 0x00, 0x02, 0xD0, 0x00, 0x1E],
        ),
        (Message::KeyframeRequest, vec![0x41, 0, 0, 0, 0]),
        (Message::Probe, vec![0x61, 0, 0, 0, 0]),
        (Message::SetBreak(false), vec![0x28, 0, 0, 0, 1, 0x00]),
        (
            Message::Flush(FlushQueue::Both),
            vec![0x25, 0, 0, 0, 1, 0x03],
        ),
        (
            Message::Flow(FlowAction::RestartOutput),
            vec![0x2A, 0, 0, 0, 1, 0x02],
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
        (0x21, &[0, 0, 0x25, 0x80, 8, 0, 1, 4]),       // flow 4
        (0x22, &[0x04]),                               // modem lines: unknown bit
        (0x23, &[0x40]),                               // modem status: unknown bit
        (0x2A, &[0]),                                  // flow action 0
        (0x2A, &[5]),                                  // flow action 5
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

#[test]
fn stream_copy_bytes() {
    let m = Message::StreamCopy(xoq_wire::StreamCopy {
        stream: 4,
        seq: 2,
        message: Box::new(Message::Data(b"hi".to_vec())),
    });
    #[rustfmt::skip]
    let expected = [
        0x60,                   // type StreamCopy
        0x00, 0x00, 0x00, 0x17, // body length 23
        0, 0, 0, 0, 0, 0, 0, 4, // stream 4
        0, 0, 0, 0, 0, 0, 0, 2, // seq 2
        0x20,                   // the copied message: Data
        0x00, 0x00, 0x00, 0x02, // its body length 2
        b'h', b'i',
    ];
    assert_eq!(m.to_bytes(), expected);
    assert_eq!(Message::from_frame(&expected), Ok(m));
}
