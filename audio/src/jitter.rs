//! The receiving side of an audio link: packets go in as they arrive (in any order, some
//! lost, some late); the consumer pulls frames at its own clock.
//!
//! - Packets are put back in sequence order. A missing packet is waited for only until its
//!   samples are due; then it is concealed (the last frame fades to silence) and play goes on.
//!   A packet arriving after that is late and dropped.
//! - Play starts once `target` frames are buffered; half a second later the measured mean
//!   depth is moved onto the target once (a little silence, or a few frames skipped), so the
//!   delay is the target from then on.
//!   When the queue runs dry (the link stalled), the output fades to silence and buffering
//!   starts over; the consumer never waits.
//! - Clock drift: the sender's and the consumer's clocks differ by some ppm, so the queue
//!   slowly fills or empties. The ratio at which the interpolator reads the queue is the drift
//!   learnt from the depth's slope ([`crate::drift`], a median that steps do not move) plus a
//!   bounded proportional term on the smoothed depth's distance from the target, so the depth
//!   stays at the target.
//! - A step in the delay (one end stalled and lost time, as a PipeWire graph does after its host
//!   froze; or the path's delay changed) is not drift. A fast average of the depth tells the
//!   two apart: when it leaves the target by [`JitterConfig::realign_frames`], the delay is
//!   measured and moved back onto the target, as at start-up (counted as `realigned`). The
//!   drift is not measured across a step, and the proportional term is bounded, so no stall
//!   ever reads as drift.
//! - A queue that grew beyond `max` (a burst after a stall) is cut back to the target.
//! - Adaptive target (when [`JitterConfig::max_target_frames`] is above the target): the spread
//!   of packet arrivals over the last 10 s ([`crate::jitter_target`]) plus a packet is the
//!   delay the link needs; the burst after an outage (a silence longer than the maximum
//!   target) is left out, since no allowed delay covers it. The target rises to it at once (bounded by the maximum) and falls
//!   back, never below the configured target, once the link has needed two packets less for
//!   10 s. Each change is a step of the delay, taken as the realignment above takes one
//!   (counted in `target_changes`).
//! - Every frame is accounted for: `inserted_frames` counts frames played that were not the
//!   sender's (silence, concealment), `skipped_frames` the sender's frames never played (cut,
//!   lost or late). The sender's time covered by `n` frames played is `n - inserted + skipped`
//!   (times the read ratio), so a pitch measured downstream can be checked against them.

use std::collections::{BTreeMap, VecDeque};

use crate::drift::DriftEstimator;
use crate::jitter_target::TargetAdapter;
use crate::resample::Interpolator;

/// How a jitter buffer behaves.
#[derive(Debug, Clone, Copy)]
pub struct JitterConfig {
    pub rate: u32,
    pub channels: usize,
    /// Frames per packet the sender uses (the length concealed for one lost packet).
    pub packet_frames: usize,
    /// Frames to hold: the constant delay this buffer adds.
    pub target_frames: usize,
    /// Beyond this many buffered frames, the queue is cut back to the target.
    pub max_frames: usize,
    /// Packets further ahead than this (after a link drop or a sender restart) restart the
    /// sequence instead of being treated as a gap to conceal.
    pub reorder_window: u32,
    /// Most the target may rise to when the link's jitter needs it; at or below
    /// `target_frames`, the target is fixed.
    pub max_target_frames: usize,
}

/// The delay a jitter buffer holds, as configured: `ms`, rising up to `max_ms` while the link's
/// jitter needs it (fixed if `max_ms <= ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    pub ms: u32,
    pub max_ms: u32,
}

impl Delay {
    /// The most an adaptive delay rises to unless configured: a fifth of a second rides out
    /// LTE's jitter (docs/BENCHMARKS.md) and is still usable for talking.
    pub const DEFAULT_MAX_MS: u32 = 200;
}

