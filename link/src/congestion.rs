//! The congestion controller XoQ runs: CUBIC, except that a random loss does not shrink the
//! window of a connection that sends less than its window allows.
//!
//! Most of what XoQ carries is paced by the robot, not by the network: audio packets every
//! 10 ms, CAN feedback at the bus rate, serial bytes at the baud rate. Such a connection is
//! *application-limited*: it never fills its window, so CUBIC never grows the window (it only
//! grows on acknowledgements of a window-limited sender), yet every loss multiplies it by 0.7.
//! At 1 % random loss the window ratchets down to its floor of two packets within seconds, the
//! steady flow no longer fits, and packets queue behind the window: at the `wan` profile the
//! speaker's mouth-to-ear p99 went from 52 to 89 ms this way (docs/BENCHMARKS.md).
//!
//! [`AppLimitedFloor`] follows the idea of RFC 7661 (congestion window validation): a loss
//! while the connection has been application-limited for a while, and while the window is
//! still no more than twice what it has recently used, is not taken as a signal to go below
//! that. Concretely, a congestion event is passed to CUBIC unless all of these hold:
//! - no packet waited for the window during the last [`DEMAND_WINDOW`] (the sender is not
//!   competing for the path: a camera filling the link still backs off as CUBIC does);
//! - CUBIC's reduction would take the window below twice the largest number of bytes in
//!   flight during the last [`DEMAND_WINDOW`];
//! - that floor is at most [`FLOOR_CAP`], so only small steady flows are shielded;
//! - it is not persistent congestion (a dead path still collapses the window).
//!
//! Everything else is CUBIC's, unchanged.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use noq_proto::congestion::{Controller, ControllerFactory, Cubic, CubicConfig};
use noq_proto::RttEstimator;

/// How far back the connection's use of its window is remembered.
pub const DEMAND_WINDOW: Duration = Duration::from_secs(1);
/// The largest window a loss is kept from shrinking: twice 32 KiB in flight (audio as PCM at
/// 48 kHz stereo over a 150 ms round trip uses 29 KiB).
pub const FLOOR_CAP: u64 = 64 * 1024;

/// Builds [`AppLimitedFloor`] controllers around CUBIC.
#[derive(Debug, Default)]
pub struct AppLimitedFloorConfig {
    cubic: Arc<CubicConfig>,
}

impl ControllerFactory for AppLimitedFloorConfig {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(AppLimitedFloor::new(
            Box::new(Cubic::new(self.cubic.clone(), now, current_mtu)),
            now,
        ))
    }
}

/// The largest bytes in flight over the last [`DEMAND_WINDOW`], and when the window last held
/// a packet back: what the connection actually uses.
#[derive(Debug, Clone)]
pub struct Demand {
    in_flight: u64,
    /// Peak in flight in the current and the previous half of [`DEMAND_WINDOW`].
    peak: [u64; 2],
    bucket_start: Instant,
    last_cwnd_limited: Option<Instant>,
    cwnd_limited_pending: bool,
}

impl Demand {
    pub fn new(now: Instant) -> Self {
        Demand {
            in_flight: 0,
            peak: [0, 0],
            bucket_start: now,
            last_cwnd_limited: None,
            cwnd_limited_pending: false,
        }
    }

    fn tick(&mut self, now: Instant) {
        let half = DEMAND_WINDOW / 2;
        let elapsed = now.saturating_duration_since(self.bucket_start);
        if elapsed >= DEMAND_WINDOW {
            self.peak = [self.in_flight, 0];
            self.bucket_start = now;
        } else if elapsed >= half {
            self.peak = [self.in_flight, self.peak[0]];
            self.bucket_start = now;
        }
        if self.cwnd_limited_pending {
            self.cwnd_limited_pending = false;
            self.last_cwnd_limited = Some(now);
        }
    }

    fn observe(&mut self, now: Instant) {
        self.tick(now);
        self.peak[0] = self.peak[0].max(self.in_flight);
    }

    /// Bytes were sent.
    pub fn on_sent(&mut self, now: Instant, bytes: u64) {
        self.in_flight = self.in_flight.saturating_add(bytes);
        self.observe(now);
    }

    /// Acknowledgements were processed; `in_flight` is the transport's own count after them.
    pub fn on_end_acks(&mut self, now: Instant, in_flight: u64) {
        self.in_flight = in_flight;
        self.observe(now);
    }

