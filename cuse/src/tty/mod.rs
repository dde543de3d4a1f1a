//! The behaviour of one CUSE serial tty, as a state machine with no I/O.
//!
//! Inputs: requests from the kernel ([`Tty::handle`]), messages from the remote port
//! ([`Tty::remote`]), the link coming and going ([`Tty::link_up`], [`Tty::link_down`]) and
//! the clock ([`Tty::tick`]). Outputs: replies and notifications for `/dev/cuse`
//! ([`Tty::take_replies`]) and messages for the remote port, in order
//! ([`Tty::pop_uplink`]). Blocking calls (a read waiting for data, `tcdrain`, `TIOCMIWAIT`, a
//! write while the transmit queue is full) are parked and answered later, or with `EINTR`
//! when the kernel says the caller got a signal.
//!
//! Like a local UART, the port receives only while a program has it open: on last close the
//! input is flushed here and at the remote port, and whatever arrives until the remote
//! confirms (a [close barrier](CloseBarrier)) or while nobody has the port open is discarded
//! and counted, so the next program never reads the answers meant for the previous one.
//! Output written before the close is still transmitted.
//!
//! While the link is down the device stays: reads wait (as on a port whose cable is out),
//! writes, drains and breaks fail with `EIO`, and the modem inputs (CTS, DSR, DCD, RI) drop, which
//! wakes `TIOCMIWAIT`. Settings made meanwhile are sent when the link returns.

mod control;
mod reads;
mod writes;

use std::collections::VecDeque;
use std::time::Instant;

use xoq_wire::limits::MAX_DATA;
use xoq_wire::{FlushQueue, LineSettings, Message, ModemLines, ModemStatus};

use crate::abi::{self, Op, Request, POLL_SCHEDULE_NOTIFY};
use crate::ioctl::SERIAL_STRUCT_LEN;
use crate::termios;
use reads::PendingRead;
pub use writes::TX_CAP;
use writes::{PendingWrite, TxQueue};

/// Bytes received and not yet read before we stop taking more from the link (the remote port
/// is then read more slowly: nothing is dropped).
pub const RX_CAP: usize = 256 * 1024;
/// Largest read or write the kernel passes us in one request.
pub const MAX_IO: u32 = MAX_DATA as u32;

/// How the tty starts.
/// Most pollers waiting at once (far more than the open files of any real program).
pub const MAX_POLL_WAITERS: usize = 1024;

#[derive(Debug, Clone)]
pub struct TtyConfig {
    /// The `N` of `ttyXOQ<N>`, reported by `TIOCGSERIAL`.
    pub line_number: u32,
    /// Observers can read and watch modem lines but neither write nor drive the port.
    pub read_only: bool,
    /// The remote port's settings when the device was created.
    pub line: LineSettings,
    pub modem: ModemStatus,
}

/// `struct serial_icounter_struct`: transitions of each input line and byte counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Icount {
    pub cts: u32,
    pub dsr: u32,
    pub rng: u32,
    pub dcd: u32,
    pub rx: u32,
    pub tx: u32,
    pub brk: u32,
}

/// Totals for the mounter's status display.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TtyCounters {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Writes and control calls refused on a read-only mount.
    pub refused: u64,
    /// Calls failed with `EIO` because the link was down.
    pub link_down_errors: u64,
    /// Bytes from the remote discarded because nobody had the port open, or because they
    /// were received before the last close (see [`CloseBarrier`]).
    pub rx_discarded: u64,
    /// Close barriers that ended at their closing wait instead of the remote's confirmation.
    pub barrier_timeouts: u64,
}

/// After the last close: the remote was asked to flush its input and then to confirm
/// (`Flush(Input)`, then `Drain`, which the remote answers once the output written before the
/// close has left the port). Data arriving before that confirmation was received before the
/// close, and is discarded.
#[derive(Debug, Clone, Copy)]
struct CloseBarrier {
    seq: u32,
    /// When to stop waiting (`closing_wait`); `None`: until confirmed or the link drops.
    until: Option<Instant>,
}

