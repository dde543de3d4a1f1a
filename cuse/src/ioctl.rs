//! The tty ioctls the CUSE tty answers (the `asm-generic` numbers, used by x86-64 and arm64),
//! and the shape of each: how many bytes it reads from and writes to the caller's memory.
//!
//! A tty ioctl's number does not encode its argument's size, so CUSE passes them through
//! "unrestricted": the first call carries no data, and for a pointer argument we ask the
//! kernel to retry with the right buffers ([`crate::abi::ioctl_retry`]).

pub const TCGETS: u32 = 0x5401;
pub const TCSETS: u32 = 0x5402;
pub const TCSETSW: u32 = 0x5403;
pub const TCSETSF: u32 = 0x5404;
pub const TCSBRK: u32 = 0x5409;
/// `tcflow`.
pub const TCXONC: u32 = 0x540A;
pub const TCFLSH: u32 = 0x540B;
pub const TIOCEXCL: u32 = 0x540C;
pub const TIOCNXCL: u32 = 0x540D;
pub const TIOCOUTQ: u32 = 0x5411;
pub const TIOCGWINSZ: u32 = 0x5413;
pub const TIOCSWINSZ: u32 = 0x5414;
pub const TIOCMGET: u32 = 0x5415;
pub const TIOCMBIS: u32 = 0x5416;
pub const TIOCMBIC: u32 = 0x5417;
pub const TIOCMSET: u32 = 0x5418;
pub const TIOCGSOFTCAR: u32 = 0x5419;
pub const TIOCSSOFTCAR: u32 = 0x541A;
/// Also `FIONREAD`.
pub const TIOCINQ: u32 = 0x541B;
pub const TIOCGSERIAL: u32 = 0x541E;
pub const TIOCSSERIAL: u32 = 0x541F;
pub const TIOCGETD: u32 = 0x5424;
pub const TCSBRKP: u32 = 0x5425;
pub const TIOCSBRK: u32 = 0x5427;
pub const TIOCCBRK: u32 = 0x5428;
pub const TCGETS2: u32 = 0x802C_542A;
pub const TCSETS2: u32 = 0x402C_542B;
pub const TCSETSW2: u32 = 0x402C_542C;
pub const TCSETSF2: u32 = 0x402C_542D;
pub const TIOCGEXCL: u32 = 0x8004_5440;
pub const TIOCMIWAIT: u32 = 0x545C;
pub const TIOCGICOUNT: u32 = 0x545D;

/// `TCFLSH` arguments.
pub const TCIFLUSH: u64 = 0;
pub const TCOFLUSH: u64 = 1;
pub const TCIOFLUSH: u64 = 2;

/// Modem bits of `TIOCMGET` and friends.
pub mod tiocm {
    pub const DTR: u32 = 0x002;
    pub const RTS: u32 = 0x004;
    pub const CTS: u32 = 0x020;
    pub const CAR: u32 = 0x040;
    pub const RNG: u32 = 0x080;
    pub const DSR: u32 = 0x100;
}

/// Size of `struct serial_struct` on a 64-bit kernel (it holds a pointer and a long).
pub const SERIAL_STRUCT_LEN: usize = 72;
/// Size of `struct serial_icounter_struct`.
pub const ICOUNT_LEN: usize = 80;
/// Size of `struct winsize`.
pub const WINSIZE_LEN: usize = 8;

/// How an ioctl's argument is passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Bytes read from the caller's pointer.
    pub input: usize,
    /// Bytes written back through the caller's pointer.
    pub output: usize,
}

const fn shape(input: usize, output: usize) -> Option<Shape> {
    Some(Shape { input, output })
}

