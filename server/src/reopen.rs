//! What every device actor does between a failure and its next attempt to open the device.

use std::time::Duration;

use tokio::sync::mpsc;

/// Wait between attempts to reopen a device that failed or is missing.
pub const REOPEN_DELAY: Duration = Duration::from_secs(1);

/// Waits `REOPEN_DELAY` while discarding the commands that arrive meanwhile (their senders
/// were already told the device failed). Returns false when every sender is gone: the actor
/// should stop.
pub async fn wait_discarding<T>(cmd_rx: &mut mpsc::Receiver<T>) -> bool {
    let deadline = tokio::time::sleep(REOPEN_DELAY);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return true,
            c = cmd_rx.recv() => if c.is_none() { return false },
        }
    }
}
