//! Measures what arrives: the frequency of a tone (from its rising zero crossings, located to a
//! fraction of a sample) and its RMS level, over everything fed since the last reset; and the
//! median of the frequencies of 100 ms windows, which one short glitch cannot move.

/// Running frequency and level of the first channel of a stream.
#[derive(Debug, Clone)]
pub struct ToneMeter {
    rate: f64,
    /// Frames seen so far.
    frames: u64,
    prev: f32,
    first_crossing: Option<f64>,
    last_crossing: f64,
    crossings: u64,
    sum_squares: f64,
    /// Ignore crossings of signals quieter than this (silence, dither).
    gate: f32,
}

impl ToneMeter {
    pub fn new(rate: u32) -> Self {
        ToneMeter {
            rate: f64::from(rate),
            frames: 0,
            prev: 0.0,
            first_crossing: None,
            last_crossing: 0.0,
            crossings: 0,
            sum_squares: 0.0,
            gate: 1e-3,
        }
    }

    /// Feeds interleaved frames of `channels`; only the first channel is measured.
    pub fn feed(&mut self, samples: &[f32], channels: usize) {
        for frame in samples.chunks_exact(channels.max(1)) {
            let s = frame[0];
            self.sum_squares += f64::from(s) * f64::from(s);
            if self.prev < 0.0 && s >= 0.0 && (s - self.prev) > self.gate {
                // Linear interpolation of where the signal crossed zero between the two samples.
                let t = self.frames as f64 - 1.0 + f64::from(-self.prev / (s - self.prev));
                if self.first_crossing.is_none() {
                    self.first_crossing = Some(t);
                } else {
                    self.crossings += 1;
                }
                self.last_crossing = t;
            }
            self.prev = s;
            self.frames += 1;
        }
    }

    /// Frames fed since the last reset.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The tone's frequency in Hz, once at least two periods were seen.
    pub fn frequency(&self) -> Option<f64> {
        let first = self.first_crossing?;
        (self.crossings >= 2)
            .then(|| self.crossings as f64 * self.rate / (self.last_crossing - first))
    }

    /// RMS level in dB relative to full scale; `None` before any frame.
    pub fn level_dbfs(&self) -> Option<f64> {
        (self.frames > 0).then(|| 10.0 * (self.sum_squares / self.frames as f64).log10())
    }

    /// Starts a new measurement.
    pub fn reset(&mut self) {
        *self = ToneMeter::new(self.rate as u32);
    }
}

/// The frequency of the first channel in windows of 100 ms, and their median.
#[derive(Debug, Clone)]
pub struct WindowedFrequency {
    window: ToneMeter,
    window_frames: u64,
    per_window: Vec<f64>,
}

impl WindowedFrequency {
    pub fn new(rate: u32) -> Self {
        WindowedFrequency {
            window: ToneMeter::new(rate),
            window_frames: u64::from(rate / 10).max(1),
            per_window: Vec::new(),
        }
    }

    /// Feeds interleaved frames of `channels`.
    pub fn feed(&mut self, samples: &[f32], channels: usize) {
        let per = self.window_frames as usize * channels.max(1);
        let mut rest = samples;
        while !rest.is_empty() {
            let room = (self.window_frames - self.window.frames()) as usize * channels.max(1);
            let (now, later) = rest.split_at(room.min(rest.len()).min(per));
            self.window.feed(now, channels);
            if self.window.frames() >= self.window_frames {
                if let Some(f) = self.window.frequency() {
                    self.per_window.push(f);
                }
                self.window.reset();
            }
            rest = later;
        }
    }

    /// The median of the whole windows' frequencies so far.
    pub fn median(&self) -> Option<f64> {
        let mut f = self.per_window.clone();
        f.sort_by(f64::total_cmp);
        f.get(f.len() / 2).copied()
    }

    pub fn reset(&mut self) {
        self.window.reset();
        self.per_window.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::Tone;

    #[test]
    fn measures_a_tone_exactly() {
        for (freq, amp) in [(440.0, 0.5), (1000.0, 0.25), (97.3, 0.9)] {
            let mut t = Tone::new(freq, amp, 48_000);
            let mut m = ToneMeter::new(48_000);
            let mut buf = vec![0.0; 2 * 480];
            for _ in 0..100 {
                t.fill(&mut buf, 2);
                m.feed(&buf, 2);
            }
            let f = m.frequency().expect("a frequency");
            assert!((f - freq).abs() < 0.05, "{freq}: measured {f}");
            let l = m.level_dbfs().expect("a level");
            assert!(
                (l - t.level_dbfs()).abs() < 0.05,
                "level {l} vs {}",
                t.level_dbfs()
            );
        }
    }

    #[test]
    fn silence_has_no_frequency() {
        let mut m = ToneMeter::new(48_000);
        m.feed(&[0.0; 4800], 1);
        assert_eq!(m.frequency(), None);
    }

    #[test]
    fn a_gap_moves_the_whole_measure_but_not_the_median() {
        let mut t = Tone::new(1000.0, 0.5, 48_000);
        let mut m = ToneMeter::new(48_000);
        let mut w = WindowedFrequency::new(48_000);
        let mut buf = vec![0.0; 480];
        for i in 0..100 {
            t.fill(&mut buf, 1);
            if i == 50 {
                buf.fill(0.0); // 10 ms lost
            }
            m.feed(&buf, 1);
            w.feed(&buf, 1);
        }
        let whole = m.frequency().expect("frequency");
        let median = w.median().expect("median");
        assert!((whole - 1000.0).abs() > 2.0, "{whole}");
        assert!((median - 1000.0).abs() < 0.1, "{median}");
    }
}
