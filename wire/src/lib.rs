//! `xoq-wire`: the XoQ mount protocol, sans-IO.
//!
//! This crate owns every byte that crosses the link: the versioned handshake, the device
//! catalog, opening a device, and the per-kind messages (serial, CAN, camera, audio). It performs no I/O and
//! reads no clock, so every rule is testable without a socket. Every length is checked against
//! a limit in [`limits`] before anything is allocated.
//!
//! Framing: each message is `type: u8`, `len: u32 BE`, then `len` body bytes. See
//! `docs/PROTOCOL.md` for the normative description.
#![forbid(unsafe_code)]

pub mod audio;
pub mod can;
pub mod catalog;
mod codec;
pub mod copy;
pub mod decoder;
pub mod error;
pub mod handshake;
pub mod latest;
pub mod limits;
pub mod message;
pub mod name;
pub mod serial;
pub mod serial_tx;
pub mod video;

pub use audio::{AudioDirection, AudioFormat, AudioPacket, AudioSettings, SampleFormat};
pub use can::{BusState, CanCounters, CanFrame, CanSettings};
pub use catalog::{Access, DeviceInfo, DeviceKind, DeviceSettings};
pub use copy::{CopyGate, StreamCopy};
pub use decoder::FrameDecoder;
pub use error::{ErrorCode, WireError};
pub use handshake::{negotiate_version, Hello, Refusal, Welcome};
pub use latest::{Delivery, LatestGate};
pub use message::{Message, Peer};
pub use name::{check_name, is_valid_name};
pub use serial::{
    FlowAction, FlowControl, FlushQueue, LineSettings, ModemLines, ModemStatus, Parity, StopBits,
};
pub use serial_tx::TxLedger;
pub use video::{CameraSettings, VideoCodec, VideoFrame, VideoMode};

/// The ALPN identifier of the protocol on an iroh/QUIC connection (its version is negotiated
/// in `Hello`).
pub const ALPN: &[u8] = b"xoq/1";

/// Protocol versions this build speaks (inclusive range).
/// Version 2 added the serial writer's resumption (`Open.writer`) and `TxProgress`.
pub const MIN_VERSION: u16 = 2;
/// Highest protocol version this build speaks.
/// Version 3 added stream copies (`StreamCopy` datagrams beside serial and CAN streams).
/// Version 4 added latest-wins delivery of a CAN bus (`Open.delivery`, `latest`).
/// Version 5 added `Probe` datagrams after camera frames.
pub const MAX_VERSION: u16 = 5;
/// The first version in which both ends send and take stream copies.
pub const COPIES_VERSION: u16 = 3;
/// The first version in which a client may ask for latest-wins delivery of a CAN bus.
pub const LATEST_VERSION: u16 = 4;
/// The first version in which a server may send `Probe` datagrams (and a client takes them).
pub const PROBES_VERSION: u16 = 5;
