//! The tty's behaviour, driven with requests encoded as the kernel sends them and checked
//! through the replies and the messages for the remote port: the test rig here, the tests in
//! `files_and_data` (open, read, write, poll, interrupts, the link) and `ioctls`.

use std::time::Instant;

use xoq_wire::{LineSettings, Message, ModemStatus};

use super::*;
use crate::abi::{opcode, parse_request, IN_HEADER_LEN};
use crate::ioctl::*;

mod close_barrier;
mod files_and_data;
mod ioctls;
mod writes;

pub(super) const ARG: u64 = 0x7fff_0000_1000;

pub(super) fn request(op: u32, unique: u64, body: &[u8]) -> Vec<u8> {
    let len = (IN_HEADER_LEN + body.len()) as u32;
    let mut v = Vec::new();
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&op.to_le_bytes());
    v.extend_from_slice(&unique.to_le_bytes());
    v.extend_from_slice(&[0u8; 24]); // nodeid, uid, gid, pid, extlen, padding
    v.extend_from_slice(body);
    v
}

pub(super) fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

/// A reply as the kernel would read it.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) error: i32,
    pub(super) unique: u64,
    pub(super) body: Vec<u8>,
}

pub(super) fn parse_reply(r: &[u8]) -> Reply {
    let len = u32::from_le_bytes(r[0..4].try_into().unwrap()) as usize;
    assert_eq!(len, r.len(), "reply length field");
    Reply {
        error: i32::from_le_bytes(r[4..8].try_into().unwrap()),
        unique: u64::from_le_bytes(r[8..16].try_into().unwrap()),
        body: r[16..].to_vec(),
    }
}

pub(super) struct Rig {
    pub(super) tty: Tty,
    pub(super) now: Instant,
    next_unique: u64,
}

impl Rig {
    pub(super) fn new(read_only: bool) -> Rig {
        let mut tty = Tty::new(TtyConfig {
            line_number: 3,
            read_only,
            line: LineSettings::default(),
            modem: ModemStatus::default(),
        });
        let now = Instant::now();
        tty.link_up(LineSettings::default(), ModemStatus::default(), true, now);
        // A read-write stream's first message: how much of our data the port has.
        tty.remote(
            Message::TxProgress {
                written: 0,
                queued: 0,
            },
            now,
        );
        let mut rig = Rig {
            tty,
            now,
            next_unique: 100,
        };
        assert!(
            rig.uplink().is_empty(),
            "nothing to send before any program"
        );
        rig
    }

    pub(super) fn send(&mut self, op: u32, body: &[u8]) -> u64 {
        let unique = self.next_unique;
        self.next_unique += 1;
        let raw = request(op, unique, body);
        let req = parse_request(&raw).expect("well-formed request");
        self.tty.handle(&req, self.now);
        unique
    }

    pub(super) fn replies(&mut self) -> Vec<Reply> {
        self.tty
            .take_replies()
            .iter()
            .map(|r| parse_reply(r))
            .collect()
    }

    /// The only reply, which must answer `unique`.
    pub(super) fn reply_to(&mut self, unique: u64) -> Reply {
        let mut r = self.replies();
        assert_eq!(r.len(), 1, "one reply: {r:?}");
        let r = r.remove(0);
        assert_eq!(r.unique, unique);
        r
    }

    pub(super) fn uplink(&mut self) -> Vec<Message> {
        std::iter::from_fn(|| self.tty.pop_uplink()).collect()
    }

    pub(super) fn open(&mut self) -> u64 {
        let u = self.send(opcode::OPEN, &[2, 0, 0, 0, 0, 0, 0, 0]);
        let r = self.reply_to(u);
        assert_eq!(r.error, 0);
        u64::from_le_bytes(r.body[..8].try_into().unwrap())
    }

    pub(super) fn ioctl_raw(&mut self, cmd: u32, arg: u64, input: &[u8], out_size: u32) -> u64 {
        let mut b = Vec::new();
        b.extend_from_slice(&1u64.to_le_bytes()); // fh
        b.extend_from_slice(&le32(abi::ioctl_flags::UNRESTRICTED));
        b.extend_from_slice(&le32(cmd));
        b.extend_from_slice(&arg.to_le_bytes());
        b.extend_from_slice(&le32(input.len() as u32));
        b.extend_from_slice(&le32(out_size));
        b.extend_from_slice(input);
        self.send(opcode::IOCTL, &b)
    }

