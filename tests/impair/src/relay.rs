//! The UDP relay: a client-facing socket and one upstream socket per client address (so the
//! server sees one peer per client, as through a NAT); each packet is delivered when its
//! direction's [`DirectionModel`] says. For a point where a ticket can name the relay; the
//! [`crate::tun::TunLink`] carries every protocol instead.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::model::{counters_json, Counters};
use crate::profile::Profile;
use crate::schedule::{lock, Dir, Impaired, Out, POLL};

/// Clients the relay keeps a mapping for; more are ignored (it is a test tool, not a NAT).
const MAX_CLIENTS: usize = 64;
/// Largest UDP payload carried.
const MAX_DATAGRAM: usize = 65_536;

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

struct Shared {
    upstream: SocketAddr,
    upstream_bind: IpAddr,
    listen: Arc<UdpSocket>,
    link: Impaired,
    clients: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
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
        while !self.link.scheduler.stopped() {
            // Timeouts (to look at the stop flag) and errors alike: read again.
            let Ok((n, from)) = self.listen.recv_from(&mut buf) else {
                continue;
            };
            if let Some(up) = self.upstream_for(from) {
                self.link
                    .submit(Dir::Up, &Out::Udp(up, self.upstream), &buf[..n]);
            }
        }
    }

    /// Server -> one client.
    fn relay_server_packets(&self, sock: &Arc<UdpSocket>, client: SocketAddr) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while !self.link.scheduler.stopped() {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) if from == self.upstream => {
                    let out = Out::Udp(self.listen.clone(), client);
                    self.link.submit(Dir::Down, &out, &buf[..n]);
                }
                _ => {}
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
        let shared = Arc::new(Shared {
            upstream: cfg.upstream,
            upstream_bind: cfg.upstream_bind,
            listen: Arc::new(listen),
            link: Impaired::new(&cfg.profile, cfg.seed),
            clients: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
        });
        let (a, b) = (shared.clone(), shared.clone());
        let mut threads = lock(&shared.threads);
        threads.push(std::thread::spawn(move || a.relay_client_packets()));
        threads.push(std::thread::spawn(move || b.link.scheduler.run()));
        drop(threads);
        Ok(Relay { shared, local })
    }

    /// The client-facing address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Nothing crosses either way from now for `length`.
    pub fn blackhole(&self, length: Duration) {
        self.shared.link.blackhole(length);
    }

    /// (client -> server, server -> client) counters so far.
    pub fn counters(&self) -> (Counters, Counters) {
        self.shared.link.counters()
    }

    /// The counters as one JSON object.
    pub fn counters_json(&self) -> serde_json::Value {
        let (up, down) = self.counters();
        counters_json(up, down)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.link.scheduler.stop();
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
