//! The `[[audio]]` tables of the server configuration and the `--mic`, `--speaker`,
//! `--sim-mic`, `--sim-speaker` shortcuts.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::Deserialize;
use xoq_wire::{AudioDirection, AudioFormat, SampleFormat};

/// One `[[audio]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioConfig {
    /// The name clients see, e.g. `mic0`.
    pub name: String,
    /// `"capture"` (a microphone) or `"playback"` (a speaker).
    pub direction: String,
    /// ALSA device, e.g. `"default"` or `"hw:1,0"`. Exactly one of `device` and `simulated`.
    pub device: Option<String>,
    /// A simulated microphone (a sine) or speaker (measures what it plays).
    #[serde(default)]
    pub simulated: bool,
    /// Sample rate; a real device uses its native rate when this is not given.
    pub rate: Option<u32>,
    /// Channel count; likewise.
    pub channels: Option<u8>,
    /// Audio per packet, in milliseconds (10 by default; fewer frames if a packet would not
    /// fit in one datagram).
    pub packet_ms: Option<u32>,
    /// Speaker: the jitter buffer's delay in milliseconds (20 by default).
    pub latency_ms: Option<u32>,
    /// Speaker: most the delay rises to while the link's jitter needs it (200 by default;
    /// `latency_max_ms = latency_ms` for a fixed delay).
    pub latency_max_ms: Option<u32>,
    /// How samples travel: `"pcm"` (default; 16-bit from cards) or `"opus"` (needs a rate of
    /// 8, 12, 16, 24 or 48 kHz, mono or stereo, and packets of 5, 10 or 20 ms).
    pub codec: Option<String>,
    /// Opus bit rate per channel, in bit/s (64000 by default).
    pub opus_bitrate: Option<u32>,
    /// Simulated microphone: the tone's frequency (440 Hz by default).
    pub tone_hz: Option<f64>,
    /// Simulated microphone: `"tone"` (default) or `"clicks"` (one click every 250 ms of the
    /// wall clock, for latency measurements).
    pub signal: Option<String>,
    /// Simulated devices: how far their clock is off, in parts per million.
    #[serde(default)]
    pub drift_ppm: f64,
    /// Simulated speaker: write a line of measurements per second to this file.
    pub record: Option<PathBuf>,
}

impl AudioConfig {
    pub const DEFAULT_PACKET_MS: u32 = 10;
    pub const DEFAULT_LATENCY_MS: u32 = 20;

    pub fn direction(&self) -> Result<AudioDirection> {
        match self.direction.as_str() {
            "capture" => Ok(AudioDirection::Capture),
            "playback" => Ok(AudioDirection::Playback),
            other => bail!(
                "audio `{}`: direction = \"{other}\" is unknown; use \"capture\" (a microphone) or \"playback\" (a speaker)",
                self.name
            ),
        }
    }

    /// The format of a simulated device: 48 kHz mono S16 unless configured.
    pub fn sim_format(&self) -> AudioFormat {
        AudioFormat {
            rate: self.rate.unwrap_or(48_000),
            channels: self.channels.unwrap_or(1),
            sample: SampleFormat::S16,
        }
    }

    /// Opus bit rate per channel if samples travel as Opus, `None` for PCM.
    pub fn opus_bitrate(&self) -> Option<u32> {
        (self.codec.as_deref() == Some("opus")).then(|| {
            self.opus_bitrate
                .unwrap_or(xoq_audio::codec::DEFAULT_OPUS_BITRATE)
        })
    }

    /// Whether a simulated microphone clicks instead of playing its tone.
    pub fn clicks(&self) -> bool {
        self.signal.as_deref() == Some("clicks")
    }

    pub fn packet_ms(&self) -> u32 {
        self.packet_ms.unwrap_or(Self::DEFAULT_PACKET_MS)
    }

    pub fn latency_ms(&self) -> u32 {
        self.latency_ms.unwrap_or(Self::DEFAULT_LATENCY_MS)
    }

