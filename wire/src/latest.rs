//! Latest-wins delivery of a CAN stream (protocol version 4, docs/PROTOCOL.md §4.2): for cyclic
//! control traffic over lossy links, where a command lost on the way is repaired by the next
//! cycle rather than worth waiting for.
//!
//! The stream still carries every message reliably, and each small one is still copied as a
//! datagram (`copy`). What changes is the receiver's gate. An ordered gate (`CopyGate`) delivers
//! a copy only when it is the very next message, so one lost packet holds back every command
//! behind it for a round trip (head-of-line blocking), and one copy lost among those stops the
//! chain until the stream's retransmission arrives. A [`LatestGate`] delivers each message the
//! first time it arrives, by copy or stream, and keeps one rule of order: a frame is dropped
//! (counted as *superseded*) when a frame with the same identity (id, extended, error) from a
//! later place was already delivered. So no motor ever executes an older command after a newer
//! one, and commands for different ids never wait for each other.
//!
//! Not for ISO-TP/UDS transfers or anything else that needs every frame in order: a frame whose
//! packet and copy were both lost arrives by the stream after newer frames of its id and is
//! dropped. Those keep the default, ordered delivery.

use std::collections::{BTreeSet, HashMap};

use crate::can::{flags, CanFrame};
use crate::copy::{is_ordered, StreamCopy};
use crate::error::WireError;
use crate::message::Message;

/// How the receiver of a device stream treats its messages and their copies, chosen by the
/// client when it opens the device (`Message::Open`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Delivery {
    /// Every message once, in the order sent (the default, and the only mode for serial).
    #[default]
    Ordered,
    /// CAN only: each frame as soon as it arrives, unless a newer one of its id already was.
    Latest,
}

impl Delivery {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Delivery::Ordered => 0,
            Delivery::Latest => 1,
        }
    }
    pub(crate) fn from_u8(v: u8) -> Result<Self, WireError> {
        match v {
            0 => Ok(Delivery::Ordered),
            1 => Ok(Delivery::Latest),
            v => Err(WireError::BadValue {
                field: "delivery",
                value: v.into(),
            }),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Ordered => "ordered",
            Delivery::Latest => "latest",
        }
    }
}

impl std::str::FromStr for Delivery {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ordered" => Ok(Delivery::Ordered),
            "latest" => Ok(Delivery::Latest),
            other => Err(format!(
                "unknown delivery `{other}`: `ordered` (every frame, in order) or `latest` (each \
                 frame as it arrives, older ones of an id dropped)"
            )),
        }
    }
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far ahead of the stream (in messages) a copy may be and still be delivered: a copy
/// further ahead is dropped and its message left to the stream. At 1 kHz, four seconds.
pub const LATEST_WINDOW: u64 = 4096;
/// Most frame identities remembered from copies delivered ahead of the stream. A peer cannot
/// make a gate hold more: beyond it, copies are left to the stream.
pub const MAX_TRACKED: usize = 8192;

/// What a latest-wins gate did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LatestGateStats {
    /// Copies delivered before their stream message.
    pub used: u64,
    /// Copies of messages already delivered (by the stream or an earlier copy): dropped.
    pub late: u64,
    /// Copies too far ahead of the stream, or beyond what the gate may remember: dropped.
    pub early: u64,
    /// Frames dropped because a frame of the same identity from a later place had been
    /// delivered.
    pub superseded: u64,
}

/// The receiving side of one latest-wins stream. Sans-IO; the caller feeds the stream's
/// messages and the copies in any order and passes on what comes back.
#[derive(Debug, Default, Clone)]
pub struct LatestGate {
    /// Ordered messages read from the stream so far: the place of the next one.
    from_stream: u64,
    /// Places at or after `from_stream` already delivered by their copy.
    ahead: BTreeSet<u64>,
    /// For each frame identity delivered by a copy ahead of the stream, the newest place.
    newest: HashMap<u64, u64>,
    pub stats: LatestGateStats,
}

/// A frame's identity on the bus: its id, and whether it is extended or an error frame.
fn identity(f: &CanFrame) -> u64 {
    u64::from(f.flags & (flags::EFF | flags::ERR)) << 32 | u64::from(f.id)
}

impl LatestGate {
    /// A message read from the stream: what of it is to be delivered.
    pub fn on_stream(&mut self, m: Message) -> Option<Message> {
        if !is_ordered(&m) {
            return Some(m);
        }
        let place = self.from_stream;
        self.from_stream += 1;
        let delivered = self.ahead.remove(&place);
        self.forget_behind();
        if delivered {
            return None;
        }
        self.supersede(place, m, false)
    }

