//! One direction of an impaired link, without I/O: [`DirectionModel::submit`] takes a packet's
//! arrival time and length and answers when it is delivered (zero, one or two times). Time is
//! whatever the caller says it is, so tests drive it with simulated time.
//!
//! Stages, in order: outage (blackhole) -> loss -> bottleneck queue (rate, tail drop) ->
//! propagation delay and jitter (order kept unless reordered) -> duplication. Every packet
//! draws the same number of random values whatever happens to it, so the decisions for packet
//! N depend only on the seed and N (and, for the queue and outages, on time).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::profile::{Blackholes, LinkSpec, Loss};

/// What happened to the packets of one direction. `lost + blackholed + queue_dropped +
/// delivered_once == packets`; duplicates are counted apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub lost: u64,
    pub blackholed: u64,
    pub queue_dropped: u64,
    pub delivered: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

/// Both directions' counters as one JSON object (`up`: client -> server).
pub fn counters_json(up: Counters, down: Counters) -> serde_json::Value {
    let one = |c: Counters| {
        serde_json::json!({
            "packets": c.packets, "bytes": c.bytes, "lost": c.lost,
            "blackholed": c.blackholed, "queue_dropped": c.queue_dropped,
            "delivered": c.delivered, "duplicated": c.duplicated, "reordered": c.reordered,
        })
    };
    serde_json::json!({ "up": one(up), "down": one(down) })
}

/// One direction of a link under a [`LinkSpec`].
pub struct DirectionModel {
    spec: LinkSpec,
    holes: Option<Blackholes>,
    /// A blackhole started by hand (the relay's `blackhole MS` command) lasts until this time.
    manual_hole_until: Duration,
    rng: StdRng,
    bad_state: bool,
    /// When the bottleneck finishes sending what it holds.
    busy_until: Duration,
    /// The latest delivery of a packet that kept its order.
    last_in_order: Duration,
    /// The jitter's knots (standard normal values at multiples of `jitter_period`), drawn in
    /// time order from their own stream: knot `knot` and the next.
    knot_rng: StdRng,
    knot: u64,
    knot_values: (f64, f64),
    pub counters: Counters,
}

/// Per-packet random draws, always all of them.
struct Draws {
    transition: f64,
    loss: f64,
    normal: f64,
    reorder: f64,
    duplicate: f64,
}

impl DirectionModel {
    pub fn new(spec: LinkSpec, holes: Option<Blackholes>, seed: u64) -> DirectionModel {
        let mut m = DirectionModel {
            spec,
            holes,
            manual_hole_until: Duration::ZERO,
            rng: StdRng::seed_from_u64(seed),
            knot_rng: StdRng::seed_from_u64(seed ^ 0x6a09_e667_f3bc_c908),
            knot: 0,
            knot_values: (0.0, 0.0),
            bad_state: false,
            busy_until: Duration::ZERO,
            last_in_order: Duration::ZERO,
            counters: Counters::default(),
        };
        m.knot_values = (m.knot_normal(), m.knot_normal());
        m
    }

