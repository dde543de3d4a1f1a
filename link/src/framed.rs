//! Framed wire messages over QUIC streams: one reader and one writer per stream.

use iroh::endpoint::{ReadError, RecvStream, SendStream, WriteError};
use thiserror::Error;
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
}

/// Reads whole messages from a QUIC receive stream, and from the copies of its messages that
/// arrive as datagrams once [`MessageReader::take_copies`] was called.
pub struct MessageReader {
    recv: RecvStream,
    decoder: FrameDecoder,
    buf: Box<[u8]>,
    copies: Option<CopyReceiver>,
}

impl MessageReader {
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
            recv,
            decoder,
            buf: vec![0; 64 * 1024].into(),
            copies: None,
        }
    }

    /// This stream's QUIC id, which names it in copies.
    pub fn stream_id(&self) -> u64 {
        self.recv.id().into()
    }

    /// From the next message on, a copy that arrives before its message is delivered in its
    /// place (each message once, in order: see `xoq_wire::copy`).
    pub fn take_copies(&mut self, copies: CopyReceiver) {
        self.copies = Some(copies);
    }

    /// The next message; `Ok(None)` when the peer finished the stream cleanly between messages.
    /// Cancel-safe: a message is consumed only when it is returned.
    pub async fn next(&mut self) -> Result<Option<Message>, StreamError> {
        loop {
            if let Some(m) = self.decoder.next_message()? {
                if self.copies.as_mut().is_some_and(|c| !c.on_stream(&m)) {
                    continue;
                }
                return Ok(Some(m));
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

    /// Tells the peer to stop sending on this stream.
    pub fn stop(&mut self, code: u32) {
        // The stream may already be finished; nothing to do then.
        let _ = self.recv.stop(code.into());
    }
}

/// Writes whole messages to a QUIC send stream, each in one write, and once
/// [`MessageWriter::send_copies`] was called, a datagram copy of each small data message.
pub struct MessageWriter {
    send: SendStream,
    buf: Vec<u8>,
    copies: Option<CopySender>,
}

impl MessageWriter {
    pub fn new(send: SendStream) -> Self {
        MessageWriter {
            send,
            buf: Vec::with_capacity(4096),
            copies: None,
        }
    }

    /// This stream's QUIC id, which names it in copies.
    pub fn stream_id(&self) -> u64 {
        self.send.id().into()
    }

    /// From the next message on, small data messages are also sent as copies.
    pub fn send_copies(&mut self, copies: CopySender) {
        self.copies = Some(copies);
    }

    pub async fn send(&mut self, m: &Message) -> Result<(), StreamError> {
        self.buf.clear();
        m.encode(&mut self.buf);
        self.send.write_all(&self.buf).await?;
        if let Some(c) = &mut self.copies {
            c.sent(m, self.buf.len());
        }
        Ok(())
    }

    /// Writes raw bytes as they are; only tests that send malformed input need this.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        self.send.write_all(bytes).await?;
        Ok(())
    }

    /// Finishes the stream: the peer reads a clean end after the last message.
    pub fn finish(&mut self) {
        let _ = self.send.finish();
    }
}
