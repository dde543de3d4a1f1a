//! Requests on a serial device stream: data and control operations, in order, to the port.

use xoq_wire::{Access, ErrorCode, Message};

use super::device::Op;
use super::Attachment;
use crate::session::{unexpected_text, DeviceRequests, READ_ONLY_TEXT};

/// Forwards the client's requests to the port until the stream ends.
pub async fn handle_requests(requests: &mut DeviceRequests<'_>, att: Attachment) {
    // The writer first learns how much of what it sent under its name the port took.
    if att.access == Access::ReadWrite && att.submit(Op::Progress).await.is_err() {
        return;
    }
    while let Some(m) = requests.next().await {
        let op = match port_op(m) {
            Ok(op) => op,
            Err(Message::Flow(action)) if att.access == Access::ReadWrite => {
                att.flow(action).await;
                continue;
            }
            Err(Message::Flow(_)) => {
                att.reply_error(ErrorCode::ReadOnly, READ_ONLY_TEXT.into())
                    .await;
                continue;
            }
            Err(other) => {
                att.reply_error(ErrorCode::UnexpectedMessage, unexpected_text(&other))
                    .await;
                continue;
            }
        };
        if att.access == Access::ReadOnly {
            att.reply_error(ErrorCode::ReadOnly, READ_ONLY_TEXT.into())
                .await;
            continue;
        }
        if att.submit(op).await.is_err() {
            return;
        }
    }
}

/// The port operation a client's message asks for, in order with its data; anything else
/// (a `Flow`, which acts at once, or a message no client sends on this stream) back.
pub fn port_op(m: Message) -> Result<Op, Message> {
    Ok(match m {
        Message::Data(d) => Op::Data(d),
        Message::LineSettings(l) => Op::Line(l),
        Message::SetModem(l) => Op::Modem(l),
        Message::Break { duration_ms } => Op::Break(duration_ms),
        Message::SetBreak(on) => Op::SetBreak(on),
        Message::Flush(q) => Op::Flush(q),
        Message::Drain { seq } => Op::Drain(seq),
        other => return Err(other),
    })
}
