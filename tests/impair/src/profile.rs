//! Link profiles: what one direction of a link does to packets ([`LinkSpec`]), and the named
//! profiles every test and benchmark shares ([`Profile::named`]).

use std::time::Duration;

/// How packets are lost in one direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    None,
    /// Each packet lost independently with this probability.
    Random(f64),
    /// Gilbert-Elliott: a good and a bad state; `p_enter_bad` and `p_leave_bad` are the
    /// per-packet transition probabilities, `loss_good` and `loss_bad` the loss probability in
    /// each state. Losses come in bursts of mean length `1 / p_leave_bad` when `loss_bad` is 1.
    GilbertElliott {
        p_enter_bad: f64,
        p_leave_bad: f64,
        loss_good: f64,
        loss_bad: f64,
    },
}

impl Loss {
    /// Bursty loss with mean rate `rate` and mean burst length `burst` packets (every packet
    /// of a burst lost, none outside one).
    pub fn bursty(rate: f64, burst: f64) -> Loss {
        let p_leave_bad = 1.0 / burst.max(1.0);
        // Stationary P(bad) = enter / (enter + leave) = rate.
        let p_enter_bad = rate * p_leave_bad / (1.0 - rate).max(f64::EPSILON);
        Loss::GilbertElliott {
            p_enter_bad,
            p_leave_bad,
            loss_good: 0.0,
            loss_bad: 1.0,
        }
    }

    /// The long-run fraction of packets lost.
    pub fn mean_rate(&self) -> f64 {
        match *self {
            Loss::None => 0.0,
            Loss::Random(p) => p,
            Loss::GilbertElliott {
                p_enter_bad,
                p_leave_bad,
                loss_good,
                loss_bad,
            } => {
                let bad = p_enter_bad / (p_enter_bad + p_leave_bad).max(f64::EPSILON);
                bad * loss_bad + (1.0 - bad) * loss_good
            }
        }
    }
}

/// What one direction of a link does to the packets that cross it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkSpec {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Standard deviation of a normally distributed extra delay (truncated to [-delay, +4σ]).
    /// Packets keep their order unless `reorder` picks them.
    pub jitter: Duration,
    /// How fast the extra delay changes: a new random value every `jitter_period`, joined
    /// smoothly, as queues on a real path fill and drain; packets close in time see about the
    /// same delay whatever their rate. Zero: an independent draw per packet (which, with order
    /// kept, pushes a fast stream's delays towards the top of the distribution).
    pub jitter_period: Duration,
    pub loss: Loss,
    /// Probability that a packet is held back by `reorder_gap`, so the packets after it
    /// overtake it.
    pub reorder: f64,
    pub reorder_gap: Duration,
    /// Probability that a packet is delivered twice.
    pub duplicate: f64,
    /// Bottleneck rate in bit/s (`None`: unlimited), with a tail-drop queue of `queue_bytes`.
    pub rate_bps: Option<u64>,
    pub queue_bytes: usize,
}

impl LinkSpec {
    /// A perfect link with this one-way delay.
    pub const fn delay(delay: Duration) -> LinkSpec {
        LinkSpec {
            delay,
            jitter: Duration::ZERO,
            jitter_period: Duration::from_millis(50),
            loss: Loss::None,
            reorder: 0.0,
            reorder_gap: Duration::from_millis(1),
            duplicate: 0.0,
            rate_bps: None,
            queue_bytes: 0,
        }
    }
}

/// Periodic outages of both directions: nothing crosses for `length`, every `every`, the
/// first starting at `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blackholes {
    pub first: Duration,
    pub every: Duration,
    pub length: Duration,
}

impl Blackholes {
    /// Whether `t` (since the relay started) falls in an outage.
    pub fn covers(&self, t: Duration) -> bool {
        if t < self.first || self.every.is_zero() {
            return t >= self.first && t < self.first + self.length;
        }
        let into = (t - self.first).as_nanos() % self.every.as_nanos();
        into < self.length.as_nanos()
    }
}

impl Blackholes {
    /// The start of the first outage that ends after `t`.
    pub fn next_ending_after(&self, t: Duration) -> Duration {
        if t < self.first + self.length || self.every.is_zero() {
            return self.first;
        }
        let since = (t - self.first - self.length).as_nanos();
        let k = since / self.every.as_nanos() + 1;
        self.first + Duration::from_nanos((k * self.every.as_nanos()) as u64)
    }
}

