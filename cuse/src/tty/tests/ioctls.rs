//! The ioctl dispatch: termios, modem lines, breaks, flushes, drains, counters, the rest.

use xoq_wire::{FlowControl, LineSettings, Message, ModemLines, ModemStatus, Parity, StopBits};

use super::*;
use crate::abi::{self, opcode};
use crate::termios;

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
fn tcflow_reaches_the_port_ahead_of_queued_data() {
    use xoq_wire::FlowAction::*;
    let mut r = Rig::new(false);
    r.open();
    r.uplink();
    let u = r.write(b"queued", 0);
    r.reply_to(u);
    for arg in 0..4 {
        r.ioctl_ok(TCXONC, arg, &[]);
    }
    assert_eq!(r.ioctl_errno(TCXONC, 4, &[]), libc::EINVAL);
    assert_eq!(
        r.uplink(),
        [
            Message::Flow(SendStart),
            Message::Flow(SendStop),
            Message::Flow(RestartOutput),
            Message::Flow(SuspendOutput),
            Message::Data(b"queued".to_vec()),
        ],
        "each tcflow goes first: the port applies it at once"
    );
    let mut ro = Rig::new(true);
    assert_eq!(ro.ioctl_errno(TCXONC, 1, &[]), libc::EPERM);
}

#[test]
fn ixany_travels_as_its_own_flow_control() {
    let mut r = Rig::new(false);
    let mut t = r.termios2();
    t.c_iflag |= libc::IXON | libc::IXOFF | libc::IXANY;
    r.ioctl_ok(TCSETS2, ARG, &termios::to_bytes(&t, true));
    let sent = r.uplink();
    assert!(
        sent.iter().any(|m| matches!(
            m,
            Message::LineSettings(l) if l.flow == xoq_wire::FlowControl::SoftwareAnyRestarts
        )),
        "{sent:?}"
    );
    assert_ne!(r.termios2().c_iflag & libc::IXANY, 0, "reads back as set");
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
