//! Sound cards through ALSA (with `cpal`): a capture device as a microphone, a playback device
//! as a speaker, at the card's native rate and channel count unless configured.
//!
//! ALSA rather than PipeWire on the robot: a robot is usually headless, with no user session
//! and no sound server, and its daemon must own its microphone from boot. Where a sound server
//! does run, ALSA reaches it too (the `pipewire` or `pulse` ALSA devices).
//!
//! cpal calls back on its own thread; samples cross to the device thread through a channel
//! (microphone) or are pulled from the jitter buffer right in the callback (speaker). The wire
//! carries 16-bit samples: plenty for a robot's microphone, and 10 ms of 48 kHz mono fits one
//! datagram.

use std::io;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use xoq_wire::{AudioFormat, SampleFormat};

use super::backend::{Fill, Microphone, Speaker};

/// How long to wait for a card's stream to start.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one log line about a card's xruns in this long.
const XRUN_LOG_EVERY: Duration = Duration::from_secs(10);

fn err(what: String) -> io::Error {
    io::Error::other(what)
}

/// The ALSA device called `name`: an ALSA PCM name as `aplay -L` lists it (`default`,
/// `hw:CARD=1,DEV=0`, `plughw:1,0`, `pipewire`), or a card's description.
fn find_device(name: &str) -> io::Result<cpal::Device> {
    let host = cpal::default_host();
    let id = cpal::DeviceId::new(cpal::HostId::Alsa, name);
    if let Some(d) = host.device_by_id(&id) {
        return Ok(d);
    }
    let devices: Vec<_> = host
        .devices()
        .map_err(|e| err(format!("cannot list the ALSA devices: {e}")))?
        .collect();
    if let Some(d) = devices.iter().find(|d| d.to_string() == name) {
        return Ok(d.clone());
    }
    let known: Vec<String> = devices
        .iter()
        .filter_map(|d| d.id().ok().map(|i| i.to_string()))
        .collect();
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "no ALSA device `{name}` (`aplay -L` and `arecord -L` list them); this machine has: {}",
            known.join(", ")
        ),
    ))
}

/// The stream configuration: the device's default, with the rate and channel count asked for.
fn stream_config(
    default: cpal::SupportedStreamConfig,
    rate: Option<u32>,
    channels: Option<u8>,
) -> (cpal::StreamConfig, cpal::SampleFormat) {
    let mut cfg = default.config();
    if let Some(r) = rate {
        cfg.sample_rate = r;
    }
    if let Some(c) = channels {
        cfg.channels = u16::from(c);
    }
    // Periods of one packet (10 ms): ALSA's default buffer can hold a large fraction of a
    // second, delivered in bursts the far end would have to buffer for.
    cfg.buffer_size = cpal::BufferSize::Fixed(cfg.sample_rate / 100);
    (cfg, default.sample_format())
}

/// `config` with the device's own period size, for devices that refuse ours.
fn with_default_buffer(config: &cpal::StreamConfig) -> cpal::StreamConfig {
    let mut c = *config;
    c.buffer_size = cpal::BufferSize::Default;
    c
}

fn wire_format(cfg: &cpal::StreamConfig) -> io::Result<AudioFormat> {
    let f = AudioFormat {
        rate: cfg.sample_rate,
        channels: u8::try_from(cfg.channels).unwrap_or(u8::MAX),
        sample: SampleFormat::S16,
    };
    f.validate()
        .map_err(|e| err(format!("the card's format cannot travel: {e}")))?;
    Ok(f)
}

/// An opened ALSA device and the stream configuration chosen for it.
struct Card {
    name: String,
    device: cpal::Device,
    config: cpal::StreamConfig,
    sample: cpal::SampleFormat,
    format: AudioFormat,
}

impl Card {
    fn open(
        name: &str,
        rate: Option<u32>,
        channels: Option<u8>,
        capture: bool,
    ) -> io::Result<Self> {
        let device = find_device(name)?;
        let default = if capture {
            device.default_input_config()
        } else {
            device.default_output_config()
        };
        let verb = if capture { "capture" } else { "play" };
        let default =
            default.map_err(|e| err(format!("ALSA device `{name}` cannot {verb}: {e}")))?;
        let (config, sample) = stream_config(default, rate, channels);
        Ok(Card {
            name: name.to_string(),
            format: wire_format(&config)?,
            device,
            config,
            sample,
        })
    }
}

/// A capture device.
pub struct CardMicrophone(Card);