/// A named link: client-to-server (`up`, the mounter's writes) and server-to-client (`down`,
/// the robot's uploads) specs, and optional periodic outages.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    /// Mounter -> server.
    pub up: LinkSpec,
    /// Server -> mounter: what the robot uploads (camera, audio, feedback).
    pub down: LinkSpec,
    pub blackholes: Option<Blackholes>,
}

/// The names [`Profile::named`] knows.
pub const PROFILE_NAMES: [&str; 5] = ["lan", "wifi", "wan", "lte", "outage"];

impl Profile {
    /// The shared profiles. Delays and jitter are given as round-trip figures and split evenly
    /// between the directions (jitter: a round trip's standard deviation, each direction
    /// 1/√2 of it, changing smoothly over 50 ms); loss rates apply to each direction
    /// independently.
    /// - `lan`: 0.2 ms RTT.
    /// - `wifi`: 3 ms ± 2 ms RTT, 0.5 % random loss.
    /// - `wan`: 40 ms RTT, 1 % random loss.
    /// - `lte`: 70 ms ± 25 ms RTT, 2 % bursty loss (bursts of 3 packets on average), the
    ///   robot's uplink (server -> mounter) 10 Mbit/s with a 100 ms queue.
    /// - `outage`: `wan` plus a 3 s blackhole every 30 s, the first after 10 s.
    pub fn named(name: &str) -> Option<Profile> {
        let ms = Duration::from_micros;
        let split = |rtt_us: u64, jitter_us: u64, loss: Loss| LinkSpec {
            jitter: ms((jitter_us as f64 / std::f64::consts::SQRT_2) as u64),
            loss,
            ..LinkSpec::delay(ms(rtt_us / 2))
        };
        let (up, down, blackholes) = match name {
            "lan" => {
                let l = split(200, 0, Loss::None);
                (l, l, None)
            }
            "wifi" => {
                let l = split(3_000, 2_000, Loss::Random(0.005));
                (l, l, None)
            }
            "wan" | "outage" => {
                let l = split(40_000, 0, Loss::Random(0.01));
                let holes = (name == "outage").then_some(Blackholes {
                    first: Duration::from_secs(10),
                    every: Duration::from_secs(30),
                    length: Duration::from_secs(3),
                });
                (l, l, holes)
            }
            "lte" => {
                let l = split(70_000, 25_000, Loss::bursty(0.02, 3.0));
                let rate = 10_000_000u64;
                let down = LinkSpec {
                    rate_bps: Some(rate),
                    // 100 ms of the bottleneck's rate.
                    queue_bytes: (rate / 8 / 10) as usize,
                    ..l
                };
                (l, down, None)
            }
            _ => return None,
        };
        Some(Profile {
            name: name.to_string(),
            up,
            down,
            blackholes,
        })
    }

    /// The round trip a small packet sees with no jitter, loss or queue.
    pub fn base_rtt(&self) -> Duration {
        self.up.delay + self.down.delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_profile_exists_and_has_its_round_trip() {
        let rtt = |n: &str| Profile::named(n).expect(n).base_rtt().as_micros();
        assert_eq!(rtt("lan"), 200);
        assert_eq!(rtt("wifi"), 3_000);
        assert_eq!(rtt("wan"), 40_000);
        assert_eq!(rtt("lte"), 70_000);
        assert_eq!(rtt("outage"), 40_000);
        for n in PROFILE_NAMES {
            assert!(Profile::named(n).is_some());
        }
        assert!(Profile::named("moon").is_none());
    }

    #[test]
    fn bursty_loss_has_the_asked_mean_rate() {
        let l = Loss::bursty(0.02, 3.0);
        assert!((l.mean_rate() - 0.02).abs() < 1e-9);
    }

    #[test]
    fn blackholes_repeat() {
        let b = Blackholes {
            first: Duration::from_secs(10),
            every: Duration::from_secs(30),
            length: Duration::from_secs(3),
        };
        let s = Duration::from_secs_f64;
        assert!(!b.covers(s(9.9)));
        assert!(b.covers(s(10.0)));
        assert!(b.covers(s(12.9)));
        assert!(!b.covers(s(13.0)));
        assert!(b.covers(s(41.0)));
        assert!(!b.covers(s(39.0)));
        assert_eq!(b.next_ending_after(s(0.0)), s(10.0));
        assert_eq!(b.next_ending_after(s(12.0)), s(10.0));
        assert_eq!(b.next_ending_after(s(13.0)), s(40.0));
        assert_eq!(b.next_ending_after(s(42.9)), s(40.0));
        assert_eq!(b.next_ending_after(s(43.0)), s(70.0));
    }
}
