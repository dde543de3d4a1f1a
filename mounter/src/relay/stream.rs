//! One device opened through the relay, as the `DeviceStream` the bridges read and write, so
//! the local devices' code is the same as on iroh (a camera's frames and a microphone's
//! packets go to the session's routers, as iroh's do). The reader is fed by the device's data track
//! (`state` for a CAN bus, `rx` for a serial port) and, for a writer, by its own `reply` track
//! (`<device>/r/<client>`); the writer's messages go on its command track (`cmd`, `tx`) in
//! `<device>/w/<client>`. Without a token that may write the device, the stream is read-only,
//! as when an iroh server narrows a grant: writes are refused here, said once, and a CAN bus's
//! clock comparison is answered here with no offset (a read-only mount stamps no commands).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use xoq_link::client::{ConnectError, DeviceStream};
use xoq_link::framed::{ChannelItem, MessageReader as ChannelReader, MessageWriter, StreamError};
use xoq_moq::media;
use xoq_moq::paths::{REPLY_SEGMENT, WRITER_SEGMENT};
use xoq_moq::tracks::{MessageReader, MessageTrack, TrackError};
use xoq_wire::{Access, DeviceKind, ErrorCode, Message, Peer};

use super::echo::EchoFilter;
use super::session::{announced_broadcast, unreachable_relay, RelaySession};

/// Messages queued each way between a bridge and its tracks.
const DEPTH: usize = 256;
/// How old a group of the data track may be and still be read: every byte of a serial port
/// matters; a CAN bus's state older than a second is history.
const SERIAL_RX_MAX_AGE: Duration = Duration::from_secs(10);
const CAN_STATE_MAX_AGE: Duration = Duration::from_secs(1);
/// How far a microphone's packet may fall behind newer ones and still be delivered (a
/// retransmitted one on a lossy link); also the most backlog a new subscriber is handed.
const AUDIO_MAX_AGE: Duration = Duration::from_millis(100);
/// The same for the server's answers to this writer.
const REPLY_MAX_AGE: Duration = Duration::from_secs(10);
/// The span of a group of this client's commands: the server skips groups older than its
/// limit (500 ms for CAN), so CAN commands are grouped finely.
const CAN_CMD_WINDOW: Duration = Duration::from_millis(100);
const SERIAL_TX_WINDOW: Duration = Duration::from_secs(1);

/// The tracks of one kind of device.
struct Tracks {
    data: &'static str,
    data_max_age: Duration,
    command: &'static str,
    command_window: Duration,
}

fn tracks(kind: DeviceKind) -> Tracks {
    match kind {
        DeviceKind::Can => Tracks {
            data: "state",
            data_max_age: CAN_STATE_MAX_AGE,
            command: "cmd",
            command_window: CAN_CMD_WINDOW,
        },
        _ => Tracks {
            data: "rx",
            data_max_age: SERIAL_RX_MAX_AGE,
            command: "tx",
            command_window: SERIAL_TX_WINDOW,
        },
    }
}

