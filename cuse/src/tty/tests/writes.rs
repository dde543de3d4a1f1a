//! The transmit queue: bounded like a UART's buffer, reported exactly by `TIOCOUTQ`, and
//! nothing accepted lost when the link drops.

use xoq_wire::Message;

use super::*;
use crate::tty::TX_CAP;

fn progress(written: u64, queued: u32) -> Message {
    Message::TxProgress { written, queued }
}

#[test]
fn writes_wait_until_the_port_took_enough_and_tiocoutq_counts_everything_on_the_way() {
    let mut r = Rig::new(false);
    r.open();
    r.uplink();
    let u = r.write(&[7u8; 3000], 0);
    assert_eq!(r.reply_to(u).body[..4], le32(3000));
    assert_eq!(r.ioctl_ok(TIOCOUTQ, ARG, &[]), le32(3000), "queued here");
    assert_eq!(r.uplink().len(), 1);
    assert_eq!(r.ioctl_ok(TIOCOUTQ, ARG, &[]), le32(3000), "in flight");
    // A non-blocking write takes what fits; the next one nothing.
    let u = r.write(&[8u8; 2000], libc::O_NONBLOCK as u32);
    assert_eq!(r.reply_to(u).body[..4], le32((TX_CAP - 3000) as u32));
    let u = r.write(b"x", libc::O_NONBLOCK as u32);
    assert_eq!(r.reply_to(u).error, -libc::EAGAIN);
    let blocked = r.write(b"more", 0);
    assert!(
        r.replies().is_empty(),
        "the queue is full: the writer waits"
    );
    r.uplink();
    // The port took the first write and holds 100 bytes of it in its driver.
    r.remote(progress(3000, 100));
    assert_eq!(r.reply_to(blocked).body[..4], le32(4));
    assert_eq!(
        r.ioctl_ok(TIOCOUTQ, ARG, &[]),
        le32((TX_CAP - 3000 + 4 + 100) as u32)
    );
    r.uplink();
    r.remote(progress(TX_CAP as u64 + 4, 0));
    assert_eq!(r.ioctl_ok(TIOCOUTQ, ARG, &[]), le32(0));
}

#[test]
fn a_blocking_write_larger_than_the_buffer_goes_in_piece_by_piece() {
    let mut r = Rig::new(false);
    r.open();
    r.uplink();
    let u = r.write(&[1u8; 3 * TX_CAP], 0);
    assert!(r.replies().is_empty(), "the writer waits for the line");
    assert_eq!(r.ioctl_ok(TIOCOUTQ, ARG, &[]), le32(TX_CAP as u32));
    let mut sent = r.uplink();
    r.remote(progress(TX_CAP as u64, 0));
    sent.extend(r.uplink());
    assert!(r.replies().is_empty());
    r.remote(progress(2 * TX_CAP as u64, 0));
    assert_eq!(
        r.reply_to(u).body[..4],
        le32(3 * TX_CAP as u32),
        "all of it in"
    );
    sent.extend(r.uplink());
    let bytes: usize = sent
        .iter()
        .map(|m| match m {
            Message::Data(d) => d.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(bytes, 3 * TX_CAP);
}

#[test]
fn an_interrupted_or_cut_off_write_returns_what_went_in() {
    let mut r = Rig::new(false);
    r.open();
    r.uplink();
    let u = r.write(&[2u8; 2 * TX_CAP], 0);
    r.interrupt(u);
    assert_eq!(
        r.reply_to(u).body[..4],
        le32(TX_CAP as u32),
        "a signal: the count so far"
    );
    let u = r.write(b"z", 0);
    r.interrupt(u);
    assert_eq!(r.reply_to(u).error, -libc::EINTR, "nothing went in: EINTR");
    let u = r.write(b"w", 0);
    r.tty.link_down(r.now);
    let rep = r.replies();
    assert!(
        rep.iter().any(|x| x.unique == u && x.error == -libc::EIO),
        "the link dropped before any of it went in: {rep:?}"
    );
}

#[test]
fn data_in_flight_when_the_link_drops_is_sent_again_unless_the_port_took_it() {
    let mut r = Rig::new(false);
    r.open();
    r.uplink();
    let u = r.write(b"0123456789", 0);
    r.reply_to(u);
    assert_eq!(r.uplink(), [Message::Data(b"0123456789".to_vec())]);
    r.remote(progress(4, 0));
    let u = r.write(b"abc", 0);
    r.reply_to(u);
    r.tty.link_down(r.now);
    assert_eq!(
        r.ioctl_ok(TIOCOUTQ, ARG, &[]),
        le32(6 + 3),
        "kept, not cleared"
    );
    r.tty
        .link_up(LineSettings::default(), ModemStatus::default(), true, r.now);
    assert!(
        r.uplink().is_empty(),
        "nothing before the port says what it has"
    );
    // Of the 6 bytes in flight the port took 2 more before the link dropped.
    r.remote(progress(6, 0));
    assert_eq!(
        r.uplink(),
        [
            Message::Data(b"6789".to_vec()),
            Message::Data(b"abc".to_vec()),
            // The program's DTR/RTS, which the restarted remote does not have.
            Message::SetModem(xoq_wire::ModemLines {
                dtr: true,
                rts: true
            }),
        ],
        "the rest, once, in order, before what was queued after it, then the settings"
    );
    assert_eq!(r.tty.resent_bytes(), 4);
    r.remote(progress(13, 0));
    assert_eq!(r.ioctl_ok(TIOCOUTQ, ARG, &[]), le32(0));
}

#[test]
fn an_observer_neither_waits_for_progress_nor_keeps_data() {
    let mut r = Rig::new(true);
    r.open();
    r.tty.link_down(r.now);
    r.tty
        .link_up(LineSettings::default(), ModemStatus::default(), true, r.now);
    assert!(!r.tty.has_uplink());
    r.remote(Message::Data(b"seen".to_vec()));
    let u = r.read(10, 0);
    assert_eq!(r.reply_to(u).body, b"seen");
}

#[test]
fn a_read_write_tty_on_a_read_only_stream_refuses_writes_instead_of_filling_up() {
    let mut r = Rig::new(false);
    r.open();
    r.tty.link_down(r.now);
    // The server narrowed this client's grant: the stream is read-only.
    r.tty.link_up(
        LineSettings::default(),
        ModemStatus::default(),
        false,
        r.now,
    );
    r.uplink();
    let u = r.write(b"no", 0);
    assert_eq!(r.reply_to(u).error, -libc::EPERM);
    assert!(r.uplink().iter().all(|m| !matches!(m, Message::Data(_))));
}
