//! Every message of protocol v2, with its encoding and decoding.

use crate::audio::AudioPacket;
use crate::can::{CanCounters, CanFrame, FRAME_HEADER, MAX_BATCH};
use crate::catalog::{Access, DeviceInfo};
use crate::codec::{Reader, Writer};
use crate::copy::{StreamCopy, MAX_COPY_BODY};
use crate::error::{ErrorCode, WireError};
use crate::handshake::{Hello, Refusal, Welcome};
use crate::latest::Delivery;
use crate::limits::{
    MAX_AUDIO_DATA, MAX_BODY, MAX_BREAK_MS, MAX_DATA, MAX_DEVICES, MAX_DEVICE_INFO, MAX_FRAME,
    MAX_NAME, MAX_TEXT,
};
use crate::serial::{FlowAction, FlushQueue, LineSettings, ModemLines, ModemStatus};
use crate::video::{VideoFrame, VideoMode};

/// Bytes before every body: type (1) and body length (4, big-endian).
pub const HEADER_LEN: usize = 5;

/// One protocol message. Control-stream messages come first, then device-stream messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// client -> server, first on the control stream.
    Hello(Hello),
    /// server -> client, answer to `Hello`.
    Welcome(Welcome),
    /// server -> client, instead of `Welcome`; the connection closes after it.
    Refused(Refusal),
    /// client -> server, first on a device stream. `writer` names the client's writer of a
    /// serial port across reconnections (0: none): a read-write open with the `writer` of a
    /// stream of the same client takes that stream's place, and the port's first `TxProgress`
    /// says how much of what was sent under that name it wrote, so the rest is sent again.
    /// `delivery` (version 4, CAN only) asks for latest-wins delivery both ways
    /// (`xoq_wire::latest`); it is encoded only when not `Ordered`, so a version-3 peer reads
    /// every open it can serve.
    Open {
        device: String,
        access: Access,
        writer: u64,
        delivery: Delivery,
    },
    /// server -> client, the device is open; carries its current catalog entry.
    Opened(DeviceInfo),
    /// either way: something failed. After an `Open`, or with code `Malformed`, the stream ends.
    Error { code: ErrorCode, text: String },
    /// Serial bytes: client -> server to transmit, server -> client as received.
    Data(Vec<u8>),
    /// client -> server: apply these settings. server -> client: the settings now in force.
    LineSettings(LineSettings),
    /// client -> server: drive DTR and RTS together.
    SetModem(ModemLines),
    /// server -> client: the modem lines changed (or the reply to `SetModem`).
    ModemStatus(ModemStatus),
    /// client -> server: send a break of this many milliseconds (0 = the driver's default).
    Break { duration_ms: u16 },
    /// client -> server: hold the line in break (`true`) until released (`false`), as the
    /// `TIOCSBRK` / `TIOCCBRK` ioctls do.
    SetBreak(bool),
    /// client -> server: discard buffered data, as `tcflush`.
    Flush(FlushQueue),
    /// client -> server: `tcflow`, applied at once (not after the data queued before it).
    Flow(FlowAction),
    /// client -> server: answer with `Drained` once all earlier data has left the port.
    Drain { seq: u32 },
    /// server -> client: every byte written before `Drain { seq }` has been transmitted.
    Drained { seq: u32 },
    /// server -> client, serial: `written` bytes of data sent under this stream's `writer`
    /// (of this stream alone when it has none) have been handed to the port, which still holds
    /// `queued` of all it was given. First after `Opened` of a read-write stream, then soon
    /// after the port took data (docs/PROTOCOL.md §7).
    TxProgress { written: u64, queued: u32 },
    /// CAN frames, either way: client -> server to send on the bus, server -> client as the
    /// bus carried them. A batch holds only frames that were ready at once: no waiting.
    CanFrames(Vec<CanFrame>),
    /// server -> client: the device's counters, sent when they change (at most every 100 ms).
    CanCounters(CanCounters),
    /// Clock comparison: the client sends its time; the server answers with both, so the
    /// client can stamp frames in the server's clock for the maximum-age check.
    TimeSync { client_us: u64, server_us: u64 },
    /// client -> server: switch the camera to this mode. server -> client: the mode in force
    /// (at open, and after every switch).
    VideoMode(VideoMode),
    /// client -> server: make the next frame a keyframe (after a join or a loss).
    KeyframeRequest,
    /// server -> client, alone on its own unidirectional stream: one encoded frame.
    VideoFrame(VideoFrame),
    /// Either way, alone in one QUIC datagram: samples of a microphone (server -> client) or
    /// for a speaker (client -> server).
    AudioPacket(AudioPacket),
    /// Either way, alone in one QUIC datagram (version 3): a copy of a small `Data` or
    /// `CanFrames` message sent on a device stream, taken by the receiver if it arrives first
    /// (see `copy`).
    StreamCopy(StreamCopy),
    /// server -> client, alone in one QUIC datagram (version 5): nothing. Sent just after a
    /// camera frame's last bytes, so that the client's acknowledgement of it shows the sender
    /// a lost tail of the frame a round trip later, instead of when the next frame is
    /// acknowledged or the probe timer fires. The client takes it and counts it.
    Probe,
}

