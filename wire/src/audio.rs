//! Audio semantics: which way a device's sound flows, its PCM format, and one packet of
//! samples.
//!
//! Packets travel as QUIC datagrams: one packet is one datagram, never retransmitted, so a lost
//! one is concealed by the receiver instead of delaying those behind it. The format is fixed by
//! the catalog entry (never assumed); a packet only carries interleaved samples in it, with a
//! sequence number (gaps show losses) and the capture time of its first sample. Samples travel
//! as PCM on a LAN, or as one Opus frame per packet where bandwidth is scarce.

use crate::codec::{Reader, Writer};
use crate::error::WireError;
use crate::limits::{MAX_AUDIO_DATA, MAX_NAME};

/// Which way samples flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioDirection {
    /// A microphone: samples flow server -> client.
    Capture,
    /// A speaker: samples flow client -> server (read-write access needed).
    Playback,
}

impl AudioDirection {
    fn to_u8(self) -> u8 {
        match self {
            AudioDirection::Capture => 1,
            AudioDirection::Playback => 2,
        }
    }
    fn from_u8(v: u8) -> Result<Self, WireError> {
        match v {
            1 => Ok(AudioDirection::Capture),
            2 => Ok(AudioDirection::Playback),
            v => Err(WireError::BadValue {
                field: "audio_direction",
                value: v.into(),
            }),
        }
    }
}

impl std::fmt::Display for AudioDirection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AudioDirection::Capture => "capture",
            AudioDirection::Playback => "playback",
        })
    }
}

/// How samples are coded in a packet: PCM (little-endian, channels interleaved) or Opus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleFormat {
    /// Signed 16-bit integer PCM.
    S16,
    /// 32-bit IEEE float PCM, full scale +/-1.0.
    F32,
    /// One Opus frame (RFC 6716) per packet, of `packet_frames` frames.
    Opus,
}

impl SampleFormat {
    /// Bytes of one PCM sample of one channel; `None` for Opus (a compressed frame).
    pub fn pcm_bytes(self) -> Option<usize> {
        match self {
            SampleFormat::S16 => Some(2),
            SampleFormat::F32 => Some(4),
            SampleFormat::Opus => None,
        }
    }
    fn to_u8(self) -> u8 {
        match self {
            SampleFormat::S16 => 1,
            SampleFormat::F32 => 2,
            SampleFormat::Opus => 3,
        }
    }
    fn from_u8(v: u8) -> Result<Self, WireError> {
        match v {
            1 => Ok(SampleFormat::S16),
            2 => Ok(SampleFormat::F32),
            3 => Ok(SampleFormat::Opus),
            v => Err(WireError::BadValue {
                field: "sample_format",
                value: v.into(),
            }),
        }
    }
}

impl std::fmt::Display for SampleFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SampleFormat::S16 => "s16le",
            SampleFormat::F32 => "f32le",
            SampleFormat::Opus => "opus",
        })
    }
}

/// A PCM format: rate, channel count and sample coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AudioFormat {
    /// Frames per second (one frame = one sample of every channel).
    pub rate: u32,
    pub channels: u8,
    pub sample: SampleFormat,
}

impl AudioFormat {
    pub const ENCODED_LEN: usize = 4 + 1 + 1;
    /// Lowest rate accepted.
    pub const MIN_RATE: u32 = 8_000;
    /// Highest rate accepted.
    pub const MAX_RATE: u32 = 192_000;
    /// Most channels accepted.
    pub const MAX_CHANNELS: u8 = 8;

    /// Rates Opus codes at.
    pub const OPUS_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];

    /// Bytes of one PCM frame; `None` for Opus.
    pub fn pcm_frame_bytes(&self) -> Option<usize> {
        self.sample
            .pcm_bytes()
            .map(|b| b * usize::from(self.channels))
    }

    /// Whether `frames` is a frame length Opus codes at this rate (2.5 to 60 ms).
    pub fn is_opus_frame(&self, frames: usize) -> bool {
        [25u64, 50, 100, 200, 400, 600]
            .iter()
            .any(|tenths_ms| u64::from(self.rate) * tenths_ms / 10_000 == frames as u64)
    }

    /// Frames in `us` microseconds (rounded down).
    pub fn frames_in(&self, us: u64) -> usize {
        (u64::from(self.rate) * us / 1_000_000) as usize
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u32(self.rate);
        w.u8(self.channels);
        w.u8(self.sample.to_u8());
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let f = AudioFormat {
            rate: r.u32("rate")?,
            channels: r.u8("channels")?,
            sample: SampleFormat::from_u8(r.u8("sample_format")?)?,
        };
        f.validate()?;
        Ok(f)
    }

    /// A rate from [`Self::MIN_RATE`] to [`Self::MAX_RATE`], 1 to [`Self::MAX_CHANNELS`]
    /// channels.
    pub fn validate(&self) -> Result<(), WireError> {
        if !(Self::MIN_RATE..=Self::MAX_RATE).contains(&self.rate) {
            return Err(WireError::BadValue {
                field: "rate",
                value: self.rate.into(),
            });
        }
        if self.channels == 0 || self.channels > Self::MAX_CHANNELS {
            return Err(WireError::BadValue {
                field: "channels",
                value: self.channels.into(),
            });
        }
        if self.sample == SampleFormat::Opus {
            if !Self::OPUS_RATES.contains(&self.rate) {
                return Err(WireError::BadValue {
                    field: "opus_rate",
                    value: self.rate.into(),
                });
            }
            if self.channels > 2 {
                return Err(WireError::BadValue {
                    field: "opus_channels",
                    value: self.channels.into(),
                });
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} Hz {} ch {}", self.rate, self.channels, self.sample)
    }
}