impl JitterConfig {
    /// A configuration for `rate`/`channels`, packets of `packet_frames`, holding `delay`.
    pub fn with_delay(rate: u32, channels: usize, packet_frames: usize, delay: Delay) -> Self {
        Self::new(rate, channels, packet_frames, delay.ms).adaptive(delay.max_ms)
    }

    /// How far the fast average of the delay may stray from the target before it is measured
    /// and moved back at once: a quarter of the target, and at least half a packet.
    pub fn realign_frames(&self) -> usize {
        (self.target_frames / 4).max(self.packet_frames / 2).max(1)
    }

    /// A configuration for `rate`/`channels`, packets of `packet_frames`, holding `target_ms`.
    pub fn new(rate: u32, channels: usize, packet_frames: usize, target_ms: u32) -> Self {
        let target_frames = (u64::from(rate) * u64::from(target_ms) / 1000) as usize;
        JitterConfig {
            rate,
            channels: channels.max(1),
            packet_frames: packet_frames.max(1),
            target_frames,
            max_frames: target_frames + Self::headroom(rate, packet_frames),
            reorder_window: 32,
            max_target_frames: target_frames,
        }
    }

    /// The same, with a target that adapts to the link's jitter between `target_ms` and
    /// `max_target_ms`.
    pub fn adaptive(self, max_target_ms: u32) -> Self {
        let max = (u64::from(self.rate) * u64::from(max_target_ms) / 1000) as usize;
        JitterConfig {
            max_target_frames: max.max(self.target_frames),
            ..self
        }
    }

    /// How far beyond the target the queue may grow before it is cut back.
    fn headroom(rate: u32, packet_frames: usize) -> usize {
        (rate as usize / 10).max(3 * packet_frames)
    }
}

/// What happened so far; counters only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// Packets that arrived in time.
    pub received: u64,
    /// Packets that arrived after their samples were played (or concealed).
    pub late: u64,
    /// Packets never received whose samples were concealed.
    pub concealed: u64,
    /// Packets that arrived after a later one of the stream and were put back in place.
    pub reordered: u64,
    /// Second copies of a packet still waiting to play; dropped. (A copy of one already played
    /// counts as late.)
    pub duplicated: u64,
    /// Times play ran dry while playing (the link stalled or the sender is slow).
    pub underruns: u64,
    /// Times the queue grew past `max_frames` while playing and was cut back.
    pub overruns: u64,
    /// Times the sequence restarted (a jump beyond the reorder window).
    pub resyncs: u64,
    /// Times a step of the delay (its fast average away from the target by more than
    /// [`JitterConfig::realign_frames`], and still away once measured) was moved back onto the
    /// target: a moment of silence or a few frames skipped.
    pub realigned: u64,
    /// Packets with a length that is not whole frames; dropped.
    pub malformed: u64,
    /// Frames played that were not the sender's: silence while buffering, realigning or after
    /// an underrun, and concealment.
    pub inserted_frames: u64,
    /// Frames of the sender's never played: lost or late packets (concealed), excess cut at
    /// start, at a realignment or an overrun.
    pub skipped_frames: u64,
    /// Smoothed queue depth, in frames.
    pub depth: f64,
    /// Lowest and highest queue depth seen while playing, after a pull (since the start-up
    /// alignment).
    pub depth_min: f64,
    pub depth_max: f64,
    /// How much faster than nominal the queue is read, in parts per million.
    pub ratio_ppm: f64,
    /// The delay held now, in frames (moves with the link's jitter when adaptive).
    pub target_frames: u64,
    /// Times an adaptive target moved (up or down).
    pub target_changes: u64,
}

