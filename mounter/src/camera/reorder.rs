//! Puts a camera's frames back in order before they reach the decoder. Each frame travels on
//! its own QUIC stream, so a frame that lost a packet arrives after the frames behind it (its
//! retransmission costs about a round trip). Handed over as they come, the later frames would
//! break the decoder's reference chain, and the picture would freeze until the next keyframe.
//! Instead, frames after a gap are held until the missing one arrives, a keyframe makes it
//! irrelevant, or [`hold_limit`] passes (the frame was abandoned by the server or is hopeless);
//! only then is the gap given up and the chain broken.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use xoq_wire::VideoFrame;

/// Most frames held behind one gap; a gap still open when this many wait is given up.
pub const MAX_HELD: usize = 30;

/// How long frames wait for a missing one: long enough for QUIC to detect the loss and
/// retransmit it (about a round trip, plus the probe timeout's slack), so twice the round
/// trip plus two frame intervals, within 60 ms to one second.
pub fn hold_limit(rtt: Option<Duration>, fps: u16) -> Duration {
    let rtt = rtt.unwrap_or(Duration::from_millis(100));
    let frames = Duration::from_secs(2) / u32::from(fps.max(1));
    (rtt * 2 + frames).clamp(Duration::from_millis(60), Duration::from_secs(1))
}

/// A frame leaving the reorder buffer.
#[derive(Debug)]
pub struct Released {
    pub frame: VideoFrame,
    /// Frames before this one were given up: the reference chain is broken here (unless this
    /// is a keyframe).
    pub after_gap: bool,
}

/// Counters of the reorder buffer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReorderStats {
    /// Frames that arrived after a later one and were put back in place.
    pub reordered: u64,
    /// Gaps given up (frames that never came in time).
    pub gaps: u64,
    /// Frames that arrived after their place was given up, or twice.
    pub too_late: u64,
}

/// The reorder buffer of one camera.
#[derive(Debug, Default)]
pub struct FrameOrder {
    /// The sequence number expected next.
    next: Option<u32>,
    /// Frames after a gap, by their distance from `next`.
    held: BTreeMap<u32, VideoFrame>,
    /// When the oldest held frame came.
    since: Option<Instant>,
    pub stats: ReorderStats,
}

impl FrameOrder {
    /// When frames held now must be released, if any are held.
    pub fn deadline(&self, limit: Duration) -> Option<Instant> {
        self.since.map(|t| t + limit)
    }

    /// A frame arrived at `now`; returns what may go to the decoder now, in order.
    pub fn push(&mut self, f: VideoFrame, now: Instant) -> Vec<Released> {
        let mut out = Vec::new();
        let Some(next) = self.next else {
            self.next = Some(f.seq.wrapping_add(1));
            out.push(Released {
                frame: f,
                after_gap: false,
            });
            return out;
        };
        let ahead = f.seq.wrapping_sub(next);
        if ahead > u32::MAX / 2 {
            self.stats.too_late += 1;
            return out;
        }
        if ahead == 0 {
            if !self.held.is_empty() {
                self.stats.reordered += 1;
            }
            self.release_from(f, false, now, &mut out);
        } else if f.keyframe {
            // Nothing before a keyframe is needed to decode it or what follows.
            let before: Vec<u32> = self.held.range(..ahead).map(|(k, _)| *k).collect();
            for k in before {
                self.held.remove(&k);
                self.stats.too_late += 1;
            }
            self.stats.gaps += 1;
            self.release_from(f, true, now, &mut out);
        } else {
            if self.held.insert(ahead, f).is_some() {
                self.stats.too_late += 1;
            }
            self.since.get_or_insert(now);
            if self.held.len() >= MAX_HELD {
                self.give_up(now, &mut out);
            }
        }
        out
    }

    /// Gives up the gap if frames have waited `limit` by `now`.
    pub fn expire(&mut self, now: Instant, limit: Duration) -> Vec<Released> {
        let mut out = Vec::new();
        if self.deadline(limit).is_some_and(|d| d <= now) {
            self.give_up(now, &mut out);
        }
        out
    }

    /// Releases the held frames from the first one on, the gap before it given up.
    fn give_up(&mut self, now: Instant, out: &mut Vec<Released>) {
        let Some((_, first)) = self.held.pop_first() else {
            return;
        };
        self.stats.gaps += 1;
        self.release_from(first, true, now, out);
    }

