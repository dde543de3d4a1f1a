//! A serial port on the relay: the observer behind its `rx` track (what the port received, its
//! settings and modem lines), and a writer's `tx` track onto the port. A writer attaches
//! read-write, so the port keeps one writer at a time across both transports: while an iroh
//! client or another relay client writes, a relay writer is refused and its track ignored.

use std::sync::Arc;

use anyhow::Result;
use tokio::sync::mpsc;
use xoq_moq::tracks::MessageReader;
use xoq_wire::{Access, ErrorCode, Message};

use crate::serial::stream::port_op;
use crate::serial::SerialDevice;
use crate::session::Outbox;

/// How often a refused relay writer tries to take the port again.
const WRITER_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes a writer's data (and settings, modem lines, breaks, flushes) to the port, in order,
/// until its track ends. What the port answers this writer alone (`TxProgress`, `Drained`,
/// errors, a refusal when another client writes) goes to `reply`.
pub async fn serve_writer(
    mut tx_track: MessageReader,
    dev: Arc<SerialDevice>,
    client: &str,
    reply: Outbox,
) -> Result<()> {
    let (tx, rx) = mpsc::channel(super::OUTBOX_DEPTH);
    // While another client writes, this one is told once and its writes are dropped (counted);
    // it takes the port as soon as the port is free, as a mounter's reopen would.
    let (mut refused, mut told) = (0u64, false);
    let att = loop {
        match dev.attach(Access::ReadWrite, None, tx.clone()) {
            Ok(a) => break a,
            Err((ErrorCode::Busy, text)) => {
                if !told {
                    told = true;
                    tracing::info!(device = %dev.name, %client, "a relay writer waits: {text}");
                    let _ = reply
                        .send(Message::Error {
                            code: ErrorCode::Busy,
                            text,
                        })
                        .await;
                }
            }
            Err((code, text)) => {
                let _ = reply
                    .send(Message::Error {
                        code,
                        text: text.clone(),
                    })
                    .await;
                anyhow::bail!("{code}: {text}");
            }
        }
        let retry = tokio::time::Instant::now() + WRITER_RETRY;
        loop {
            match tokio::time::timeout_at(retry, tx_track.next()).await {
                Err(_) => break,
                Ok(Ok(Some(Message::Data(d)))) => refused += d.len() as u64,
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    };
    drop(tx);
    if refused > 0 {
        tracing::warn!(device = %dev.name, %client, bytes = refused, "bytes written while another client held the port were dropped");
    }
    // The port's output (its data, and the overruns of data) reaches a writer on `rx`, like
    // everyone: not repeated here.
    super::forward_replies(rx, reply, |m| match m {
        Message::Data(_) => false,
        Message::Error { code, .. } => *code != ErrorCode::Overrun,
        _ => true,
    });
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
