//! Cameras on the server: the source trait (a V4L2 device or the simulated test pattern), the
//! device that captures, encodes and fans frames out, and the per-client frame sender.

pub mod device;
pub mod keyframes;
pub mod rate;
pub mod sender;
pub mod sim;
pub mod source;
pub mod stream;
pub mod v4l2;
pub mod votes;

pub use device::{CameraAttachment, CameraDevice};
