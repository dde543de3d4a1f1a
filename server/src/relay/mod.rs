//! The relay publisher: this server's second transport. One session with a MoQ relay publishes
//! every served device once, however many subscribe, and takes the commands of the clients
//! whose tokens allow them (docs/ARCHITECTURE.md, "Transports"). It attaches to the device
//! actors like any iroh session, so their rules (one writer per port, a bus's maximum age) hold
//! here too.
//!
//! A camera (`camera`) and a microphone (`audio`) are published in the players' media format.
//! A CAN bus or serial port `dev` is the broadcast `dev` (under the session's root
//! `<prefix>/<server>`) with the track `info` (its `Opened` message) and a data track (`state`
//! for a CAN bus, `rx` for a serial port) of what an observer attachment sees, a group per
//! 100 ms: a slow relay never slows the device, what it misses is counted. A client allowed to
//! write publishes `dev/w/<client>` with a track of its commands (`cmd`, `tx`), which `writers`
//! serves, answering in `dev/r/<client>`.

mod audio;
mod camera;
mod can;
mod config;
mod serial;
mod writers;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use xoq_moq::tracks::MessageTrack;
use xoq_moq::RelayTarget;
use xoq_wire::{Access, DeviceInfo, ErrorCode, Message};

pub use config::MoqConfig;

use crate::devices::{Device, Devices};
use crate::session::Outbox;

/// The span of one group of a data track.
const GROUP_WINDOW: Duration = Duration::from_millis(100);
/// Messages queued for the relay before the observer counts drops.
const OUTBOX_DEPTH: usize = 256;

/// Publishes every device through the relay until the server stops; the session is redialled
/// whenever it drops.
pub async fn publish(target: RelayTarget, devices: Arc<Devices>) -> Result<()> {
    let published = moq_tokio::origin::spawn();
    let commands = moq_tokio::origin::spawn();
    let mut tasks = tokio::task::JoinSet::new();
    let mut writable = Vec::new();
    for d in devices.iter() {
        let data_track = match d {
            Device::Can(_) => "state",
            Device::Serial(_) => "rx",
            Device::Camera(c) => {
                let b = camera::CameraBroadcast::start(&published, c)?;
                tasks.spawn(b.run(c.clone()));
                continue;
            }
            Device::Audio(a) => {
                match audio::AudioBroadcast::start(&published, a) {
                    Ok(b) => {
                        tasks.spawn(b.run(a.clone()));
                    }
                    Err(e) => tracing::warn!(device = %a.name, "not published on the relay: {e:#}"),
                }
                continue;
            }
        };
        let b = DeviceBroadcast::start(&published, d.info(Access::ReadOnly), data_track)?;
        tasks.spawn(b.run(d.clone()));
        writable.push(d.clone());
    }
    tasks.spawn(writers::serve(
        commands.consume(),
        published.clone(),
        writable,
    ));
    let conn = target.connect(Some(published.consume()), Some(commands))?;
    tracing::info!(relay = %target.url, root = %target.paths.root(), "publishing through the MoQ relay");
    tokio::select! {
        r = conn.closed() => r.context("the relay session ended"),
        _ = async { while tasks.join_next().await.is_some() {} } => Ok(()),
    }
}

/// An observer's hold on a device: dropping it detaches.
#[expect(
    dead_code,
    reason = "held only for its Drop, which detaches the observer"
)]
enum Observer {
    Can(crate::can::CanAttachment),
    Serial(crate::serial::Attachment),
}

/// Attaches a read-only observer to a device, its messages going to `outbox`.
fn observe(dev: &Device, outbox: Outbox) -> Result<Observer, String> {
    let attached = match dev {
        Device::Can(d) => d.attach(Access::ReadOnly, outbox).map(Observer::Can),
        Device::Serial(d) => d
            .attach(Access::ReadOnly, None, outbox)
            .map(Observer::Serial),
        _ => return Err("only CAN buses and serial ports have a data track".into()),
    };
    attached.map_err(|(_, text)| text)
}

/// Tells a relay writer on its `reply` track why its device refused it, and gives the error
/// that ends serving it.
async fn refuse(reply: &Outbox, code: ErrorCode, text: String) -> anyhow::Error {
    let err = anyhow::anyhow!("{code}: {text}");
    let _ = reply.send(Message::Error { code, text }).await;
    err
}

/// Passes what a writer's attachment says to that writer alone (`for_writer`) to its `reply`
/// track, and drops the rest (the device's output, which everyone reads on the data track).
fn forward_replies(
    mut attachment: mpsc::Receiver<Message>,
    reply: Outbox,
    for_writer: fn(&Message) -> bool,
) {
    tokio::spawn(async move {
        while let Some(m) = attachment.recv().await {
            if for_writer(&m) && reply.send(m).await.is_err() {
                return;
            }
        }
    });
}

/// The `info` track of a device's broadcast: its description (an `Opened` message), read by
/// mounters before anything else.
fn describe(broadcast: &moq_net::broadcast::Producer, info: DeviceInfo) -> Result<MessageTrack> {
    let mut track = MessageTrack::new(broadcast.create_track("info", None)?, Duration::MAX);
    track.write(&Message::Opened(info))?;
    track.flush()?;
    Ok(track)
}

/// One device's broadcast: its `info` and its data track.
struct DeviceBroadcast {
    name: String,
    data: MessageTrack,
    // Kept so the broadcast stays announced and its info track served.
    _info: MessageTrack,
    _broadcast: moq_net::broadcast::Producer,
}

impl DeviceBroadcast {
    fn start(origin: &moq_net::origin::Producer, info: DeviceInfo, data: &str) -> Result<Self> {
        let name = info.name.clone();
        let broadcast = origin.create_broadcast(name.as_str())?;
        let info_track = describe(&broadcast, info)?;
        let data = MessageTrack::new(broadcast.create_track(data, None)?, GROUP_WINDOW);
        broadcast.announce(Default::default())?;
        Ok(Self {
            name,
            data,
            _info: info_track,
            _broadcast: broadcast,
        })
    }

    /// Copies what an observer of the device sees to the data track until the device's actor
    /// stops.
    async fn run(mut self, dev: Device) {
        let (tx, mut rx) = mpsc::channel(OUTBOX_DEPTH);
        let held = match observe(&dev, tx) {
            Ok(a) => a,
            Err(text) => {
                tracing::warn!(device = %self.name, "not published on the relay: {text}");
                return;
            }
        };
        while let Some(m) = rx.recv().await {
            if let Err(e) = self.data.write(&m) {
                tracing::warn!(device = %self.name, "relay data track: {e}");
                return;
            }
        }
        drop(held);
    }
}
