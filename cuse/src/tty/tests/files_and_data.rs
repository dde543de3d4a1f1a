//! Opening and closing, reads, writes, poll, interrupts, the link going and coming.

use std::time::Duration;

use xoq_wire::{LineSettings, Message, ModemLines, ModemStatus};

use super::*;
use crate::abi::opcode;
use crate::termios;

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
        r.uplink().last(),
        Some(&Message::SetModem(ModemLines {
            dtr: false,
            rts: false
        })),
        "HUPCL: the last close hangs up (after the close barrier)"
    );
}

#[test]
fn reads_wait_for_data_and_nonblocking_reads_do_not() {
    let mut r = Rig::new(false);
    r.open();
    r.uplink();
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
    r.open();
    r.uplink();
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
    r.open();
    r.uplink();
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
fn an_open_poll_close_loop_leaves_no_poller_behind() {
    let mut r = Rig::new(false);
    let pollin = libc::POLLIN as u32;
    // 5000 files, each polled once (a new poll handle each) and closed.
    for kh in 1..=5000u64 {
        let fh = r.open();
        assert_eq!(r.poll_file(fh, kh, pollin), 0);
        r.release(fh);
    }
    assert_eq!(r.tty.poll_waiter_count(), 0);
    // Data arriving now wakes nobody: every poller's file is gone.
    r.remote(Message::Data(b"x".to_vec()));
    assert!(r.replies().is_empty());
}

#[test]
fn pollers_that_never_close_are_bounded_and_the_evicted_are_woken() {
    let mut r = Rig::new(false);
    let fh = r.open();
    let n = super::super::MAX_POLL_WAITERS as u64;
    for kh in 1..=n {
        r.poll_file(fh, kh, libc::POLLIN as u32);
    }
    let mut woken = Vec::new();
    for kh in n + 1..=n + 10 {
        r.poll_request(fh, kh, libc::POLLIN as u32);
        woken.extend(r.replies().into_iter().filter(|x| x.unique == 0));
    }
    assert_eq!(r.tty.poll_waiter_count(), n as usize);
    // The 10 oldest were woken early (a spurious wakeup: they poll again), not forgotten.
    let kh: Vec<u64> = woken
        .iter()
        .map(|x| u64::from_le_bytes(x.body[..8].try_into().unwrap()))
        .collect();
    assert_eq!(kh, (1..=10).collect::<Vec<u64>>());
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
fn the_link_going_down_fails_writes_keeps_reads_waiting_and_drops_carrier() {
    let mut r = Rig::new(false);
    r.open();
    r.uplink();
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
    assert_eq!(
        r.ioctl_ok(TIOCMGET, ARG, &[]),
        le32(tiocm::DTR | tiocm::RTS),
        "the inputs drop; our outputs stay as the open set them"
    );
    // Settings made while the link is down reach the port when it returns.
    t.c_cflag = (t.c_cflag & !libc::CBAUD) | libc::B9600;
    r.ioctl_ok(TCSETS, ARG, &termios::to_bytes(&t, false));
    r.ioctl_ok(TIOCMSET, ARG, &le32(tiocm::RTS));
    assert!(r.uplink().is_empty());
    r.tty
        .link_up(LineSettings::default(), ModemStatus::default(), true, r.now);
    assert!(
        r.uplink().is_empty(),
        "nothing before the port's first TxProgress"
    );
    r.remote(Message::TxProgress {
        written: 0,
        queued: 0,
    });
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
