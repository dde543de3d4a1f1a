//! Stream copies on a connection (`xoq_wire::copy`): the sending side, which follows a small
//! `Data` or `CanFrames` message on a device stream with a datagram copy of it, and the
//! receiving side's end of the routing, which a `MessageReader` consults.
//!
//! The copy leaves [`COPY_DELAY`] after its message so that QUIC puts the two in different
//! packets (a packet built while both wait would carry both, and one loss would take both).
//! Copies cost bandwidth, so each stream may spend at most [`COPY_RATE`] bytes per second on
//! them: enough for interactive serial traffic and a 1 kHz CAN command stream, while a bulk
//! transfer, whose messages are too large to copy anyway, gets none.
//!
//! Copies also cost CPU on both ends: a second packet per message, its acknowledgement and a
//! task hop at each end, about a tenth of what a CAN frame costs. They repair losses, so by
//! default ([`CopyMode::Auto`]) a sender copies only while its path loses packets: from its
//! first lost packet until [`LOSS_MEMORY`] has passed without another. On a clean path (a LAN,
//! loopback) nothing is copied, and the first loss of a spell is repaired by QUIC alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use iroh::endpoint::Connection;
use tokio::sync::mpsc;
use tokio::time::Instant;
use xoq_wire::copy::{is_ordered, may_copy, MAX_COPIED};
use xoq_wire::{CopyGate, Delivery, DeviceKind, LatestGate, Message, StreamCopy, COPIES_VERSION};

use crate::datagrams::DatagramRouter;
use crate::endpoint::DATAGRAM_SEND_BUFFER;
use crate::framed::{MessageReader, MessageWriter};

/// How long after its message a copy is sent.
pub const COPY_DELAY: Duration = Duration::from_millis(1);
/// Bytes of copies each stream may send per second, on average.
pub const COPY_RATE: f64 = 64.0 * 1024.0;
/// Bytes of copies each stream may send at once after a quiet spell.
pub const COPY_BURST: f64 = 16.0 * 1024.0;
/// Copies sent since the peer last acknowledged anything, after which no more are sent once
/// [`answer_wait`] has passed without an acknowledgement either: the link is down or badly
/// congested. Copies sent into an outage fill the congestion window, and QUIC, unable to send,
/// backs off its probes; the stream alone would not have filled it, and after the outage would
/// resume within a round trip instead of a backed-off probe.
pub const MAX_UNANSWERED: u32 = 8;
/// The least time without an acknowledgement that stops copies (with [`MAX_UNANSWERED`]).
pub const MIN_ANSWER_WAIT: Duration = Duration::from_millis(20);
/// How long after the path's last lost packet copies go on ([`CopyMode::Auto`]). Losses on a
/// radio link come in spells (interference, a robot driving past a wall), seconds apart within
/// a spell; a path that lost nothing for this long is treated as clean again.
pub const LOSS_MEMORY: Duration = Duration::from_secs(30);

/// When a stream's small messages are copied (`XOQ_COPIES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMode {
    /// While the path loses packets (the default; see [`LOSS_MEMORY`]).
    Auto,
    /// Always, also on a clean path (`XOQ_COPIES=always`, for experiments and benchmarks).
    Always,
    /// Never (`XOQ_COPIES=off`, for experiments; copies that arrive are still taken).
    Off,
}

impl CopyMode {
    /// The mode `XOQ_COPIES` asks for.
    pub fn from_env() -> Result<Self, String> {
        Self::parse(std::env::var("XOQ_COPIES").ok().as_deref())
    }

    /// `auto` (or unset), `always` or `off`.
    fn parse(value: Option<&str>) -> Result<Self, String> {
        match value {
            None | Some("auto") => Ok(CopyMode::Auto),
            Some("always") => Ok(CopyMode::Always),
            Some("off") => Ok(CopyMode::Off),
            Some(other) => Err(format!(
                "XOQ_COPIES={other} is not a copy mode: use auto, always or off"
            )),
        }
    }
}

