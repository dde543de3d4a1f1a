//! Cameras on the client: each remote camera becomes a v4l2loopback video device (or, for
//! tests and recording, a YUV4MPEG2 file) that any V4L2 program reads like a webcam.
//!
//! Frames arrive on their own streams (`xoq_link::frames`); the bridge of each connection
//! passes them to a decoding thread that lives as long as the mount, writes pictures to the
//! sink, and repeats the last picture while the link stalls, so readers keep getting frames.

pub mod bridge;
pub mod claim;
pub mod decode;
pub mod reorder;
pub mod sink;

pub use bridge::CameraMount;
