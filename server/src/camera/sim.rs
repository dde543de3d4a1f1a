//! The simulated camera: the numbered moving test pattern of `xoq_video::pattern`, at the
//! mode's size and rate, frame `n` showing number `n`, with optional grain.

use std::io;
use std::time::{Duration, Instant};

use xoq_video::pattern;
use xoq_wire::{VideoCodec, VideoMode};

use super::source::{now_us, CameraSource, Captured};

/// Modes the test pattern offers.
pub const SIM_MODES: [VideoMode; 4] = [
    VideoMode {
        width: 640,
        height: 480,
        fps: 30,
    },
    VideoMode {
        width: 1280,
        height: 720,
        fps: 30,
    },
    VideoMode {
        width: 1920,
        height: 1080,
        fps: 30,
    },
    VideoMode {
        width: 320,
        height: 240,
        fps: 15,
    },
];

#[derive(Default)]
pub struct SimCamera {
    mode: Option<VideoMode>,
    n: u32,
    next_at: Option<Instant>,
    grain: u8,
}

impl SimCamera {
    /// The pattern with sensor-like grain of up to `grain` levels (`pattern::add_grain`).
    pub fn with_grain(grain: u8) -> Self {
        SimCamera {
            grain,
            ..SimCamera::default()
        }
    }
}

impl CameraSource for SimCamera {
    fn describe(&self) -> String {
        "test pattern".into()
    }

    fn codec(&self) -> VideoCodec {
        VideoCodec::H264
    }

    fn modes(&self) -> Vec<VideoMode> {
        SIM_MODES.to_vec()
    }

    fn start(&mut self, mode: VideoMode) -> io::Result<()> {
        self.mode = Some(mode);
        self.next_at = None;
        Ok(())
    }

    fn next(&mut self) -> io::Result<(Captured, u64)> {
        let mode = self
            .mode
            .ok_or_else(|| io::Error::other("the test pattern was not started"))?;
        let period = Duration::from_secs(1) / u32::from(mode.fps);
        let now = Instant::now();
        let at = self.next_at.unwrap_or(now);
        if at > now {
            std::thread::sleep(at - now);
        }
        // A slow consumer makes us skip frames, as a real camera would, not fall behind.
        self.next_at = Some((at + period).max(Instant::now()));
        let captured = now_us();
        let n = self.n;
        self.n = self.n.wrapping_add(1);
        let mut p = pattern::render(usize::from(mode.width), usize::from(mode.height), n);
        pattern::add_grain(&mut p, n, self.grain);
        Ok((Captured::Raw(p), captured))
    }
}
