//! An async raw CAN socket for both ends: reads with `recvmsg`, so every frame comes with the
//! kernel's receive timestamp and the socket's drop counter (`SO_RXQ_OVFL`): no frame the kernel
//! drops for lack of buffer goes uncounted. Writes wait out `ENOBUFS` (SocketCAN's "queue
//! full", which it returns instead of blocking) up to a deadline: backpressure, not loss.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::socket::{setsockopt, sockopt};
use socketcan::{CanFdSocket, Socket, SocketOptions};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use xoq_sys::canrecv::recv_with_meta;
use xoq_wire::CanFrame;

use crate::canframe::{decode_raw, encode_raw, unix_us, CANFD_MTU};

/// Receive buffer asked for (root may exceed rmem_max): bursts of ~100k frames fit.
const RCVBUF: usize = 32 * 1024 * 1024;
/// Every error class (linux/can/error.h `CAN_ERR_MASK`).
pub const ALL_ERRORS: u32 = 0x1fff_ffff;
/// How long a write may wait for room in the transmit queue.
const SEND_PATIENCE: Duration = Duration::from_millis(200);

/// A frame read from the socket.
pub struct Received {
    pub frame: CanFrame,
    /// Frames the kernel dropped on this socket since the previous read.
    pub dropped: u32,
    /// This socket sent the frame and the bus has now carried it (`MSG_CONFIRM`; only with
    /// `echo_own`).
    pub own: bool,
}

pub struct CanSock {
    fd: AsyncFd<OwnedFd>,
    last_ovfl: AtomicU32,
}

impl CanSock {
    /// Opens a raw socket on `ifname` that sees classic and FD frames, and the error frames
    /// whose class bits are in `error_mask` (`CAN_ERR_MASK` = all, 0 = none).
    pub fn open(ifname: &str, error_mask: u32) -> io::Result<CanSock> {
        Self::open_with(ifname, error_mask, false)
    }

    /// As `open`; with `echo_own`, frames this socket sends come back (flagged `own`) once the
    /// bus has carried them (`CAN_RAW_RECV_OWN_MSGS`): the bus's own confirmation.
    pub fn open_with(ifname: &str, error_mask: u32, echo_own: bool) -> io::Result<CanSock> {
        let sock = CanFdSocket::open(ifname).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot open CAN interface {ifname}: {e}"))
        })?;
        sock.set_nonblocking(true)?;
        sock.set_error_filter(error_mask)?;
        sock.set_recv_own_msgs(echo_own)?;
        setsockopt(&sock, sockopt::ReceiveTimestamp, &true).map_err(io::Error::from)?;
        setsockopt(&sock, sockopt::RxqOvfl, &1).map_err(io::Error::from)?;
        if setsockopt(&sock, sockopt::RcvBufForce, &RCVBUF).is_err() {
            // Not root: take what rmem_max allows.
            let _ = setsockopt(&sock, sockopt::RcvBuf, &RCVBUF);
        }
        // The reactor takes an owned descriptor: a duplicate of the socket's (the socket's own
        // closes with it here).
        let fd = xoq_sys::reactor::register(sock.as_fd().try_clone_to_owned()?)?;
        Ok(CanSock {
            fd,
            last_ovfl: AtomicU32::new(0),
        })
    }

    fn read_now(&self) -> io::Result<Received> {
        loop {
            let mut buf = [0u8; CANFD_MTU];
            let (n, meta) = recv_with_meta(self.fd.get_ref().as_fd(), &mut buf)?;
            let mut dropped = 0;
            if let Some(total) = meta.ovfl_total {
                let prev = self.last_ovfl.swap(total, Ordering::Relaxed);
                dropped = total.wrapping_sub(prev);
            }
            let ts = meta
                .timestamp_us
                .unwrap_or_else(|| unix_us(SystemTime::now()));
            match decode_raw(&buf[..n], ts) {
                Some(frame) => {
                    return Ok(Received {
                        frame,
                        dropped,
                        own: meta.own,
                    })
                }
                // The kernel only hands out valid frames; skip anything else rather than stop.
                None => tracing::debug!(bytes = n, "ignoring an undecodable CAN read"),
            }
        }
    }

    /// The next frame.
    pub async fn recv(&self) -> io::Result<Received> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|_| self.read_now()) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// A frame already waiting, if any. Reads only while the reactor has the socket readable,
    /// and a read that finds nothing clears that, so the `recv` after it waits for the next
    /// frame instead of trying (and failing) another read first: one `recvmsg` less per frame.
    pub fn try_recv(&self) -> io::Result<Option<Received>> {
        match self.fd.try_io(Interest::READABLE, |_| self.read_now()) {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes one frame, waiting while the queue is full (up to a deadline).
    pub async fn send(&self, f: &CanFrame) -> io::Result<()> {
        self.send_unless_stale(f, None).await.map(drop)
    }

    /// Writes one frame unless the clock passes `not_after_us` (µs since the epoch) first: the
    /// time is checked at every attempt, so a frame that waited for room in the queue is not
    /// written late. Returns whether it was written (`Ok(false)`: stale, not written).
    pub async fn send_unless_stale(
        &self,
        f: &CanFrame,
        not_after_us: Option<u64>,
    ) -> io::Result<bool> {
        let mut buf = [0u8; CANFD_MTU];
        let n = encode_raw(f, &mut buf);
        let deadline = Instant::now() + SEND_PATIENCE;
        let mut pause = Duration::from_micros(50);
        loop {
            let mut guard = self.fd.writable().await?;
            if not_after_us.is_some_and(|t| unix_us(SystemTime::now()) > t) {
                return Ok(false);
            }
            match guard
                .try_io(|s| nix::unistd::write(s.get_ref(), &buf[..n]).map_err(io::Error::from))
            {
                Ok(Ok(_)) => return Ok(true),
                Ok(Err(e))
                    if e.raw_os_error() == Some(libc::ENOBUFS) && Instant::now() < deadline =>
                {
                    drop(guard);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(5));
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}
