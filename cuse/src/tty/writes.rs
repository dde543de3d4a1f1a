//! Writes, and the transmit queue behind them: what programs wrote and the remote port has
//! not yet taken, bounded like a local UART's buffer and accounted exactly.
//!
//! Bytes are *outstanding* from the moment `write()` accepts them until the remote port
//! reports it took them (`TxProgress`): first in the uplink queue, then in flight (kept
//! here, so that a link that drops loses none of them: on the next stream the port says
//! how much of them it wrote, and the rest is sent again). `TIOCOUTQ` is the outstanding bytes
//! plus what the remote port's driver still holds. As `n_tty` does, a blocking write moves
//! into the queue piece by piece as room frees under [`TX_CAP`] and returns when all of it
//! is in (or with what went in, when interrupted); a non-blocking one takes what fits.

use xoq_wire::limits::MAX_DATA;
use xoq_wire::{Message, TxLedger};

use super::Tty;
use crate::abi;

/// Bytes outstanding before writers wait: a local UART's transmit buffer (one page).
pub const TX_CAP: usize = 4096;

/// A blocking write, part of which may already be in the queue.
pub(super) struct PendingWrite {
    pub unique: u64,
    data: Vec<u8>,
    /// Bytes already queued.
    done: usize,
}

/// The transmit side's accounting.
#[derive(Default)]
pub(super) struct TxQueue {
    /// Data bytes in the uplink queue, not yet handed to the link.
    pub queued: usize,
    /// Bytes handed to the link that the port has not yet reported taking.
    pub ledger: TxLedger,
    /// What the remote port's driver still held at that report.
    pub remote_queued: u32,
    /// A new stream is open and the port has not yet said how much of our data it has:
    /// nothing is sent until it does.
    pub resuming: bool,
    /// Bytes sent again after a reconnection.
    pub resent: u64,
    /// The current stream is read-only (the server narrowed this client's grant): writes
    /// are refused here, as the port would refuse them.
    pub stream_read_only: bool,
}

impl TxQueue {
    pub fn outstanding(&self) -> usize {
        self.queued + self.ledger.in_flight()
    }
}

impl Tty {
    pub(super) fn write(&mut self, unique: u64, flags: u32, data: &[u8]) {
        let room = self.room();
        if self.read_only || (self.link && self.tx.stream_read_only) {
            self.counters.refused += 1;
            self.reply(abi::reply_err(unique, libc::EPERM));
        } else if !self.link {
            self.fail_link_down(unique);
        } else if flags & libc::O_NONBLOCK as u32 == 0 {
            self.writes.push_back(PendingWrite {
                unique,
                data: data.to_vec(),
                done: 0,
            });
            self.service_writes();
        } else if self.writes.is_empty() && room > 0 {
            let n = room.min(data.len());
            self.queue_data(&data[..n]);
            self.reply(abi::write_reply(unique, n as u32));
        } else {
            self.reply(abi::reply_err(unique, libc::EAGAIN));
        }
    }

    fn room(&self) -> usize {
        TX_CAP.saturating_sub(self.tx.outstanding())
    }

    fn queue_data(&mut self, data: &[u8]) {
        for chunk in data.chunks(MAX_DATA) {
            self.send(Message::Data(chunk.to_vec()));
        }
        self.icount.tx = self.icount.tx.wrapping_add(data.len() as u32);
        self.counters.tx_bytes += data.len() as u64;
    }

    /// Moves waiting writes into the queue as far as there is room, oldest first; a write
    /// returns once all of it is in.
    pub(super) fn service_writes(&mut self) {
        loop {
            let room = self.room();
            let Some(w) = self.writes.front_mut() else {
                return;
            };
            let n = room.min(w.data.len() - w.done);
            let piece = w.data[w.done..w.done + n].to_vec();
            w.done += n;
            let finished = (w.done == w.data.len()).then_some((w.unique, w.done));
            self.queue_data(&piece);
            match finished {
                Some((unique, len)) => {
                    self.writes.pop_front();
                    self.reply(abi::write_reply(unique, len as u32));
                }
                None => return,
            }
        }
    }

    /// A signal for a waiting write: it returns what already went in, or `EINTR` if nothing
    /// did (as `n_tty` does). False if `unique` is no waiting write.
    pub(super) fn interrupt_write(&mut self, unique: u64) -> bool {
        let Some(i) = self.writes.iter().position(|w| w.unique == unique) else {
            return false;
        };
        if let Some(w) = self.writes.remove(i) {
            self.end_partly(w, libc::EINTR);
        }
        true
    }

    /// Answers a write that cannot go on: with the count already queued, or `errno`.
    fn end_partly(&mut self, w: PendingWrite, errno: i32) {
        if w.done > 0 {
            self.reply(abi::write_reply(w.unique, w.done as u32));
        } else if errno == libc::EIO {
            self.fail_link_down(w.unique);
        } else {
            self.reply(abi::reply_err(w.unique, errno));
        }
    }

    pub(super) fn writable(&self) -> bool {
        // While the link is down a write does not block: it fails at once.
        !self.link || (self.writes.is_empty() && self.tx.outstanding() < TX_CAP)
    }

    /// `TIOCOUTQ`: everything written and not yet transmitted, wherever it is.
    pub(super) fn output_queue(&self) -> usize {
        self.tx.outstanding() + self.tx.remote_queued as usize
    }

    /// The port took `written` bytes under our name and still holds `queued`.
    pub(super) fn tx_progress(&mut self, written: u64, queued: u32) {
        self.tx.remote_queued = queued;
        if !std::mem::take(&mut self.tx.resuming) {
            self.tx.ledger.progress(written);
        } else {
            // The first report of a new stream: what was in flight and not taken goes again,
            // ahead of everything queued since.
            let again = self.tx.ledger.resume(written);
            self.tx.resent += again.len() as u64;
            self.tx.queued += again.len();
            for chunk in again.chunks(MAX_DATA).rev() {
                self.uplink.push_front(Message::Data(chunk.to_vec()));
            }
        }
        self.service_writes();
    }

    /// The link went down: data stays (queued, or in flight until the next stream says what
    /// became of it); requests for the remote answered on the old stream are dropped.
    pub(super) fn keep_data_for_next_stream(&mut self) {
        self.uplink.retain(|m| matches!(m, Message::Data(_)));
        self.tx.resuming = false;
    }

    /// `tcflush(TCOFLUSH)`: what has not left for the remote is discarded.
    pub(super) fn discard_queued_output(&mut self) {
        self.uplink.retain(|m| !matches!(m, Message::Data(_)));
        self.tx.queued = 0;
    }

    /// The link went down: waiting writes return what went in (it is kept), or fail.
    pub(super) fn fail_waiting_writes(&mut self) {
        for w in std::mem::take(&mut self.writes) {
            self.end_partly(w, libc::EIO);
        }
    }
}