impl RelaySession {
    /// Opens `name` once its broadcast is announced: read-write when `access` asks for it and
    /// the token lets this client write the device, else read-only.
    /// A serial port's writer is named by `writer_token` (as on iroh: the port counts what it
    /// took per writer across reconnections, so nothing is lost or written twice).
    pub async fn open(
        &self,
        name: &str,
        access: Access,
        writer_token: u64,
    ) -> Result<DeviceStream, ConnectError> {
        let broadcast = self.broadcast(name).await?;
        let mut info = super::session::read_info(&broadcast, name).await?;
        match info.kind {
            DeviceKind::Camera => return self.open_camera(&broadcast, info).await,
            DeviceKind::Audio => return self.open_microphone(&broadcast, info).await,
            _ => {}
        }
        let t = tracks(info.kind);
        let data = subscribe(&broadcast, t.data, t.data_max_age)
            .await
            .map_err(|e| unreachable_relay(&self.target, e))?;
        let (to_bridge, from_tracks) = mpsc::channel(DEPTH);
        let (to_tracks, from_bridge) = mpsc::channel(DEPTH);
        let writer = self
            .writer_for(name)
            .filter(|_| access == Access::ReadWrite);
        // A CAN writer's own frames come back on `state`: hidden, as a bus hides them.
        let echo = (writer.is_some() && info.kind == DeviceKind::Can)
            .then(|| Arc::new(EchoFilter::default()));
        tokio::spawn(pump(
            MessageReader::new(data, Peer::Server),
            to_bridge.clone(),
            format!("{name}'s {} track", t.data),
            echo.clone(),
        ));
        match writer {
            Some(client) => {
                info.access = Access::ReadWrite;
                let path = format!("{name}/{WRITER_SEGMENT}/{client}");
                let made = self
                    .published
                    .create_broadcast(path.as_str())
                    .and_then(|b| {
                        let track = b.create_track(t.command, None)?;
                        b.announce(Default::default())?;
                        Ok((b, track))
                    });
                let (commands, track) = made.map_err(|e| unreachable_relay(&self.target, e))?;
                let mut track = MessageTrack::new(track, t.command_window);
                if info.kind == DeviceKind::Serial {
                    track = track
                        .with_header(&Message::Open {
                            device: name.to_string(),
                            access: Access::ReadWrite,
                            writer: writer_token,
                            delivery: Default::default(),
                        })
                        .map_err(|e| unreachable_relay(&self.target, e))?;
                }
                tokio::spawn(send_commands(from_bridge, track, commands, echo));
                // The server answers this writer once it has seen its broadcast; until then
                // the bridge waits for answers as it would for a slow server.
                let reply = format!("{name}/{REPLY_SEGMENT}/{client}");
                let received = self.received.clone();
                let to_bridge = to_bridge.clone();
                tokio::spawn(async move {
                    let read = async {
                        let b = announced_broadcast(&received, &reply).await?;
                        subscribe(&b, "reply", REPLY_MAX_AGE).await
                    };
                    let sub = tokio::select! {
                        r = read => r,
                        _ = to_bridge.closed() => return,
                    };
                    match sub {
                        Ok(sub) => {
                            let what = format!("{reply}'s reply track");
                            let reader = MessageReader::new(sub, Peer::Server);
                            pump(reader, to_bridge, what, None).await
                        }
                        Err(e) => {
                            let why = format!("the answers on {reply}: {e}");
                            let _ = to_bridge.send(Err(StreamError::Transport(why))).await;
                        }
                    }
                });
            }
            None => {
                if access == Access::ReadWrite {
                    tracing::info!(device = %name, "the relay token does not let this client write this device: mounted read-only");
                }
                info.access = Access::ReadOnly;
                tokio::spawn(refuse_writes(from_bridge, to_bridge, name.to_string()));
            }
        }
        Ok(DeviceStream {
            info,
            reader: ChannelReader::channel(from_tracks),
            writer: MessageWriter::channel(to_tracks),
            // The relay's tracks, in their order (their maximum age drops what is late).
            delivery: Default::default(),
        })
    }

    /// A camera: read-only (a relay carries no mode changes or keyframe requests: a late
    /// joiner starts on a keyframe, a loss heals at the next one). Its frames go to the frame
    /// router, the stream's reader ends when the video track does.
    async fn open_camera(
        &self,
        broadcast: &moq_net::broadcast::Consumer,
        info: xoq_wire::DeviceInfo,
    ) -> Result<DeviceStream, ConnectError> {
        let rendition = super::camera::rendition(broadcast, &info.name).await?;
        let video = broadcast
            .track(&rendition.track)
            .map_err(|e| unreachable_relay(&self.target, e))?
            .subscribe(None)
            .await
            .map_err(|e| unreachable_relay(&self.target, e))?;
        let (name, frames) = (info.name.clone(), self.frames.clone());
        Ok(read_only(info, |to_bridge| {
            super::camera::pump_frames(video, name, rendition, frames, to_bridge)
        }))
    }

    /// A microphone: read-only. Its packets go to the packet router, the stream's reader ends
    /// when the audio track does.
    async fn open_microphone(
        &self,
        broadcast: &moq_net::broadcast::Consumer,
        info: xoq_wire::DeviceInfo,
    ) -> Result<DeviceStream, ConnectError> {
        let audio = subscribe(broadcast, media::AUDIO_TRACK, AUDIO_MAX_AGE)
            .await
            .map_err(|e| unreachable_relay(&self.target, e))?;
        let (name, packets) = (info.name.clone(), self.packets.clone());
        Ok(read_only(info, |to_bridge| {
            super::audio::pump_packets(audio, name, packets, to_bridge)
        }))
    }
}

/// A read-only stream of `info`, its reader fed by what `pump` makes of the bridge's end (the
/// stream's writes are refused).
fn read_only<F>(
    mut info: xoq_wire::DeviceInfo,
    pump: impl FnOnce(mpsc::Sender<ChannelItem>) -> F,
) -> DeviceStream
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    info.access = Access::ReadOnly;
    let (to_bridge, from_tracks) = mpsc::channel(DEPTH);
    let (to_tracks, from_bridge) = mpsc::channel(DEPTH);
    tokio::spawn(pump(to_bridge.clone()));
    tokio::spawn(refuse_writes(from_bridge, to_bridge, info.name.clone()));
    DeviceStream {
        info,
        reader: ChannelReader::channel(from_tracks),
        writer: MessageWriter::channel(to_tracks),
        delivery: Default::default(),
    }
}

