//! Stream copies: a second, unreliable copy of a small ordered message, sent as a datagram
//! beside the stream that carries it (protocol version 3, docs/PROTOCOL.md §4.1).
//!
//! A lost packet holds back everything behind it on a QUIC stream until it is retransmitted,
//! which costs about one round trip more: at 1 % loss, the 99th percentile of a serial echo is
//! then two round trips. A copy sent as a datagram, in its own packet, arrives in the common
//! case that only one of the two was lost, and the receiver takes whichever comes first.
//!
//! Each copy names the stream (its QUIC id) and the message's place in that stream's
//! *ordered* messages ([`is_ordered`]). The receiver's [`CopyGate`] delivers a copy only when
//! it is the very next ordered message, so nothing is ever delivered twice or out of order,
//! and skips the stream's own message when it arrives later.

use crate::codec::{Reader, Writer};
use crate::error::WireError;
use crate::message::{ty, Message, HEADER_LEN};

/// Largest encoded message (header included) a copy may carry: a copy must fit in one
/// datagram on any path (QUIC guarantees 1200-byte packets).
pub const MAX_COPIED: usize = 1024;

/// The body of a `StreamCopy`: stream id, place, then the copied message as framed.
pub const MAX_COPY_BODY: usize = 8 + 8 + MAX_COPIED;

/// A copy of the `seq`-th ordered message sent on stream `stream` of this connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCopy {
    /// The QUIC stream id, as both ends see it.
    pub stream: u64,
    /// How many ordered messages the sender sent on that stream before this one, counted
    /// from the first after `Open` (client) or `Opened` (server).
    pub seq: u64,
    /// `Data` or `CanFrames`: the only messages worth a copy.
    pub message: Box<Message>,
}

/// Whether a message may travel as a copy: the small, latency-bound payloads of a device
/// stream (serial bytes, CAN frames).
pub fn may_copy(m: &Message) -> bool {
    matches!(m, Message::Data(_) | Message::CanFrames(_))
}

/// Whether a message takes a place in its stream's order. Reports that say nothing about
/// the data around them (transmit progress, drain answers, counters, clock samples) do not:
/// one of them lost and retransmitted does not hold back the copies of the data after it.
pub fn is_ordered(m: &Message) -> bool {
    !matches!(
        m,
        Message::TxProgress { .. }
            | Message::Drained { .. }
            | Message::CanCounters(_)
            | Message::TimeSync { .. }
    )
}

impl StreamCopy {
    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u64(self.stream);
        w.u64(self.seq);
        self.message.encode(w.0);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<StreamCopy, WireError> {
        let stream = r.u64("stream")?;
        let seq = r.u64("seq")?;
        let inner = r.rest();
        // Only the two copyable types, checked before the inner body is decoded: a copy cannot
        // nest another copy or smuggle a type the stream would not carry.
        let t = inner.first().copied().unwrap_or(0);
        if inner.len() < HEADER_LEN || !matches!(t, ty::DATA | ty::CAN_FRAMES) {
            return Err(WireError::BadValue {
                field: "copied_type",
                value: t.into(),
            });
        }
        let message = Box::new(Message::from_frame(inner)?);
        Ok(StreamCopy {
            stream,
            seq,
            message,
        })
    }
}

/// The receiving side of one stream's copies: decides, for each message from the stream and
/// each copy, whether it is delivered. Sans-IO; the caller feeds both sources in any order.
#[derive(Debug, Default, Clone)]
pub struct CopyGate {
    /// Ordered messages delivered so far (from either source).
    delivered: u64,
    /// Ordered messages read from the stream so far.
    from_stream: u64,
    /// Counters for status and benchmarks.
    pub stats: CopyGateStats,
}

/// What a gate did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CopyGateStats {
    /// Copies delivered before their stream message arrived.
    pub used: u64,
    /// Copies that came after their message (or after a later one): dropped.
    pub late: u64,
    /// Copies that came before a message ahead of them: dropped (the stream will deliver).
    pub early: u64,
}

impl CopyGate {
    /// A message read from the stream: `true` if it is to be delivered, `false` if its copy
    /// already was.
    pub fn on_stream(&mut self, m: &Message) -> bool {
        if !is_ordered(m) {
            return true;
        }
        let place = self.from_stream;
        self.from_stream += 1;
        if place < self.delivered {
            return false;
        }
        self.delivered += 1;
        true
    }

