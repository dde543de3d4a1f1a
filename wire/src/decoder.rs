//! Streaming decoder: turns arbitrary byte chunks into whole messages.

use crate::error::WireError;
use crate::message::{max_body, may_send, Message, Peer, HEADER_LEN};

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
    /// Who sends what this decoder reads, if known: types that only travel the other way are
    /// refused from their header.
    peer: Option<Peer>,
    /// A body limit below the type's own, for a stream that carries only small messages.
    limit: Option<usize>,
}

impl FrameDecoder {
    /// A decoder that accepts any type, each up to its own limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder of what `peer` sends: a type that only the other end sends is an error
    /// (`WrongDirection`) as soon as its header arrives.
    pub fn from_peer(peer: Peer) -> Self {
        FrameDecoder {
            peer: Some(peer),
            ..Self::default()
        }
    }

    /// No body over `max` bytes, whatever the type allows (e.g. a control stream that only
    /// carries a `Hello`).
    pub fn with_limit(mut self, max: usize) -> Self {
        self.limit = Some(max);
        self
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
            Some(_) if self.peer.is_some_and(|p| !may_send(p, t)) => {
                Err(WireError::WrongDirection { ty: t })
            }
            Some(max) => match self.limit.map_or(max, |l| l.min(max)) {
                max if len > max => Err(WireError::TooLong { ty: t, len, max }),
                _ => Ok(()),
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn header(t: u8, len: u32) -> Vec<u8> {
        let mut h = vec![t];
        h.extend_from_slice(&len.to_be_bytes());
        h
    }

    #[test]
    fn a_client_sending_a_video_frame_is_refused_from_its_header() {
        let mut d = FrameDecoder::from_peer(Peer::Client);
        d.push(&header(0x42, 8 * 1024 * 1024));
        assert_eq!(
            d.next_message(),
            Err(WireError::WrongDirection { ty: 0x42 })
        );
        // The same header from a server is fine (more bytes wanted).
        let mut d = FrameDecoder::from_peer(Peer::Server);
        d.push(&header(0x42, 1000));
        assert_eq!(d.next_message(), Ok(None));
    }

    #[test]
    fn a_server_cannot_send_a_hello_and_types_of_both_ways_pass_both() {
        let mut d = FrameDecoder::from_peer(Peer::Server);
        d.push(&header(0x01, 10));
        assert!(matches!(
            d.next_message(),
            Err(WireError::WrongDirection { .. })
        ));
        for peer in [Peer::Client, Peer::Server] {
            let mut d = FrameDecoder::from_peer(peer);
            d.push(&Message::Data(b"hi".to_vec()).to_bytes());
            assert_eq!(d.next_message(), Ok(Some(Message::Data(b"hi".to_vec()))));
        }
    }

    #[test]
    fn a_limited_stream_refuses_a_long_body_before_buffering_it() {
        let mut d = FrameDecoder::from_peer(Peer::Client).with_limit(4096);
        d.push(&header(0x20, 60_000));
        assert_eq!(
            d.next_message(),
            Err(WireError::TooLong {
                ty: 0x20,
                len: 60_000,
                max: 4096
            })
        );
    }
}
