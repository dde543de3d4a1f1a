//! A watch on the host's own scheduling while a timing-sensitive test runs: a thread that asks
//! to wake every millisecond and notes each wake-up that came late by more than a threshold
//! (the whole machine, or this process, did not run), plus the kernel's pressure-stall totals
//! (/proc/pressure) over the same time. A real-time audio path cannot be blamed for a gap the
//! machine itself made; it can be blamed for any gap beyond those.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One late wake-up: when (since the watch started) and by how much.
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    pub at: Duration,
    pub late: Duration,
}

/// What the watch saw.
#[derive(Debug)]
pub struct Stalls {
    pub stalls: Vec<Stall>,
    /// Microseconds the kernel counted some task stalled on CPU, I/O and memory
    /// (`some` totals of /proc/pressure), if the kernel keeps them.
    pub pressure_us: Option<[u64; 3]>,
}

impl Stalls {
    pub fn longest(&self) -> Duration {
        self.stalls.iter().map(|s| s.late).max().unwrap_or_default()
    }

    /// How late the wake-ups were, all stalls together.
    pub fn total(&self) -> Duration {
        self.stalls.iter().map(|s| s.late).sum()
    }
}

impl std::fmt::Display for Stalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} host stalls", self.stalls.len())?;
        for s in &self.stalls {
            write!(
                f,
                " [{:.1} s: {:.1} ms]",
                s.at.as_secs_f64(),
                s.late.as_secs_f64() * 1e3
            )?;
        }
        if let Some([cpu, io, mem]) = self.pressure_us {
            write!(
                f,
                "; pressure stall cpu {:.1} ms, io {:.1} ms, memory {:.1} ms",
                cpu as f64 / 1e3,
                io as f64 / 1e3,
                mem as f64 / 1e3
            )?;
        }
        Ok(())
    }
}

pub struct StallWatch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Stall>>,
    pressure_at_start: Option<[u64; 3]>,
}

impl StallWatch {
    /// Starts watching for wake-ups later than `threshold`.
    pub fn start(threshold: Duration) -> StallWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let pressure_at_start = pressure_totals();
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let start = Instant::now();
                let tick = Duration::from_millis(1);
                let mut stalls = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let asked = Instant::now();
                    std::thread::sleep(tick);
                    let late = asked.elapsed().saturating_sub(tick);
                    if late > threshold {
                        stalls.push(Stall {
                            at: asked.duration_since(start),
                            late,
                        });
                    }
                }
                stalls
            }
        });
        StallWatch {
            stop,
            thread,
            pressure_at_start,
        }
    }

    pub fn finish(self) -> Stalls {
        self.stop.store(true, Ordering::Relaxed);
        let stalls = self.thread.join().expect("stall watch thread");
        let pressure_us = match (self.pressure_at_start, pressure_totals()) {
            (Some(a), Some(b)) => Some([0, 1, 2].map(|i| b[i].saturating_sub(a[i]))),
            _ => None,
        };
        Stalls {
            stalls,
            pressure_us,
        }
    }
}

/// The `some ... total=` figures of /proc/pressure/{cpu,io,memory}, where the kernel has them.
fn pressure_totals() -> Option<[u64; 3]> {
    let total = |what: &str| -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/pressure/{what}")).ok()?;
        let some = text.lines().find(|l| l.starts_with("some "))?;
        some.split_whitespace()
            .find_map(|kv| kv.strip_prefix("total="))?
            .parse()
            .ok()
    };
    Some([total("cpu")?, total("io")?, total("memory")?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_process_is_seen_as_one_stall_of_about_that_long() {
        let watch = StallWatch::start(Duration::from_millis(10));
        std::thread::sleep(Duration::from_millis(50));
        // Another process stops this one (every thread, as a stalled host would) for 60 ms.
        let pid = std::process::id();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("kill -STOP {pid}; sleep 0.06; kill -CONT {pid}"))
            .status()
            .expect("sh");
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(50));
        let seen = watch.finish();
        println!("{seen}");
        assert!(!seen.stalls.is_empty(), "{seen}");
        assert!(seen.longest() >= Duration::from_millis(40), "{seen}");
    }
}
