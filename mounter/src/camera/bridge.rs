//! A camera mounted on this machine, and the bridge that feeds it for one connection: frames
//! from the frame router are put back in order (`reorder`) and go to the decoder; gaps given
//! up and undecodable frames turn into keyframe requests (at most five a second); mode answers
//! and errors come on the device stream.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;
use xoq_link::client::DeviceStream;
use xoq_link::framed::MessageWriter;
use xoq_wire::{Access, DeviceSettings, ErrorCode, Message, VideoFrame, VideoMode};

use xoq_link::stats::percentile;

use super::claim::{Claim, NamedLink};
use super::decode::DecoderHandle;
use super::reorder::{hold_limit, FrameOrder, Released, ReorderStats};
use crate::mounted::BridgeEnd;
use crate::status::DeviceStatus;

/// Least time between two keyframe requests.
const KEYFRAME_EVERY: Duration = Duration::from_millis(200);

/// One mounted camera; outlives connections.
pub struct CameraMount {
    pub name: String,
    pub access: Access,
    pub status: Arc<DeviceStatus>,
    /// The stable name, `/dev/xoq/<server>-<camera>`, when made.
    pub link: Option<NamedLink>,
    /// The loopback device, held while mounted (none for a file sink).
    pub _claim: Option<Claim>,
    /// The mode to ask the server for, if the user chose one.
    pub wanted: Option<VideoMode>,
    pub decoder: DecoderHandle,
}

impl CameraMount {
    pub fn remove(&self) {
        if let Some(l) = &self.link {
            l.remove();
        }
        if let Some(c) = self._claim.as_ref().filter(|c| c.added()) {
            self.decoder.close();
            c.release();
        }
    }

    fn publish_stats(&self, order: &ReorderStats, fps: u16) {
        let s = &self.decoder.stats;
        let mut lat = xoq_link::sync::lock(&s.latency_us).clone();
        // The last second's frames, to watch the latency move.
        let mut recent = lat[lat.len().saturating_sub(usize::from(fps.max(1)))..].to_vec();
        let p50 = percentile(&mut lat, 0.5);
        let p99 = percentile(&mut lat, 0.99);
        self.status.set_detail(
            "frames",
            json!({
                "received": s.received.load(Ordering::Relaxed),
                "keyframes": s.keyframes.load(Ordering::Relaxed),
                "written": s.written.load(Ordering::Relaxed),
                "repeated": s.repeated.load(Ordering::Relaxed),
                "decode_errors": s.decode_errors.load(Ordering::Relaxed),
                "dropped": s.dropped.load(Ordering::Relaxed),
                "sink_errors": s.sink_errors.load(Ordering::Relaxed),
                "latency_p50_us": p50,
                "latency_p99_us": p99,
                "latency_recent_p50_us": percentile(&mut recent, 0.5),
                "latency_recent_p99_us": percentile(&mut recent, 0.99),
                "reordered": order.reordered,
                "gaps": order.gaps,
                "too_late": order.too_late,
            }),
        );
    }

    /// Feeds the decoder until the stream or the connection ends; `rtt` is the link's round
    /// trip, which bounds how long frames wait for one that overtook them.
    pub async fn bridge(
        &self,
        stream: DeviceStream,
        mut frames: mpsc::Receiver<VideoFrame>,
        rtt: impl Fn() -> Option<Duration>,
    ) -> BridgeEnd {
        let DeviceStream {
            info,
            mut reader,
            mut writer,
            ..
        } = stream;
        let DeviceSettings::Camera(cs) = info.settings else {
            return BridgeEnd::DeviceGone("the server's device is no longer a camera".into());
        };
        self.decoder.set_mode(cs.mode);
        self.status.set_detail("mode", json!(cs.mode.to_string()));
        if let Some(w) = self.wanted.filter(|w| *w != cs.mode) {
            if let Err(e) = writer.send(&Message::VideoMode(w)).await {
                return BridgeEnd::LinkLost(e.to_string());
            }
        }
        let mut last_request: Option<Instant> = None;
        let mut order = FrameOrder::default();
        let mut fps = cs.mode.fps;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            let limit = hold_limit(rtt(), fps);
            let hold = order.deadline(limit);
            tokio::select! {
                m = reader.next() => match m {
                    Ok(Some(Message::VideoMode(m))) => {
                        fps = m.fps;
                        self.decoder.set_mode(m);
                        self.status.set_detail("mode", json!(m.to_string()));
                    }
                    Ok(Some(Message::Error { code, text })) => {
                        self.status.errors.fetch_add(1, Ordering::Relaxed);
                        match code {
                            ErrorCode::DeviceGone => return BridgeEnd::DeviceGone(text),
                            _ => {
                                tracing::error!(device = %self.name, %code, "{text}");
                                self.status.set_detail("last_error", json!(text));
                            }
                        }
                    }
                    Ok(Some(other)) => {
                        return BridgeEnd::LinkLost(format!("server sent {} on a camera stream", other.name()))
                    }
                    Ok(None) => return BridgeEnd::DeviceGone("the server closed the camera stream".into()),
                    Err(e) => return BridgeEnd::LinkLost(e.to_string()),
                },
                f = frames.recv() => {
                    let Some(f) = f else {
                        return BridgeEnd::LinkLost("frames stopped".into());
                    };
                    self.status.rx_bytes.fetch_add(f.data.len() as u64, Ordering::Relaxed);
                    self.feed(order.push(f, Instant::now()));
                }
                _ = sleep_until(hold) => self.feed(order.expire(Instant::now(), limit)),
                _ = tick.tick() => self.publish_stats(&order.stats, fps),
            }
            // After every event: a chain broken by it asks for its keyframe now, not at the
            // next tick (and one the decoder found broken, at least every tick).
            if let Err(e) = self
                .maybe_request_keyframe(&mut writer, &mut last_request)
                .await
            {
                return e;
            }
        }
    }

    /// Hands frames in order to the decoder; a gap given up breaks the reference chain.
    fn feed(&self, released: Vec<Released>) {
        for r in released {
            if r.after_gap && !r.frame.keyframe {
                self.decoder.broken_chain();
            }
            self.decoder.push(r.frame);
        }
    }

    async fn maybe_request_keyframe(
        &self,
        writer: &mut MessageWriter,
        last: &mut Option<Instant>,
    ) -> Result<(), BridgeEnd> {
        if last.is_some_and(|t| t.elapsed() < KEYFRAME_EVERY)
            || !self.decoder.take_keyframe_request()
        {
            return Ok(());
        }
        *last = Some(Instant::now());
        writer
            .send(&Message::KeyframeRequest)
            .await
            .map_err(|e| BridgeEnd::LinkLost(e.to_string()))
    }
}

/// Sleeps until `at`; forever when there is none.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
