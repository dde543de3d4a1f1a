//! What the audio tests share: tone files to play, measurements of what was recorded (the
//! pitch over every continuous stretch, and the junctions between them), the simulated
//! speaker's record and sample files and the mounter's status of a device.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use xoq_audio::{Tone, ToneMeter};

use crate::{wav, Env};

/// The rate every audio test runs at.
pub const RATE: u32 = 48_000;

/// A recording of a steady tone, taken apart: where the waveform jumps (a skip, a repeat, a
/// moment of silence: a *junction*) and the pitch over everything between them.
///
/// A zero-crossing count over a whole recording is not a pitch measure once it has junctions:
/// each one adds or removes a fraction of a crossing (a quarter on average), so a recording
/// with twenty junctions a second reads 1 % sharp although no stretch of it is. The pitch here
/// counts the crossings of each continuous stretch over that stretch's own duration, so a path
/// that resamples wrongly or drops samples inside a stretch still shows.
#[derive(Debug, Clone, Copy)]
pub struct ToneAnalysis {
    /// Crossings per second over the continuous stretches, in Hz.
    pub freq: f64,
    /// RMS level over the continuous stretches, dBFS (a gap is a junction, not a quieter tone).
    pub level_dbfs: f64,
    /// Places where the waveform is not the tone continued.
    pub junctions: usize,
    /// Seconds of recording covered by the continuous stretches.
    pub continuous_s: f64,
    pub seconds: f64,
}

impl std::fmt::Display for ToneAnalysis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.3} Hz at {:.2} dBFS over {:.2} of {:.2} s, {} junctions",
            self.freq, self.level_dbfs, self.continuous_s, self.seconds, self.junctions
        )
    }
}

/// Analyses `samples` (mono, at [`RATE`]) of a tone of about `nominal` Hz, from `skip` s on.
pub fn analyse_tone(samples: &[f32], nominal: f64, skip: f64) -> ToneAnalysis {
    let rate = f64::from(RATE);
    let x = &samples[((skip * rate) as usize).min(samples.len())..];
    // A sine obeys x[n] = 2 cos(w) x[n-1] - x[n-2]; where it does not (beyond 16-bit rounding
    // and codec noise), the waveform jumped.
    let c = 2.0 * (2.0 * std::f64::consts::PI * nominal / rate).cos();
    let broken: Vec<bool> = (0..x.len())
        .map(|i| {
            i >= 2 && {
                let (a, b, y) = (f64::from(x[i - 2]), f64::from(x[i - 1]), f64::from(x[i]));
                let quiet = a.abs().max(b.abs()).max(y.abs()) < 0.01;
                quiet || (y - (c * b - a)).abs() > 0.05
            }
        })
        .collect();
    // Junctions: runs of broken samples, those closer than 2 ms merged.
    let guard = (rate / 500.0) as usize;
    let broken_at: Vec<usize> = (2..x.len()).filter(|&i| broken[i]).collect();
    let mut stretches = Vec::new();
    let mut junctions = 0;
    let mut start = 2;
    let mut k = 0;
    while k < broken_at.len() {
        let first = broken_at[k];
        while k + 1 < broken_at.len() && broken_at[k + 1] - broken_at[k] <= guard {
            k += 1;
        }
        if first > 2 {
            junctions += 1;
        }
        stretches.push((start, first.saturating_sub(1)));
        start = (broken_at[k] + 1).min(x.len());
        k += 1;
    }
    stretches.push((start, x.len()));
    let (mut crossings, mut span) = (0.0, 0.0);
    let mut level = ToneMeter::new(RATE);
    for (a, b) in stretches {
        if b <= a {
            continue;
        }
        let mut m = ToneMeter::new(RATE);
        m.feed(&x[a..b], 1);
        if let Some(f) = m.frequency() {
            level.feed(&x[a..b], 1);
            // crossings - 1 periods between the first and the last crossing.
            let s = (b - a) as f64 / rate;
            crossings += f * s;
            span += s;
        }
    }
    ToneAnalysis {
        freq: if span > 0.0 { crossings / span } else { 0.0 },
        level_dbfs: level.level_dbfs().unwrap_or(f64::NEG_INFINITY),
        junctions,
        continuous_s: span,
        seconds: x.len() as f64 / rate,
    }
}

/// The samples the simulated speaker whose record is `record` played (its `.pcm` file).
pub fn speaker_samples(record: &Path) -> Vec<f32> {
    let mut name = record.as_os_str().to_owned();
    name.push(".pcm");
    std::fs::read(&name)
        .unwrap_or_default()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// One line of the simulated speaker's record, as key=value pairs.
pub fn record_lines(path: &Path) -> Vec<HashMap<String, f64>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
                .collect()
        })
        .collect()
}

pub fn tone_file(env: &Env, freq: f64, seconds: f64) -> PathBuf {
    let mut t = Tone::new(freq, 0.5, RATE);
    let mut samples = vec![0.0; (seconds * f64::from(RATE)) as usize];
    t.fill(&mut samples, 1);
    let path = env.path(&format!("tone{freq}.wav"));
    wav::write_s16(&path, RATE, &samples);
    path
}

/// The mounter's status of device `name` (from `xoq-mount status --json`).
pub fn status_of(env: &Env, name: &str) -> serde_json::Value {
    let v = env.mount_status("laptop");
    let all = v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
    all.iter()
        .flat_map(|m| m["devices"].as_array().cloned().unwrap_or_default())
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no device {name} in {v}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use xoq_audio::Tone;

    fn tone(seconds: f64) -> Vec<f32> {
        let mut v = vec![0.0; (seconds * f64::from(RATE)) as usize];
        Tone::new(440.0, 0.5, RATE).fill(&mut v, 1);
        v
    }

    #[test]
    fn skips_and_gaps_are_junctions_and_leave_the_pitch_alone() {
        let clean = analyse_tone(&tone(2.0), 440.0, 0.0);
        assert_eq!(clean.junctions, 0, "{clean}");
        assert!((clean.freq - 440.0).abs() < 0.05, "{clean}");
        // Twenty skips of a 256-frame quantum a second, and a 10 ms gap: a crossing count
        // over the whole would read sharp; the stretches do not.
        let mut v = Vec::new();
        for (i, chunk) in tone(2.2).chunks(2048).enumerate() {
            let keep = if i % 2 == 0 { 2048 - 256 } else { 2048 };
            v.extend_from_slice(&chunk[..keep.min(chunk.len())]);
        }
        v.splice(48_000..48_000, std::iter::repeat_n(0.0, 480));
        let a = analyse_tone(&v, 440.0, 0.0);
        assert!(a.junctions >= 20, "{a}");
        assert!((a.freq - 440.0).abs() < 0.2, "{a}");
        // A tone resampled 1 % fast reads 1 % sharp.
        let mut fast = vec![0.0; 96_000];
        Tone::new(444.4, 0.5, RATE).fill(&mut fast, 1);
        let f = analyse_tone(&fast, 440.0, 0.0);
        assert!((f.freq - 444.4).abs() < 0.1, "{f}");
    }
}