pub(crate) mod ty {
    pub const HELLO: u8 = 0x01;
    pub const WELCOME: u8 = 0x02;
    pub const REFUSED: u8 = 0x03;
    pub const OPEN: u8 = 0x10;
    pub const OPENED: u8 = 0x11;
    pub const ERROR: u8 = 0x12;
    pub const DATA: u8 = 0x20;
    pub const LINE_SETTINGS: u8 = 0x21;
    pub const SET_MODEM: u8 = 0x22;
    pub const MODEM_STATUS: u8 = 0x23;
    pub const BREAK: u8 = 0x24;
    pub const FLUSH: u8 = 0x25;
    pub const DRAIN: u8 = 0x26;
    pub const DRAINED: u8 = 0x27;
    pub const SET_BREAK: u8 = 0x28;
    pub const TX_PROGRESS: u8 = 0x29;
    pub const FLOW: u8 = 0x2A;
    pub const CAN_FRAMES: u8 = 0x30;
    pub const CAN_COUNTERS: u8 = 0x31;
    pub const TIME_SYNC: u8 = 0x32;
    pub const VIDEO_MODE: u8 = 0x40;
    pub const KEYFRAME_REQUEST: u8 = 0x41;
    pub const VIDEO_FRAME: u8 = 0x42;
    pub const AUDIO_PACKET: u8 = 0x50;
    pub const STREAM_COPY: u8 = 0x60;
    pub const PROBE: u8 = 0x61;
}

/// Which end of a connection sends a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Client,
    Server,
}

/// Whether `peer` may send messages of type `t` (docs/PROTOCOL.md §4): a decoder that knows
/// who is at the other end refuses a type that only travels the other way before buffering
/// its body (a client's 8 MiB "VideoFrame", say).
pub(crate) fn may_send(peer: Peer, t: u8) -> bool {
    let client = matches!(
        t,
        ty::HELLO
            | ty::OPEN
            | ty::SET_MODEM
            | ty::BREAK
            | ty::SET_BREAK
            | ty::FLUSH
            | ty::FLOW
            | ty::DRAIN
            | ty::KEYFRAME_REQUEST
    );
    let server = matches!(
        t,
        ty::WELCOME
            | ty::REFUSED
            | ty::OPENED
            | ty::MODEM_STATUS
            | ty::DRAINED
            | ty::TX_PROGRESS
            | ty::CAN_COUNTERS
            | ty::VIDEO_FRAME
            | ty::PROBE
    );
    match peer {
        Peer::Client => !server,
        Peer::Server => !client,
    }
}

