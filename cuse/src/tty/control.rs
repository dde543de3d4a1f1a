//! The tty ioctls: termios, modem lines, breaks, flushes, drains, queue sizes, counters.
//! Each is answered as a serial port driver would, and what changes the port travels to the
//! remote in order with the data.

use std::time::{Duration, Instant};

use xoq_wire::limits::MAX_BREAK_MS;
use xoq_wire::{FlowAction, Message};

use super::{AfterDrain, PendingWait, Tty};
use crate::abi::{self, ioctl_flags};
use crate::ioctl::*;
use crate::termios;

/// How an ioctl ends.
enum Outcome {
    /// Return 0, and copy these bytes back to the caller.
    Done(Vec<u8>),
    /// Return -1 with this errno.
    Fail(i32),
    /// Answered later (drain, modem wait).
    Parked,
}

use Outcome::{Done, Fail, Parked};

fn int_out(v: i64) -> Outcome {
    Done(
        (v.clamp(0, i64::from(i32::MAX)) as i32)
            .to_le_bytes()
            .to_vec(),
    )
}

fn int_in(input: &[u8]) -> u32 {
    u32::from_le_bytes([input[0], input[1], input[2], input[3]])
}

/// `struct serial_struct` as `TIOCGSERIAL` first reports it: type unknown, our line number,
/// closing wait 30 s (the kernel's default); the rest zero.
pub(super) fn initial_serial_struct(line: u32) -> [u8; SERIAL_STRUCT_LEN] {
    let mut s = [0u8; SERIAL_STRUCT_LEN];
    s[4..8].copy_from_slice(&line.to_le_bytes());
    s[40..42].copy_from_slice(&3000u16.to_le_bytes());
    s
}

/// How long a last close waits for the remote port, from `struct serial_struct`.
pub(super) enum ClosingWait {
    /// `ASYNC_CLOSING_WAIT_INF` (0).
    Forever,
    /// In hundredths of a second; `ASYNC_CLOSING_WAIT_NONE` (65535) is no wait at all.
    For(Duration),
}

pub(super) fn closing_wait(serial: &[u8; SERIAL_STRUCT_LEN]) -> ClosingWait {
    match u16::from_le_bytes([serial[40], serial[41]]) {
        0 => ClosingWait::Forever,
        u16::MAX => ClosingWait::For(Duration::ZERO),
        cs => ClosingWait::For(Duration::from_millis(10 * u64::from(cs))),
    }
}

impl Tty {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ioctl(
        &mut self,
        unique: u64,
        flags: u32,
        cmd: u32,
        arg: u64,
        input: &[u8],
        out_size: u32,
        now: Instant,
    ) {
        let Some(shape) = shape_of(cmd) else {
            self.reply(abi::reply_err(unique, libc::ENOTTY));
            return;
        };
        if flags & ioctl_flags::BITS32 != 0 && differs_for_32bit(cmd) {
            self.reply(abi::reply_err(unique, libc::ENOTTY));
            return;
        }
        if input.len() < shape.input || (out_size as usize) < shape.output {
            // First call of a pointer ioctl: ask for the caller's memory.
            let reply = if flags & ioctl_flags::UNRESTRICTED != 0 {
                abi::ioctl_retry(
                    unique,
                    (shape.input > 0).then_some((arg, shape.input as u64)),
                    (shape.output > 0).then_some((arg, shape.output as u64)),
                )
            } else {
                abi::reply_err(unique, libc::EIO)
            };
            self.reply(reply);
            return;
        }
        let outcome = self.dispatch(unique, cmd, arg, input, now);
        let reply = match outcome {
            Done(out) => abi::ioctl_reply(unique, 0, &out),
            Fail(errno) => abi::reply_err(unique, errno),
            Parked => return,
        };
        self.reply(reply);
    }