    /// The window held a packet back (stamped at the next event that carries a time).
    pub fn on_cwnd_limited(&mut self) {
        self.cwnd_limited_pending = true;
    }

    /// The most bytes in flight during the last [`DEMAND_WINDOW`].
    pub fn peak_in_flight(&self) -> u64 {
        self.peak[0].max(self.peak[1])
    }

    /// Whether the window held a packet back during the last [`DEMAND_WINDOW`].
    pub fn recently_cwnd_limited(&self, now: Instant) -> bool {
        self.cwnd_limited_pending
            || self
                .last_cwnd_limited
                .is_some_and(|t| now.saturating_duration_since(t) < DEMAND_WINDOW)
    }

    /// Whether a congestion event that would take the window from `window` to
    /// `window * 0.7` should be kept from the controller (see the module's rules).
    pub fn shields(&mut self, now: Instant, window: u64, persistent: bool) -> bool {
        self.tick(now);
        if persistent || self.recently_cwnd_limited(now) {
            return false;
        }
        let floor = self.peak_in_flight().saturating_mul(2);
        floor <= FLOOR_CAP && window.saturating_mul(7) / 10 < floor
    }
}

/// CUBIC with [`Demand`]'s floor for application-limited connections (module docs).
#[derive(Debug)]
pub struct AppLimitedFloor {
    inner: Box<dyn Controller>,
    demand: Demand,
    /// Whether the last congestion event reached `inner` (a spurious-loss undo applies to it).
    last_event_passed: bool,
    shielded: u64,
}

impl AppLimitedFloor {
    pub fn new(inner: Box<dyn Controller>, now: Instant) -> Self {
        AppLimitedFloor {
            inner,
            demand: Demand::new(now),
            last_event_passed: false,
            shielded: 0,
        }
    }

    /// Congestion events kept from the inner controller so far.
    pub fn shielded(&self) -> u64 {
        self.shielded
    }
}

impl Controller for AppLimitedFloor {
    fn on_sent(&mut self, now: Instant, bytes: u64, largest_pn: u64) {
        self.demand.on_sent(now, bytes);
        self.inner.on_sent(now, bytes, largest_pn);
    }

    fn on_packet_sent(&mut self, now: Instant, bytes: u16, pn: u64) {
        self.inner.on_packet_sent(now, bytes, pn);
    }

    fn on_cwnd_limited(&mut self) {
        self.demand.on_cwnd_limited();
        self.inner.on_cwnd_limited();
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        pn: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.inner.on_ack(now, sent, bytes, pn, app_limited, rtt);
    }

    fn on_end_acks(
        &mut self,
        now: Instant,
        in_flight: u64,
        app_limited: bool,
        largest_packet_num_acked: Option<u64>,
    ) {
        self.demand.on_end_acks(now, in_flight);
        self.inner
            .on_end_acks(now, in_flight, app_limited, largest_packet_num_acked);
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        is_persistent_congestion: bool,
        is_ecn: bool,
        lost_bytes: u64,
        largest_lost_pn: u64,
    ) {
        if self
            .demand
            .shields(now, self.inner.window(), is_persistent_congestion)
        {
            self.shielded += 1;
            self.last_event_passed = false;
            tracing::trace!(
                window = self.inner.window(),
                peak_in_flight = self.demand.peak_in_flight(),
                "loss while application-limited: window kept"
            );
            return;
        }
        self.last_event_passed = true;
        self.inner.on_congestion_event(
            now,
            sent,
            is_persistent_congestion,
            is_ecn,
            lost_bytes,
            largest_lost_pn,
        );
    }

    fn on_packet_lost(&mut self, lost_bytes: u16, pn: u64, now: Instant) {
        self.inner.on_packet_lost(lost_bytes, pn, now);
    }

    fn on_spurious_congestion_event(&mut self) {
        if self.last_event_passed {
            self.inner.on_spurious_congestion_event();
        }
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.inner.on_mtu_update(new_mtu);
    }

    fn on_ack_frequency_update(&mut self, threshold: u64, max_ack_delay: Duration) {
        self.inner.on_ack_frequency_update(threshold, max_ack_delay);
    }

    fn window(&self) -> u64 {
        self.inner.window()
    }

    fn metrics(&self) -> noq_proto::congestion::ControllerMetrics {
        self.inner.metrics()
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(AppLimitedFloor {
            inner: self.inner.clone_box(),
            demand: self.demand.clone(),
            last_event_passed: self.last_event_passed,
            shielded: self.shielded,
        })
    }