/// What to do once the remote port has transmitted everything written before.
enum AfterDrain {
    /// `tcdrain`: answer the ioctl.
    Reply,
    /// `TCSETSW` / `TCSETSF`: apply these settings, flushing input first if asked.
    Settings {
        termios: libc::termios2,
        flush_input: bool,
    },
}

struct PendingDrain {
    unique: u64,
    seq: u32,
    then: AfterDrain,
}

/// A `TIOCMIWAIT`: wakes when a line in `mask` changes.
struct PendingWait {
    unique: u64,
    mask: u32,
    since: Icount,
}

/// One CUSE serial tty.
pub struct Tty {
    read_only: bool,
    termios: libc::termios2,
    /// A program has set the line settings / the modem outputs since the device was made: on
    /// reconnection its choice wins over the remote's.
    touched_line: bool,
    touched_modem: bool,
    /// Line settings the remote has (as last sent or announced).
    remote_line: Option<LineSettings>,
    dtr: bool,
    rts: bool,
    inputs: ModemStatus,
    icount: Icount,
    counters: TtyCounters,
    rx: VecDeque<u8>,
    last_rx: Option<Instant>,
    barrier: Option<CloseBarrier>,
    uplink: VecDeque<Message>,
    tx: TxQueue,
    link: bool,
    files: Vec<u64>,
    next_fh: u64,
    exclusive: bool,
    serial: [u8; SERIAL_STRUCT_LEN],
    winsize: [u8; 8],
    reads: VecDeque<PendingRead>,
    writes: VecDeque<PendingWrite>,
    drains: Vec<PendingDrain>,
    waits: Vec<PendingWait>,
    next_seq: u32,
    /// Pollers to notify on the next rise of readiness: (file handle, poll handle). Entries of
    /// a file go when it is released, and there are at most [`MAX_POLL_WAITERS`].
    poll_waiters: Vec<(u64, u64)>,
    /// Readiness (readable, writable) when we last looked, to notify pollers on a rise.
    ready: (bool, bool),
    replies: Vec<Vec<u8>>,
}

impl Tty {
    pub fn new(cfg: TtyConfig) -> Tty {
        let mut t = Tty {
            read_only: cfg.read_only,
            termios: termios::initial(&cfg.line),
            touched_line: false,
            touched_modem: false,
            remote_line: None,
            dtr: cfg.modem.dtr,
            rts: cfg.modem.rts,
            inputs: ModemStatus::default(),
            icount: Icount::default(),
            counters: TtyCounters::default(),
            rx: VecDeque::new(),
            last_rx: None,
            barrier: None,
            uplink: VecDeque::new(),
            tx: TxQueue::default(),
            link: false,
            files: Vec::new(),
            next_fh: 1,
            exclusive: false,
            serial: control::initial_serial_struct(cfg.line_number),
            winsize: [0; 8],
            reads: VecDeque::new(),
            writes: VecDeque::new(),
            drains: Vec::new(),
            waits: Vec::new(),
            next_seq: 1,
            poll_waiters: Vec::new(),
            ready: (false, true),
            replies: Vec::new(),
        };
        t.set_inputs(cfg.modem);
        t.icount = Icount::default();
        t
    }

    /// Answers (now or later) one request from the kernel. `CUSE_INIT` is the caller's.
    pub fn handle(&mut self, req: &Request<'_>, now: Instant) {
        let u = req.unique;
        match &req.op {
            Op::Open { .. } => self.open(u),
            Op::Release { fh } => self.release(u, *fh, now),
            Op::Read { size, flags, .. } => self.read(u, *size, *flags, now),
            Op::Write { flags, data, .. } => self.write(u, *flags, data),
            Op::Poll {
                fh,
                kh,
                flags,
                events,
            } => self.poll(u, *fh, *kh, *flags, *events),
            Op::Ioctl {
                flags,
                cmd,
                arg,
                input,
                out_size,
                ..
            } => self.ioctl(u, *flags, *cmd, *arg, input, *out_size, now),
            Op::Interrupt { unique } => self.interrupt(*unique),
            Op::Flush { .. } | Op::Fsync { .. } => self.reply(abi::reply_ok(u, &[])),
            Op::CuseInit { .. } | Op::Destroy => {}
            Op::Other(_) => self.reply(abi::reply_err(u, libc::ENOSYS)),
        }
        self.settle(now);
    }

