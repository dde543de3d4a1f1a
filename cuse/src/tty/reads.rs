//! Reads: non-blocking, and blocking ones shaped by `VMIN` / `VTIME` as termios(3) defines
//! them. Readers are served in arrival order; only the oldest takes data.

use std::time::{Duration, Instant};

use super::Tty;
use crate::abi;

/// A blocking read waiting for data or its timer.
pub(super) struct PendingRead {
    pub unique: u64,
    size: usize,
    vmin: usize,
    /// `VTIME`, in tenths of a second.
    vtime: Duration,
    start: Instant,
}

impl PendingRead {
    /// How many bytes to answer with now (possibly 0), or `None` to keep waiting.
    fn ready(&self, available: usize, last_rx: Option<Instant>, now: Instant) -> Option<usize> {
        let avail = available.min(self.size);
        let want = self.vmin.min(self.size);
        match (self.vmin, self.vtime.is_zero()) {
            // Polling read: whatever is there, at once.
            (0, true) => Some(avail),
            // Pure timeout: any byte, or nothing once VTIME has passed since the call.
            (0, false) => (avail > 0 || now >= self.start + self.vtime).then_some(avail),
            // Counted read: wait for VMIN bytes.
            (_, true) => (avail >= want).then_some(avail),
            // Interbyte timeout: VMIN bytes, or what came once the line was quiet for VTIME.
            (_, false) => {
                let quiet_since = last_rx.map_or(self.start, |t| t.max(self.start));
                (avail >= want || (avail > 0 && now >= quiet_since + self.vtime)).then_some(avail)
            }
        }
    }

    fn deadline(&self, available: usize, last_rx: Option<Instant>) -> Option<Instant> {
        if self.vtime.is_zero() {
            return None;
        }
        if self.vmin == 0 {
            return Some(self.start + self.vtime);
        }
        (available > 0).then(|| last_rx.map_or(self.start, |t| t.max(self.start)) + self.vtime)
    }
}

impl Tty {
    pub(super) fn read(&mut self, unique: u64, size: u32, flags: u32, now: Instant) {
        let size = size as usize;
        if size == 0 {
            self.reply(abi::reply_ok(unique, &[]));
            return;
        }
        if flags & libc::O_NONBLOCK as u32 != 0 {
            if self.rx.is_empty() || !self.reads.is_empty() {
                self.reply(abi::reply_err(unique, libc::EAGAIN));
            } else {
                self.answer_read(unique, size);
            }
            return;
        }
        self.reads.push_back(PendingRead {
            unique,
            size,
            vmin: usize::from(self.termios.c_cc[libc::VMIN]),
            vtime: Duration::from_millis(100 * u64::from(self.termios.c_cc[libc::VTIME])),
            start: now,
        });
    }

    /// Answers waiting reads, oldest first, while they can be answered.
    pub(super) fn service_reads(&mut self, now: Instant) {
        while let Some(r) = self.reads.front() {
            let Some(n) = r.ready(self.rx.len(), self.last_rx, now) else {
                return;
            };
            let unique = r.unique;
            self.reads.pop_front();
            self.answer_read(unique, n);
        }
    }

    pub(super) fn read_deadline(&self) -> Option<Instant> {
        self.reads
            .front()
            .and_then(|r| r.deadline(self.rx.len(), self.last_rx))
    }

    fn answer_read(&mut self, unique: u64, n: usize) {
        let n = n.min(self.rx.len());
        let data: Vec<u8> = self.rx.drain(..n).collect();
        self.reply(abi::reply_ok(unique, &data));
    }
}
