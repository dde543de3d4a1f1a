//! Bridges one mounted vcan interface to its device stream for the life of one connection.
//!
//! Up (programs -> remote bus): frames read from `vcan-xoq<n>` (a raw socket without
//! `CAN_RAW_RECV_OWN_MSGS`, so what the mounter itself writes is never read back: no echo
//! loops) go out in batches of whatever was waiting, stamped with their kernel receive time in
//! the server's clock for its maximum-age check; frames already older than the bus's maximum
//! age when read (held in the socket's buffer while the link stalled) are dropped here and
//! counted, so an outage is never followed by a replay; frames the kernel dropped on our
//! socket are counted and reported. Down: frames from the remote bus are written to the interface with their
//! flags; the server's counters go to the status.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use xoq_link::canframe::unix_us;
use xoq_link::cansock::CanSock;
use xoq_link::client::DeviceStream;
use xoq_link::framed::{MessageReader, MessageWriter};
use xoq_wire::can::MAX_BATCH;
use xoq_wire::{Access, CanFrame, ErrorCode, Message};

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
    /// The bus's maximum age of a command, from the catalog (0: none).
    pub max_age_us: u32,
    /// How frames cross the link (`--can-delivery`).
    pub delivery: xoq_wire::Delivery,
    /// Frames read too old to be sent, across connections.
    pub local_stale: AtomicU64,
    /// Frames the kernel dropped on our vcan socket (we read too slowly), across connections.
    pub local_dropped: AtomicU64,
    /// Frames in flight, unconfirmed by the server, when a link dropped (an upper bound).
    pub link_unconfirmed: AtomicU64,
}

