//! The simulated port's wire: a transmitter that sends at the line's baud rate and framing
//! (start bit, data bits, parity, stop bits per character, as a UART does), and the echo
//! device at the far end, whose answers wait in a small receive FIFO until the port reads them.
//!
//! Writing returns once the bytes have left the transmitter, so a program writing faster than
//! the line waits, as on hardware; `tcdrain` then has nothing left to wait for.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use xoq_wire::{LineSettings, Parity, StopBits};

use super::sim_flow::SoftFlow;

/// Bytes of answers held before the transmitter waits (a UART FIFO plus a driver buffer).
pub const RX_FIFO: usize = 4096;
/// Longest stretch of the line sent at once: the echo trickles back at this granularity.
const SLICE: Duration = Duration::from_millis(4);
/// How far the line may run ahead of the clock: timers tick in milliseconds, so a wait
/// shorter than this is not slept (the debt is kept, and paid by the next longer wait). A
/// short write at a high rate thus costs no timer tick; the rate over any longer stretch is
/// exact.
const AHEAD: Duration = Duration::from_millis(1);

/// Bits on the wire for one character: start, data, parity, stop.
pub fn bits_per_char(l: &LineSettings) -> u32 {
    let parity = u32::from(l.parity != Parity::None);
    let stop = match l.stop_bits {
        StopBits::One => 1,
        StopBits::Two => 2,
    };
    1 + u32::from(l.data_bits) + parity + stop
}

/// How long `n` characters take on this line.
pub fn line_time(l: &LineSettings, n: usize) -> Duration {
    let bits = u64::from(bits_per_char(l)) * n as u64;
    Duration::from_nanos(bits.saturating_mul(1_000_000_000) / u64::from(l.baud.max(1)))
}

#[derive(Default)]
struct Fifo {
    bytes: VecDeque<u8>,
    closed: bool,
}

/// The receive side, shared by the reader and the transmitter (which fills it with echoes
/// and flushes it on `tcflush(TCIFLUSH)`).
#[derive(Default)]
pub struct Receiver {
    fifo: Mutex<Fifo>,
    readable: Notify,
    room: Notify,
}

impl Receiver {
    fn lock(&self) -> std::sync::MutexGuard<'_, Fifo> {
        xoq_link::sync::lock(&self.fifo)
    }

    /// Waits for received bytes and takes up to `buf.len()` of them.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let ready = self.readable.notified();
            {
                let mut f = self.lock();
                if !f.bytes.is_empty() {
                    let n = f.bytes.len().min(buf.len());
                    for (d, s) in buf.iter_mut().zip(f.bytes.drain(..n)) {
                        *d = s;
                    }
                    self.room.notify_waiters();
                    return Ok(n);
                }
                if f.closed {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "simulated port closed",
                    ));
                }
            }
            ready.await;
        }
    }

    /// The far end answers `data`; waits while the FIFO is full.
    async fn push(&self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = self.room.notified();
            {
                let mut f = self.lock();
                let n = RX_FIFO.saturating_sub(f.bytes.len()).min(data.len());
                if n > 0 {
                    f.bytes.extend(&data[..n]);
                    data = &data[n..];
                    self.readable.notify_waiters();
                    continue;
                }
            }
            room.await;
        }
    }

    /// Takes what fits of `data` at once (a character sent ahead of the queue); the rest is
    /// lost, as on a UART whose FIFO is full.
    pub fn try_push(&self, data: &[u8]) {
        let mut f = self.lock();
        let n = RX_FIFO.saturating_sub(f.bytes.len()).min(data.len());
        f.bytes.extend(&data[..n]);
        self.readable.notify_waiters();
    }

    /// Discards what was received and not yet read; returns how much.
    pub fn flush(&self) -> usize {
        let mut f = self.lock();
        let n = f.bytes.len();
        f.bytes.clear();
        self.room.notify_waiters();
        n
    }

    /// The port is closed: a waiting reader gets an error.
    pub fn close(&self) {
        self.lock().closed = true;
        self.readable.notify_waiters();
    }
}

/// The transmitter: paces what is written at the line's rate and hands each slice to the echo.
pub struct Transmitter {
    pub rx: Arc<Receiver>,
    /// XON/XOFF: output stops and restarts with what the port receives, and `tcflow`.
    pub flow: Arc<SoftFlow>,
    /// When the line is next free (the end of what is being sent).
    free_at: Instant,
}

impl Transmitter {
    pub fn new(rx: Arc<Receiver>, flow: Arc<SoftFlow>) -> Transmitter {
        Transmitter {
            rx,
            flow,
            free_at: Instant::now(),
        }
    }

