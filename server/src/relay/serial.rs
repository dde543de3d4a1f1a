//! A serial port on the relay: the observer behind its `rx` track (what the port received, its
//! settings and modem lines), and a writer's `tx` track onto the port. A writer attaches
//! read-write, so the port keeps one writer at a time across both transports: while an iroh
//! client or another relay client writes, a relay writer is refused and its track ignored.

use std::sync::Arc;

use anyhow::Result;
use tokio::sync::mpsc;
use xoq_moq::tracks::MessageReader;
use xoq_wire::Access;

use crate::serial::stream::port_op;
use crate::serial::SerialDevice;
use crate::session::Outbox;

pub fn observe(dev: &Arc<SerialDevice>, outbox: Outbox) -> Result<Box<dyn Send>, String> {
    let att = dev
        .attach(Access::ReadOnly, None, outbox)
        .map_err(|(_, text)| text)?;
    Ok(Box::new(att))
}

/// Writes a writer's data (and settings, modem lines, breaks, flushes) to the port, in order,
/// until its track ends.
pub async fn serve_writer(
    mut tx_track: MessageReader,
    dev: Arc<SerialDevice>,
    client: &str,
) -> Result<()> {
    // The writer's own copy of the port's output: on the relay everyone reads `rx`.
    let (tx, mut rx) = mpsc::channel(super::OUTBOX_DEPTH);
    let att = dev
        .attach(Access::ReadWrite, None, tx)
        .map_err(|(code, text)| anyhow::anyhow!("{code}: {text}"))?;
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    tracing::info!(device = %dev.name, %client, "a relay client writes to this port");
    while let Some(m) = tx_track.next().await? {
        match port_op(m) {
            Ok(op) => {
                if att.submit(op).await.is_err() {
                    return Ok(());
                }
            }
            Err(other) => {
                tracing::warn!(%client, "unexpected {} on a relay tx track; ignored", other.name());
            }
        }
    }
    Ok(())
}
