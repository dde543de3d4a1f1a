//! One served microphone or speaker.
//!
//! A microphone's thread captures continuously, cuts what it hears into packets and fans each
//! out, already encoded as a datagram, to every client listening. A speaker's thread plays
//! from a jitter buffer at the speaker's own clock; the one read-write client feeds that
//! buffer. With nobody sending, the speaker plays silence.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast;
use xoq_audio::codec::{CodecError, PacketDecoder, PacketEncoder};
use xoq_audio::{JitterConfig, Packetizer, PlayoutFeed};
use xoq_link::clock::monotonic_us;
use xoq_link::sync::lock;
use xoq_wire::{
    Access, AudioDirection, AudioFormat, AudioPacket, AudioSettings, DeviceInfo, DeviceKind,
    DeviceSettings, ErrorCode, SampleFormat,
};

use super::backend::{Fill, Microphone, Speaker};

/// Packets buffered per client before it starts losing them (a tenth of a second).
const FANOUT_DEPTH: usize = 10;
/// Largest datagram we send: fits the smallest path QUIC allows (1200-byte UDP payloads) with
/// room for its own headers.
pub const MAX_DATAGRAM: usize = 1100;
/// Wait before reopening a device that failed.
const RETRY: Duration = Duration::from_secs(2);

/// Frames per packet: `packet_ms` worth, fewer if PCM would not fit one datagram (an Opus
/// frame always does; its length is checked with the configuration).
pub fn packet_frames(name: &str, format: &AudioFormat, packet_ms: u32) -> u16 {
    let wanted = format.frames_in(u64::from(packet_ms) * 1000);
    let room = match format.pcm_frame_bytes() {
        Some(b) => MAX_DATAGRAM.saturating_sub(AudioPacket::framed_len(name, 0)) / b,
        None => wanted,
    };
    wanted.min(room).clamp(1, usize::from(u16::MAX)) as u16
}

/// How a device's samples travel: `opus_bitrate` (bit/s per channel) sends Opus frames,
/// `None` PCM in the backend's format.
fn wire_format(mut format: AudioFormat, opus_bitrate: Option<u32>) -> std::io::Result<AudioFormat> {
    if opus_bitrate.is_some() {
        format.sample = SampleFormat::Opus;
    }
    format.validate().map_err(|e| {
        std::io::Error::other(format!(
            "{format} cannot travel ({e}); Opus takes 8, 12, 16, 24 or 48 kHz (set `rate`), mono or stereo"
        ))
    })?;
    Ok(format)
}

/// One microphone packet, and its datagram (the same bytes for every iroh client).
pub struct MicPacket {
    pub packet: AudioPacket,
    pub datagram: Bytes,
}

/// One served audio device.
pub struct AudioDevice {
    pub name: String,
    describe: String,
    settings: AudioSettings,
    /// Microphone: every packet.
    packets: broadcast::Sender<Arc<MicPacket>>,
    /// Speaker: feeds the jitter buffer its playing thread owns.
    jitter: Option<PlayoutFeed>,
    /// Speaker: a client is feeding it.
    held: AtomicBool,
    /// Speaker: where each packet's arrival is reported (the simulated speaker's record).
    arrivals: Option<SyncSender<Arrival>>,
}

/// One packet a speaker received: its sequence number, when it was captured (sender's clock)
/// and when it arrived (ours), µs since the epoch.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub seq: u32,
    pub capture_us: u64,
    pub arrival_us: u64,
}

impl AudioDevice {
    fn new(
        name: String,
        describe: String,
        settings: AudioSettings,
        jitter: Option<PlayoutFeed>,
        arrivals: Option<SyncSender<Arrival>>,
    ) -> Arc<Self> {
        let (packets, _) = broadcast::channel(FANOUT_DEPTH);
        Arc::new(AudioDevice {
            name,
            describe,
            settings,
            packets,
            jitter,
            held: AtomicBool::new(false),
            arrivals,
        })
    }

    /// Starts capturing from `mic`, in packets of `packet_ms`, as Opus at `opus_bitrate` (per
    /// channel) if given, else as PCM.
    pub fn spawn_microphone<M: Microphone>(
        name: String,
        mut mic: M,
        packet_ms: u32,
        opus_bitrate: Option<u32>,
    ) -> std::io::Result<Arc<Self>> {
        let format = wire_format(mic.format(), opus_bitrate)?;
        let settings = AudioSettings {
            direction: AudioDirection::Capture,
            format,
            packet_frames: packet_frames(&name, &format, packet_ms),
        };
        let encoder = PacketEncoder::new(&settings, opus_bitrate.unwrap_or(0))
            .map_err(|e| std::io::Error::other(format!("microphone {name}: {e}")))?;
        let dev = Self::new(name, mic.describe(), settings, None, None);
        let d = dev.clone();
        std::thread::Builder::new()
            .name(format!("mic {}", dev.name))
            .spawn(move || {
                let mut packer = Packetizer::new(&d.name, &settings, encoder);
                let mut ready = Vec::new();
                loop {
                    let r = mic.run(&mut |samples, captured| {
                        if let Err(e) = packer.push(samples, captured, &mut ready) {
                            tracing::warn!(device = %d.name, "cannot encode: {e}; audio dropped");
                        }
                        for packet in ready.drain(..) {
                            let datagram = xoq_link::datagrams::encode(&packet);
                            // No listener is not an error: the microphone keeps its clock.
                            let _ = d.packets.send(Arc::new(MicPacket { packet, datagram }));
                        }
                        true
                    });
                    if let Err(e) = r {
                        tracing::error!(device = %d.name, "microphone {} failed: {e}; retrying in {} s", d.describe, RETRY.as_secs());
                    }
                    std::thread::sleep(RETRY);
                }
            })?;
        Ok(dev)
    }

