//! The datagrams of a connection, either way: audio packets (one per datagram, never
//! retransmitted: a lost one is concealed by the receiver) and stream copies (see `copies`).
//! This accepts the datagrams of a whole connection and hands each audio packet to the device
//! it names and each copy to the reader of the stream it names, and counts probes (camera
//! frames' tail probes, which exist to be acknowledged); it also sends audio packets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use iroh::endpoint::{Connection, SendDatagramError};
use tokio::sync::mpsc;
use xoq_wire::{AudioPacket, Message, StreamCopy};

use crate::copies::{CopyStats, DEPTH as COPY_DEPTH};
use crate::sync::lock;

/// Packets queued per device before newer ones are dropped (a quarter second of 10 ms packets).
const DEPTH: usize = 25;

/// Where each device's packets go.
#[derive(Default)]
pub struct DatagramRouter {
    routes: Mutex<HashMap<String, mpsc::Sender<AudioPacket>>>,
    /// Readers of device streams that take copies, by QUIC stream id.
    copy_routes: Mutex<HashMap<u64, mpsc::Sender<StreamCopy>>>,
    /// Packets dropped: for a device nobody listens to here, or no room.
    pub dropped: AtomicU64,
    /// What became of the copies sent and received on this connection.
    pub copy_stats: Arc<CopyStats>,
    /// `Probe` datagrams received (they carry nothing: the acknowledgement is their use).
    pub probes: AtomicU64,
}

/// Why datagrams stopped.
#[derive(Debug)]
pub enum DatagramEnd {
    /// The connection ended.
    Closed,
    /// The peer sent a datagram that does not decode, or is neither an audio packet nor a
    /// stream copy: a protocol violation.
    Malformed(String),
}

impl DatagramRouter {
    /// Packets for `device` from now on (replacing any earlier listener).
    pub fn listen(&self, device: &str) -> mpsc::Receiver<AudioPacket> {
        let (tx, rx) = mpsc::channel(DEPTH);
        lock(&self.routes).insert(device.to_string(), tx);
        rx
    }

    /// Stops routing packets of `device`.
    pub fn forget(&self, device: &str) {
        lock(&self.routes).remove(device);
    }

    /// Copies of stream `stream`'s messages from now on (see `CopyReceiver`, which calls this).
    pub(crate) fn listen_copies(&self, stream: u64) -> mpsc::Receiver<StreamCopy> {
        let (tx, rx) = mpsc::channel(COPY_DEPTH);
        lock(&self.copy_routes).insert(stream, tx);
        rx
    }

    pub(crate) fn forget_copies(&self, stream: u64) {
        lock(&self.copy_routes).remove(&stream);
    }

    fn deliver_copy(&self, c: StreamCopy) {
        let tx = lock(&self.copy_routes).get(&c.stream).cloned();
        if !matches!(tx.map(|tx| tx.try_send(c)), Some(Ok(()))) {
            self.copy_stats.unrouted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands `p` to its device's listener (dropped and counted if none listens or it is
    /// full): for packets that arrive by another way than this connection's datagrams (a
    /// relay's audio track).
    pub fn deliver(&self, p: AudioPacket) {
        let tx = lock(&self.routes).get(&p.device).cloned();
        if !matches!(tx.map(|tx| tx.try_send(p)), Some(Ok(()))) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Receives datagrams until the connection ends or the peer sends garbage.
    pub async fn run(&self, conn: &Connection) -> DatagramEnd {
        loop {
            let Ok(d) = conn.read_datagram().await else {
                return DatagramEnd::Closed;
            };
            match Message::from_frame(&d) {
                Ok(Message::AudioPacket(p)) => self.deliver(p),
                Ok(Message::StreamCopy(c)) => self.deliver_copy(c),
                Ok(Message::Probe) => {
                    self.probes.fetch_add(1, Ordering::Relaxed);
                }
                Ok(m) => {
                    return DatagramEnd::Malformed(format!(
                        "{} in a datagram (only AudioPacket, StreamCopy and Probe travel there)",
                        m.name()
                    ))
                }
                Err(e) => return DatagramEnd::Malformed(format!("datagram: {e}")),
            }
        }
    }
}

/// Why a packet could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the link is closed")]
    Closed,
    #[error("the peer does not accept datagrams")]
    Unsupported,
    #[error("a {len}-byte audio packet does not fit in a datagram on this path (at most {max} bytes); use fewer frames per packet")]
    TooLarge { len: usize, max: usize },
}

/// Encodes one packet as a datagram.
pub fn encode(p: &AudioPacket) -> Bytes {
    Bytes::from(Message::AudioPacket(p.clone()).to_bytes())
}

/// Sends an encoded packet. When the send buffer is full the oldest queued datagram is
/// dropped by QUIC, which is what late audio deserves.
pub fn send(conn: &Connection, datagram: Bytes) -> Result<(), SendError> {
    let len = datagram.len();
    conn.send_datagram(datagram).map_err(|e| match e {
        SendDatagramError::TooLarge => SendError::TooLarge {
            len,
            max: conn.max_datagram_size().unwrap_or(0),
        },
        SendDatagramError::UnsupportedByPeer | SendDatagramError::Disabled => {
            SendError::Unsupported
        }
        _ => SendError::Closed,
    })
}
