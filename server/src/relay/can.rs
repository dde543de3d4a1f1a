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

pub fn observe(dev: &Arc<CanDevice>, outbox: Outbox) -> Result<Box<dyn Send>, String> {
    let att = dev
        .attach(Access::ReadOnly, outbox)
        .map_err(|(_, text)| text)?;
    Ok(Box::new(att))
}

/// Puts a writer's commands on the bus until its track ends.
pub async fn serve_writer(mut cmd: MessageReader, dev: Arc<CanDevice>, client: &str) -> Result<()> {
    // A writer's replies would be the bus's frames: the client reads those from `state`.
    let (tx, mut rx) = mpsc::channel(super::OUTBOX_DEPTH);
    let att = dev
        .attach(Access::ReadWrite, tx)
        .map_err(|(_, text)| anyhow::anyhow!(text))?;
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
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
            other => {
                tracing::warn!(%client, "unexpected {} on a relay command track; ignored", other.name());
            }
        }
    }
    Ok(())
}
