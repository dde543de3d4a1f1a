//! The kernel's terminal settings: `termios` (36 bytes, `TCGETS`) and `termios2` (44 bytes,
//! `TCGETS2`, with arbitrary speeds) as bytes, and their meaning as wire `LineSettings`.
//!
//! The settings are held as `libc::termios2` everywhere; the 36-byte form is its prefix.

use xoq_wire::{FlowControl, LineSettings, Parity, StopBits};

/// Size of the kernel's `struct termios`.
pub const TERMIOS_LEN: usize = 36;
/// Size of the kernel's `struct termios2`.
pub const TERMIOS2_LEN: usize = 44;

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

/// The baud rate of a `Bnnn` speed code; `None` for `BOTHER` and unknown codes.
pub fn code_speed(code: libc::tcflag_t) -> Option<u32> {
    if code == libc::B0 {
        return Some(0);
    }
    STANDARD.iter().find(|(_, c)| *c == code).map(|(b, _)| *b)
}

/// The `Bnnn` code of a standard rate, `BOTHER` for any other.
pub fn speed_code(baud: u32) -> libc::tcflag_t {
    STANDARD
        .iter()
        .find(|(b, _)| *b == baud)
        .map(|(_, c)| *c)
        .unwrap_or(libc::BOTHER)
}

/// A blank `termios2`, all zero.
pub fn zeroed() -> libc::termios2 {
    libc::termios2 {
        c_iflag: 0,
        c_oflag: 0,
        c_cflag: 0,
        c_lflag: 0,
        c_line: 0,
        c_cc: [0; 19],
        c_ispeed: 0,
        c_ospeed: 0,
    }
}

/// What a serial port looks like to a program before it configures it: raw (no line
/// discipline processing, which this tty does not do), `line` applied, the receiver on,
/// modem control lines ignored for open (`CLOCAL`) and dropped on last close (`HUPCL`),
/// reads returning as soon as one byte is there, and the kernel's default control characters.
pub fn initial(line: &LineSettings) -> libc::termios2 {
    let mut t = zeroed();
    t.c_cflag = libc::CREAD | libc::HUPCL | libc::CLOCAL;
    apply_line(&mut t, line);
    // <linux/tty.h> INIT_C_CC, by index (VINTR..VEOL2).
    let cc: [u8; 17] = [3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0];
    t.c_cc[..cc.len()].copy_from_slice(&cc);
    t
}

/// Encodes `t` as the kernel lays it out: 36 bytes, or 44 with the two speeds.
pub fn to_bytes(t: &libc::termios2, with_speeds: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(TERMIOS2_LEN);
    for f in [t.c_iflag, t.c_oflag, t.c_cflag, t.c_lflag] {
        v.extend_from_slice(&f.to_le_bytes());
    }
    v.push(t.c_line);
    v.extend_from_slice(&t.c_cc);
    if with_speeds {
        v.extend_from_slice(&t.c_ispeed.to_le_bytes());
        v.extend_from_slice(&t.c_ospeed.to_le_bytes());
    }
    v
}

/// Decodes settings a program passed to `TCSETS*` (36 bytes) or `TCSETS2*` (44 bytes), as the
/// kernel does: the speeds come from the `Bnnn` codes, from the explicit fields when the code
/// is `BOTHER` (termios2), or stay those of `current` (`BOTHER` through the old call). The
/// stored code is then the standard one for the speed, or `BOTHER`. `None` if `b` is short.
pub fn from_bytes(b: &[u8], current: &libc::termios2) -> Option<libc::termios2> {
    let with_speeds = b.len() >= TERMIOS2_LEN;
    if b.len() < TERMIOS_LEN {
        return None;
    }
    let u = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let mut t = zeroed();
    t.c_iflag = u(0);
    t.c_oflag = u(4);
    t.c_cflag = u(8);
    t.c_lflag = u(12);
    t.c_line = b[16];
    t.c_cc.copy_from_slice(&b[17..TERMIOS_LEN]);
    let (given_i, given_o) = if with_speeds {
        (u(36), u(40))
    } else {
        (current.c_ispeed, current.c_ospeed)
    };
    let ocode = t.c_cflag & libc::CBAUD;
    let ospeed = match ocode {
        libc::BOTHER => given_o,
        c => code_speed(c).unwrap_or(current.c_ospeed),
    };
    let icode = (t.c_cflag >> libc::IBSHIFT) & libc::CBAUD;
    let ispeed = match icode {
        libc::B0 => ospeed, // "same as output"
        libc::BOTHER => given_i,
        c => code_speed(c).unwrap_or(ospeed),
    };
    t.c_ospeed = ospeed;
    t.c_ispeed = ispeed;
    t.c_cflag &= !(libc::CBAUD | (libc::CBAUD << libc::IBSHIFT));
    t.c_cflag |= if ocode == libc::B0 {
        libc::B0
    } else {
        speed_code(ospeed)
    };
    if icode != libc::B0 {
        t.c_cflag |= speed_code(ispeed) << libc::IBSHIFT;
    }
    Some(t)
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
    } else if t.c_iflag & (libc::IXON | libc::IXOFF) != 0 && t.c_iflag & libc::IXANY != 0 {
        FlowControl::SoftwareAnyRestarts
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
    let code = speed_code(line.baud);
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
    t.c_iflag &= !(libc::IXON | libc::IXOFF | libc::IXANY);
    match line.flow {
        FlowControl::Hardware => t.c_cflag |= libc::CRTSCTS,
        FlowControl::Software => t.c_iflag |= libc::IXON | libc::IXOFF,
        FlowControl::SoftwareAnyRestarts => t.c_iflag |= libc::IXON | libc::IXOFF | libc::IXANY,
        FlowControl::None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank() -> libc::termios2 {
        zeroed()
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