    fn initial_window(&self) -> u64 {
        self.inner.initial_window()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MTU: u16 = 1200;

    fn floor_cubic(now: Instant) -> AppLimitedFloor {
        AppLimitedFloor::new(
            Box::new(Cubic::new(Arc::new(CubicConfig::default()), now, MTU)),
            now,
        )
    }

    /// A steady flow: `per_tick` bytes sent every 10 ms, acknowledged a round trip (40 ms)
    /// later, a loss every `loss_every` ticks; returns the controller after `ticks`.
    fn steady_flow(
        mut cc: Box<dyn Controller>,
        start: Instant,
        per_tick: u64,
        ticks: u64,
        loss_every: u64,
        cwnd_limited: bool,
    ) -> Box<dyn Controller> {
        let rtt_ticks = 4;
        for i in 0..ticks {
            let now = start + Duration::from_millis(10 * i);
            if cwnd_limited {
                cc.on_cwnd_limited();
            }
            cc.on_sent(now, per_tick, i);
            let in_flight = per_tick * rtt_ticks.min(i + 1);
            cc.on_end_acks(now, in_flight, !cwnd_limited, i.checked_sub(rtt_ticks));
            if i > 0 && i % loss_every == 0 {
                cc.on_congestion_event(
                    now,
                    now - Duration::from_millis(40),
                    false,
                    false,
                    per_tick,
                    i,
                );
            }
        }
        cc
    }

    #[test]
    fn plain_cubic_ratchets_an_app_limited_window_to_its_floor() {
        let start = Instant::now();
        let cc = Box::new(Cubic::new(Arc::new(CubicConfig::default()), start, MTU));
        // 2 KB every 10 ms (audio as PCM), a loss every second: 8 KB in flight.
        let cc = steady_flow(cc, start, 2000, 1000, 100, false);
        assert_eq!(
            cc.window(),
            2 * MTU as u64,
            "the ratchet this module exists for"
        );
    }

    #[test]
    fn app_limited_flow_keeps_its_window() {
        let start = Instant::now();
        let cc = steady_flow(Box::new(floor_cubic(start)), start, 2000, 1000, 100, false);
        // Nothing shrank the initial window: 12,000 bytes for a flow using 8,000.
        assert_eq!(cc.window(), cc.initial_window());
        let any = cc.into_any();
        let floor = any.downcast_ref::<AppLimitedFloor>().map(|f| f.shielded());
        assert!(floor.is_some_and(|n| n > 0), "no loss was shielded");
    }

    #[test]
    fn window_limited_flow_backs_off_as_cubic_does() {
        let start = Instant::now();
        let with_floor = steady_flow(Box::new(floor_cubic(start)), start, 2000, 1000, 100, true);
        let cubic = steady_flow(
            Box::new(Cubic::new(Arc::new(CubicConfig::default()), start, MTU)),
            start,
            2000,
            1000,
            100,
            true,
        );
        assert_eq!(with_floor.window(), cubic.window());
    }

    #[test]
    fn large_flows_are_not_shielded() {
        let start = Instant::now();
        // 20 KB every 10 ms: 80 KB in flight, a floor of 160 KB is above the cap.
        let with_floor = steady_flow(
            Box::new(floor_cubic(start)),
            start,
            20_000,
            1000,
            100,
            false,
        );
        assert_eq!(with_floor.window(), 2 * MTU as u64);
    }

    #[test]
    fn persistent_congestion_still_collapses_the_window() {
        let start = Instant::now();
        let mut cc = steady_flow(Box::new(floor_cubic(start)), start, 2000, 200, 1000, false);
        let now = start + Duration::from_secs(3);
        cc.on_congestion_event(now, start, true, false, 2000, 300);
        assert_eq!(cc.window(), 2 * MTU as u64);
    }

    #[test]
    fn demand_forgets_after_its_window() {
        let start = Instant::now();
        let mut d = Demand::new(start);
        d.on_sent(start, 30_000);
        d.on_end_acks(start, 0);
        assert_eq!(d.peak_in_flight(), 30_000);
        d.on_end_acks(start + DEMAND_WINDOW / 2, 0);
        assert_eq!(d.peak_in_flight(), 30_000, "still within the window");
        d.on_end_acks(start + DEMAND_WINDOW, 0);
        assert_eq!(d.peak_in_flight(), 0);
    }
}