    /// Sends `data` at `line`'s rate; returns when its last bit has left.
    ///
    /// The line runs on from where it was, as a UART fed from its buffer does: waking late
    /// (timers tick in milliseconds) does not slow the rate down. Only a line idle for longer
    /// than a slice starts again from now.
    pub async fn send(&mut self, line: &LineSettings, data: &[u8]) {
        let per_slice = (SLICE.as_nanos() / line_time(line, 1).as_nanos().max(1)).max(1) as usize;
        self.resume_line();
        let mut rest = data;
        while !rest.is_empty() {
            if self.flow.wait_running().await {
                // Stopped by XOFF or tcflow: the line was idle, it does not catch up.
                self.resume_line();
            }
            let (piece, tail) = rest.split_at(self.flow.piece_len(rest, per_slice));
            rest = tail;
            self.free_at += line_time(line, piece.len());
            self.wait_line().await;
            // The echo device answers at once; our UART receives the answer.
            let delivered = self.flow.receive(piece);
            self.rx.push(&delivered).await;
        }
    }

    async fn wait_line(&self) {
        if self.free_at > Instant::now() + AHEAD {
            tokio::time::sleep_until(self.free_at - AHEAD).await;
        }
    }

    /// Holds the line (a break) for `d` after what is being sent.
    pub async fn hold(&mut self, d: Duration) {
        self.resume_line();
        self.free_at += d;
        self.wait_line().await;
    }

    fn resume_line(&mut self) {
        let now = Instant::now();
        if now > self.free_at + SLICE {
            self.free_at = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_take_their_framing_on_the_wire() {
        let l = LineSettings::default();
        assert_eq!(bits_per_char(&l), 10, "8N1");
        let l7e2 = LineSettings {
            data_bits: 7,
            parity: Parity::Even,
            stop_bits: StopBits::Two,
            ..l
        };
        assert_eq!(bits_per_char(&l7e2), 11);
        let slow = LineSettings { baud: 300, ..l };
        assert_eq!(line_time(&slow, 1024), Duration::from_nanos(34_133_333_333));
    }

    #[tokio::test(start_paused = true)]
    async fn writes_take_the_line_time_and_the_echo_follows_them() {
        let rx = Arc::new(Receiver::default());
        let mut tx = Transmitter::new(rx.clone(), Arc::default());
        let line = LineSettings {
            baud: 9600,
            ..LineSettings::default()
        };
        let t0 = Instant::now();
        let reader = {
            let rx = rx.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 64];
                while got.len() < 960 {
                    let n = rx.read(&mut buf).await.expect("open");
                    got.extend_from_slice(&buf[..n]);
                }
                (got, Instant::now())
            })
        };
        tx.send(&line, &[0x55; 960]).await;
        assert_eq!(
            t0.elapsed(),
            Duration::from_secs(1) - AHEAD,
            "960 bytes at 9600 8N1, the last millisecond still on the line"
        );
        let (got, done) = reader.await.expect("reader");
        assert_eq!(got, vec![0x55; 960]);
        assert_eq!(done - t0, Duration::from_secs(1) - AHEAD);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_fifo_holds_the_transmitter_and_a_flush_empties_it() {
        let rx = Arc::new(Receiver::default());
        let mut tx = Transmitter::new(rx.clone(), Arc::default());
        let line = LineSettings::default();
        let sent =
            tokio::time::timeout(Duration::from_secs(1), tx.send(&line, &[1; RX_FIFO + 44])).await;
        assert!(
            sent.is_err(),
            "nobody reads: the transmitter waits at {RX_FIFO} bytes"
        );
        assert_eq!(rx.flush(), RX_FIFO);
        rx.close();
        let mut buf = [0u8; 8];
        assert!(rx.read(&mut buf).await.is_err(), "closed and empty");
    }

    #[tokio::test(start_paused = true)]
    async fn an_echoed_xoff_stops_the_output_until_it_is_restarted() {
        use super::super::sim_flow::XOFF;
        let rx = Arc::new(Receiver::default());
        let flow = Arc::new(SoftFlow::default());
        flow.set_mode(xoq_wire::FlowControl::Software);
        let mut tx = Transmitter::new(rx.clone(), flow.clone());
        let line = LineSettings {
            baud: 9600,
            ..LineSettings::default()
        };
        let sending = tokio::spawn(async move {
            tx.send(&line, &[b'a', XOFF, b'b', b'c']).await;
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            !sending.is_finished(),
            "stopped after its own XOFF came back"
        );
        let mut buf = [0u8; 8];
        let n = rx.read(&mut buf).await.expect("open");
        assert_eq!(
            &buf[..n],
            b"a",
            "the XOFF is swallowed, nothing after it sent"
        );
        flow.restart();
        sending.await.expect("sender");
        let n = rx.read(&mut buf).await.expect("open");
        assert_eq!(&buf[..n], b"bc");
    }
}