    /// Starts `speaker`, playing what clients send (Opus frames if `opus`, else PCM) with
    /// a jitter buffer holding `latency`;
    /// `attach` hands the speaker its jitter buffer's feed (for its counters) and may return
    /// where to report each packet's arrival. The thread that plays owns the jitter buffer;
    /// packets reach it without a lock (`xoq_audio::playout`), so a preempted receiving task
    /// never makes the card miss a period.
    pub fn spawn_speaker<S: Speaker>(
        name: String,
        mut speaker: S,
        packet_ms: u32,
        latency: xoq_audio::Delay,
        opus: bool,
        attach: impl FnOnce(&mut S, PlayoutFeed) -> Option<SyncSender<Arrival>>,
    ) -> std::io::Result<Arc<Self>> {
        let format = wire_format(speaker.format(), opus.then_some(0))?;
        let settings = AudioSettings {
            direction: AudioDirection::Playback,
            format,
            packet_frames: packet_frames(&name, &format, packet_ms),
        };
        let cfg = JitterConfig::with_delay(
            format.rate,
            usize::from(format.channels),
            usize::from(settings.packet_frames),
            latency,
        );
        let (feed, player) = xoq_audio::playout(cfg);
        // Locked only by the thread that plays (one at a time: a retry starts a new one).
        let player = Arc::new(Mutex::new(player));
        let arrivals = attach(&mut speaker, feed.clone());
        let dev = Self::new(name, speaker.describe(), settings, Some(feed), arrivals);
        let d = dev.clone();
        std::thread::Builder::new()
            .name(format!("speaker {}", dev.name))
            .spawn(move || loop {
                let fill: Fill = {
                    let player = player.clone();
                    Arc::new(move |out: &mut [f32]| lock(&player).pull(out, monotonic_us()))
                };
                if let Err(e) = speaker.run(fill) {
                    tracing::error!(device = %d.name, "speaker {} failed: {e}; retrying in {} s", d.describe, RETRY.as_secs());
                }
                std::thread::sleep(RETRY);
            })?;
        Ok(dev)
    }

    /// What travels: direction, format, frames per packet.
    pub fn settings(&self) -> AudioSettings {
        self.settings
    }

    pub fn info(&self, access: Access) -> DeviceInfo {
        DeviceInfo {
            name: self.name.clone(),
            kind: DeviceKind::Audio,
            access,
            capabilities: 0,
            settings: DeviceSettings::Audio(self.settings),
        }
    }

    /// Attaches a client. A speaker takes one read-write client at a time.
    pub fn attach(
        self: &Arc<Self>,
        access: Access,
    ) -> Result<AudioAttachment, (ErrorCode, String)> {
        match self.settings.direction {
            AudioDirection::Capture => Ok(AudioAttachment {
                dev: self.clone(),
                packets: Some(self.packets.subscribe()),
                holds: false,
            }),
            AudioDirection::Playback if access == Access::ReadOnly => Err((
                ErrorCode::ReadOnly,
                format!(
                    "speaker `{}` plays what a client sends: open it read-write (this client may only read it)",
                    self.name
                ),
            )),
            AudioDirection::Playback => {
                if self.held.swap(true, Ordering::AcqRel) {
                    return Err((
                        ErrorCode::Busy,
                        format!("speaker `{}` is already fed by another client", self.name),
                    ));
                }
                Ok(AudioAttachment {
                    dev: self.clone(),
                    packets: None,
                    holds: true,
                })
            }
        }
    }

    /// A decoder for what one client sends to this speaker.
    pub fn decoder(&self) -> Result<PacketDecoder, CodecError> {
        PacketDecoder::new(&self.settings)
    }

    /// Plays one packet a client sent. A packet that does not decode to one packet of the
    /// catalog format is dropped (and counted by the buffer).
    pub fn play(&self, p: &AudioPacket, decoder: &mut PacketDecoder, scratch: &mut Vec<f32>) {
        let Some(jitter) = &self.jitter else {
            return;
        };
        scratch.clear();
        if let Err(e) = decoder.decode(&p.data, scratch) {
            tracing::debug!(device = %self.name, seq = p.seq, "{e}");
        }
        jitter.push(p.seq, scratch, monotonic_us());
        if let Some(a) = &self.arrivals {
            // A full report queue drops the report, never the audio.
            let _ = a.try_send(Arrival {
                seq: p.seq,
                capture_us: p.capture_us,
                arrival_us: xoq_link::clock::unix_now_us(),
            });
        }
    }
}

/// A client's hold on an audio device; a speaker is free again when it is dropped.
pub struct AudioAttachment {
    pub dev: Arc<AudioDevice>,
    /// Microphone: the packets to send.
    pub packets: Option<broadcast::Receiver<Arc<MicPacket>>>,
    holds: bool,
}

impl Drop for AudioAttachment {
    fn drop(&mut self) {
        if self.holds {
            self.dev.held.store(false, Ordering::Release);
        }
    }
}