/// How long copies go on without an acknowledgement: half the round trip, at least
/// [`MIN_ANSWER_WAIT`]. A count alone is not enough: on a path whose delay wanders (LTE's
/// ±25 ms), acknowledgements pause for longer than eight copies of a 1 kHz stream take to
/// send, and a count of 8 stopped a quarter of a CAN bus's copies.
fn answer_wait(conn: &Connection) -> Duration {
    let rtt = conn
        .paths()
        .iter()
        .map(|p| p.rtt())
        .min()
        .unwrap_or_default();
    (rtt / 2).max(MIN_ANSWER_WAIT)
}
/// No copy is sent while more than this many bytes of datagrams wait for the path: the link
/// is congested or down, and copies queued then would leave, stale, ahead of the stream's own
/// retransmissions when it returns (QUIC sends waiting datagrams before stream data).
pub const COPY_QUEUE_LIMIT: usize = 2 * 1024;

/// A connection's copy counters, live.
#[derive(Debug, Default)]
pub struct CopyStats {
    /// Copies sent.
    pub sent: AtomicU64,
    /// Copies taken because they arrived before their stream message.
    pub used: AtomicU64,
    /// Copies that arrived after their message, or before one ahead of it: dropped.
    pub unused: AtomicU64,
    /// Copies for a stream nobody here reads (closed, or never opened): dropped.
    pub unrouted: AtomicU64,
    /// Small messages not copied: their stream had spent its copy budget, or the path was
    /// congested or down.
    pub skipped: AtomicU64,
    /// Small messages not copied because the path had lost nothing lately ([`CopyMode::Auto`]).
    pub unneeded: AtomicU64,
    /// CAN frames received on a latest-wins stream and dropped because a newer frame of the
    /// same id had been delivered (`xoq_wire::latest`).
    pub superseded: AtomicU64,
}

/// The copy counters at one moment (see [`CopyStats`] for what each counts), for status
/// output, logs and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CopyCounts {
    pub sent: u64,
    pub used: u64,
    pub unused: u64,
    pub unrouted: u64,
    pub skipped: u64,
    pub unneeded: u64,
    pub superseded: u64,
}

impl CopyStats {
    pub fn snapshot(&self) -> CopyCounts {
        CopyCounts {
            sent: self.sent.load(Ordering::Relaxed),
            used: self.used.load(Ordering::Relaxed),
            unused: self.unused.load(Ordering::Relaxed),
            unrouted: self.unrouted.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            unneeded: self.unneeded.load(Ordering::Relaxed),
            superseded: self.superseded.load(Ordering::Relaxed),
        }
    }
}

/// Starts copies on a device stream just opened (after `Open` was sent or read, and `Opened`
/// read or sent), when the protocol version and the device's kind call for them: serial ports
/// and CAN buses, whose small messages wait on a round trip (cameras and microphones have
/// their own loss handling). Both ends count from the next message, and both receive as the
/// open's `delivery` says.
pub fn attach(
    version: u16,
    kind: DeviceKind,
    delivery: Delivery,
    conn: &Connection,
    router: &Arc<DatagramRouter>,
    writer: &mut MessageWriter,
    reader: &mut MessageReader,
) {
    if version < COPIES_VERSION || !matches!(kind, DeviceKind::Serial | DeviceKind::Can) {
        return;
    }
    let stats = router.copy_stats.clone();
    let mode = CopyMode::from_env().unwrap_or_else(|e| {
        tracing::warn!("{e}; copying while the path loses packets (auto)");
        CopyMode::Auto
    });
    if mode != CopyMode::Off {
        writer.send_copies(CopySender::new(
            conn.clone(),
            writer.stream_id(),
            stats,
            mode,
        ));
    }
    reader.take_copies(CopyReceiver::new(
        router.clone(),
        reader.stream_id(),
        delivery,
    ));
}

/// Sends the copies of one stream's messages.
pub struct CopySender {
    conn: Connection,
    stream: u64,
    /// Ordered messages sent so far.
    seq: u64,
    tokens: f64,
    refilled: Instant,
    /// Acknowledgements received on the connection, when last looked at.
    acks_seen: u64,
    /// When the count of acknowledgements last moved.
    answered_at: Instant,
    /// Copies sent since then.
    unanswered: u32,
    /// When to copy (never [`CopyMode::Off`]: no sender is made then).
    mode: CopyMode,
    loss: LossMemory,
    stats: Arc<CopyStats>,
}

