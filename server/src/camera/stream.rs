//! Requests on a camera's device stream (mode switches, keyframe requests), while the frame
//! sender runs beside them.

use xoq_wire::{Access, ErrorCode, Message};

use std::time::Instant;

use super::keyframes::KeyframeLimiter;
use super::sender::{send_frames, SendStats};
use super::CameraAttachment;
use crate::session::{unexpected_text, DeviceRequests, READ_ONLY_TEXT};

/// Serves the client until its stream or connection ends.
pub async fn handle_requests(requests: &mut DeviceRequests<'_>, mut att: CameraAttachment) {
    let conn = requests.conn;
    att.reply(Message::VideoMode(att.dev.mode())).await;
    let Some(frames) = att.frames.take() else {
        return;
    };
    let dev = att.dev.clone();
    let mut stats = SendStats::default();
    let read_write = att.access == Access::ReadWrite;
    let probes = requests.version >= xoq_wire::PROBES_VERSION;
    let sender = send_frames(conn, &dev, frames, read_write, probes, &mut stats);
    let requests = async {
        let mut keyframes = KeyframeLimiter::default();
        loop {
            let due = keyframes.due();
            let m = tokio::select! {
                m = requests.next() => m,
                _ = sleep_until(due) => {
                    keyframes.fire(Instant::now());
                    att.dev.request_keyframe();
                    continue;
                }
            };
            let Some(m) = m else {
                if keyframes.merged > 0 {
                    tracing::info!(device = %att.dev.name, merged = keyframes.merged, "keyframe requests merged by the rate limit");
                }
                return;
            };
            match m {
                Message::KeyframeRequest => {
                    if keyframes.request(Instant::now()) {
                        att.dev.request_keyframe();
                    }
                }
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
    {
        tokio::pin!(sender);
        tokio::select! {
            _ = &mut sender => {}
            _ = requests => {}
        }
    }
    tracing::info!(
        device = %dev.name,
        sent = stats.sent,
        abandoned = stats.abandoned,
        missed = stats.missed,
        held_back = stats.held_back,
        backlogs = stats.backlogs,
        rate_bps = stats.rate_bps,
        rate_decreases = stats.rate_decreases,
        rate_increases = stats.rate_increases,
        window_cuts = stats.window_cuts,
        "frame sender stopped"
    );
}

/// Sleeps until `due`; forever when there is none.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
