//! The clients that write through the relay: each command broadcast `dev/w/<client>` announced
//! to this robot (the relay forwards only those a token allows) is subscribed to and served by
//! its device kind, until it is withdrawn; what the device answers that writer alone (progress,
//! refusals, clock comparisons) goes to the broadcast `dev/r/<client>`, track `reply`.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::mpsc;
use xoq_moq::paths::{RelayPath, REPLY_SEGMENT};
use xoq_moq::tracks::{MessageReader, MessageTrack};
use xoq_wire::Peer;

use crate::devices::Device;

/// How late a CAN command group may be before it is skipped (its frames would be stale).
const CAN_CMD_MAX_AGE: Duration = Duration::from_millis(500);
/// How late a serial write may be: every byte matters, so long enough to ride out a stall.
const SERIAL_TX_MAX_AGE: Duration = Duration::from_secs(10);
/// The span of one group of a writer's replies.
const REPLY_WINDOW: Duration = Duration::from_secs(1);

/// Follows the command broadcasts announced to this robot and serves each one.
pub async fn serve(
    commands: moq_net::origin::Consumer,
    published: moq_net::origin::Producer,
    devices: Vec<Device>,
) {
    let mut announced = commands.announced();
    let mut writers: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
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
        let Some(dev) = devices.iter().find(|d| d.name() == device).cloned() else {
            tracing::debug!(%path, "a command broadcast for a device this server does not publish");
            continue;
        };
        let (consumer, published) = (commands.clone(), published.clone());
        let key = path.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = serve_one(consumer, published, &path, dev, &client).await {
                tracing::warn!(%client, device = %device, "relay writer: {e:#}");
            }
        });
        if let Some(old) = writers.insert(key, task) {
            old.abort();
        }
    }
}

async fn serve_one(
    commands: moq_net::origin::Consumer,
    published: moq_net::origin::Producer,
    path: &str,
    dev: Device,
    client: &str,
) -> Result<()> {
    let (track, max_age) = match &dev {
        Device::Can(_) => ("cmd", CAN_CMD_MAX_AGE),
        _ => ("tx", SERIAL_TX_MAX_AGE),
    };
    let broadcast = commands.request_broadcast(path).await?;
    let sub = broadcast
        .track(track)?
        .subscribe(moq_net::track::Subscription::default().with_max_age(max_age))
        .await?;
    let reader = MessageReader::new(sub, Peer::Client);
    // The writer's answers, in order (a group per second); withdrawn when this task ends.
    let reply =
        published.create_broadcast(format!("{}/{REPLY_SEGMENT}/{client}", dev.name()).as_str())?;
    let mut track = MessageTrack::new(reply.create_track("reply", None)?, REPLY_WINDOW);
    reply.announce(Default::default())?;
    let (tx, mut rx) = mpsc::channel(super::OUTBOX_DEPTH);
    let pump = async move {
        while let Some(m) = rx.recv().await {
            if track.write(&m).is_err() {
                return;
            }
        }
        let _ = track.flush();
    };
    let serve = async {
        match dev {
            Device::Can(d) => super::can::serve_writer(reader, d, client, tx).await,
            Device::Serial(d) => super::serial::serve_writer(reader, d, client, tx).await,
            _ => Ok(()),
        }
    };
    // The replies queued when the writer ends are still sent.
    let (served, ()) = tokio::join!(serve, pump);
    drop(reply);
    served
}

/// `<device>/w/<client>` relative to the session's root.
fn parse_writer(path: &str) -> Option<(String, String)> {
    match RelayPath::parse_relative(path)? {
        RelayPath::Writer { device, client } => Some((device, client)),
        RelayPath::Device(_) => None,
    }
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