/// Reorders, conceals and plays out one stream of packets.
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    queue: VecDeque<f32>,
    reader: Interpolator,
    /// Sequence number of the packet whose samples come next into the queue.
    next_seq: Option<u32>,
    /// Packets that arrived ahead of `next_seq`, by their distance from it.
    held: BTreeMap<u32, Vec<f32>>,
    playing: bool,
    /// The last frame played, for concealment.
    last: Vec<f32>,
    /// Packets concealed in a row because nothing later had arrived yet.
    bridged: u32,
    /// When the last packet arrived (µs, the caller's monotonic clock).
    last_arrival_us: Option<u64>,
    /// The delay being measured before it is moved onto the target.
    aligning: Option<Alignment>,
    /// Frames of silence still to play before reading on (to raise the delay to the target).
    hold: usize,
    /// The clock drift learnt so far, which the ratio follows.
    drift: DriftEstimator,
    ratio: f64,
    /// Slow average of the depth, which the drift controller steers.
    depth_ema: Option<f64>,
    /// Fast average of the depth, which tells a step from drift.
    depth_fast: Option<f64>,
    /// Decides the adaptive target (none when the target is fixed).
    adapter: Option<TargetAdapter>,
    stats: JitterStats,
}

/// The mean depth measured for a moment, before it is moved onto the target.
#[derive(Debug, Clone, Copy, Default)]
struct Alignment {
    sum: f64,
    pulls: u32,
    secs: f64,
    /// At start-up the depth range starts afresh after it; a realignment stays in the range.
    at_start: bool,
}

/// Proportional gain: 1/s of ratio per second of excess delay (a 10 s time constant). The
/// ratio is the drift learnt ([`DriftEstimator`]) plus this term, which takes back what the
/// delay still differs from its target.
const KP: f64 = 0.1;
/// Most the proportional term moves the ratio from the drift learnt: a small step of the delay
/// (below the realignment threshold) is taken back at this rate, never faster.
const MAX_PROPORTIONAL: f64 = 200e-6;
/// Most the read ratio departs from 1 (clocks of real devices are within +/-500 ppm).
const MAX_CORRECTION: f64 = 0.002;
/// How long the depth is measured after play starts, before it is moved onto the target.
const ALIGN_SECONDS: f64 = 0.5;
/// Time constant of the depth average, in seconds.
const DEPTH_TAU: f64 = 1.0;
/// Time constant of the fast depth average that detects steps, in seconds: long enough to
/// ride out a late packet and the burst after it, short enough that a step is taken back
/// before the controller has moved much.
const STEP_TAU: f64 = 0.2;

impl JitterBuffer {
    pub fn new(cfg: JitterConfig) -> Self {
        let mut b = JitterBuffer {
            cfg,
            queue: VecDeque::new(),
            reader: Interpolator::new(cfg.channels),
            next_seq: None,
            held: BTreeMap::new(),
            playing: false,
            last: vec![0.0; cfg.channels],
            bridged: 0,
            last_arrival_us: None,
            aligning: None,
            hold: 0,
            drift: DriftEstimator::new(),
            ratio: 1.0,
            depth_ema: None,
            depth_fast: None,
            adapter: (cfg.max_target_frames > cfg.target_frames).then(|| {
                TargetAdapter::new(
                    cfg.rate,
                    cfg.packet_frames,
                    cfg.target_frames,
                    cfg.max_target_frames,
                )
            }),
            stats: JitterStats::default(),
        };
        b.restart_queue();
        b
    }

    pub fn config(&self) -> &JitterConfig {
        &self.cfg
    }

    pub fn stats(&self) -> JitterStats {
        let mut s = self.stats;
        s.ratio_ppm = (self.ratio - 1.0) * 1e6;
        s.depth = self.depth_ema.unwrap_or(0.0);
        s.target_frames = self.cfg.target_frames as u64;
        s
    }

    /// Whether frames are being played (false while buffering up to the target).
    pub fn is_playing(&self) -> bool {
        self.playing
    }

    /// Frames buffered and not yet played, including packets held out of order and silence
    /// still to play.
    pub fn depth(&self) -> f64 {
        self.reader.available(&self.queue).max(0.0)
            + (self.held.values().map(Vec::len).sum::<usize>() / self.cfg.channels) as f64
            + self.hold as f64
    }

