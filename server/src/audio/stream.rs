//! A client's audio device stream. The stream itself carries no audio (packets travel as
//! datagrams); it lives as long as the client holds the device. A microphone's packets are
//! sent to the client as they come; a speaker's packets from the client are played.

use tokio::sync::broadcast::error::RecvError;
use xoq_link::datagrams;
use xoq_wire::{ErrorCode, Message};

use super::AudioAttachment;
use crate::session::{unexpected_text, DeviceRequests};

/// Serves the client until its stream or connection ends.
pub async fn handle_requests(requests: &mut DeviceRequests<'_>, mut att: AudioAttachment) {
    let conn = requests.conn;
    let dev = att.dev.clone();
    let datagram_router = requests.datagrams.clone();
    let audio = async {
        if let Some(mut packets) = att.packets.take() {
            let mut missed = 0u64;
            loop {
                match packets.recv().await {
                    Ok(p) => {
                        if let Err(e) = datagrams::send(conn, p.datagram.clone()) {
                            tracing::warn!(device = %dev.name, "microphone packets stop: {e}");
                            return;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        missed += n;
                        tracing::debug!(device = %dev.name, missed, "client too slow for the microphone");
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        } else {
            let mut rx = datagram_router.listen(&dev.name);
            let mut decoder = match dev.decoder() {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(device = %dev.name, "{e}");
                    return;
                }
            };
            let mut scratch = Vec::new();
            while let Some(p) = rx.recv().await {
                dev.play(&p, &mut decoder, &mut scratch);
            }
        }
    };
    let requests = async {
        while let Some(m) = requests.next().await {
            let text = unexpected_text(&m);
            let reply = Message::Error {
                code: ErrorCode::UnexpectedMessage,
                text,
            };
            if requests.reply(reply).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = audio => {}
        _ = requests => {}
    }
    datagram_router.forget(&att.dev.name);
}
