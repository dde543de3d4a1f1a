//! Congestion feedback for one client's camera stream: how fast the encoder may go so that
//! frames do not queue on the way. Each frame's *delivery time* (written until the client
//! acknowledged its last byte) is measured; the 10th percentile over the last 10 s is what the
//! path costs without a queue (the very smallest would be a jittery link's luckiest moment). A lost packet delays only the frame it belonged to (by about a round
//! trip), and on a lossy link that can be half of all frames, so the judge is the fastest
//! quarter of the last half second's frames, which a queue delays as much as any other. When
//! it stands more than the queue limit above the path's own time (twice the spread of the
//! path's delivery times, 25 to 60 ms: a link's jitter stays inside that; a stream above the
//! link's rate grows its queue by hundreds of milliseconds a second) and it grew by more than
//! [`GROWTH`] over the last second, or when it stands above
//! [`STANDING_LIMIT`] at all, a queue is building: the target drops to 85 % of what the client
//! actually received over the last second (never more than the current target), and the
//! controller waits for the queue to drain before judging again. After a calm second (under
//! the limit and not growing) it rises again by 8 % every half second, up to the configured
//! ceiling. The transport's own measure bounds it too ([`RateControl::on_window`]): when what
//! the path's congestion window carries falls below the target (a loss while the stream
//! filled the window), the target comes down at once, before frames wait in the sender's
//! buffer long enough to show in their delivery times; and a rise goes at most one step
//! above the window. A frame the sender had to
//! abandon counts as a queue at once. The encoder, shared by every client of the camera, runs
//! at the lowest client's target (`CameraDevice::rate_limit`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Queueing delay that calls for a lower rate when it is growing, on a jittery path (the
/// limit is twice the path's own spread of delivery times, between [`QUEUE_LIMIT_MIN`] and
/// this: a steady path's queue is cut at 25 ms, a cellular one's wander is not read as one).
pub const QUEUE_LIMIT: Duration = Duration::from_millis(60);
/// The limit on a path whose delivery times do not wander.
pub const QUEUE_LIMIT_MIN: Duration = Duration::from_millis(25);
/// Queueing delay that calls for a lower rate even when it stands still.
pub const STANDING_LIMIT: Duration = Duration::from_millis(200);
/// Growth over [`TREND`] that counts as a queue building (a link's jitter swings by less).
const GROWTH: Duration = Duration::from_millis(20);
/// How far back growth is judged.
const TREND: Duration = Duration::from_secs(1);
/// How long it must stay calm first.
const CALM_FOR: Duration = Duration::from_secs(1);
/// Time between two rises.
const RISE_EVERY: Duration = Duration::from_millis(500);
/// The window of "recent" delivery times (their fastest quarter is compared with the base).
const RECENT: Duration = Duration::from_millis(500);
/// The window over which the delivered rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// How long the smallest delivery time is remembered.
const BASE_WINDOW: Duration = Duration::from_secs(10);
/// Lowest rate the controller asks for (the encoder's own floor is `MIN_BITRATE`).
pub const FLOOR_BPS: u32 = 150_000;
/// The rate a stream starts at (or its ceiling, if lower): a new stream does not know its
/// link, and starting a 16 Mbit/s stream on a 3 Mbit/s path queues seconds of video.
pub const START_BPS: u32 = 2_000_000;
/// Growth per rise until the first sign of a queue (a quick start, as QUIC's slow start).
const STARTUP_RISE_PCT: u64 = 25;
/// Growth per rise after that.
const RISE_PCT: u64 = 8;
/// How long a frame may wait in the sender's buffer for the congestion window (a short path
/// drains a window many times in a frame interval: there, a frame a few windows long costs a
/// few round trips, not a queue).
const SEND_SLACK: Duration = Duration::from_millis(5);
/// The share of what the congestion window carries that the target comes down to when the
/// window falls below it.
const WINDOW_SHARE_PCT: u64 = 85;

