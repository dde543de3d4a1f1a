//! What a camera must do, whatever it is: say which modes it offers, start in one, and hand
//! over captured pictures with their capture time. Runs on a dedicated thread: capture calls
//! block.

use std::io;

use xoq_video::Picture;
use xoq_wire::{VideoCodec, VideoMode};

/// One captured frame.
pub enum Captured {
    /// A raw picture, to be encoded (H.264).
    Raw(Picture),
    /// A JPEG image from an MJPEG camera, passed through untouched.
    Jpeg(Vec<u8>),
}

/// A camera. `start` may be called again to switch modes.
pub trait CameraSource: Send + 'static {
    /// For logs and errors: `/dev/video0`, `test pattern`.
    fn describe(&self) -> String;
    /// How frames travel: H.264 for raw cameras, MJPEG when the camera gives JPEG.
    fn codec(&self) -> VideoCodec;
    /// Every mode the camera can give, the preferred one first.
    fn modes(&self) -> Vec<VideoMode>;
    /// Starts capturing in `mode`.
    fn start(&mut self, mode: VideoMode) -> io::Result<()>;
    /// Blocks until the next frame; returns it with its capture time (µs since the epoch).
    fn next(&mut self) -> io::Result<(Captured, u64)>;
    /// Stops capturing (nobody is watching); `start` begins again.
    fn stop(&mut self) {}
}

pub use xoq_link::clock::unix_now_us as now_us;
