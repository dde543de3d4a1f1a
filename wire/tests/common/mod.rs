//! Shared by the wire property tests and byte-layout tests: value strategies for every
//! message and helpers to take frames apart.
#![allow(dead_code)]

use proptest::prelude::*;
use xoq_wire::limits::{
    MAX_AUDIO_DATA, MAX_BAUD, MAX_BODY, MAX_BREAK_MS, MAX_DATA, MAX_DEVICE_INFO, MAX_FRAME,
    MAX_MODES, MAX_NAME, MAX_SETTINGS, MAX_TEXT,
};
use xoq_wire::message::HEADER_LEN;
use xoq_wire::{
    Access, AudioDirection, AudioFormat, AudioPacket, AudioSettings, BusState, CameraSettings,
    CanCounters, CanFrame, CanSettings, Delivery, DeviceInfo, DeviceKind, DeviceSettings,
    ErrorCode, FlowAction, FlowControl, FlushQueue, FrameDecoder, Hello, LineSettings, Message,
    ModemLines, ModemStatus, Parity, Refusal, SampleFormat, StopBits, StreamCopy, VideoCodec,
    VideoFrame, VideoMode, Welcome, WireError,
};

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// A string of at most `max` bytes of UTF-8: arbitrary characters (multi-byte included), an
/// ASCII string of exactly `max` bytes, or a multi-byte string filling the limit exactly.
pub fn text(max: usize) -> impl Strategy<Value = String> {
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

/// A valid name (see `xoq_wire::name`), up to the longest allowed.
pub fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
        1 => Just("n".repeat(MAX_NAME)),
    ]
}

pub fn bytes_up_to(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), 0..=max.min(4096)),
        1 => any::<u8>().prop_map(move |b| vec![b; max]),
    ]
}

pub fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..=4096),
        1 => Just(Vec::new()),
        1 => any::<u8>().prop_map(|b| vec![b; MAX_DATA]),
    ]
}

pub fn parity() -> impl Strategy<Value = Parity> {
    prop::sample::select(vec![
        Parity::None,
        Parity::Odd,
        Parity::Even,
        Parity::Mark,
        Parity::Space,
    ])
}

pub fn stop_bits() -> impl Strategy<Value = StopBits> {
    prop::sample::select(vec![StopBits::One, StopBits::Two])
}

pub fn flow() -> impl Strategy<Value = FlowControl> {
    prop::sample::select(vec![
        FlowControl::None,
        FlowControl::Software,
        FlowControl::SoftwareAnyRestarts,
        FlowControl::Hardware,
    ])
}

pub fn flow_action() -> impl Strategy<Value = FlowAction> {
    prop::sample::select(vec![
        FlowAction::SuspendOutput,
        FlowAction::RestartOutput,
        FlowAction::SendStop,
        FlowAction::SendStart,
    ])
}

pub fn baud() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 1..=MAX_BAUD,
        1 => prop::sample::select(vec![1, 50, 9600, 115_200, 1_000_000, MAX_BAUD]),
    ]
}

pub fn line_settings() -> impl Strategy<Value = LineSettings> {
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

pub fn modem_lines() -> impl Strategy<Value = ModemLines> {
    (any::<bool>(), any::<bool>()).prop_map(|(dtr, rts)| ModemLines { dtr, rts })
}

pub fn modem_status() -> impl Strategy<Value = ModemStatus> {
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

pub fn flush_queue() -> impl Strategy<Value = FlushQueue> {
    prop::sample::select(vec![
        FlushQueue::Input,
        FlushQueue::Output,
        FlushQueue::Both,
    ])
}

pub fn access() -> impl Strategy<Value = Access> {
    prop::sample::select(vec![Access::ReadOnly, Access::ReadWrite])
}

/// Every code, known or not, in its canonical form (`Other(n)` only for unassigned `n`).
pub fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        3 => (1u16..=12).prop_map(ErrorCode::from_u16),
        1 => any::<u16>().prop_map(ErrorCode::from_u16),
    ]
}

