//! Requests on a CAN device stream: frames for the bus and clock comparisons.

use std::time::SystemTime;

use xoq_link::canframe::unix_us;
use xoq_wire::{Access, ErrorCode, Message};

use super::CanAttachment;
use crate::session::{unexpected_text, DeviceRequests, READ_ONLY_TEXT};

/// Forwards the client's frames to the bus until the stream ends.
pub async fn handle_requests(requests: &mut DeviceRequests<'_>, att: CanAttachment) {
    while let Some(m) = requests.next().await {
        match m {
            Message::CanFrames(frames) if att.access == Access::ReadOnly => {
                let text = format!("{READ_ONLY_TEXT} ({} frames)", frames.len());
                att.reply_error(ErrorCode::ReadOnly, text).await;
            }
            Message::CanFrames(frames) => {
                if att.submit(frames).await.is_err() {
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
