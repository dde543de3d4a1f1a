//! Streaming decoder: turns arbitrary byte chunks into whole messages.

use crate::error::WireError;
use crate::message::{max_body, Message, HEADER_LEN};

/// Accumulates bytes from a stream and yields complete messages.
///
/// The header is validated (known type, length within that type's limit) as soon as its five
/// bytes are present, so a peer can never make us buffer more than one legal message. After an
/// error the decoder is poisoned: the stream must be closed.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    pos: usize,
    failed: Option<WireError>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet consumed by a whole message.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next whole message, `Ok(None)` if more bytes are needed, or the error that makes
    /// this stream unusable.
    pub fn next_message(&mut self) -> Result<Option<Message>, WireError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let avail = &self.buf[self.pos..];
        if avail.len() < HEADER_LEN {
            self.compact();
            return Ok(None);
        }
        let t = avail[0];
        let len = u32::from_be_bytes([avail[1], avail[2], avail[3], avail[4]]) as usize;
        let checked = match max_body(t) {
            None => Err(WireError::UnknownType(t)),
            Some(max) if len > max => Err(WireError::TooLong { ty: t, len, max }),
            Some(_) => Ok(()),
        };
        if let Err(e) = checked {
            self.failed = Some(e.clone());
            return Err(e);
        }
        if avail.len() < HEADER_LEN + len {
            self.compact();
            return Ok(None);
        }
        let body = &avail[HEADER_LEN..HEADER_LEN + len];
        match Message::decode(t, body) {
            Ok(m) => {
                self.pos += HEADER_LEN + len;
                Ok(Some(m))
            }
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }
}
