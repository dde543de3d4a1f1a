//! A CAN bus on the relay: the observer behind its `state` track, and a writer's `cmd` track
//! onto the bus. Commands go through a writer attachment, so the bus's maximum age applies as
//! to any iroh client's frames; a frame without a timestamp is aged from its arrival here, and
//! error frames are refused. Everyone sees the frames on `state` once the bus carried them.

use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Result;
use tokio::sync::mpsc;
use xoq_link::canframe::unix_us;
use xoq_moq::tracks::MessageReader;
use xoq_wire::{Access, Message};

use crate::can::CanDevice;
use crate::session::Outbox;

/// Puts a writer's commands on the bus until its track ends; answers its clock comparisons
/// (`TimeSync`, so it can stamp frames in this server's clock for the maximum age) on `reply`.
pub async fn serve_writer(
    mut cmd: MessageReader,
    dev: Arc<CanDevice>,
    client: &str,
    reply: Outbox,
) -> Result<()> {
    // The bus's frames reach a writer on `state`, like everyone; only errors and counters of
    // its own attachment go to `reply`.
    let (tx, rx) = mpsc::channel(super::OUTBOX_DEPTH);
    let att = match dev.attach(Access::ReadWrite, tx) {
        Ok(a) => a,
        Err((code, text)) => return Err(super::refuse(&reply, code, text).await),
    };
    super::forward_replies(rx, reply.clone(), |m| {
        matches!(m, Message::Error { .. } | Message::CanCounters(_))
    });
    tracing::info!(device = %dev.name, %client, "a relay client writes to this bus");
    while let Some(m) = cmd.next().await? {
        match m {
            Message::CanFrames(mut frames) => {
                let before = frames.len();
                frames.retain(|f| !f.is_error());
                if frames.len() < before {
                    tracing::warn!(%client, refused = before - frames.len(), "a relay client sent error frames; not put on the bus");
                }
                let now = unix_us(SystemTime::now());
                for f in &mut frames {
                    if f.timestamp_us == 0 {
                        f.timestamp_us = now;
                    }
                }
                if !frames.is_empty() && att.submit(frames).await.is_err() {
                    return Ok(());
                }
            }
            Message::TimeSync { client_us, .. } => {
                let server_us = unix_us(SystemTime::now());
                let _ = reply
                    .send(Message::TimeSync {
                        client_us,
                        server_us,
                    })
                    .await;
            }
            other => {
                tracing::warn!(%client, "unexpected {} on a relay command track; ignored", other.name());
            }
        }
    }
    Ok(())
}
