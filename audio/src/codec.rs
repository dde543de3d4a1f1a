//! What a packet's bytes are, by the device's catalog format: PCM (S16 or F32, interleaved)
//! or one Opus frame. The sender's encoder, and the receiver's decoder, which also refuses what
//! a peer should not have sent (partial frames, too many frames, a frame that does not decode)
//! and conceals a lost Opus frame with Opus's own loss concealment.

use thiserror::Error;
use xoq_wire::AudioSettings;

use crate::pcm::{self, Pcm};

/// Opus bit rate per channel when the configuration gives none (transparent for speech, good
/// for music at 48 kHz).
pub const DEFAULT_OPUS_BITRATE: u32 = 64_000;

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("Opus: {0}")]
    Opus(String),
    #[error("bad packet: {0}")]
    BadPacket(String),
}

fn opus_channels(channels: u8) -> Result<opus::Channels, CodecError> {
    match channels {
        1 => Ok(opus::Channels::Mono),
        2 => Ok(opus::Channels::Stereo),
        n => Err(CodecError::Opus(format!(
            "{n} channels (Opus here is mono or stereo)"
        ))),
    }
}

fn opus_err(e: opus::Error) -> CodecError {
    CodecError::Opus(e.to_string())
}

/// Turns one packet's worth of samples into its bytes.
pub enum PacketEncoder {
    Pcm(Pcm),
    Opus {
        enc: Box<opus::Encoder>,
        buf: Vec<u8>,
    },
}

impl std::fmt::Debug for PacketEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PacketEncoder::Pcm(p) => write!(f, "PacketEncoder::Pcm({p:?})"),
            PacketEncoder::Opus { .. } => f.write_str("PacketEncoder::Opus"),
        }
    }
}

impl PacketEncoder {
    /// An encoder for `settings`; `bitrate` (bit/s per channel) applies to Opus.
    pub fn new(settings: &AudioSettings, bitrate: u32) -> Result<Self, CodecError> {
        let f = settings.format;
        if let Some(p) = Pcm::of(f.sample) {
            return Ok(PacketEncoder::Pcm(p));
        }
        let mut enc = opus::Encoder::new(
            f.rate,
            opus_channels(f.channels)?,
            opus::Application::LowDelay,
        )
        .map_err(opus_err)?;
        let total =
            i32::try_from(bitrate.saturating_mul(u32::from(f.channels))).unwrap_or(i32::MAX);
        enc.set_bitrate(opus::Bitrate::Bits(total))
            .map_err(opus_err)?;
        Ok(PacketEncoder::Opus {
            enc: Box::new(enc),
            // The largest Opus frame is 1275 bytes (a datagram carries it).
            buf: vec![0; 1275],
        })
    }

    /// Appends the coded `samples` (exactly one packet's frames for Opus) to `out`.
    pub fn encode(&mut self, samples: &[f32], out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self {
            PacketEncoder::Pcm(sample) => {
                pcm::encode(*sample, samples, out);
                Ok(())
            }
            PacketEncoder::Opus { enc, buf } => {
                let n = enc.encode_float(samples, buf).map_err(opus_err)?;
                out.extend_from_slice(&buf[..n]);
                Ok(())
            }
        }
    }
}

/// Turns a received packet's bytes back into samples, or says why it cannot.
pub enum PacketDecoder {
    Pcm {
        sample: Pcm,
        frame_bytes: usize,
        max_bytes: usize,
    },
    Opus {
        dec: Box<opus::Decoder>,
        frames: usize,
        channels: usize,
    },
}

impl PacketDecoder {
    pub fn new(settings: &AudioSettings) -> Result<Self, CodecError> {
        let f = settings.format;
        let frames = usize::from(settings.packet_frames);
        match (Pcm::of(f.sample), f.pcm_frame_bytes()) {
            (Some(sample), Some(frame_bytes)) => Ok(PacketDecoder::Pcm {
                sample,
                frame_bytes,
                max_bytes: frames * frame_bytes,
            }),
            _ => Ok(PacketDecoder::Opus {
                dec: Box::new(
                    opus::Decoder::new(f.rate, opus_channels(f.channels)?).map_err(opus_err)?,
                ),
                frames,
                channels: usize::from(f.channels),
            }),
        }
    }

