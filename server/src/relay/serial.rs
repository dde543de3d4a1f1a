//! A serial port on the relay: the observer behind its `rx` track (what the port received, its
//! settings and modem lines), and a writer's `tx` track onto the port. A writer attaches
//! read-write, so the port keeps one writer at a time across both transports: while an iroh
//! client or another relay client writes, a relay writer is refused and its track ignored.
//! A mounter starts each group of its `tx` track with an `Open` naming its writer (its token),
//! so the port counts what it took per writer across reconnections, as on iroh.

use std::sync::Arc;

use anyhow::Result;
use tokio::sync::mpsc;
use xoq_moq::tracks::MessageReader;
use xoq_wire::{Access, ErrorCode, Message};

use crate::serial::device::Op;
use crate::serial::stream::port_op;
use crate::serial::writer::WriterName;
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
    // The writer's name, from the `Open` its track starts with (a track without one, like a
    // plain MoQ client's, writes without resuming).
    let (name, mut first) = match tx_track.next().await? {
        Some(Message::Open { writer, .. }) => (writer_name(client, writer), None),
        Some(other) => (None, Some(other)),
        None => return Ok(()),
    };
    // While another client writes, this one is told once and its writes are dropped (counted);
    // it takes the port as soon as the port is free, as a mounter's reopen would.
    let (mut refused, mut told) = (0u64, false);
    let att = loop {
        match dev.attach(Access::ReadWrite, name, tx.clone()) {
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
            Err((code, text)) => return Err(super::refuse(&reply, code, text).await),
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
    // The writer first learns how much of what it sent under its name the port took.
    if att.submit(Op::Progress).await.is_err() {
        return Ok(());
    }
    loop {
        let m = match first.take() {
            Some(m) => m,
            None => match tx_track.next().await? {
                Some(m) => m,
                None => return Ok(()),
            },
        };
        match port_op(m) {
            Ok(op) => {
                if att.submit(op).await.is_err() {
                    return Ok(());
                }
            }
            Err(Message::Flow(action)) => att.flow(action).await,
            // Each group of the track starts with the writer's `Open` again.
            Err(Message::Open { .. }) => {}
            Err(other) => {
                tracing::warn!(%client, "unexpected {} on a relay tx track; ignored", other.name());
            }
        }
    }
}

/// A relay writer's name: its client name (which the relay's token check vouches for) in
/// place of an iroh key, hashed to a key's size in a domain of its own, and its token.
fn writer_name(client: &str, token: u64) -> Option<WriterName> {
    use std::hash::{Hash, Hasher};
    let mut id = [0u8; 32];
    for (i, chunk) in id.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        ("xoq relay writer", i, client).hash(&mut h);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    WriterName::new(id, token)
}
