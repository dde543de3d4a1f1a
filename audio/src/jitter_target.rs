//! How much delay a link's jitter needs, measured from packet arrivals (no I/O, no clock: the
//! caller passes arrival times), for the jitter buffer's adaptive target.
//!
//! [`TargetAdapter`] turns it into the jitter buffer's target: up at once when the link needs
//! more, down only after it has needed less for a whole window.
//!
//! Each packet's *relative delay* is its arrival time minus the time its sequence number says
//! it was sent (packets are sent one packet duration apart). Over a sliding window the spread
//! of the relative delay, from a low to a high percentile, is the delay a buffer needs so that
//! all but the latest few packets arrive before their samples are due. A constant path delay
//! and clock offsets cancel out; clock drift moves it by at most a millisecond per window.

use std::collections::VecDeque;

/// How long arrivals are remembered.
pub const WINDOW_US: u64 = 10_000_000;
/// The percentiles the spread is taken between: the earliest arrivals (robust to one odd
/// packet), and all but the latest 0.5 % (those are concealed like losses).
const LOW_QUANTILE: f64 = 0.01;
const HIGH_QUANTILE: f64 = 0.995;
/// Fewest arrivals in the window before a spread is given (a fifth of a second of 10 ms
/// packets): with a second's worth, the target stayed at its floor through a jittery link's
/// first second and the first bursts underran (2-4 underruns a run at `lte`, all at the start;
/// 1 with 20, and none once the buffer waits for this first measurement before it plays). So
/// few arrivals give a high spread (their maximum), which the window lowers once it has shown
/// less for a whole window.
const MIN_SAMPLES: usize = 20;

/// The spread of packet arrivals over the last [`WINDOW_US`].
#[derive(Debug, Clone)]
pub struct ArrivalSpread {
    packet_us: f64,
    /// The first packet's sequence number and arrival, which relative delays count from.
    origin: Option<(u32, u64)>,
    /// (arrival µs, relative delay µs), oldest first.
    window: VecDeque<(u64, f64)>,
    /// A silence longer than this is an outage, not jitter: the packets that arrive in the
    /// burst after it (for as long again) are not counted, as no allowed delay could cover
    /// them.
    outage_us: u64,
    last_arrival_us: Option<u64>,
    ignore_until_us: u64,
}

impl ArrivalSpread {
    /// For packets of `packet_frames` frames at `rate` frames/s; arrival gaps longer than
    /// `outage_us` are outages (the most delay the caller may hold is a good value).
    pub fn new(rate: u32, packet_frames: usize, outage_us: u64) -> Self {
        ArrivalSpread {
            packet_us: packet_frames as f64 * 1e6 / f64::from(rate.max(1)),
            origin: None,
            window: VecDeque::new(),
            outage_us,
            last_arrival_us: None,
            ignore_until_us: 0,
        }
    }

    /// Forgets everything (the sequence restarted).
    pub fn reset(&mut self) {
        self.origin = None;
        self.window.clear();
    }

    /// Records that packet `seq` arrived at `now_us`. The stream's start counts as the end of
    /// an outage: a subscriber's first packets may be a backlog delivered at once (a relay
    /// hands a new subscriber the groups it still holds).
    pub fn arrival(&mut self, seq: u32, now_us: u64) {
        let gap = self
            .last_arrival_us
            .map_or(u64::MAX, |t| now_us.saturating_sub(t));
        self.last_arrival_us = Some(now_us);
        if gap > self.outage_us {
            self.ignore_until_us = now_us + self.outage_us;
        }
        if now_us < self.ignore_until_us {
            return;
        }
        let (first_seq, first_us) = *self.origin.get_or_insert((seq, now_us));
        let sent = seq.wrapping_sub(first_seq);
        if sent > u32::MAX / 2 {
            return; // from before the origin: late, and not worth a place
        }
        let relative = now_us as f64 - first_us as f64 - f64::from(sent) * self.packet_us;
        self.window.push_back((now_us, relative));
        while let Some(&(t, _)) = self.window.front() {
            if now_us.saturating_sub(t) <= WINDOW_US {
                break;
            }
            self.window.pop_front();
        }
    }

    /// The delay in µs that covers the window's arrivals (see the module's text); `None` until
    /// the window holds enough of them.
    pub fn spread_us(&self) -> Option<f64> {
        if self.window.len() < MIN_SAMPLES {
            return None;
        }
        // Two order statistics, each found in linear time (this runs on the audio thread).
        let mut r: Vec<f64> = self.window.iter().map(|&(_, r)| r).collect();
        let mut at = |q: f64| {
            let i = ((r.len() - 1) as f64 * q).round() as usize;
            *r.select_nth_unstable_by(i, f64::total_cmp).1
        };
        let high = at(HIGH_QUANTILE);
        let low = at(LOW_QUANTILE);
        Some((high - low).max(0.0))
    }
}

/// Received packets between two checks of the target (100 ms of 10 ms packets).
const CHECK_EVERY: u32 = 10;

