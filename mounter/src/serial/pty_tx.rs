//! What a PTY mount has sent toward the remote port and the port has not yet taken
//! (`TxProgress`): the bridge stops reading the PTY while [`TX_CAP`] bytes are in flight, so a
//! program writing faster than the remote line fills the PTY's buffer and blocks, as on a
//! local UART; and after a reconnection what the port did not take is sent again. Shared by
//! the bridges of successive connections.

use std::sync::Mutex;

use tokio::sync::Notify;
use xoq_wire::TxLedger;

/// Bytes in flight before the bridge stops reading the PTY (a UART's buffer, one page).
pub const TX_CAP: usize = 4096;

#[derive(Default)]
pub struct PtyTx {
    ledger: Mutex<TxLedger>,
    progressed: Notify,
}

impl PtyTx {
    fn ledger(&self) -> std::sync::MutexGuard<'_, TxLedger> {
        xoq_link::sync::lock(&self.ledger)
    }

    pub fn sent(&self, data: &[u8]) {
        self.ledger().sent(data);
    }

    pub fn progress(&self, written: u64) {
        self.ledger().progress(written);
        self.progressed.notify_waiters();
    }

    /// The first report on a new stream: what to send again.
    pub fn resume(&self, written: u64) -> Vec<u8> {
        let again = self.ledger().resume(written);
        self.progressed.notify_waiters();
        again
    }

    pub fn in_flight(&self) -> usize {
        self.ledger().in_flight()
    }

    /// Waits until fewer than [`TX_CAP`] bytes are in flight.
    pub async fn room(&self) {
        loop {
            let progressed = self.progressed.notified();
            if self.in_flight() < TX_CAP {
                return;
            }
            progressed.await;
        }
    }
}
