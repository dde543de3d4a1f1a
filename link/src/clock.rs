//! The two clocks the daemons stamp things with: wall time (capture times that cross the link)
//! and the monotonic clock (local intervals, immune to clock steps).

use std::time::SystemTime;

/// Microseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn unix_now_us() -> u64 {
    crate::canframe::unix_us(SystemTime::now())
}

/// Microseconds of CLOCK_MONOTONIC, now.
pub fn monotonic_us() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000
    })
}
