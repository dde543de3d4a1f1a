//! Where decoded pictures go: a v4l2loopback device, as YUYV (every V4L2 consumer takes it:
//! it is what UVC webcams deliver, so ffmpeg, OpenCV, GStreamer and browsers all accept it),
//! or MJPEG passed through for MJPEG cameras; or a YUV4MPEG2 file (I420), which ffmpeg and
//! the tests read.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use xoq_v4l2::output::Output;
use xoq_v4l2::{Device, FrameFormat, MJPG, YUYV};
use xoq_video::Picture;
use xoq_wire::{VideoCodec, VideoMode};

/// A destination for pictures, set up for one mode.
pub enum Sink {
    Loopback {
        path: PathBuf,
        out: Option<Output>,
        mode: Option<VideoMode>,
        codec: VideoCodec,
    },
    Y4m {
        path: PathBuf,
        file: Option<File>,
        mode: Option<VideoMode>,
    },
    /// Decoded and dropped (benchmarks: everything but the final copy).
    Null { path: PathBuf },
}

impl Sink {
    pub fn loopback(path: &Path, codec: VideoCodec) -> Sink {
        Sink::Loopback {
            path: path.to_path_buf(),
            out: None,
            mode: None,
            codec,
        }
    }

    pub fn y4m(path: &Path) -> Sink {
        Sink::Y4m {
            path: path.to_path_buf(),
            file: None,
            mode: None,
        }
    }

    /// What programs open.
    pub fn path(&self) -> &Path {
        match self {
            Sink::Loopback { path, .. } | Sink::Y4m { path, .. } | Sink::Null { path } => path,
        }
    }

    /// Makes the sink ready for pictures of `mode` (the first time, or after a mode switch).
    /// A loopback device starts with `frame` written; returns whether it was.
    fn ensure(&mut self, mode: VideoMode, frame: &[u8]) -> io::Result<bool> {
        match self {
            Sink::Loopback {
                path,
                out,
                mode: cur,
                codec,
            } => {
                if *cur == Some(mode) && out.is_some() {
                    return Ok(false);
                }
                *out = None;
                let fourcc = if *codec == VideoCodec::Mjpeg {
                    MJPG
                } else {
                    YUYV
                };
                let dev = Device::open(path)?;
                *out = Some(Output::start(
                    dev,
                    FrameFormat {
                        fourcc,
                        width: u32::from(mode.width),
                        height: u32::from(mode.height),
                        fps: u32::from(mode.fps),
                    },
                    frame,
                )?);
                *cur = Some(mode);
                return Ok(true);
            }
            Sink::Y4m {
                path,
                file,
                mode: cur,
            } => {
                if *cur == Some(mode) && file.is_some() {
                    return Ok(false);
                }
                if cur.is_some() {
                    // A stream has one size: a mode switch starts the file again.
                    tracing::info!(file = %path.display(), %mode, "mode changed: file restarted");
                }
                let mut f = File::create(&*path).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display()))
                })?;
                writeln!(
                    f,
                    "YUV4MPEG2 W{} H{} F{}:1 Ip A1:1 C420jpeg",
                    mode.width, mode.height, mode.fps
                )?;
                *file = Some(f);
                *cur = Some(mode);
            }
            Sink::Null { .. } => {}
        }
        Ok(false)
    }

    /// Writes one decoded picture (I420).
    pub fn write_picture(&mut self, mode: VideoMode, p: &Picture) -> io::Result<()> {
        let yuyv = match self {
            Sink::Loopback { .. } => p.to_yuyv().data,
            _ => Vec::new(),
        };
        if self.ensure(mode, &yuyv)? {
            return Ok(());
        }
        match self {
            Sink::Loopback { out: Some(o), .. } => o.write_frame(&yuyv),
            Sink::Y4m { file: Some(f), .. } => {
                f.write_all(b"FRAME\n")?;
                f.write_all(&p.to_i420().data)
            }
            _ => Ok(()),
        }
    }

    /// Writes one JPEG image as it came (MJPEG cameras).
    pub fn write_jpeg(&mut self, mode: VideoMode, jpeg: &[u8]) -> io::Result<()> {
        if self.ensure(mode, jpeg)? {
            return Ok(());
        }
        match self {
            Sink::Loopback { out: Some(o), .. } => o.write_frame(jpeg),
            Sink::Y4m { path, .. } => Err(io::Error::other(format!(
                "{} cannot hold JPEG images; mount MJPEG cameras on a loopback device",
                path.display()
            ))),
            _ => Ok(()),
        }
    }
}
