//! An async raw CAN socket for both ends: reads with `recvmsg`, so every frame comes with the
//! kernel's receive timestamp and the socket's drop counter (`SO_RXQ_OVFL`): no frame the kernel
//! drops for lack of buffer goes uncounted. Writes wait out `ENOBUFS` (SocketCAN's "queue
//! full", which it returns instead of blocking) up to a deadline: backpressure, not loss.

use std::io::{self, IoSliceMut};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use socketcan::{CanFdSocket, Socket, SocketOptions};
use tokio::io::unix::AsyncFd;
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
}

pub struct CanSock {
    fd: AsyncFd<CanFdSocket>,
    last_ovfl: AtomicU32,
}

impl CanSock {
    /// Opens a raw socket on `ifname` that sees classic and FD frames, and the error frames
    /// whose class bits are in `error_mask` (`CAN_ERR_MASK` = all, 0 = none).
    pub fn open(ifname: &str, error_mask: u32) -> io::Result<CanSock> {
        let sock = CanFdSocket::open(ifname).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot open CAN interface {ifname}: {e}"))
        })?;
        sock.set_nonblocking(true)?;
        sock.set_error_filter(error_mask)?;
        setsockopt(&sock, sockopt::ReceiveTimestamp, &true).map_err(io::Error::from)?;
        setsockopt(&sock, sockopt::RxqOvfl, &1).map_err(io::Error::from)?;
        if setsockopt(&sock, sockopt::RcvBufForce, &RCVBUF).is_err() {
            // Not root: take what rmem_max allows.
            let _ = setsockopt(&sock, sockopt::RcvBuf, &RCVBUF);
        }
        // SAFETY: the AsyncFd owns the socket, whose fd stays open and unchanged until the
        // AsyncFd is dropped.
        let fd = unsafe { AsyncFd::register(sock) }.map_err(io::Error::from)?;
        Ok(CanSock {
            fd,
            last_ovfl: AtomicU32::new(0),
        })
    }

    fn read_now(&self) -> io::Result<Received> {
        loop {
            let mut buf = [0u8; CANFD_MTU];
            let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeVal, u32);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let r = recvmsg::<()>(
                self.fd.get_ref().as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            )
            .map_err(io::Error::from)?;
            let n = r.bytes;
            let mut ts = 0;
            let mut dropped = 0;
            if let Ok(cmsgs) = r.cmsgs() {
                for c in cmsgs {
                    match c {
                        ControlMessageOwned::ScmTimestamp(tv) => {
                            ts = (tv.tv_sec() as u64) * 1_000_000 + tv.tv_usec() as u64;
                        }
                        ControlMessageOwned::RxqOvfl(total) => {
                            let prev = self.last_ovfl.swap(total, Ordering::Relaxed);
                            dropped = total.wrapping_sub(prev);
                        }
                        _ => {}
                    }
                }
            }
            if ts == 0 {
                ts = unix_us(SystemTime::now());
            }
            match decode_raw(&buf[..n], ts) {
                Some(frame) => return Ok(Received { frame, dropped }),
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

    /// A frame already waiting, if any.
    pub fn try_recv(&self) -> io::Result<Option<Received>> {
        match self.read_now() {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes one frame, waiting while the queue is full (up to a deadline).
    pub async fn send(&self, f: &CanFrame) -> io::Result<()> {
        let mut buf = [0u8; CANFD_MTU];
        let n = encode_raw(f, &mut buf);
        let deadline = Instant::now() + SEND_PATIENCE;
        let mut pause = Duration::from_micros(50);
        loop {
            let mut guard = self.fd.writable().await?;
            match guard
                .try_io(|s| nix::unistd::write(s.get_ref(), &buf[..n]).map_err(io::Error::from))
            {
                Ok(Ok(_)) => return Ok(()),
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
