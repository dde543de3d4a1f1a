//! A microphone on the relay, in the players' format (`xoq_moq::media`: hang's catalog and
//! Opus frames, read by `@moq/watch` and by `xoq-mount`): the broadcast `dev` has `info` (its
//! `Opened`, describing the Opus stream the relay carries), `catalog.json` and `audio`, one
//! group per packet numbered by the packet's sequence number. An Opus packet decodes on its
//! own, so a lost or late one never holds up the next, and a subscriber conceals exactly the
//! numbers that are missing. A microphone that sends PCM over iroh is encoded to Opus for the
//! relay (20 ms packets); one that already sends Opus is passed on as it is. Speakers are not
//! carried by relays (nothing on a relay plays into the robot).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use moq_net::Timestamp;
use tokio::sync::broadcast::error::RecvError;
use xoq_audio::codec::{PacketDecoder, PacketEncoder, DEFAULT_OPUS_BITRATE};
use xoq_audio::Packetizer;
use xoq_moq::media;
use xoq_moq::tracks::MessageTrack;
use xoq_wire::{Access, AudioDirection, AudioPacket, AudioSettings, DeviceSettings, SampleFormat};

use crate::audio::AudioDevice;

/// The span of a packet the relay's encoder makes.
const RELAY_PACKET: Duration = Duration::from_millis(20);

/// One microphone's broadcast.
pub struct AudioBroadcast {
    name: String,
    audio: PacketTrack,
    recoder: Option<Recoder>,
    _catalog: moq_net::track::Producer,
    _info: MessageTrack,
    _broadcast: moq_net::broadcast::Producer,
}

/// The `audio` track: one packet per group, numbered by the packet.
struct PacketTrack {
    track: moq_net::track::Producer,
    /// The last packet's number, and the group sequence it was given (numbers wrap, groups
    /// do not).
    last: Option<(u32, u64)>,
}

impl PacketTrack {
    /// One packet as one group (a repeated or older number is dropped).
    fn write(&mut self, p: &AudioPacket) -> Result<()> {
        let sequence = match self.last {
            None => u64::from(p.seq),
            Some((seq, group)) => match p.seq.wrapping_sub(seq) {
                0 => return Ok(()),
                step if step > u32::MAX / 2 => return Ok(()),
                step => group + u64::from(step),
            },
        };
        self.last = Some((p.seq, sequence));
        let frame = media::encode_frame(p.capture_us, &p.data)?;
        let mut g = self.track.create_group(moq_net::group::Info { sequence })?;
        g.write_frame(Timestamp::from_micros(p.capture_us)?, frame)?;
        g.finish()?;
        Ok(())
    }
}

/// PCM from the microphone, to Opus for the relay.
struct Recoder {
    decoder: PacketDecoder,
    packer: Packetizer,
    samples: Vec<f32>,
    ready: Vec<AudioPacket>,
    /// Samples in one of the microphone's packets (silence for those it missed).
    wire_samples: usize,
}

/// What the relay carries of a microphone sending `wire`: the same if it is Opus, else Opus
/// at the same rate and channels in packets of RELAY_PACKET (with what re-encodes it).
fn relay_settings(name: &str, wire: AudioSettings) -> Result<(AudioSettings, Option<Recoder>)> {
    if wire.format.sample == SampleFormat::Opus {
        return Ok((wire, None));
    }
    let mut format = wire.format;
    format.sample = SampleFormat::Opus;
    if let Err(e) = format.validate() {
        bail!(
            "microphone `{name}` ({}) cannot travel as Opus ({e}); relays carry Opus: set its \
             `rate` to 8000, 12000, 16000, 24000 or 48000",
            wire.format
        );
    }
    let frames = format.frames_in(RELAY_PACKET.as_micros() as u64);
    let relay = AudioSettings {
        direction: AudioDirection::Capture,
        format,
        packet_frames: u16::try_from(frames).context("packet size")?,
    };
    let encoder = PacketEncoder::new(&relay, DEFAULT_OPUS_BITRATE)?;
    let recoder = Recoder {
        decoder: PacketDecoder::new(&wire)?,
        packer: Packetizer::new(name, &relay, encoder),
        samples: Vec::new(),
        ready: Vec::new(),
        wire_samples: usize::from(wire.packet_frames) * usize::from(wire.format.channels),
    };
    Ok((relay, Some(recoder)))
}

impl AudioBroadcast {
    /// Announces the microphone `dev`; a speaker, or a microphone Opus cannot carry, is an
    /// error (not published).
    pub fn start(origin: &moq_net::origin::Producer, dev: &AudioDevice) -> Result<Self> {
        let wire = dev.settings();
        if wire.direction != AudioDirection::Capture {
            bail!("speakers are not carried by relays (microphones are)");
        }
        let (settings, recoder) = relay_settings(&dev.name, wire)?;
        let broadcast = origin.create_broadcast(dev.name.as_str())?;
        let mut described = dev.info(Access::ReadOnly);
        described.settings = DeviceSettings::Audio(settings);
        let info = super::describe(&broadcast, described)?;
        let format = settings.format;
        let packet_us = u64::from(settings.packet_frames) * 1_000_000 / u64::from(format.rate);
        let bitrate = DEFAULT_OPUS_BITRATE * u32::from(format.channels);
        let catalog_bytes = media::audio_catalog(format.rate, format.channels, bitrate, packet_us)?;
        let catalog = broadcast.create_track(media::CATALOG_TRACK, media::catalog_track_info())?;
        let mut g = catalog.append_group()?;
        g.write_frame(Timestamp::now(), catalog_bytes)?;
        g.finish()?;
        let audio = broadcast.create_track(media::AUDIO_TRACK, media::audio_track_info())?;
        broadcast.announce(Default::default())?;
        Ok(Self {
            name: dev.name.clone(),
            audio: PacketTrack {
                track: audio,
                last: None,
            },
            recoder,
            _catalog: catalog,
            _info: info,
            _broadcast: broadcast,
        })
    }

