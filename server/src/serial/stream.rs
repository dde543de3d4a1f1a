//! Requests on a serial device stream: data and control operations, in order, to the port.

use iroh::endpoint::Connection;
use xoq_link::MessageReader;
use xoq_wire::{Access, ErrorCode, Message};

use super::device::Op;
use super::Attachment;
use crate::session::{next_request, protocol_close, unexpected_text, Next, READ_ONLY_TEXT};

/// Forwards the client's requests to the port until the stream ends.
pub async fn handle_requests(conn: &Connection, reader: &mut MessageReader, att: Attachment) {
    loop {
        let m = match next_request(reader).await {
            Next::Request(m) => m,
            Next::End => return,
            Next::Malformed(text) => {
                att.reply_error(ErrorCode::Malformed, format!("malformed message: {text}"))
                    .await;
                protocol_close(conn, text);
                return;
            }
        };
        let op = match m {
            Message::Data(d) => Op::Data(d),
            Message::LineSettings(l) => Op::Line(l),
            Message::SetModem(l) => Op::Modem(l),
            Message::Break { duration_ms } => Op::Break(duration_ms),
            Message::SetBreak(on) => Op::SetBreak(on),
            Message::Flush(q) => Op::Flush(q),
            Message::Drain { seq } => Op::Drain(seq),
            other => {
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
