//! One served camera: a capture thread (capture calls block) that encodes raw pictures to
//! H.264 (or passes JPEG through) and fans every frame out, already in wire form, to the
//! clients watching. Nobody watching: nothing is captured. A client joining, or losing a
//! frame, asks for a keyframe; a read-write client may switch the mode. Keyframes come once a
//! second only while a relay publishes the camera (each starts a group, where a late joiner
//! begins); otherwise only when asked, and once a minute. The encoder runs at the lowest bit
//! rate the clients' congestion feedback asks for (`rate`, `votes`), within the configured
//! ceiling.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use xoq_video::encoder::{AnyEncoder, EncoderChoice};
use xoq_video::h264::EncoderSettings;
use xoq_wire::catalog::camera_caps;
use xoq_wire::{
    Access, CameraSettings, DeviceInfo, DeviceKind, DeviceSettings, ErrorCode, Message, VideoCodec,
    VideoFrame, VideoMode,
};

use super::source::{CameraSource, Captured};
use super::votes::Votes;
use crate::session::Outbox;

/// Frames buffered per client before it starts losing them.
const FANOUT_DEPTH: usize = 4;
/// Seconds between the encoder's own keyframes, a refresh: over a direct link frames arrive
/// whole and in order, and a client asks for a keyframe when it needs one (it joined, gave up
/// a gap, or its decoder failed). A keyframe is 5 to 10 times a predicted frame; sent every
/// second, they and the frames queued behind them were the slowest frames of a stream at
/// `wan` (docs/BENCHMARKS.md).
const GOP_SECONDS: u32 = 60;
/// Time between keyframes while a relay publishes the camera.
const RELAY_KEYFRAME_EVERY: Duration = Duration::from_secs(1);

/// A publisher's need for periodic keyframes (`CameraDevice::periodic_keyframes`), withdrawn
/// when dropped.
pub struct PeriodicKeyframes(Arc<CameraDevice>);

