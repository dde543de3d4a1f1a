//! The `/dev/cuse` wire format (FUSE kernel protocol 7.x, as `<linux/fuse.h>` defines it):
//! one request per `read()` of the device, one reply per `write()`. All integers are in the
//! machine's byte order (little-endian on every platform we build for).
//!
//! Parsing never trusts the kernel's lengths blindly: a request shorter than its fixed part, or
//! whose header length disagrees with what was read, is an [`AbiError`], not a panic.

use thiserror::Error;

/// The FUSE protocol major version we speak.
pub const KERNEL_VERSION: u32 = 7;
/// The highest minor version we answer with; CUSE needs at least 11.
pub const MAX_MINOR: u32 = 31;
/// The lowest minor version whose structure sizes we parse.
pub const MIN_MINOR: u32 = 11;

/// Size of `fuse_in_header`.
pub const IN_HEADER_LEN: usize = 40;
/// Size of `fuse_out_header`.
pub const OUT_HEADER_LEN: usize = 16;
/// Size of `fuse_write_in` (protocol 7.9 and later).
pub const WRITE_IN_LEN: usize = 40;
/// The smallest buffer the kernel accepts for reading requests is this plus `max_write`.
pub const REQUEST_OVERHEAD: usize = IN_HEADER_LEN + WRITE_IN_LEN;

/// Request opcodes we handle.
pub mod opcode {
    pub const OPEN: u32 = 14;
    pub const READ: u32 = 15;
    pub const WRITE: u32 = 16;
    pub const RELEASE: u32 = 18;
    pub const FSYNC: u32 = 20;
    pub const FLUSH: u32 = 25;
    pub const INTERRUPT: u32 = 36;
    pub const DESTROY: u32 = 38;
    pub const IOCTL: u32 = 39;
    pub const POLL: u32 = 40;
    pub const CUSE_INIT: u32 = 4096;
}

/// `cuse_init_out.flags`: pass every ioctl through, whatever its number says about its size.
pub const CUSE_UNRESTRICTED_IOCTL: u32 = 1;

/// `fuse_ioctl_in.flags` / `fuse_ioctl_out.flags`.
pub mod ioctl_flags {
    pub const COMPAT: u32 = 1 << 0;
    pub const UNRESTRICTED: u32 = 1 << 1;
    pub const RETRY: u32 = 1 << 2;
    pub const BITS32: u32 = 1 << 3;
}

/// `fuse_poll_in.flags`: the kernel wants a notification when readiness changes.
pub const POLL_SCHEDULE_NOTIFY: u32 = 1;
/// `fuse_notify_code` of a poll wake-up.
const NOTIFY_POLL: i32 = 1;

/// One request from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub unique: u64,
    /// The calling process (0 for requests the kernel makes on its own).
    pub pid: u32,
    pub op: Op<'a>,
}

/// What the kernel asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<'a> {
    CuseInit {
        major: u32,
        minor: u32,
        flags: u32,
    },
    Open {
        flags: u32,
    },
    Read {
        fh: u64,
        size: u32,
        /// The file's `O_*` flags (`O_NONBLOCK` matters).
        flags: u32,
    },
    Write {
        fh: u64,
        flags: u32,
        data: &'a [u8],
    },
    Release {
        fh: u64,
    },
    Flush {
        fh: u64,
    },
    Fsync {
        fh: u64,
    },
    /// The process waiting for request `unique` got a signal.
    Interrupt {
        unique: u64,
    },
    Ioctl {
        fh: u64,
        flags: u32,
        cmd: u32,
        arg: u64,
        /// What the kernel copied from the caller (empty until we asked for it by a retry).
        input: &'a [u8],
        /// How much the caller can receive.
        out_size: u32,
    },
    Poll {
        fh: u64,
        kh: u64,
        flags: u32,
        events: u32,
    },
    Destroy,
    /// Anything else; answered with `ENOSYS`.
    Other(u32),
}