/// One client's rate controller (sans-IO: times are passed in).
#[derive(Debug)]
pub struct RateControl {
    ceiling: u32,
    target: u32,
    /// What the path's congestion window carries, bit/s, once known.
    window: Option<u32>,
    /// (acknowledged at, delivery time, bytes) over the last [`RATE_WINDOW`].
    acks: VecDeque<(Instant, Duration, u64)>,
    /// (when, delivery time) over [`BASE_WINDOW`].
    base: VecDeque<(Instant, Duration)>,
    /// Queueing judged at each update over the last [`TREND`].
    history: VecDeque<(Instant, Duration)>,
    hold_until: Option<Instant>,
    calm_since: Option<Instant>,
    last_rise: Option<Instant>,
    /// No queue seen yet: rises are bigger and need only half the calm.
    startup: bool,
    pub decreases: u64,
    pub increases: u64,
    /// Times the target came down to the congestion window.
    pub window_cuts: u64,
}

impl RateControl {
    /// Starts at [`START_BPS`] (at most `ceiling`, the most the encoder is allowed), bit/s.
    pub fn new(ceiling: u32) -> Self {
        RateControl {
            ceiling,
            target: ceiling.min(START_BPS),
            window: None,
            startup: true,
            acks: VecDeque::new(),
            base: VecDeque::new(),
            history: VecDeque::new(),
            hold_until: None,
            calm_since: None,
            last_rise: None,
            decreases: 0,
            increases: 0,
            window_cuts: 0,
        }
    }

    /// The most the encoder may use changed (a mode switch); the target stays below it.
    pub fn set_ceiling(&mut self, ceiling: u32) {
        if ceiling != self.ceiling {
            self.ceiling = ceiling;
            self.target = self.target.min(ceiling);
        }
    }

    /// The rate asked of the encoder now, bit/s.
    pub fn target(&self) -> u32 {
        self.target
    }