    /// An empty queue holding one silent frame of interpolation history.
    fn restart_queue(&mut self) {
        self.queue.clear();
        self.queue
            .extend(std::iter::repeat_n(0.0, self.cfg.channels));
        self.reader = Interpolator::new(self.cfg.channels);
    }

    /// Adds one packet's interleaved samples, arrived at `now_us` (any monotonic clock, the
    /// same one [`Self::pull`] is given).
    pub fn push(&mut self, seq: u32, samples: &[f32], now_us: u64) {
        self.last_arrival_us = Some(now_us);
        if samples.is_empty() || !samples.len().is_multiple_of(self.cfg.channels) {
            self.stats.malformed += 1;
            return;
        }
        let next = *self.next_seq.get_or_insert(seq);
        let ahead = seq.wrapping_sub(next);
        if ahead > u32::MAX / 2 {
            self.stats.late += 1;
            return;
        }
        if ahead > self.cfg.reorder_window {
            // The sender restarted or the link was down: start the sequence over here.
            self.stats.resyncs += 1;
            self.held.clear();
            if let Some(a) = self.adapter.as_mut() {
                a.reset();
            }
            self.next_seq = Some(seq);
            return self.push(seq, samples, now_us);
        }
        if self.held.contains_key(&ahead) {
            self.stats.duplicated += 1;
            return;
        }
        self.stats.received += 1;
        if self.held.range(ahead + 1..).next().is_some() {
            self.stats.reordered += 1;
        }
        self.held.insert(ahead, samples.to_vec());
        self.take_in_order();
        self.shed_excess();
        let target = self.cfg.target_frames;
        if let Some(t) = self
            .adapter
            .as_mut()
            .and_then(|a| a.arrival(seq, now_us, target))
        {
            self.set_target(t);
        }
    }

    /// Moves the target; the step detector then moves the delay onto it.
    fn set_target(&mut self, frames: usize) {
        if frames == self.cfg.target_frames {
            return;
        }
        self.cfg.target_frames = frames;
        self.cfg.max_frames =
            frames + JitterConfig::headroom(self.cfg.rate, self.cfg.packet_frames);
        self.stats.target_changes += 1;
        // The delay now moves towards the new target, by a step or by the proportional term:
        // that slope is not the clocks' drift, and is not learnt as such.
        self.drift.interrupt();
    }

    /// Moves packets that are next in sequence from `held` into the queue.
    fn take_in_order(&mut self) {
        while let Some(samples) = self.held.remove(&0) {
            self.queue.extend(samples);
            self.advance_seq(1);
            self.bridged = 0;
        }
    }

    /// `next_seq` moves on by `n`; the distances of held packets shrink by as much.
    fn advance_seq(&mut self, n: u32) {
        if let Some(s) = self.next_seq.as_mut() {
            *s = s.wrapping_add(n);
        }
        let held = std::mem::take(&mut self.held);
        self.held = held.into_iter().map(|(k, v)| (k - n, v)).collect();
    }

    fn shed_excess(&mut self) {
        let avail = self.reader.available(&self.queue);
        if avail > self.cfg.max_frames as f64 {
            let excess = avail as usize - self.cfg.target_frames;
            self.skip(excess);
            if self.playing {
                self.stats.overruns += 1;
            }
            self.depth_ema = Some(self.cfg.target_frames as f64);
            self.depth_fast = self.depth_ema;
        }
    }

    /// Conceals the packets missing before the first held one, so play can go on. With
    /// nothing held, conceals one packet (the next one is probably lost, and the one after it
    /// on its way); a second in a row is not guessed: that is a stall.
    fn conceal_gap(&mut self) -> bool {
        let gap = match self.held.keys().next() {
            Some(&gap) => gap,
            None if self.playing && self.bridged == 0 => {
                self.bridged += 1;
                1
            }
            None => return false,
        };
        self.conceal(gap);
        true
    }