    /// A copy of the `seq`-th ordered message: what of it is to be delivered now.
    pub fn on_copy(&mut self, c: StreamCopy) -> Option<Message> {
        let place = c.seq;
        if place < self.from_stream || self.ahead.contains(&place) {
            self.stats.late += 1;
            return None;
        }
        if place - self.from_stream >= LATEST_WINDOW || self.newest.len() >= MAX_TRACKED {
            self.stats.early += 1;
            return None;
        }
        self.ahead.insert(place);
        self.stats.used += 1;
        self.supersede(place, *c.message, true)
    }

    /// `m` from `place` without its frames that a later place's frames already superseded
    /// (all of them may be: the empty message still goes up, so whoever reads the stream sees
    /// the count grow at once). Frames delivered from a copy are remembered: the stream's
    /// messages before them are now older than they.
    fn supersede(&mut self, place: u64, m: Message, from_copy: bool) -> Option<Message> {
        let Message::CanFrames(frames) = m else {
            return Some(m);
        };
        let before = frames.len();
        let kept: Vec<CanFrame> = frames
            .into_iter()
            .filter(|f| self.newest.get(&identity(f)).is_none_or(|&p| p <= place))
            .collect();
        self.stats.superseded += (before - kept.len()) as u64;
        if from_copy {
            for f in &kept {
                self.newest.insert(identity(f), place);
            }
        }
        Some(Message::CanFrames(kept))
    }