/// The shape of `cmd`, or `None` if we do not answer it (`ENOTTY`). Commands taking their
/// argument by value, or none, have shape (0, 0).
pub fn shape_of(cmd: u32) -> Option<Shape> {
    use crate::termios::{TERMIOS2_LEN, TERMIOS_LEN};
    match cmd {
        TCGETS => shape(0, TERMIOS_LEN),
        TCSETS | TCSETSW | TCSETSF => shape(TERMIOS_LEN, 0),
        TCGETS2 => shape(0, TERMIOS2_LEN),
        TCSETS2 | TCSETSW2 | TCSETSF2 => shape(TERMIOS2_LEN, 0),
        TIOCMGET | TIOCINQ | TIOCOUTQ | TIOCGEXCL | TIOCGSOFTCAR | TIOCGETD => shape(0, 4),
        TIOCMSET | TIOCMBIS | TIOCMBIC | TIOCSSOFTCAR => shape(4, 0),
        TIOCGSERIAL => shape(0, SERIAL_STRUCT_LEN),
        TIOCSSERIAL => shape(SERIAL_STRUCT_LEN, 0),
        TIOCGICOUNT => shape(0, ICOUNT_LEN),
        TIOCGWINSZ => shape(0, WINSIZE_LEN),
        TIOCSWINSZ => shape(WINSIZE_LEN, 0),
        TCSBRK | TCSBRKP | TCXONC | TCFLSH | TIOCSBRK | TIOCCBRK | TIOCEXCL | TIOCNXCL
        | TIOCMIWAIT => shape(0, 0),
        _ => None,
    }
}

/// True for the commands whose layout differs for a 32-bit caller on a 64-bit kernel.
pub fn differs_for_32bit(cmd: u32) -> bool {
    matches!(cmd, TIOCGSERIAL | TIOCSSERIAL)
}

#[cfg(all(
    test,
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod tests {
    use super::*;

    #[test]
    // `libc::Ioctl` is u64 with glibc and i32 with musl: the casts are needed on one of them.
    #[allow(clippy::unnecessary_cast)]
    fn numbers_match_the_c_library() {
        let pairs: &[(u32, u64)] = &[
            (TCGETS, libc::TCGETS as u64),
            (TCSETS, libc::TCSETS as u64),
            (TCSETSW, libc::TCSETSW as u64),
            (TCSETSF, libc::TCSETSF as u64),
            (TCSBRK, libc::TCSBRK as u64),
            (TCFLSH, libc::TCFLSH as u64),
            (TIOCEXCL, libc::TIOCEXCL as u64),
            (TIOCNXCL, libc::TIOCNXCL as u64),
            (TIOCOUTQ, libc::TIOCOUTQ as u64),
            (TIOCGWINSZ, libc::TIOCGWINSZ as u64),
            (TIOCSWINSZ, libc::TIOCSWINSZ as u64),
            (TIOCMGET, libc::TIOCMGET as u64),
            (TIOCMBIS, libc::TIOCMBIS as u64),
            (TIOCMBIC, libc::TIOCMBIC as u64),
            (TIOCMSET, libc::TIOCMSET as u64),
            (TIOCINQ, libc::TIOCINQ as u64),
            (TIOCGSERIAL, libc::TIOCGSERIAL as u64),
            (TIOCSSERIAL, libc::TIOCSSERIAL as u64),
            (TCSBRKP, libc::TCSBRKP as u64),
            (TIOCSBRK, libc::TIOCSBRK as u64),
            (TIOCCBRK, libc::TIOCCBRK as u64),
            (TCGETS2, libc::TCGETS2 as u64),
            (TCSETS2, libc::TCSETS2 as u64),
            (TCSETSW2, libc::TCSETSW2 as u64),
            (TCSETSF2, libc::TCSETSF2 as u64),
            (TIOCGEXCL, libc::TIOCGEXCL as u64),
            (TIOCGETD, libc::TIOCGETD as u64),
            (TIOCGSOFTCAR, libc::TIOCGSOFTCAR as u64),
            (TIOCSSOFTCAR, libc::TIOCSSOFTCAR as u64),
        ];
        for (ours, theirs) in pairs {
            assert_eq!(u64::from(*ours), *theirs, "{ours:#x}");
        }
        assert_eq!(
            crate::termios::TERMIOS2_LEN,
            std::mem::size_of::<libc::termios2>()
        );
        assert_eq!(
            TIOCM_BITS,
            [
                libc::TIOCM_DTR,
                libc::TIOCM_RTS,
                libc::TIOCM_CTS,
                libc::TIOCM_CAR,
                libc::TIOCM_RNG,
                libc::TIOCM_DSR
            ]
        );
    }

    const TIOCM_BITS: [i32; 6] = [
        tiocm::DTR as i32,
        tiocm::RTS as i32,
        tiocm::CTS as i32,
        tiocm::CAR as i32,
        tiocm::RNG as i32,
        tiocm::DSR as i32,
    ];
}
