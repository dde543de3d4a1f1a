//! The device catalog a server announces in its `Welcome`.

use crate::audio::AudioSettings;
use crate::can::CanSettings;
use crate::codec::{Reader, Writer};
use crate::error::WireError;
use crate::limits::{MAX_NAME, MAX_SETTINGS};
use crate::serial::{LineSettings, ModemStatus};
use crate::video::CameraSettings;

/// What sort of hardware a device is. Unknown kinds from newer servers are kept, not refused,
/// so an old mounter can still mount the kinds it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    Serial,
    Can,
    Camera,
    Audio,
    Other(u8),
}

impl DeviceKind {
    pub fn to_u8(self) -> u8 {
        match self {
            DeviceKind::Serial => 1,
            DeviceKind::Can => 2,
            DeviceKind::Camera => 3,
            DeviceKind::Audio => 4,
            DeviceKind::Other(v) => v,
        }
    }
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => DeviceKind::Serial,
            2 => DeviceKind::Can,
            3 => DeviceKind::Camera,
            4 => DeviceKind::Audio,
            v => DeviceKind::Other(v),
        }
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceKind::Serial => f.write_str("serial"),
            DeviceKind::Can => f.write_str("can"),
            DeviceKind::Camera => f.write_str("camera"),
            DeviceKind::Audio => f.write_str("audio"),
            DeviceKind::Other(v) => write!(f, "kind-{v}"),
        }
    }
}

/// How a client may use a device, as granted by the server (or requested by the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

impl Access {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Access::ReadOnly => 0,
            Access::ReadWrite => 1,
        }
    }
    pub(crate) fn from_u8(v: u8) -> Result<Self, WireError> {
        match v {
            0 => Ok(Access::ReadOnly),
            1 => Ok(Access::ReadWrite),
            v => Err(WireError::BadValue {
                field: "access",
                value: v.into(),
            }),
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Access::ReadOnly => "ro",
            Access::ReadWrite => "rw",
        })
    }
}

/// Current settings of a device, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSettings {
    Serial {
        line: LineSettings,
        modem: ModemStatus,
    },
    Can(CanSettings),
    Camera(CameraSettings),
    Audio(AudioSettings),
    /// Settings of a kind this build does not know, kept opaque.
    Opaque(Vec<u8>),
}

/// Capability bits of a serial device.
pub mod serial_caps {
    /// The port applies line settings (baud, framing, flow control).
    pub const LINE_SETTINGS: u32 = 1 << 0;
    /// The port has DTR/RTS outputs and reports CTS/DSR/DCD/RI.
    pub const MODEM_LINES: u32 = 1 << 1;
    /// The port can send a break.
    pub const BREAK: u32 = 1 << 2;
    /// Any baud rate, not only the standard table.
    pub const ARBITRARY_BAUD: u32 = 1 << 3;
}

/// Capability bits of a CAN device.
pub mod can_caps {
    /// The bus carries CAN FD frames.
    pub const FD: u32 = 1 << 0;
    /// Error frames are reported.
    pub const ERROR_FRAMES: u32 = 1 << 1;
    /// Frames carry the kernel's receive timestamp.
    pub const TIMESTAMPS: u32 = 1 << 2;
}

/// Capability bits of a camera.
pub mod camera_caps {
    /// The server encodes (H.264) and honours keyframe requests.
    pub const KEYFRAME_ON_REQUEST: u32 = 1 << 0;
    /// The camera's modes can be switched by a read-write client.
    pub const MODE_SWITCH: u32 = 1 << 1;
}

/// One entry of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Name the server gives the device, e.g. `ttyUSB0`; what a client opens.
    pub name: String,
    pub kind: DeviceKind,
    /// The most this client is allowed to do with the device.
    pub access: Access,
    /// Kind-specific capability bits (see [`serial_caps`]).
    pub capabilities: u32,
    pub settings: DeviceSettings,
}

impl DeviceInfo {
    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.str(&self.name, MAX_NAME);
        w.u8(self.kind.to_u8());
        w.u8(self.access.to_u8());
        w.u32(self.capabilities);
        let mut blob = Vec::new();
        encode_settings(&self.settings, &mut Writer(&mut blob));
        w.bytes16(&blob);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let name = r.name("device_name")?;
        let kind = DeviceKind::from_u8(r.u8("kind")?);
        let access = Access::from_u8(r.u8("access")?)?;
        let capabilities = r.u32("capabilities")?;
        let blob = r.bytes16("settings", MAX_SETTINGS)?;
        let settings = decode_settings(kind, blob)?;
        Ok(DeviceInfo {
            name,
            kind,
            access,
            capabilities,
            settings,
        })
    }
}

pub(crate) fn encode_settings(s: &DeviceSettings, w: &mut Writer<'_>) {
    match s {
        DeviceSettings::Serial { line, modem } => {
            line.encode(w);
            w.u8(modem.to_bits());
        }
        DeviceSettings::Can(c) => c.encode(w),
        DeviceSettings::Camera(c) => c.encode(w),
        DeviceSettings::Audio(a) => a.encode(w),
        DeviceSettings::Opaque(b) => w.0.extend_from_slice(&b[..b.len().min(MAX_SETTINGS)]),
    }
}

pub(crate) fn decode_settings(kind: DeviceKind, blob: &[u8]) -> Result<DeviceSettings, WireError> {
    match kind {
        DeviceKind::Serial => {
            let mut r = Reader::new(0, blob);
            let line = LineSettings::decode(&mut r)?;
            let modem = ModemStatus::from_bits(r.u8("modem_status")?)?;
            r.finish()?;
            Ok(DeviceSettings::Serial { line, modem })
        }
        DeviceKind::Can => {
            let mut r = Reader::new(0, blob);
            let c = CanSettings::decode(&mut r)?;
            r.finish()?;
            Ok(DeviceSettings::Can(c))
        }
        DeviceKind::Camera => {
            let mut r = Reader::new(0, blob);
            let c = CameraSettings::decode(&mut r)?;
            r.finish()?;
            Ok(DeviceSettings::Camera(c))
        }
        DeviceKind::Audio => {
            let mut r = Reader::new(0, blob);
            let a = AudioSettings::decode(&mut r)?;
            r.finish()?;
            Ok(DeviceSettings::Audio(a))
        }
        DeviceKind::Other(_) => Ok(DeviceSettings::Opaque(blob.to_vec())),
    }
}
