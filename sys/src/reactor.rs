//! Registering an owned descriptor with tokio's reactor.

use std::io;
use std::os::fd::OwnedFd;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Registers a non-blocking descriptor with the tokio reactor (tokio makes this `unsafe` for
/// any `AsRawFd` type, since one could change its descriptor; an `OwnedFd` cannot).
pub fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd is open for as long as it lives and always returns the same raw fd;
    // the AsyncFd owns it, so it stays open and unchanged for the registration's lifetime.
    unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)
}

/// As [`register`], for these readiness kinds only (`Interest::PRIORITY` for a PTY master's
/// packet-mode status, which the kernel signals as `POLLPRI`).
pub fn register_with(fd: OwnedFd, interest: Interest) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: as in `register`: the AsyncFd owns the OwnedFd, whose descriptor stays open and
    // unchanged for the registration's lifetime.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    use super::*;

    #[tokio::test]
    async fn a_socket_becomes_readable_once_written() {
        let (a, mut b) = UnixStream::pair().expect("socket pair");
        a.set_nonblocking(true).expect("non-blocking");
        let fd = register(OwnedFd::from(a)).expect("register");
        b.write_all(b"x").expect("write");
        drop(fd.readable().await.expect("readable"));
        let mut buf = [0u8; 4];
        let n = UnixStream::from(fd.into_inner())
            .read(&mut buf)
            .expect("read");
        assert_eq!(&buf[..n], b"x");
    }
}
