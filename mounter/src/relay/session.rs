//! A mounter's session with a MoQ relay: the devices one server publishes there, found from the
//! relay's announcements and each device's `info` track, and each opened as a `DeviceStream`
//! fed by MoQ tracks (`stream`). The session redials the relay by itself when it drops; the
//! devices' broadcasts are announced again on the new session.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use xoq_link::client::ConnectError;
use xoq_link::datagrams::DatagramRouter;
use xoq_link::frames::FrameRouter;
use xoq_moq::paths::RelayPath;
use xoq_moq::token::{claimed_writes, Writes};
use xoq_moq::tracks::MessageReader;
use xoq_moq::RelayTarget;
use xoq_wire::limits::MAX_DEVICES;
use xoq_wire::{
    Access, AudioDirection, DeviceInfo, DeviceKind, DeviceSettings, ErrorCode, Message, Peer,
    SampleFormat, VideoCodec,
};

/// How long a device's `info` track may take to deliver its description.
const INFO_WAIT: Duration = Duration::from_secs(10);

/// One server's devices on one relay.
pub struct RelaySession {
    pub target: RelayTarget,
    pub conn: moq_tokio::Connection,
    /// What the relay forwards to us: the server's broadcasts under its root.
    pub(super) received: moq_net::origin::Consumer,
    /// Our command broadcasts, `<device>/w/<client>`.
    pub(super) published: moq_net::origin::Producer,
    /// What the token says this client may write, and as whom.
    pub(super) writes: Option<Writes>,
    /// Camera frames, by device, for the camera bridges.
    pub frames: Arc<FrameRouter>,
    /// Microphone packets, by device, for the audio bridges (the router iroh's datagrams
    /// use).
    pub packets: Arc<DatagramRouter>,
    // The origin the session fills; kept for the life of the session.
    _receiving: moq_net::origin::Producer,
}

impl RelaySession {
    /// Starts dialling the relay (and redialling whenever the session drops).
    pub fn connect(target: RelayTarget) -> Result<Self> {
        let writes = claimed_writes(&target.token, &target.paths)
            .context("the relay token cannot be used")?;
        let published = moq_tokio::origin::spawn();
        let receiving = moq_tokio::origin::spawn();
        let conn = target.connect(Some(published.consume()), Some(receiving.clone()))?;
        Ok(Self {
            target,
            conn,
            received: receiving.consume(),
            published,
            writes,
            frames: Arc::default(),
            packets: Arc::default(),
            _receiving: receiving,
        })
    }

    /// The writer's name and whether the token lets this client write `device`.
    pub(super) fn writer_for(&self, device: &str) -> Option<&str> {
        self.writes
            .as_ref()
            .filter(|w| w.devices.iter().any(|d| d == device))
            .map(|w| w.client.as_str())
    }

