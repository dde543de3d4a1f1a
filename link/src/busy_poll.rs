//! Busy polling after device traffic: for a short window after a device message is sent or
//! received, the runtime's thread stays on the CPU polling its sockets and device files
//! instead of sleeping, so the answer (a serial echo, a motor's reply) is taken without a
//! wake-up and a context switch. Off unless `XOQ_BUSY_POLL_US=N` gives the window, the way
//! Linux's `net.core.busy_poll` is: it trades a CPU kept busy for latency.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The window in nanoseconds; 0 when busy polling is off.
static WINDOW_NS: AtomicU64 = AtomicU64::new(0);
/// When device traffic was last seen, in nanoseconds since [`epoch`].
static LAST_NS: AtomicU64 = AtomicU64::new(0);
/// True while the poller runs its window.
static POLLING: AtomicBool = AtomicBool::new(false);
/// Windows polled since the start.
static WINDOWS: AtomicU64 = AtomicU64::new(0);
static WAKE: Notify = Notify::const_new();

/// The longest window accepted: beyond a few milliseconds busy polling only burns the CPU.
pub const MAX_WINDOW: Duration = Duration::from_millis(5);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// The window `XOQ_BUSY_POLL_US` asks for, if any.
pub fn window_from_env() -> Option<Duration> {
    let v = std::env::var("XOQ_BUSY_POLL_US").ok()?;
    let w = parse_window(&v);
    if w.is_none() && v.trim() != "0" {
        tracing::warn!("XOQ_BUSY_POLL_US={v:?} is not a number of microseconds; not busy polling");
    }
    w
}

/// A window in microseconds; `None` for 0 or anything but a number; capped at [`MAX_WINDOW`].
pub fn parse_window(v: &str) -> Option<Duration> {
    let us: u64 = v.trim().parse().ok()?;
    (us > 0).then(|| Duration::from_micros(us).min(MAX_WINDOW))
}

/// The window in microseconds and how many windows were polled, when busy polling is on.
pub fn stats() -> Option<(u64, u64)> {
    let ns = WINDOW_NS.load(Ordering::Relaxed);
    (ns > 0).then(|| (ns / 1000, WINDOWS.load(Ordering::Relaxed)))
}

/// Marks device traffic: the poller keeps the thread busy for the window from now.
pub fn kick() {
    if WINDOW_NS.load(Ordering::Relaxed) == 0 {
        return;
    }
    LAST_NS.store(now_ns(), Ordering::Relaxed);
    if !POLLING.load(Ordering::Relaxed) {
        WAKE.notify_one();
    }
}

/// The poller task: after each kick, yields to the scheduler until the window has passed
/// since the last one. A yielded task makes tokio's scheduler poll the I/O driver without
/// blocking (`epoll_wait` with no timeout) before running it again, which is the busy poll.
pub async fn run(window: Duration) {
    let window_ns = window.as_nanos().min(u128::from(u64::MAX)) as u64;
    WINDOW_NS.store(window_ns, Ordering::Relaxed);
    tracing::info!(
        window_us = window.as_micros() as u64,
        "busy polling after device traffic"
    );
    loop {
        WAKE.notified().await;
        POLLING.store(true, Ordering::Relaxed);
        WINDOWS.fetch_add(1, Ordering::Relaxed);
        while now_ns().saturating_sub(LAST_NS.load(Ordering::Relaxed)) < window_ns {
            // Let a task woken on this CPU run first (a program waiting for its answer).
            std::thread::yield_now();
            tokio::task::yield_now().await;
        }
        POLLING.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_a_positive_number_of_microseconds_capped_at_the_maximum() {
        assert_eq!(parse_window("200"), Some(Duration::from_micros(200)));
        assert_eq!(parse_window(" 50 "), Some(Duration::from_micros(50)));
        assert_eq!(parse_window("1000000"), Some(MAX_WINDOW));
        assert_eq!(parse_window("0"), None);
        assert_eq!(parse_window("-5"), None);
        assert_eq!(parse_window("fast"), None);
        assert_eq!(parse_window(""), None);
    }
}
