//! A V4L2 camera (`/dev/videoN`: a UVC webcam, a CSI camera, a v4l2loopback device): its
//! modes are read from the driver; MJPEG cameras are passed through, raw ones (YUYV, NV12,
//! YU12) are converted to I420 for the encoder.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use xoq_v4l2::capture::Capture;
use xoq_v4l2::sys::{BUF_TYPE_VIDEO_CAPTURE, CAP_STREAMING, CAP_VIDEO_CAPTURE};
use xoq_v4l2::{Device, FrameFormat, MJPG, NV12, YU12, YUYV};
use xoq_video::{Picture, PixelFormat};
use xoq_wire::{VideoCodec, VideoMode};

use super::source::{CameraSource, Captured};

/// Raw formats we take, best first.
const RAW: [u32; 3] = [YUYV, NV12, YU12];

pub struct V4l2Camera {
    path: PathBuf,
    fourcc: u32,
    modes: Vec<VideoMode>,
    capture: Option<Capture>,
    mode: Option<VideoMode>,
}

impl V4l2Camera {
    /// Opens the device and reads what it offers.
    pub fn open(path: &Path) -> io::Result<V4l2Camera> {
        let dev = Device::open(path)?;
        let (driver, card, caps) = dev.query()?;
        if caps & CAP_VIDEO_CAPTURE == 0 || caps & CAP_STREAMING == 0 {
            return Err(io::Error::other(format!(
                "{} ({card}, driver {driver}) is not a streaming capture device",
                path.display()
            )));
        }
        let formats = dev.formats(BUF_TYPE_VIDEO_CAPTURE);
        let fourcc = if formats.contains(&MJPG) {
            MJPG
        } else {
            RAW.into_iter()
                .find(|f| formats.contains(f))
                .ok_or_else(|| {
                    let names: Vec<String> =
                        formats.iter().map(|f| xoq_v4l2::fourcc_str(*f)).collect();
                    io::Error::other(format!(
                        "{} offers {}; we take MJPG, YUYV, NV12 or YU12",
                        path.display(),
                        names.join(", ")
                    ))
                })?
        };
        let mut modes = Vec::new();
        for (w, h) in dev.sizes(fourcc) {
            for fps in dev.rates(fourcc, w, h) {
                push_mode(&mut modes, w, h, fps);
            }
        }
        if modes.is_empty() {
            // Drivers that list no discrete sizes (v4l2loopback does not): the format in force.
            let f = dev.format(BUF_TYPE_VIDEO_CAPTURE)?;
            push_mode(
                &mut modes,
                f.width,
                f.height,
                if f.fps == 0 { 30 } else { f.fps },
            );
        }
        if modes.is_empty() {
            return Err(io::Error::other(format!(
                "{} reports no usable size and rate",
                path.display()
            )));
        }
        tracing::info!(device = %path.display(), %card, format = %xoq_v4l2::fourcc_str(fourcc), modes = modes.len(), "V4L2 camera");
        Ok(V4l2Camera {
            path: path.to_path_buf(),
            fourcc,
            modes,
            capture: None,
            mode: None,
        })
    }
}

fn push_mode(modes: &mut Vec<VideoMode>, w: u32, h: u32, fps: u32) {
    let (Ok(width), Ok(height), Ok(fps)) = (u16::try_from(w), u16::try_from(h), u16::try_from(fps))
    else {
        return;
    };
    let m = VideoMode { width, height, fps };
    if m.validate().is_ok() && !modes.contains(&m) {
        modes.push(m);
    }
}

impl CameraSource for V4l2Camera {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn codec(&self) -> VideoCodec {
        if self.fourcc == MJPG {
            VideoCodec::Mjpeg
        } else {
            VideoCodec::H264
        }
    }

    fn modes(&self) -> Vec<VideoMode> {
        self.modes.clone()
    }

    fn start(&mut self, mode: VideoMode) -> io::Result<()> {
        self.capture = None; // stops streaming, releases the buffers
        let dev = Device::open(&self.path)?;
        let want = FrameFormat {
            fourcc: self.fourcc,
            width: u32::from(mode.width),
            height: u32::from(mode.height),
            fps: u32::from(mode.fps),
        };
        let got = dev.set_format(BUF_TYPE_VIDEO_CAPTURE, want)?;
        if (got.fourcc, got.width, got.height) != (want.fourcc, want.width, want.height) {
            return Err(io::Error::other(format!(
                "{} gave {}x{} {} when asked for {mode} {}",
                self.path.display(),
                got.width,
                got.height,
                xoq_v4l2::fourcc_str(got.fourcc),
                xoq_v4l2::fourcc_str(want.fourcc)
            )));
        }
        self.capture = Some(Capture::start(dev)?);
        self.mode = Some(mode);
        Ok(())
    }

    fn stop(&mut self) {
        // Dropping the capture stops streaming: the camera's LED goes off, and no stale
        // buffers wait for the next viewer.
        self.capture = None;
        self.mode = None;
    }

    fn next(&mut self) -> io::Result<(Captured, u64)> {
        let (Some(cap), Some(mode)) = (self.capture.as_mut(), self.mode) else {
            return Err(io::Error::other("the camera was not started"));
        };
        let (data, captured) = cap.next(Duration::from_secs(2))?;
        if self.fourcc == MJPG {
            let image = xoq_v4l2::jpeg::trim(&data).to_vec();
            return Ok((Captured::Jpeg(image), captured));
        }
        let format = match self.fourcc {
            YUYV => PixelFormat::Yuyv,
            NV12 => PixelFormat::Nv12,
            _ => PixelFormat::I420,
        };
        let (w, h) = (usize::from(mode.width), usize::from(mode.height));
        let need = format.frame_len(w, h);
        if data.len() < need {
            return Err(io::Error::other(format!(
                "{} delivered {} bytes for a {mode} frame of {need}",
                self.path.display(),
                data.len()
            )));
        }
        let mut data = data;
        data.truncate(need);
        let p = Picture::new(format, w, h, data)
            .ok_or_else(|| io::Error::other("frame size does not match its format"))?;
        Ok((Captured::Raw(p), captured))
    }
}
