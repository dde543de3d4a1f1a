//! The UDP relay: a client-facing socket, one upstream socket per client address (so the
//! server sees one peer per client, as through a NAT), and a sender thread that delivers each
//! packet when its direction's [`DirectionModel`] says. Plain threads and a condition variable
//! rather than an async timer: delays are kept to tens of microseconds, not a timer tick.

use std::collections::{BinaryHeap, HashMap};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::model::{Counters, DirectionModel};
use crate::profile::Profile;

/// Clients the relay keeps a mapping for; more are ignored (it is a test tool, not a NAT).
const MAX_CLIENTS: usize = 64;
/// Largest UDP payload carried.
const MAX_DATAGRAM: usize = 65_536;
/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// Where the relay listens and what it forwards to.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Client-facing address (the one a ticket points at).
    pub listen: SocketAddr,
    /// The server.
    pub upstream: SocketAddr,
    /// Local address the upstream sockets bind to (the relay's side of the server's network).
    pub upstream_bind: IpAddr,
    pub profile: Profile,
    pub seed: u64,
}

struct Pending {
    at: Instant,
    seq: u64,
    sock: Arc<UdpSocket>,
    to: SocketAddr,
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

struct Shared {
    start: Instant,
    upstream: SocketAddr,
    upstream_bind: IpAddr,
    listen: Arc<UdpSocket>,
    up: Mutex<DirectionModel>,
    down: Mutex<DirectionModel>,
    queue: Mutex<(BinaryHeap<Pending>, u64)>,
    wake: Condvar,
    stop: AtomicBool,
    clients: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Runs `model` on a packet received now and queues its deliveries.
    fn submit(
        &self,
        model: &Mutex<DirectionModel>,
        sock: &Arc<UdpSocket>,
        to: SocketAddr,
        data: &[u8],
    ) {
        let now = Instant::now();
        let times = lock(model).submit(now - self.start, data.len());
        if times.is_empty() {
            return;
        }
        let data = Arc::new(data.to_vec());
        let mut q = lock(&self.queue);
        for t in times {
            q.1 += 1;
            let seq = q.1;
            q.0.push(Pending {
                at: self.start + t,
                seq,
                sock: sock.clone(),
                to,
                data: data.clone(),
            });
        }
        drop(q);
        self.wake.notify_one();
    }

    fn upstream_for(self: &Arc<Self>, client: SocketAddr) -> Option<Arc<UdpSocket>> {
        let mut clients = lock(&self.clients);
        if let Some(s) = clients.get(&client) {
            return Some(s.clone());
        }
        if clients.len() >= MAX_CLIENTS {
            return None;
        }
        let sock = UdpSocket::bind(SocketAddr::new(self.upstream_bind, 0))
            .and_then(|s| s.set_read_timeout(Some(POLL)).map(|()| s))
            .map(Arc::new)
            .ok()?;
        clients.insert(client, sock.clone());
        let (me, s) = (self.clone(), sock.clone());
        let t = std::thread::spawn(move || me.relay_server_packets(&s, client));
        lock(&self.threads).push(t);
        Some(sock)
    }

    /// Client -> server.
    fn relay_client_packets(self: &Arc<Self>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while !self.stop.load(Ordering::Relaxed) {
            let (n, from) = match self.listen.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(_) => continue,
            };
            if let Some(up) = self.upstream_for(from) {
                self.submit(&self.up, &up, self.upstream, &buf[..n]);
            }
        }
    }

    /// Server -> one client.
    fn relay_server_packets(&self, sock: &Arc<UdpSocket>, client: SocketAddr) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while !self.stop.load(Ordering::Relaxed) {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) if from == self.upstream => {
                    self.submit(&self.down, &self.listen, client, &buf[..n]);
                }
                _ => {}
            }
        }
    }

    /// Sends each queued packet at its time.
    fn deliver(&self) {
        let mut q = lock(&self.queue);
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            match q.0.peek() {
                Some(p) if p.at <= now => {
                    let p = q.0.pop().expect("peeked");
                    drop(q);
                    // A send error (no route, buffer full) is a loss the peers recover from.
                    let _ = p.sock.send_to(&p.data, p.to);
                    q = lock(&self.queue);
                }
                Some(p) => {
                    let wait = (p.at - now).min(POLL);
                    q = self
                        .wake
                        .wait_timeout(q, wait)
                        .map_or_else(|e| e.into_inner().0, |r| r.0);
                }
                None => {
                    q = self
                        .wake
                        .wait_timeout(q, POLL)
                        .map_or_else(|e| e.into_inner().0, |r| r.0);
                }
            }
        }
    }
}