/// An audio device's catalog settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSettings {
    pub direction: AudioDirection,
    /// The format samples travel in, both ways of the link.
    pub format: AudioFormat,
    /// Frames per packet the sender uses (the receiver needs no more than this per packet);
    /// for Opus, a frame length Opus codes (2.5, 5, 10, 20, 40 or 60 ms).
    pub packet_frames: u16,
}

impl AudioSettings {
    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u8(self.direction.to_u8());
        self.format.encode(w);
        w.u16(self.packet_frames);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let direction = AudioDirection::from_u8(r.u8("audio_direction")?)?;
        let format = AudioFormat::decode(r)?;
        let packet_frames = r.u16("packet_frames")?;
        let n = usize::from(packet_frames);
        let fits = match format.pcm_frame_bytes() {
            Some(b) => n > 0 && n * b <= MAX_AUDIO_DATA,
            None => format.is_opus_frame(n),
        };
        if !fits {
            return Err(WireError::BadValue {
                field: "packet_frames",
                value: packet_frames.into(),
            });
        }
        Ok(AudioSettings {
            direction,
            format,
            packet_frames,
        })
    }
}

/// One packet of interleaved samples of device `device`, in the device's catalog format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPacket {
    pub device: String,
    /// Counts every packet the sender produced, so a gap shows a loss.
    pub seq: u32,
    /// When the first sample was captured: microseconds since the Unix epoch, sender's clock.
    pub capture_us: u64,
    pub data: Vec<u8>,
}

impl AudioPacket {
    /// Bytes before the samples, with the longest device name.
    pub const MAX_HEADER: usize = 2 + MAX_NAME + 4 + 8 + 2;

    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.str(&self.device, MAX_NAME);
        w.u32(self.seq);
        w.u64(self.capture_us);
        let n = self.data.len().min(MAX_AUDIO_DATA);
        w.bytes16(&self.data[..n]);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(AudioPacket {
            device: r.name("device")?,
            seq: r.u32("seq")?,
            capture_us: r.u64("capture_us")?,
            data: r.bytes16("samples", MAX_AUDIO_DATA)?.to_vec(),
        })
    }

    /// Bytes this packet takes as one framed message (what a datagram must hold).
    pub fn framed_len(device: &str, data_len: usize) -> usize {
        crate::message::HEADER_LEN + 2 + device.len().min(MAX_NAME) + 4 + 8 + 2 + data_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    #[test]
    fn packet_round_trips_and_framed_len_is_exact() {
        let p = AudioPacket {
            device: "mic0".into(),
            seq: 7,
            capture_us: 1_700_000_000_000_000,
            data: vec![1, 2, 3, 4],
        };
        let bytes = Message::AudioPacket(p.clone()).to_bytes();
        assert_eq!(bytes.len(), AudioPacket::framed_len("mic0", 4));
        assert_eq!(Message::from_frame(&bytes), Ok(Message::AudioPacket(p)));
    }

    #[test]
    fn formats_out_of_range_are_refused() {
        for (rate, channels) in [(7_999, 1), (192_001, 1), (48_000, 0), (48_000, 9)] {
            let f = AudioFormat {
                rate,
                channels,
                sample: SampleFormat::S16,
            };
            assert!(f.validate().is_err(), "{rate} Hz {channels} ch accepted");
        }
    }

    #[test]
    fn opus_takes_its_rates_and_frame_lengths_only() {
        let opus = |rate, channels, frames| {
            let s = AudioSettings {
                direction: AudioDirection::Capture,
                format: AudioFormat {
                    rate,
                    channels,
                    sample: SampleFormat::Opus,
                },
                packet_frames: frames,
            };
            let mut blob = Vec::new();
            s.encode(&mut Writer(&mut blob));
            AudioSettings::decode(&mut Reader::new(0, &blob)).is_ok()
        };
        assert!(opus(48_000, 1, 480) && opus(48_000, 2, 960) && opus(16_000, 1, 40));
        assert!(!opus(44_100, 1, 441), "44.1 kHz is not an Opus rate");
        assert!(!opus(48_000, 3, 480), "Opus here is mono or stereo");
        assert!(
            !opus(48_000, 1, 500),
            "500 frames is not an Opus frame length"
        );
    }

    #[test]
    fn oversize_packet_frames_are_refused() {
        let s = AudioSettings {
            direction: AudioDirection::Capture,
            format: AudioFormat {
                rate: 48_000,
                channels: 8,
                sample: SampleFormat::F32,
            },
            packet_frames: 4096,
        };
        let mut blob = Vec::new();
        s.encode(&mut Writer(&mut blob));
        let err = AudioSettings::decode(&mut Reader::new(0, &blob));
        assert!(matches!(
            err,
            Err(WireError::BadValue {
                field: "packet_frames",
                ..
            })
        ));
    }
}
