//! A real (or virtual) SocketCAN interface, classic or FD, read and written through
//! `xoq_link::cansock` (kernel timestamps, counted kernel drops, ENOBUFS backpressure).

use std::io;

use xoq_link::cansock::CanSock;
use xoq_wire::catalog::can_caps;
use xoq_wire::{CanFrame, CanSettings};

use super::backend::{BusFrame, CanBackend, CanBus};

/// A CAN interface by name, e.g. `can0` or `vcan0`.
pub struct SocketCanPort {
    pub ifname: String,
    pub settings: CanSettings,
    /// Error classes to receive (linux/can/error.h); all by default.
    pub error_mask: u32,
}

impl SocketCanPort {
    /// Reads the interface's MTU to tell classic (16) from FD (72).
    pub fn new(ifname: &str, max_age_us: u32, bitrate: u32, error_mask: u32) -> Self {
        let mtu = std::fs::read_to_string(format!("/sys/class/net/{ifname}/mtu"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        let fd = mtu == Some(72);
        SocketCanPort {
            ifname: ifname.into(),
            settings: CanSettings {
                fd,
                bitrate,
                data_bitrate: 0,
                max_age_us,
            },
            error_mask,
        }
    }
}

impl CanBackend for SocketCanPort {
    type Bus = SocketBus;

    fn open(&mut self) -> io::Result<SocketBus> {
        Ok(SocketBus {
            sock: CanSock::open_with(&self.ifname, self.error_mask, true)?,
        })
    }
    fn settings(&self) -> CanSettings {
        self.settings
    }
    fn capabilities(&self) -> u32 {
        let fd = if self.settings.fd { can_caps::FD } else { 0 };
        fd | can_caps::ERROR_FRAMES | can_caps::TIMESTAMPS
    }
    fn describe(&self) -> String {
        self.ifname.clone()
    }
}

pub struct SocketBus {
    sock: CanSock,
}

impl CanBus for SocketBus {
    async fn recv(&self) -> io::Result<BusFrame> {
        let r = self.sock.recv().await?;
        Ok(BusFrame {
            frame: r.frame,
            dropped: r.dropped,
            own: r.own,
        })
    }

    fn try_recv(&self) -> io::Result<Option<BusFrame>> {
        Ok(self.sock.try_recv()?.map(|r| BusFrame {
            frame: r.frame,
            dropped: r.dropped,
            own: r.own,
        }))
    }

    fn echoes_own(&self) -> bool {
        true
    }

    async fn send(&self, frame: &CanFrame, not_after_us: Option<u64>) -> io::Result<bool> {
        self.sock.send_unless_stale(frame, not_after_us).await
    }
}
