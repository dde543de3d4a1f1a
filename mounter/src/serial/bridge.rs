//! Bridges one mounted PTY to its device stream for the life of one connection.
//!
//! Up (program -> remote): data packets become `Data`; a `TIOCPKT_IOCTL` event means a program
//! called `tcsetattr`, so the new termios is read and sent as `LineSettings` (speed 0, POSIX
//! "hang up", drops DTR and RTS with `SetModem`, and leaving it raises them again); flush
//! events become `Flush`. Down (remote -> program): `Data` is written to the master, other
//! messages update the status. On a read-write stream the bridge first waits for the port's
//! report of what it took, sends again what it did not, and then reads the PTY only while
//! less than a UART buffer is in flight ([`super::pty_tx`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::json;
use xoq_link::client::DeviceStream;
use xoq_link::framed::MessageWriter;
use xoq_wire::{
    Access, ErrorCode, FlowAction, FlushQueue, LineSettings, Message, ModemLines, Parity,
};

use super::pty::{packet, Pty};
use super::pty_tx::PtyTx;
use super::termios;
use crate::mounted::BridgeEnd;
use crate::naming::Link;
use crate::status::DeviceStatus;

/// A serial device mounted on this machine; it outlives connections.
pub struct SerialMount {
    /// The server's name for the device.
    pub name: String,
    pub access: Access,
    pub pty: Pty,
    pub link: Link,
    pub status: Arc<DeviceStatus>,
    /// Names this mount's writer to the server across reconnections (never 0).
    pub writer_token: u64,
    /// Sent and not yet taken by the port; kept across connections.
    pub tx: PtyTx,
}

/// What we last told the remote, so unchanged settings are not resent.
struct Sent {
    line: Option<LineSettings>,
    hung_up: bool,
    /// Data bits and parity of the remote port. A PTY cannot express them (the kernel forces
    /// CS8 and clears PARENB), so they are kept as the server has them, never overwritten
    /// with the PTY's CS8/none. Only this client (the single writer) could change them.
    framing: (u8, Parity),
}

/// Runs until the stream or the connection ends.
pub async fn bridge(m: &SerialMount, stream: DeviceStream) -> BridgeEnd {
    let DeviceStream {
        info,
        mut reader,
        mut writer,
        ..
    } = stream;
    if let xoq_wire::DeviceSettings::Serial { line, modem } = &info.settings {
        m.status.set_detail("line", json!(line.to_string()));
        m.status.set_detail("modem", modem_json(modem));
    }
    let framing = match &info.settings {
        xoq_wire::DeviceSettings::Serial { line, .. } => (line.data_bits, line.parity),
        _ => (8, Parity::None),
    };
    let mut sent = Sent {
        line: None,
        hung_up: false,
        framing,
    };
    let writes = info.access == Access::ReadWrite;
    let (resumed_tx, resumed) = tokio::sync::oneshot::channel::<Vec<u8>>();
    let mut resumed_tx = Some(resumed_tx);
    let up = async {
        if writes {
            // What the port did not take before the link dropped goes first.
            let again = resumed
                .await
                .map_err(|_| BridgeEnd::LinkLost("the stream ended".into()))?;
            for chunk in again.chunks(xoq_wire::limits::MAX_DATA) {
                m.tx.sent(chunk);
                send(&mut writer, &Message::Data(chunk.to_vec())).await?;
            }
        }
        // A (re)opened stream gets the tty's current settings: the program's choice wins.
        sync_settings(m, &mut writer, &mut sent).await?;
        let mut buf = vec![0u8; 1 + 16 * 1024];
        loop {
            // With a full window only a status is read (a tcflow restarting the port's
            // output must get through while the data waits in the PTY): one byte, which the
            // kernel fills with the pending status alone.
            let mut want = buf.len();
            if writes {
                tokio::select! {
                    _ = m.tx.room() => {}
                    r = m.pty.status_pending() => {
                        r.map_err(BridgeEnd::LocalFailed)?;
                        want = 1;
                    }
                }
            }
            let n = m
                .pty
                .read_packet(&mut buf[..want])
                .await
                .map_err(BridgeEnd::LocalFailed)?;
            if n == 0 {
                continue;
            }
            let status = buf[0];
            if status == packet::DATA {
                if n > 1 {
                    if writes {
                        m.tx.sent(&buf[1..n]);
                    }
                    send(&mut writer, &Message::Data(buf[1..n].to_vec())).await?;
                    m.status
                        .tx_bytes
                        .fetch_add((n - 1) as u64, Ordering::Relaxed);
                }
                continue;
            }
            if status & packet::IOCTL != 0 {
                sync_settings(m, &mut writer, &mut sent).await?;
            }
            if m.access == Access::ReadWrite {
                if status & packet::FLUSHREAD != 0 {
                    send(&mut writer, &Message::Flush(FlushQueue::Input)).await?;
                }
                if status & packet::FLUSHWRITE != 0 {
                    send(&mut writer, &Message::Flush(FlushQueue::Output)).await?;
                }
                // tcflow(TCOOFF / TCOON) on the slave stops the PTY's output, and the port's.
                if status & packet::STOP != 0 {
                    send(&mut writer, &Message::Flow(FlowAction::SuspendOutput)).await?;
                }
                if status & packet::START != 0 {
                    send(&mut writer, &Message::Flow(FlowAction::RestartOutput)).await?;
                }
            }
        }
    };
    let down = async {
        let mut warned_read_only = false;
        loop {
            let msg = match reader.next().await {
                Ok(Some(msg)) => msg,
                Ok(None) => {
                    return BridgeEnd::DeviceGone("the server closed the device stream".into())
                }
                Err(e) => return BridgeEnd::LinkLost(e.to_string()),
            };
            match msg {
                Message::Data(d) => {
                    if let Err(e) = m.pty.write_all(&d).await {
                        return BridgeEnd::LocalFailed(e);
                    }
                    m.status
                        .rx_bytes
                        .fetch_add(d.len() as u64, Ordering::Relaxed);
                }
                Message::LineSettings(l) => m.status.set_detail("line", json!(l.to_string())),
                Message::ModemStatus(s) => m.status.set_detail("modem", modem_json(&s)),
                Message::Drained { .. } => {}
                Message::TxProgress { written, .. } => match resumed_tx.take() {
                    Some(first) => {
                        let _ = first.send(m.tx.resume(written));
                    }
                    None => m.tx.progress(written),
                },
                Message::Error { code, text } => {
                    if let Some(end) =
                        on_error(&m.name, &m.status, code, text, &mut warned_read_only)
                    {
                        return end;
                    }
                }
                other => {
                    return BridgeEnd::LinkLost(format!(
                        "server sent {} on a device stream",
                        other.name()
                    ));
                }
            }
        }
    };
    let end = tokio::select! {
        r = up => match r { Ok(()) => BridgeEnd::LinkLost("stopped".into()), Err(e) => e },
        e = down => e,
    };
    writer.finish();
    end
}

