//! Sends one client its camera's frames, each alone on a new unidirectional stream. A frame
//! that is not written within two frame intervals is abandoned whole (its stream reset) and a
//! keyframe is asked for; so is one the client missed because it fell behind. Frames before
//! the next keyframe are useless to a decoder that lost one, so they are not sent.

use std::sync::Arc;
use std::time::Duration;

use iroh::endpoint::Connection;
use tokio::sync::broadcast::{self, error::RecvError};

use super::device::{CameraDevice, WireFrame};

/// Application error code for a reset frame stream.
const ABANDONED: u32 = 1;

/// What one client's sender did, for logs.
#[derive(Debug, Default)]
pub struct SendStats {
    pub sent: u64,
    pub abandoned: u64,
    pub missed: u64,
}

/// Runs until the connection or the camera ends.
pub async fn send_frames(
    conn: &Connection,
    dev: &Arc<CameraDevice>,
    mut frames: broadcast::Receiver<Arc<WireFrame>>,
) -> SendStats {
    let mut stats = SendStats::default();
    let mut need_keyframe = true;
    loop {
        let f = match frames.recv().await {
            Ok(f) => f,
            Err(RecvError::Lagged(n)) => {
                stats.missed += n;
                need_keyframe = true;
                dev.request_keyframe();
                continue;
            }
            Err(RecvError::Closed) => return stats,
        };
        if need_keyframe && !f.keyframe {
            continue;
        }
        need_keyframe = false;
        let late_after = Duration::from_secs(2) / u32::from(dev.mode().fps.max(1));
        let mut stream = match conn.open_uni().await {
            Ok(s) => s,
            Err(_) => return stats,
        };
        match tokio::time::timeout(late_after, stream.write_all(&f.bytes)).await {
            Ok(Ok(())) => {
                let _ = stream.finish();
                stats.sent += 1;
            }
            Ok(Err(_)) => return stats,
            Err(_late) => {
                let _ = stream.reset(ABANDONED.into());
                stats.abandoned += 1;
                tracing::debug!(device = %dev.name, seq = f.seq, "frame late: abandoned");
                need_keyframe = true;
                dev.request_keyframe();
            }
        }
    }
}
