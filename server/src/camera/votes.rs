//! Who sets a camera's pace. One encoder serves every client of a camera, so its bit rate and
//! its pauses follow the clients' links: the lowest rate any asks for, a pause while any is
//! behind. A read-only viewer must not be able to degrade the operator's picture, though (a
//! slow or hostile viewer would hold the robot's camera at its floor for everyone): while a
//! read-write client watches, only read-write clients' links count. The read-only ones then
//! take the stream as it is, and a viewer whose link cannot carry it loses frames on its own
//! (its sender skips to the next keyframe).

use std::collections::HashMap;

#[derive(Debug, Clone, Copy)]
struct Voter {
    read_write: bool,
    rate: Option<u32>,
    backlogged: bool,
}

/// The clients' say in one camera's pace.
#[derive(Debug, Default)]
pub struct Votes {
    voters: HashMap<u64, Voter>,
    next: u64,
}

impl Votes {
    /// A client starts watching; its key for the other calls.
    pub fn join(&mut self, read_write: bool) -> u64 {
        let id = self.next;
        self.next += 1;
        self.voters.insert(
            id,
            Voter {
                read_write,
                rate: None,
                backlogged: false,
            },
        );
        id
    }

    pub fn leave(&mut self, id: u64) {
        self.voters.remove(&id);
    }

    pub fn set_rate(&mut self, id: u64, bps: u32) {
        if let Some(v) = self.voters.get_mut(&id) {
            v.rate = Some(bps);
        }
    }

    pub fn set_backlogged(&mut self, id: u64, backlogged: bool) {
        if let Some(v) = self.voters.get_mut(&id) {
            v.backlogged = backlogged;
        }
    }

    /// Whether client `id`'s link counts now.
    pub fn counts(&self, id: u64) -> bool {
        self.voters
            .get(&id)
            .is_some_and(|v| v.read_write || !self.any_read_write())
    }

    fn any_read_write(&self) -> bool {
        self.voters.values().any(|v| v.read_write)
    }

    fn governing(&self) -> impl Iterator<Item = &Voter> {
        let rw = self.any_read_write();
        self.voters.values().filter(move |v| v.read_write || !rw)
    }

    /// The bit rate the encoder may use: the lowest the counting clients ask for.
    pub fn rate_limit(&self) -> Option<u32> {
        self.governing().filter_map(|v| v.rate).min()
    }

    /// Whether a counting client's link is behind (the camera pauses).
    pub fn paused(&self) -> bool {
        self.governing().any(|v| v.backlogged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_link_sets_the_pace() {
        let mut v = Votes::default();
        let (a, b) = (v.join(false), v.join(false));
        assert_eq!(v.rate_limit(), None);
        v.set_rate(a, 4_000_000);
        v.set_rate(b, 1_000_000);
        assert_eq!(v.rate_limit(), Some(1_000_000));
        v.set_backlogged(a, true);
        assert!(v.paused());
        v.leave(a);
        assert!(!v.paused());
        assert_eq!(v.rate_limit(), Some(1_000_000));
    }

    #[test]
    fn a_read_only_viewer_cannot_hold_back_the_operator() {
        let mut v = Votes::default();
        let operator = v.join(true);
        let viewer = v.join(false);
        v.set_rate(operator, 8_000_000);
        v.set_rate(viewer, 200_000);
        v.set_backlogged(viewer, true);
        assert_eq!(v.rate_limit(), Some(8_000_000));
        assert!(!v.paused());
        assert!(v.counts(operator) && !v.counts(viewer));
        // Once the operator leaves, the viewers' links count again.
        v.leave(operator);
        assert_eq!(v.rate_limit(), Some(200_000));
        assert!(v.paused());
        assert!(v.counts(viewer));
    }
}
