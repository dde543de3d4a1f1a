//! Camera semantics: the codec frames travel in, the modes (size and rate) a camera offers,
//! and one encoded frame.
//!
//! A frame is one unit: the server sends each on its own unidirectional QUIC stream, so a
//! late one is abandoned whole (the stream is reset) instead of delaying the next. A client
//! that joins, or sees a gap in `seq`, asks for a keyframe.

use crate::codec::{Reader, Writer};
use crate::error::WireError;
use crate::limits::{MAX_FRAME, MAX_MODES, MAX_NAME};

/// How frames are coded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264 Annex B, one access unit per frame, no B-frames.
    H264,
    /// One JPEG image per frame, passed through from the camera.
    Mjpeg,
}

impl VideoCodec {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            VideoCodec::H264 => 1,
            VideoCodec::Mjpeg => 2,
        }
    }
    pub(crate) fn from_u8(v: u8) -> Result<Self, WireError> {
        match v {
            1 => Ok(VideoCodec::H264),
            2 => Ok(VideoCodec::Mjpeg),
            v => Err(WireError::BadValue {
                field: "video_codec",
                value: v.into(),
            }),
        }
    }
}

impl std::fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Mjpeg => "mjpeg",
        })
    }
}

/// A picture size and frame rate. Width and height are even (4:2:0 chroma needs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VideoMode {
    pub width: u16,
    pub height: u16,
    /// Frames per second.
    pub fps: u16,
}

impl VideoMode {
    pub const ENCODED_LEN: usize = 6;
    /// Largest width or height accepted.
    pub const MAX_SIDE: u16 = 8192;
    /// Highest frame rate accepted.
    pub const MAX_FPS: u16 = 480;

    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u16(self.width);
        w.u16(self.height);
        w.u16(self.fps);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let m = VideoMode {
            width: r.u16("width")?,
            height: r.u16("height")?,
            fps: r.u16("fps")?,
        };
        m.validate()?;
        Ok(m)
    }

    /// Even sides from 2 to [`Self::MAX_SIDE`], a rate from 1 to [`Self::MAX_FPS`].
    pub fn validate(&self) -> Result<(), WireError> {
        for (field, v) in [("width", self.width), ("height", self.height)] {
            if !(2..=Self::MAX_SIDE).contains(&v) || !v.is_multiple_of(2) {
                return Err(WireError::BadValue {
                    field,
                    value: v.into(),
                });
            }
        }
        if self.fps == 0 || self.fps > Self::MAX_FPS {
            return Err(WireError::BadValue {
                field: "fps",
                value: self.fps.into(),
            });
        }
        Ok(())
    }
}

impl std::fmt::Display for VideoMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}@{}", self.width, self.height, self.fps)
    }
}

impl std::str::FromStr for VideoMode {
    type Err = String;

    /// `WIDTHxHEIGHT@FPS`, e.g. `1280x720@30`, valid as [`VideoMode::validate`] says.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not WIDTHxHEIGHT@FPS with even sides, e.g. 1280x720@30");
        let (w, rest) = s.split_once('x').ok_or_else(bad)?;
        let (h, fps) = rest.split_once('@').ok_or_else(bad)?;
        let m = VideoMode {
            width: w.trim().parse().map_err(|_| bad())?,
            height: h.trim().parse().map_err(|_| bad())?,
            fps: fps.trim().parse().map_err(|_| bad())?,
        };
        m.validate().map_err(|_| bad())?;
        Ok(m)
    }
}

/// A camera's catalog settings: how its frames are coded, the mode in force, and every mode
/// it can give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraSettings {
    pub codec: VideoCodec,
    pub mode: VideoMode,
    pub modes: Vec<VideoMode>,
}

impl CameraSettings {
    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u8(self.codec.to_u8());
        self.mode.encode(w);
        let n = self.modes.len().min(MAX_MODES);
        w.u8(n as u8);
        for m in &self.modes[..n] {
            m.encode(w);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let codec = VideoCodec::from_u8(r.u8("video_codec")?)?;
        let mode = VideoMode::decode(r)?;
        let n = usize::from(r.u8("mode_count")?);
        if n > MAX_MODES {
            return Err(WireError::TooMany {
                field: "modes",
                count: n,
                max: MAX_MODES,
            });
        }
        let mut modes = Vec::with_capacity(n);
        for _ in 0..n {
            modes.push(VideoMode::decode(r)?);
        }
        Ok(CameraSettings { codec, mode, modes })
    }
}

/// One encoded frame of device `device`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    pub device: String,
    /// Counts every frame the camera produced, so a gap shows a loss.
    pub seq: u32,
    /// When the camera captured it: microseconds since the Unix epoch, server clock.
    pub capture_us: u64,
    /// Decodable on its own (an H.264 IDR; every JPEG).
    pub keyframe: bool,
    pub codec: VideoCodec,
    pub width: u16,
    pub height: u16,
    pub data: Vec<u8>,
}

impl VideoFrame {
    /// Bytes before the data, with the longest device name.
    pub const MAX_HEADER: usize = 2 + MAX_NAME + 4 + 8 + 1 + 1 + 2 + 2 + 4;

    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.str(&self.device, MAX_NAME);
        w.u32(self.seq);
        w.u64(self.capture_us);
        w.u8(u8::from(self.keyframe));
        w.u8(self.codec.to_u8());
        w.u16(self.width);
        w.u16(self.height);
        let n = self.data.len().min(MAX_FRAME);
        w.u32(n as u32);
        w.0.extend_from_slice(&self.data[..n]);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let device = r.name("device")?;
        let seq = r.u32("seq")?;
        let capture_us = r.u64("capture_us")?;
        let keyframe = match r.u8("keyframe")? {
            0 => false,
            1 => true,
            v => {
                return Err(WireError::BadValue {
                    field: "keyframe",
                    value: v.into(),
                })
            }
        };
        let codec = VideoCodec::from_u8(r.u8("video_codec")?)?;
        let width = r.u16("width")?;
        let height = r.u16("height")?;
        let n = r.u32("frame_len")? as usize;
        if n > MAX_FRAME {
            return Err(WireError::FieldTooLong {
                field: "frame",
                len: n,
                max: MAX_FRAME,
            });
        }
        let data = r.bytes(n, "frame")?.to_vec();
        Ok(VideoFrame {
            device,
            seq,
            capture_us,
            keyframe,
            codec,
            width,
            height,
            data,
        })
    }
}
