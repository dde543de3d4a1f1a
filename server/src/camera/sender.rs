//! Sends one client its camera's frames, each alone on a new unidirectional stream, and
//! measures how the link takes them. A frame that is not written within two frame intervals
//! is abandoned whole (its stream reset) and a keyframe is asked for; so is one the client
//! missed because it fell behind. Frames before the next keyframe are useless to a decoder
//! that lost one, so they are not sent. Each frame's acknowledgement feeds the client's
//! [`RateControl`], whose target caps the camera's encoder; and while more than half a second
//! of frames is unacknowledged (an outage, a link far slower than the stream), new frames are
//! not queued behind them: the stream resumes with a keyframe once the backlog drains. Frame
//! streams go out oldest first and after every other stream (`frame_priority`). With protocol
//! version 5 each frame is followed by a `Probe` datagram, whose acknowledgement shows a lost
//! tail of the frame within a round trip (`send_probe`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use iroh::endpoint::{Connection, SendStream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinSet;

use super::device::{CameraDevice, WireFrame};
use super::keyframes::KeyframeLimiter;
use super::rate::RateControl;

/// Application error code for a reset frame stream.
const ABANDONED: u32 = 1;

/// What one client's sender did, for logs.
#[derive(Debug, Default)]
pub struct SendStats {
    pub sent: u64,
    pub abandoned: u64,
    pub missed: u64,
    /// Frames not sent because too many were unacknowledged.
    pub held_back: u64,
    /// Times the client's link fell behind and the camera paused for it.
    pub backlogs: u64,
    pub rate_decreases: u64,
    pub rate_increases: u64,
    /// Times the target came down to what the congestion window carries.
    pub window_cuts: u64,
    /// The last target of the rate control, bit/s.
    pub rate_bps: u32,
}

/// One frame's wait for its acknowledgement: its number, its size, whether the client
/// received all of it.
type Delivery = (u64, u64, bool);

/// This sender's say in the encoder's bit rate, withdrawn when the sender ends (or is dropped
/// with its client's stream).
struct RateVote<'a> {
    dev: &'a CameraDevice,
    id: u64,
}

impl RateVote<'_> {
    fn set(&self, bps: u32) {
        self.dev.set_rate_limit(self.id, bps);
        tracing::debug!(device = %self.dev.name, bps, "frame rate control: new target");
    }
}

impl Drop for RateVote<'_> {
    fn drop(&mut self) {
        self.dev.leave_votes(self.id);
    }
}

/// Video on the way beyond the path's own delivery time by more than this pauses the camera
/// (the frames already sent drain first).
const BACKLOG: Duration = Duration::from_millis(150);

