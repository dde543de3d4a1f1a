//! XoQ messages on MoQ tracks: each MoQ frame is one encoded `xoq_wire::Message`, so the relay
//! carries exactly what the iroh streams carry and one decoder (with its limits and fuzz target:
//! `Message::from_frame_by`) reads both.
//! A writer opens a new group every `window`, so a subscriber that joins, or falls behind,
//! starts at a recent group instead of the track's beginning.

use std::time::{Duration, Instant};

use moq_net::Timestamp;
use thiserror::Error;
use xoq_wire::{Message, Peer};

#[derive(Debug, Error)]
pub enum TrackError {
    #[error("relay: {0}")]
    Moq(#[from] moq_net::Error),
    #[error("a malformed message on a relay track: {0}")]
    Wire(#[from] xoq_wire::WireError),
}

/// Writes messages to a track, one per frame, a group per time window.
pub struct MessageTrack {
    track: moq_net::track::Producer,
    group: Option<(moq_net::group::Producer, Instant)>,
    window: Duration,
    header: Option<Vec<u8>>,
}

impl MessageTrack {
    pub fn new(track: moq_net::track::Producer, window: Duration) -> Self {
        Self {
            track,
            group: None,
            window,
            header: None,
        }
    }

    /// Starts every group with `header`, so a subscriber that joins at any group reads it
    /// first (a writer's `Open`, which names it); the first group, with the header alone, is
    /// sent at once.
    pub fn with_header(mut self, header: &Message) -> Result<Self, TrackError> {
        let mut frame = Vec::new();
        header.encode(&mut frame);
        self.header = Some(frame);
        self.open_group(Instant::now())?;
        Ok(self)
    }

    fn open_group(&mut self, now: Instant) -> Result<&mut moq_net::group::Producer, TrackError> {
        let mut g = self.track.append_group()?;
        if let Some(h) = &self.header {
            g.write_frame(Timestamp::now(), h.clone())?;
        }
        Ok(&mut self.group.insert((g, now)).0)
    }

    /// Appends `msg` to the current group (a new one if the window has passed).
    pub fn write(&mut self, msg: &Message) -> Result<(), TrackError> {
        let now = Instant::now();
        if let Some((g, started)) = &mut self.group {
            if now.duration_since(*started) >= self.window {
                g.finish()?;
                self.group = None;
            }
        }
        let group = match self.group {
            Some((ref mut g, _)) => g,
            None => self.open_group(now)?,
        };
        let mut frame = Vec::new();
        msg.encode(&mut frame);
        group.write_frame(Timestamp::now(), frame)?;
        Ok(())
    }

    /// Ends the current group, so subscribers are not left waiting on it.
    pub fn flush(&mut self) -> Result<(), TrackError> {
        if let Some((g, _)) = self.group.take() {
            g.finish()?;
        }
        Ok(())
    }
}

/// Decodes one relay frame as exactly one message sent by `peer`.
pub fn decode_frame(payload: &[u8], peer: Peer) -> Result<Message, TrackError> {
    Ok(Message::from_frame_by(payload, peer)?)
}

/// Reads the messages of a subscribed track, group after group.
pub struct MessageReader {
    sub: moq_net::track::Subscriber,
    group: Option<moq_net::group::Consumer>,
    peer: Peer,
}

impl MessageReader {
    pub fn new(sub: moq_net::track::Subscriber, peer: Peer) -> Self {
        Self {
            sub,
            group: None,
            peer,
        }
    }

    /// The next message; `None` when the track ended.
    pub async fn next(&mut self) -> Result<Option<Message>, TrackError> {
        loop {
            if let Some(g) = &mut self.group {
                match g.read_frame().await? {
                    Some(frame) => return Ok(Some(decode_frame(&frame.payload, self.peer)?)),
                    None => self.group = None,
                }
            }
            match self.sub.recv_group().await? {
                Some(g) => self.group = Some(g),
                None => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xoq_wire::CanFrame;

    #[test]
    fn a_frame_is_exactly_one_message_from_the_right_peer() {
        let frames = Message::CanFrames(vec![CanFrame {
            id: 0x11,
            flags: 0,
            len: 1,
            data: vec![7],
            timestamp_us: 1,
        }]);
        let mut one = Vec::new();
        frames.encode(&mut one);
        assert!(matches!(
            decode_frame(&one, Peer::Client),
            Ok(Message::CanFrames(_))
        ));
        let mut two = one.clone();
        two.extend_from_slice(&one);
        assert!(decode_frame(&two, Peer::Client).is_err());
        assert!(decode_frame(&one[..one.len() - 1], Peer::Client).is_err());
        assert!(decode_frame(&[], Peer::Client).is_err());
        // A message only a server sends, from a client's track.
        let mut welcome = Vec::new();
        Message::Drained { seq: 1 }.encode(&mut welcome);
        assert!(decode_frame(&welcome, Peer::Client).is_err());
    }
}
