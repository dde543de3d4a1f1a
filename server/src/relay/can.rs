//! A CAN bus on the relay. The server publishes `<device>` with the track `info` (the
//! device's `Opened` message) and `state`: every bus frame as the bus saw it (read by an
//! observer attachment, so a slow relay never slows the bus; what it misses is counted), a
//! group per 100 ms. A client allowed to write publishes `<device>/w/<client>` with a track
//! `cmd` of `CanFrames`; the server subscribes to each and puts the frames on the bus through a
//! writer attachment, under the bus's maximum age like any iroh client's frames. Error frames
//! are refused; a frame with no timestamp is aged from its arrival here.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use tokio::sync::mpsc;
use xoq_link::canframe::unix_us;
use xoq_moq::paths::{RelayPath, WRITER_SEGMENT};
use xoq_moq::tracks::{MessageReader, MessageTrack};
use xoq_wire::{Access, Message, Peer};

use crate::can::CanDevice;

/// The span of one `state` group.
const GROUP_WINDOW: Duration = Duration::from_millis(100);
/// Messages queued for the relay before the observer counts drops.
const OUTBOX_DEPTH: usize = 256;
/// How late a command group may be before it is skipped (its frames would be stale anyway).
const CMD_MAX_AGE: Duration = Duration::from_millis(500);

pub struct Publisher {
    dev: Arc<CanDevice>,
    state: MessageTrack,
    // Kept so the broadcast stays announced and its info track served.
    _info: MessageTrack,
    _broadcast: moq_net::broadcast::Producer,
}

impl Publisher {
    pub fn start(origin: &moq_net::origin::Producer, dev: Arc<CanDevice>) -> Result<Self> {
        let broadcast = origin.create_broadcast(dev.name.as_str())?;
        let mut info = MessageTrack::new(broadcast.create_track("info", None)?, Duration::MAX);
        info.write(&Message::Opened(dev.info(Access::ReadOnly)))?;
        info.flush()?;
        let state = MessageTrack::new(broadcast.create_track("state", None)?, GROUP_WINDOW);
        broadcast.announce(Default::default())?;
        Ok(Self {
            dev,
            state,
            _info: info,
            _broadcast: broadcast,
        })
    }

    /// Copies every bus frame to the `state` track until the bus's actor stops.
    pub async fn run(mut self) {
        let (tx, mut rx) = mpsc::channel(OUTBOX_DEPTH);
        let att = match self.dev.attach(Access::ReadOnly, tx) {
            Ok(a) => a,
            Err((_, text)) => {
                tracing::warn!(device = %self.dev.name, "not published on the relay: {text}");
                return;
            }
        };
        while let Some(m) = rx.recv().await {
            if let Message::CanFrames(_) | Message::CanCounters(_) = &m {
                if let Err(e) = self.state.write(&m) {
                    tracing::warn!(device = %self.dev.name, "relay state track: {e}");
                    return;
                }
            }
        }
        drop(att);
    }
}

/// Follows the command broadcasts announced to this robot and serves each one.
pub async fn take_commands(commands: moq_net::origin::Consumer, buses: Vec<Arc<CanDevice>>) {
    let mut announced = commands.announced();
    let mut writers: std::collections::HashMap<String, tokio::task::JoinHandle<()>> =
        Default::default();
    while let Some(update) = announced.next().await {
        let path = update.prefix.as_str().to_string();
        if !update.kind.is_active() {
            if let Some(t) = writers.remove(&path) {
                t.abort();
            }
            continue;
        }
        let Some((device, client)) = parse_writer(&path) else {
            tracing::debug!(%path, "ignoring a broadcast that is not a command broadcast");
            continue;
        };
        let Some(dev) = buses.iter().find(|b| b.name == device).cloned() else {
            continue;
        };
        let consumer = commands.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = serve_writer(consumer, &path, dev, &client).await {
                tracing::warn!(%client, "relay commands: {e:#}");
            }
        });
        if let Some(old) = writers.insert(update.prefix.as_str().to_string(), task) {
            old.abort();
        }
    }
}

/// `<device>/w/<client>` relative to the session's root, parsed with the same checks as paths.
fn parse_writer(path: &str) -> Option<(String, String)> {
    let probe = xoq_moq::RelayPaths::new("", "x").ok()?;
    match probe.parse(&format!("x/{}", path.trim_matches('/')))? {
        RelayPath::Writer { device, client } => Some((device, client)),
        RelayPath::Device(_) => None,
    }
}

async fn serve_writer(
    commands: moq_net::origin::Consumer,
    path: &str,
    dev: Arc<CanDevice>,
    client: &str,
) -> Result<()> {
    let broadcast = commands.request_broadcast(path).await?;
    let sub = broadcast
        .track("cmd")?
        .subscribe(moq_net::track::Subscription::default().with_max_age(CMD_MAX_AGE))
        .await?;
    let mut reader = MessageReader::new(sub, Peer::Client);
    // A writer's replies would be the bus's frames: the client reads those from `state`.
    let (tx, mut rx) = mpsc::channel(OUTBOX_DEPTH);
    let att = dev
        .attach(Access::ReadWrite, tx)
        .map_err(|(_, text)| anyhow::anyhow!(text))?;
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    tracing::info!(device = %dev.name, %client, "a relay client writes to this bus ({WRITER_SEGMENT}/{client})");
    while let Some(m) = reader.next().await? {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_command_broadcasts_name_a_writer() {
        assert_eq!(
            parse_writer("can0/w/op1"),
            Some(("can0".into(), "op1".into()))
        );
        for other in ["can0", "can0/w", "can0/w/op1/x", "../w/op1", "can0/x/op1"] {
            assert_eq!(parse_writer(other), None, "{other}");
        }
    }
}
