//! The sender's side of a serial writer's data (`TxProgress`, `Open.writer`): which bytes
//! were sent and not yet reported taken by the port, so that after a reconnection exactly
//! those the port did not take are sent again.

use std::collections::VecDeque;

/// Bytes sent toward the port and not yet reported taken, oldest first.
#[derive(Debug, Default)]
pub struct TxLedger {
    in_flight: VecDeque<u8>,
    /// The port's count of bytes taken under the writer's name, as last reported.
    written: u64,
}

impl TxLedger {
    /// `data` was handed to the link.
    pub fn sent(&mut self, data: &[u8]) {
        self.in_flight.extend(data);
    }

    /// Bytes sent and not yet reported taken.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The port reports `written` bytes taken in all (a count that only grows while it
    /// remembers the writer; one that went back, from a restarted server, takes nothing).
    pub fn progress(&mut self, written: u64) {
        let took = written.saturating_sub(self.written);
        let took =
            usize::try_from(took).map_or(self.in_flight.len(), |t| t.min(self.in_flight.len()));
        self.in_flight.drain(..took);
        self.written = written;
    }

    /// The first report of a new stream: settles what the port took, and returns the rest,
    /// to be sent again before anything newer.
    pub fn resume(&mut self, written: u64) -> Vec<u8> {
        self.progress(written);
        self.in_flight.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_bytes_leave_and_the_rest_is_returned_once_on_resume() {
        let mut l = TxLedger::default();
        l.sent(b"0123456789");
        l.progress(4);
        assert_eq!(l.in_flight(), 6);
        l.sent(b"ab");
        assert_eq!(l.resume(6), b"6789ab");
        assert_eq!(l.in_flight(), 0);
        l.sent(b"xyz");
        l.progress(u64::MAX);
        assert_eq!(
            l.in_flight(),
            0,
            "an absurd count takes what there is, no more"
        );
        l.sent(b"q");
        assert_eq!(
            l.resume(0),
            b"q",
            "a server that forgot us: everything again"
        );
    }
}
