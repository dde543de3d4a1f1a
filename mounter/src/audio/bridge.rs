//! A remote audio device mounted here, and the bridge that carries its packets for one
//! connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::json;
use tokio::sync::mpsc;
use xoq_audio::codec::{PacketDecoder, PacketEncoder, DEFAULT_OPUS_BITRATE};
use xoq_audio::{JitterConfig, Packetizer, PlayoutFeed};
use xoq_link::client::{ClientSession, DeviceStream};
use xoq_link::clock::monotonic_us;
use xoq_link::datagrams::{self, DatagramRouter};
use xoq_link::sync::lock;
use xoq_wire::{Access, AudioDirection, AudioPacket, AudioSettings, ErrorCode, Message};

use crate::mounted::BridgeEnd;
use crate::status::DeviceStatus;

/// The jitter buffer's delay for remote microphones unless `--audio-latency-ms` says otherwise.
pub const DEFAULT_LATENCY_MS: u32 = 20;

/// One mounted microphone or speaker; outlives connections.
pub struct AudioMount {
    pub name: String,
    pub access: Access,
    pub status: Arc<DeviceStatus>,
    pub settings: AudioSettings,
    /// Microphone: feeds the jitter buffer its node plays from.
    jitter: Option<PlayoutFeed>,
    /// Speaker: what its node received.
    #[cfg(feature = "pipewire")]
    queue: Option<Arc<super::sink_queue::SinkQueue>>,
    /// The PipeWire node, removed on unmount.
    #[cfg(feature = "pipewire")]
    node: Mutex<Option<super::node::Node>>,
    sent: AtomicU64,
    send_errors: AtomicU64,
}

impl AudioMount {
    /// Creates the PipeWire node `xoq.<server>.<device>`.
    #[cfg(feature = "pipewire")]
    pub fn create(
        name: &str,
        server: &str,
        settings: AudioSettings,
        access: Access,
        latency: xoq_audio::Delay,
    ) -> Result<AudioMount> {
        use super::node::{Node, NodeIo, NodeSpec};
        use super::sink_queue::SinkQueue;
        if settings.direction == AudioDirection::Playback && access == Access::ReadOnly {
            bail!("speaker {name} needs read-write access (this mount is read-only)");
        }
        let format = settings.format;
        let (io, jitter, queue) = match settings.direction {
            AudioDirection::Capture => {
                let cfg = JitterConfig::with_delay(
                    format.rate,
                    usize::from(format.channels),
                    usize::from(settings.packet_frames),
                    latency,
                );
                let (feed, player) = xoq_audio::playout(cfg);
                (
                    NodeIo::Source(Box::new(player), feed.clone()),
                    Some(feed),
                    None,
                )
            }
            AudioDirection::Playback => {
                let q = Arc::new(SinkQueue::new(&format));
                (NodeIo::Sink(q.clone()), None, Some(q))
            }
        };
        let node_name = format!("xoq.{server}.{name}");
        let spec = NodeSpec {
            name: node_name.clone(),
            description: format!("XoQ {server} {name}"),
            direction: settings.direction,
            format,
            quantum: u32::from(settings.packet_frames),
        };
        let node = Node::spawn(spec, io)?;
        let class = match settings.direction {
            AudioDirection::Capture => "pipewire source",
            AudioDirection::Playback => "pipewire sink",
        };
        let status = DeviceStatus::new(
            name,
            "audio",
            format!("{class} {node_name}"),
            access.to_string(),
        );
        Ok(AudioMount {
            name: name.to_string(),
            access,
            status,
            settings,
            jitter,
            queue,
            node: Mutex::new(Some(node)),
            sent: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
        })
    }

    #[cfg(not(feature = "pipewire"))]
    pub fn create(
        name: &str,
        _server: &str,
        _settings: AudioSettings,
        _access: Access,
        _latency: xoq_audio::Delay,
    ) -> Result<AudioMount> {
        bail!("audio device {name}: this xoq-mount was built without PipeWire support")
    }

    /// Removes the PipeWire node.
    pub fn remove(&self) {
        #[cfg(feature = "pipewire")]
        lock(&self.node).take();
    }

    /// What must be listened to before the device is opened: a microphone's packets, which
    /// `router` delivers.
    pub fn listen(&self, router: &DatagramRouter) -> Option<mpsc::Receiver<AudioPacket>> {
        (self.settings.direction == AudioDirection::Capture).then(|| router.listen(&self.name))
    }

    fn publish_stats(&self) {
        if let Some(feed) = &self.jitter {
            let (s, rate) = (feed.stats(), f64::from(feed.config().rate));
            self.status.set_detail(
                "jitter",
                json!({
                    "received": s.received, "late": s.late, "concealed": s.concealed,
                    "reordered": s.reordered, "duplicated": s.duplicated,
                    "underruns": s.underruns, "overruns": s.overruns, "resyncs": s.resyncs,
                    "realigned": s.realigned, "malformed": s.malformed,
                    "inserted_frames": s.inserted_frames, "skipped_frames": s.skipped_frames,
                    "depth_ms": s.depth * 1000.0 / rate,
                    "depth_min_ms": s.depth_min * 1000.0 / rate,
                    "depth_max_ms": s.depth_max * 1000.0 / rate,
                    "drift_ppm": s.ratio_ppm,
                    "target_ms": s.target_frames as f64 * 1000.0 / rate,
                    "target_changes": s.target_changes,
                    "discarded": feed.discarded(),
                }),
            );
        }
        self.status.set_detail(
            "packets",
            json!({
                "sent": self.sent.load(Ordering::Relaxed),
                "send_errors": self.send_errors.load(Ordering::Relaxed),
                "dropped_samples": self.dropped_samples(),
            }),
        );
    }