    /// Takes one message from the remote port.
    pub fn remote(&mut self, msg: Message, now: Instant) {
        match msg {
            Message::Data(d) if self.files.is_empty() || self.barrier.is_some() => {
                self.counters.rx_discarded += d.len() as u64;
            }
            Message::Data(d) => {
                self.icount.rx = self.icount.rx.wrapping_add(d.len() as u32);
                self.counters.rx_bytes += d.len() as u64;
                self.rx.extend(d);
                self.last_rx = Some(now);
            }
            Message::ModemStatus(s) => {
                if self.read_only {
                    (self.dtr, self.rts) = (s.dtr, s.rts);
                }
                self.set_inputs(s);
            }
            Message::LineSettings(l) => {
                self.remote_line = Some(l);
                if self.read_only || !self.touched_line {
                    termios::apply_line(&mut self.termios, &l);
                }
            }
            Message::Drained { seq } => self.drained(seq),
            Message::TxProgress { written, queued } => self.tx_progress(written, queued),
            _ => {}
        }
        self.settle(now);
    }

    /// The link is up with a fresh device stream; the remote port is in this state. On a
    /// read-write stream (`writer`) nothing is sent until the port says how much of our data
    /// it has (its first `TxProgress`).
    pub fn link_up(&mut self, line: LineSettings, modem: ModemStatus, writer: bool, now: Instant) {
        self.link = true;
        self.tx.resuming = writer && !self.read_only;
        self.tx.stream_read_only = !writer;
        self.remote_line = Some(line);
        if self.read_only || !self.touched_line {
            termios::apply_line(&mut self.termios, &line);
        } else if !termios::is_hangup(&self.termios) {
            let ours = termios::to_line(&self.termios);
            if ours != line {
                self.send_line(ours);
            }
        }
        if self.read_only || !self.touched_modem {
            (self.dtr, self.rts) = (modem.dtr, modem.rts);
        } else if (self.dtr, self.rts) != (modem.dtr, modem.rts) {
            self.send(Message::SetModem(ModemLines {
                dtr: self.dtr,
                rts: self.rts,
            }));
        }
        self.set_inputs(modem);
        self.settle(now);
    }

    /// The link (or the remote device) is gone.
    pub fn link_down(&mut self, now: Instant) {
        self.link = false;
        // The stream that would confirm a close barrier is gone; the next one starts clean.
        self.barrier = None;
        self.keep_data_for_next_stream();
        self.fail_waiting_writes();
        for d in std::mem::take(&mut self.drains) {
            self.fail_link_down(d.unique);
        }
        self.set_inputs(ModemStatus {
            dtr: self.dtr,
            rts: self.rts,
            ..ModemStatus::default()
        });
        self.settle(now);
    }

    /// Lets timed reads (`VTIME`) and a close barrier's closing wait expire.
    pub fn tick(&mut self, now: Instant) {
        if let Some(CloseBarrier {
            until: Some(until), ..
        }) = self.barrier
        {
            if now >= until {
                self.barrier = None;
                self.counters.barrier_timeouts += 1;
            }
        }
        self.settle(now);
    }

    /// When [`Tty::tick`] should next be called, if anything is timed.
    pub fn next_deadline(&self) -> Option<Instant> {
        let barrier = self.barrier.and_then(|b| b.until);
        match (self.read_deadline(), barrier) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True while data from the remote is discarded until it confirms the last close.
    pub fn closing(&self) -> bool {
        self.barrier.is_some()
    }

    /// Replies and notifications to write to `/dev/cuse`, one `write()` each.
    pub fn take_replies(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.replies)
    }

    /// The next message for the remote port. Data stays outstanding until the port reports
    /// that it took it.
    pub fn pop_uplink(&mut self) -> Option<Message> {
        if self.tx.resuming {
            return None;
        }
        let m = self.uplink.pop_front()?;
        if let Message::Data(d) = &m {
            self.tx.queued -= d.len();
            self.tx.ledger.sent(d);
        }
        Some(m)
    }

