//! A phase-continuous sine: the simulated microphone's signal and the tests' reference.

/// A sine of `freq` Hz at `amplitude` (full scale 1.0), the same on every channel.
#[derive(Debug, Clone)]
pub struct Tone {
    pub freq: f64,
    pub amplitude: f32,
    rate: f64,
    phase: f64,
}

impl Tone {
    pub fn new(freq: f64, amplitude: f32, rate: u32) -> Self {
        Tone {
            freq,
            amplitude,
            rate: f64::from(rate),
            phase: 0.0,
        }
    }

    /// Fills `out` (interleaved, `channels` per frame) with the next frames.
    pub fn fill(&mut self, out: &mut [f32], channels: usize) {
        let step = std::f64::consts::TAU * self.freq / self.rate;
        for frame in out.chunks_mut(channels.max(1)) {
            let v = self.amplitude * self.phase.sin() as f32;
            frame.fill(v);
            self.phase = (self.phase + step) % std::f64::consts::TAU;
        }
    }

    /// The level of this tone in dB relative to full scale (RMS of a full-scale sine = -3 dB).
    pub fn level_dbfs(&self) -> f64 {
        20.0 * (f64::from(self.amplitude) / std::f64::consts::SQRT_2).log10()
    }
}