    fn dispatch(
        &mut self,
        unique: u64,
        cmd: u32,
        arg: u64,
        input: &[u8],
        _now: Instant,
    ) -> Outcome {
        match cmd {
            TCGETS => Done(termios::to_bytes(&self.termios, false)),
            TCGETS2 => Done(termios::to_bytes(&self.termios, true)),
            TCSETS | TCSETS2 | TCSETSW | TCSETSW2 | TCSETSF | TCSETSF2 => {
                self.set_termios(unique, cmd, input)
            }
            TIOCMGET => int_out(i64::from(self.modem_bits())),
            TIOCMSET | TIOCMBIS | TIOCMBIC => self.set_modem_bits(cmd, int_in(input)),
            TIOCINQ => int_out(self.rx.len() as i64),
            TIOCOUTQ => int_out(self.output_queue() as i64),
            TCSBRK if arg != 0 => self.tcdrain(unique),
            TCSBRK => self.send_break(0),
            // In tenths of a second; 0 means the usual quarter second.
            TCSBRKP => self.send_break(if arg == 0 {
                250
            } else {
                arg.saturating_mul(100).min(u64::from(MAX_BREAK_MS)) as u16
            }),
            TIOCSBRK | TIOCCBRK => self.hold_break(cmd == TIOCSBRK),
            TCXONC => match arg {
                0 => self.flow(FlowAction::SuspendOutput),
                1 => self.flow(FlowAction::RestartOutput),
                2 => self.flow(FlowAction::SendStop),
                3 => self.flow(FlowAction::SendStart),
                _ => Fail(libc::EINVAL),
            },
            TCFLSH => match arg {
                TCIFLUSH => self.flush_done(true, false),
                TCOFLUSH => self.flush_done(false, true),
                TCIOFLUSH => self.flush_done(true, true),
                _ => Fail(libc::EINVAL),
            },
            TIOCEXCL => {
                self.exclusive = true;
                Done(Vec::new())
            }
            TIOCNXCL => {
                self.exclusive = false;
                Done(Vec::new())
            }
            TIOCGEXCL => int_out(i64::from(self.exclusive)),
            TIOCGSERIAL => Done(self.serial.to_vec()),
            TIOCSSERIAL => {
                // Type and line are ours; flags (low latency, ...) and the rest are kept.
                self.serial[8..].copy_from_slice(&input[8..SERIAL_STRUCT_LEN]);
                Done(Vec::new())
            }
            TIOCMIWAIT => self.modem_wait(unique, arg),
            TIOCGICOUNT => Done(self.icount_bytes()),
            TIOCGWINSZ => Done(self.winsize.to_vec()),
            TIOCSWINSZ => {
                self.winsize.copy_from_slice(&input[..WINSIZE_LEN]);
                Done(Vec::new())
            }
            TIOCGSOFTCAR => int_out(i64::from(self.termios.c_cflag & libc::CLOCAL != 0)),
            TIOCSSOFTCAR => {
                if int_in(input) != 0 {
                    self.termios.c_cflag |= libc::CLOCAL;
                } else {
                    self.termios.c_cflag &= !libc::CLOCAL;
                }
                Done(Vec::new())
            }
            // N_TTY: the only line discipline there is here.
            TIOCGETD => int_out(0),
            _ => Fail(libc::ENOTTY),
        }
    }

    fn set_termios(&mut self, unique: u64, cmd: u32, input: &[u8]) -> Outcome {
        let Some(t) = termios::from_bytes(input, &self.termios) else {
            return Fail(libc::EINVAL);
        };
        let wait = matches!(cmd, TCSETSW | TCSETSW2 | TCSETSF | TCSETSF2);
        let flush_input = matches!(cmd, TCSETSF | TCSETSF2);
        if !wait || self.read_only {
            self.apply_termios(t, flush_input);
            return Done(Vec::new());
        }
        if !self.link {
            // Nothing can drain; the settings still apply (and reach the port on reconnect).
            self.apply_termios(t, flush_input);
            return Done(Vec::new());
        }
        self.drain_then(
            unique,
            AfterDrain::Settings {
                termios: t,
                flush_input,
            },
        );
        Parked
    }

    /// Puts new settings in force: speed 0 hangs up (drops DTR and RTS), leaving it raises them
    /// again, and changed line settings go to the remote port.
    pub(super) fn apply_termios(&mut self, t: libc::termios2, flush_input: bool) {
        if flush_input {
            self.flush(true, false);
        }
        let was_hung_up = termios::is_hangup(&self.termios);
        self.termios = t;
        self.touched_line = true;
        if self.read_only {
            return;
        }
        if termios::is_hangup(&t) {
            if !was_hung_up {
                self.set_outputs(false, false);
            }
            return;
        }
        if was_hung_up {
            self.set_outputs(true, true);
        }
        let line = termios::to_line(&t);
        if self.link && self.remote_line != Some(line) {
            self.send_line(line);
        }
    }