/// Decides an adaptive jitter-buffer target between a floor and a maximum, in frames.
#[derive(Debug, Clone)]
pub struct TargetAdapter {
    spread: ArrivalSpread,
    rate: f64,
    packet_frames: usize,
    floor_frames: usize,
    max_frames: usize,
    /// Since when the link has needed less than the target (µs), for lowering it.
    low_since_us: Option<u64>,
    /// Packets received since the target was last checked.
    since_check: u32,
    /// Whether the window has given a spread yet (the link's jitter was measured).
    measured: bool,
}

impl TargetAdapter {
    /// For packets of `packet_frames` at `rate`, a target between `floor_frames` and
    /// `max_frames`; a silence longer than the maximum is an outage.
    pub fn new(rate: u32, packet_frames: usize, floor_frames: usize, max_frames: usize) -> Self {
        let outage_us = max_frames as u64 * 1_000_000 / u64::from(rate.max(1));
        TargetAdapter {
            spread: ArrivalSpread::new(rate, packet_frames, outage_us),
            rate: f64::from(rate.max(1)),
            packet_frames,
            floor_frames,
            max_frames,
            low_since_us: None,
            since_check: 0,
            measured: false,
        }
    }

    /// Whether the link's jitter has been measured since the stream started (a jitter buffer
    /// starts playing only then, at a target that covers it).
    pub fn measured(&self) -> bool {
        self.measured
    }

    /// Forgets the arrivals (the sequence restarted).
    pub fn reset(&mut self) {
        self.spread.reset();
    }

    /// Records packet `seq` arriving at `now_us` while the target is `target`; returns a new
    /// target when it should move. Checked every [`CHECK_EVERY`] packets.
    pub fn arrival(&mut self, seq: u32, now_us: u64, target: usize) -> Option<usize> {
        self.spread.arrival(seq, now_us);
        self.since_check += 1;
        if self.since_check < CHECK_EVERY {
            return None;
        }
        self.since_check = 0;
        let spread_us = self.spread.spread_us()?;
        self.measured = true;
        let packet = self.packet_frames;
        let need = (spread_us * self.rate / 1e6).ceil() as usize + packet;
        let need = need.clamp(self.floor_frames, self.max_frames);
        if need > target {
            self.low_since_us = None;
            return Some(need);
        }
        if need + 2 * packet > target {
            self.low_since_us = None;
            return None;
        }
        let since = *self.low_since_us.get_or_insert(now_us);
        if now_us.saturating_sub(since) < WINDOW_US {
            return None;
        }
        self.low_since_us = None;
        Some(need)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_stream_has_no_spread_whatever_its_delay() {
        let mut s = ArrivalSpread::new(48_000, 480, 200_000);
        for seq in 0..200u32 {
            s.arrival(
                seq.wrapping_add(u32::MAX - 50),
                5_000_000 + u64::from(seq) * 10_000,
            );
        }
        assert!(s.spread_us().unwrap() < 1.0);
    }

    #[test]
    fn the_burst_after_an_outage_is_left_out() {
        let mut s = ArrivalSpread::new(48_000, 480, 200_000);
        // 5 s of steady packets, then 300 held back by a 3 s outage and delivered at once.
        for seq in 0..500u32 {
            s.arrival(seq, u64::from(seq) * 10_000);
        }
        for seq in 500..800u32 {
            s.arrival(seq, 8_000_000);
        }
        // Then steady again.
        for seq in 800..900u32 {
            s.arrival(seq, u64::from(seq) * 10_000);
        }
        assert!(s.spread_us().unwrap() < 1.0, "{:?}", s.spread_us());
    }

    #[test]
    fn a_backlog_at_the_start_is_left_out() {
        let mut s = ArrivalSpread::new(48_000, 960, 200_000);
        // Half a second of 20 ms packets at once (a relay's backlog), then live ones.
        for seq in 0..25u32 {
            s.arrival(seq, 1_000_000 + u64::from(seq) * 100);
        }
        for seq in 25..200u32 {
            s.arrival(seq, 1_010_000 + u64::from(seq - 25) * 20_000);
        }
        assert!(s.spread_us().unwrap() < 1.0, "{:?}", s.spread_us());
    }

    #[test]
    fn the_spread_follows_the_jitter_and_forgets_it_after_the_window() {
        let mut s = ArrivalSpread::new(48_000, 480, 200_000);
        // 10 ms packets delayed by 0..30 ms (a sawtooth, so every value occurs).
        for seq in 0..1000u32 {
            let jitter = u64::from(seq % 31) * 1000;
            s.arrival(seq, u64::from(seq) * 10_000 + jitter);
        }
        let spread = s.spread_us().unwrap();
        assert!((29_000.0..=30_000.0).contains(&spread), "{spread}");
        // Then 11 s without jitter: the window holds only those.
        for seq in 1000..2100u32 {
            s.arrival(seq, u64::from(seq) * 10_000 + 30_000);
        }
        assert!(s.spread_us().unwrap() < 1.0);
        assert!(s.spread_us().is_some());
        s.reset();
        assert!(s.spread_us().is_none());
    }
}