    /// Appends the samples of one packet to `out`.
    pub fn decode(&mut self, data: &[u8], out: &mut Vec<f32>) -> Result<(), CodecError> {
        match self {
            PacketDecoder::Pcm {
                sample,
                frame_bytes,
                max_bytes,
            } => {
                if data.is_empty()
                    || data.len() > *max_bytes
                    || !data.len().is_multiple_of(*frame_bytes)
                {
                    return Err(CodecError::BadPacket(format!(
                        "{} bytes is not 1 to {} whole frames of {frame_bytes} bytes",
                        data.len(),
                        *max_bytes / *frame_bytes
                    )));
                }
                pcm::decode(*sample, data, out);
                Ok(())
            }
            PacketDecoder::Opus {
                dec,
                frames,
                channels,
            } => {
                if data.is_empty() {
                    return Err(CodecError::BadPacket("an empty Opus frame".into()));
                }
                let start = out.len();
                out.resize(start + *frames * *channels, 0.0);
                let r = dec.decode_float(data, &mut out[start..], false);
                match r {
                    Ok(n) if n == *frames => Ok(()),
                    other => {
                        out.truncate(start);
                        Err(CodecError::BadPacket(match other {
                            Ok(n) => format!("an Opus frame of {n} frames, not {frames}"),
                            Err(e) => format!("Opus: {e}"),
                        }))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Tone, ToneMeter};
    use xoq_wire::{AudioDirection, AudioFormat, SampleFormat};

    fn settings(sample: SampleFormat, channels: u8) -> AudioSettings {
        AudioSettings {
            direction: AudioDirection::Capture,
            format: AudioFormat {
                rate: 48_000,
                channels,
                sample,
            },
            packet_frames: 480,
        }
    }

    #[test]
    fn a_tone_survives_opus_with_its_frequency_and_level() {
        for channels in [1u8, 2] {
            let s = settings(SampleFormat::Opus, channels);
            let mut enc = PacketEncoder::new(&s, DEFAULT_OPUS_BITRATE).expect("encoder");
            let mut dec = PacketDecoder::new(&s).expect("decoder");
            let mut tone = Tone::new(440.0, 0.5, 48_000);
            let mut meter = ToneMeter::new(48_000);
            let c = usize::from(channels);
            let mut pcm = vec![0.0; 480 * c];
            let mut bytes = Vec::new();
            let mut out = Vec::new();
            let mut largest = 0;
            for i in 0..200 {
                tone.fill(&mut pcm, c);
                bytes.clear();
                enc.encode(&pcm, &mut bytes).expect("encode");
                largest = largest.max(bytes.len());
                out.clear();
                dec.decode(&bytes, &mut out).expect("decode");
                assert_eq!(out.len(), 480 * c);
                if i >= 20 {
                    meter.feed(&out, c);
                }
            }
            let f = meter.frequency().expect("frequency");
            let l = meter.level_dbfs().expect("level");
            assert!((f - 440.0).abs() < 0.5, "{channels} ch: {f} Hz");
            assert!(
                (l - tone.level_dbfs()).abs() < 1.0,
                "{channels} ch: {l} dBFS"
            );
            // 64 kbit/s per channel: 80 bytes per channel per 10 ms, give or take.
            assert!(largest < 200 * c, "{largest} bytes for 10 ms");
        }
    }

    #[test]
    fn garbage_and_wrong_sizes_are_refused() {
        let s = settings(SampleFormat::Opus, 1);
        let mut dec = PacketDecoder::new(&s).expect("decoder");
        let mut out = Vec::new();
        assert!(dec.decode(&[], &mut out).is_err());
        // A valid 20 ms frame where the catalog says 10 ms.
        let twenty = AudioSettings {
            packet_frames: 960,
            ..s
        };
        let mut enc = PacketEncoder::new(&twenty, DEFAULT_OPUS_BITRATE).expect("encoder");
        let mut bytes = Vec::new();
        enc.encode(&[0.1; 960], &mut bytes).expect("encode");
        assert!(dec.decode(&bytes, &mut out).is_err());
        assert!(out.is_empty());
        let mut pcm = PacketDecoder::new(&settings(SampleFormat::S16, 2)).expect("decoder");
        assert!(pcm.decode(&[0; 6], &mut out).is_err(), "1.5 frames");
        assert!(
            pcm.decode(&[0; 4 * 481], &mut out).is_err(),
            "too many frames"
        );
        assert!(pcm.decode(&[0; 8], &mut out).is_ok());
        assert_eq!(out.len(), 4);
    }
}
