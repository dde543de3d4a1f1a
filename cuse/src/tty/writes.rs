//! Writes, and the transmit queue behind them: what programs wrote and the remote port has
//! not yet taken, bounded like a local UART's buffer and accounted exactly.
//!
//! Bytes are *outstanding* from the moment `write()` accepts them until the remote port
//! reports it took them (`TxProgress`): first in the uplink queue, then in flight (kept
//! here, so that a link that drops loses none of them: on the next stream the port says
//! how much of them it wrote, and the rest is sent again). `TIOCOUTQ` is the outstanding bytes
//! plus what the remote port's driver still holds. A blocking write waits until it fits
//! under [`TX_CAP`] (or the queue is empty); a non-blocking one takes what fits.

use xoq_wire::limits::MAX_DATA;
use xoq_wire::{Message, TxLedger};

use super::Tty;
use crate::abi;

/// Bytes outstanding before writers wait: a local UART's transmit buffer (one page).
pub const TX_CAP: usize = 4096;

/// A write waiting for room in the transmit queue.
pub(super) struct PendingWrite {
    pub unique: u64,
    data: Vec<u8>,
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
}

impl TxQueue {
    pub fn outstanding(&self) -> usize {
        self.queued + self.ledger.in_flight()
    }
}

impl Tty {
    pub(super) fn write(&mut self, unique: u64, flags: u32, data: &[u8]) {
        let nonblocking = flags & libc::O_NONBLOCK as u32 != 0;
        let out = self.tx.outstanding();
        if self.read_only {
            self.counters.refused += 1;
            self.reply(abi::reply_err(unique, libc::EPERM));
        } else if !self.link {
            self.fail_link_down(unique);
        } else if self.writes.is_empty() && fits(out, data.len()) {
            self.accept_write(unique, data);
        } else if nonblocking && self.writes.is_empty() && out < TX_CAP {
            self.accept_write(unique, &data[..TX_CAP - out]);
        } else if nonblocking {
            self.reply(abi::reply_err(unique, libc::EAGAIN));
        } else {
            self.writes.push_back(PendingWrite {
                unique,
                data: data.to_vec(),
            });
        }
    }

    fn accept_write(&mut self, unique: u64, data: &[u8]) {
        for chunk in data.chunks(MAX_DATA) {
            self.send(Message::Data(chunk.to_vec()));
        }
        self.icount.tx = self.icount.tx.wrapping_add(data.len() as u32);
        self.counters.tx_bytes += data.len() as u64;
        self.reply(abi::write_reply(unique, data.len() as u32));
    }

    pub(super) fn service_writes(&mut self) {
        while let Some(w) = self.writes.front() {
            if !fits(self.tx.outstanding(), w.data.len()) {
                return;
            }
            if let Some(w) = self.writes.pop_front() {
                self.accept_write(w.unique, &w.data);
            }
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

    /// Waiting writers fail (the link went down): they were not accepted.
    pub(super) fn fail_waiting_writes(&mut self) {
        for w in std::mem::take(&mut self.writes) {
            self.fail_link_down(w.unique);
        }
    }
}

/// Whether a write of `len` bytes may be accepted whole with `outstanding` bytes queued.
fn fits(outstanding: usize, len: usize) -> bool {
    outstanding == 0 || outstanding + len <= TX_CAP
}