    /// An ioctl as the kernel runs it: a first call without data, and when we ask for a retry,
    /// a second one with the caller's input and room for its output. Returns the final reply.
    pub(super) fn ioctl(&mut self, cmd: u32, arg: u64, input: &[u8]) -> Option<Reply> {
        let u = self.ioctl_raw(cmd, arg, &[], 0);
        let mut r = self.replies();
        if r.is_empty() {
            return None;
        }
        let first = r.remove(0);
        assert_eq!(first.unique, u);
        if first.error != 0 {
            return Some(first);
        }
        let flags = u32::from_le_bytes(first.body[4..8].try_into().unwrap());
        if flags & abi::ioctl_flags::RETRY == 0 {
            return Some(first);
        }
        let in_iovs = u32::from_le_bytes(first.body[8..12].try_into().unwrap());
        let out_iovs = u32::from_le_bytes(first.body[12..16].try_into().unwrap());
        let iov = |i: usize| {
            let at = 16 + 16 * i;
            (
                u64::from_le_bytes(first.body[at..at + 8].try_into().unwrap()),
                u64::from_le_bytes(first.body[at + 8..at + 16].try_into().unwrap()),
            )
        };
        let mut out_size = 0;
        if in_iovs == 1 {
            assert_eq!(iov(0), (ARG, input.len() as u64), "input iovec");
        }
        if out_iovs == 1 {
            let (base, len) = iov(in_iovs as usize);
            assert_eq!(base, ARG);
            out_size = len as u32;
        }
        let u = self.ioctl_raw(cmd, arg, input, out_size);
        let mut r = self.replies();
        if r.is_empty() {
            return None;
        }
        let last = r.remove(0);
        assert_eq!(last.unique, u);
        Some(last)
    }

    /// An ioctl that must succeed at once; returns what it copies out.
    pub(super) fn ioctl_ok(&mut self, cmd: u32, arg: u64, input: &[u8]) -> Vec<u8> {
        let r = self.ioctl(cmd, arg, input).expect("answered at once");
        assert_eq!(r.error, 0, "ioctl {cmd:#x} failed: {r:?}");
        let result = i32::from_le_bytes(r.body[..4].try_into().unwrap());
        assert_eq!(result, 0);
        r.body[16..].to_vec()
    }

    pub(super) fn ioctl_errno(&mut self, cmd: u32, arg: u64, input: &[u8]) -> i32 {
        -self.ioctl(cmd, arg, input).expect("answered").error
    }

    pub(super) fn read(&mut self, size: u32, flags: u32) -> u64 {
        let mut b = vec![0u8; 40];
        b[16..20].copy_from_slice(&le32(size));
        b[32..36].copy_from_slice(&le32(flags));
        self.send(opcode::READ, &b)
    }

    pub(super) fn write(&mut self, data: &[u8], flags: u32) -> u64 {
        let mut b = vec![0u8; 40];
        b[16..20].copy_from_slice(&le32(data.len() as u32));
        b[32..36].copy_from_slice(&le32(flags));
        b.extend_from_slice(data);
        self.send(opcode::WRITE, &b)
    }

    pub(super) fn poll(&mut self, kh: u64, events: u32) -> u32 {
        self.poll_file(0, kh, events)
    }

    /// A poll of file handle `fh` that asks to be notified.
    pub(super) fn poll_file(&mut self, fh: u64, kh: u64, events: u32) -> u32 {
        let u = self.poll_request(fh, kh, events);
        let r = self.reply_to(u);
        u32::from_le_bytes(r.body[..4].try_into().unwrap())
    }

    /// Sends the poll request and leaves every reply (and notification) to the caller.
    pub(super) fn poll_request(&mut self, fh: u64, kh: u64, events: u32) -> u64 {
        let mut b = vec![0u8; 24];
        b[..8].copy_from_slice(&fh.to_le_bytes());
        b[8..16].copy_from_slice(&kh.to_le_bytes());
        b[16..20].copy_from_slice(&le32(abi::POLL_SCHEDULE_NOTIFY));
        b[20..24].copy_from_slice(&le32(events));
        self.send(opcode::POLL, &b)
    }

    pub(super) fn release(&mut self, fh: u64) {
        let mut b = vec![0u8; 24];
        b[..8].copy_from_slice(&fh.to_le_bytes());
        let u = self.send(opcode::RELEASE, &b);
        assert_eq!(self.reply_to(u).error, 0);
    }

    /// The kernel's `FUSE_INTERRUPT` for the request `unique`.
    pub(super) fn interrupt(&mut self, unique: u64) {
        self.send(crate::abi::opcode::INTERRUPT, &unique.to_le_bytes());
    }

    pub(super) fn remote(&mut self, m: Message) {
        self.tty.remote(m, self.now);
    }

    pub(super) fn termios2(&mut self) -> libc::termios2 {
        let b = self.ioctl_ok(TCGETS2, ARG, &[]);
        assert_eq!(b.len(), 44);
        termios::from_bytes(&b, &termios::zeroed()).unwrap()
    }
}