    /// Forgets identities whose newest place the stream has passed: nothing still to come is
    /// older than they.
    fn forget_behind(&mut self) {
        if self.ahead.is_empty() {
            self.newest.clear();
        } else if self.newest.len() >= MAX_TRACKED / 2 {
            let from = self.from_stream;
            self.newest.retain(|_, p| *p >= from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(ids: &[u32], place: u64) -> Message {
        Message::CanFrames(
            ids.iter()
                .map(|&id| CanFrame {
                    id,
                    flags: 0,
                    len: 8,
                    data: place.to_be_bytes().to_vec(),
                    timestamp_us: 0,
                })
                .collect(),
        )
    }

    fn copy(seq: u64, m: &Message) -> StreamCopy {
        StreamCopy {
            stream: 0,
            seq,
            message: Box::new(m.clone()),
        }
    }

    #[test]
    fn a_copy_after_a_lost_message_is_delivered_at_once_and_the_late_one_is_superseded() {
        let mut g = LatestGate::default();
        let m: Vec<Message> = (0..4).map(|i| frames(&[1 + (i % 2) as u32], i)).collect();
        assert!(g.on_stream(m[0].clone()).is_some());
        // Message 1 (id 2) is lost on the stream; 2 (id 1) and 3 (id 2) come by their copies.
        assert_eq!(g.on_copy(copy(2, &m[2])), Some(m[2].clone()));
        assert_eq!(g.on_copy(copy(3, &m[3])), Some(m[3].clone()));
        // The stream's retransmission of 1 arrives: id 2 has had a newer command.
        assert_eq!(g.on_stream(m[1].clone()), Some(Message::CanFrames(vec![])));
        assert_eq!(g.on_stream(m[2].clone()), None, "delivered by its copy");
        assert_eq!(g.on_stream(m[3].clone()), None, "delivered by its copy");
        assert_eq!(g.stats.superseded, 1);
        assert_eq!(g.stats.used, 2);
        assert!(g.newest.is_empty() && g.ahead.is_empty(), "nothing kept");
    }

    #[test]
    fn a_late_frame_of_another_id_is_still_delivered() {
        let mut g = LatestGate::default();
        let one = frames(&[5], 0);
        let two = frames(&[6], 1);
        assert_eq!(g.on_copy(copy(1, &two)), Some(two));
        assert_eq!(
            g.on_stream(one.clone()),
            Some(one),
            "id 5 had nothing newer"
        );
    }

    #[test]
    fn only_the_superseded_frames_of_a_batch_are_dropped() {
        let mut g = LatestGate::default();
        let newer = frames(&[1], 1);
        assert!(g.on_copy(copy(1, &newer)).is_some());
        let Some(Message::CanFrames(left)) = g.on_stream(frames(&[1, 2, 3], 0)) else {
            panic!("ids 2 and 3 are still due");
        };
        assert_eq!(left.iter().map(|f| f.id).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn copies_far_ahead_of_the_stream_are_left_to_it() {
        let mut g = LatestGate::default();
        let m = frames(&[1], 0);
        assert_eq!(g.on_copy(copy(LATEST_WINDOW, &m)), None);
        assert_eq!(g.on_copy(copy(u64::MAX, &m)), None);
        assert_eq!(g.stats.early, 2);
        assert!(g.ahead.is_empty());
    }

    #[test]
    fn a_peer_cannot_make_the_gate_remember_without_bound() {
        let mut g = LatestGate::default();
        // Copies ahead of a stream that never moves, each with a new id.
        for seq in 1..LATEST_WINDOW {
            let ids: Vec<u32> = (0..8).map(|i| (seq * 8 + i) as u32).collect();
            let _ = g.on_copy(copy(seq, &frames(&ids, seq)));
        }
        assert!(g.newest.len() < MAX_TRACKED + 8);
        assert!(g.stats.early > 0);
    }

    #[test]
    fn the_extended_and_standard_frame_of_one_number_are_different_identities() {
        let mut g = LatestGate::default();
        let mut ext = frames(&[7], 1);
        if let Message::CanFrames(f) = &mut ext {
            f[0].flags = flags::EFF;
        }
        assert!(g.on_copy(copy(1, &ext)).is_some());
        assert!(g.on_stream(frames(&[7], 0)).is_some());
    }

    /// One arrival at the receiver: the next stream message, or the copy of message `i`.
    #[derive(Debug, Clone)]
    enum Arrival {
        Stream,
        Copy(usize),
    }

    proptest! {
        /// Whatever arrives when, by copy or stream: each message is delivered at most once;
        /// for every id the places delivered only increase (no motor runs an older command
        /// after a newer one); a frame is missing only if a newer frame of its id was
        /// delivered; reports are always delivered.
        #[test]
        fn never_older_after_newer_and_nothing_lost_without_a_newer_one(
            ids in proptest::collection::vec(0u32..4, 1..40),
            reports in proptest::collection::vec(any::<bool>(), 40),
            picks in proptest::collection::vec((any::<bool>(), 0usize..60), 0..120),
        ) {
            let mut stream = Vec::new();
            for (place, &id) in ids.iter().enumerate() {
                stream.push(frames(&[id], place as u64));
                if reports[place] {
                    stream.push(Message::TxProgress { written: 0, queued: 0 });
                }
            }
            let mut arrivals = Vec::new();
            let mut pick = picks.iter();
            for _ in 0..stream.len() {
                for &(take, i) in pick.by_ref().take(2) {
                    if take {
                        arrivals.push(Arrival::Copy(i % ids.len()));
                    }
                }
                arrivals.push(Arrival::Stream);
            }
            let mut g = LatestGate::default();
            let mut next = stream.iter();
            let mut got: Vec<(u32, u64)> = Vec::new();
            let mut got_reports = 0;
            for a in arrivals {
                let out = match a {
                    Arrival::Stream => g.on_stream(next.next().cloned().expect("one per message")),
                    Arrival::Copy(i) => g.on_copy(copy(i as u64, &frames(&[ids[i]], i as u64))),
                };
                match out {
                    Some(Message::CanFrames(f)) => {
                        for f in f {
                            let place = u64::from_be_bytes(f.data[..8].try_into().expect("8"));
                            got.push((f.id, place));
                        }
                    }
                    Some(_) => got_reports += 1,
                    None => {}
                }
            }
            prop_assert_eq!(got_reports, reports[..ids.len()].iter().filter(|&&r| r).count());
            let mut seen = std::collections::HashSet::new();
            for &(id, place) in &got {
                prop_assert!(seen.insert(place), "message {} delivered twice", place);
                let later_same_id = got.iter().position(|&(i, p)| i == id && p > place);
                let this = got.iter().position(|&(_, p)| p == place);
                if let (Some(later), Some(this)) = (later_same_id, this) {
                    prop_assert!(this < later, "id {} got place {} after a newer one", id, place);
                }
            }
            for (place, &id) in ids.iter().enumerate() {
                let place = place as u64;
                if !seen.contains(&place) {
                    prop_assert!(
                        got.iter().any(|&(i, p)| i == id && p > place),
                        "message {} (id {}) lost without a newer one of its id", place, id
                    );
                }
            }
        }
    }
}