    /// Appends `packets` packets' worth of concealment: the last frame fading to silence.
    fn conceal(&mut self, packets: u32) {
        let frames = packets as usize * self.cfg.packet_frames;
        let fade = (self.cfg.rate as usize / 400).max(1); // 2.5 ms
        for i in 0..frames {
            let g = if i < fade {
                1.0 - (i + 1) as f32 / fade as f32
            } else {
                0.0
            };
            self.queue.extend(self.last.iter().map(|v| v * g));
        }
        self.stats.concealed += u64::from(packets);
        self.stats.inserted_frames += frames as u64;
        self.stats.skipped_frames += frames as u64;
        self.advance_seq(packets);
        let bridged = self.bridged;
        self.take_in_order();
        self.bridged = bridged.min(self.bridged);
    }

    /// Fills `out` (interleaved) with the next frames, at `now_us`. Never waits: while
    /// buffering, after a stall, or for a lost packet, it gives silence or concealment.
    pub fn pull(&mut self, out: &mut [f32], now_us: u64) {
        let c = self.cfg.channels;
        if !self.playing {
            // An adaptive buffer waits for its first measurement of the link (a fifth of a
            // second of arrivals after the start's burst), so play starts at a target that
            // covers the link's jitter instead of at the floor.
            let measuring = self.adapter.as_ref().is_some_and(|a| !a.measured());
            // Packets come in steps of a packet and leave in steps of a pull, so the depth
            // swings around its mean by half of each: start that far above the target.
            let start =
                (self.cfg.target_frames + (self.cfg.packet_frames + out.len() / c) / 2) as f64;
            if !measuring && self.depth() >= start {
                // Packets missing now are not coming in time: conceal them and start.
                while !self.held.is_empty() {
                    self.conceal_gap();
                }
                // Start at the target exactly: a packet may have brought more.
                let excess = self.reader.available(&self.queue) - start;
                if excess >= 1.0 {
                    self.skip(excess as usize);
                }
                self.playing = true;
                self.drift.interrupt();
                self.depth_ema = None;
                self.depth_fast = None;
                self.aligning = Some(Alignment {
                    at_start: true,
                    ..Alignment::default()
                });
                self.hold = 0;
            } else {
                out.fill(0.0);
                self.stats.inserted_frames += (out.len() / c) as u64;
                return;
            }
        }
        for frame in out.chunks_exact_mut(c) {
            if self.hold > 0 {
                self.hold -= 1;
                self.stats.inserted_frames += 1;
                frame.fill(0.0);
                continue;
            }
            while !self.reader.can_read(&self.queue) {
                if !self.conceal_gap() {
                    break;
                }
            }
            if self.reader.can_read(&self.queue) {
                self.reader.read(&self.queue, self.ratio, frame);
                self.last.copy_from_slice(frame);
            } else {
                if self.playing {
                    self.playing = false;
                    self.stats.underruns += 1;
                }
                // Fade what was playing, then silence.
                self.stats.inserted_frames += 1;
                for (o, l) in frame.iter_mut().zip(self.last.iter_mut()) {
                    *l *= 0.9;
                    *o = *l;
                }
            }
        }
        self.reader.trim(&mut self.queue);
        if self.playing {
            self.steer(out.len() / c, now_us);
        }
    }

