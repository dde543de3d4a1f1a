//! The ioctl dispatch and the tty's behaviour, driven with requests encoded as the kernel
//! sends them and checked through the replies and the messages for the remote port.

use std::time::{Duration, Instant};

use xoq_wire::{FlowControl, LineSettings, Message, ModemLines, ModemStatus, Parity, StopBits};

use super::*;
use crate::abi::{opcode, parse_request, IN_HEADER_LEN};
use crate::ioctl::*;

const ARG: u64 = 0x7fff_0000_1000;

fn request(op: u32, unique: u64, body: &[u8]) -> Vec<u8> {
    let len = (IN_HEADER_LEN + body.len()) as u32;
    let mut v = Vec::new();
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&op.to_le_bytes());
    v.extend_from_slice(&unique.to_le_bytes());
    v.extend_from_slice(&[0u8; 24]); // nodeid, uid, gid, pid, extlen, padding
    v.extend_from_slice(body);
    v
}

fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

/// A reply as the kernel would read it.
#[derive(Debug)]
struct Reply {
    error: i32,
    unique: u64,
    body: Vec<u8>,
}

fn parse_reply(r: &[u8]) -> Reply {
    let len = u32::from_le_bytes(r[0..4].try_into().unwrap()) as usize;
    assert_eq!(len, r.len(), "reply length field");
    Reply {
        error: i32::from_le_bytes(r[4..8].try_into().unwrap()),
        unique: u64::from_le_bytes(r[8..16].try_into().unwrap()),
        body: r[16..].to_vec(),
    }
}

struct Rig {
    tty: Tty,
    now: Instant,
    next_unique: u64,
}