    /// Speaker: samples its node received that were dropped unsent (no link).
    fn dropped_samples(&self) -> u64 {
        #[cfg(feature = "pipewire")]
        if let Some(q) = &self.queue {
            return q.dropped();
        }
        0
    }

    /// Carries packets until the stream or the connection ends: a microphone's `packets` to
    /// its node, a speaker's node to the server over `iroh` (relays carry no speakers).
    pub async fn bridge(
        &self,
        stream: DeviceStream,
        packets: Option<mpsc::Receiver<AudioPacket>>,
        iroh: Option<&ClientSession>,
    ) -> BridgeEnd {
        let DeviceStream { mut reader, .. } = stream;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let audio = async {
            match (packets, iroh) {
                (Some(rx), _) => self.receive(rx).await,
                (None, Some(session)) => self.send(session).await,
                (None, None) => BridgeEnd::DeviceGone("speakers are not carried by relays".into()),
            }
        };
        tokio::pin!(audio);
        loop {
            tokio::select! {
                end = &mut audio => return end,
                m = reader.next() => match m {
                    Ok(Some(Message::Error { code, text })) => {
                        self.status.errors.fetch_add(1, Ordering::Relaxed);
                        if code == ErrorCode::DeviceGone {
                            return BridgeEnd::DeviceGone(text);
                        }
                        tracing::error!(device = %self.name, %code, "{text}");
                        self.status.set_detail("last_error", json!(text));
                    }
                    Ok(Some(other)) => {
                        return BridgeEnd::LinkLost(format!("server sent {} on an audio stream", other.name()))
                    }
                    Ok(None) => return BridgeEnd::DeviceGone("the server closed the audio stream".into()),
                    Err(e) => return BridgeEnd::LinkLost(e.to_string()),
                },
                _ = tick.tick() => self.publish_stats(),
            }
        }
    }

    /// Microphone: packets into the jitter buffer that the node drains.
    async fn receive(&self, mut rx: mpsc::Receiver<AudioPacket>) -> BridgeEnd {
        let Some(jitter) = &self.jitter else {
            return BridgeEnd::LinkLost("microphone without a jitter buffer".into());
        };
        let mut decoder = match PacketDecoder::new(&self.settings) {
            Ok(d) => d,
            Err(e) => return BridgeEnd::LocalFailed(std::io::Error::other(e.to_string())),
        };
        let mut samples = Vec::new();
        while let Some(p) = rx.recv().await {
            self.status
                .rx_bytes
                .fetch_add(p.data.len() as u64, Ordering::Relaxed);
            samples.clear();
            // A packet that does not decode to one packet of the catalog format is dropped
            // (the buffer counts it).
            if let Err(e) = decoder.decode(&p.data, &mut samples) {
                tracing::debug!(device = %self.name, seq = p.seq, "{e}");
            }
            jitter.push(p.seq, &samples, monotonic_us());
        }
        BridgeEnd::LinkLost("audio packets stopped".into())
    }

    /// Speaker: what programs play, cut into packets, to the server.
    #[cfg(feature = "pipewire")]
    async fn send(&self, session: &ClientSession) -> BridgeEnd {
        let Some(queue) = &self.queue else {
            return BridgeEnd::LinkLost("speaker without a queue".into());
        };
        let format = self.settings.format;
        let encoder = match PacketEncoder::new(&self.settings, DEFAULT_OPUS_BITRATE) {
            Ok(e) => e,
            Err(e) => return BridgeEnd::LocalFailed(std::io::Error::other(e.to_string())),
        };
        let mut packer = Packetizer::new(&self.name, &self.settings, encoder);
        let mut ready = Vec::new();
        let mut chunk = Vec::new();
        queue.clear(); // what played while there was no link is stale
        loop {
            queue.ready.notified().await;
            chunk.clear();
            queue.drain_into(&mut chunk);
            let frames = chunk.len() / usize::from(format.channels);
            // The first of these frames left the program one chunk ago.
            let captured = xoq_link::clock::unix_now_us()
                .saturating_sub(frames as u64 * 1_000_000 / u64::from(format.rate));
            if let Err(e) = packer.push(&chunk, captured, &mut ready) {
                tracing::warn!(device = %self.name, "cannot encode: {e}; audio dropped");
            }
            for p in ready.drain(..) {
                let len = p.data.len() as u64;
                match datagrams::send(&session.conn, datagrams::encode(&p)) {
                    Ok(()) => {
                        self.sent.fetch_add(1, Ordering::Relaxed);
                        self.status.tx_bytes.fetch_add(len, Ordering::Relaxed);
                    }
                    Err(datagrams::SendError::Closed) => {
                        return BridgeEnd::LinkLost("the link closed".into())
                    }
                    Err(e) => {
                        if self.send_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            tracing::error!(device = %self.name, "{e}");
                        }
                    }
                }
            }
        }
    }

    #[cfg(not(feature = "pipewire"))]
    async fn send(&self, _session: &ClientSession) -> BridgeEnd {
        BridgeEnd::LinkLost("built without PipeWire support".into())
    }
}
