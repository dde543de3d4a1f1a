//! Locking that survives a poisoned mutex: a panic while holding one of our locks is a bug,
//! and the daemons keep serving with the state as it is rather than cascade the panic.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the guard if a panicking thread poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