    /// The speaker's jitter-buffer delay: `latency_ms`, adapting up to `latency_max_ms`.
    pub fn latency(&self) -> xoq_audio::Delay {
        xoq_audio::Delay {
            ms: self.latency_ms(),
            max_ms: self
                .latency_max_ms
                .unwrap_or(xoq_audio::Delay::DEFAULT_MAX_MS),
        }
    }

    /// A shortcut's table: `NAME` or, for a simulated speaker, `NAME=RECORD_FILE`
    /// (simulated), or `NAME=ALSA_DEVICE`.
    pub fn shortcut(spec: &str, direction: AudioDirection, simulated: bool) -> Result<Self> {
        let mut record = None;
        let (name, device) = if simulated {
            match spec.split_once('=') {
                Some((n, file)) if direction == AudioDirection::Playback => {
                    record = Some(PathBuf::from(file));
                    (n, None)
                }
                Some(_) => bail!("--sim-mic wants a NAME only, got `{spec}`"),
                None => (spec, None),
            }
        } else {
            let Some((n, d)) = spec.split_once('=') else {
                bail!("--mic and --speaker want NAME=ALSA_DEVICE (e.g. mic0=hw:1,0), got `{spec}`");
            };
            (n, Some(d.to_string()))
        };
        Ok(AudioConfig {
            name: name.into(),
            direction: direction.to_string(),
            device,
            simulated,
            rate: None,
            channels: None,
            packet_ms: None,
            latency_ms: None,
            latency_max_ms: None,
            tone_hz: None,
            codec: None,
            opus_bitrate: None,
            signal: None,
            drift_ppm: 0.0,
            record,
        })
    }

    pub fn validate(&self) -> Result<()> {
        let name = &self.name;
        self.direction()?;
        if self.device.is_some() == self.simulated {
            bail!("audio `{name}`: give `device = \"hw:1,0\"` or `simulated = true`, exactly one");
        }
        if self.simulated {
            if let Err(e) = self.sim_format().validate() {
                bail!("audio `{name}`: {e}");
            }
        }
        if !(1..=20).contains(&self.packet_ms()) {
            bail!("audio `{name}`: packet_ms must be 1 to 20");
        }
        if !(1..=1000).contains(&self.latency_ms()) {
            bail!("audio `{name}`: latency_ms must be 1 to 1000");
        }
        if !(1..=1000).contains(&self.latency().max_ms) {
            bail!("audio `{name}`: latency_max_ms must be 1 to 1000");
        }
        match self.codec.as_deref() {
            None | Some("pcm") => {}
            Some("opus") => {
                if ![5, 10, 20].contains(&self.packet_ms()) {
                    bail!("audio `{name}`: Opus packets are 5, 10 or 20 ms (packet_ms)");
                }
                if self.channels.is_some_and(|c| c > 2) {
                    bail!("audio `{name}`: Opus here is mono or stereo");
                }
                if let Some(r) = self.rate.filter(|r| !AudioFormat::OPUS_RATES.contains(r)) {
                    bail!("audio `{name}`: Opus codes at 8, 12, 16, 24 or 48 kHz, not {r} Hz");
                }
                if self
                    .opus_bitrate
                    .is_some_and(|b| !(6_000..=256_000).contains(&b))
                {
                    bail!("audio `{name}`: opus_bitrate must be 6000 to 256000 bit/s");
                }
            }
            Some(other) => {
                bail!("audio `{name}`: codec \"{other}\" is unknown; use \"pcm\" or \"opus\"")
            }
        }
        if !matches!(self.signal.as_deref(), None | Some("tone") | Some("clicks")) {
            bail!("audio `{name}`: signal must be \"tone\" or \"clicks\"");
        }
        if self.drift_ppm.abs() > 10_000.0 {
            bail!("audio `{name}`: drift_ppm must be within +/-10000");
        }
        Ok(())
    }
}