/// A request we cannot parse.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AbiError {
    #[error("request of {got} bytes is shorter than its {need}-byte {what}")]
    Short {
        what: &'static str,
        need: usize,
        got: usize,
    },
    #[error("request header says {header} bytes but {got} were read")]
    LengthMismatch { header: u32, got: usize },
    #[error("write request declares {declared} bytes of data but carries {got}")]
    WriteSize { declared: u32, got: usize },
    #[error("ioctl request declares {declared} bytes of input but carries {got}")]
    IoctlSize { declared: u32, got: usize },
}

/// Little-endian field reader over one request body.
struct Fields<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8], what: &'static str, need: usize) -> Result<Self, AbiError> {
        if buf.len() < need {
            return Err(AbiError::Short {
                what,
                need,
                got: buf.len(),
            });
        }
        Ok(Fields { buf, what })
    }
    fn u32(&self, at: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.buf[at..at + 4]);
        u32::from_le_bytes(b)
    }
    fn u64(&self, at: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.buf[at..at + 8]);
        u64::from_le_bytes(b)
    }
    fn rest(&self, at: usize) -> &'a [u8] {
        &self.buf[at..]
    }
}

impl std::fmt::Debug for Fields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} bytes)", self.what, self.buf.len())
    }
}

/// Parses one request exactly as read from `/dev/cuse`.
pub fn parse_request(buf: &[u8]) -> Result<Request<'_>, AbiError> {
    let h = Fields::new(buf, "header", IN_HEADER_LEN)?;
    let len = h.u32(0);
    if len as usize != buf.len() {
        return Err(AbiError::LengthMismatch {
            header: len,
            got: buf.len(),
        });
    }
    let opcode = h.u32(4);
    let unique = h.u64(8);
    let pid = h.u32(32);
    let body = &buf[IN_HEADER_LEN..];
    let op = match opcode {
        opcode::CUSE_INIT => {
            let b = Fields::new(body, "cuse_init_in", 16)?;
            Op::CuseInit {
                major: b.u32(0),
                minor: b.u32(4),
                flags: b.u32(12),
            }
        }
        opcode::OPEN => Op::Open {
            flags: Fields::new(body, "fuse_open_in", 8)?.u32(0),
        },
        opcode::READ => {
            let b = Fields::new(body, "fuse_read_in", 40)?;
            Op::Read {
                fh: b.u64(0),
                size: b.u32(16),
                flags: b.u32(32),
            }
        }
        opcode::WRITE => {
            let b = Fields::new(body, "fuse_write_in", WRITE_IN_LEN)?;
            let size = b.u32(16);
            let data = b.rest(WRITE_IN_LEN);
            if data.len() != size as usize {
                return Err(AbiError::WriteSize {
                    declared: size,
                    got: data.len(),
                });
            }
            Op::Write {
                fh: b.u64(0),
                flags: b.u32(32),
                data,
            }
        }
        opcode::RELEASE => Op::Release {
            fh: Fields::new(body, "fuse_release_in", 24)?.u64(0),
        },
        opcode::FLUSH => Op::Flush {
            fh: Fields::new(body, "fuse_flush_in", 24)?.u64(0),
        },
        opcode::FSYNC => Op::Fsync {
            fh: Fields::new(body, "fuse_fsync_in", 16)?.u64(0),
        },
        opcode::INTERRUPT => Op::Interrupt {
            unique: Fields::new(body, "fuse_interrupt_in", 8)?.u64(0),
        },
        opcode::IOCTL => {
            let b = Fields::new(body, "fuse_ioctl_in", 32)?;
            let in_size = b.u32(24);
            let input = b.rest(32);
            if input.len() != in_size as usize {
                return Err(AbiError::IoctlSize {
                    declared: in_size,
                    got: input.len(),
                });
            }
            Op::Ioctl {
                fh: b.u64(0),
                flags: b.u32(8),
                cmd: b.u32(12),
                arg: b.u64(16),
                input,
                out_size: b.u32(28),
            }
        }
        opcode::POLL => {
            let b = Fields::new(body, "fuse_poll_in", 24)?;
            Op::Poll {
                fh: b.u64(0),
                kh: b.u64(8),
                flags: b.u32(16),
                events: b.u32(20),
            }
        }
        opcode::DESTROY => Op::Destroy,
        other => Op::Other(other),
    };
    Ok(Request { unique, pid, op })
}