    /// Publishes the microphone's packets until its thread stops.
    pub async fn run(mut self, dev: Arc<AudioDevice>) {
        let mut att = match dev.attach(Access::ReadOnly) {
            Ok(a) => a,
            Err((_, text)) => {
                tracing::warn!(device = %self.name, "not published on the relay: {text}");
                return;
            }
        };
        let Some(mut packets) = att.packets.take() else {
            return;
        };
        tracing::info!(device = %self.name, "microphone published on the relay");
        loop {
            let r = match packets.recv().await {
                Ok(p) => self.publish(&p.packet),
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(device = %self.name, packets = n, "relay publisher fell behind the microphone");
                    self.missed(n)
                }
                Err(RecvError::Closed) => return,
            };
            if let Err(e) = r {
                tracing::warn!(device = %self.name, "relay audio track: {e:#}");
                return;
            }
        }
    }

    fn publish(&mut self, p: &AudioPacket) -> Result<()> {
        let Some(r) = &mut self.recoder else {
            return self.audio.write(p);
        };
        r.samples.clear();
        r.decoder.decode(&p.data, &mut r.samples)?;
        r.packer.push(&r.samples, p.capture_us, &mut r.ready)?;
        for q in r.ready.drain(..) {
            self.audio.write(&q)?;
        }
        Ok(())
    }

    /// `n` of the microphone's packets never reached this publisher: their numbers are
    /// missing on the track (the subscriber conceals them). Re-encoded, the packets they
    /// would have made are skipped, so those after them keep their place in time.
    fn missed(&mut self, n: u64) -> Result<()> {
        let Some(r) = &mut self.recoder else {
            return Ok(());
        };
        let silence = vec![0.0; r.wire_samples];
        let capture_us = xoq_link::clock::unix_now_us();
        for _ in 0..n.min(100) {
            r.packer.push(&silence, capture_us, &mut r.ready)?;
        }
        r.ready.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xoq_wire::AudioFormat;

    fn mic(sample: SampleFormat, rate: u32, packet_frames: u16) -> AudioSettings {
        AudioSettings {
            direction: AudioDirection::Capture,
            format: AudioFormat {
                rate,
                channels: 1,
                sample,
            },
            packet_frames,
        }
    }

    #[test]
    fn pcm_becomes_20_ms_opus_and_opus_passes_as_it_is() {
        let (s, r) = relay_settings("mic0", mic(SampleFormat::S16, 48_000, 480)).expect("ok");
        assert_eq!(s.format.sample, SampleFormat::Opus);
        assert_eq!((s.format.rate, s.packet_frames), (48_000, 960));
        assert!(r.is_some());
        let opus = mic(SampleFormat::Opus, 48_000, 480);
        let (s, r) = relay_settings("mic0", opus).expect("ok");
        assert_eq!(s, opus);
        assert!(r.is_none());
        let err = relay_settings("mic0", mic(SampleFormat::S16, 44_100, 441))
            .err()
            .expect("44.1 kHz is no Opus rate");
        assert!(err.to_string().contains("set its `rate`"), "{err}");
    }

    #[test]
    fn re_encoding_keeps_the_packets_place_in_time() {
        let (relay, r) = relay_settings("mic0", mic(SampleFormat::F32, 48_000, 240)).expect("ok");
        let mut r = r.expect("re-encodes");
        let mut tone = xoq_audio::Tone::new(440.0, 0.5, 48_000);
        let mut out = Vec::new();
        let mut enc = PacketEncoder::new(&mic(SampleFormat::F32, 48_000, 240), 0).expect("pcm");
        for i in 0..8u64 {
            let mut samples = vec![0.0; 240];
            tone.fill(&mut samples, 1);
            let mut data = Vec::new();
            enc.encode(&samples, &mut data).expect("pcm");
            r.samples.clear();
            r.decoder.decode(&data, &mut r.samples).expect("decode");
            r.packer
                .push(&r.samples, 1_000_000 + i * 5_000, &mut out)
                .expect("push");
        }
        // 8 packets of 5 ms are two of 20 ms, numbered 0 and 1, 20 ms apart.
        assert_eq!(out.len(), 2);
        assert_eq!(relay.packet_frames, 960);
        assert_eq!((out[0].seq, out[0].capture_us), (0, 1_000_000));
        assert_eq!((out[1].seq, out[1].capture_us), (1, 1_020_000));
        let mut dec = PacketDecoder::new(&relay).expect("opus");
        let mut pcm = Vec::new();
        dec.decode(&out[1].data, &mut pcm).expect("opus decodes");
        assert_eq!(pcm.len(), 960);
    }
}