impl CanMount {
    /// Runs until the stream or the connection ends.
    pub async fn bridge(&self, stream: DeviceStream) -> BridgeEnd {
        let DeviceStream {
            mut reader,
            mut writer,
            delivery,
            ..
        } = stream;
        self.status.set_detail("delivery", json!(delivery.as_str()));
        let sock = match CanSock::open(&self.vcan.name, xoq_link::cansock::ALL_ERRORS) {
            Ok(s) => s,
            Err(e) => return BridgeEnd::LocalFailed(e),
        };
        let offset = match clock_offset(&mut reader, &mut writer).await {
            Ok(o) => o,
            Err(e) => return e,
        };
        self.status.set_detail("clock_offset_us", json!(offset));
        // The kernel's receive time on vcan, moved into the server's clock: queueing anywhere
        // between the program and the server counts towards a frame's age.
        let stamp = |mut f: CanFrame| {
            f.timestamp_us = (f.timestamp_us as i64 + offset).max(1) as u64;
            f
        };
        let max_age = u64::from(self.max_age_us);
        let fresh = |f: &CanFrame| {
            let now = (unix_us(SystemTime::now()) as i64 + offset).max(1) as u64;
            !is_stale(f.timestamp_us, now, max_age)
        };
        // Frames handed to this stream, and frames the server has accounted for.
        let (sent, confirmed) = (AtomicU64::new(0), AtomicU64::new(0));
        let up = async {
            loop {
                let first = match sock.recv().await {
                    Ok(r) => r,
                    Err(e) => return BridgeEnd::LocalFailed(e),
                };
                let mut dropped = u64::from(first.dropped);
                let mut batch = vec![stamp(first.frame)];
                while batch.len() < MAX_BATCH {
                    match sock.try_recv() {
                        Ok(Some(r)) => {
                            dropped += u64::from(r.dropped);
                            batch.push(stamp(r.frame));
                        }
                        Ok(None) => break,
                        Err(e) => return BridgeEnd::LocalFailed(e),
                    }
                }
                let read = batch.len();
                batch.retain(|f| fresh(f));
                let stale = (read - batch.len()) as u64;
                if stale > 0 {
                    let total = self.local_stale.fetch_add(stale, Ordering::Relaxed) + stale;
                    self.status.set_detail("local_stale", json!(total));
                    if total == stale {
                        tracing::warn!(device = %self.name, frames = stale, "frames older than the bus's maximum age of {} ms were dropped before sending (further drops are counted)", max_age / 1000);
                    }
                }
                if batch.is_empty() {
                    continue;
                }
                if dropped > 0 {
                    let total = self.local_dropped.fetch_add(dropped, Ordering::Relaxed) + dropped;
                    self.status.set_detail("local_kernel_dropped", json!(total));
                    tracing::warn!(device = %self.name, frames = dropped, total, "the kernel dropped frames on {} before xoq-mount read them", self.vcan.name);
                }
                let bytes: usize = batch.iter().map(|f| f.data.len()).sum();
                sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
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
                            if let Err(e) = sock.send(f).await {
                                self.status.errors.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(device = %self.name, "cannot write {f} to {}: {e}", self.vcan.name);
                            }
                            self.status
                                .rx_bytes
                                .fetch_add(f.data.len() as u64, Ordering::Relaxed);
                        }
                    }
                    Message::CanCounters(c) => {
                        let accounted = c.tx_frames + c.tx_stale + c.tx_failed + c.tx_superseded;
                        confirmed.store(accounted, Ordering::Relaxed);
                        self.status.set_detail(
                            "counters",
                            json!({
                                "rx_frames": c.rx_frames, "tx_frames": c.tx_frames, "rx_dropped": c.rx_dropped,
                                "tx_stale": c.tx_stale, "tx_failed": c.tx_failed, "tx_superseded": c.tx_superseded,
                                "kernel_dropped": c.kernel_dropped, "state": format!("{:?}", c.state),
                            }),
                        )
                    }
                    Message::TimeSync { .. } => {}
                    Message::Error { code, text } => {
                        self.status.errors.fetch_add(1, Ordering::Relaxed);
                        if code == ErrorCode::DeviceGone {
                            return BridgeEnd::DeviceGone(text);
                        }
                        tracing::warn!(device = %self.name, %code, "{text}");
                    }
                    other => {
                        return BridgeEnd::LinkLost(format!(
                            "server sent {} on a CAN stream",
                            other.name()
                        ))
                    }
                }
            }
        };
        let end = tokio::select! {
            e = up => e,
            e = down => e,
        };
        writer.finish();
        if let BridgeEnd::LinkLost(_) = &end {
            // Frames handed to a connection that died, minus those the server had accounted
            // for (its counters lag by up to 100 ms): an upper bound of what may be lost.
            let unconfirmed = sent
                .load(Ordering::Relaxed)
                .saturating_sub(confirmed.load(Ordering::Relaxed));
            if unconfirmed > 0 {
                let total = self
                    .link_unconfirmed
                    .fetch_add(unconfirmed, Ordering::Relaxed)
                    + unconfirmed;
                self.status
                    .set_detail("unconfirmed_at_link_loss", json!(total));
                tracing::warn!(device = %self.name, frames = unconfirmed, "the link dropped with frames in flight; they may not have reached the bus");
            }
        }
        end
    }
}

/// Whether a frame stamped `timestamp_us` is older than `max_age_us` at `now_us` (both in the
/// server's clock; a `max_age_us` or timestamp of 0 means no limit).
fn is_stale(timestamp_us: u64, now_us: u64, max_age_us: u64) -> bool {
    max_age_us > 0 && timestamp_us > 0 && now_us.saturating_sub(timestamp_us) > max_age_us
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

#[cfg(test)]
mod tests {
    use super::is_stale;

    #[test]
    fn a_frame_is_stale_only_past_the_maximum_age() {
        assert!(!is_stale(1_000_000, 1_200_000, 200_000));
        assert!(is_stale(1_000_000, 1_200_001, 200_000));
        // No limit, or no timestamp: never stale.
        assert!(!is_stale(1_000_000, 9_000_000, 0));
        assert!(!is_stale(0, 9_000_000, 200_000));
        // A frame stamped after "now" (clock offset error) is fresh.
        assert!(!is_stale(2_000_000, 1_000_000, 200_000));
    }
}
