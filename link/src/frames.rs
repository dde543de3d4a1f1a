//! Camera frames on the client: the server sends each frame alone on a unidirectional stream;
//! this accepts those streams for the whole connection and hands each frame to the device it
//! names. A frame whose stream the server reset (it was late) never appears; one for a device
//! nobody listens to, or that its listener has no room for, is dropped and counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use iroh::endpoint::Connection;
use tokio::sync::mpsc;
use xoq_wire::{Message, Peer, VideoFrame};

use crate::framed::MessageReader;
use crate::sync::lock;

/// Frames queued per device before newer ones are dropped.
const DEPTH: usize = 8;

/// Where each device's frames go.
#[derive(Default)]
pub struct FrameRouter {
    routes: Mutex<HashMap<String, mpsc::Sender<VideoFrame>>>,
    /// Frames dropped: nobody listening, or no room.
    pub dropped: AtomicU64,
    /// Frame streams that ended without a whole frame (abandoned by the server, or broken).
    pub incomplete: AtomicU64,
}

impl FrameRouter {
    /// Frames of `device` from now on (replacing any earlier listener).
    pub fn listen(&self, device: &str) -> mpsc::Receiver<VideoFrame> {
        let (tx, rx) = mpsc::channel(DEPTH);
        lock(&self.routes).insert(device.to_string(), tx);
        rx
    }

    /// Hands a frame to its device's listener (dropped and counted if there is none, or no
    /// room). Frames from another transport (a relay) come in here too.
    pub fn deliver(&self, f: VideoFrame) {
        let tx = lock(&self.routes).get(&f.device).cloned();
        match tx.map(|tx| tx.try_send(f)) {
            Some(Ok(())) => {}
            _ => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Accepts frame streams until the connection ends.
    pub async fn run(self: Arc<Self>, conn: Connection) {
        while let Ok(recv) = conn.accept_uni().await {
            let router = self.clone();
            tokio::spawn(async move {
                let mut reader = MessageReader::new(recv, Peer::Server);
                match reader.next().await {
                    Ok(Some(Message::VideoFrame(f))) => router.deliver(f),
                    Ok(Some(m)) => {
                        tracing::warn!("server sent {} on a frame stream; ignored", m.name());
                    }
                    Ok(None) | Err(_) => {
                        router.incomplete.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    }
}