    fn knot_normal(&mut self) -> f64 {
        let u1: f64 = self.knot_rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = self.knot_rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// The jitter at `t` in standard deviations: the knots around `t` joined linearly and
    /// rescaled so every instant is exactly N(0, 1).
    fn smooth_jitter(&mut self, t: Duration) -> f64 {
        let period = self.spec.jitter_period.as_nanos().max(1);
        let at = t.as_nanos() / period;
        let target = u64::try_from(at).unwrap_or(u64::MAX);
        while self.knot < target {
            self.knot += 1;
            self.knot_values = (self.knot_values.1, self.knot_normal());
        }
        let f = (t.as_nanos() % period) as f64 / period as f64;
        let (a, b) = self.knot_values;
        (a * (1.0 - f) + b * f) / ((1.0 - f).powi(2) + f * f).sqrt()
    }

    /// Nothing crosses from `now` for `length`.
    pub fn blackhole(&mut self, now: Duration, length: Duration) {
        self.manual_hole_until = self.manual_hole_until.max(now + length);
    }

    /// Whether `t` falls in an outage, scheduled or started by hand.
    pub fn in_outage(&self, t: Duration) -> bool {
        t < self.manual_hole_until || self.holes.is_some_and(|h| h.covers(t))
    }

    fn draw(&mut self) -> Draws {
        let u1: f64 = self.rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = self.rng.random();
        Draws {
            transition: self.rng.random(),
            loss: self.rng.random(),
            // Box-Muller: a standard normal from two uniforms.
            normal: (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos(),
            reorder: self.rng.random(),
            duplicate: self.rng.random(),
        }
    }

    fn lost(&mut self, d: &Draws) -> bool {
        match self.spec.loss {
            Loss::None => false,
            Loss::Random(p) => d.loss < p,
            Loss::GilbertElliott {
                p_enter_bad,
                p_leave_bad,
                loss_good,
                loss_bad,
            } => {
                let flip = if self.bad_state {
                    p_leave_bad
                } else {
                    p_enter_bad
                };
                if d.transition < flip {
                    self.bad_state = !self.bad_state;
                }
                d.loss < if self.bad_state { loss_bad } else { loss_good }
            }
        }
    }

    /// A packet of `len` bytes arrives at `now`: the times it is delivered (empty: dropped).
    pub fn submit(&mut self, now: Duration, len: usize) -> Vec<Duration> {
        let d = self.draw();
        let c = &mut self.counters;
        c.packets += 1;
        c.bytes += len as u64;
        if self.in_outage(now) {
            self.counters.blackholed += 1;
            return Vec::new();
        }
        if self.lost(&d) {
            self.counters.lost += 1;
            return Vec::new();
        }
        let mut leaves = now;
        if let Some(rate) = self.spec.rate_bps.filter(|r| *r > 0) {
            let start = self.busy_until.max(now);
            let backlog = (start - now).as_secs_f64() * rate as f64 / 8.0;
            if backlog + len as f64 > self.spec.queue_bytes as f64 {
                self.counters.queue_dropped += 1;
                return Vec::new();
            }
            let serialise = Duration::from_secs_f64(len as f64 * 8.0 / rate as f64);
            self.busy_until = start + serialise;
            leaves = self.busy_until;
        }
        let sigma = self.spec.jitter.as_secs_f64();
        let z = if sigma == 0.0 {
            0.0
        } else if self.spec.jitter_period.is_zero() {
            d.normal
        } else {
            self.smooth_jitter(leaves)
        };
        let extra = (sigma * z).clamp(-self.spec.delay.as_secs_f64(), 4.0 * sigma);
        let arrive = Duration::from_secs_f64((leaves + self.spec.delay).as_secs_f64() + extra);
        let at = if d.reorder < self.spec.reorder {
            self.counters.reordered += 1;
            arrive.max(self.last_in_order) + self.spec.reorder_gap
        } else {
            let at = arrive.max(self.last_in_order);
            self.last_in_order = at;
            at
        };
        self.counters.delivered += 1;
        if d.duplicate < self.spec.duplicate {
            self.counters.duplicated += 1;
            vec![at, at]
        } else {
            vec![at]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;

    const MS: Duration = Duration::from_millis(1);

    fn run(spec: LinkSpec, seed: u64, n: usize, gap: Duration) -> (Vec<Vec<Duration>>, Counters) {
        let mut m = DirectionModel::new(spec, None, seed);
        let out = (0..n).map(|i| m.submit(gap * i as u32, 100)).collect();
        (out, m.counters)
    }

    #[test]
    fn a_plain_delay_delivers_every_packet_after_it() {
        let (out, c) = run(LinkSpec::delay(20 * MS), 1, 100, MS);
        for (i, d) in out.iter().enumerate() {
            assert_eq!(d, &vec![MS * i as u32 + 20 * MS]);
        }
        assert_eq!(c.delivered, 100);
    }

    #[test]
    fn the_same_seed_makes_the_same_decisions_and_another_seed_others() {
        let spec = Profile::named("lte").expect("lte").up;
        let a = run(spec, 7, 5000, MS);
        let b = run(spec, 7, 5000, MS);
        let c = run(spec, 8, 5000, MS);
        assert_eq!(a, b);
        assert_ne!(a.0, c.0);
    }

    #[test]
    fn random_loss_is_near_its_rate() {
        let spec = LinkSpec {
            loss: Loss::Random(0.01),
            ..LinkSpec::delay(MS)
        };
        let (_, c) = run(spec, 3, 100_000, MS);
        assert!((800..1200).contains(&c.lost), "{c:?}");
        assert_eq!(c.lost + c.delivered, c.packets);
    }

    #[test]
    fn bursty_loss_comes_in_bursts_of_the_asked_mean_length() {
        let spec = LinkSpec {
            loss: Loss::bursty(0.02, 3.0),
            ..LinkSpec::delay(MS)
        };
        let (out, c) = run(spec, 4, 200_000, MS);
        let rate = c.lost as f64 / c.packets as f64;
        assert!((0.015..0.025).contains(&rate), "{rate}");
        let bursts = out
            .windows(2)
            .filter(|w| !w[0].is_empty() && w[1].is_empty())
            .count();
        let mean_burst = c.lost as f64 / bursts as f64;
        assert!((2.5..3.5).contains(&mean_burst), "{mean_burst}");
    }

    #[test]
    fn jitter_spreads_delays_but_keeps_order() {
        let spec = LinkSpec {
            jitter: 5 * MS,
            ..LinkSpec::delay(20 * MS)
        };
        let (out, c) = run(spec, 5, 10_000, 10 * MS);
        let times: Vec<Duration> = out.iter().map(|d| d[0]).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "reordered");
        assert_eq!(c.reordered, 0);
        let delays: Vec<f64> = times
            .iter()
            .enumerate()
            .map(|(i, t)| (*t - 10 * MS * i as u32).as_secs_f64() * 1e3)
            .collect();
        let mean = delays.iter().sum::<f64>() / delays.len() as f64;
        let sd =
            (delays.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / delays.len() as f64).sqrt();
        // Packets 10 ms apart rarely wait for the one before: mean and spread near the spec.
        assert!((19.0..21.5).contains(&mean), "mean {mean}");
        assert!((4.0..5.5).contains(&sd), "sd {sd}");
    }

    #[test]
    fn a_fast_stream_sees_the_same_delays_as_a_slow_one() {
        // Smooth jitter: 1000 packets a second are not pushed up by keeping their order.
        let spec = LinkSpec {
            jitter: 10 * MS,
            ..LinkSpec::delay(30 * MS)
        };
        let mean_delay = |gap: Duration, n: usize| {
            let (out, _) = run(spec, 9, n, gap);
            let total: f64 = out
                .iter()
                .enumerate()
                .map(|(i, d)| (d[0] - gap * i as u32).as_secs_f64() * 1e3)
                .sum();
            total / n as f64
        };
        let fast = mean_delay(MS, 200_000);
        let slow = mean_delay(100 * MS, 2_000);
        assert!((28.0..33.0).contains(&slow), "slow stream: {slow} ms");
        assert!(fast - slow < 2.0, "fast stream {fast} ms, slow {slow} ms");
    }

    #[test]
    fn reordered_packets_are_overtaken_and_duplicates_come_twice() {
        let spec = LinkSpec {
            reorder: 0.1,
            reorder_gap: 3 * MS,
            duplicate: 0.05,
            ..LinkSpec::delay(10 * MS)
        };
        let (out, c) = run(spec, 6, 10_000, MS);
        let flat: Vec<Duration> = out.iter().flatten().copied().collect();
        let overtaken = flat.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(overtaken > 500, "{overtaken}");
        assert!((800..1200).contains(&c.reordered), "{c:?}");
        assert!((400..600).contains(&c.duplicated), "{c:?}");
        assert_eq!(flat.len() as u64, c.delivered + c.duplicated);
    }

    #[test]
    fn a_bottleneck_paces_packets_and_drops_beyond_its_queue() {
        // 1 Mbit/s: a 1250-byte packet takes 10 ms; the queue holds 5 of them.
        let spec = LinkSpec {
            rate_bps: Some(1_000_000),
            queue_bytes: 5 * 1250,
            ..LinkSpec::delay(MS)
        };
        let mut m = DirectionModel::new(spec, None, 1);
        let burst: Vec<Vec<Duration>> = (0..20).map(|_| m.submit(Duration::ZERO, 1250)).collect();
        let sent: Vec<Duration> = burst.iter().flatten().copied().collect();
        assert_eq!(sent.len(), 5);
        for (i, t) in sent.iter().enumerate() {
            assert_eq!(*t, 10 * MS * (i as u32 + 1) + MS);
        }
        assert_eq!(m.counters.queue_dropped, 15);
        // Once drained, the next packet goes straight through.
        assert_eq!(
            m.submit(Duration::from_secs(1), 1250),
            vec![Duration::from_secs(1) + 11 * MS]
        );
    }

    #[test]
    fn nothing_crosses_an_outage_and_traffic_resumes_after_it() {
        let holes = Blackholes {
            first: Duration::from_secs(1),
            every: Duration::from_secs(10),
            length: Duration::from_secs(3),
        };
        let mut m = DirectionModel::new(LinkSpec::delay(MS), Some(holes), 1);
        let at = |s: f64| Duration::from_secs_f64(s);
        assert_eq!(m.submit(at(0.5), 10).len(), 1);
        assert!(m.submit(at(1.0), 10).is_empty());
        assert!(m.submit(at(3.99), 10).is_empty());
        assert_eq!(m.submit(at(4.0), 10).len(), 1);
        assert!(m.submit(at(11.5), 10).is_empty());
        m.blackhole(at(20.0), Duration::from_millis(500));
        assert!(m.submit(at(20.4), 10).is_empty());
        assert_eq!(m.submit(at(20.5), 10).len(), 1);
        assert_eq!(m.counters.blackholed, 4);
    }
}
