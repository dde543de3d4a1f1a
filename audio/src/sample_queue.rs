//! A bounded, lock-free queue of sample chunks between a real-time audio thread and a task,
//! either way round: neither side ever waits, a full queue drops its oldest chunk, and the
//! chunks' vectors are handed back for reuse so that steady operation allocates nothing.

use crossbeam_queue::ArrayQueue;

/// Chunks of interleaved samples, each with a little metadata `M` (a sequence number, an
/// arrival time, or nothing).
pub struct SampleQueue<M> {
    chunks: ArrayQueue<(M, Vec<f32>)>,
    /// Vectors the consumer is done with, for the producer to fill again.
    spare: ArrayQueue<Vec<f32>>,
}

impl<M> SampleQueue<M> {
    /// Room for `capacity` chunks (at least one), their vectors allocated on first use.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        SampleQueue {
            chunks: ArrayQueue::new(capacity),
            spare: ArrayQueue::new(capacity),
        }
    }

    /// Queues a chunk that `fill` writes into an empty vector. When the queue is full its
    /// oldest chunk goes: returns how many samples that chunk held.
    pub fn push(&self, meta: M, fill: impl FnOnce(&mut Vec<f32>)) -> Option<usize> {
        let mut v = self.spare.pop().unwrap_or_default();
        v.clear();
        fill(&mut v);
        let (_, old) = self.chunks.force_push((meta, v))?;
        let dropped = old.len();
        self.recycle(old);
        Some(dropped)
    }

    /// Hands the oldest chunk to `take`; false when the queue is empty.
    pub fn pop_with(&self, take: impl FnOnce(M, &[f32])) -> bool {
        let Some((meta, v)) = self.chunks.pop() else {
            return false;
        };
        take(meta, &v);
        self.recycle(v);
        true
    }

    /// Forgets every waiting chunk.
    pub fn clear(&self) {
        while self.pop_with(|_, _| {}) {}
    }

    fn recycle(&self, v: Vec<f32>) {
        // Full only if the producer allocated while the pool was empty: that vector goes.
        let _ = self.spare.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_come_out_in_order_and_a_full_queue_drops_the_oldest() {
        let q = SampleQueue::new(3);
        for i in 0..5u32 {
            let dropped = q.push(i, |v| v.extend([i as f32; 2]));
            assert_eq!(dropped, (i >= 3).then_some(2), "push {i}");
        }
        let mut out = Vec::new();
        while q.pop_with(|i, s| out.push((i, s.to_vec()))) {}
        assert_eq!(
            out,
            vec![(2, vec![2.0; 2]), (3, vec![3.0; 2]), (4, vec![4.0; 2])]
        );
        q.push(9, |v| v.push(1.0));
        q.clear();
        assert!(!q.pop_with(|_, _| {}));
    }
}