/// Runs until the connection or the camera ends, counting into `stats` (which stay when the
/// future is dropped because the client's device stream ended first). A `read_write` client's
/// link sets the camera's pace before read-only viewers' (`votes`).
pub async fn send_frames(
    conn: &Connection,
    dev: &Arc<CameraDevice>,
    mut frames: broadcast::Receiver<Arc<WireFrame>>,
    read_write: bool,
    probes: bool,
    stats: &mut SendStats,
) {
    let vote = RateVote {
        dev,
        id: dev.join_votes(read_write),
    };
    let mut rate = RateControl::new(dev.bitrate_ceiling());
    // The encoder starts at the controller's start rate, not at the ceiling: a new link is
    // unknown (with no vote, the first two seconds went out at 16 Mbit/s and queued 1.6 s of
    // video at `wan`).
    vote.set(rate.target());
    let mut deliveries: JoinSet<Delivery> = JoinSet::new();
    // (frame number, written at) of the frames not yet acknowledged, oldest first.
    let mut unacked: std::collections::VecDeque<(u64, Instant)> = Default::default();
    let mut backlogged = false;
    let mut need_keyframe = true;
    let mut keyframes = KeyframeLimiter::default();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    // The path's congestion window and round trip, as last read.
    let mut window = None;
    loop {
        let f = tokio::select! {
            f = frames.recv() => f,
            Some(Ok((n, bytes, whole))) = deliveries.join_next() => {
                let i = unacked.iter().position(|(u, _)| *u == n);
                if let Some((_, sent)) = i.and_then(|i| unacked.remove(i)) {
                    if whole {
                        rate.on_delivered(Instant::now(), sent, bytes);
                    }
                }
                continue;
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let behind = unacked.front().is_some_and(|(_, t)| {
                    now.saturating_duration_since(*t) > rate.path_time() + BACKLOG
                });
                if behind != backlogged {
                    backlogged = behind;
                    if behind {
                        stats.backlogs += 1;
                    }
                    dev.set_backlogged(vote.id, behind);
                }
                rate.set_ceiling(dev.bitrate_ceiling());
                let interval = Duration::from_secs(1) / u32::from(dev.mode().fps.max(1));
                window = xoq_link::net_path::congestion_window(conn);
                if let Some(bps) = window.and_then(|(cwnd, rtt)| rate.on_window(cwnd, rtt, interval)) {
                    vote.set(bps);
                }
                if let Some(bps) = rate.update(Instant::now()) {
                    vote.set(bps);
                }
                stats.rate_decreases = rate.decreases;
                stats.rate_increases = rate.increases;
                stats.window_cuts = rate.window_cuts;
                stats.rate_bps = rate.target();
                continue;
            }
        };
        let f = match f {
            Ok(f) => f,
            Err(RecvError::Lagged(n)) => {
                stats.missed += n;
                need_keyframe = true;
                ask_keyframe(dev, &mut keyframes);
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        let fps = dev.mode().fps.max(1);
        // Half a second of frames on the way, or a viewer behind whose link does not set the
        // camera's pace (`votes`): do not queue more behind them.
        if unacked.len() > usize::from(fps / 2).max(4) || (backlogged && !dev.vote_counts(vote.id))
        {
            stats.held_back += 1;
            need_keyframe = true;
            continue;
        }
        if need_keyframe && !f.keyframe {
            ask_keyframe(dev, &mut keyframes);
            continue;
        }
        need_keyframe = false;
        let late_after = Duration::from_secs(2) / u32::from(fps);
        let mut stream = match conn.open_uni().await {
            Ok(s) => s,
            Err(_) => break,
        };
        // Older frames first, retransmissions included: a frame that lost a packet is not held
        // up behind the frames after it (which the client could not show before it anyway);
        // and every frame after serial, CAN and control data (priority 0).
        let _ = stream.set_priority(frame_priority(stats.sent + stats.abandoned));
        let sent = Instant::now();
        match tokio::time::timeout(late_after, stream.write_all(&f.bytes)).await {
            Ok(Ok(())) => {
                let _ = stream.finish();
                if probes {
                    send_probe(conn, f.bytes.len(), window, late_after / 2);
                }
                let n = stats.sent + stats.abandoned;
                stats.sent += 1;
                unacked.push_back((n, sent));
                deliveries.spawn(delivered(stream, n, f.bytes.len() as u64));
            }
            Ok(Err(_)) => break,
            Err(_late) => {
                let _ = stream.reset(ABANDONED.into());
                stats.abandoned += 1;
                tracing::debug!(device = %dev.name, seq = f.seq, "frame late: abandoned");
                need_keyframe = true;
                ask_keyframe(dev, &mut keyframes);
                if let Some(bps) = rate.on_abandoned(Instant::now()) {
                    vote.set(bps);
                }
            }
        }
    }
    stats.rate_decreases = rate.decreases;
    stats.rate_increases = rate.increases;
    stats.window_cuts = rate.window_cuts;
    stats.rate_bps = rate.target();
}

/// Asks the encoder for a keyframe, at most once per `keyframes::MIN_INTERVAL` for this client
/// (a keyframe costs every viewer's bandwidth; a client whose link keeps falling behind must
/// not force one each time). A request inside the interval is left to the camera's own
/// keyframe, which comes every second.
fn ask_keyframe(dev: &CameraDevice, keyframes: &mut KeyframeLimiter) {
    if keyframes.request(Instant::now()) {
        dev.request_keyframe();
    }
}

/// The send priority of this sender's `n`th frame: below every other stream's 0, and each
/// frame below the one before it (wrapping after 2^30 frames, a year at 30 fps).
fn frame_priority(n: u64) -> i32 {
    -1 - (n % (1 << 30)) as i32
}

/// Sends a `Probe` datagram when a frame of `bytes` should have left: after the time it takes
/// at what the congestion window carries, plus [`PROBE_AFTER`], at most `most`. A lost tail of
/// the frame then shows in the probe's acknowledgement a round trip later (`Message::Probe`).
fn send_probe(conn: &Connection, bytes: usize, window: Option<(u64, Duration)>, most: Duration) {
    let leaving = window.map_or(Duration::ZERO, |(cwnd, rtt)| {
        let secs = rtt.as_secs_f64() * bytes as f64 / cwnd.max(1) as f64;
        Duration::try_from_secs_f64(secs).unwrap_or(most)
    });
    let after = (leaving + PROBE_AFTER).min(most);
    let conn = conn.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        // A closed link or a full datagram queue loses only this probe.
        let _ = xoq_link::datagrams::send(&conn, xoq_wire::Message::Probe.to_bytes().into());
    });
}

/// Time after a frame's expected departure at which its probe leaves (so that QUIC does not
/// put the probe into a packet before the frame's last one).
const PROBE_AFTER: Duration = Duration::from_millis(1);

/// Waits until the client acknowledged all of a finished frame stream (or stopped it).
async fn delivered(stream: SendStream, n: u64, bytes: u64) -> Delivery {
    let whole = matches!(stream.stopped().await, Ok(None));
    (n, bytes, whole)
}
