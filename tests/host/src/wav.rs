//! The few WAV files the audio tests need: write a mono S16 tone, read a PCM recording back.

use std::path::Path;

/// Writes `samples` (mono, full scale 1.0) as a 16-bit WAV file.
pub fn write_s16(path: &Path, rate: u32, samples: &[f32]) {
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|s| ((s * 32767.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes())
        .collect();
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    std::fs::write(path, out).expect("write wav");
}

/// A WAV recording: rate, channels, and the samples of the first channel.
pub struct Recording {
    pub rate: u32,
    pub channels: u16,
    pub samples: Vec<f32>,
}

/// Reads a 16-bit PCM or 32-bit float WAV file. A `data` chunk whose size is not yet written
/// (a recorder that was stopped) runs to the end of the file.
pub fn read(path: &Path) -> Recording {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WAVE",
        "{} is not WAV",
        path.display()
    );
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let (mut rate, mut channels, mut bits, mut float) = (0, 0, 0, false);
    let mut i = 12;
    while i + 8 <= b.len() {
        let (id, len) = (&b[i..i + 4], u32_at(i + 4) as usize);
        let body = i + 8;
        if id == b"fmt " {
            float = u16_at(body) == 3;
            channels = u16_at(body + 2);
            rate = u32_at(body + 4);
            bits = u16_at(body + 14);
        } else if id == b"data" {
            let end = if len == 0 || body + len > b.len() {
                b.len()
            } else {
                body + len
            };
            let step = usize::from(channels) * usize::from(bits / 8);
            let samples = b[body..end]
                .chunks_exact(step)
                .map(|f| match (bits, float) {
                    (16, false) => f32::from(i16::from_le_bytes([f[0], f[1]])) / 32768.0,
                    (32, true) => f32::from_le_bytes([f[0], f[1], f[2], f[3]]),
                    other => panic!("unsupported WAV sample format {other:?}"),
                })
                .collect();
            return Recording {
                rate,
                channels,
                samples,
            };
        }
        i = body + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display())
}
