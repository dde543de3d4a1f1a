//! Requests on a CAN device stream: frames for the bus and clock comparisons.

use std::time::SystemTime;

use xoq_link::canframe::unix_us;
use xoq_wire::{Access, ErrorCode, Message};

use super::CanAttachment;
use crate::session::{unexpected_text, DeviceRequests, READ_ONLY_TEXT};

/// Forwards the client's frames to the bus until the stream ends.
pub async fn handle_requests(requests: &mut DeviceRequests<'_>, att: CanAttachment) {
    let mut superseded = 0;
    while let Some(m) = requests.next().await {
        // Frames a latest-wins stream dropped before this message: counted, as every frame
        // not written to the bus is.
        let now = requests.superseded();
        if now > superseded {
            att.superseded(now - superseded);
            superseded = now;
        }
        match m {
            // All its frames superseded (counted above).
            Message::CanFrames(frames) if frames.is_empty() => {}
            Message::CanFrames(frames) if att.access == Access::ReadOnly => {
                let text = format!("{READ_ONLY_TEXT} ({} frames)", frames.len());
                att.reply_error(ErrorCode::ReadOnly, text).await;
            }
            Message::CanFrames(mut frames) => {
                // An error frame is the bus's report, not something a client may transmit:
                // vcan would echo it to every client as a bus error. Refused and counted (each
                // refusal is an `Error` the mounter counts); the rest of the batch goes out.
                let before = frames.len();
                frames.retain(|f| !f.is_error());
                let refused = before - frames.len();
                if refused > 0 {
                    tracing::warn!(refused, "a client sent error frames; not put on the bus");
                    let text = format!(
                        "{refused} error frame(s) refused: a client may not put error frames on the bus"
                    );
                    att.reply_error(ErrorCode::NotPermitted, text).await;
                }
                if !frames.is_empty() && att.submit(frames).await.is_err() {
                    return;
                }
            }
            Message::TimeSync { client_us, .. } => {
                let server_us = unix_us(SystemTime::now());
                att.reply(Message::TimeSync {
                    client_us,
                    server_us,
                })
                .await;
            }
            other => {
                att.reply_error(ErrorCode::UnexpectedMessage, unexpected_text(&other))
                    .await
            }
        }
    }
}
