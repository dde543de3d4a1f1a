//! Reads interleaved frames out of a queue at an adjustable ratio, interpolating between
//! frames (cubic, Catmull-Rom). A ratio above 1 consumes input faster than it produces output.

use std::collections::VecDeque;

/// Fractional read position into a queue of frames. Frame 0 of the queue is kept as history
/// for the interpolation; the position never goes below 1.
#[derive(Debug, Clone)]
pub struct Interpolator {
    channels: usize,
    /// Position of the next output frame, in frames from the front of the queue.
    pos: f64,
}

impl Interpolator {
    pub fn new(channels: usize) -> Self {
        Interpolator {
            channels: channels.max(1),
            pos: 1.0,
        }
    }

    /// Frames in `queue` not yet read (fractional).
    pub fn available(&self, queue: &VecDeque<f32>) -> f64 {
        (queue.len() / self.channels) as f64 - self.pos
    }

    /// Whether one more output frame can be made from `queue` at `ratio` (the interpolation
    /// needs two frames past the position).
    pub fn can_read(&self, queue: &VecDeque<f32>) -> bool {
        (self.pos.floor() as usize) + 3 <= queue.len() / self.channels
    }

    /// Writes one interpolated frame into `out` and advances by `ratio`. Call only when
    /// [`Self::can_read`] is true.
    pub fn read(&mut self, queue: &VecDeque<f32>, ratio: f64, out: &mut [f32]) {
        let i = self.pos.floor() as usize;
        let t = (self.pos - i as f64) as f32;
        let c = self.channels;
        for (ch, o) in out.iter_mut().enumerate().take(c) {
            let p0 = queue[(i - 1) * c + ch];
            let p1 = queue[i * c + ch];
            let p2 = queue[(i + 1) * c + ch];
            let p3 = queue[(i + 2) * c + ch];
            *o = p1
                + 0.5
                    * t
                    * (p2 - p0
                        + t * (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3
                            + t * (3.0 * (p1 - p2) + p3 - p0)));
        }
        self.pos += ratio;
    }

    /// Drops the frames already read from the front of `queue`, keeping one as history.
    pub fn trim(&mut self, queue: &mut VecDeque<f32>) {
        let whole = (self.pos.floor() as usize).saturating_sub(1);
        let n = whole.min(queue.len() / self.channels);
        queue.drain(..n * self.channels);
        self.pos -= n as f64;
    }

    /// Skips `frames` unread frames (to shed excess delay).
    pub fn skip(&mut self, queue: &mut VecDeque<f32>, frames: usize) {
        self.pos += frames as f64;
        self.trim(queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_one_reproduces_the_input() {
        let q: VecDeque<f32> = (0..10).map(|v| v as f32).collect();
        let mut r = Interpolator::new(1);
        let mut out = [0.0];
        let mut got = Vec::new();
        while r.can_read(&q) {
            r.read(&q, 1.0, &mut out);
            got.push(out[0]);
        }
        assert_eq!(got, (1..8).map(|v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn a_ramp_is_interpolated_exactly_at_any_ratio() {
        // Catmull-Rom is exact on straight lines.
        let mut q: VecDeque<f32> = (0..200).flat_map(|v| [v as f32, -(v as f32)]).collect();
        let mut r = Interpolator::new(2);
        let mut out = [0.0; 2];
        let mut expected = 1.0;
        while r.can_read(&q) {
            r.read(&q, 1.37, &mut out);
            assert!((out[0] - expected).abs() < 1e-3, "{} vs {expected}", out[0]);
            assert!((out[1] + expected).abs() < 1e-3);
            expected += 1.37;
        }
        r.trim(&mut q);
        assert!(
            q.len() / 2 <= 4,
            "read frames were not dropped: {}",
            q.len() / 2
        );
    }
}