impl Rig {
    fn new(read_only: bool) -> Rig {
        let mut tty = Tty::new(TtyConfig {
            line_number: 3,
            read_only,
            line: LineSettings::default(),
            modem: ModemStatus::default(),
        });
        let now = Instant::now();
        tty.link_up(LineSettings::default(), ModemStatus::default(), now);
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

    fn send(&mut self, op: u32, body: &[u8]) -> u64 {
        let unique = self.next_unique;
        self.next_unique += 1;
        let raw = request(op, unique, body);
        let req = parse_request(&raw).expect("well-formed request");
        self.tty.handle(&req, self.now);
        unique
    }

    fn replies(&mut self) -> Vec<Reply> {
        self.tty
            .take_replies()
            .iter()
            .map(|r| parse_reply(r))
            .collect()
    }

    /// The only reply, which must answer `unique`.
    fn reply_to(&mut self, unique: u64) -> Reply {
        let mut r = self.replies();
        assert_eq!(r.len(), 1, "one reply: {r:?}");
        let r = r.remove(0);
        assert_eq!(r.unique, unique);
        r
    }

    fn uplink(&mut self) -> Vec<Message> {
        std::iter::from_fn(|| self.tty.pop_uplink(self.now)).collect()
    }

    fn open(&mut self) -> u64 {
        let u = self.send(opcode::OPEN, &[2, 0, 0, 0, 0, 0, 0, 0]);
        let r = self.reply_to(u);
        assert_eq!(r.error, 0);
        u64::from_le_bytes(r.body[..8].try_into().unwrap())
    }

    fn ioctl_raw(&mut self, cmd: u32, arg: u64, input: &[u8], out_size: u32) -> u64 {
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
    fn ioctl(&mut self, cmd: u32, arg: u64, input: &[u8]) -> Option<Reply> {
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
    fn ioctl_ok(&mut self, cmd: u32, arg: u64, input: &[u8]) -> Vec<u8> {
        let r = self.ioctl(cmd, arg, input).expect("answered at once");
        assert_eq!(r.error, 0, "ioctl {cmd:#x} failed: {r:?}");
        let result = i32::from_le_bytes(r.body[..4].try_into().unwrap());
        assert_eq!(result, 0);
        r.body[16..].to_vec()
    }

    fn ioctl_errno(&mut self, cmd: u32, arg: u64, input: &[u8]) -> i32 {
        -self.ioctl(cmd, arg, input).expect("answered").error
    }

    fn read(&mut self, size: u32, flags: u32) -> u64 {
        let mut b = vec![0u8; 40];
        b[16..20].copy_from_slice(&le32(size));
        b[32..36].copy_from_slice(&le32(flags));
        self.send(opcode::READ, &b)
    }

    fn write(&mut self, data: &[u8], flags: u32) -> u64 {
        let mut b = vec![0u8; 40];
        b[16..20].copy_from_slice(&le32(data.len() as u32));
        b[32..36].copy_from_slice(&le32(flags));
        b.extend_from_slice(data);
        self.send(opcode::WRITE, &b)
    }

    fn poll(&mut self, kh: u64, events: u32) -> u32 {
        let mut b = vec![0u8; 24];
        b[8..16].copy_from_slice(&kh.to_le_bytes());
        b[16..20].copy_from_slice(&le32(abi::POLL_SCHEDULE_NOTIFY));
        b[20..24].copy_from_slice(&le32(events));
        let u = self.send(opcode::POLL, &b);
        let r = self.reply_to(u);
        u32::from_le_bytes(r.body[..4].try_into().unwrap())
    }

    fn remote(&mut self, m: Message) {
        self.tty.remote(m, self.now);
    }

    fn termios2(&mut self) -> libc::termios2 {
        let b = self.ioctl_ok(TCGETS2, ARG, &[]);
        assert_eq!(b.len(), 44);
        termios::from_bytes(&b, &termios::zeroed()).unwrap()
    }
}

#[test]
fn first_open_raises_dtr_and_rts_and_last_close_drops_them() {
    let mut r = Rig::new(false);
    let fh = r.open();
    assert_eq!(
        r.uplink(),
        [Message::SetModem(ModemLines {
            dtr: true,
            rts: true
        })]
    );
    let fh2 = r.open();
    assert_ne!(fh, fh2);
    assert!(r.uplink().is_empty(), "a second open changes nothing");
    for fh in [fh, fh2] {
        let mut b = vec![0u8; 24];
        b[..8].copy_from_slice(&fh.to_le_bytes());
        let u = r.send(opcode::RELEASE, &b);
        assert_eq!(r.reply_to(u).error, 0);
    }
    assert_eq!(
        r.uplink(),
        [Message::SetModem(ModemLines {
            dtr: false,
            rts: false
        })],
        "HUPCL: the last close hangs up"
    );
}

#[test]
fn tcgets_asks_for_the_callers_buffer_then_answers_with_the_remote_settings() {
    let mut r = Rig::new(false);
    let u = r.ioctl_raw(TCGETS, ARG, &[], 0);
    let first = r.reply_to(u);
    assert_eq!(first.error, 0);
    // fuse_ioctl_out { result 0, flags RETRY, in_iovs 0, out_iovs 1 } + iovec { ARG, 36 }
    let mut want = Vec::new();
    want.extend_from_slice(&0i32.to_le_bytes());
    want.extend_from_slice(&le32(abi::ioctl_flags::RETRY));
    want.extend_from_slice(&le32(0));
    want.extend_from_slice(&le32(1));
    want.extend_from_slice(&ARG.to_le_bytes());
    want.extend_from_slice(&36u64.to_le_bytes());
    assert_eq!(first.body, want);
    let out = r.ioctl_ok(TCGETS, ARG, &[]);
    assert_eq!(out.len(), 36);
    let t = termios::from_bytes(&out, &termios::zeroed()).unwrap();
    assert_eq!(t.c_cflag & libc::CBAUD, libc::B115200);
    assert_eq!(t.c_cflag & libc::CSIZE, libc::CS8);
    assert_eq!(t.c_cc[libc::VMIN], 1);
    assert_eq!(termios::to_line(&t), LineSettings::default());
}

#[test]
fn termios2_with_bother_sends_the_exact_rate_and_reads_back() {
    let mut r = Rig::new(false);
    r.open();
    r.uplink();
    let mut t = r.termios2();
    t.c_cflag &= !(libc::CBAUD | libc::CSIZE);
    t.c_cflag |= libc::BOTHER | libc::CS7 | libc::PARENB | libc::CSTOPB | libc::CRTSCTS;
    t.c_ospeed = 250_000;
    t.c_ispeed = 250_000;
    r.ioctl_ok(TCSETS2, ARG, &termios::to_bytes(&t, true));
    let want = LineSettings {
        baud: 250_000,
        data_bits: 7,
        parity: Parity::Even,
        stop_bits: StopBits::Two,
        flow: FlowControl::Hardware,
    };
    assert_eq!(r.uplink(), [Message::LineSettings(want)]);
    let back = r.termios2();
    assert_eq!(back.c_ospeed, 250_000);
    assert_eq!(back.c_cflag & libc::CBAUD, libc::BOTHER);
    // The same settings again send nothing; a standard rate by BOTHER reads back as its code.
    r.ioctl_ok(TCSETS2, ARG, &termios::to_bytes(&t, true));
    assert!(r.uplink().is_empty());
    t.c_ospeed = 1_000_000;
    r.ioctl_ok(TCSETS2, ARG, &termios::to_bytes(&t, true));
    assert_eq!(r.termios2().c_cflag & libc::CBAUD, libc::B1000000);
    assert!(matches!(r.uplink()[..], [Message::LineSettings(l)] if l.baud == 1_000_000));
}

#[test]
fn old_tcsets_takes_the_speed_from_the_code() {
    let mut r = Rig::new(false);
    let mut t = r.termios2();
    t.c_cflag = (t.c_cflag & !libc::CBAUD) | libc::B9600;
    r.ioctl_ok(TCSETS, ARG, &termios::to_bytes(&t, false));
    assert!(matches!(r.uplink()[..], [Message::LineSettings(l)] if l.baud == 9600));
    assert_eq!(r.termios2().c_ospeed, 9600);
}

#[test]
fn speed_zero_hangs_up_and_a_speed_raises_the_lines_again() {
    let mut r = Rig::new(false);
    r.open();
    r.uplink();
    let mut t = r.termios2();
    t.c_cflag &= !libc::CBAUD;
    r.ioctl_ok(TCSETS2, ARG, &termios::to_bytes(&t, true));
    assert_eq!(
        r.uplink(),
        [Message::SetModem(ModemLines {
            dtr: false,
            rts: false
        })]
    );
    t.c_cflag |= libc::B115200;
    r.ioctl_ok(TCSETS, ARG, &termios::to_bytes(&t, false));
    assert_eq!(
        r.uplink(),
        [Message::SetModem(ModemLines {
            dtr: true,
            rts: true
        })]
    );
}

#[test]
fn modem_ioctls_change_both_lines_in_one_message_and_keep_order_with_data() {
    let mut r = Rig::new(false);
    r.open();
    r.uplink();
    let u = r.write(b"before", 0);
    assert_eq!(r.reply_to(u).body[..4], le32(6));
    r.ioctl_ok(TIOCMSET, ARG, &le32(0));
    r.ioctl_ok(TIOCMBIS, ARG, &le32(tiocm::RTS));
    r.ioctl_ok(TIOCMBIS, ARG, &le32(tiocm::RTS)); // no change: nothing sent
    let u = r.write(b"after", 0);
    r.reply_to(u);
    r.ioctl_ok(TIOCMSET, ARG, &le32(tiocm::DTR));
    let off = ModemLines {
        dtr: false,
        rts: false,
    };
    assert_eq!(
        r.uplink(),
        [
            Message::Data(b"before".to_vec()),
            Message::SetModem(off),
            Message::SetModem(ModemLines {
                dtr: false,
                rts: true
            }),
            Message::Data(b"after".to_vec()),
            Message::SetModem(ModemLines {
                dtr: true,
                rts: false
            }),
        ]
    );
    let bits = r.ioctl_ok(TIOCMGET, ARG, &[]);
    assert_eq!(bits, le32(tiocm::DTR));
    r.remote(Message::ModemStatus(ModemStatus {
        cts: true,
        dcd: true,
        ..ModemStatus::default()
    }));
    let bits = u32::from_le_bytes(r.ioctl_ok(TIOCMGET, ARG, &[])[..].try_into().unwrap());
    assert_eq!(bits, tiocm::DTR | tiocm::CTS | tiocm::CAR);
}

#[test]
fn reads_wait_for_data_and_nonblocking_reads_do_not() {
    let mut r = Rig::new(false);
    let u = r.read(100, libc::O_NONBLOCK as u32);
    assert_eq!(r.reply_to(u).error, -libc::EAGAIN);
    let u = r.read(4, 0);
    assert!(r.replies().is_empty(), "a blocking read waits");
    r.remote(Message::Data(b"hello".to_vec()));
    let rep = r.reply_to(u);
    assert_eq!(rep.body, b"hell");
    assert_eq!(r.ioctl_ok(TIOCINQ, ARG, &[]), le32(1));
    let u = r.read(100, libc::O_NONBLOCK as u32);
    assert_eq!(r.reply_to(u).body, b"o");
}

#[test]
fn vmin_and_vtime_shape_blocking_reads() {
    let mut r = Rig::new(false);
    let mut t = r.termios2();
    t.c_cc[libc::VMIN] = 0;
    t.c_cc[libc::VTIME] = 5;
    r.ioctl_ok(TCSETS, ARG, &termios::to_bytes(&t, false));
    let u = r.read(10, 0);
    assert!(r.replies().is_empty());
    assert_eq!(
        r.tty.next_deadline(),
        Some(r.now + Duration::from_millis(500))
    );
    r.now += Duration::from_millis(499);
    r.tty.tick(r.now);
    assert!(r.replies().is_empty());
    r.now += Duration::from_millis(1);
    r.tty.tick(r.now);
    let rep = r.reply_to(u);
    assert_eq!((rep.error, rep.body.len()), (0, 0), "timed out: 0 bytes");

    t.c_cc[libc::VMIN] = 4;
    t.c_cc[libc::VTIME] = 0;
    r.ioctl_ok(TCSETS, ARG, &termios::to_bytes(&t, false));
    let u = r.read(10, 0);
    r.remote(Message::Data(b"abc".to_vec()));
    assert!(r.replies().is_empty(), "VMIN 4: three bytes are not enough");
    r.remote(Message::Data(b"def".to_vec()));
    assert_eq!(r.reply_to(u).body, b"abcdef");

    t.c_cc[libc::VMIN] = 0;
    t.c_cc[libc::VTIME] = 0;
    r.ioctl_ok(TCSETS, ARG, &termios::to_bytes(&t, false));
    let u = r.read(10, 0);
    assert_eq!(r.reply_to(u).body.len(), 0, "polling read returns at once");
}

#[test]
fn poll_reports_readiness_and_wakes_the_poller_when_data_arrives() {
    let mut r = Rig::new(false);
    let pollin = libc::POLLIN as u32;
    assert_eq!(r.poll(77, pollin), 0);
    r.remote(Message::Data(b"x".to_vec()));
    let notes = r.replies();
    assert_eq!(notes.len(), 1);
    assert_eq!(
        (notes[0].unique, notes[0].error),
        (0, 1),
        "FUSE_NOTIFY_POLL"
    );
    assert_eq!(notes[0].body, 77u64.to_le_bytes());
    assert_eq!(r.poll(77, pollin | libc::POLLOUT as u32) & pollin, pollin);
}

#[test]
fn tcdrain_waits_for_the_remote_port() {
    let mut r = Rig::new(false);
    let u = r.write(b"data", 0);
    r.reply_to(u);
    assert!(r.ioctl(TCSBRK, 1, &[]).is_none(), "tcdrain waits");
    let up = r.uplink();
    let seq = match up[..] {
        [Message::Data(_), Message::Drain { seq }] => seq,
        _ => panic!("{up:?}"),
    };
    r.remote(Message::Drained { seq: seq + 1 });
    assert!(r.replies().is_empty(), "another drain's answer is not ours");
    r.remote(Message::Drained { seq });
    let rep = r.replies();
    assert_eq!(rep.len(), 1);
    assert_eq!(rep[0].error, 0);
}

#[test]
fn tcsetsw_applies_the_settings_after_the_drain_and_tcsetsf_flushes_input() {
    let mut r = Rig::new(false);
    let mut t = r.termios2();
    t.c_cflag = (t.c_cflag & !libc::CBAUD) | libc::B57600;
    assert!(r
        .ioctl(TCSETSF, ARG, &termios::to_bytes(&t, false))
        .is_none());
    r.remote(Message::Data(b"stale".to_vec()));
    let up = r.uplink();
    let [Message::Drain { seq }] = up[..] else {
        panic!("{up:?}")
    };
    r.remote(Message::Drained { seq });
    assert_eq!(r.replies().len(), 1);
    assert_eq!(
        r.uplink(),
        [
            Message::Flush(xoq_wire::FlushQueue::Input),
            Message::LineSettings(LineSettings {
                baud: 57_600,
                ..LineSettings::default()
            })
        ]
    );
    assert_eq!(r.ioctl_ok(TIOCINQ, ARG, &[]), le32(0), "input flushed");
}

#[test]
fn breaks_and_flushes_travel_as_messages() {
    let mut r = Rig::new(false);
    r.ioctl_ok(TCSBRK, 0, &[]);
    r.ioctl_ok(TCSBRKP, 3, &[]);
    r.ioctl_ok(TCSBRKP, 0, &[]);
    r.ioctl_ok(TIOCSBRK, 0, &[]);
    r.ioctl_ok(TIOCCBRK, 0, &[]);
    r.ioctl_ok(TCFLSH, TCOFLUSH, &[]);
    r.ioctl_ok(TCFLSH, TCIOFLUSH, &[]);
    assert_eq!(r.ioctl_errno(TCFLSH, 9, &[]), libc::EINVAL);
    assert_eq!(
        r.uplink(),
        [
            Message::Break { duration_ms: 0 },
            Message::Break { duration_ms: 300 },
            Message::Break { duration_ms: 250 },
            Message::SetBreak(true),
            Message::SetBreak(false),
            Message::Flush(xoq_wire::FlushQueue::Output),
            Message::Flush(xoq_wire::FlushQueue::Both),
        ]
    );
}

#[test]
fn tiocmiwait_wakes_on_a_watched_line_and_icount_counts_transitions() {
    let mut r = Rig::new(false);
    assert!(r.ioctl(TIOCMIWAIT, u64::from(tiocm::CTS), &[]).is_none());
    r.remote(Message::ModemStatus(ModemStatus {
        dsr: true,
        ..ModemStatus::default()
    }));
    assert!(r.replies().is_empty(), "DSR is not watched");
    r.remote(Message::ModemStatus(ModemStatus {
        dsr: true,
        cts: true,
        ..ModemStatus::default()
    }));
    let rep = r.replies();
    assert_eq!((rep.len(), rep[0].error), (1, 0));
    let ic = r.ioctl_ok(TIOCGICOUNT, ARG, &[]);
    assert_eq!(ic.len(), ICOUNT_LEN);
    let field = |i: usize| u32::from_le_bytes(ic[4 * i..4 * i + 4].try_into().unwrap());
    assert_eq!((field(0), field(1), field(2), field(3)), (1, 1, 0, 0));
    assert_eq!(r.ioctl_errno(TIOCMIWAIT, 0, &[]), libc::EINVAL);
}

#[test]
fn an_interrupted_wait_is_answered_with_eintr() {
    let mut r = Rig::new(false);
    let read = r.read(10, 0);
    assert!(r.ioctl(TIOCMIWAIT, u64::from(tiocm::CAR), &[]).is_none());
    let u = r.send(opcode::INTERRUPT, &read.to_le_bytes());
    assert_ne!(u, read);
    let rep = r.reply_to(read);
    assert_eq!(rep.error, -libc::EINTR);
    r.send(opcode::INTERRUPT, &read.to_le_bytes());
    assert!(r.replies().is_empty(), "a second interrupt finds nothing");
}

#[test]
fn unknown_ioctls_get_enotty_at_once() {
    let mut r = Rig::new(false);
    for cmd in [
        0x5412, /* TIOCSTI */
        0x540E, /* TIOCSCTTY */
        0xdead_beef,
    ] {
        assert_eq!(r.ioctl_errno(cmd, ARG, &[]), libc::ENOTTY);
    }
}

#[test]
fn exclusive_open_refuses_a_second_opener_until_released() {
    let mut r = Rig::new(false);
    r.open();
    r.ioctl_ok(TIOCEXCL, 0, &[]);
    assert_eq!(r.ioctl_ok(TIOCGEXCL, ARG, &[]), le32(1));
    let u = r.send(opcode::OPEN, &[0; 8]);
    assert_eq!(r.reply_to(u).error, -libc::EBUSY);
    r.ioctl_ok(TIOCNXCL, 0, &[]);
    r.open();
}

#[test]
fn writes_wait_for_room_and_report_the_queue() {
    let mut r = Rig::new(false);
    let big = vec![7u8; TX_CAP];
    let u = r.write(&big, 0);
    r.reply_to(u);
    assert_eq!(r.ioctl_ok(TIOCOUTQ, ARG, &[]), le32(TX_CAP as u32));
    let u = r.write(b"more", libc::O_NONBLOCK as u32);
    assert_eq!(r.reply_to(u).error, -libc::EAGAIN);
    let blocked = r.write(b"more", 0);
    assert!(
        r.replies().is_empty(),
        "the queue is full: the writer waits"
    );
    let first = r.tty.pop_uplink(r.now);
    assert!(matches!(first, Some(Message::Data(ref d)) if d.len() == TX_CAP));
    assert_eq!(r.reply_to(blocked).body[..4], le32(4));
    assert_eq!(r.uplink(), [Message::Data(b"more".to_vec())]);
}

#[test]
fn the_link_going_down_fails_writes_keeps_reads_waiting_and_drops_carrier() {
    let mut r = Rig::new(false);
    r.remote(Message::ModemStatus(ModemStatus {
        dcd: true,
        dsr: true,
        cts: true,
        ..ModemStatus::default()
    }));
    let mut t = r.termios2();
    let read = r.read(10, 0);
    assert!(r.ioctl(TIOCMIWAIT, u64::from(tiocm::CAR), &[]).is_none());
    assert!(r.ioctl(TCSBRK, 1, &[]).is_none());
    r.uplink();
    r.tty.link_down(r.now);
    let rep = r.replies();
    assert_eq!(rep.len(), 2, "{rep:?}");
    assert!(rep.iter().any(|x| x.error == -libc::EIO), "the drain fails");
    assert!(
        rep.iter().any(|x| x.error == 0),
        "TIOCMIWAIT wakes: carrier lost"
    );
    let u = r.write(b"x", 0);
    assert_eq!(r.reply_to(u).error, -libc::EIO);
    assert_eq!(r.ioctl_errno(TIOCSBRK, 0, &[]), libc::EIO);
    assert_eq!(r.ioctl_ok(TIOCMGET, ARG, &[]), le32(0));
    // Settings made while the link is down reach the port when it returns.
    t.c_cflag = (t.c_cflag & !libc::CBAUD) | libc::B9600;
    r.ioctl_ok(TCSETS, ARG, &termios::to_bytes(&t, false));
    r.ioctl_ok(TIOCMSET, ARG, &le32(tiocm::RTS));
    assert!(r.uplink().is_empty());
    r.tty
        .link_up(LineSettings::default(), ModemStatus::default(), r.now);
    assert_eq!(
        r.uplink(),
        [
            Message::LineSettings(LineSettings {
                baud: 9600,
                ..LineSettings::default()
            }),
            Message::SetModem(ModemLines {
                dtr: false,
                rts: true
            })
        ]
    );
    r.remote(Message::Data(b"back".to_vec()));
    assert_eq!(r.reply_to(read).body, b"back");
}

#[test]
fn a_read_only_tty_reads_and_watches_but_does_not_drive_the_port() {
    let mut r = Rig::new(true);
    r.open();
    let u = r.write(b"no", 0);
    assert_eq!(r.reply_to(u).error, -libc::EPERM);
    assert_eq!(r.ioctl_errno(TIOCMSET, ARG, &le32(tiocm::DTR)), libc::EPERM);
    assert_eq!(r.ioctl_errno(TIOCSBRK, 0, &[]), libc::EPERM);
    let t = r.termios2();
    r.ioctl_ok(TCSETS2, ARG, &termios::to_bytes(&t, true));
    assert!(r.uplink().is_empty(), "nothing reaches the port");
    r.remote(Message::Data(b"seen".to_vec()));
    let u = r.read(10, 0);
    assert_eq!(r.reply_to(u).body, b"seen");
    assert_eq!(r.tty.counters().refused, 3);
}

#[test]
fn serial_struct_winsize_and_soft_carrier_keep_what_is_set() {
    let mut r = Rig::new(false);
    let mut s = r.ioctl_ok(TIOCGSERIAL, ARG, &[]);
    assert_eq!(s.len(), SERIAL_STRUCT_LEN);
    assert_eq!(s[4..8], le32(3), "line number");
    s[16..20].copy_from_slice(&le32(0x2000)); // ASYNC_LOW_LATENCY
    r.ioctl_ok(TIOCSSERIAL, ARG, &s);
    assert_eq!(r.ioctl_ok(TIOCGSERIAL, ARG, &[])[16..20], le32(0x2000));
    let ws = [24u8, 0, 80, 0, 0, 0, 0, 0];
    r.ioctl_ok(TIOCSWINSZ, ARG, &ws);
    assert_eq!(r.ioctl_ok(TIOCGWINSZ, ARG, &[]), ws);
    r.ioctl_ok(TIOCSSOFTCAR, ARG, &le32(0));
    assert_eq!(r.ioctl_ok(TIOCGSOFTCAR, ARG, &[]), le32(0));
    assert_eq!(r.ioctl_ok(TIOCGETD, ARG, &[]), le32(0));
}

#[test]
fn a_32bit_caller_gets_enotty_for_layouts_that_differ() {
    let mut r = Rig::new(false);
    let mut b = Vec::new();
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&le32(
        abi::ioctl_flags::UNRESTRICTED | abi::ioctl_flags::BITS32,
    ));
    b.extend_from_slice(&le32(TIOCGSERIAL));
    b.extend_from_slice(&ARG.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    let u = r.send(opcode::IOCTL, &b);
    assert_eq!(r.reply_to(u).error, -libc::ENOTTY);
}