pub fn can_settings() -> impl Strategy<Value = CanSettings> {
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
pub fn can_frame() -> impl Strategy<Value = CanFrame> {
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

pub fn video_mode() -> impl Strategy<Value = VideoMode> {
    (
        1..=VideoMode::MAX_SIDE / 2,
        1..=VideoMode::MAX_SIDE / 2,
        1..=VideoMode::MAX_FPS,
    )
        .prop_map(|(w, h, fps)| VideoMode {
            width: w * 2,
            height: h * 2,
            fps,
        })
}

pub fn video_codec() -> impl Strategy<Value = VideoCodec> {
    prop_oneof![Just(VideoCodec::H264), Just(VideoCodec::Mjpeg)]
}

pub fn camera_settings() -> impl Strategy<Value = CameraSettings> {
    (
        video_codec(),
        video_mode(),
        prop::collection::vec(video_mode(), 0..=MAX_MODES),
    )
        .prop_map(|(codec, mode, modes)| CameraSettings { codec, mode, modes })
}

pub fn video_frame() -> impl Strategy<Value = VideoFrame> {
    (
        name(),
        any::<u32>(),
        any::<u64>(),
        any::<bool>(),
        video_codec(),
        any::<(u16, u16)>(),
        bytes_up_to(4096),
    )
        .prop_map(
            |(device, seq, capture_us, keyframe, codec, (width, height), data)| VideoFrame {
                device,
                seq,
                capture_us,
                keyframe,
                codec,
                width,
                height,
                data,
            },
        )
}

pub fn audio_settings() -> impl Strategy<Value = AudioSettings> {
    (
        prop_oneof![
            Just(AudioDirection::Capture),
            Just(AudioDirection::Playback)
        ],
        AudioFormat::MIN_RATE..=AudioFormat::MAX_RATE,
        1..=AudioFormat::MAX_CHANNELS,
        prop_oneof![
            Just(SampleFormat::S16),
            Just(SampleFormat::F32),
            Just(SampleFormat::Opus)
        ],
        any::<u16>(),
    )
        .prop_map(|(direction, rate, channels, sample, frames)| {
            let format = match sample {
                // Opus: one of its rates, mono or stereo, one of its frame lengths.
                SampleFormat::Opus => AudioFormat {
                    rate: AudioFormat::OPUS_RATES[rate as usize % 5],
                    channels: 1 + channels % 2,
                    sample,
                },
                _ => AudioFormat {
                    rate,
                    channels,
                    sample,
                },
            };
            let packet_frames = match format.pcm_frame_bytes() {
                Some(b) => 1 + frames % (MAX_AUDIO_DATA / b) as u16,
                None => (format.rate / 100) as u16 * (1 + frames % 2),
            };
            AudioSettings {
                direction,
                format,
                packet_frames,
            }
        })
}

pub fn audio_packet() -> impl Strategy<Value = AudioPacket> {
    (name(), any::<u32>(), any::<u64>(), bytes_up_to(2048)).prop_map(
        |(device, seq, capture_us, data)| AudioPacket {
            device,
            seq,
            capture_us,
            data,
        },
    )
}

/// A catalog entry. Serial devices carry serial settings; every other kind (canonical
/// `Other(n)`, n != 1) carries an opaque blob of at most `MAX_SETTINGS` bytes.
pub fn device_info() -> impl Strategy<Value = DeviceInfo> {
    let serial = (line_settings(), modem_status())
        .prop_map(|(line, modem)| (DeviceKind::Serial, DeviceSettings::Serial { line, modem }));
    let can = can_settings().prop_map(|c| (DeviceKind::Can, DeviceSettings::Can(c)));
    let camera = camera_settings().prop_map(|c| (DeviceKind::Camera, DeviceSettings::Camera(c)));
    let audio = audio_settings().prop_map(|a| (DeviceKind::Audio, DeviceSettings::Audio(a)));
    let other = (
        any::<u8>().prop_filter("1 is Serial, 2 is Can, 3 is Camera, 4 is Audio", |k| {
            !(1..=4).contains(k)
        }),
        bytes_up_to(MAX_SETTINGS),
    )
        .prop_map(|(k, blob)| (DeviceKind::Other(k), DeviceSettings::Opaque(blob)));
    (
        name(),
        prop_oneof![3 => serial, 2 => can, 2 => camera, 2 => audio, 1 => other],
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

pub fn message() -> impl Strategy<Value = Message> {
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
            .prop_map(|(version, server_name, mut devices)| {
                // A catalog names each device once.
                let mut seen = std::collections::HashSet::new();
                devices.retain(|d| seen.insert(d.name.clone()));
                Message::Welcome(Welcome {
                    version,
                    server_name,
                    devices,
                })
            }),
        (error_code(), text(MAX_TEXT))
            .prop_map(|(code, text)| Message::Refused(Refusal { code, text })),
        (name(), access(), any::<u64>(), any::<bool>()).prop_map(
            |(device, access, writer, latest)| Message::Open {
                device,
                access,
                writer,
                delivery: if latest {
                    Delivery::Latest
                } else {
                    Delivery::Ordered
                },
            }
        ),
        device_info().prop_map(Message::Opened),
        (error_code(), text(MAX_TEXT)).prop_map(|(code, text)| Message::Error { code, text }),
        data().prop_map(Message::Data),
        line_settings().prop_map(Message::LineSettings),
        modem_lines().prop_map(Message::SetModem),
        modem_status().prop_map(Message::ModemStatus),
        (0..=MAX_BREAK_MS).prop_map(|duration_ms| Message::Break { duration_ms }),
        any::<bool>().prop_map(Message::SetBreak),
        flush_queue().prop_map(Message::Flush),
        flow_action().prop_map(Message::Flow),
        any::<u32>().prop_map(|seq| Message::Drain { seq }),
        any::<u32>().prop_map(|seq| Message::Drained { seq }),
        (any::<u64>(), any::<u32>())
            .prop_map(|(written, queued)| Message::TxProgress { written, queued }),
        prop::collection::vec(can_frame(), 0..20).prop_map(Message::CanFrames),
        (any::<[u64; 7]>(), any::<u8>()).prop_map(|(v, st)| Message::CanCounters(CanCounters {
            tx_superseded: if st & 0x80 != 0 { v[6] } else { 0 },
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
        video_mode().prop_map(Message::VideoMode),
        Just(Message::KeyframeRequest),
        Just(Message::Probe),
        video_frame().prop_map(Message::VideoFrame),
        audio_packet().prop_map(Message::AudioPacket),
        stream_copy().prop_map(Message::StreamCopy),
    ]
}

/// A copy of a small `Data` or `CanFrames` message.
pub fn stream_copy() -> impl Strategy<Value = StreamCopy> {
    let copied = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..1000).prop_map(Message::Data),
        prop::collection::vec(can_frame(), 0..10).prop_map(Message::CanFrames),
    ];
    (any::<u64>(), any::<u64>(), copied).prop_map(|(stream, seq, m)| StreamCopy {
        stream,
        seq,
        message: Box::new(m),
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Largest body each known type may declare, as the protocol specifies it.
pub const TYPE_LIMITS: &[(u8, usize)] = &[
    (0x01, 4 + 2 + MAX_NAME),
    (0x02, MAX_BODY),
    (0x03, 2 + 2 + MAX_TEXT),
    (0x10, 2 + MAX_NAME + 1 + 8 + 1),
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
    (0x28, 1),
    (0x29, 12),
    (0x2A, 1),
    (0x30, 2 + 256 * (14 + 64)),
    (0x31, 49 + 8),
    (0x32, 16),
    (0x40, 6),
    (0x41, 0),
    (0x42, 2 + MAX_NAME + 4 + 8 + 1 + 1 + 2 + 2 + 4 + MAX_FRAME),
    (0x50, 2 + MAX_NAME + 4 + 8 + 2 + MAX_AUDIO_DATA),
    (0x60, 8 + 8 + 1024),
    (0x61, 0),
];

pub fn limit_of(t: u8) -> Option<usize> {
    TYPE_LIMITS
        .iter()
        .find(|(ty, _)| *ty == t)
        .map(|(_, max)| *max)
}

pub fn header(t: u8, len: u32) -> [u8; HEADER_LEN] {
    let l = len.to_be_bytes();
    [t, l[0], l[1], l[2], l[3]]
}

/// Splits the encoding into (type, body), checking the header against the body.
pub fn split_frame(bytes: &[u8]) -> (u8, &[u8]) {
    assert!(bytes.len() >= HEADER_LEN);
    let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    assert_eq!(
        len,
        bytes.len() - HEADER_LEN,
        "header length must match the body"
    );
    (bytes[0], &bytes[HEADER_LEN..])
}

pub fn drain(dec: &mut FrameDecoder, out: &mut Vec<Message>) -> Result<(), WireError> {
    while let Some(m) = dec.next_message()? {
        out.push(m);
    }
    Ok(())
}
