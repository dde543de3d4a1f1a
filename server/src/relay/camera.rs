//! A camera on the relay, in the format of the project's players (`xoq_moq::media`: hang's
//! catalog and H.264 frames, read by `@moq/watch` and by `xoq-mount`): the broadcast `dev` has
//! `info`, `catalog.json` and `video`, a group per keyframe, so a late joiner starts on one.
//! The camera runs only while someone watches `video` (and once at the start, for the first
//! keyframe, whose SPS names the codec in the catalog). A subscriber that falls behind loses
//! whole groups at the relay, never slows the camera; when this publisher itself falls behind
//! the camera, it waits for the next keyframe (asked for at once).

use std::sync::Arc;

use anyhow::Result;
use moq_net::Timestamp;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use xoq_moq::media;
use xoq_moq::tracks::MessageTrack;
use xoq_wire::{Access, VideoCodec};

use crate::camera::device::{CameraDevice, WireFrame};

/// How long the camera keeps running after its last watcher left.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// One camera's broadcast.
pub struct CameraBroadcast {
    name: String,
    catalog: moq_net::track::Producer,
    video: moq_net::track::Producer,
    /// The catalog last published: codec and size.
    described: Option<(String, u16, u16)>,
    group: Option<moq_net::group::Producer>,
    warned_codec: bool,
    _info: MessageTrack,
    _broadcast: moq_net::broadcast::Producer,
}

impl CameraBroadcast {
    pub fn start(origin: &moq_net::origin::Producer, dev: &CameraDevice) -> Result<Self> {
        let broadcast = origin.create_broadcast(dev.name.as_str())?;
        let info = super::describe(&broadcast, dev.info(Access::ReadOnly))?;
        let catalog = broadcast.create_track(media::CATALOG_TRACK, media::catalog_track_info())?;
        let video = broadcast.create_track(media::VIDEO_TRACK, media::video_track_info())?;
        broadcast.announce(Default::default())?;
        Ok(Self {
            name: dev.name.clone(),
            catalog,
            video,
            described: None,
            group: None,
            warned_codec: false,
            _info: info,
            _broadcast: broadcast,
        })
    }

    /// Publishes the camera's frames while they are watched, until the camera's actor stops.
    pub async fn run(mut self, dev: Arc<CameraDevice>) {
        loop {
            if self.described.is_some() && self.video.used().await.is_err() {
                return;
            }
            // The attachment's own messages (mode answers, errors) are not for the relay.
            let (outbox, _ignored) = mpsc::channel(8);
            let mut att = dev.attach(Access::ReadOnly, outbox);
            // A group per second: a late joiner starts on the next keyframe.
            let _periodic = dev.periodic_keyframes();
            let Some(mut frames) = att.frames.take() else {
                return;
            };
            tracing::info!(device = %self.name, "camera published on the relay");
            // Watchers come and go in bursts (a viewer resubscribing): the camera stops only
            // after nobody has watched for LINGER.
            let mut idle_since: Option<tokio::time::Instant> = None;
            loop {
                // Until the catalog is out, the camera runs for its first keyframe.
                let described = self.described.is_some();
                let linger = async {
                    match idle_since {
                        Some(t) => tokio::time::sleep_until(t + LINGER).await,
                        None => std::future::pending().await,
                    }
                };
                let frame = tokio::select! {
                    f = frames.recv() => f,
                    r = self.video.unused(), if described && idle_since.is_none() => {
                        if r.is_err() {
                            return;
                        }
                        idle_since = Some(tokio::time::Instant::now());
                        continue;
                    }
                    _ = linger => {
                        if self.video.is_used() {
                            idle_since = None;
                            continue;
                        }
                        break;
                    }
                };
                if idle_since.is_some() && self.video.is_used() {
                    idle_since = None;
                }
                match frame {
                    Ok(f) => {
                        if let Err(e) = self.publish(&f, dev.mode().fps) {
                            tracing::warn!(device = %self.name, "relay video track: {e:#}");
                            return;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::debug!(device = %self.name, frames = n, "relay publisher fell behind the camera; waiting for a keyframe");
                        self.end_group();
                        dev.request_keyframe();
                    }
                    Err(RecvError::Closed) => return,
                }
            }
            self.end_group();
            tracing::info!(device = %self.name, "nobody watches the camera on the relay");
        }
    }

    fn end_group(&mut self) {
        if let Some(g) = self.group.take() {
            let _ = g.finish();
        }
    }

    fn publish(&mut self, f: &WireFrame, fps: u16) -> Result<()> {
        if f.codec != VideoCodec::H264 {
            if !self.warned_codec {
                self.warned_codec = true;
                tracing::warn!(device = %self.name, "an MJPEG camera is not published on the relay (browsers play H.264)");
            }
            return Ok(());
        }
        if f.keyframe {
            self.describe(f, fps)?;
            self.end_group();
            self.group = Some(self.video.append_group()?);
        }
        // Frames before the first keyframe (or after a loss) cannot be decoded: not sent.
        if let Some(g) = &mut self.group {
            let bytes = media::encode_frame(f.capture_us, f.data())?;
            g.write_frame(Timestamp::from_micros(f.capture_us)?, bytes)?;
        }
        Ok(())
    }

    /// Publishes the catalog when the codec or the size changed (a new mode).
    fn describe(&mut self, f: &WireFrame, fps: u16) -> Result<()> {
        let Some(codec) = media::h264_codec(f.data()) else {
            anyhow::bail!("a keyframe without an SPS");
        };
        let key = (codec.to_string(), f.width, f.height);
        if self.described.as_ref() == Some(&key) {
            return Ok(());
        }
        let catalog = media::video_catalog(codec, f.width, f.height, fps, None)?;
        let mut g = self.catalog.append_group()?;
        g.write_frame(Timestamp::now(), catalog)?;
        g.finish()?;
        tracing::info!(device = %self.name, codec = %key.0, width = f.width, height = f.height, "camera described on the relay");
        self.described = Some(key);
        Ok(())
    }
}
