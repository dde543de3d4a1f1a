//! Requests on a camera's device stream (mode switches, keyframe requests), while the frame
//! sender runs beside them.

use iroh::endpoint::Connection;
use xoq_link::MessageReader;
use xoq_wire::{Access, ErrorCode, Message};

use super::sender::send_frames;
use super::CameraAttachment;
use crate::session::{next_request, protocol_close, unexpected_text, Next, READ_ONLY_TEXT};

/// Serves the client until its stream or connection ends.
pub async fn handle_requests(
    conn: &Connection,
    reader: &mut MessageReader,
    mut att: CameraAttachment,
) {
    att.reply(Message::VideoMode(att.dev.mode())).await;
    let Some(frames) = att.frames.take() else {
        return;
    };
    let dev = att.dev.clone();
    let sender = async {
        let stats = send_frames(conn, &dev, frames).await;
        tracing::info!(device = %dev.name, sent = stats.sent, abandoned = stats.abandoned, missed = stats.missed, "frame sender stopped");
    };
    let requests = async {
        loop {
            let m = match next_request(reader).await {
                Next::Request(m) => m,
                Next::End => return,
                Next::Malformed(text) => {
                    att.reply(Message::Error {
                        code: ErrorCode::Malformed,
                        text: format!("malformed message: {text}"),
                    })
                    .await;
                    protocol_close(conn, text);
                    return;
                }
            };
            match m {
                Message::KeyframeRequest => att.dev.request_keyframe(),
                Message::VideoMode(mode) => {
                    let reply = if let Err((code, text)) = att.dev.check_mode(mode) {
                        Message::Error { code, text }
                    } else if mode == att.dev.mode() {
                        Message::VideoMode(mode)
                    } else if att.access == Access::ReadOnly {
                        Message::Error {
                            code: ErrorCode::ReadOnly,
                            text: READ_ONLY_TEXT.into(),
                        }
                    } else {
                        att.dev.switch_mode(mode);
                        Message::VideoMode(mode)
                    };
                    att.reply(reply).await;
                }
                other => {
                    att.reply(Message::Error {
                        code: ErrorCode::UnexpectedMessage,
                        text: unexpected_text(&other),
                    })
                    .await;
                }
            }
        }
    };
    tokio::select! {
        _ = sender => {}
        _ = requests => {}
    }
}