    /// True while messages wait for the remote port and may be sent.
    pub fn has_uplink(&self) -> bool {
        !self.tx.resuming && !self.uplink.is_empty()
    }

    /// Bytes sent again after reconnections (in flight when a link dropped, not taken).
    pub fn resent_bytes(&self) -> u64 {
        self.tx.resent
    }

    /// True while there is room for more data from the remote.
    pub fn wants_rx(&self) -> bool {
        self.rx.len() < RX_CAP
    }

    pub fn counters(&self) -> TtyCounters {
        self.counters
    }

    pub fn icount(&self) -> Icount {
        self.icount
    }

    /// How many files have the device open.
    pub fn open_files(&self) -> usize {
        self.files.len()
    }

    fn reply(&mut self, r: Vec<u8>) {
        self.replies.push(r);
    }

    fn send(&mut self, m: Message) {
        if let Message::Data(d) = &m {
            self.tx.queued += d.len();
        }
        self.uplink.push_back(m);
    }

    fn send_line(&mut self, line: LineSettings) {
        self.remote_line = Some(line);
        self.send(Message::LineSettings(line));
    }

    fn fail_link_down(&mut self, unique: u64) {
        self.counters.link_down_errors += 1;
        self.reply(abi::reply_err(unique, libc::EIO));
    }

    fn open(&mut self, unique: u64) {
        if self.exclusive && !self.files.is_empty() {
            self.reply(abi::reply_err(unique, libc::EBUSY));
            return;
        }
        let fh = self.next_fh;
        self.next_fh += 1;
        self.files.push(fh);
        // A serial port raises DTR and RTS when it is first opened (unless at speed 0).
        if self.files.len() == 1 && !self.read_only && !termios::is_hangup(&self.termios) {
            self.set_outputs(true, true);
        }
        self.reply(abi::open_reply(unique, fh));
    }

    fn release(&mut self, unique: u64, fh: u64, now: Instant) {
        self.files.retain(|f| *f != fh);
        self.poll_waiters.retain(|w| w.0 != fh);
        if self.files.is_empty() {
            self.exclusive = false;
            self.counters.rx_discarded += self.rx.len() as u64;
            self.rx.clear();
            self.start_close_barrier(now);
            // ... and drops them on last close when HUPCL is set (the default).
            if !self.read_only && self.termios.c_cflag & libc::HUPCL != 0 {
                self.set_outputs(false, false);
            }
        }
        self.reply(abi::reply_ok(unique, &[]));
    }

    /// On last close: flush the remote's input and discard what arrives until it confirms,
    /// at most for the port's `closing_wait` (`TIOCSSERIAL`; 30 s unless a program set it).
    /// An observer cannot drive the port: it only discards while closed.
    fn start_close_barrier(&mut self, now: Instant) {
        if self.read_only || !self.link {
            return;
        }
        let until = match control::closing_wait(&self.serial) {
            control::ClosingWait::Forever => None,
            control::ClosingWait::For(d) => Some(now + d),
        };
        self.send(Message::Flush(FlushQueue::Input));
        let seq = self.take_seq();
        self.send(Message::Drain { seq });
        self.barrier = Some(CloseBarrier { seq, until });
    }

