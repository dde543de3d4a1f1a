//! Who gets in, and how many: the checks between a UDP packet and a session.
//!
//! The robot's port is on the internet, so everything here runs before the server reads a
//! byte of protocol or allocates anything for a peer:
//! - at most [`MAX_HANDSHAKES`] QUIC handshakes in progress (more incoming connections are
//!   refused at once, before any cryptography), each given [`HANDSHAKE_TIMEOUT`];
//! - right after the TLS handshake, which proves the client's key, a key that is not in the
//!   authorized-clients file is refused by closing the connection with the reason (the
//!   mounter shows it): no stream of it is ever accepted;
//! - at most [`MAX_CONNECTIONS`] sessions at once, [`MAX_PER_CLIENT`] of them for one key;
//! - at most [`HANDSHAKE_RATE`] new handshakes a second on average (bursts of as many): each
//!   costs a signature check and a key exchange, so a flood of throwaway keys reconnecting
//!   as fast as they are refused would otherwise take a core. A legitimate mounter refused by
//!   the limit retries with its backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iroh::EndpointId;
use xoq_link::sync::lock;

/// QUIC handshakes in progress at once.
pub const MAX_HANDSHAKES: usize = 32;
/// How long a QUIC handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Sessions (authorized connections) at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Sessions of one client key at once (a mounter has one; a reconnect may overlap the old).
pub const MAX_PER_CLIENT: usize = 4;

/// New handshakes a second, on average; also the largest burst.
pub const HANDSHAKE_RATE: f64 = 16.0;

/// A token bucket of handshakes.
#[derive(Debug)]
pub struct HandshakeRate {
    tokens: f64,
    last: Instant,
}

impl HandshakeRate {
    pub fn new(now: Instant) -> Self {
        HandshakeRate {
            tokens: HANDSHAKE_RATE,
            last: now,
        }
    }

    /// Whether a handshake may start at `now`.
    pub fn allow(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * HANDSHAKE_RATE).min(HANDSHAKE_RATE);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Live sessions, counted in total and per client key.
#[derive(Debug, Default)]
pub struct Sessions {
    per_client: Mutex<HashMap<EndpointId, usize>>,
}

/// A session's place; frees it when dropped.
#[derive(Debug)]
pub struct SessionSlot {
    sessions: Arc<Sessions>,
    client: EndpointId,
}

impl Sessions {
    /// Takes a place for `client`, or says why there is none.
    pub fn admit(self: &Arc<Self>, client: EndpointId) -> Result<SessionSlot, String> {
        let mut m = lock(&self.per_client);
        let total: usize = m.values().sum();
        if total >= MAX_CONNECTIONS {
            return Err(format!(
                "the server already serves {MAX_CONNECTIONS} connections; try again later"
            ));
        }
        let n = m.entry(client).or_insert(0);
        if *n >= MAX_PER_CLIENT {
            return Err(format!(
                "this client already has {MAX_PER_CLIENT} connections to the server; close one"
            ));
        }
        *n += 1;
        Ok(SessionSlot {
            sessions: self.clone(),
            client,
        })
    }

    /// Sessions open now.
    pub fn count(&self) -> usize {
        lock(&self.per_client).values().sum()
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut m = lock(&self.sessions.per_client);
        if let Some(n) = m.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> EndpointId {
        iroh::SecretKey::from_bytes(&[i; 32]).public()
    }

    #[test]
    fn one_key_gets_a_few_sessions_and_a_freed_slot_is_reused() {
        let s = Arc::new(Sessions::default());
        let slots: Vec<_> = (0..MAX_PER_CLIENT)
            .map(|_| s.admit(key(1)).expect("slot"))
            .collect();
        assert!(s.admit(key(1)).is_err());
        assert!(s.admit(key(2)).is_ok(), "another key is not affected");
        drop(slots);
        assert_eq!(s.count(), 0);
        assert!(s.admit(key(1)).is_ok());
    }

    #[test]
    fn handshakes_beyond_the_rate_wait_for_the_bucket_to_refill() {
        let t0 = Instant::now();
        let mut r = HandshakeRate::new(t0);
        let burst = (0..1000).filter(|_| r.allow(t0)).count();
        assert_eq!(burst, HANDSHAKE_RATE as usize);
        assert!(!r.allow(t0 + Duration::from_millis(5)));
        // A second later, a second's worth again.
        let t1 = t0 + Duration::from_secs(1);
        let refill = (0..1000).filter(|_| r.allow(t1)).count();
        assert_eq!(refill, HANDSHAKE_RATE as usize);
    }

    #[test]
    fn the_server_as_a_whole_has_a_ceiling() {
        let s = Arc::new(Sessions::default());
        let slots: Vec<_> = (0..MAX_CONNECTIONS)
            .map(|i| s.admit(key(i as u8)).expect("slot"))
            .collect();
        assert!(s.admit(key(200)).unwrap_err().contains("already serves"));
        drop(slots);
        assert!(s.admit(key(200)).is_ok());
    }
}