/// A reply: header then the given parts, as one buffer for one `write()`.
fn reply_parts(unique: u64, error: i32, parts: &[&[u8]]) -> Vec<u8> {
    let len = OUT_HEADER_LEN + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&(len as u32).to_le_bytes());
    v.extend_from_slice(&error.to_le_bytes());
    v.extend_from_slice(&unique.to_le_bytes());
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

/// A successful reply carrying `data`.
pub fn reply_ok(unique: u64, data: &[u8]) -> Vec<u8> {
    reply_parts(unique, 0, &[data])
}

/// A failed reply: `errno` is positive (`libc::EIO`, ...).
pub fn reply_err(unique: u64, errno: i32) -> Vec<u8> {
    reply_parts(unique, -errno, &[])
}

/// The answer to `CUSE_INIT`: register a character device named `devname` (in `/dev`).
pub fn cuse_init_reply(unique: u64, kernel_minor: u32, devname: &str, max_io: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(72);
    for v in [
        KERNEL_VERSION,
        kernel_minor.min(MAX_MINOR),
        0, // unused
        CUSE_UNRESTRICTED_IOCTL,
        max_io, // max_read
        max_io, // max_write
        0,      // dev_major: let the kernel pick
        0,      // dev_minor
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&[0u8; 40]); // spare[10]
    let info = format!("DEVNAME={devname}\0");
    reply_parts(unique, 0, &[&out, info.as_bytes()])
}

/// The answer to `OPEN`: the file handle later requests carry.
pub fn open_reply(unique: u64, fh: u64) -> Vec<u8> {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&fh.to_le_bytes());
    reply_ok(unique, &b)
}

/// The answer to `WRITE`: how many bytes were taken.
pub fn write_reply(unique: u64, size: u32) -> Vec<u8> {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&size.to_le_bytes());
    reply_ok(unique, &b)
}

/// The answer to `POLL`.
pub fn poll_reply(unique: u64, revents: u32) -> Vec<u8> {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&revents.to_le_bytes());
    reply_ok(unique, &b)
}

fn ioctl_out(result: i32, flags: u32, in_iovs: u32, out_iovs: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&result.to_le_bytes());
    b[4..8].copy_from_slice(&flags.to_le_bytes());
    b[8..12].copy_from_slice(&in_iovs.to_le_bytes());
    b[12..].copy_from_slice(&out_iovs.to_le_bytes());
    b
}

/// The answer to `IOCTL`: the return value, and what to copy back to the caller.
pub fn ioctl_reply(unique: u64, result: i32, out: &[u8]) -> Vec<u8> {
    reply_parts(unique, 0, &[&ioctl_out(result, 0, 0, 0), out])
}

/// Asks the kernel to call again with `input` = (address, length) copied in from the caller,
/// and room for `output` = (address, length) to copy out.
pub fn ioctl_retry(unique: u64, input: Option<(u64, u64)>, output: Option<(u64, u64)>) -> Vec<u8> {
    let mut iovs = Vec::with_capacity(32);
    for (base, len) in input.iter().chain(output.iter()) {
        iovs.extend_from_slice(&base.to_le_bytes());
        iovs.extend_from_slice(&len.to_le_bytes());
    }
    let head = ioctl_out(
        0,
        ioctl_flags::RETRY,
        u32::from(input.is_some()),
        u32::from(output.is_some()),
    );
    reply_parts(unique, 0, &[&head, &iovs])
}

/// A notification (unique 0) that poll handle `kh` should be polled again.
pub fn poll_wakeup(kh: u64) -> Vec<u8> {
    reply_parts(0, NOTIFY_POLL, &[&kh.to_le_bytes()])
}