impl CopySender {
    /// Copies for the stream `stream` of `conn`, counting from the next message sent, as
    /// `mode` says.
    pub fn new(conn: Connection, stream: u64, stats: Arc<CopyStats>, mode: CopyMode) -> Self {
        CopySender {
            conn,
            stream,
            seq: 0,
            tokens: COPY_BURST,
            refilled: Instant::now(),
            acks_seen: 0,
            answered_at: Instant::now(),
            unanswered: 0,
            mode,
            loss: LossMemory::default(),
            stats,
        }
    }

    /// Called for each message after it was written to the stream, with its encoded length.
    pub fn sent(&mut self, m: &Message, encoded_len: usize) {
        if !is_ordered(m) {
            return;
        }
        let seq = self.seq;
        self.seq += 1;
        if !may_copy(m) || encoded_len > MAX_COPIED {
            return;
        }
        let stats = self.conn.stats();
        if self.mode == CopyMode::Auto && !self.loss.lossy(stats.lost_packets, Instant::now()) {
            self.stats.unneeded.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let acks = stats.frame_rx.acks + stats.frame_rx.path_acks;
        if !self.link_answers(acks) || !self.spend(encoded_len) {
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.unanswered += 1;
        let copy = Message::StreamCopy(StreamCopy {
            stream: self.stream,
            seq,
            message: Box::new(m.clone()),
        });
        let datagram = Bytes::from(copy.to_bytes());
        if self
            .conn
            .max_datagram_size()
            .is_none_or(|max| datagram.len() > max)
        {
            return;
        }
        let (conn, stats) = (self.conn.clone(), self.stats.clone());
        tokio::spawn(async move {
            tokio::time::sleep(COPY_DELAY).await;
            let waiting = DATAGRAM_SEND_BUFFER.saturating_sub(conn.datagram_send_buffer_space());
            if waiting > COPY_QUEUE_LIMIT {
                stats.skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // A closed link ends the stream anyway.
            if conn.send_datagram(datagram).is_ok() {
                stats.sent.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    /// Whether the link answers: the peer acknowledged something since the last
    /// [`MAX_UNANSWERED`] copies, or within [`answer_wait`].
    fn link_answers(&mut self, acks: u64) -> bool {
        if acks != self.acks_seen {
            self.acks_seen = acks;
            self.answered_at = Instant::now();
            self.unanswered = 0;
        }
        self.unanswered < MAX_UNANSWERED || self.answered_at.elapsed() < answer_wait(&self.conn)
    }

    /// Takes `len` bytes from the token bucket, if it holds them.
    fn spend(&mut self, len: usize) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * COPY_RATE).min(COPY_BURST);
        let len = len as f64;
        if self.tokens < len {
            return false;
        }
        self.tokens -= len;
        true
    }
}

/// Whether a path lost a packet lately, from its connection's count of lost packets.
#[derive(Debug, Default)]
struct LossMemory {
    /// Packets the connection had lost, when last looked at.
    lost_seen: u64,
    /// Until when the path counts as lossy (its last loss plus [`LOSS_MEMORY`]).
    lossy_until: Option<Instant>,
}

impl LossMemory {
    /// Whether the path lost a packet within [`LOSS_MEMORY`] before `now`, given the count of
    /// packets lost so far (a count that moved since the last look is a loss now).
    fn lossy(&mut self, lost: u64, now: Instant) -> bool {
        if lost != self.lost_seen {
            self.lost_seen = lost;
            self.lossy_until = Some(now + LOSS_MEMORY);
        }
        self.lossy_until.is_some_and(|until| now < until)
    }
}

/// Copies queued per stream before newer ones are dropped.
pub(crate) const DEPTH: usize = 64;

/// How a receiver chooses between a stream's messages and their copies.
enum Gate {
    Ordered(CopyGate),
    Latest(LatestGate),
}

/// The receiving end of one stream's copies, owned by its `MessageReader`; unregisters the
/// stream from the connection's router when dropped.
pub struct CopyReceiver {
    pub(crate) rx: mpsc::Receiver<StreamCopy>,
    gate: Gate,
    router: Arc<DatagramRouter>,
    stream: u64,
}

impl CopyReceiver {
    /// Copies of stream `stream`'s messages from now on, counting from the next message read,
    /// delivered as `delivery` says.
    pub fn new(router: Arc<DatagramRouter>, stream: u64, delivery: Delivery) -> Self {
        let rx = router.listen_copies(stream);
        let gate = match delivery {
            Delivery::Ordered => Gate::Ordered(CopyGate::default()),
            Delivery::Latest => Gate::Latest(LatestGate::default()),
        };
        CopyReceiver {
            rx,
            gate,
            router,
            stream,
        }
    }

    /// What of a message read from the stream is delivered (nothing if its copy was).
    pub(crate) fn on_stream(&mut self, m: Message) -> Option<Message> {
        match &mut self.gate {
            Gate::Ordered(g) => g.on_stream(&m).then_some(m),
            Gate::Latest(g) => {
                let before = g.stats.superseded;
                let out = g.on_stream(m);
                self.count_superseded(before);
                out
            }
        }
    }

    /// What of a copied message is delivered now.
    pub(crate) fn on_copy(&mut self, c: StreamCopy) -> Option<Message> {
        let (taken, out) = match &mut self.gate {
            Gate::Ordered(g) => {
                let taken = g.on_copy(c.seq);
                (taken, taken.then_some(*c.message))
            }
            Gate::Latest(g) => {
                let (used, before) = (g.stats.used, g.stats.superseded);
                let out = g.on_copy(c);
                let taken = g.stats.used != used;
                self.count_superseded(before);
                (taken, out)
            }
        };
        let stats = &self.router.copy_stats;
        let counter = if taken { &stats.used } else { &stats.unused };
        counter.fetch_add(1, Ordering::Relaxed);
        out
    }

    /// CAN frames a latest-wins gate dropped on this stream so far (0 for an ordered one).
    pub(crate) fn superseded(&self) -> u64 {
        match &self.gate {
            Gate::Latest(g) => g.stats.superseded,
            Gate::Ordered(_) => 0,
        }
    }

    /// Adds to the connection's count the frames a latest-wins gate superseded since it
    /// counted `before`.
    fn count_superseded(&self, before: u64) {
        if let Gate::Latest(g) = &self.gate {
            let n = g.stats.superseded - before;
            if n > 0 {
                self.router
                    .copy_stats
                    .superseded
                    .fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for CopyReceiver {
    fn drop(&mut self) {
        self.router.forget_copies(self.stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_lossy_from_a_loss_until_the_memory_passes_without_another() {
        let mut m = LossMemory::default();
        let t0 = Instant::now();
        assert!(!m.lossy(0, t0), "a path that never lost is clean");
        assert!(!m.lossy(0, t0 + LOSS_MEMORY * 3));
        let t1 = t0 + LOSS_MEMORY * 3;
        assert!(m.lossy(2, t1), "a loss makes it lossy at once");
        assert!(m.lossy(2, t1 + LOSS_MEMORY / 2));
        // Another loss before the memory passed extends it.
        let t2 = t1 + LOSS_MEMORY / 2;
        assert!(m.lossy(3, t2));
        assert!(m.lossy(3, t1 + LOSS_MEMORY + Duration::from_secs(1)));
        assert!(
            !m.lossy(3, t2 + LOSS_MEMORY),
            "clean again a memory after the last loss"
        );
    }

    #[test]
    fn the_copy_mode_is_auto_always_or_off() {
        assert_eq!(CopyMode::parse(None), Ok(CopyMode::Auto));
        assert_eq!(CopyMode::parse(Some("auto")), Ok(CopyMode::Auto));
        assert_eq!(CopyMode::parse(Some("always")), Ok(CopyMode::Always));
        assert_eq!(CopyMode::parse(Some("off")), Ok(CopyMode::Off));
        let e = CopyMode::parse(Some("sometimes")).unwrap_err();
        assert!(e.contains("auto, always or off"), "{e}");
    }
}
