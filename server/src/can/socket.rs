//! A real (or virtual) SocketCAN interface, classic or FD, via the `socketcan` crate.

use std::io;
use std::time::{Duration, Instant};

use socketcan::tokio::CanFdSocket;
use socketcan::SocketOptions;
use xoq_link::canframe::{from_socketcan, to_socketcan, unix_us};
use xoq_wire::catalog::can_caps;
use xoq_wire::{CanFrame, CanSettings};

use super::backend::{CanBackend, CanBus};

/// How long a write may wait for room in the transmit queue before the frame counts as failed.
const SEND_PATIENCE: Duration = Duration::from_millis(200);

/// A CAN interface by name, e.g. `can0` or `vcan0`.
pub struct SocketCanPort {
    pub ifname: String,
    pub settings: CanSettings,
}

impl SocketCanPort {
    /// Reads the interface's MTU to tell classic (16) from FD (72).
    pub fn new(ifname: &str, max_age_us: u32, bitrate: u32) -> Self {
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
        }
    }
}

impl CanBackend for SocketCanPort {
    type Bus = SocketBus;

    fn open(&mut self) -> io::Result<SocketBus> {
        let sock = CanFdSocket::open(&self.ifname).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open CAN interface {}: {e}", self.ifname),
            )
        })?;
        sock.set_error_filter_accept_all()?;
        sock.set_recv_timestamp(true)?;
        Ok(SocketBus { sock })
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
    sock: CanFdSocket,
}

impl CanBus for SocketBus {
    async fn recv(&self) -> io::Result<CanFrame> {
        let (f, t) = self.sock.read_frame_with_timestamp().await?;
        Ok(from_socketcan(&f, unix_us(t)))
    }

    fn try_recv(&self) -> io::Result<Option<CanFrame>> {
        match self.sock.try_read_frame() {
            Ok(f) => Ok(Some(from_socketcan(
                &f,
                unix_us(std::time::SystemTime::now()),
            ))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn send(&self, frame: &CanFrame) -> io::Result<()> {
        let raw = to_socketcan(frame);
        let deadline = Instant::now() + SEND_PATIENCE;
        let mut pause = Duration::from_micros(50);
        loop {
            match self.sock.write_frame(&raw).await {
                // SocketCAN answers ENOBUFS instead of blocking when the queue is full.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) && Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(5));
                }
                r => return r,
            }
        }
    }
}