/// Largest body each type may declare; checked before the body is buffered.
pub(crate) fn max_body(t: u8) -> Option<usize> {
    Some(match t {
        ty::HELLO => 4 + 2 + MAX_NAME,
        ty::WELCOME => MAX_BODY,
        ty::REFUSED | ty::ERROR => 2 + 2 + MAX_TEXT,
        ty::OPEN => 2 + MAX_NAME + 1 + 8 + 1,
        ty::OPENED => MAX_DEVICE_INFO,
        ty::DATA => MAX_DATA,
        ty::LINE_SETTINGS => LineSettings::ENCODED_LEN,
        ty::SET_MODEM | ty::MODEM_STATUS | ty::FLUSH | ty::SET_BREAK | ty::FLOW => 1,
        ty::BREAK => 2,
        ty::DRAIN | ty::DRAINED => 4,
        ty::TX_PROGRESS => 12,
        ty::CAN_FRAMES => 2 + MAX_BATCH * (FRAME_HEADER + 64),
        ty::CAN_COUNTERS => CanCounters::ENCODED_LEN,
        ty::TIME_SYNC => 16,
        ty::VIDEO_MODE => VideoMode::ENCODED_LEN,
        ty::KEYFRAME_REQUEST | ty::PROBE => 0,
        ty::VIDEO_FRAME => VideoFrame::MAX_HEADER + MAX_FRAME,
        ty::AUDIO_PACKET => AudioPacket::MAX_HEADER + MAX_AUDIO_DATA,
        ty::STREAM_COPY => MAX_COPY_BODY,
        _ => return None,
    })
}

