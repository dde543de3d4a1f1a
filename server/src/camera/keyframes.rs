//! Per-client rate limit of keyframe requests. A keyframe costs the encoder and every viewer's
//! bandwidth several times a predicted frame, so one client (even a read-only one) asking on
//! every frame would degrade the stream for all. A client gets at most one keyframe per
//! [`MIN_INTERVAL`]; requests inside the interval are merged into one, honoured when it ends,
//! so a client that lost a frame still gets its keyframe, just not sooner.

use std::time::{Duration, Instant};

/// Shortest time between two keyframes asked for by one client.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// One client's keyframe requests.
#[derive(Debug, Default)]
pub struct KeyframeLimiter {
    last: Option<Instant>,
    pending: bool,
    /// Requests merged into a later one (inside the interval).
    pub merged: u64,
}

impl KeyframeLimiter {
    /// A request at `now`: `true` if it is to be forwarded to the encoder now; otherwise it is
    /// held until [`Self::due`].
    pub fn request(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.duration_since(last) < MIN_INTERVAL => {
                self.pending = true;
                self.merged += 1;
                false
            }
            _ => {
                self.last = Some(now);
                true
            }
        }
    }

    /// When a held request is to be forwarded, if one is held.
    pub fn due(&self) -> Option<Instant> {
        self.pending
            .then(|| self.last.map(|l| l + MIN_INTERVAL))
            .flatten()
    }

    /// The held request is forwarded at `now`.
    pub fn fire(&mut self, now: Instant) {
        self.pending = false;
        self.last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_every_frame_gets_one_keyframe_a_second() {
        let t0 = Instant::now();
        let mut l = KeyframeLimiter::default();
        let mut forwarded = 0;
        // 30 fps for 3 s, a request with every frame; the held one fired when due.
        for i in 0..90u64 {
            let now = t0 + Duration::from_millis(i * 1000 / 30);
            if l.due().is_some_and(|d| d <= now) {
                l.fire(now);
                forwarded += 1;
            }
            if l.request(now) {
                forwarded += 1;
            }
        }
        assert!((3..=4).contains(&forwarded), "{forwarded}");
        assert!(l.merged >= 85, "{}", l.merged);
    }

    #[test]
    fn a_request_inside_the_interval_is_held_not_lost() {
        let t0 = Instant::now();
        let mut l = KeyframeLimiter::default();
        assert!(l.request(t0));
        assert_eq!(l.due(), None);
        assert!(!l.request(t0 + Duration::from_millis(100)));
        assert_eq!(l.due(), Some(t0 + MIN_INTERVAL));
        l.fire(t0 + MIN_INTERVAL);
        assert_eq!(l.due(), None);
        assert!(l.request(t0 + MIN_INTERVAL * 2));
    }
}