    /// A copy of the `seq`-th ordered message: `true` if it is to be delivered now.
    pub fn on_copy(&mut self, seq: u64) -> bool {
        if seq == self.delivered {
            self.delivered += 1;
            self.stats.used += 1;
            true
        } else {
            if seq < self.delivered {
                self.stats.late += 1;
            } else {
                self.stats.early += 1;
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data(i: u8) -> Message {
        Message::Data(vec![i])
    }

    #[test]
    fn a_copy_round_trips_and_only_carries_data_or_can_frames() {
        let c = Message::StreamCopy(StreamCopy {
            stream: 4,
            seq: 9,
            message: Box::new(data(7)),
        });
        assert_eq!(Message::from_frame(&c.to_bytes()).ok(), Some(c));
        let nested = Message::StreamCopy(StreamCopy {
            stream: 4,
            seq: 9,
            message: Box::new(Message::Flush(crate::FlushQueue::Both)),
        });
        assert!(matches!(
            Message::from_frame(&nested.to_bytes()),
            Err(WireError::BadValue {
                field: "copied_type",
                ..
            })
        ));
    }

    #[test]
    fn reports_between_data_do_not_hold_back_copies() {
        let mut g = CopyGate::default();
        // The stream says: Data0, TxProgress, Data1. Data1's copy comes first after Data0.
        assert!(g.on_stream(&data(0)));
        assert!(g.on_copy(1));
        assert!(g.on_stream(&Message::TxProgress {
            written: 1,
            queued: 0
        }));
        assert!(!g.on_stream(&data(1)), "delivered once, by its copy");
        assert!(!g.on_copy(1), "a duplicate copy is late");
        assert_eq!(g.stats.used, 1);
        assert_eq!(g.stats.late, 1);
    }

    #[test]
    fn a_copy_ahead_of_a_missing_message_waits_for_the_stream() {
        let mut g = CopyGate::default();
        assert!(!g.on_copy(1), "message 0 has not been delivered");
        assert!(g.on_stream(&data(0)));
        assert!(g.on_stream(&data(1)));
        assert_eq!(g.stats.early, 1);
    }

    /// One arrival at the receiver: the next stream message, or the copy of message `i`.
    #[derive(Debug, Clone)]
    enum Arrival {
        Stream,
        Copy(usize),
    }

    proptest! {
        /// Whatever the order in which the stream's messages and any subset of copies (some
        /// duplicated) arrive, the receiver delivers each ordered message exactly once, in the
        /// stream's order, and every unordered message once.
        #[test]
        fn every_message_exactly_once_in_order(
            kinds in proptest::collection::vec(any::<bool>(), 1..40),
            picks in proptest::collection::vec((any::<bool>(), 0usize..60), 0..120),
        ) {
            // The stream: ordered Data(i) and, where `kinds` says, a TxProgress after it.
            let mut stream = Vec::new();
            let mut ordered = 0u8;
            for &report in &kinds {
                stream.push(data(ordered));
                ordered += 1;
                if report {
                    stream.push(Message::TxProgress { written: 0, queued: 0 });
                }
            }
            let mut arrivals: Vec<Arrival> = Vec::new();
            let mut pick = picks.iter();
            for _ in 0..stream.len() {
                // Some copies (possibly of any message, possibly again) before each stream
                // message.
                for &(take, i) in pick.by_ref().take(2) {
                    if take {
                        arrivals.push(Arrival::Copy(i % usize::from(ordered)));
                    }
                }
                arrivals.push(Arrival::Stream);
            }
            for &(take, i) in pick {
                if take {
                    arrivals.push(Arrival::Copy(i % usize::from(ordered)));
                }
            }
            let mut g = CopyGate::default();
            let mut next = stream.iter();
            let mut got = Vec::new();
            for a in arrivals {
                match a {
                    Arrival::Stream => {
                        let m = next.next().cloned().unwrap_or_else(|| data(255));
                        if g.on_stream(&m) {
                            got.push(m);
                        }
                    }
                    Arrival::Copy(i) => {
                        if g.on_copy(i as u64) {
                            got.push(data(i as u8));
                        }
                    }
                }
            }
            let want: Vec<Message> = stream.iter().filter(|m| is_ordered(m)).cloned().collect();
            let got_ordered: Vec<Message> = got.iter().filter(|m| is_ordered(m)).cloned().collect();
            prop_assert_eq!(got_ordered, want);
            let reports = got.iter().filter(|m| !is_ordered(m)).count();
            prop_assert_eq!(reports, kinds.iter().filter(|&&r| r).count());
        }
    }
}
