//! Who writes a serial port, and how much of what they sent the port took.
//!
//! A mounter names its writer of a port with a random token that outlives its connections
//! (`Open.writer`). Bytes the port takes are counted per name, across connections, so that
//! after a reconnection the mounter learns exactly how much of its data was written and sends
//! the rest again: nothing a program's `write()` was told went out is lost, nothing twice.
//! A read-write open under the name of the client's current writer replaces that stream (its
//! connection is dead, only not yet noticed): whatever the old stream still has queued is then
//! dropped uncounted, to be sent again by the new one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Writer names remembered per port, most recent first (a reconnection comes back within
/// seconds; older names are forgotten and count from zero).
const REMEMBERED: usize = 8;

/// A client's name for its writer of one port: its key and its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterName {
    pub client: [u8; 32],
    pub token: u64,
}

impl WriterName {
    /// The name a client gave, or none (token 0: it does not resume).
    pub fn new(client: [u8; 32], token: u64) -> Option<WriterName> {
        (token != 0).then_some(WriterName { client, token })
    }
}

/// Bytes taken that are reported at once (`TxProgress`). Less is reported [`REPORT_DELAY`]
/// later, with whatever follows: a small interactive write's report then does not travel
/// beside its answer, and the client's 4 KiB window never waits on it.
pub const REPORT_BYTES: u64 = 1024;
pub const REPORT_DELAY: Duration = Duration::from_millis(2);

/// What every command of one attachment carries to the port's actor.
#[derive(Debug, Clone, Default)]
pub struct WriterTally {
    /// Bytes of data the port took under this writer's name.
    pub written: Arc<AtomicU64>,
    /// The count last reported to the writer.
    pub reported: Arc<AtomicU64>,
    /// Set when another stream of the same writer replaced this one.
    pub replaced: Arc<AtomicBool>,
}

impl WriterTally {
    /// Bytes taken and not yet reported.
    pub fn unreported(&self) -> u64 {
        self.written
            .load(Ordering::Relaxed)
            .saturating_sub(self.reported.load(Ordering::Relaxed))
    }

    /// The count to report now, marked reported.
    pub fn report(&self) -> u64 {
        let w = self.written.load(Ordering::Relaxed);
        self.reported.store(w, Ordering::Relaxed);
        w
    }
}

/// A report owed to a writer, and when it is due.
pub struct ReportDue {
    pub to: u64,
    pub tally: WriterTally,
    pub at: tokio::time::Instant,
}

/// The counters of the writer names seen recently.
#[derive(Default)]
pub struct Remembered {
    names: VecDeque<(WriterName, Arc<AtomicU64>)>,
}

impl Remembered {
    /// The counter for `name`, continued if it was seen before; a new one for no name.
    pub fn counter(&mut self, name: Option<WriterName>) -> Arc<AtomicU64> {
        let Some(name) = name else {
            return Arc::default();
        };
        let counter = match self.names.iter().position(|(n, _)| *n == name) {
            Some(i) => self.names.remove(i).map(|(_, c)| c).unwrap_or_default(),
            None => Arc::default(),
        };
        self.names.push_front((name, counter.clone()));
        self.names.truncate(REMEMBERED);
        counter
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn a_name_continues_its_count_and_old_names_are_forgotten() {
        let mut r = Remembered::default();
        let a = WriterName::new([1; 32], 7);
        r.counter(a).store(100, Ordering::Relaxed);
        assert_eq!(r.counter(a).load(Ordering::Relaxed), 100);
        let other_client = WriterName::new([2; 32], 7);
        assert_eq!(r.counter(other_client).load(Ordering::Relaxed), 0);
        assert_eq!(WriterName::new([1; 32], 0), None, "token 0 is no name");
        assert!(!Arc::ptr_eq(&r.counter(None), &r.counter(None)));
        for t in 1..=REMEMBERED as u64 {
            r.counter(WriterName::new([3; 32], t));
        }
        assert_eq!(r.counter(a).load(Ordering::Relaxed), 0, "forgotten");
    }
}