impl CardMicrophone {
    pub fn open(name: &str, rate: Option<u32>, channels: Option<u8>) -> io::Result<Self> {
        Card::open(name, rate, channels, true).map(CardMicrophone)
    }
}

/// A stream's error callback. An xrun (the card's thread was late, on a busy host, and ALSA
/// lost or repeated a period) is a glitch cpal has already recovered from: it is counted and
/// logged at most every [`XRUN_LOG_EVERY`], and the stream goes on. Reopening the card for it
/// would cost [`super::device`]'s retry delay of silence, on every xrun. Any other error ends
/// the stream, through `fail`.
fn on_error(
    name: &str,
    what: &'static str,
    fail: impl Fn(String) + Send + 'static,
) -> impl FnMut(cpal::Error) + Send + 'static {
    let name = name.to_string();
    let mut xruns: u64 = 0;
    let mut logged: Option<Instant> = None;
    move |e: cpal::Error| {
        if e.kind() != cpal::ErrorKind::Xrun {
            return fail(e.to_string());
        }
        xruns += 1;
        if logged.is_none_or(|t| t.elapsed() >= XRUN_LOG_EVERY) {
            logged = Some(Instant::now());
            tracing::warn!(
                "ALSA {name}: {xruns} {what} xrun(s) so far (the sound card's thread was late; \
                 a busy host?): ALSA recovered and the audio glitched"
            );
        }
    }
}

/// One chunk from the card's callback: samples and how long ago the first was captured.
type Chunk = Result<(Vec<f32>, Duration), String>;

fn build_input(
    card: &Card,
    config: &cpal::StreamConfig,
    tx: mpsc::SyncSender<Chunk>,
) -> Result<cpal::Stream, String> {
    let on_error = {
        let tx = tx.clone();
        on_error(&card.name, "capture", move |e| {
            let _ = tx.try_send(Err(e));
        })
    };
    let (device, sample) = (&card.device, card.sample);
    // Converts the card's samples and stamps them; a full channel drops the chunk (the
    // device thread is behind: it loses audio, not time).
    fn stamp(info: &cpal::InputCallbackInfo) -> Duration {
        let t = info.timestamp();
        t.callback.duration_since(t.capture)
    }
    let cfg = *config;
    let r = match sample {
        cpal::SampleFormat::F32 => device.build_input_stream::<f32, _, _>(
            cfg,
            move |d: &[f32], info| {
                let _ = tx.try_send(Ok((d.to_vec(), stamp(info))));
            },
            on_error,
            Some(OPEN_TIMEOUT),
        ),
        cpal::SampleFormat::I16 => device.build_input_stream::<i16, _, _>(
            cfg,
            move |d: &[i16], info| {
                let v = d.iter().map(|s| f32::from(*s) / 32768.0).collect();
                let _ = tx.try_send(Ok((v, stamp(info))));
            },
            on_error,
            Some(OPEN_TIMEOUT),
        ),
        cpal::SampleFormat::I32 => device.build_input_stream::<i32, _, _>(
            cfg,
            move |d: &[i32], info| {
                let v = d.iter().map(|s| *s as f32 / 2_147_483_648.0).collect();
                let _ = tx.try_send(Ok((v, stamp(info))));
            },
            on_error,
            Some(OPEN_TIMEOUT),
        ),
        other => {
            return Err(format!(
                "sample format {other} is not supported here; use the card's plughw: device"
            ))
        }
    };
    r.map_err(|e| e.to_string())
}

impl Microphone for CardMicrophone {
    fn describe(&self) -> String {
        format!("ALSA {}", self.0.name)
    }

    fn format(&self) -> AudioFormat {
        self.0.format
    }

    fn run(&mut self, deliver: &mut dyn FnMut(&[f32], u64) -> bool) -> io::Result<()> {
        let (tx, rx) = mpsc::sync_channel(64);
        let stream = build_input(&self.0, &self.0.config, tx.clone())
            .or_else(|e| {
                tracing::warn!(
                    "ALSA {}: 10 ms periods refused ({e}); using the device's own",
                    self.0.name
                );
                build_input(&self.0, &with_default_buffer(&self.0.config), tx)
            })
            .map_err(|e| err(format!("cannot capture from ALSA {}: {e}", self.0.name)))?;
        stream
            .play()
            .map_err(|e| err(format!("cannot start ALSA {}: {e}", self.0.name)))?;
        loop {
            match rx.recv_timeout(Duration::from_secs(2)) {
                Ok(Ok((samples, age))) => {
                    let captured =
                        xoq_link::clock::unix_now_us().saturating_sub(age.as_micros() as u64);
                    if !deliver(&samples, captured) {
                        return Ok(());
                    }
                }
                Ok(Err(e)) => return Err(err(format!("ALSA {}: {e}", self.0.name))),
                Err(_) => {
                    return Err(err(format!(
                        "ALSA {} delivered nothing for 2 s (unplugged?)",
                        self.0.name
                    )))
                }
            }
        }
    }
}

