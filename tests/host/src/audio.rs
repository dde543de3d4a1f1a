//! What the audio tests share: tone files to play, measurements of what was recorded, the
//! simulated speaker's record file and the mounter's status of a device.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use xoq_audio::{Tone, ToneMeter, WindowedFrequency};

use crate::{wav, Env};

/// The rate every audio test runs at.
pub const RATE: u32 = 48_000;

/// Frequency (the median of 100 ms windows) and level of `samples` after skipping `skip`
/// seconds. Glitches are the jitter buffers' counters' business; this checks the tone.
pub fn measure(samples: &[f32], skip: f64) -> (f64, f64) {
    let from = ((skip * f64::from(RATE)) as usize).min(samples.len());
    let mut m = ToneMeter::new(RATE);
    m.feed(&samples[from..], 1);
    (
        median_frequency(&samples[from..]),
        m.level_dbfs().unwrap_or(f64::NEG_INFINITY),
    )
}

/// The median of the frequencies of `samples` measured in 100 ms windows: one short glitch
/// (a gap, a skip) spoils one window, not the whole measure.
pub fn median_frequency(samples: &[f32]) -> f64 {
    let mut w = WindowedFrequency::new(RATE);
    w.feed(samples, 1);
    w.median().unwrap_or(0.0)
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
    let out = env.run("xoq-mount", "laptop", &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap_or("{}"))
        .unwrap_or_else(|e| panic!("status JSON: {e}: {out}"));
    let all = v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
    all.iter()
        .flat_map(|m| m["devices"].as_array().cloned().unwrap_or_default())
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no device {name} in {out}"))
}
