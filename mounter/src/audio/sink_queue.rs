//! What a speaker node's real-time callback received, on its way to the bridge that sends it:
//! chunks of samples in a lock-free `SampleQueue`, so the callback never waits on the bridge.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;
use xoq_audio::SampleQueue;
use xoq_wire::AudioFormat;

/// The shortest graph cycle expected, in frames (PipeWire's quantum floor on desktops).
const MIN_QUANTUM: usize = 64;

/// Samples a sink node received, waiting for the bridge.
pub struct SinkQueue {
    chunks: SampleQueue<()>,
    /// Rung after each chunk.
    pub ready: Notify,
    /// Samples dropped because the bridge was not draining (no link).
    dropped: AtomicU64,
}

impl SinkQueue {
    /// Room for about half a second: beyond that the bridge is not draining (no link) and
    /// the oldest audio goes.
    pub fn new(format: &AudioFormat) -> Self {
        SinkQueue {
            chunks: SampleQueue::new((format.rate as usize / 2 / MIN_QUANTUM).max(8)),
            ready: Notify::new(),
            dropped: AtomicU64::new(0),
        }
    }

    /// From the node's callback: one cycle's F32LE samples. Never blocks.
    pub fn push_le_bytes(&self, bytes: &[u8]) {
        let full = self.chunks.push((), |v| {
            v.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            )
        });
        if let Some(n) = full {
            self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        }
        self.ready.notify_one();
    }

    /// Appends every waiting sample to `out`.
    pub fn drain_into(&self, out: &mut Vec<f32>) {
        while self.chunks.pop_with(|(), s| out.extend_from_slice(s)) {}
    }

    /// Forgets what is waiting (it played while there was no link: stale).
    pub fn clear(&self) {
        self.chunks.clear();
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xoq_wire::SampleFormat;

    fn bytes(samples: &[f32]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn chunks_come_out_in_order_and_an_undrained_queue_drops_the_oldest() {
        let q = SinkQueue::new(&AudioFormat {
            rate: 8000,
            channels: 1,
            sample: SampleFormat::F32,
        });
        // 8000 / 2 / 64 = 62 chunks of room.
        for i in 0..70u16 {
            q.push_le_bytes(&bytes(&[f32::from(i), f32::from(i) + 0.5]));
        }
        assert_eq!(q.dropped(), 16, "8 chunks of 2 samples went");
        let mut out = Vec::new();
        q.drain_into(&mut out);
        assert_eq!(out.len(), 124);
        assert_eq!(&out[..2], &[8.0, 8.5]);
        assert_eq!(&out[122..], &[69.0, 69.5]);
        q.push_le_bytes(&bytes(&[1.0]));
        q.clear();
        out.clear();
        q.drain_into(&mut out);
        assert!(out.is_empty());
    }
}
