//! A mounted device of any kind: what the supervisor keeps across connections.

use std::sync::Arc;

use xoq_link::client::DeviceStream;
use xoq_wire::Access;

use tokio::sync::mpsc;
use xoq_wire::{AudioPacket, VideoFrame};

use crate::audio::AudioMount;
use crate::camera::CameraMount;
use crate::can::CanMount;
use crate::serial::{bridge, CuseMount, SerialMount};
use crate::status::DeviceStatus;
use crate::transport::Session;

/// Why a device's bridge stopped.
#[derive(Debug)]
pub enum BridgeEnd {
    /// The connection failed; the supervisor reconnects.
    LinkLost(String),
    /// The remote device failed or the server closed its stream; reopen it later.
    DeviceGone(String),
    /// The local device (PTY, vcan) failed: nothing more can be done for it.
    LocalFailed(std::io::Error),
}

#[derive(Clone)]
pub enum Mounted {
    /// A serial port as a PTY.
    Serial(Arc<SerialMount>),
    /// A serial port as a CUSE tty.
    SerialCuse(Arc<CuseMount>),
    Can(Arc<CanMount>),
    Camera(Arc<CameraMount>),
    Audio(Arc<AudioMount>),
}

/// What arrives for a device outside its stream, routed by device name.
pub enum Incoming {
    /// A camera's frames (each on its own unidirectional stream).
    Frames(mpsc::Receiver<VideoFrame>),
    /// A microphone's packets (iroh datagrams, or a relay's audio track).
    Audio(mpsc::Receiver<AudioPacket>),
}

impl Mounted {
    pub fn name(&self) -> &str {
        match self {
            Mounted::Serial(m) => &m.name,
            Mounted::SerialCuse(m) => &m.name,
            Mounted::Can(m) => &m.name,
            Mounted::Camera(m) => &m.name,
            Mounted::Audio(m) => &m.name,
        }
    }
    pub fn access(&self) -> Access {
        match self {
            Mounted::Serial(m) => m.access,
            Mounted::SerialCuse(m) => m.access,
            Mounted::Can(m) => m.access,
            Mounted::Camera(m) => m.access,
            Mounted::Audio(m) => m.access,
        }
    }
    /// The name of this mount's writer of a serial port (0 for other kinds).
    pub fn writer_token(&self) -> u64 {
        match self {
            Mounted::Serial(m) => m.writer_token,
            Mounted::SerialCuse(m) => m.writer_token,
            _ => 0,
        }
    }
    /// How the device's stream is delivered (latest-wins only for a CAN bus that asked).
    pub fn delivery(&self) -> xoq_wire::Delivery {
        match self {
            Mounted::Can(m) => m.delivery,
            _ => xoq_wire::Delivery::Ordered,
        }
    }
    pub fn status(&self) -> &Arc<DeviceStatus> {
        match self {
            Mounted::Serial(m) => &m.status,
            Mounted::SerialCuse(m) => &m.status,
            Mounted::Can(m) => &m.status,
            Mounted::Camera(m) => &m.status,
            Mounted::Audio(m) => &m.status,
        }
    }
    /// What must be listened to before the device is opened (a camera's frames and a
    /// microphone's packets, which the server starts sending at once).
    pub fn listen(&self, session: &Session) -> Option<Incoming> {
        match (self, session) {
            (Mounted::Camera(m), Session::Iroh(s)) => {
                Some(Incoming::Frames(s.frames.listen(&m.name)))
            }
            (Mounted::Camera(m), Session::Relay(r)) => {
                Some(Incoming::Frames(r.frames.listen(&m.name)))
            }
            (Mounted::Audio(m), Session::Iroh(s)) => m.listen(&s.datagrams).map(Incoming::Audio),
            (Mounted::Audio(m), Session::Relay(r)) => m.listen(&r.packets).map(Incoming::Audio),
            _ => None,
        }
    }

    /// Bridges the local device to `stream` until either ends.
    pub async fn bridge(
        &self,
        stream: DeviceStream,
        incoming: Option<Incoming>,
        session: &Session,
    ) -> BridgeEnd {
        match (self, incoming) {
            (Mounted::Serial(m), _) => bridge(m, stream).await,
            (Mounted::SerialCuse(m), _) => m.bridge(stream).await,
            (Mounted::Can(m), _) => m.bridge(stream).await,
            (Mounted::Camera(m), Some(Incoming::Frames(f))) => {
                m.bridge(stream, f, || session.rtt()).await
            }
            (Mounted::Camera(_), _) => {
                BridgeEnd::LinkLost("camera opened without listening for its frames".into())
            }
            (Mounted::Audio(m), incoming) => {
                let packets = match incoming {
                    Some(Incoming::Audio(p)) => Some(p),
                    _ => None,
                };
                m.bridge(stream, packets, session.iroh().map(|s| &**s))
                    .await
            }
        }
    }
    /// Removes the local device (link or interface) and says so.
    pub fn unmount(&self) {
        match self {
            Mounted::Serial(m) => {
                m.link.remove();
                println!("unmounted  serial  {}  ({})", m.name, m.link.path.display());
            }
            Mounted::SerialCuse(m) => {
                m.remove();
                println!(
                    "unmounted  serial  {}  ({})",
                    m.name,
                    m.local_path().display()
                );
            }
            Mounted::Camera(m) => {
                m.remove();
                let at = m.link.as_ref().map(|l| l.path.display().to_string());
                println!(
                    "unmounted  camera  {}  ({})",
                    m.name,
                    at.unwrap_or_default()
                );
            }
            Mounted::Audio(m) => {
                m.remove();
                println!("unmounted  audio  {}  ({})", m.name, m.status.local);
            }
            Mounted::Can(m) => {
                m.vcan.remove();
                println!("unmounted  can  {}  ({})", m.name, m.vcan.name);
            }
        }
    }
}
