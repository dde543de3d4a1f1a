//! The two ioctls reading and writing a PTY's `termios2`, and the raw mode it starts in.
//! Conversions to and from wire `LineSettings` live in `xoq_cuse::termios`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

pub use xoq_cuse::termios::{apply_line, is_hangup, to_line};

/// Reads the terminal settings (on a PTY master this reads the slave's, which programs set).
pub fn get(fd: BorrowedFd<'_>) -> io::Result<libc::termios2> {
    let mut t = xoq_cuse::termios::zeroed();
    // SAFETY: TCGETS2 writes one termios2 through the pointer, which points to a live local.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TCGETS2, &mut t) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(t)
}

/// Writes the terminal settings, effective at once.
pub fn set(fd: BorrowedFd<'_>, t: &libc::termios2) -> io::Result<()> {
    // SAFETY: TCSETS2 reads one termios2 through the pointer, which points to a live value.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TCSETS2, t) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raw mode, as `cfmakeraw`, plus `EXTPROC` so settings changes reach the master as events.
pub fn make_raw_extproc(t: &mut libc::termios2) {
    t.c_iflag &= !(libc::IGNBRK
        | libc::BRKINT
        | libc::PARMRK
        | libc::ISTRIP
        | libc::INLCR
        | libc::IGNCR
        | libc::ICRNL
        | libc::IXON);
    t.c_oflag &= !libc::OPOST;
    t.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::ISIG | libc::IEXTEN);
    t.c_lflag |= libc::EXTPROC;
    t.c_cflag &= !(libc::CSIZE | libc::PARENB);
    t.c_cflag |= libc::CS8 | libc::CREAD | libc::CLOCAL;
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
}
