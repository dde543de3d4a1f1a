//! Video for XoQ mount, without any I/O:
//!
//! - [`picture`]: raw pictures (I420, YUYV, NV12) and conversions between them;
//! - [`pattern`]: the simulated camera's moving test pattern, which carries its frame number
//!   in large blocks that survive lossy coding, and the reader for it;
//! - [`quality`]: PSNR, to check what came out against what went in;
//! - [`h264`]: software H.264 encoding (low latency: no B-frames, short GOP, keyframes on
//!   request) and decoding, with OpenH264 built from source;
//! - [`encoder`]: the encoder a camera uses: OpenH264, or NVENC on an NVIDIA GPU (cargo feature
//!   `nvenc`, which builds without CUDA: the driver is loaded at run time).

pub mod encoder;
pub mod h264;
#[cfg(feature = "nvenc")]
pub mod nvenc;
pub mod pattern;
pub mod picture;
pub mod quality;

pub use picture::{Picture, PixelFormat};
