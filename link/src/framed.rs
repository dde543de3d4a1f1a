//! Framed wire messages over QUIC streams: one reader and one writer per stream. A reader or
//! writer can also be the end of a channel, fed by another transport (a MoQ relay), so the
//! device bridges read and write one type whichever transport carries the device.

use iroh::endpoint::{ReadError, RecvStream, SendStream, WriteError};
use thiserror::Error;
use tokio::sync::mpsc;
use xoq_wire::{FrameDecoder, Message, Peer, WireError};

use crate::copies::{CopyReceiver, CopySender};

/// Why a framed stream stopped.
#[derive(Debug, Error)]
pub enum StreamError {
    #[error("link read failed: {0}")]
    Read(#[from] ReadError),
    #[error("link write failed: {0}")]
    Write(#[from] WriteError),
    #[error("peer sent a malformed message: {0}")]
    Wire(#[from] WireError),
    /// The other transport behind a channel stopped, and says why.
    #[error("{0}")]
    Transport(String),
}

/// What feeds a channel reader: the messages, or why the transport stopped.
pub type ChannelItem = Result<Message, StreamError>;

/// Reads whole messages from a QUIC receive stream, and from the copies of its messages that
/// arrive as datagrams once [`MessageReader::take_copies`] was called.
pub struct MessageReader {
    source: Source,
}

enum Source {
    Quic(Box<QuicSource>),
    /// Messages decoded by another transport; the channel's end is a clean end.
    Channel(mpsc::Receiver<ChannelItem>),
}

struct QuicSource {
    recv: RecvStream,
    decoder: FrameDecoder,
    buf: Box<[u8]>,
    copies: Option<CopyReceiver>,
}

impl MessageReader {
    /// A reader of messages another transport decoded and checked.
    pub fn channel(rx: mpsc::Receiver<ChannelItem>) -> Self {
        MessageReader {
            source: Source::Channel(rx),
        }
    }

    /// A reader of what `peer` sends: types only the other end sends are refused from their
    /// header (see `FrameDecoder::from_peer`).
    pub fn new(recv: RecvStream, peer: Peer) -> Self {
        Self::with_decoder(recv, FrameDecoder::from_peer(peer))
    }

    /// The same, with no body over `max` bytes (a stream that carries only small messages).
    pub fn limited(recv: RecvStream, peer: Peer, max: usize) -> Self {
        Self::with_decoder(recv, FrameDecoder::from_peer(peer).with_limit(max))
    }

    fn with_decoder(recv: RecvStream, decoder: FrameDecoder) -> Self {
        MessageReader {
            source: Source::Quic(Box::new(QuicSource {
                recv,
                decoder,
                buf: vec![0; 64 * 1024].into(),
                copies: None,
            })),
        }
    }

    /// This stream's QUIC id, which names it in copies (0 for a channel).
    pub fn stream_id(&self) -> u64 {
        match &self.source {
            Source::Quic(q) => q.recv.id().into(),
            Source::Channel(_) => 0,
        }
    }

    /// From the next message on, a copy that arrives before its message is delivered in its
    /// place (each message once, in order: see `xoq_wire::copy`). A channel has no copies.
    pub fn take_copies(&mut self, copies: CopyReceiver) {
        if let Source::Quic(q) = &mut self.source {
            q.copies = Some(copies);
        }
    }

    /// The next message; `Ok(None)` when the peer finished the stream cleanly between messages.
    /// Cancel-safe: a message is consumed only when it is returned.
    pub async fn next(&mut self) -> Result<Option<Message>, StreamError> {
        let m = match &mut self.source {
            Source::Quic(q) => q.next().await,
            Source::Channel(rx) => rx.recv().await.transpose(),
        };
        crate::busy_poll::kick();
        m
    }

    /// CAN frames of this stream dropped so far because a newer frame of their id had been
    /// delivered (latest-wins delivery; always 0 otherwise).
    pub fn superseded(&self) -> u64 {
        match &self.source {
            Source::Quic(q) => q.copies.as_ref().map_or(0, |c| c.superseded()),
            Source::Channel(_) => 0,
        }
    }

    /// Tells the peer to stop sending on this stream.
    pub fn stop(&mut self, code: u32) {
        match &mut self.source {
            // The stream may already be finished; nothing to do then.
            Source::Quic(q) => {
                let _ = q.recv.stop(code.into());
            }
            Source::Channel(rx) => rx.close(),
        }
    }
}

impl QuicSource {
    async fn next(&mut self) -> Result<Option<Message>, StreamError> {
        loop {
            if let Some(m) = self.decoder.next_message()? {
                let m = match self.copies.as_mut() {
                    Some(c) => c.on_stream(m),
                    None => Some(m),
                };
                match m {
                    Some(m) => return Ok(Some(m)),
                    None => continue,
                }
            }
            let read = match &mut self.copies {
                None => self.recv.read(&mut self.buf).await?,
                Some(copies) => tokio::select! {
                    r = self.recv.read(&mut self.buf) => r?,
                    Some(c) = copies.rx.recv() => {
                        if let Some(m) = copies.on_copy(c) {
                            return Ok(Some(m));
                        }
                        continue;
                    }
                },
            };
            match read {
                Some(n) => self.decoder.push(&self.buf[..n]),
                None if self.decoder.pending() == 0 => return Ok(None),
                None => {
                    return Err(WireError::Truncated {
                        ty: 0,
                        field: "stream ended mid-message",
                    }
                    .into())
                }
            }
        }
    }
}

/// Writes whole messages to a QUIC send stream, each in one write, and once
/// [`MessageWriter::send_copies`] was called, a datagram copy of each small data message.
pub struct MessageWriter {
    sink: Sink,
}

enum Sink {
    Quic {
        send: SendStream,
        buf: Vec<u8>,
        copies: Option<Box<CopySender>>,
    },
    /// Messages for another transport to carry; `None` once finished.
    Channel(Option<mpsc::Sender<Message>>),
}

impl MessageWriter {
    pub fn new(send: SendStream) -> Self {
        MessageWriter {
            sink: Sink::Quic {
                send,
                buf: Vec::with_capacity(4096),
                copies: None,
            },
        }
    }

    /// A writer whose messages another transport carries (it encodes them itself).
    pub fn channel(tx: mpsc::Sender<Message>) -> Self {
        MessageWriter {
            sink: Sink::Channel(Some(tx)),
        }
    }

    /// This stream's QUIC id, which names it in copies (0 for a channel).
    pub fn stream_id(&self) -> u64 {
        match &self.sink {
            Sink::Quic { send, .. } => send.id().into(),
            Sink::Channel(_) => 0,
        }
    }

    /// From the next message on, small data messages are also sent as copies (not on a
    /// channel).
    pub fn send_copies(&mut self, c: CopySender) {
        if let Sink::Quic { copies, .. } = &mut self.sink {
            *copies = Some(Box::new(c));
        }
    }

    pub async fn send(&mut self, m: &Message) -> Result<(), StreamError> {
        crate::busy_poll::kick();
        match &mut self.sink {
            Sink::Quic { send, buf, copies } => {
                buf.clear();
                m.encode(buf);
                send.write_all(buf).await?;
                if let Some(c) = copies {
                    c.sent(m, buf.len());
                }
                Ok(())
            }
            Sink::Channel(Some(tx)) => tx
                .send(m.clone())
                .await
                .map_err(|_| StreamError::Transport("the relay session stopped".into())),
            Sink::Channel(None) => Err(StreamError::Transport("the stream was finished".into())),
        }
    }

    /// Writes raw bytes as they are; only tests that send malformed input need this.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        match &mut self.sink {
            Sink::Quic { send, .. } => {
                send.write_all(bytes).await?;
                Ok(())
            }
            Sink::Channel(_) => Err(StreamError::Transport(
                "raw bytes cannot be sent on a channel".into(),
            )),
        }
    }

    /// Finishes the stream: the peer reads a clean end after the last message.
    pub fn finish(&mut self) {
        match &mut self.sink {
            Sink::Quic { send, .. } => {
                let _ = send.finish();
            }
            Sink::Channel(tx) => *tx = None,
        }
    }
}
