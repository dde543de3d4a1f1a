//! `cuse_stub NAME`: registers a CUSE character device /dev/NAME and serves nothing.
//!
//! A test-only helper for the udev suite (tests/vm/suites/udev.sh): it makes the kernel create
//! a device of class `cuse` named like the ones `xoq-mount` creates (`ttyXOQ<N>`), so the
//! installed udev rules can be checked against a real uevent. It opens /dev/cuse, answers
//! CUSE_INIT with `DEVNAME=NAME`, prints `ready /dev/NAME`, then answers every later request
//! (open, ...) with ENOSYS until it is killed; the kernel removes the device when it exits.
//!
//! Wire format: linux/fuse.h (`fuse_in_header`, `fuse_out_header`, `cuse_init_in`,
//! `cuse_init_out`), native endian.

use std::fs::OpenOptions;
use std::io::{Read, Write};

use anyhow::{bail, Context, Result};

/// `fuse_in_header`: len u32, opcode u32, unique u64, nodeid u64, uid, gid, pid u32, 2 x u16.
const IN_HEADER: usize = 40;
const CUSE_INIT: u32 = 4096;
const FUSE_INTERRUPT: u32 = 36;
/// The protocol version we answer with; the kernel wants major 7 and minor >= 11.
const FUSE_KERNEL_VERSION: u32 = 7;
const FUSE_KERNEL_MINOR_VERSION: u32 = 31;
/// The kernel refuses reads into buffers smaller than 8 KiB (FUSE_MIN_READ_BUFFER).
const READ_BUFFER: usize = 64 * 1024;

fn main() {
    if let Err(e) = run() {
        eprintln!("cuse_stub: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name] = args.as_slice() else {
        bail!("usage: cuse_stub NAME   (creates /dev/NAME, e.g. ttyXOQ7)");
    };
    if name.is_empty() || name.contains(['/', '\0']) {
        bail!("NAME must be a plain device name, not `{name}`");
    }
    let mut dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/cuse")
        .context("cannot open /dev/cuse (module cuse loaded? root?)")?;
    let mut buf = vec![0u8; READ_BUFFER];
    let mut announced = false;
    loop {
        let n = dev.read(&mut buf).context("read from /dev/cuse")?;
        let req = Request::parse(&buf[..n])?;
        let reply = match req.opcode {
            CUSE_INIT => init_reply(req.unique, name),
            // An interrupt refers to another request and gets no reply of its own.
            FUSE_INTERRUPT => continue,
            _ => error_reply(req.unique, libc::ENOSYS),
        };
        // The kernel takes a reply in exactly one write.
        let written = dev.write(&reply).context("write to /dev/cuse")?;
        if written != reply.len() {
            bail!(
                "short write to /dev/cuse: {written} of {} bytes",
                reply.len()
            );
        }
        if req.opcode == CUSE_INIT && !announced {
            announced = true;
            println!("ready /dev/{name}");
            std::io::stdout().flush().context("stdout")?;
        }
    }
}

struct Request {
    opcode: u32,
    unique: u64,
}

impl Request {
    fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < IN_HEADER {
            bail!("request of {} bytes, shorter than its header", b.len());
        }
        let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut unique = [0u8; 8];
        unique.copy_from_slice(&b[8..16]);
        Ok(Self {
            opcode: u32_at(4),
            unique: u64::from_ne_bytes(unique),
        })
    }
}

/// `fuse_out_header` (len u32, error i32, unique u64) followed by `body`.
fn reply(unique: u64, error: i32, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(16 + body.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&error.to_ne_bytes());
    out.extend_from_slice(&unique.to_ne_bytes());
    out.extend_from_slice(body);
    out
}

fn error_reply(unique: u64, errno: i32) -> Vec<u8> {
    reply(unique, -errno, &[])
}

/// `cuse_init_out` (all u32, then `spare[10]`) and the device info strings.
fn init_reply(unique: u64, name: &str) -> Vec<u8> {
    let fields: [u32; 8] = [
        FUSE_KERNEL_VERSION,       // major
        FUSE_KERNEL_MINOR_VERSION, // minor
        0,                         // unused
        0,                         // flags
        4096,                      // max_read
        4096,                      // max_write
        0,                         // dev_major: 0 = a dynamic major
        0,                         // dev_minor
    ];
    let mut body = Vec::new();
    for v in fields {
        body.extend_from_slice(&v.to_ne_bytes());
    }
    body.extend_from_slice(&[0u8; 40]);
    body.extend_from_slice(format!("DEVNAME={name}\0").as_bytes());
    reply(unique, 0, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_reply_layout() {
        let r = init_reply(0x0102_0304_0506_0708, "ttyXOQ7");
        assert_eq!(r.len(), 16 + 72 + "DEVNAME=ttyXOQ7\0".len());
        assert_eq!(
            u32::from_ne_bytes([r[0], r[1], r[2], r[3]]) as usize,
            r.len()
        );
        assert_eq!(&r[4..8], &0i32.to_ne_bytes());
        assert_eq!(&r[8..16], &0x0102_0304_0506_0708u64.to_ne_bytes());
        assert_eq!(&r[16..20], &7u32.to_ne_bytes());
        assert!(r.ends_with(b"DEVNAME=ttyXOQ7\0"));
    }

    #[test]
    fn parses_header_and_errors() {
        let mut b = vec![0u8; IN_HEADER];
        b[4..8].copy_from_slice(&CUSE_INIT.to_ne_bytes());
        b[8..16].copy_from_slice(&42u64.to_ne_bytes());
        let r = Request::parse(&b).expect("parse");
        assert_eq!((r.opcode, r.unique), (CUSE_INIT, 42));
        assert!(Request::parse(&b[..10]).is_err());
        let e = error_reply(42, libc::ENOSYS);
        assert_eq!(&e[4..8], &(-libc::ENOSYS).to_ne_bytes());
    }
}