impl Drop for PeriodicKeyframes {
    fn drop(&mut self) {
        self.0.periodic_keyframes.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One frame ready to send: its wire encoding (the same bytes for every client), and what a
/// transport that does not send XoQ messages (a relay's media track) needs of it.
pub struct WireFrame {
    pub seq: u32,
    pub keyframe: bool,
    pub capture_us: u64,
    pub codec: VideoCodec,
    pub width: u16,
    pub height: u16,
    /// The length of the encoded picture, which ends `bytes`.
    data_len: usize,
    pub bytes: Vec<u8>,
}

impl WireFrame {
    /// Encodes `f` once for every client.
    pub fn new(f: VideoFrame) -> WireFrame {
        // The picture is the message's last field (`VideoFrame::encode`), at most MAX_FRAME.
        let data_len = f.data.len().min(xoq_wire::limits::MAX_FRAME);
        let (seq, keyframe, capture_us) = (f.seq, f.keyframe, f.capture_us);
        let (codec, width, height) = (f.codec, f.width, f.height);
        WireFrame {
            seq,
            keyframe,
            capture_us,
            codec,
            width,
            height,
            data_len,
            bytes: Message::VideoFrame(f).to_bytes(),
        }
    }

    /// The encoded picture (an H.264 access unit, a JPEG image), within `bytes`.
    pub fn data(&self) -> &[u8] {
        &self.bytes[self.bytes.len() - self.data_len..]
    }
}

struct State {
    mode: VideoMode,
    /// Why the camera is not delivering, if it is not.
    trouble: Option<String>,
    /// What each watching client's link asks of the encoder: a bit rate, and a pause while
    /// it has too much video on the way (pictures are not encoded until it drains, which keeps
    /// the encoder's chain of references).
    votes: Votes,
}

/// How a camera is served.
#[derive(Debug, Clone, Copy)]
pub struct CameraOptions {
    /// The mode to start in, if the camera offers it.
    pub mode: Option<VideoMode>,
    /// Which H.264 encoder raw pictures go through.
    pub encoder: EncoderChoice,
    /// The most bit rate the encoder may use; `None`: 0.1 bit per pixel per frame.
    pub bitrate_bps: Option<u32>,
}

/// One served camera.
pub struct CameraDevice {
    pub name: String,
    describe: String,
    codec: VideoCodec,
    modes: Vec<VideoMode>,
    state: Mutex<State>,
    frames: broadcast::Sender<Arc<WireFrame>>,
    keyframe_wanted: AtomicBool,
    /// Publishers that need a keyframe every [`RELAY_KEYFRAME_EVERY`] (relays).
    periodic_keyframes: AtomicUsize,
    pub frames_sent: AtomicU64,
    /// Which H.264 encoder raw pictures go through.
    encoder: EncoderChoice,
    bitrate_bps: Option<u32>,
}

impl CameraDevice {
    /// Starts the capture thread for `source`, in `opts.mode` if the camera offers it.
    pub fn spawn<S: CameraSource>(
        name: String,
        source: S,
        opts: CameraOptions,
    ) -> std::io::Result<Arc<Self>> {
        let mode = opts.mode;
        let modes = source.modes();
        let Some(first) = modes.first().copied() else {
            return Err(std::io::Error::other(format!(
                "{} offers no video mode we can use",
                source.describe()
            )));
        };
        let mode = match mode {
            Some(m) if modes.contains(&m) => m,
            Some(m) => {
                return Err(std::io::Error::other(format!(
                    "{} cannot give {m}; it offers {}",
                    source.describe(),
                    list(&modes)
                )))
            }
            None => first,
        };
        let (frames, _) = broadcast::channel(FANOUT_DEPTH);
        let dev = Arc::new(CameraDevice {
            name,
            describe: source.describe(),
            codec: source.codec(),
            modes,
            state: Mutex::new(State {
                mode,
                trouble: None,
                votes: Votes::default(),
            }),
            frames,
            keyframe_wanted: AtomicBool::new(true),
            periodic_keyframes: AtomicUsize::new(0),
            frames_sent: AtomicU64::new(0),
            encoder: opts.encoder,
            bitrate_bps: opts.bitrate_bps,
        });
        let d = dev.clone();
        std::thread::Builder::new()
            .name(format!("camera {}", dev.name))
            .spawn(move || capture_loop(&d, source))?;
        Ok(dev)
    }

    pub fn mode(&self) -> VideoMode {
        xoq_link::sync::lock(&self.state).mode
    }

    pub fn info(&self, access: Access) -> DeviceInfo {
        let mut caps = camera_caps::MODE_SWITCH;
        if self.codec == VideoCodec::H264 {
            caps |= camera_caps::KEYFRAME_ON_REQUEST;
        }
        DeviceInfo {
            name: self.name.clone(),
            kind: DeviceKind::Camera,
            access,
            capabilities: caps,
            settings: DeviceSettings::Camera(CameraSettings {
                codec: self.codec,
                mode: self.mode(),
                modes: self.modes.clone(),
            }),
        }
    }

    /// Attaches a client: it receives every frame from the next keyframe on.
    pub fn attach(self: &Arc<Self>, access: Access, outbox: Outbox) -> CameraAttachment {
        let frames = self.frames.subscribe();
        self.request_keyframe();
        CameraAttachment {
            dev: self.clone(),
            access,
            outbox,
            frames: Some(frames),
        }
    }

    /// The most bit rate the encoder may use in the current mode.
    pub fn bitrate_ceiling(&self) -> u32 {
        self.settings_for(self.mode()).bitrate()
    }

    fn settings_for(&self, mode: VideoMode) -> EncoderSettings {
        EncoderSettings {
            width: usize::from(mode.width),
            height: usize::from(mode.height),
            fps: mode.fps,
            bitrate_bps: self.bitrate_bps,
            gop: u32::from(mode.fps) * GOP_SECONDS,
        }
    }

    /// A client's frame sender starts: its key for the other votes.
    pub fn join_votes(&self, read_write: bool) -> u64 {
        xoq_link::sync::lock(&self.state).votes.join(read_write)
    }

    /// The sender stops: its link no longer counts.
    pub fn leave_votes(&self, id: u64) {
        xoq_link::sync::lock(&self.state).votes.leave(id);
    }

    /// The bit rate sender `id`'s link allows.
    pub fn set_rate_limit(&self, id: u64, bps: u32) {
        xoq_link::sync::lock(&self.state).votes.set_rate(id, bps);
    }

    /// Whether sender `id`'s client has too much video on the way.
    pub fn set_backlogged(&self, id: u64, backlogged: bool) {
        xoq_link::sync::lock(&self.state)
            .votes
            .set_backlogged(id, backlogged);
    }

    /// Whether sender `id`'s link sets the camera's pace now (`votes`).
    pub fn vote_counts(&self, id: u64) -> bool {
        xoq_link::sync::lock(&self.state).votes.counts(id)
    }

    fn paused(&self) -> bool {
        xoq_link::sync::lock(&self.state).votes.paused()
    }

    /// The lowest bit rate a counting client's link allows, if any asked.
    fn rate_limit(&self) -> Option<u32> {
        xoq_link::sync::lock(&self.state).votes.rate_limit()
    }

    pub fn request_keyframe(&self) {
        self.keyframe_wanted.store(true, Ordering::Relaxed);
    }

    /// Keyframes every [`RELAY_KEYFRAME_EVERY`] for as long as the guard lives (a relay
    /// publisher: each keyframe starts a group, where a late joiner begins).
    pub fn periodic_keyframes(self: &Arc<Self>) -> PeriodicKeyframes {
        self.periodic_keyframes.fetch_add(1, Ordering::Relaxed);
        PeriodicKeyframes(self.clone())
    }

    /// Whether the camera offers `mode`, with the error a client gets if not.
    pub fn check_mode(&self, mode: VideoMode) -> Result<(), (ErrorCode, String)> {
        if !self.modes.contains(&mode) {
            return Err((
                ErrorCode::InvalidSetting,
                format!(
                    "camera `{}` ({}) cannot give {mode}; it offers {}",
                    self.name,
                    self.describe,
                    list(&self.modes)
                ),
            ));
        }
        Ok(())
    }

    /// Switches to `mode` (checked with [`Self::check_mode`]); every client sees the new size
    /// from the next frame (a keyframe) on.
    pub fn switch_mode(&self, mode: VideoMode) {
        let mut st = xoq_link::sync::lock(&self.state);
        if st.mode != mode {
            tracing::info!(device = %self.name, %mode, "switching camera mode");
            st.mode = mode;
        }
    }
}

fn list(modes: &[VideoMode]) -> String {
    let v: Vec<String> = modes.iter().map(|m| m.to_string()).collect();
    v.join(", ")
}

/// A client's hold on a camera.
pub struct CameraAttachment {
    pub dev: Arc<CameraDevice>,
    pub access: Access,
    pub outbox: Outbox,
    /// Taken by the frame sender.
    pub frames: Option<broadcast::Receiver<Arc<WireFrame>>>,
}

impl CameraAttachment {
    pub async fn reply(&self, m: Message) {
        let _ = self.outbox.send(m).await;
    }
}

/// Captures, encodes and fans out until the process ends. Errors are logged, the source is
/// restarted after a second.
fn capture_loop<S: CameraSource>(dev: &CameraDevice, mut source: S) {
    let mut running: Option<VideoMode> = None;
    let mut encoder: Option<AnyEncoder> = None;
    let mut rate = RateFollower::default();
    let mut seq: u32 = 0;
    let mut last_keyframe: Option<Instant> = None;
    loop {
        if dev.frames.receiver_count() == 0 {
            if running.take().is_some() {
                tracing::info!(device = %dev.name, "nobody watching: capture stopped");
                source.stop();
            }
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let mode = dev.mode();
        if running != Some(mode) {
            if let Err(e) = source.start(mode) {
                tracing::error!(device = %dev.name, "cannot start {} in {mode}: {e}; retrying in 1 s", dev.describe);
                xoq_link::sync::lock(&dev.state).trouble = Some(e.to_string());
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            tracing::info!(device = %dev.name, %mode, "capturing from {}", dev.describe);
            encoder = None;
            rate = RateFollower::default();
            running = Some(mode);
            dev.request_keyframe();
        }
        let (captured, capture_us) = match source.next() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(device = %dev.name, "capture from {} failed: {e}; restarting in 1 s", dev.describe);
                running = None;
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if dev.paused() {
            // A client's link is behind: this picture is not sent to anyone (a lower frame
            // rate for a moment, rather than a queue or a broken reference chain).
            continue;
        }
        let (data, keyframe, width, height) = match captured {
            Captured::Jpeg(j) => (j, true, mode.width, mode.height),
            Captured::Raw(p) => {
                let p = p.to_i420();
                if encoder.is_none() {
                    let settings = EncoderSettings {
                        width: p.width,
                        height: p.height,
                        ..dev.settings_for(mode)
                    };
                    let mut fallback = None;
                    match AnyEncoder::open(dev.encoder, settings, &mut fallback) {
                        Ok(e) => {
                            match fallback {
                                Some(why) if xoq_video::encoder::NVENC_BUILT => {
                                    tracing::info!(device = %dev.name, "encoding with {} ({why})", e.describe())
                                }
                                _ => {
                                    tracing::info!(device = %dev.name, "encoding with {}", e.describe())
                                }
                            }
                            encoder = Some(e)
                        }
                        Err(e) => {
                            tracing::error!(device = %dev.name, "{e}");
                            std::thread::sleep(Duration::from_secs(1));
                            continue;
                        }
                    }
                }
                let Some(enc) = encoder.as_mut() else {
                    continue;
                };
                follow_rate_limit(dev, enc, &mut rate);
                let periodic = dev.periodic_keyframes.load(Ordering::Relaxed) > 0
                    && last_keyframe.is_none_or(|t| t.elapsed() >= RELAY_KEYFRAME_EVERY);
                if dev.keyframe_wanted.swap(false, Ordering::Relaxed) || periodic {
                    enc.force_keyframe();
                }
                match enc.encode(&p) {
                    Ok(e) => (e.data, e.keyframe, p.width as u16, p.height as u16),
                    Err(e) => {
                        tracing::warn!(device = %dev.name, "{e}; frame dropped");
                        continue;
                    }
                }
            }
        };
        if data.is_empty() {
            continue;
        }
        if keyframe {
            last_keyframe = Some(Instant::now());
        }
        xoq_link::sync::lock(&dev.state).trouble = None;
        let wire = WireFrame::new(VideoFrame {
            device: dev.name.clone(),
            seq,
            capture_us,
            keyframe,
            codec: dev.codec,
            width,
            height,
            data,
        });
        seq = seq.wrapping_add(1);
        dev.frames_sent.fetch_add(1, Ordering::Relaxed);
        let _ = dev.frames.send(Arc::new(wire));
    }
}

/// What the capture thread last asked of its encoder's bit rate.
#[derive(Default)]
struct RateFollower {
    asked: Option<u32>,
    refused: bool,
}

/// Sets the encoder's bit rate to the clients' lowest limit (or the ceiling when none asks),
/// when it moved by more than 3 %.
fn follow_rate_limit(dev: &CameraDevice, enc: &mut AnyEncoder, rate: &mut RateFollower) {
    let ceiling = dev.bitrate_ceiling();
    let want = dev.rate_limit().unwrap_or(ceiling).min(ceiling);
    let current = rate.asked.unwrap_or(ceiling);
    if rate.refused || want.abs_diff(current) <= current / 33 {
        return;
    }
    match enc.set_bitrate(want) {
        Ok(()) => {
            tracing::debug!(device = %dev.name, bps = want, "encoder bit rate follows the link");
            rate.asked = Some(want);
        }
        Err(e) => {
            tracing::warn!(device = %dev.name, "{e}");
            rate.refused = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wire_frame_is_the_message_and_points_at_its_picture() {
        let f = VideoFrame {
            device: "cam0".into(),
            seq: 7,
            capture_us: 42,
            keyframe: true,
            codec: VideoCodec::H264,
            width: 640,
            height: 480,
            data: vec![0, 0, 0, 1, 0x65, 9, 8, 7],
        };
        let w = WireFrame::new(f.clone());
        assert_eq!(w.data(), &f.data[..]);
        assert_eq!((w.seq, w.keyframe, w.capture_us), (7, true, 42));
        assert_eq!(
            Message::from_frame_by(&w.bytes, xoq_wire::Peer::Server).expect("decodes"),
            Message::VideoFrame(f)
        );
    }
}
