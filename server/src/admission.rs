//! Who gets in, and how many: the checks between a UDP packet and a session.
//!
//! The robot's port is on the internet, so everything here runs before the server reads a
//! byte of protocol or allocates anything for a peer:
//! - at most [`MAX_HANDSHAKES`] QUIC handshakes in progress (more incoming connections are
//!   refused at once, before any cryptography), each given [`HANDSHAKE_TIMEOUT`];
//! - right after the TLS handshake, which proves the client's key, a key that is not in the
//!   authorized-clients file is refused by closing the connection with the reason (the
//!   mounter shows it): no stream of it is ever accepted;
//! - at most [`MAX_CONNECTIONS`] sessions at once, [`MAX_PER_CLIENT`] of them for one key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
