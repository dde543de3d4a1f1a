//! V4L2 for XoQ mount, on raw ioctls (no bindgen, no libv4l): the few structures and calls a
//! camera reader and a v4l2loopback writer need.
//!
//! - [`sys`]: the kernel ABI (x86-64 and arm64 layouts), checked by size;
//! - [`device`]: an open video node: capabilities, formats, sizes, rates, format and rate;
//! - [`capture`]: mmap streaming capture with each frame's capture time;
//! - [`output`]: writing frames to a v4l2loopback device;
//! - [`control`]: adding and removing v4l2loopback devices at run time (module 0.13+);
//! - [`jpeg`]: cutting an MJPEG buffer to its image.

pub mod capture;
pub mod control;
pub mod device;
pub mod jpeg;
pub mod output;
pub mod sys;

pub use device::{Device, FrameFormat};

/// A FOURCC code as V4L2 builds it.
pub const fn fourcc(c: &[u8; 4]) -> u32 {
    (c[0] as u32) | (c[1] as u32) << 8 | (c[2] as u32) << 16 | (c[3] as u32) << 24
}

pub const YUYV: u32 = fourcc(b"YUYV");
pub const NV12: u32 = fourcc(b"NV12");
pub const YU12: u32 = fourcc(b"YU12");
pub const MJPG: u32 = fourcc(b"MJPG");
pub const JPEG: u32 = fourcc(b"JPEG");

/// A FOURCC as text, for messages.
pub fn fourcc_str(f: u32) -> String {
    f.to_le_bytes()
        .iter()
        .map(|b| {
            if b.is_ascii_graphic() {
                *b as char
            } else {
                '?'
            }
        })
        .collect()
}