    /// One step of the drift controller after `frames` were played.
    fn steer(&mut self, frames: usize, now_us: u64) {
        let rate = f64::from(self.cfg.rate);
        let dt = frames as f64 / rate;
        let depth = self.depth();
        self.stats.depth_min = self.stats.depth_min.min(depth);
        self.stats.depth_max = self.stats.depth_max.max(depth);
        // The queue grows in whole packets, so read at the same point of each packet period
        // its depth would not move until the two clocks slip a whole period apart. Counting the
        // frames the sender has produced since the last packet (time since it arrived) makes
        // the measure follow the slip continuously.
        let since = self.last_arrival_us.map_or(0, |t| now_us.saturating_sub(t));
        // Centred on half a packet, so the measure's mean is the queue's mean depth.
        let packet = self.cfg.packet_frames as f64;
        let depth = depth + (since as f64 * rate / 1e6).min(packet) - packet / 2.0;
        if let Some(a) = self.aligning {
            // How packets and pulls interleave decides where the depth's mean lands, so it is
            // measured for a moment and then moved onto the target once: silence is played
            // (delay too short) or frames are skipped (too long). Only then does the drift
            // controller take over, with no error to chase.
            let a = Alignment {
                sum: a.sum + depth,
                pulls: a.pulls + 1,
                secs: a.secs + dt,
                ..a
            };
            if a.secs < ALIGN_SECONDS {
                self.aligning = Some(a);
                return;
            }
            self.aligning = None;
            let target = self.cfg.target_frames as f64;
            let shift = target - a.sum / f64::from(a.pulls);
            // After a step, a delay measured back near the target was a passing burst, not a
            // step: the controller takes the rest, without a glitch.
            let least = if a.at_start {
                1.0
            } else {
                (self.cfg.realign_frames() as f64 / 4.0).max(1.0)
            };
            if shift.abs() >= least {
                if shift > 0.0 {
                    self.hold = shift as usize;
                } else {
                    self.skip((-shift) as usize);
                }
                if !a.at_start {
                    self.stats.realigned += 1;
                }
                self.depth_ema = Some(target);
                self.depth_fast = Some(target);
            } else {
                self.depth_ema = Some(a.sum / f64::from(a.pulls));
                self.depth_fast = self.depth_ema;
            }
            if a.at_start {
                self.reset_depth_range();
            }
            return;
        }
        let average = |e: Option<f64>, tau: f64| match e {
            None => depth,
            Some(e) => e + (depth - e) * (dt / tau).min(1.0),
        };
        let (slow, fast) = (
            average(self.depth_ema, DEPTH_TAU),
            average(self.depth_fast, STEP_TAU),
        );
        self.depth_ema = Some(slow);
        self.depth_fast = Some(fast);
        let target = self.cfg.target_frames as f64;
        let step = self.cfg.realign_frames() as f64;
        if (fast - target).abs() > step {
            // Drift moves the delay by a fraction of a millisecond a second; this is a step
            // (an end stalled and lost time, or a burst): measure where it is now and move it
            // back. The controller keeps what it learnt.
            self.aligning = Some(Alignment::default());
            self.drift.interrupt();
            return;
        }
        if (fast - slow).abs() > step / 3.0 {
            // A smaller step is under way (drift never parts the two averages this far): the
            // depth's slope across it is no measure of the drift.
            self.drift.interrupt();
        }
        self.drift.sample(depth, self.ratio - 1.0, dt, rate);
        let err = (slow - target) / rate;
        let proportional = (KP * err).clamp(-MAX_PROPORTIONAL, MAX_PROPORTIONAL);
        let drift = self.drift.estimate().unwrap_or(0.0);
        self.ratio = 1.0 + (drift + proportional).clamp(-MAX_CORRECTION, MAX_CORRECTION);
    }

    /// Drops `frames` of the sender's audio unplayed.
    fn skip(&mut self, frames: usize) {
        let before = self.reader.available(&self.queue);
        let frames = frames.min(before.max(0.0) as usize);
        self.reader.skip(&mut self.queue, frames);
        let gone = (before - self.reader.available(&self.queue)).max(0.0);
        self.stats.skipped_frames += gone.round() as u64;
    }

    /// The consumer stopped pulling (nobody listens): play starts over, at the target delay,
    /// when it pulls again. Packets keep arriving meanwhile; the oldest are dropped.
    pub fn stop(&mut self) {
        self.playing = false;
    }

    /// Forgets the depth extremes (e.g. after settling), keeping everything else.
    pub fn reset_depth_range(&mut self) {
        let d = self.depth();
        self.stats.depth_min = d;
        self.stats.depth_max = d;
    }
}

#[cfg(test)]
#[path = "jitter_tests.rs"]
mod tests;
