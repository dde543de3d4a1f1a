//! Framed wire messages over QUIC streams: one reader and one writer per stream.

use iroh::endpoint::{ReadError, RecvStream, SendStream, WriteError};
use thiserror::Error;
use xoq_wire::{FrameDecoder, Message, Peer, WireError};

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

/// Reads whole messages from a QUIC receive stream.
pub struct MessageReader {
    recv: RecvStream,
    decoder: FrameDecoder,
    buf: Box<[u8]>,
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
        }
    }

    /// The next message; `Ok(None)` when the peer finished the stream cleanly between messages.
    pub async fn next(&mut self) -> Result<Option<Message>, StreamError> {
        loop {
            if let Some(m) = self.decoder.next_message()? {
                return Ok(Some(m));
            }
            match self.recv.read(&mut self.buf).await? {
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

/// Writes whole messages to a QUIC send stream, each in one write.
pub struct MessageWriter {
    send: SendStream,
    buf: Vec<u8>,
}

impl MessageWriter {
    pub fn new(send: SendStream) -> Self {
        MessageWriter {
            send,
            buf: Vec::with_capacity(4096),
        }
    }

    pub async fn send(&mut self, m: &Message) -> Result<(), StreamError> {
        self.buf.clear();
        m.encode(&mut self.buf);
        self.send.write_all(&self.buf).await?;
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
