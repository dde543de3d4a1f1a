//! Wire PCM to and from `f32` samples in [-1, 1]. Interleaved; little-endian on the wire.

use xoq_wire::SampleFormat;

/// A PCM sample coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pcm {
    S16,
    F32,
}

impl Pcm {
    /// The PCM coding of a wire sample format; `None` for Opus.
    pub fn of(format: SampleFormat) -> Option<Pcm> {
        match format {
            SampleFormat::S16 => Some(Pcm::S16),
            SampleFormat::F32 => Some(Pcm::F32),
            SampleFormat::Opus => None,
        }
    }
}

/// Appends the samples coded in `bytes` to `out`. A trailing partial sample is ignored (callers
/// check that packets hold whole frames).
pub fn decode(format: Pcm, bytes: &[u8], out: &mut Vec<f32>) {
    match format {
        Pcm::S16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0),
        ),
        Pcm::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
    }
}

/// Appends `samples` to `out` in `format`; values beyond full scale are clipped.
pub fn encode(format: Pcm, samples: &[f32], out: &mut Vec<u8>) {
    match format {
        Pcm::S16 => {
            for s in samples {
                let v = (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Pcm::F32 => {
            for s in samples {
                let v = if s.is_finite() {
                    s.clamp(-1.0, 1.0)
                } else {
                    0.0
                };
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s16_round_trips_within_one_step_and_clips() {
        let v = [0.0, 0.5, -0.5, 0.999, -1.0, 2.0, -2.0];
        let mut b = Vec::new();
        encode(Pcm::S16, &v, &mut b);
        let mut back = Vec::new();
        decode(Pcm::S16, &b, &mut back);
        assert_eq!(back.len(), v.len());
        for (a, b) in v.iter().zip(&back) {
            assert!(
                (a.clamp(-1.0, 32767.0 / 32768.0) - b).abs() <= 1.0 / 32768.0,
                "{a} {b}"
            );
        }
    }

    #[test]
    fn f32_round_trips_and_drops_nan() {
        let v = [0.25, -0.75, f32::NAN];
        let mut b = Vec::new();
        encode(Pcm::F32, &v, &mut b);
        let mut back = Vec::new();
        decode(Pcm::F32, &b, &mut back);
        assert_eq!(back, vec![0.25, -0.75, 0.0]);
    }
}