async fn send(w: &mut MessageWriter, msg: &Message) -> Result<(), BridgeEnd> {
    w.send(msg)
        .await
        .map_err(|e| BridgeEnd::LinkLost(e.to_string()))
}

/// Reads the tty's settings and sends what changed since we last told the remote.
async fn sync_settings(
    m: &SerialMount,
    w: &mut MessageWriter,
    sent: &mut Sent,
) -> Result<(), BridgeEnd> {
    let t = m.pty.termios().map_err(BridgeEnd::LocalFailed)?;
    m.pty.ensure_extproc(&t).map_err(BridgeEnd::LocalFailed)?;
    if m.access == Access::ReadOnly {
        return Ok(());
    }
    if termios::is_hangup(&t) {
        if !sent.hung_up {
            sent.hung_up = true;
            tracing::debug!(device = %m.name, "speed 0: dropping DTR and RTS");
            send(
                w,
                &Message::SetModem(ModemLines {
                    dtr: false,
                    rts: false,
                }),
            )
            .await?;
        }
        return Ok(());
    }
    if sent.hung_up {
        sent.hung_up = false;
        send(
            w,
            &Message::SetModem(ModemLines {
                dtr: true,
                rts: true,
            }),
        )
        .await?;
    }
    let line = LineSettings {
        data_bits: sent.framing.0,
        parity: sent.framing.1,
        ..termios::to_line(&t)
    };
    if sent.line != Some(line) {
        tracing::debug!(device = %m.name, %line, "line settings changed");
        sent.line = Some(line);
        send(w, &Message::LineSettings(line)).await?;
    }
    Ok(())
}

pub(crate) fn modem_json(s: &xoq_wire::ModemStatus) -> serde_json::Value {
    json!({"dtr": s.dtr, "rts": s.rts, "cts": s.cts, "dsr": s.dsr, "dcd": s.dcd, "ri": s.ri})
}

/// Counts and logs an error the server sent on a device stream; `Some` if it ends the bridge.
/// Read-only refusals are logged once, then only counted.
pub(crate) fn on_error(
    device: &str,
    status: &DeviceStatus,
    code: ErrorCode,
    text: String,
    warned_read_only: &mut bool,
) -> Option<BridgeEnd> {
    status.errors.fetch_add(1, Ordering::Relaxed);
    match code {
        ErrorCode::DeviceGone => return Some(BridgeEnd::DeviceGone(text)),
        ErrorCode::ReadOnly if *warned_read_only => {}
        ErrorCode::ReadOnly => {
            *warned_read_only = true;
            tracing::warn!(%device, "{text} (further ones are counted, not logged)");
        }
        _ => tracing::warn!(%device, %code, "{text}"),
    }
    None
}
