//! The hand-over between the task that receives an audio stream and the real-time thread that
//! plays it, so that the real-time thread never waits on a lock the other side holds.
//!
//! The player ([`Playout`]) owns the [`JitterBuffer`]. Packets reach it through a lock-free
//! queue, each with the time it arrived, and it moves them into the buffer just before each
//! pull: the buffer sees the same pushes and pulls, in the same order, as if it were shared.
//! The receiving side ([`PlayoutFeed`]) never blocks either: when the queue is full (nobody
//! has pulled for a while) the oldest packet goes. Counters come back the same way: the player
//! publishes them after each pull unless a reader is looking at them at that moment.
//!
//! Why: with one mutex for both, a receiving task preempted while it held the lock made the
//! real-time thread miss its period, and the buffer's delay stepped by that period.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};

use crate::jitter::{JitterBuffer, JitterConfig, JitterStats};
use crate::sample_queue::SampleQueue;

/// Packets waiting for the player, with spare room beyond what the buffer holds at most.
const SPARE_PACKETS: usize = 8;

struct Shared {
    cfg: JitterConfig,
    /// Packets on their way to the player, with their sequence numbers and arrival times.
    packets: SampleQueue<(u32, u64)>,
    stop: AtomicBool,
    /// Packets dropped unplayed because the queue was full (nobody pulled).
    discarded: AtomicU64,
    stats: Mutex<JitterStats>,
}

/// The receiving side: hands packets to the player, asks it to stop, reads its counters.
#[derive(Clone)]
pub struct PlayoutFeed {
    shared: Arc<Shared>,
}

/// The playing side: owns the jitter buffer; pulls never wait on the feed.
pub struct Playout {
    jitter: JitterBuffer,
    shared: Arc<Shared>,
}

/// A player with a jitter buffer of `cfg`, and its feed.
pub fn playout(cfg: JitterConfig) -> (PlayoutFeed, Playout) {
    let shared = Arc::new(Shared {
        cfg,
        packets: SampleQueue::new(cfg.max_frames / cfg.packet_frames + SPARE_PACKETS),
        stop: AtomicBool::new(false),
        discarded: AtomicU64::new(0),
        stats: Mutex::new(JitterStats::default()),
    });
    (
        PlayoutFeed {
            shared: shared.clone(),
        },
        Playout {
            jitter: JitterBuffer::new(cfg),
            shared,
        },
    )
}

impl PlayoutFeed {
    /// Hands over one packet's interleaved samples, arrived at `now_us` (the clock the player
    /// is given). Never blocks.
    pub fn push(&self, seq: u32, samples: &[f32], now_us: u64) {
        let full = self
            .shared
            .packets
            .push((seq, now_us), |v| v.extend_from_slice(samples));
        if full.is_some() {
            self.shared.discarded.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Nobody listens any more: the player starts over at the target delay when it is pulled
    /// again.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
    }

    /// The buffer's counters as of the player's last pull.
    pub fn stats(&self) -> JitterStats {
        *self
            .shared
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Packets dropped before the player took them (it was not pulling).
    pub fn discarded(&self) -> u64 {
        self.shared.discarded.load(Ordering::Relaxed)
    }

    pub fn config(&self) -> &JitterConfig {
        &self.shared.cfg
    }
}

impl Playout {
    /// Fills `out` (interleaved) with the next frames at `now_us`, after taking in the packets
    /// that arrived. Never waits.
    pub fn pull(&mut self, out: &mut [f32], now_us: u64) {
        let shared = &*self.shared;
        if shared.stop.swap(false, Ordering::AcqRel) {
            self.jitter.stop();
        }
        let jitter = &mut self.jitter;
        while shared
            .packets
            .pop_with(|(seq, arrived_us), samples| jitter.push(seq, samples, arrived_us))
        {}
        self.jitter.pull(out, now_us);
        match shared.stats.try_lock() {
            Ok(mut s) => *s = self.jitter.stats(),
            Err(TryLockError::Poisoned(p)) => *p.into_inner() = self.jitter.stats(),
            // A reader is copying them: the next pull publishes.
            Err(TryLockError::WouldBlock) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> JitterConfig {
        // 1 kHz mono, 10-frame packets, 20 ms (20 frames) of delay.
        JitterConfig::new(1000, 1, 10, 20)
    }

    fn packet(seq: u32) -> Vec<f32> {
        (0..10).map(|i| (seq * 10 + i) as f32).collect()
    }

    #[test]
    fn packets_from_another_thread_play_in_order_after_the_delay() {
        let (feed, mut play) = playout(cfg());
        std::thread::scope(|s| {
            s.spawn(|| {
                for seq in 0..3 {
                    feed.push(seq, &packet(seq), u64::from(seq) * 10_000);
                }
            });
        });
        let mut out = vec![0.0; 10];
        play.pull(&mut out, 30_000);
        assert_eq!(out, packet(0), "20 frames buffered: play starts");
        play.pull(&mut out, 40_000);
        assert_eq!(out, packet(1));
        let s = feed.stats();
        assert_eq!((s.received, s.underruns), (3, 0), "{s:?}");
        assert_eq!(feed.discarded(), 0);
    }

    #[test]
    fn a_full_queue_drops_its_oldest_packets_and_counts_them() {
        let (feed, mut play) = playout(cfg());
        let capacity = cfg().max_frames / cfg().packet_frames + SPARE_PACKETS;
        let n = capacity as u32 + 5;
        for seq in 0..n {
            feed.push(seq, &packet(seq), 0);
        }
        assert_eq!(feed.discarded(), 5);
        let mut out = vec![0.0; 10];
        play.pull(&mut out, 0);
        let s = feed.stats();
        assert_eq!(s.received, u64::from(n) - 5, "{s:?}");
    }

    #[test]
    fn stop_starts_play_over_at_the_next_pull() {
        let (feed, mut play) = playout(cfg());
        for seq in 0..3 {
            feed.push(seq, &packet(seq), 0);
        }
        let mut out = vec![0.0; 10];
        play.pull(&mut out, 0);
        assert_eq!(out, packet(0));
        feed.stop();
        // Without the stop this pull would play packet 1; stopped, it buffers up again.
        play.pull(&mut out, 0);
        assert!(out.iter().all(|s| *s == 0.0), "{out:?}");
        feed.push(3, &packet(3), 0);
        play.pull(&mut out, 0);
        assert_eq!(out, packet(1), "play resumes where it stopped");
    }

    #[test]
    fn a_reader_holding_the_counters_does_not_block_the_player() {
        let (feed, mut play) = playout(cfg());
        let held = feed
            .shared
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        feed.push(0, &packet(0), 0);
        let mut out = vec![0.0; 10];
        play.pull(&mut out, 0); // would deadlock if the player waited
        drop(held);
        play.pull(&mut out, 0);
        assert_eq!(feed.stats().received, 1);
    }
}