    fn modem_bits(&self) -> u32 {
        let mut b = 0;
        for (on, bit) in [
            (self.dtr, tiocm::DTR),
            (self.rts, tiocm::RTS),
            (self.inputs.cts, tiocm::CTS),
            (self.inputs.dcd, tiocm::CAR),
            (self.inputs.ri, tiocm::RNG),
            (self.inputs.dsr, tiocm::DSR),
        ] {
            if on {
                b |= bit;
            }
        }
        b
    }

    fn set_modem_bits(&mut self, cmd: u32, bits: u32) -> Outcome {
        if self.read_only {
            self.counters.refused += 1;
            return Fail(libc::EPERM);
        }
        let dtr = bits & tiocm::DTR != 0;
        let rts = bits & tiocm::RTS != 0;
        let (new_dtr, new_rts) = match cmd {
            TIOCMSET => (dtr, rts),
            TIOCMBIS => (self.dtr || dtr, self.rts || rts),
            _ => (self.dtr && !dtr, self.rts && !rts),
        };
        self.set_outputs(new_dtr, new_rts);
        Done(Vec::new())
    }

    /// Refusal for calls that act on the remote port: read-only mount, or link down.
    fn cannot_act(&mut self) -> Option<Outcome> {
        if self.read_only {
            self.counters.refused += 1;
            Some(Fail(libc::EPERM))
        } else if !self.link {
            self.counters.link_down_errors += 1;
            Some(Fail(libc::EIO))
        } else {
            None
        }
    }

    fn tcdrain(&mut self, unique: u64) -> Outcome {
        if self.read_only {
            // Nothing was written through this device.
            return Done(Vec::new());
        }
        if let Some(refusal) = self.cannot_act() {
            return refusal;
        }
        self.drain_then(unique, AfterDrain::Reply);
        Parked
    }

    fn send_break(&mut self, duration_ms: u16) -> Outcome {
        if let Some(refusal) = self.cannot_act() {
            return refusal;
        }
        self.send(Message::Break { duration_ms });
        Done(Vec::new())
    }

    fn hold_break(&mut self, on: bool) -> Outcome {
        if let Some(refusal) = self.cannot_act() {
            return refusal;
        }
        self.send(Message::SetBreak(on));
        Done(Vec::new())
    }

    /// `tcflow`: the remote port acts at once, ahead of the data queued before it.
    fn flow(&mut self, action: FlowAction) -> Outcome {
        if let Some(refusal) = self.cannot_act() {
            return refusal;
        }
        self.uplink.push_front(Message::Flow(action));
        Done(Vec::new())
    }

    fn flush_done(&mut self, input: bool, output: bool) -> Outcome {
        self.flush(input, output);
        Done(Vec::new())
    }

    fn modem_wait(&mut self, unique: u64, arg: u64) -> Outcome {
        let mask = arg as u32 & (tiocm::RNG | tiocm::DSR | tiocm::CAR | tiocm::CTS);
        if mask == 0 {
            return Fail(libc::EINVAL);
        }
        self.waits.push(PendingWait {
            unique,
            mask,
            since: self.icount,
        });
        Parked
    }

    /// Answers every `TIOCMIWAIT` whose lines changed since it started.
    pub(super) fn wake_modem_waiters(&mut self) {
        let now = self.icount;
        let mut woken = Vec::new();
        self.waits.retain(|w| {
            let changed = (w.mask & tiocm::CTS != 0 && now.cts != w.since.cts)
                || (w.mask & tiocm::DSR != 0 && now.dsr != w.since.dsr)
                || (w.mask & tiocm::CAR != 0 && now.dcd != w.since.dcd)
                || (w.mask & tiocm::RNG != 0 && now.rng != w.since.rng);
            if changed {
                woken.push(w.unique);
            }
            !changed
        });
        for u in woken {
            self.reply(abi::ioctl_reply(u, 0, &[]));
        }
    }

    fn icount_bytes(&self) -> Vec<u8> {
        let c = self.icount;
        // cts dsr rng dcd rx tx frame overrun parity brk buf_overrun reserved[9]
        let fields = [c.cts, c.dsr, c.rng, c.dcd, c.rx, c.tx, 0, 0, 0, c.brk, 0];
        let mut v = Vec::with_capacity(ICOUNT_LEN);
        for f in fields {
            v.extend_from_slice(&f.to_le_bytes());
        }
        v.resize(ICOUNT_LEN, 0);
        v
    }
}