    /// A frame of `bytes` written at `sent` was wholly acknowledged at `now`.
    pub fn on_delivered(&mut self, now: Instant, sent: Instant, bytes: u64) {
        let delay = now.saturating_duration_since(sent);
        self.acks.push_back((now, delay, bytes));
        while self
            .acks
            .front()
            .is_some_and(|(t, _, _)| now.saturating_duration_since(*t) > RATE_WINDOW)
        {
            self.acks.pop_front();
        }
        self.base.push_back((now, delay));
        while self
            .base
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > BASE_WINDOW)
        {
            self.base.pop_front();
        }
    }

    /// The path's own delivery time: the 10th percentile over the last 10 s (the least a
    /// frame takes without a queue, less the luckiest moments of a jittery link), or 300 ms
    /// before any frame was delivered.
    pub fn path_time(&self) -> Duration {
        self.base_time().unwrap_or(Duration::from_millis(300))
    }

    fn base_time(&self) -> Option<Duration> {
        self.base_quantiles([0.1]).map(|[p10]| p10)
    }

    /// Quantiles of the delivery times over the last 10 s, in the order asked.
    fn base_quantiles<const N: usize>(&self, qs: [f64; N]) -> Option<[Duration; N]> {
        let mut all: Vec<Duration> = self.base.iter().map(|(_, d)| *d).collect();
        if all.is_empty() {
            return None;
        }
        Some(qs.map(|q| {
            let k = ((all.len() as f64 * q) as usize).min(all.len() - 1);
            *all.select_nth_unstable(k).1
        }))
    }

    /// The growing queue that calls for a lower rate on this path: twice the spread of its
    /// delivery times (median less the 10th percentile), within [`QUEUE_LIMIT_MIN`] ..
    /// [`QUEUE_LIMIT`].
    pub fn queue_limit(&self) -> Duration {
        match self.base_quantiles([0.1, 0.5]) {
            Some([p10, p50]) => (p50.saturating_sub(p10) * 2).clamp(QUEUE_LIMIT_MIN, QUEUE_LIMIT),
            None => QUEUE_LIMIT,
        }
    }

    /// The path's congestion window is `cwnd` bytes at a smoothed round trip `rtt`, with a
    /// frame every `frame_interval`. A stream of frames fills the window when a frame's
    /// burst comes on top of a round trip's worth of the stream, so what the window carries
    /// is `cwnd` over the round trip plus a frame interval. When that falls below the target
    /// (the window was cut: a loss while the stream filled it, or the round trip grew), the
    /// target comes down to [`WINDOW_SHARE_PCT`] of it at once, ending the start's quick rises
    /// like any sign of the path's limit. Rises go at most one step above the window: the
    /// stream must fill the window for it to grow, and a step is all it may overshoot by.
    /// Never below the floor. The new target if it changed.
    pub fn on_window(&mut self, cwnd: u64, rtt: Duration, frame_interval: Duration) -> Option<u32> {
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        // cwnd * (1 + slack / rtt) / (rtt + frame interval), in bit/s.
        let window = (cwnd.saturating_mul(8_000_000) / us(rtt + frame_interval))
            .saturating_mul(us(rtt + SEND_SLACK))
            / us(rtt);
        let window = u32::try_from(window).unwrap_or(u32::MAX);
        let fell = self.window.is_some_and(|w| window < w);
        self.window = Some(window);
        if !fell || self.target <= window {
            return None;
        }
        let share = u64::from(window) * WINDOW_SHARE_PCT / 100;
        let cut = u32::try_from(share)
            .unwrap_or(u32::MAX)
            .max(FLOOR_BPS.min(self.ceiling));
        self.startup = false;
        self.calm_since = None;
        self.target = cut;
        self.window_cuts += 1;
        Some(cut)
    }

    /// Bits per second the client received over the last [`RATE_WINDOW`].
    pub fn delivered_bps(&self, now: Instant) -> u64 {
        let bytes: u64 = self
            .acks
            .iter()
            .filter(|(t, _, _)| now.saturating_duration_since(*t) <= RATE_WINDOW)
            .map(|(_, _, b)| b)
            .sum();
        bytes * 8 * 1000 / RATE_WINDOW.as_millis() as u64
    }

    /// How far the recent delivery times stand above the path's own, if known.
    pub fn queueing(&self, now: Instant) -> Option<Duration> {
        let base = self.base_time()?;
        let mut recent: Vec<Duration> = self
            .acks
            .iter()
            .filter(|(t, _, _)| now.saturating_duration_since(*t) <= RECENT)
            .map(|(_, d, _)| *d)
            .collect();
        if recent.is_empty() {
            return None;
        }
        let quarter = recent.len() / 4;
        let (_, fast, _) = recent.select_nth_unstable(quarter);
        Some(fast.saturating_sub(base))
    }

    /// A frame could not be written in time: the path is full now (once per drain wait: an
    /// outage abandons every frame, and is one event).
    pub fn on_abandoned(&mut self, now: Instant) -> Option<u32> {
        if self.hold_until.is_some_and(|t| now < t) {
            return None;
        }
        self.decrease(now)
    }

    /// Judges the path at `now`; the new target if it changed.
    pub fn update(&mut self, now: Instant) -> Option<u32> {
        let q = self.queueing(now)?;
        while self
            .history
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > TREND)
        {
            self.history.pop_front();
        }
        let before = self.history.front().map_or(q, |(_, q)| *q);
        self.history.push_back((now, q));
        if self.hold_until.is_some_and(|t| now < t) {
            return None;
        }
        let growing = q > before + GROWTH;
        let limit = self.queue_limit();
        if q > STANDING_LIMIT || (q > limit && growing) {
            return self.decrease(now);
        }
        if q > limit || growing {
            self.calm_since = None;
            return None;
        }
        let calm = *self.calm_since.get_or_insert(now);
        let rested = self
            .last_rise
            .is_none_or(|t| now.saturating_duration_since(t) >= RISE_EVERY);
        let (calm_for, pct) = if self.startup {
            (CALM_FOR / 2, STARTUP_RISE_PCT)
        } else {
            (CALM_FOR, RISE_PCT)
        };
        let above_window = self.window.map_or(u32::MAX, |w| {
            (u64::from(w) * (100 + RISE_PCT) / 100)
                .try_into()
                .unwrap_or(u32::MAX)
        });
        let cap = self.ceiling.min(above_window);
        if self.target < cap && now.saturating_duration_since(calm) >= calm_for && rested {
            self.last_rise = Some(now);
            self.target = ((u64::from(self.target) * (100 + pct) / 100) as u32).min(cap);
            self.increases += 1;
            return Some(self.target);
        }
        None
    }

    fn decrease(&mut self, now: Instant) -> Option<u32> {
        self.startup = false;
        let delivered = u32::try_from(self.delivered_bps(now)).unwrap_or(u32::MAX);
        let basis = if delivered == 0 {
            self.target
        } else {
            self.target.min(delivered)
        };
        let new = ((u64::from(basis) * 85 / 100) as u32).max(FLOOR_BPS.min(self.ceiling));
        // Let what is queued drain before judging again: the path's own time plus half a
        // second.
        let base = self.base_time().unwrap_or_default();
        self.hold_until = Some(now + base + Duration::from_millis(500));
        self.calm_since = None;
        // Samples taken while the queue stood are no longer news.
        self.acks
            .retain(|(t, _, _)| now.saturating_duration_since(*t) <= RATE_WINDOW);
        if new == self.target {
            return None;
        }
        self.target = new;
        self.decreases += 1;
        Some(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bottleneck of `capacity` bit/s with a one-way delay of `one_way` (and as much back
    /// for the acknowledgement), fed at 30 frames a second by an encoder that produces exactly
    /// its target. Returns the controller and the delivery delay of every frame.
    fn run(
        capacity: u64,
        one_way: Duration,
        ceiling: u32,
        seconds: u64,
    ) -> (RateControl, Vec<(Instant, Duration)>) {
        run_impaired(capacity, one_way, ceiling, seconds, Duration::ZERO, 0)
    }

    /// [`run`] with a round trip that swings by up to `jitter` either way over two seconds,
    /// and, for `lossy_pct` % of frames, a lost packet that costs the frame a round trip more.
    fn run_impaired(
        capacity: u64,
        one_way: Duration,
        ceiling: u32,
        seconds: u64,
        jitter: Duration,
        lossy_pct: u64,
    ) -> (RateControl, Vec<(Instant, Duration)>) {
        let start = Instant::now();
        let mut rc = RateControl::new(ceiling);
        let mut queue_free_at = start;
        let mut pending: VecDeque<(Instant, Instant, u64)> = VecDeque::new();
        let mut delays = Vec::new();
        let interval = Duration::from_secs(1) / 30;
        for i in 0..seconds * 30 {
            let now = start + interval * i as u32;
            while pending.front().is_some_and(|(acked, _, _)| *acked <= now) {
                if let Some((acked, sent, bytes)) = pending.pop_front() {
                    rc.on_delivered(acked, sent, bytes);
                    delays.push((acked, acked - sent));
                }
            }
            rc.update(now);
            let bytes = u64::from(rc.target()) / 8 / 30;
            let tx = Duration::from_secs_f64(bytes as f64 * 8.0 / capacity as f64);
            let leaves = queue_free_at.max(now) + tx;
            queue_free_at = leaves;
            let phase = (i as f64 / 60.0 * std::f64::consts::TAU).sin();
            // A slow swing plus a normal draw per frame (Box-Muller on a fixed generator).
            let u = |k: u64| {
                ((k.wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407)
                    >> 11) as f64
                    + 1.0)
                    / (1u64 << 53) as f64
            };
            let normal =
                (-2.0 * u(2 * i).ln()).sqrt() * (std::f64::consts::TAU * u(2 * i + 1)).cos();
            let swing = (jitter.as_secs_f64() * (1.0 + phase + normal / 2.0)).max(0.0);
            // A deterministic scatter of the lossy frames.
            let lost = (i * 37 % 100) < lossy_pct;
            let rtt = one_way * 2 + Duration::from_secs_f64(swing);
            let acked = leaves + rtt + if lost { rtt + rtt / 8 } else { Duration::ZERO };
            pending.push_back((acked, now, bytes));
            pending.make_contiguous().sort_by_key(|p| p.0);
        }
        (rc, delays)
    }

    #[test]
    fn a_stream_above_the_link_comes_down_to_it_and_its_delay_does_not_grow() {
        // 20 Mbit/s asked of a 10 Mbit/s link, 35 ms each way.
        let (rc, delays) = run(10_000_000, Duration::from_millis(35), 20_000_000, 60);
        assert!(rc.decreases >= 1);
        // It saws around the link's rate: down to 85 % of it, up by 8 % steps a little past.
        assert!(
            (5_000_000..=12_000_000).contains(&rc.target()),
            "target {}",
            rc.target()
        );
        // Over the last 50 s the delivery time stays bounded, and the last 10 s are no
        // worse than the 10 s before them (no growing queue).
        let start = delays[0].0;
        let window = |from: u64, to: u64| -> Duration {
            delays
                .iter()
                .filter(|(t, _)| {
                    let s = t.duration_since(start).as_secs();
                    (from..to).contains(&s)
                })
                .map(|(_, d)| *d)
                .max()
                .unwrap_or_default()
        };
        let late = window(50, 60);
        assert!(late < Duration::from_millis(70 + 200), "{late:?}");
        assert!(late <= window(40, 50) + Duration::from_millis(60));
        for s in 10..60 {
            assert!(
                window(s, s + 1) < Duration::from_millis(70 + 300),
                "second {s}: {:?}",
                window(s, s + 1)
            );
        }
    }

    #[test]
    fn a_stream_the_link_carries_keeps_its_rate() {
        let (rc, _) = run(50_000_000, Duration::from_millis(20), 16_000_000, 30);
        assert_eq!(rc.decreases, 0);
        assert_eq!(
            rc.target(),
            16_000_000,
            "reached from the start rate and kept"
        );
    }

    #[test]
    fn losses_and_jitter_alone_do_not_lower_the_rate() {
        // `lte`'s terms without its rate limit: 35 ms each way swinging by 25 ms, and half the
        // frames delayed a round trip by a lost packet.
        let (rc, _) = run_impaired(
            100_000_000,
            Duration::from_millis(35),
            8_000_000,
            60,
            Duration::from_millis(25),
            50,
        );
        assert_eq!(rc.decreases, 0);
        assert_eq!(rc.target(), 8_000_000);
    }

    #[test]
    fn a_stream_above_a_lossy_jittery_link_still_comes_down() {
        let (rc, _) = run_impaired(
            10_000_000,
            Duration::from_millis(35),
            16_000_000,
            60,
            Duration::from_millis(25),
            30,
        );
        assert!(rc.decreases >= 1);
        assert!(
            (3_000_000..=10_000_000).contains(&rc.target()),
            "target {}",
            rc.target()
        );
    }

    #[test]
    fn the_rate_comes_back_when_the_link_clears() {
        let start = Instant::now();
        let mut rc = RateControl::new(8_000_000);
        let t = start + Duration::from_secs(1);
        // 2 Mbit/s delivered over the last second, then a frame abandoned.
        for i in 0..30u32 {
            let at = start + Duration::from_millis(33) * i;
            rc.on_delivered(at, at - Duration::from_millis(40), 8_333);
        }
        let lowered = rc.on_abandoned(t).expect("lowered");
        assert!((1_500_000..=1_800_000).contains(&lowered), "{lowered}");
        assert_eq!(rc.on_abandoned(t), None, "one event per drain wait");
        // Calm deliveries at the path's own delay for a while: the target climbs back.
        let mut now = t;
        for _ in 0..900 {
            now += Duration::from_millis(33);
            rc.on_delivered(now, now - Duration::from_millis(40), 30_000);
            rc.update(now);
        }
        assert_eq!(rc.target(), 8_000_000);
        assert!(rc.increases >= 2);
    }

    #[test]
    fn the_queue_limit_follows_the_paths_own_spread() {
        let start = Instant::now();
        // Delivery times of 40-44 ms (a steady path): a queue is cut at the 25 ms floor.
        let mut steady = RateControl::new(8_000_000);
        // 40-100 ms, evenly spread (a wandering cellular path): 2 x (70 - 46) ms, at most 60.
        let mut wandering = RateControl::new(8_000_000);
        for i in 0..300u32 {
            let at = start + Duration::from_millis(33) * i;
            steady.on_delivered(at, at - Duration::from_millis(40 + u64::from(i % 5)), 8_000);
            wandering.on_delivered(
                at,
                at - Duration::from_millis(40 + u64::from(i % 61)),
                8_000,
            );
        }
        assert_eq!(steady.queue_limit(), QUEUE_LIMIT_MIN);
        assert!(
            (Duration::from_millis(45)..=QUEUE_LIMIT).contains(&wandering.queue_limit()),
            "{:?}",
            wandering.queue_limit()
        );
        assert_eq!(RateControl::new(8_000_000).queue_limit(), QUEUE_LIMIT);
    }

    #[test]
    fn a_window_cut_lowers_the_target_at_once_and_rises_stop_one_step_above_the_window() {
        let start = Instant::now();
        let rtt = Duration::from_millis(40);
        let frame = Duration::from_secs(1) / 30;
        let mut rc = RateControl::new(16_000_000);
        // A calm path whose window (45 kB) carries about 5.3 Mbit/s: the target rises from
        // 2 Mbit/s, to the window and at most one step past it (so that the stream fills the
        // window and lets it grow), no further.
        let mut highest = 0;
        for i in 0..200u32 {
            let now = start + Duration::from_millis(u64::from(i) * 100);
            rc.on_delivered(now, now - rtt, 10_000);
            assert_eq!(
                rc.on_window(45_000, rtt, frame),
                None,
                "a steady window, at {i}"
            );
            rc.update(now);
            highest = highest.max(rc.target());
        }
        let window = rc.window.expect("measured");
        assert!(
            (5_000_000..5_600_000).contains(&window),
            "45 kB over 40 ms + a frame (+5 ms of slack): {window} bit/s"
        );
        assert!(highest >= window, "rose to {highest}, window {window}");
        assert!(
            u64::from(highest) <= u64::from(window) * (100 + RISE_PCT) / 100,
            "rose to {highest}, window {window}"
        );
        // The window is cut (a loss while the stream filled it): the target comes down to
        // 85 % of it at once, with no queue seen in the delivery times.
        let cut = rc.on_window(30_000, rtt, frame).expect("a cut");
        let window = rc.window.expect("measured");
        assert_eq!(u64::from(cut), u64::from(window) * WINDOW_SHARE_PCT / 100);
        assert_eq!((rc.window_cuts, rc.decreases), (1, 0));
        // A window that grows, or stays, does not move it; one that falls far leaves the
        // floor.
        assert_eq!(rc.on_window(31_000, rtt, frame), None);
        assert_eq!(rc.on_window(31_000, rtt, frame), None);
        assert_eq!(rc.on_window(100, rtt, frame), Some(FLOOR_BPS));
    }

    #[test]
    fn the_first_window_measured_is_not_a_cut() {
        // A new connection's window (QUIC's initial 14.7 kB) is below the start rate at a
        // long round trip: that is not a loss, and the start rate stands (the window grows as
        // the stream fills it).
        let mut rc = RateControl::new(16_000_000);
        let rtt = Duration::from_millis(100);
        assert_eq!(rc.on_window(14_720, rtt, Duration::from_secs(1) / 30), None);
        assert_eq!(rc.target(), START_BPS);
    }

    #[test]
    fn it_never_asks_below_its_floor() {
        let start = Instant::now();
        let mut rc = RateControl::new(2_000_000);
        for i in 0..100u32 {
            let now = start + Duration::from_secs(u64::from(i));
            rc.on_abandoned(now);
        }
        assert_eq!(rc.target(), FLOOR_BPS);
    }
}