    /// Each device the server publishes (and the token lets us see), once, when it is first
    /// announced, described by its `info` track. A broadcast whose name is not a device name,
    /// whose description does not match its name, or of a kind relays do not carry yet is
    /// skipped and logged; at most `MAX_DEVICES` are ever described.
    pub fn catalog(self: &Arc<Self>) -> mpsc::Receiver<DeviceInfo> {
        let (tx, rx) = mpsc::channel(MAX_DEVICES);
        let me = self.clone();
        tokio::spawn(async move {
            let mut announced = me.received.announced();
            let mut seen = HashSet::new();
            while let Some(update) = announced.next().await {
                if !update.kind.is_active() {
                    continue;
                }
                let Some(RelayPath::Device(name)) =
                    RelayPath::parse_relative(update.prefix.as_str())
                else {
                    continue;
                };
                if seen.contains(&name) {
                    continue;
                }
                if seen.len() >= MAX_DEVICES {
                    tracing::warn!(device = %name, "the relay announces more than {MAX_DEVICES} devices for this server; not mounted");
                    continue;
                }
                match me.describe(&name).await {
                    Ok(info) => {
                        seen.insert(name);
                        if tx.send(info).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(device = %name, "not mounted: {e}"),
                }
            }
        });
        rx
    }

    /// Waits for `name`'s broadcast and reads its description, with the access this client's
    /// token gives it (as an iroh catalog gives this client's grant).
    pub(super) async fn describe(&self, name: &str) -> Result<DeviceInfo, ConnectError> {
        let broadcast = self.broadcast(name).await?;
        let mut info = read_info(&broadcast, name).await?;
        info.access = match self.writer_for(name) {
            Some(_) => Access::ReadWrite,
            None => Access::ReadOnly,
        };
        Ok(info)
    }

    /// `path`'s broadcast, once the relay announces it (it may be away for a while: the server
    /// or the relay restarting).
    pub(super) async fn broadcast(
        &self,
        path: &str,
    ) -> Result<moq_net::broadcast::Consumer, ConnectError> {
        announced_broadcast(&self.received, path)
            .await
            .map_err(|e| match e {
                moq_net::Error::Unauthorized => ConnectError::Refused {
                    code: ErrorCode::NotPermitted,
                    text: format!("the relay token does not cover `{path}`"),
                },
                other => unreachable_relay(&self.target, other),
            })
    }
}

/// `path`'s broadcast once it is announced exactly: a route that only covers it (a device's
/// broadcast covers its writers' reply paths) does not serve it.
pub(super) async fn announced_broadcast(
    received: &moq_net::origin::Consumer,
    path: &str,
) -> Result<moq_net::broadcast::Consumer, moq_net::Error> {
    let mut announced = received.announced();
    loop {
        let Some(update) = announced.next().await else {
            return Err(moq_net::Error::Closed);
        };
        if update.kind.is_active() && update.prefix.as_str() == path {
            break;
        }
    }
    received.request_broadcast(path).await
}

/// The relay could not be used for now (retried).
pub(super) fn unreachable_relay(target: &RelayTarget, e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Unreachable {
        id: target.paths.root(),
        reason: format!("relay {}: {e}", target.url),
    }
}

/// The `Opened` message on a device broadcast's `info` track, checked to describe that device.
pub(super) async fn read_info(
    broadcast: &moq_net::broadcast::Consumer,
    name: &str,
) -> Result<DeviceInfo, ConnectError> {
    let protocol = |why: String| ConnectError::Protocol(format!("device `{name}`: {why}"));
    let read = async {
        let sub = broadcast
            .track("info")
            .map_err(|e| protocol(format!("no info track: {e}")))?
            .subscribe(None)
            .await
            .map_err(|e| protocol(format!("no info track: {e}")))?;
        MessageReader::new(sub, Peer::Server)
            .next()
            .await
            .map_err(|e| protocol(e.to_string()))
    };
    let info = match tokio::time::timeout(INFO_WAIT, read).await {
        Err(_) => return Err(protocol(format!("no description within {INFO_WAIT:?}"))),
        Ok(r) => match r? {
            Some(Message::Opened(info)) => info,
            Some(other) => return Err(protocol(format!("expected Opened, got {}", other.name()))),
            None => return Err(protocol("the info track ended empty".into())),
        },
    };
    if info.name != name {
        return Err(protocol(format!(
            "its description names another device, `{}`",
            info.name
        )));
    }
    let h264_camera = matches!(
        &info.settings,
        DeviceSettings::Camera(c) if c.codec == VideoCodec::H264
    );
    let opus_microphone = matches!(
        &info.settings,
        DeviceSettings::Audio(a) if a.direction == AudioDirection::Capture
            && a.format.sample == SampleFormat::Opus
    );
    let carried = match info.kind {
        DeviceKind::Serial | DeviceKind::Can => true,
        DeviceKind::Camera => h264_camera,
        DeviceKind::Audio => opus_microphone,
        _ => false,
    };
    if !carried {
        return Err(protocol(format!(
            "a {} described so is not carried by relays (serial ports, CAN buses, H.264 \
             cameras and Opus microphones are)",
            info.kind
        )));
    }
    Ok(info)
}
