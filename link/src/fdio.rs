//! Async readiness for owned file descriptors (serial ports, PTY masters) under tokio, shared
//! by the server's and the mounter's device code.

use std::io;
use std::os::fd::OwnedFd;

use tokio::io::unix::AsyncFd;

pub use xoq_sys::reactor::{register, register_with};

/// One `read(2)` once the descriptor is readable; 0 bytes is returned as `UnexpectedEof`.
pub async fn read(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        match guard.try_io(|f| nix::unistd::read(f.get_ref(), buf).map_err(io::Error::from)) {
            Ok(Ok(0)) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of file")),
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

/// Writes all of `data`, waiting for writability as needed.
pub async fn write_all(fd: &AsyncFd<OwnedFd>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let mut guard = fd.writable().await?;
        match guard.try_io(|f| nix::unistd::write(f.get_ref(), data).map_err(io::Error::from)) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}
