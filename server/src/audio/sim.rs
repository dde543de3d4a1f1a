//! The simulated microphone (a sine, 440 Hz by default, or clicks at known wall-clock times)
//! and speaker (plays into a meter and writes, once a second, the frequency (median of 100 ms
//! windows) and level it heard
//! and its jitter buffer's counters to a record file, the arrival of each packet, and the time
//! each click it plays is heard; beside the record, `<record>.pcm` holds every sample of the
//! first channel it played, as 32-bit float, for a test to analyse). Each can run its clock off
//! by some ppm, as real sound cards do.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use xoq_audio::{PlayoutFeed, Tone, ToneMeter, WindowedFrequency};
use xoq_wire::AudioFormat;

use super::backend::{Fill, Microphone, Speaker};
use super::device::Arrival;
use crate::camera::source::now_us;

/// Period of the simulated devices: each wakes this often (at its own clock).
const PERIOD: Duration = Duration::from_millis(10);

/// Sleeps until `start + frames / rate`, with the rate scaled by the drift.
fn wait_for_frame(start: Instant, frames: u64, rate: f64) {
    let due = start + Duration::from_secs_f64(frames as f64 / rate);
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    }
}

/// Makes the calling thread, which keeps a simulated device's clock, real-time where the
/// process may, so a busy robot does not make it miss periods; says why not otherwise. (A sound
/// card's clock is the card's, and its sound server's threads are real-time already.)
fn keep_time(name: &str) {
    if let Err(why) = xoq_link::realtime::promote_current_thread(xoq_link::realtime::AUDIO_PRIORITY)
    {
        tracing::warn!(device = %name, "{why}");
    }
}

/// Frames per period and the effective rate of a clock `ppm` off.
fn clock(format: &AudioFormat, ppm: f64) -> (usize, f64) {
    let frames = format.frames_in(PERIOD.as_micros() as u64).max(1);
    (frames, f64::from(format.rate) * (1.0 + ppm * 1e-6))
}

/// Clicks come at every multiple of this on the wall clock (µs), so whoever hears one knows
/// when it was made.
pub const CLICK_EVERY_US: u64 = 250_000;

/// A microphone that hears a steady sine, or clicks.
pub struct SimMicrophone {
    pub format: AudioFormat,
    pub tone: Tone,
    pub drift_ppm: f64,
    /// Hear a click (one sample at 0.9) at each [`CLICK_EVERY_US`] of the wall clock, and
    /// silence between, instead of the tone: for latency measurements.
    pub clicks: bool,
}

/// Writes silence into `buf`, with a click on the frame captured at a multiple of
/// [`CLICK_EVERY_US`], if one falls in it (frame 0 captured at `first_us`).
fn fill_clicks(buf: &mut [f32], channels: usize, rate: u32, first_us: u64) {
    buf.fill(0.0);
    let frames = (buf.len() / channels) as u64;
    let end_us = first_us + frames * 1_000_000 / u64::from(rate);
    let next = first_us.div_ceil(CLICK_EVERY_US) * CLICK_EVERY_US;
    if next < end_us {
        let i = ((next - first_us) * u64::from(rate) / 1_000_000) as usize;
        if let Some(frame) = buf.chunks_mut(channels).nth(i) {
            frame.fill(0.9);
        }
    }
}

impl Microphone for SimMicrophone {
    fn describe(&self) -> String {
        if self.clicks {
            return "clicks".into();
        }
        format!("{} Hz tone", self.tone.freq)
    }

    fn format(&self) -> AudioFormat {
        self.format
    }

    fn run(&mut self, deliver: &mut dyn FnMut(&[f32], u64) -> bool) -> io::Result<()> {
        keep_time("simulated microphone");
        let (period, rate) = clock(&self.format, self.drift_ppm);
        let channels = usize::from(self.format.channels);
        let mut buf = vec![0.0; period * channels];
        let start = Instant::now();
        let mut frames = 0u64;
        loop {
            frames += period as u64;
            wait_for_frame(start, frames, rate);
            // The period's first frame was heard one period ago.
            let captured = now_us().saturating_sub(PERIOD.as_micros() as u64);
            if self.clicks {
                fill_clicks(&mut buf, channels, self.format.rate, captured);
            } else {
                self.tone.fill(&mut buf, channels);
            }
            if !deliver(&buf, captured) {
                return Ok(());
            }
        }
    }
}

/// A speaker that measures what it plays.
pub struct SimSpeaker {
    pub format: AudioFormat,
    pub drift_ppm: f64,
    /// Where to write one line per second of measurements.
    pub record: Option<PathBuf>,
    /// The jitter buffer's counters.
    pub jitter: Option<PlayoutFeed>,
    /// Each packet's arrival, written to the record as it comes.
    pub arrivals: Option<Receiver<Arrival>>,
}

