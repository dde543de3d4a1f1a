//! The last close: input flushed here and at the remote, what arrives until the remote
//! confirms (or while nobody has the port open) discarded and counted, output still sent.

use std::time::Duration;

use xoq_wire::{FlushQueue, Message, ModemLines};

use super::*;

fn hangup() -> Message {
    Message::SetModem(ModemLines {
        dtr: false,
        rts: false,
    })
}

/// The `seq` of the barrier's `Drain` in what the last close sent.
fn barrier_seq(sent: &[Message]) -> u32 {
    match sent {
        [Message::Flush(FlushQueue::Input), Message::Drain { seq }, m] if *m == hangup() => *seq,
        other => panic!("the last close sends Flush(Input), Drain, then hangs up: {other:?}"),
    }
}

#[test]
fn nothing_received_before_the_last_close_reaches_the_next_program() {
    let mut r = Rig::new(false);
    let fh = r.open();
    r.uplink();
    let u = r.write(b"AT\r", 0);
    assert_eq!(r.reply_to(u).error, 0);
    r.remote(Message::Data(b"unread".to_vec()));
    r.release(fh);
    let sent = r.uplink();
    assert_eq!(
        sent[0],
        Message::Data(b"AT\r".to_vec()),
        "output written before the close is still sent, first"
    );
    let seq = barrier_seq(&sent[1..]);
    assert!(r.tty.closing());
    // The echo of the previous program's line, in flight at the close.
    r.remote(Message::Data(b"AT\r".to_vec()));
    let fh = r.open();
    r.uplink();
    // Still in flight after the next program opened: received before the close.
    r.remote(Message::Data(b"OK\r\n".to_vec()));
    let u = r.read(100, libc::O_NONBLOCK as u32);
    assert_eq!(r.reply_to(u).error, -libc::EAGAIN, "nothing old to read");
    r.remote(Message::Drained { seq });
    assert!(!r.tty.closing());
    assert!(
        r.replies().is_empty(),
        "the barrier's Drain answers no caller"
    );
    r.remote(Message::Data(b"new".to_vec()));
    let u = r.read(100, 0);
    assert_eq!(r.reply_to(u).body, b"new");
    assert_eq!(r.tty.counters().rx_discarded, 6 + 3 + 4);
    r.release(fh);
}

#[test]
fn data_arriving_while_nobody_has_the_port_open_is_discarded() {
    let mut r = Rig::new(false);
    for _ in 0..100 {
        r.remote(Message::Data(vec![b'x'; 16 * 1024]));
    }
    assert!(
        r.tty.wants_rx(),
        "a closed port keeps taking (and dropping) data: a drain behind it is never stuck"
    );
    assert_eq!(r.tty.counters().rx_discarded, 100 * 16 * 1024);
    r.open();
    assert_eq!(r.ioctl_ok(TIOCINQ, ARG, &[]), le32(0));
    r.remote(Message::Data(b"fresh".to_vec()));
    assert_eq!(r.ioctl_ok(TIOCINQ, ARG, &[]), le32(5));
}

#[test]
fn a_barrier_the_remote_never_confirms_ends_at_the_closing_wait() {
    let mut r = Rig::new(false);
    let fh = r.open();
    r.uplink();
    r.release(fh);
    barrier_seq(&r.uplink());
    assert_eq!(
        r.tty.next_deadline(),
        Some(r.now + Duration::from_secs(30)),
        "closing_wait is 30 s unless a program set it"
    );
    r.now += Duration::from_secs(29);
    r.tty.tick(r.now);
    assert!(r.tty.closing());
    r.now += Duration::from_secs(1);
    r.tty.tick(r.now);
    assert!(!r.tty.closing());
    assert_eq!(r.tty.counters().barrier_timeouts, 1);
    assert_eq!(r.tty.next_deadline(), None);
}

#[test]
fn the_link_dropping_ends_a_barrier_and_an_observer_sets_none() {
    let mut r = Rig::new(false);
    let fh = r.open();
    r.uplink();
    r.release(fh);
    barrier_seq(&r.uplink());
    r.tty.link_down(r.now);
    assert!(!r.tty.closing(), "its confirmation can no longer come");

    let mut r = Rig::new(true);
    let fh = r.open();
    r.release(fh);
    assert!(r.uplink().is_empty(), "an observer cannot flush the port");
    assert!(!r.tty.closing());
    r.remote(Message::Data(b"old".to_vec()));
    r.open();
    r.remote(Message::Data(b"new".to_vec()));
    let u = r.read(100, 0);
    assert_eq!(r.reply_to(u).body, b"new");
}
