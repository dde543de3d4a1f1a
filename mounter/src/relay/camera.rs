//! A camera opened through the relay: its catalog (`catalog.json`, hang's, checked) names the
//! H.264 rendition and its size; the rendition's frames (a group per keyframe) become the
//! `VideoFrame`s the camera bridge decodes, as over iroh. Frames are numbered here, in the
//! order they arrive: a group cut short by a newer one (a subscriber behind live skips to the
//! next keyframe) leaves no gap to wait for, the next frame is a keyframe.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use xoq_link::client::ConnectError;
use xoq_link::framed::{ChannelItem, StreamError};
use xoq_link::frames::FrameRouter;
use xoq_moq::media::{self, VideoRendition};
use xoq_wire::{VideoCodec, VideoFrame};

/// How long the catalog may take to arrive.
const CATALOG_WAIT: Duration = Duration::from_secs(10);

/// Reads the camera's catalog from `broadcast`.
pub(super) async fn rendition(
    broadcast: &moq_net::broadcast::Consumer,
    name: &str,
) -> Result<VideoRendition, ConnectError> {
    let protocol = |why: String| ConnectError::Protocol(format!("camera `{name}`: {why}"));
    let read = async {
        let mut sub = broadcast
            .track(media::CATALOG_TRACK)
            .map_err(|e| protocol(format!("no catalog: {e}")))?
            .subscribe(None)
            .await
            .map_err(|e| protocol(format!("no catalog: {e}")))?;
        let mut group = sub
            .recv_group()
            .await
            .map_err(|e| protocol(e.to_string()))?
            .ok_or_else(|| protocol("the catalog track ended".into()))?;
        let frame = group
            .read_frame()
            .await
            .map_err(|e| protocol(e.to_string()))?
            .ok_or_else(|| protocol("an empty catalog".into()))?;
        media::read_catalog(&frame.payload).map_err(|e| protocol(e.to_string()))
    };
    tokio::time::timeout(CATALOG_WAIT, read)
        .await
        .map_err(|_| protocol(format!("no catalog within {CATALOG_WAIT:?}")))?
}

/// Delivers the rendition's frames to `frames` until the track ends or the bridge stops
/// (`to_bridge` closed); then tells the bridge why.
pub(super) async fn pump_frames(
    sub: moq_net::track::Subscriber,
    device: String,
    r: VideoRendition,
    frames: Arc<FrameRouter>,
    to_bridge: mpsc::Sender<ChannelItem>,
) {
    let mut seq: u32 = 0;
    // Newest group first: a late group (an older picture sequence) is never shown after a
    // newer one.
    let mut sub = sub.ordered();
    let why = loop {
        let group = tokio::select! {
            _ = to_bridge.closed() => return,
            g = sub.next_group() => g,
        };
        let mut group = match group {
            Ok(Some(g)) => g,
            Ok(None) => break format!("{device}'s video track ended"),
            Err(e) => break format!("{device}'s video track: {e}"),
        };
        let mut first = true;
        loop {
            let frame = tokio::select! {
                _ = to_bridge.closed() => return,
                f = group.read_frame() => f,
            };
            let payload = match frame {
                Ok(Some(f)) => f.payload,
                // The group ended (or was cut short by a newer one): on to the next.
                Ok(None) | Err(_) => break,
            };
            let decoded = match payload.len() {
                n if n > xoq_wire::limits::MAX_FRAME => Err(format!("a frame of {n} bytes")),
                _ => media::decode_frame(payload).map_err(|e| e.to_string()),
            };
            let (capture_us, data) = match decoded {
                Ok(f) => f,
                Err(e) => {
                    let _ = to_bridge
                        .send(Err(StreamError::Transport(format!("{device}: {e}"))))
                        .await;
                    return;
                }
            };
            frames.deliver(VideoFrame {
                device: device.clone(),
                seq,
                capture_us,
                keyframe: first,
                codec: VideoCodec::H264,
                width: r.width,
                height: r.height,
                data: data.to_vec(),
            });
            seq = seq.wrapping_add(1);
            first = false;
        }
    };
    let _ = to_bridge.send(Err(StreamError::Transport(why))).await;
}
