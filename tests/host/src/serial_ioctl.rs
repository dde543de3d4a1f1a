//! The serial-port ioctls programs like pyserial and esptool issue, as plain calls on a file
//! descriptor, and the simulated port's record of what reached the "hardware".

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use serde_json::Value;

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An ioctl whose argument is a pointer to one `int` (read or written by the kernel).
pub fn ioctl_int_ptr(fd: BorrowedFd<'_>, req: libc::Ioctl, v: &mut libc::c_int) -> io::Result<()> {
    // SAFETY: every request passed here reads or writes exactly one c_int through the pointer,
    // which points to a live, exclusively borrowed c_int.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), req, v as *mut libc::c_int) }).map(drop)
}

/// An ioctl taking its argument by value (or none).
pub fn ioctl_value(fd: BorrowedFd<'_>, req: libc::Ioctl, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the requests passed here take an integer argument and touch no memory of ours.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), req, arg) }).map(drop)
}

/// The modem bits (`TIOCM_*`).
pub fn modem_bits(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    let mut v = 0;
    ioctl_int_ptr(fd, libc::TIOCMGET, &mut v)?;
    Ok(v)
}

/// Sets (`TIOCMBIS`) or clears (`TIOCMBIC`) the bits in `bits`, as pyserial's `dtr`/`rts`.
pub fn modem_change(fd: BorrowedFd<'_>, set: bool, bits: libc::c_int) -> io::Result<()> {
    let mut v = bits;
    ioctl_int_ptr(
        fd,
        if set { libc::TIOCMBIS } else { libc::TIOCMBIC },
        &mut v,
    )
}

pub fn termios2(fd: BorrowedFd<'_>) -> io::Result<libc::termios2> {
    let mut t = xoq_cuse::termios::zeroed();
    // SAFETY: TCGETS2 writes one termios2 through the pointer, which points to a live local.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TCGETS2, &mut t) })?;
    Ok(t)
}

/// `TCSETS2` with `BOTHER`: any speed, as pyserial sets non-table rates.
pub fn set_speed_bother(fd: BorrowedFd<'_>, baud: u32) -> io::Result<()> {
    let mut t = termios2(fd)?;
    t.c_cflag &= !(libc::CBAUD | (libc::CBAUD << libc::IBSHIFT));
    t.c_cflag |= libc::BOTHER | (libc::BOTHER << libc::IBSHIFT);
    t.c_ispeed = baud;
    t.c_ospeed = baud;
    // SAFETY: TCSETS2 reads one termios2 through the pointer, which points to a live local.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TCSETS2, &t) }).map(drop)
}

/// `TIOCGICOUNT`: cts, dsr, rng, dcd, rx, tx, frame, overrun, parity, brk, buf_overrun.
pub fn icount(fd: BorrowedFd<'_>) -> io::Result<[libc::c_int; 20]> {
    let mut v = [0 as libc::c_int; 20];
    // SAFETY: TIOCGICOUNT writes one serial_icounter_struct (20 ints, 80 bytes) through the
    // pointer, which points to a live local of exactly that size.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), 0x545D as libc::Ioctl, v.as_mut_ptr()) })?;
    Ok(v)
}

/// `TIOCMIWAIT`: blocks until one of the lines in `mask` changes.
pub fn modem_wait(fd: BorrowedFd<'_>, mask: libc::c_int) -> io::Result<()> {
    ioctl_value(fd, 0x545C as libc::Ioctl, mask as libc::c_ulong)
}

/// Lowercase hex of bytes, as the simulated port records data.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every event the simulated port recorded so far (one JSON object per line).
pub fn record(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A short description of an event for comparisons: `line 115200`, `modem 1 0`, `data <hex>`.
pub fn describe(e: &Value) -> String {
    let b = |k: &str| if e[k] == true { "1" } else { "0" };
    match e["event"].as_str().unwrap_or("?") {
        "line" => format!("line {}", e["line"]["baud"]),
        "modem" => format!("modem {} {}", b("dtr"), b("rts")),
        "data" => format!("data {}", e["hex"].as_str().unwrap_or("")),
        "flush" => format!("flush {}", e["queue"].as_str().unwrap_or("")),
        "break" => format!("break {}", e["duration_ms"]),
        other => other.to_string(),
    }
}