    fn take_seq(&mut self) -> u32 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        seq
    }

    fn readable(&self) -> bool {
        !self.rx.is_empty()
    }

    /// Pollers waiting for a notification.
    #[cfg(test)]
    pub(crate) fn poll_waiter_count(&self) -> usize {
        self.poll_waiters.len()
    }

    fn poll(&mut self, unique: u64, fh: u64, kh: u64, flags: u32, events: u32) {
        let mut revents = 0u32;
        if self.readable() {
            revents |= (libc::POLLIN | libc::POLLRDNORM) as u32;
        }
        if self.writable() {
            revents |= (libc::POLLOUT | libc::POLLWRNORM) as u32;
        }
        if events != 0 {
            revents &= events | (libc::POLLERR | libc::POLLHUP) as u32;
        }
        if flags & POLL_SCHEDULE_NOTIFY != 0 && !self.poll_waiters.iter().any(|w| w.1 == kh) {
            if self.poll_waiters.len() >= MAX_POLL_WAITERS {
                // Woken early rather than forgotten: a spurious wakeup only makes it poll again.
                let (_, oldest) = self.poll_waiters.remove(0);
                self.reply(abi::poll_wakeup(oldest));
            }
            self.poll_waiters.push((fh, kh));
        }
        self.reply(abi::poll_reply(unique, revents));
    }

    fn interrupt(&mut self, unique: u64) {
        if self.interrupt_write(unique) {
            return;
        }
        let before = self.reads.len() + self.writes.len() + self.drains.len() + self.waits.len();
        self.reads.retain(|r| r.unique != unique);
        self.writes.retain(|w| w.unique != unique);
        self.drains.retain(|d| d.unique != unique);
        self.waits.retain(|w| w.unique != unique);
        let after = self.reads.len() + self.writes.len() + self.drains.len() + self.waits.len();
        if after < before {
            self.reply(abi::reply_err(unique, libc::EINTR));
        }
    }

    /// Drives DTR and RTS (a program's choice: it wins over the remote's state on reconnection);
    /// the remote hears of a change as one `SetModem`.
    fn set_outputs(&mut self, dtr: bool, rts: bool) {
        self.touched_modem = true;
        if (dtr, rts) == (self.dtr, self.rts) {
            return;
        }
        (self.dtr, self.rts) = (dtr, rts);
        if self.link && !self.read_only {
            self.send(Message::SetModem(ModemLines { dtr, rts }));
        }
    }

    /// New input line states: count transitions and wake `TIOCMIWAIT`s.
    fn set_inputs(&mut self, s: ModemStatus) {
        let old = self.inputs;
        let ic = &mut self.icount;
        if s.cts != old.cts {
            ic.cts = ic.cts.wrapping_add(1);
        }
        if s.dsr != old.dsr {
            ic.dsr = ic.dsr.wrapping_add(1);
        }
        if s.dcd != old.dcd {
            ic.dcd = ic.dcd.wrapping_add(1);
        }
        // Like a UART's TERI: the ring counts on its trailing edge.
        if old.ri && !s.ri {
            ic.rng = ic.rng.wrapping_add(1);
        }
        self.inputs = s;
        self.wake_modem_waiters();
    }

    fn drained(&mut self, seq: u32) {
        if self.barrier.is_some_and(|b| b.seq == seq) {
            self.barrier = None;
            return;
        }
        let Some(i) = self.drains.iter().position(|d| d.seq == seq) else {
            return;
        };
        let d = self.drains.remove(i);
        if let AfterDrain::Settings {
            termios,
            flush_input,
        } = d.then
        {
            self.apply_termios(termios, flush_input);
        }
        self.reply(abi::ioctl_reply(d.unique, 0, &[]));
    }

    /// Sends `Drain` and parks `unique` until the remote answers.
    fn drain_then(&mut self, unique: u64, then: AfterDrain) {
        let seq = self.take_seq();
        self.send(Message::Drain { seq });
        self.drains.push(PendingDrain { unique, seq, then });
    }

    fn flush(&mut self, input: bool, output: bool) {
        if input {
            self.rx.clear();
        }
        if output {
            self.discard_queued_output();
        }
        if self.read_only || !self.link {
            return;
        }
        let q = match (input, output) {
            (true, true) => FlushQueue::Both,
            (true, false) => FlushQueue::Input,
            _ => FlushQueue::Output,
        };
        self.send(Message::Flush(q));
    }

    /// After every input: answer what became answerable, wake pollers whose wait is over.
    fn settle(&mut self, now: Instant) {
        self.service_reads(now);
        let ready = (self.readable(), self.writable());
        let rose = (ready.0 && !self.ready.0) || (ready.1 && !self.ready.1);
        self.ready = ready;
        if rose {
            for (_, kh) in std::mem::take(&mut self.poll_waiters) {
                self.reply(abi::poll_wakeup(kh));
            }
        }
    }
}

#[cfg(test)]
mod tests;