impl Message {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello(_) => "Hello",
            Message::Welcome(_) => "Welcome",
            Message::Refused(_) => "Refused",
            Message::Open { .. } => "Open",
            Message::Opened(_) => "Opened",
            Message::Error { .. } => "Error",
            Message::Data(_) => "Data",
            Message::LineSettings(_) => "LineSettings",
            Message::SetModem(_) => "SetModem",
            Message::ModemStatus(_) => "ModemStatus",
            Message::Break { .. } => "Break",
            Message::SetBreak(_) => "SetBreak",
            Message::Flush(_) => "Flush",
            Message::Flow(_) => "Flow",
            Message::Drain { .. } => "Drain",
            Message::Drained { .. } => "Drained",
            Message::TxProgress { .. } => "TxProgress",
            Message::CanFrames(_) => "CanFrames",
            Message::CanCounters(_) => "CanCounters",
            Message::TimeSync { .. } => "TimeSync",
            Message::VideoMode(_) => "VideoMode",
            Message::KeyframeRequest => "KeyframeRequest",
            Message::VideoFrame(_) => "VideoFrame",
            Message::AudioPacket(_) => "AudioPacket",
            Message::StreamCopy(_) => "StreamCopy",
            Message::Probe => "Probe",
        }
    }

    /// Appends the framed message (header and body) to `out`.
    ///
    /// Data longer than [`MAX_DATA`] and catalogs longer than [`MAX_DEVICES`] are the caller's
    /// bug; they are truncated here so that the peer never receives an over-limit frame.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        let mut w = Writer(out);
        let t = match self {
            Message::Hello(h) => {
                w.u16(h.min_version);
                w.u16(h.max_version);
                w.str(&h.client_name, MAX_NAME);
                ty::HELLO
            }
            Message::Welcome(wl) => {
                w.u16(wl.version);
                w.str(&wl.server_name, MAX_NAME);
                let n = wl.devices.len().min(MAX_DEVICES);
                w.u16(n as u16);
                for d in &wl.devices[..n] {
                    d.encode(&mut w);
                }
                ty::WELCOME
            }
            Message::Refused(r) => {
                w.u16(r.code.to_u16());
                w.str(&r.text, MAX_TEXT);
                ty::REFUSED
            }
            Message::Open {
                device,
                access,
                writer,
                delivery,
            } => {
                w.str(device, MAX_NAME);
                w.u8(access.to_u8());
                w.u64(*writer);
                if *delivery != Delivery::Ordered {
                    w.u8(delivery.to_u8());
                }
                ty::OPEN
            }
            Message::Opened(info) => {
                info.encode(&mut w);
                ty::OPENED
            }
            Message::Error { code, text } => {
                w.u16(code.to_u16());
                w.str(text, MAX_TEXT);
                ty::ERROR
            }
            Message::Data(d) => {
                w.0.extend_from_slice(&d[..d.len().min(MAX_DATA)]);
                ty::DATA
            }
            Message::LineSettings(s) => {
                s.encode(&mut w);
                ty::LINE_SETTINGS
            }
            Message::SetModem(m) => {
                w.u8(m.to_bits());
                ty::SET_MODEM
            }
            Message::ModemStatus(m) => {
                w.u8(m.to_bits());
                ty::MODEM_STATUS
            }
            Message::Break { duration_ms } => {
                w.u16(*duration_ms);
                ty::BREAK
            }
            Message::SetBreak(on) => {
                w.u8(u8::from(*on));
                ty::SET_BREAK
            }
            Message::Flush(q) => {
                w.u8(q.to_u8());
                ty::FLUSH
            }
            Message::Flow(a) => {
                w.u8(a.to_u8());
                ty::FLOW
            }
            Message::Drain { seq } => {
                w.u32(*seq);
                ty::DRAIN
            }
            Message::Drained { seq } => {
                w.u32(*seq);
                ty::DRAINED
            }
            Message::TxProgress { written, queued } => {
                w.u64(*written);
                w.u32(*queued);
                ty::TX_PROGRESS
            }
            Message::CanFrames(frames) => {
                let n = frames.len().min(MAX_BATCH);
                w.u16(n as u16);
                for f in &frames[..n] {
                    f.encode(&mut w);
                }
                ty::CAN_FRAMES
            }
            Message::CanCounters(c) => {
                c.encode(&mut w);
                ty::CAN_COUNTERS
            }
            Message::TimeSync {
                client_us,
                server_us,
            } => {
                w.u64(*client_us);
                w.u64(*server_us);
                ty::TIME_SYNC
            }
            Message::VideoMode(m) => {
                m.encode(&mut w);
                ty::VIDEO_MODE
            }
            Message::KeyframeRequest => ty::KEYFRAME_REQUEST,
            Message::VideoFrame(f) => {
                f.encode(&mut w);
                ty::VIDEO_FRAME
            }
            Message::AudioPacket(p) => {
                p.encode(&mut w);
                ty::AUDIO_PACKET
            }
            Message::StreamCopy(c) => {
                c.encode(&mut w);
                ty::STREAM_COPY
            }
            Message::Probe => ty::PROBE,
        };
        let len = (out.len() - start - HEADER_LEN) as u32;
        out[start] = t;
        out[start + 1..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    }

    /// Encodes into a fresh buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }

    /// Decodes a buffer holding exactly one framed message (header and body), as a datagram
    /// does.
    pub fn from_frame(bytes: &[u8]) -> Result<Message, WireError> {
        let Some((head, body)) = bytes.split_at_checked(HEADER_LEN) else {
            return Err(WireError::Truncated {
                ty: bytes.first().copied().unwrap_or(0),
                field: "header",
            });
        };
        let t = head[0];
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len < body.len() {
            return Err(WireError::TrailingBytes {
                ty: t,
                extra: body.len() - len,
            });
        }
        if len > body.len() {
            return Err(WireError::Truncated {
                ty: t,
                field: "body",
            });
        }
        Message::decode(t, body)
    }

    /// Decodes `bytes` as exactly one framed message sent by `peer` (a relay frame): a type
    /// only the other end sends is refused from its header, before its body is looked at.
    pub fn from_frame_by(bytes: &[u8], peer: Peer) -> Result<Message, WireError> {
        if let Some(&t) = bytes.first() {
            if max_body(t).is_some() && !may_send(peer, t) {
                return Err(WireError::WrongDirection { ty: t });
            }
        }
        Message::from_frame(bytes)
    }

    /// Decodes one body of type `t`. The body must be exactly one message.
    pub fn decode(t: u8, body: &[u8]) -> Result<Message, WireError> {
        let max = max_body(t).ok_or(WireError::UnknownType(t))?;
        if body.len() > max {
            return Err(WireError::TooLong {
                ty: t,
                len: body.len(),
                max,
            });
        }
        let mut r = Reader::new(t, body);
        let m = match t {
            ty::HELLO => Message::Hello(Hello {
                min_version: r.u16("min_version")?,
                max_version: r.u16("max_version")?,
                // Informational (logs only), so it may be empty; otherwise a valid name.
                client_name: {
                    let n = r.str("client_name", MAX_NAME)?;
                    if !n.is_empty() {
                        crate::name::check_name("client_name", &n)?;
                    }
                    n
                },
            }),
            ty::WELCOME => {
                let version = r.u16("version")?;
                let server_name = r.name("server_name")?;
                let n = usize::from(r.u16("device_count")?);
                if n > MAX_DEVICES {
                    return Err(WireError::TooMany {
                        field: "devices",
                        count: n,
                        max: MAX_DEVICES,
                    });
                }
                let mut devices: Vec<DeviceInfo> = Vec::with_capacity(n);
                for _ in 0..n {
                    let d = DeviceInfo::decode(&mut r)?;
                    // Two devices of one name: a mounter could not tell their streams apart.
                    if devices.iter().any(|e| e.name == d.name) {
                        return Err(WireError::DuplicateName { name: d.name });
                    }
                    devices.push(d);
                }
                Message::Welcome(Welcome {
                    version,
                    server_name,
                    devices,
                })
            }
            ty::REFUSED => Message::Refused(Refusal {
                code: ErrorCode::from_u16(r.u16("code")?),
                text: r.str("text", MAX_TEXT)?,
            }),
            ty::OPEN => Message::Open {
                device: r.name("device")?,
                access: Access::from_u8(r.u8("access")?)?,
                writer: r.u64("writer")?,
                // Present only when not ordered: one encoding per open.
                delivery: if r.is_empty() {
                    Delivery::Ordered
                } else {
                    match Delivery::from_u8(r.u8("delivery")?)? {
                        Delivery::Ordered => {
                            return Err(WireError::BadValue {
                                field: "delivery",
                                value: 0,
                            })
                        }
                        d => d,
                    }
                },
            },
            ty::OPENED => Message::Opened(DeviceInfo::decode(&mut r)?),
            ty::ERROR => Message::Error {
                code: ErrorCode::from_u16(r.u16("code")?),
                text: r.str("text", MAX_TEXT)?,
            },
            ty::DATA => Message::Data(r.rest().to_vec()),
            ty::LINE_SETTINGS => Message::LineSettings(LineSettings::decode(&mut r)?),
            ty::SET_MODEM => Message::SetModem(ModemLines::from_bits(r.u8("modem_lines")?)?),
            ty::MODEM_STATUS => {
                Message::ModemStatus(ModemStatus::from_bits(r.u8("modem_status")?)?)
            }
            ty::BREAK => {
                let duration_ms = r.u16("duration_ms")?;
                if duration_ms > MAX_BREAK_MS {
                    return Err(WireError::BadValue {
                        field: "duration_ms",
                        value: duration_ms.into(),
                    });
                }
                Message::Break { duration_ms }
            }
            ty::SET_BREAK => Message::SetBreak(match r.u8("break")? {
                0 => false,
                1 => true,
                v => {
                    return Err(WireError::BadValue {
                        field: "break",
                        value: v.into(),
                    })
                }
            }),
            ty::FLUSH => Message::Flush(FlushQueue::from_u8(r.u8("flush_queue")?)?),
            ty::FLOW => Message::Flow(FlowAction::from_u8(r.u8("flow_action")?)?),
            ty::DRAIN => Message::Drain { seq: r.u32("seq")? },
            ty::DRAINED => Message::Drained { seq: r.u32("seq")? },
            ty::TX_PROGRESS => Message::TxProgress {
                written: r.u64("written")?,
                queued: r.u32("queued")?,
            },
            ty::CAN_FRAMES => {
                let n = usize::from(r.u16("frame_count")?);
                if n > MAX_BATCH {
                    return Err(WireError::TooMany {
                        field: "frames",
                        count: n,
                        max: MAX_BATCH,
                    });
                }
                let mut frames = Vec::with_capacity(n);
                for _ in 0..n {
                    frames.push(CanFrame::decode(&mut r)?);
                }
                Message::CanFrames(frames)
            }
            ty::CAN_COUNTERS => Message::CanCounters(CanCounters::decode(&mut r)?),
            ty::TIME_SYNC => Message::TimeSync {
                client_us: r.u64("client_us")?,
                server_us: r.u64("server_us")?,
            },
            ty::VIDEO_MODE => Message::VideoMode(VideoMode::decode(&mut r)?),
            ty::KEYFRAME_REQUEST => Message::KeyframeRequest,
            ty::VIDEO_FRAME => Message::VideoFrame(VideoFrame::decode(&mut r)?),
            ty::AUDIO_PACKET => Message::AudioPacket(AudioPacket::decode(&mut r)?),
            ty::STREAM_COPY => Message::StreamCopy(StreamCopy::decode(&mut r)?),
            ty::PROBE => Message::Probe,
            _ => return Err(WireError::UnknownType(t)),
        };
        r.finish()?;
        Ok(m)
    }
}