impl SimSpeaker {
    fn report(
        &self,
        out: &mut impl Write,
        t: f64,
        meter: &ToneMeter,
        freq: &WindowedFrequency,
    ) -> io::Result<()> {
        let freq = freq.median().unwrap_or(0.0);
        let level = meter.level_dbfs().unwrap_or(f64::NEG_INFINITY).max(-200.0);
        write!(out, "t={t:.1} freq_hz={freq:.2} level_dbfs={level:.2}")?;
        if let Some(feed) = &self.jitter {
            let (s, rate) = (feed.stats(), feed.config().rate);
            let ms = |frames: f64| frames * 1000.0 / f64::from(rate);
            write!(
                out,
                " received={} late={} concealed={} reordered={} duplicated={} underruns={} overruns={} resyncs={} realigned={} inserted_frames={} skipped_frames={} depth_ms={:.2} depth_min_ms={:.2} depth_max_ms={:.2} ratio_ppm={:.1} discarded={} target_ms={:.1} target_changes={}",
                s.received, s.late, s.concealed, s.reordered, s.duplicated, s.underruns, s.overruns, s.resyncs, s.realigned,
                s.inserted_frames, s.skipped_frames,
                ms(s.depth), ms(s.depth_min), ms(s.depth_max), s.ratio_ppm, feed.discarded(), ms(s.target_frames as f64), s.target_changes
            )?;
        }
        writeln!(out)?;
        out.flush()
    }
}

impl Speaker for SimSpeaker {
    fn describe(&self) -> String {
        "measuring speaker".into()
    }

    fn format(&self) -> AudioFormat {
        self.format
    }

    fn run(&mut self, fill: Fill) -> io::Result<()> {
        keep_time("simulated speaker");
        let (period, rate) = clock(&self.format, self.drift_ppm);
        let channels = usize::from(self.format.channels);
        let mut buf = vec![0.0; period * channels];
        let mut meter = ToneMeter::new(self.format.rate);
        let mut freq = WindowedFrequency::new(self.format.rate);
        let create = |p: &std::path::Path| {
            std::fs::File::create(p).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot create {}: {e}", p.display()))
            })
        };
        let mut record = self.record.as_deref().map(create).transpose()?;
        let mut pcm = match &self.record {
            Some(p) => {
                let mut name = p.as_os_str().to_owned();
                name.push(".pcm");
                Some(io::BufWriter::new(create(std::path::Path::new(&name))?))
            }
            None => None,
        };
        let start = Instant::now();
        let mut frames = 0u64;
        let mut last_click_us = 0u64;
        loop {
            fill(&mut buf);
            // This period plays from now on: frame i at now + i / rate.
            let now = now_us();
            if let Some(out) = record.as_mut() {
                if let Some(arrivals) = &self.arrivals {
                    for a in arrivals.try_iter() {
                        writeln!(
                            out,
                            "packet seq={} capture_us={} arrival_us={} transit_us={}",
                            a.seq,
                            a.capture_us,
                            a.arrival_us,
                            a.arrival_us as i64 - a.capture_us as i64
                        )?;
                    }
                }
                for (i, f) in buf.chunks(channels).enumerate() {
                    let at = now + i as u64 * 1_000_000 / u64::from(self.format.rate);
                    if f[0] > 0.5 && at > last_click_us + 20_000 {
                        last_click_us = at;
                        writeln!(out, "click at_us={at}")?;
                    }
                }
            }
            meter.feed(&buf, channels);
            freq.feed(&buf, channels);
            if let Some(pcm) = pcm.as_mut() {
                for f in buf.chunks(channels) {
                    pcm.write_all(&f[0].to_le_bytes())?;
                }
            }
            frames += period as u64;
            if meter.frames() >= u64::from(self.format.rate) {
                if let Some(out) = record.as_mut() {
                    self.report(out, frames as f64 / rate, &meter, &freq)?;
                }
                if let Some(pcm) = pcm.as_mut() {
                    pcm.flush()?;
                }
                meter.reset();
                freq.reset();
            }
            wait_for_frame(start, frames, rate);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_click_lands_on_the_frame_captured_at_the_mark() {
        let mut buf = vec![0.0; 2 * 480];
        // 10 ms at 48 kHz from 1 ms before a mark: the click is frame 48.
        fill_clicks(&mut buf, 2, 48_000, 5 * CLICK_EVERY_US - 1_000);
        let loud: Vec<usize> = (0..480).filter(|i| buf[2 * i] > 0.5).collect();
        assert_eq!(loud, vec![48]);
        assert!(buf[2 * 48 + 1] > 0.5);
        // A period with no mark in it is silent.
        fill_clicks(&mut buf, 2, 48_000, 5 * CLICK_EVERY_US + 1_000);
        assert!(buf.iter().all(|s| *s == 0.0));
    }
}
