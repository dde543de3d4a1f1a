//! One `recvmsg` on a CAN socket with what the kernel says beside the frame: its receive
//! timestamp, the socket's drop counter and whether it is the echo of our own frame. nix's
//! `recvmsg` cannot carry `MSG_CONFIRM` back, so this is the raw call.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// What `recvmsg` said besides the frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecvMeta {
    /// `SO_TIMESTAMP`: when the kernel received the frame, µs since the epoch.
    pub timestamp_us: Option<u64>,
    /// `SO_RXQ_OVFL`: frames this socket has dropped so far (a running total).
    pub ovfl_total: Option<u32>,
    /// `MSG_CONFIRM`: the frame is this socket's own, confirmed sent by the bus.
    pub own: bool,
}

/// One non-blocking `recvmsg` into `buf`: the number of bytes read and the metadata.
pub fn recv_with_meta(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, RecvMeta)> {
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg points to one iovec over `buf` and to `control`, both live and of the
    // lengths given; the kernel writes at most those lengths. The fd is borrowed, so open.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut meta = RecvMeta {
        own: msg.msg_flags & libc::MSG_CONFIRM != 0,
        ..RecvMeta::default()
    };
    // SAFETY: msg is the header recvmsg just filled; CMSG_FIRSTHDR/NXTHDR stay within
    // msg_controllen and return null at the end.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !c.is_null() {
        // SAFETY: c is non-null and points to a complete cmsghdr inside `control`.
        let h = unsafe { &*c };
        if h.cmsg_level == libc::SOL_SOCKET {
            if h.cmsg_type == libc::SO_TIMESTAMP {
                // SAFETY: an SO_TIMESTAMP message carries one timeval; read unaligned.
                let tv: libc::timeval =
                    unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()) };
                meta.timestamp_us = Some(tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64);
            } else if h.cmsg_type == libc::SO_RXQ_OVFL {
                // SAFETY: an SO_RXQ_OVFL message carries one u32; read unaligned.
                let v: u32 = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()) };
                meta.ovfl_total = Some(v);
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
    }
    Ok((n as usize, meta))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;

    use super::*;

    // No CAN on the host: a datagram socket exercises the same call (no ancillary data).
    #[test]
    fn a_datagram_is_read_whole_with_empty_metadata() {
        let (a, b) = UnixDatagram::pair().expect("socket pair");
        b.send(b"frame").expect("send");
        let mut buf = [0u8; 72];
        let (n, meta) = recv_with_meta(a.as_fd(), &mut buf).expect("recv");
        assert_eq!(&buf[..n], b"frame");
        assert_eq!(meta, RecvMeta::default());
    }

    #[test]
    fn nothing_waiting_is_would_block() {
        let (a, _b) = UnixDatagram::pair().expect("socket pair");
        let mut buf = [0u8; 72];
        let e = recv_with_meta(a.as_fd(), &mut buf).expect_err("empty");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}