/// A playback device.
pub struct CardSpeaker(Card);

impl CardSpeaker {
    pub fn open(name: &str, rate: Option<u32>, channels: Option<u8>) -> io::Result<Self> {
        Card::open(name, rate, channels, false).map(CardSpeaker)
    }
}

fn build_output(
    card: &Card,
    config: &cpal::StreamConfig,
    fill: Fill,
    errors: mpsc::SyncSender<String>,
) -> Result<cpal::Stream, String> {
    let on_error = on_error(&card.name, "playback", move |e| {
        let _ = errors.try_send(e);
    });
    let (device, sample) = (&card.device, card.sample);
    let cfg = *config;
    let mut scratch: Vec<f32> = Vec::new();
    let r = match sample {
        cpal::SampleFormat::F32 => device.build_output_stream::<f32, _, _>(
            cfg,
            move |out: &mut [f32], _| fill(out),
            on_error,
            Some(OPEN_TIMEOUT),
        ),
        cpal::SampleFormat::I16 => device.build_output_stream::<i16, _, _>(
            cfg,
            move |out: &mut [i16], _| {
                scratch.resize(out.len(), 0.0);
                fill(&mut scratch);
                for (o, s) in out.iter_mut().zip(&scratch) {
                    *o = (s * 32767.0).clamp(-32768.0, 32767.0) as i16;
                }
            },
            on_error,
            Some(OPEN_TIMEOUT),
        ),
        cpal::SampleFormat::I32 => device.build_output_stream::<i32, _, _>(
            cfg,
            move |out: &mut [i32], _| {
                scratch.resize(out.len(), 0.0);
                fill(&mut scratch);
                for (o, s) in out.iter_mut().zip(&scratch) {
                    *o = (f64::from(*s) * 2_147_483_647.0) as i32;
                }
            },
            on_error,
            Some(OPEN_TIMEOUT),
        ),
        other => {
            return Err(format!(
                "sample format {other} is not supported here; use the card's plughw: device"
            ))
        }
    };
    r.map_err(|e| e.to_string())
}

impl Speaker for CardSpeaker {
    fn describe(&self) -> String {
        format!("ALSA {}", self.0.name)
    }

    fn format(&self) -> AudioFormat {
        self.0.format
    }

    fn run(&mut self, fill: Fill) -> io::Result<()> {
        let (tx, rx) = mpsc::sync_channel(4);
        let stream = build_output(&self.0, &self.0.config, fill.clone(), tx.clone())
            .or_else(|e| {
                tracing::warn!(
                    "ALSA {}: 10 ms periods refused ({e}); using the device's own",
                    self.0.name
                );
                build_output(&self.0, &with_default_buffer(&self.0.config), fill, tx)
            })
            .map_err(|e| err(format!("cannot play on ALSA {}: {e}", self.0.name)))?;
        stream
            .play()
            .map_err(|e| err(format!("cannot start ALSA {}: {e}", self.0.name)))?;
        match rx.recv() {
            Ok(e) => Err(err(format!("ALSA {}: {e}", self.0.name))),
            Err(_) => Err(err(format!("ALSA {} stopped", self.0.name))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use xoq_link::sync::lock;

    use super::*;

    #[test]
    fn xruns_are_survived_and_any_other_error_ends_the_stream() {
        let failures = Arc::new(Mutex::new(Vec::new()));
        let seen = failures.clone();
        let mut handle = on_error("hw:9,0", "playback", move |e| lock(&seen).push(e));
        for _ in 0..1000 {
            handle(cpal::Error::new(cpal::ErrorKind::Xrun));
        }
        assert!(lock(&failures).is_empty());
        handle(cpal::Error::new(cpal::ErrorKind::DeviceNotAvailable));
        let failures = lock(&failures);
        assert_eq!(failures.len(), 1, "{failures:?}");
    }
}
