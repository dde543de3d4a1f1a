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

/// How long a group that arrived early waits for the ones before it before those are given
/// up (the relay dropped them: older than the subscription's age limit). Groups are separate
/// QUIC streams, so they may arrive out of order; a byte stream (a serial port's) must not.
const GAP_WAIT: Duration = Duration::from_secs(1);
/// How long the first group waits for older ones the relay may still be sending: a new
/// subscription gets every cached group within its age limit, each on its own stream.
const FIRST_WAIT: Duration = Duration::from_millis(100);

/// Reads the messages of a subscribed track, group after group in sequence order (not in the
/// order the groups' streams arrive), so messages come out in the order they were written.
pub struct MessageReader {
    sub: moq_net::track::Subscriber,
    group: Option<moq_net::group::Consumer>,
    peer: Peer,
    /// The sequence to read next, once the first group is chosen.
    next: Option<u64>,
    /// Groups that arrived before the one to read next.
    early: std::collections::BTreeMap<u64, moq_net::group::Consumer>,
    /// Groups given up: never arrived within `GAP_WAIT` of a later one.
    pub skipped: u64,
    ended: bool,
}

impl MessageReader {
    pub fn new(sub: moq_net::track::Subscriber, peer: Peer) -> Self {
        Self {
            sub,
            group: None,
            peer,
            next: None,
            early: Default::default(),
            skipped: 0,
            ended: false,
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
            match self.next_group().await? {
                Some(g) => self.group = Some(g),
                None => return Ok(None),
            }
        }
    }

    /// The group to read next, in sequence order.
    async fn next_group(&mut self) -> Result<Option<moq_net::group::Consumer>, TrackError> {
        loop {
            if let Some(n) = self.next {
                if let Some(g) = self.early.remove(&n) {
                    self.next = Some(n + 1);
                    return Ok(Some(g));
                }
            }
            let lowest = self.early.keys().next().copied();
            if self.ended {
                // Nothing more will come: what arrived is read in order, gaps and all.
                let Some(s) = lowest else { return Ok(None) };
                self.skip_to(s);
                continue;
            }
            let wait = match (self.next, lowest) {
                (_, None) => None,
                (None, Some(_)) => Some(FIRST_WAIT),
                (Some(_), Some(_)) => Some(GAP_WAIT),
            };
            let arrived = match wait {
                None => self.sub.recv_group().await?,
                Some(w) => match tokio::time::timeout(w, self.sub.recv_group()).await {
                    Ok(r) => r?,
                    Err(_) => {
                        if let Some(s) = lowest {
                            self.skip_to(s);
                        }
                        continue;
                    }
                },
            };
            match arrived {
                None => self.ended = true,
                // A group older than one already read came too late: its turn has passed.
                Some(g) if self.next.is_some_and(|n| g.sequence < n) => self.skipped += 1,
                Some(g) => {
                    self.early.insert(g.sequence, g);
                }
            }
        }
    }

    /// Reads on from group `s`, counting the groups before it that never came.
    fn skip_to(&mut self, s: u64) {
        if let Some(n) = self.next {
            self.skipped += s.saturating_sub(n);
        }
        self.next = Some(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(i: u8) -> Message {
        Message::Data(vec![i])
    }

    /// A track, its reader, and a way to write message `i` as group `seq`.
    async fn track() -> (
        moq_net::broadcast::Producer,
        moq_net::track::Producer,
        MessageReader,
    ) {
        let b = moq_net::broadcast::Info::new().produce();
        let t = b.create_track("t", None).expect("track");
        let keep = moq_net::track::Subscription::default().with_max_age(Duration::from_secs(60));
        let sub = t.subscribe(keep);
        (b, t, MessageReader::new(sub, Peer::Server))
    }

    fn write(t: &moq_net::track::Producer, seq: u64, i: u8) {
        let mut g = t
            .create_group(moq_net::group::Info { sequence: seq })
            .expect("group");
        let mut frame = Vec::new();
        data(i).encode(&mut frame);
        g.write_frame(Timestamp::now(), frame).expect("frame");
        g.finish().expect("finish");
    }

    #[tokio::test(start_paused = true)]
    async fn groups_that_arrive_out_of_order_are_read_in_order() {
        let (_b, t, mut r) = track().await;
        for (seq, i) in [(0, 0), (2, 2), (1, 1), (4, 4), (3, 3)] {
            write(&t, seq, i);
        }
        for i in 0..5 {
            assert_eq!(r.next().await.expect("read"), Some(data(i)));
        }
        assert_eq!(r.skipped, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_that_never_comes_is_given_up_and_counted() {
        let (_b, t, mut r) = track().await;
        write(&t, 0, 0);
        write(&t, 2, 2);
        assert_eq!(r.next().await.expect("read"), Some(data(0)));
        // Group 1 never comes: group 2 is read after the wait, and the gap counted.
        assert_eq!(r.next().await.expect("read"), Some(data(2)));
        assert_eq!(r.skipped, 1);
        // Group 1 arriving now is too late, never read.
        write(&t, 1, 1);
        write(&t, 3, 3);
        assert_eq!(r.next().await.expect("read"), Some(data(3)));
    }
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
