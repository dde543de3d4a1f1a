//! Bridges one mounted vcan interface to its device stream for the life of one connection.
//!
//! Up (programs -> remote bus): frames read from `vcan-xoq<n>` (a raw socket without
//! `CAN_RAW_RECV_OWN_MSGS`, so what the mounter itself writes is never read back: no echo
//! loops) go out in batches of whatever was waiting, stamped in the server's clock for its
//! maximum-age check. Down: frames from the remote bus are written to the interface with their
//! flags; the server's counters go to the status.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use socketcan::tokio::CanFdSocket;
use socketcan::SocketOptions;
use xoq_link::canframe::{from_socketcan, to_socketcan, unix_us};
use xoq_link::client::DeviceStream;
use xoq_link::framed::{MessageReader, MessageWriter};
use xoq_wire::can::MAX_BATCH;
use xoq_wire::{Access, ErrorCode, Message};

use super::vcan::Vcan;
use crate::mounted::BridgeEnd;
use crate::status::DeviceStatus;

/// Rounds of clock comparison at stream start; the one with the smallest round trip wins.
const SYNC_ROUNDS: usize = 5;

/// A CAN bus mounted on this machine; it outlives connections.
pub struct CanMount {
    pub name: String,
    pub access: Access,
    pub vcan: Vcan,
    pub status: Arc<DeviceStatus>,
}

impl CanMount {
    /// Runs until the stream or the connection ends.
    pub async fn bridge(&self, stream: DeviceStream) -> BridgeEnd {
        let DeviceStream {
            mut reader,
            mut writer,
            ..
        } = stream;
        let sock = match CanFdSocket::open(&self.vcan.name) {
            Ok(s) => s,
            Err(e) => return BridgeEnd::LocalFailed(e),
        };
        // Programs may inject error frames too; they travel like any other frame.
        if let Err(e) = sock.set_error_filter_accept_all() {
            return BridgeEnd::LocalFailed(e);
        }
        let offset = match clock_offset(&mut reader, &mut writer).await {
            Ok(o) => o,
            Err(e) => return e,
        };
        self.status.set_detail("clock_offset_us", json!(offset));
        let up = async {
            loop {
                let first = match sock.read_frame().await {
                    Ok(f) => f,
                    Err(e) => return BridgeEnd::LocalFailed(e),
                };
                let stamp = |f: &socketcan::CanAnyFrame| {
                    let local = unix_us(SystemTime::now()) as i64;
                    from_socketcan(f, (local + offset).max(1) as u64)
                };
                let mut batch = vec![stamp(&first)];
                while batch.len() < MAX_BATCH {
                    match sock.try_read_frame() {
                        Ok(f) => batch.push(stamp(&f)),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return BridgeEnd::LocalFailed(e),
                    }
                }
                let bytes: usize = batch.iter().map(|f| f.data.len()).sum();
                if let Err(e) = writer.send(&Message::CanFrames(batch)).await {
                    return BridgeEnd::LinkLost(e.to_string());
                }
                self.status
                    .tx_bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
            }
        };
        let down = async {
            loop {
                let msg = match reader.next().await {
                    Ok(Some(m)) => m,
                    Ok(None) => {
                        return BridgeEnd::DeviceGone("the server closed the device stream".into())
                    }
                    Err(e) => return BridgeEnd::LinkLost(e.to_string()),
                };
                match msg {
                    Message::CanFrames(frames) => {
                        for f in &frames {
                            if let Err(e) = write_frame(&sock, f).await {
                                self.status.errors.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(device = %self.name, "cannot write {f} to {}: {e}", self.vcan.name);
                            }
                            self.status.rx_bytes.fetch_add(f.data.len() as u64, Ordering::Relaxed);
                        }
                    }
                    Message::CanCounters(c) => self.status.set_detail(
                        "counters",
                        json!({
                            "rx_frames": c.rx_frames, "tx_frames": c.tx_frames, "rx_dropped": c.rx_dropped,
                            "tx_stale": c.tx_stale, "tx_failed": c.tx_failed, "state": format!("{:?}", c.state),
                        }),
                    ),
                    Message::TimeSync { .. } => {}
                    Message::Error { code, text } => {
                        self.status.errors.fetch_add(1, Ordering::Relaxed);
                        if code == ErrorCode::DeviceGone {
                            return BridgeEnd::DeviceGone(text);
                        }
                        tracing::warn!(device = %self.name, %code, "{text}");
                    }
                    other => return BridgeEnd::LinkLost(format!("server sent {} on a CAN stream", other.name())),
                }
            }
        };
        let end = tokio::select! {
            e = up => e,
            e = down => e,
        };
        writer.finish();
        end
    }
}

/// Writes one frame, waiting while the interface's queue is full.
async fn write_frame(sock: &CanFdSocket, f: &xoq_wire::CanFrame) -> io::Result<()> {
    let raw = to_socketcan(f);
    let deadline = Instant::now() + Duration::from_millis(200);
    loop {
        match sock.write_frame(&raw).await {
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            r => return r,
        }
    }
}

/// Server clock minus local clock, in µs, from the exchange with the smallest round trip.
async fn clock_offset(
    reader: &mut MessageReader,
    writer: &mut MessageWriter,
) -> Result<i64, BridgeEnd> {
    let mut best: Option<(u64, i64)> = None;
    for _ in 0..SYNC_ROUNDS {
        let t0 = unix_us(SystemTime::now());
        writer
            .send(&Message::TimeSync {
                client_us: t0,
                server_us: 0,
            })
            .await
            .map_err(|e| BridgeEnd::LinkLost(e.to_string()))?;
        let reply = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match reader.next().await {
                    Ok(Some(Message::TimeSync {
                        client_us,
                        server_us,
                    })) if client_us == t0 => return Ok(server_us),
                    Ok(Some(_)) => continue,
                    Ok(None) => {
                        return Err(BridgeEnd::DeviceGone(
                            "stream closed during time sync".into(),
                        ))
                    }
                    Err(e) => return Err(BridgeEnd::LinkLost(e.to_string())),
                }
            }
        })
        .await
        .map_err(|_| BridgeEnd::LinkLost("no answer to time sync".into()))??;
        let t1 = unix_us(SystemTime::now());
        let rtt = t1.saturating_sub(t0);
        let offset = reply as i64 - (t0 + rtt / 2) as i64;
        if best.is_none_or(|(r, _)| rtt < r) {
            best = Some((rtt, offset));
        }
    }
    Ok(best.map(|(_, o)| o).unwrap_or(0))
}