    /// Releases `f` and every held frame that follows it without a gap; a gap still open
    /// after them is given its own time from `now`.
    fn release_from(
        &mut self,
        f: VideoFrame,
        after_gap: bool,
        now: Instant,
        out: &mut Vec<Released>,
    ) {
        let mut next = f.seq.wrapping_add(1);
        out.push(Released {
            frame: f,
            after_gap,
        });
        // Re-key what remains relative to the new expected number.
        let held = std::mem::take(&mut self.held);
        let mut rest = BTreeMap::new();
        for (_, h) in held {
            rest.insert(h.seq.wrapping_sub(next), h);
        }
        while let Some(h) = rest.remove(&0) {
            next = h.seq.wrapping_add(1);
            out.push(Released {
                frame: h,
                after_gap: false,
            });
            rest = rest
                .into_values()
                .map(|h| (h.seq.wrapping_sub(next), h))
                .collect();
        }
        // Anything now "behind" the expected number is a duplicate of a released frame.
        rest.retain(|k, _| *k <= u32::MAX / 2);
        self.held = rest;
        self.next = Some(next);
        self.since = (!self.held.is_empty()).then_some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xoq_wire::VideoCodec;

    fn frame(seq: u32, keyframe: bool) -> VideoFrame {
        VideoFrame {
            device: "cam0".into(),
            seq,
            capture_us: 0,
            keyframe,
            codec: VideoCodec::H264,
            width: 16,
            height: 16,
            data: vec![seq as u8],
        }
    }

    fn seqs(r: &[Released]) -> Vec<(u32, bool)> {
        r.iter().map(|r| (r.frame.seq, r.after_gap)).collect()
    }

    const LIMIT: Duration = Duration::from_millis(100);

    #[test]
    fn a_late_frame_is_put_back_in_place() {
        let t = Instant::now();
        let mut o = FrameOrder::default();
        assert_eq!(seqs(&o.push(frame(0, true), t)), [(0, false)]);
        assert_eq!(seqs(&o.push(frame(1, false), t)), [(1, false)]);
        // 2 lost a packet: 3 and 4 overtake it.
        assert!(o.push(frame(3, false), t).is_empty());
        assert!(o.push(frame(4, false), t).is_empty());
        assert_eq!(o.deadline(LIMIT), Some(t + LIMIT));
        let r = o.push(frame(2, false), t + Duration::from_millis(45));
        assert_eq!(seqs(&r), [(2, false), (3, false), (4, false)]);
        assert_eq!(o.deadline(LIMIT), None);
        assert_eq!(o.stats.reordered, 1);
        assert_eq!(o.stats.gaps, 0);
    }

    #[test]
    fn a_frame_that_never_comes_is_given_up_at_the_limit() {
        let t = Instant::now();
        let mut o = FrameOrder::default();
        o.push(frame(7, true), t);
        assert!(o.push(frame(9, false), t).is_empty());
        assert!(o.push(frame(10, false), t).is_empty());
        assert!(o.expire(t + LIMIT / 2, LIMIT).is_empty());
        let r = o.expire(t + LIMIT, LIMIT);
        assert_eq!(seqs(&r), [(9, true), (10, false)]);
        assert_eq!(o.stats.gaps, 1);
        // The lost frame arriving after all is too late.
        assert!(o.push(frame(8, false), t + LIMIT * 2).is_empty());
        assert_eq!(o.stats.too_late, 1);
        assert_eq!(seqs(&o.push(frame(11, false), t)), [(11, false)]);
    }

    #[test]
    fn a_keyframe_after_a_gap_goes_at_once_and_drops_what_it_replaces() {
        let t = Instant::now();
        let mut o = FrameOrder::default();
        o.push(frame(0, true), t);
        // 1 was abandoned by the server; 2 is held, then the server's keyframe 5 comes.
        assert!(o.push(frame(2, false), t).is_empty());
        assert!(o.push(frame(6, false), t).is_empty());
        let r = o.push(frame(5, true), t);
        assert_eq!(seqs(&r), [(5, true), (6, false)]);
        assert_eq!(o.deadline(LIMIT), None);
        assert_eq!(o.stats.too_late, 1);
    }

    #[test]
    fn two_gaps_are_filled_one_after_the_other() {
        let t = Instant::now();
        let mut o = FrameOrder::default();
        o.push(frame(0, true), t);
        for s in [2, 4, 5] {
            assert!(o.push(frame(s, false), t).is_empty());
        }
        assert_eq!(seqs(&o.push(frame(1, false), t)), [(1, false), (2, false)]);
        assert!(o.deadline(LIMIT).is_some(), "4 and 5 still wait for 3");
        assert_eq!(
            seqs(&o.push(frame(3, false), t)),
            [(3, false), (4, false), (5, false)]
        );
    }

    #[test]
    fn numbers_wrap() {
        let t = Instant::now();
        let mut o = FrameOrder::default();
        o.push(frame(u32::MAX - 1, true), t);
        assert!(o.push(frame(0, false), t).is_empty());
        assert_eq!(
            seqs(&o.push(frame(u32::MAX, false), t)),
            [(u32::MAX, false), (0, false)]
        );
    }

    #[test]
    fn too_many_held_frames_give_the_gap_up() {
        let t = Instant::now();
        let mut o = FrameOrder::default();
        o.push(frame(0, true), t);
        let mut released = Vec::new();
        for s in 2..(2 + MAX_HELD as u32) {
            released.extend(o.push(frame(s, false), t));
        }
        assert_eq!(released.len(), MAX_HELD);
        assert!(released[0].after_gap);
    }

    #[test]
    fn limit_follows_the_round_trip() {
        assert_eq!(
            hold_limit(Some(Duration::from_millis(40)), 30),
            Duration::from_millis(80) + Duration::from_secs(2) / 30
        );
        assert_eq!(
            hold_limit(Some(Duration::ZERO), 1000),
            Duration::from_millis(60)
        );
        assert_eq!(
            hold_limit(Some(Duration::from_secs(5)), 30),
            Duration::from_secs(1)
        );
    }
}
