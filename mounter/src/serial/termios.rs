//! Conversions between the kernel's `termios2` and wire `LineSettings`, and the two ioctls.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use xoq_wire::{FlowControl, LineSettings, Parity, StopBits};

/// The standard rates that have a `Bnnn` constant; other rates use `BOTHER`.
const STANDARD: &[(u32, libc::tcflag_t)] = &[
    (50, libc::B50),
    (75, libc::B75),
    (110, libc::B110),
    (134, libc::B134),
    (150, libc::B150),
    (200, libc::B200),
    (300, libc::B300),
    (600, libc::B600),
    (1200, libc::B1200),
    (1800, libc::B1800),
    (2400, libc::B2400),
    (4800, libc::B4800),
    (9600, libc::B9600),
    (19200, libc::B19200),
    (38400, libc::B38400),
    (57600, libc::B57600),
    (115200, libc::B115200),
    (230400, libc::B230400),
    (460800, libc::B460800),
    (500000, libc::B500000),
    (576000, libc::B576000),
    (921600, libc::B921600),
    (1000000, libc::B1000000),
    (1152000, libc::B1152000),
    (1500000, libc::B1500000),
    (2000000, libc::B2000000),
    (2500000, libc::B2500000),
    (3000000, libc::B3000000),
    (3500000, libc::B3500000),
    (4000000, libc::B4000000),
];

/// Reads the terminal settings (on a PTY master this reads the slave's, which programs set).
pub fn get(fd: BorrowedFd<'_>) -> io::Result<libc::termios2> {
    // SAFETY: termios2 is plain old data; all-zero is a valid value for the kernel to overwrite.
    let mut t: libc::termios2 = unsafe { std::mem::zeroed() };
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

/// True when the program set speed 0: by POSIX, "hang up", i.e. drop DTR (and RTS).
pub fn is_hangup(t: &libc::termios2) -> bool {
    t.c_cflag & libc::CBAUD == libc::B0
}

/// The line settings a program has put on the tty. Speed 0 reads as the last speed.
pub fn to_line(t: &libc::termios2) -> LineSettings {
    let data_bits = match t.c_cflag & libc::CSIZE {
        libc::CS5 => 5,
        libc::CS6 => 6,
        libc::CS7 => 7,
        _ => 8,
    };
    let parity = if t.c_cflag & libc::PARENB == 0 {
        Parity::None
    } else {
        match (t.c_cflag & libc::CMSPAR != 0, t.c_cflag & libc::PARODD != 0) {
            (false, true) => Parity::Odd,
            (false, false) => Parity::Even,
            (true, true) => Parity::Mark,
            (true, false) => Parity::Space,
        }
    };
    let stop_bits = if t.c_cflag & libc::CSTOPB != 0 {
        StopBits::Two
    } else {
        StopBits::One
    };
    let flow = if t.c_cflag & libc::CRTSCTS != 0 {
        FlowControl::Hardware
    } else if t.c_iflag & (libc::IXON | libc::IXOFF) != 0 {
        FlowControl::Software
    } else {
        FlowControl::None
    };
    let baud = t.c_ospeed.clamp(1, xoq_wire::limits::MAX_BAUD);
    LineSettings {
        baud,
        data_bits,
        parity,
        stop_bits,
        flow,
    }
}

/// Puts `line` into `t`, keeping every other flag.
pub fn apply_line(t: &mut libc::termios2, line: &LineSettings) {
    let code = STANDARD
        .iter()
        .find(|(b, _)| *b == line.baud)
        .map(|(_, c)| *c)
        .unwrap_or(libc::BOTHER);
    t.c_cflag &= !(libc::CBAUD | (libc::CBAUD << libc::IBSHIFT));
    t.c_cflag |= code | (code << libc::IBSHIFT);
    t.c_ospeed = line.baud;
    t.c_ispeed = line.baud;
    t.c_cflag &=
        !(libc::CSIZE | libc::PARENB | libc::PARODD | libc::CMSPAR | libc::CSTOPB | libc::CRTSCTS);
    t.c_cflag |= match line.data_bits {
        5 => libc::CS5,
        6 => libc::CS6,
        7 => libc::CS7,
        _ => libc::CS8,
    };
    t.c_cflag |= match line.parity {
        Parity::None => 0,
        Parity::Odd => libc::PARENB | libc::PARODD,
        Parity::Even => libc::PARENB,
        Parity::Mark => libc::PARENB | libc::CMSPAR | libc::PARODD,
        Parity::Space => libc::PARENB | libc::CMSPAR,
    };
    if line.stop_bits == StopBits::Two {
        t.c_cflag |= libc::CSTOPB;
    }
    // Software flow control is done by the remote port's driver, which consumes XON/XOFF, so
    // they never reach this tty; IXON/IXOFF here let programs read back what they set.
    t.c_iflag &= !(libc::IXON | libc::IXOFF);
    match line.flow {
        FlowControl::Hardware => t.c_cflag |= libc::CRTSCTS,
        FlowControl::Software => t.c_iflag |= libc::IXON | libc::IXOFF,
        FlowControl::None => {}
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn blank() -> libc::termios2 {
        // SAFETY: plain old data.
        unsafe { std::mem::zeroed() }
    }

    #[test]
    fn line_settings_survive_a_trip_through_termios() {
        for line in [
            LineSettings::default(),
            LineSettings {
                baud: 921_600,
                data_bits: 7,
                parity: Parity::Even,
                stop_bits: StopBits::Two,
                flow: FlowControl::Hardware,
            },
            LineSettings {
                baud: 250_000,
                data_bits: 5,
                parity: Parity::Mark,
                stop_bits: StopBits::One,
                flow: FlowControl::Software,
            },
            LineSettings {
                baud: 9600,
                data_bits: 6,
                parity: Parity::Space,
                stop_bits: StopBits::One,
                flow: FlowControl::None,
            },
        ] {
            let mut t = blank();
            apply_line(&mut t, &line);
            assert_eq!(to_line(&t), line);
            assert!(!is_hangup(&t));
        }
    }

    #[test]
    fn non_standard_rates_use_bother_and_standard_ones_do_not() {
        let mut t = blank();
        apply_line(
            &mut t,
            &LineSettings {
                baud: 250_000,
                ..LineSettings::default()
            },
        );
        assert_eq!(t.c_cflag & libc::CBAUD, libc::BOTHER);
        apply_line(
            &mut t,
            &LineSettings {
                baud: 115_200,
                ..LineSettings::default()
            },
        );
        assert_eq!(t.c_cflag & libc::CBAUD, libc::B115200);
    }
}
