//! The clock drift a jitter buffer corrects, learnt from how fast its depth moves, in a way
//! that steps of the depth cannot teach.
//!
//! The depth moves at `rate * (drift - correction)` frames a second, where `drift` is how much
//! faster the sender's clock runs than the consumer's and `correction` how much faster than
//! nominal the buffer is read. So every segment of a couple of seconds, the slope between the
//! mean depths of two consecutive segments, plus the mean correction applied meanwhile, is one
//! measurement of the drift. A stall of either end is a step, not a slope: it spoils the one or
//! two measurements whose segments it falls in, and the estimate is the median of the last
//! measurements, which a few spoilt ones do not move. (A PI controller's integral learns every
//! step it is shown as drift: a busy host that stalls every few seconds kept it hundreds of
//! ppm off.)

use std::collections::VecDeque;

/// Length of one segment, in seconds of the consumer's time.
const SEGMENT_SECONDS: f64 = 2.0;
/// Measurements the median is taken over (half a minute).
const MEASUREMENTS: usize = 15;
/// Measurements before there is an estimate: one spoilt measurement alone is not learnt.
const MIN_MEASUREMENTS: usize = 3;

#[derive(Debug, Clone, Default)]
pub struct DriftEstimator {
    /// The segment being measured: time-weighted sums of depth and correction, and its length.
    depth_sum: f64,
    correction_sum: f64,
    secs: f64,
    /// The previous whole segment's mean depth and mean correction.
    previous: Option<(f64, f64)>,
    measurements: VecDeque<f64>,
    estimate: Option<f64>,
}

impl DriftEstimator {
    pub fn new() -> Self {
        Self::default()
    }

    /// One depth measure (frames) that held for `dt` seconds while the buffer was read
    /// `correction` faster than nominal (a ratio minus 1), at `rate` frames a second.
    pub fn sample(&mut self, depth: f64, correction: f64, dt: f64, rate: f64) {
        self.depth_sum += depth * dt;
        self.correction_sum += correction * dt;
        self.secs += dt;
        if self.secs < SEGMENT_SECONDS {
            return;
        }
        let mean = (self.depth_sum / self.secs, self.correction_sum / self.secs);
        if let Some((depth0, correction0)) = self.previous {
            let drift = (mean.0 - depth0) / (self.secs * rate) + (mean.1 + correction0) / 2.0;
            if self.measurements.len() == MEASUREMENTS {
                self.measurements.pop_front();
            }
            self.measurements.push_back(drift);
            let mut sorted: Vec<f64> = self.measurements.iter().copied().collect();
            sorted.sort_by(f64::total_cmp);
            if sorted.len() >= MIN_MEASUREMENTS {
                self.estimate = Some(sorted[sorted.len() / 2]);
            }
        }
        self.previous = Some(mean);
        self.depth_sum = 0.0;
        self.correction_sum = 0.0;
        self.secs = 0.0;
    }

    /// The depth was moved (a realignment, a restart): the segment in progress and the one
    /// before it no longer compare. What was learnt stays.
    pub fn interrupt(&mut self) {
        self.previous = None;
        self.depth_sum = 0.0;
        self.correction_sum = 0.0;
        self.secs = 0.0;
    }

    /// The drift learnt so far (sender faster: positive), once there is a measurement.
    pub fn estimate(&self) -> Option<f64> {
        self.estimate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: f64 = 48_000.0;

    /// Feeds `seconds` of a depth that moves at `drift - correction`, from `depth`, in 5 ms
    /// pulls; returns the depth reached.
    fn run(
        e: &mut DriftEstimator,
        mut depth: f64,
        drift: f64,
        correction: f64,
        seconds: f64,
    ) -> f64 {
        let dt = 0.005;
        for _ in 0..(seconds / dt) as usize {
            e.sample(depth, correction, dt, RATE);
            depth += RATE * (drift - correction) * dt;
        }
        depth
    }

    #[test]
    fn a_steady_drift_is_learnt_whatever_the_correction() {
        let mut e = DriftEstimator::new();
        assert_eq!(e.estimate(), None);
        let d = run(&mut e, 960.0, 150e-6, 0.0, 10.0);
        run(&mut e, d, 150e-6, 400e-6, 10.0);
        let est = e.estimate().expect("an estimate");
        assert!((est - 150e-6).abs() < 1e-6, "{est}");
    }

    #[test]
    fn steps_in_the_depth_are_not_learnt() {
        let mut e = DriftEstimator::new();
        let mut depth = run(&mut e, 960.0, 100e-6, 0.0, 30.0);
        // Every 7 s a step, all one way (a consumer that keeps losing time): large ones the
        // buffer sees and says so (an interruption), small ones (1 ms) it does not.
        for i in 0..12 {
            if i % 2 == 0 {
                depth += 960.0;
                e.interrupt();
            } else {
                depth += 48.0;
            }
            depth = run(&mut e, depth, 100e-6, 0.0, 7.0);
        }
        let est = e.estimate().expect("an estimate");
        assert!((est - 100e-6).abs() < 5e-6, "{est}");
    }

    #[test]
    fn an_interruption_keeps_what_was_learnt() {
        let mut e = DriftEstimator::new();
        let d = run(&mut e, 960.0, -80e-6, 0.0, 20.0);
        e.interrupt();
        run(&mut e, d + 5000.0, -80e-6, 0.0, 1.0);
        let est = e.estimate().expect("an estimate");
        assert!((est + 80e-6).abs() < 1e-6, "{est}");
    }
}