async fn subscribe(
    broadcast: &moq_net::broadcast::Consumer,
    track: &str,
    max_age: Duration,
) -> Result<moq_net::track::Subscriber, moq_net::Error> {
    broadcast
        .track(track)?
        .subscribe(moq_net::track::Subscription::default().with_max_age(max_age))
        .await
}

/// Passes a track's messages to the bridge until either ends; the bridge learns why a track
/// ended (the server or the relay went away, a malformed message). `echo` hides a CAN writer's
/// own frames.
async fn pump(
    mut track: MessageReader,
    to: mpsc::Sender<ChannelItem>,
    what: String,
    echo: Option<Arc<EchoFilter>>,
) {
    loop {
        let next = tokio::select! {
            _ = to.closed() => return,
            n = track.next() => n,
        };
        let end = match next {
            Ok(Some(Message::CanFrames(mut frames))) if echo.is_some() => {
                if let Some(e) = &echo {
                    e.strip(&mut frames);
                }
                if !frames.is_empty() && to.send(Ok(Message::CanFrames(frames))).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(Some(m)) => {
                if to.send(Ok(m)).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(None) => {
                StreamError::Transport(format!("{what} ended (the server or the relay went away)"))
            }
            Err(TrackError::Wire(e)) => StreamError::Wire(e),
            Err(e) => StreamError::Transport(format!("{what}: {e}")),
        };
        let _ = to.send(Err(end)).await;
        return;
    }
}

/// Writes the bridge's messages to this client's command track until the bridge finishes;
/// the command broadcast is withdrawn then. CAN frames sent are remembered in `echo`.
async fn send_commands(
    mut from: mpsc::Receiver<Message>,
    mut track: MessageTrack,
    broadcast: moq_net::broadcast::Producer,
    echo: Option<Arc<EchoFilter>>,
) {
    while let Some(m) = from.recv().await {
        if let (Some(e), Message::CanFrames(frames)) = (&echo, &m) {
            e.sent(frames);
        }
        if let Err(e) = track.write(&m) {
            tracing::warn!("relay command track: {e}");
            break;
        }
    }
    let _ = track.flush();
    drop(broadcast);
}

/// A read-only stream's writes: refused (said once per kind), and clock comparisons answered
/// with no offset.
async fn refuse_writes(
    mut from: mpsc::Receiver<Message>,
    to: mpsc::Sender<ChannelItem>,
    device: String,
) {
    let mut told = false;
    let advice = format!(
        "the relay token does not let this client write `{device}`: ask for one made with \
         `xoq-server token --publish {device} --client NAME`"
    );
    while let Some(m) = from.recv().await {
        let answer = match m {
            Message::TimeSync { client_us, .. } => Message::TimeSync {
                client_us,
                server_us: client_us,
            },
            Message::Data(_) if !told => Message::Error {
                code: ErrorCode::ReadOnly,
                text: advice.clone(),
            },
            Message::CanFrames(_) if !told => Message::Error {
                code: ErrorCode::NotPermitted,
                text: advice.clone(),
            },
            _ => continue,
        };
        told |= !matches!(answer, Message::TimeSync { .. });
        if to.send(Ok(answer)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_only_stream_refuses_writes_once_and_answers_clock_checks() {
        let (to_tracks, from_bridge) = mpsc::channel(8);
        let (to_bridge, mut answers) = mpsc::channel(8);
        tokio::spawn(refuse_writes(from_bridge, to_bridge, "can0".into()));
        let frames = Message::CanFrames(vec![]);
        to_tracks.send(frames.clone()).await.expect("send");
        to_tracks.send(frames).await.expect("send");
        to_tracks
            .send(Message::TimeSync {
                client_us: 42,
                server_us: 0,
            })
            .await
            .expect("send");
        match answers.recv().await {
            Some(Ok(Message::Error { code, text })) => {
                assert_eq!(code, ErrorCode::NotPermitted);
                assert!(text.contains("--publish can0"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        match answers.recv().await {
            Some(Ok(Message::TimeSync {
                client_us: 42,
                server_us: 42,
            })) => {}
            other => panic!("the second write was refused again, or no clock answer: {other:?}"),
        }
    }
}
