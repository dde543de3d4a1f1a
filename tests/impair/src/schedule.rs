//! An impaired link's core, whatever carries its packets: both directions' models
//! ([`Impaired`]) and the deliveries in time order ([`Scheduler`]), where packets the models
//! let through wait until one thread sends each at its time. Plain threads and a condition variable rather than an
//! async timer: delays are kept to tens of microseconds, not a timer tick.

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::model::{Counters, DirectionModel};
use crate::profile::Profile;

/// How often blocked threads look at the stop flag.
pub(crate) const POLL: Duration = Duration::from_millis(100);

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where a packet goes when its time comes.
#[derive(Clone)]
pub(crate) enum Out {
    /// A datagram from `sock` to `to`.
    Udp(Arc<UdpSocket>, SocketAddr),
    /// An IP packet into a TUN device (the other namespace's end of the link).
    Tun(Arc<File>),
}

struct Pending {
    at: Instant,
    seq: u64,
    out: Out,
    data: Arc<Vec<u8>>,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    /// Reversed, so the heap's top is the earliest delivery.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// The queue of deliveries and the flag that stops every thread of a relay or link.
#[derive(Default)]
pub(crate) struct Scheduler {
    queue: Mutex<(BinaryHeap<Pending>, u64)>,
    wake: Condvar,
    stop: AtomicBool,
}

impl Scheduler {
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.notify_all();
    }

    /// Sends `data` through `out` at each of `times`.
    pub(crate) fn push(&self, times: &[Instant], out: &Out, data: &[u8]) {
        if times.is_empty() {
            return;
        }
        let data = Arc::new(data.to_vec());
        let mut q = lock(&self.queue);
        for &at in times {
            q.1 += 1;
            let seq = q.1;
            q.0.push(Pending {
                at,
                seq,
                out: out.clone(),
                data: data.clone(),
            });
        }
        drop(q);
        self.wake.notify_one();
    }

    /// Sends each queued packet at its time, until stopped.
    pub(crate) fn run(&self) {
        let mut q = lock(&self.queue);
        while !self.stopped() {
            let now = Instant::now();
            let wait = match q.0.peek() {
                Some(p) if p.at <= now => {
                    let p = q.0.pop().expect("peeked");
                    drop(q);
                    // A send error (no route, buffer full) is a loss the peers recover from.
                    let _ = match &p.out {
                        Out::Udp(sock, to) => sock.send_to(&p.data, to).map(drop),
                        Out::Tun(file) => (&**file).write(&p.data).map(drop),
                    };
                    q = lock(&self.queue);
                    continue;
                }
                Some(p) => (p.at - now).min(POLL),
                None => POLL,
            };
            q = self
                .wake
                .wait_timeout(q, wait)
                .map_or_else(|e| e.into_inner().0, |r| r.0);
        }
    }
}

/// Which way a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    /// Client (mounter) -> server.
    Up,
    /// Server -> client.
    Down,
}

/// Both directions of an impaired link and its deliveries.
pub(crate) struct Impaired {
    start: Instant,
    holes: Option<crate::profile::Blackholes>,
    up: Mutex<DirectionModel>,
    down: Mutex<DirectionModel>,
    pub(crate) scheduler: Scheduler,
}

impl Impaired {
    pub(crate) fn new(p: &Profile, seed: u64) -> Impaired {
        Impaired {
            start: Instant::now(),
            holes: p.blackholes,
            // Different streams per direction, both from the one seed.
            up: Mutex::new(DirectionModel::new(p.up, p.blackholes, seed)),
            down: Mutex::new(DirectionModel::new(
                p.down,
                p.blackholes,
                seed ^ 0x9e37_79b9_7f4a_7c15,
            )),
            scheduler: Scheduler::default(),
        }
    }

    fn model(&self, dir: Dir) -> &Mutex<DirectionModel> {
        match dir {
            Dir::Up => &self.up,
            Dir::Down => &self.down,
        }
    }

    /// Runs `dir`'s model on a packet received now and queues its deliveries through `out`.
    pub(crate) fn submit(&self, dir: Dir, out: &Out, data: &[u8]) {
        let times: Vec<Instant> = lock(self.model(dir))
            .submit(Instant::now() - self.start, data.len())
            .into_iter()
            .map(|t| self.start + t)
            .collect();
        self.scheduler.push(&times, out, data);
    }

    /// Nothing crosses either way from now for `length`.
    pub(crate) fn blackhole(&self, length: Duration) {
        let now = Instant::now() - self.start;
        lock(&self.up).blackhole(now, length);
        lock(&self.down).blackhole(now, length);
    }

    /// The next scheduled outage that has not ended by `now`: (start, end).
    pub(crate) fn next_outage(&self, now: Instant) -> Option<(Instant, Instant)> {
        let h = self.holes?;
        let t = now.saturating_duration_since(self.start);
        let begin = h.next_ending_after(t);
        Some((self.start + begin, self.start + begin + h.length))
    }

    /// (up, down) counters so far.
    pub(crate) fn counters(&self) -> (Counters, Counters) {
        (lock(&self.up).counters, lock(&self.down).counters)
    }
}