/// A running relay; stopped when dropped.
pub struct Relay {
    shared: Arc<Shared>,
    local: SocketAddr,
}

impl Relay {
    pub fn start(cfg: RelayConfig) -> Result<Relay> {
        let listen = UdpSocket::bind(cfg.listen)
            .with_context(|| format!("binding the relay's listening socket {}", cfg.listen))?;
        listen.set_read_timeout(Some(POLL))?;
        let local = listen.local_addr()?;
        let p = &cfg.profile;
        let shared = Arc::new(Shared {
            start: Instant::now(),
            upstream: cfg.upstream,
            upstream_bind: cfg.upstream_bind,
            listen: Arc::new(listen),
            // Different streams per direction, both from the one seed.
            up: Mutex::new(DirectionModel::new(p.up, p.blackholes, cfg.seed)),
            down: Mutex::new(DirectionModel::new(
                p.down,
                p.blackholes,
                cfg.seed ^ 0x9e37_79b9_7f4a_7c15,
            )),
            queue: Mutex::new((BinaryHeap::new(), 0)),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            clients: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
        });
        let (a, b) = (shared.clone(), shared.clone());
        let mut threads = lock(&shared.threads);
        threads.push(std::thread::spawn(move || a.relay_client_packets()));
        threads.push(std::thread::spawn(move || b.deliver()));
        drop(threads);
        Ok(Relay { shared, local })
    }

    /// The client-facing address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Nothing crosses either way from now for `length`.
    pub fn blackhole(&self, length: Duration) {
        let now = Instant::now() - self.shared.start;
        lock(&self.shared.up).blackhole(now, length);
        lock(&self.shared.down).blackhole(now, length);
    }

    /// (client -> server, server -> client) counters so far.
    pub fn counters(&self) -> (Counters, Counters) {
        (
            lock(&self.shared.up).counters,
            lock(&self.shared.down).counters,
        )
    }

    /// The counters as one JSON object.
    pub fn counters_json(&self) -> serde_json::Value {
        let (up, down) = self.counters();
        let one = |c: Counters| {
            serde_json::json!({
                "packets": c.packets, "bytes": c.bytes, "lost": c.lost,
                "blackholed": c.blackholed, "queue_dropped": c.queue_dropped,
                "delivered": c.delivered, "duplicated": c.duplicated, "reordered": c.reordered,
            })
        };
        serde_json::json!({ "up": one(up), "down": one(down) })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::LinkSpec;

    fn profile(delay_ms: u64) -> Profile {
        let l = LinkSpec::delay(Duration::from_millis(delay_ms));
        Profile {
            name: "test".into(),
            up: l,
            down: l,
            blackholes: None,
        }
    }

    /// A UDP echo server on loopback, a relay in front of it, a client socket.
    fn setup(p: Profile) -> (Relay, UdpSocket) {
        let echo = UdpSocket::bind("127.0.0.1:0").expect("echo");
        let upstream = echo.local_addr().expect("addr");
        std::thread::spawn(move || {
            let mut b = [0u8; 2048];
            while let Ok((n, from)) = echo.recv_from(&mut b) {
                let _ = echo.send_to(&b[..n], from);
            }
        });
        let relay = Relay::start(RelayConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            upstream,
            upstream_bind: "127.0.0.1".parse().expect("ip"),
            profile: p,
            seed: 1,
        })
        .expect("relay");
        let c = UdpSocket::bind("127.0.0.1:0").expect("client");
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        (relay, c)
    }

    #[test]
    fn packets_cross_both_ways_and_are_counted() {
        let (relay, c) = setup(profile(5));
        let mut b = [0u8; 64];
        for i in 0..20u8 {
            c.send_to(&[i; 10], relay.local_addr()).expect("send");
            let (n, _) = c.recv_from(&mut b).expect("echo through the relay");
            assert_eq!(&b[..n], &[i; 10]);
        }
        let (up, down) = relay.counters();
        assert_eq!((up.delivered, down.delivered), (20, 20));
    }

    #[test]
    fn a_blackhole_swallows_everything_both_ways_and_counts_it() {
        let (relay, c) = setup(profile(1));
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        relay.blackhole(Duration::from_secs(60));
        c.send_to(b"lost", relay.local_addr()).expect("send");
        let mut b = [0u8; 64];
        assert!(c.recv_from(&mut b).is_err(), "a packet crossed the outage");
        assert_eq!(relay.counters().0.blackholed, 1);
    }
}
