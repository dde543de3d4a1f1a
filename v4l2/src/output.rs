//! Writing frames to a v4l2loopback device: set the OUTPUT format (and rate), then one
//! `write()` per frame. Readers (ffmpeg, OpenCV, browsers) see a camera of that format.

use std::io::{self, Write};

use crate::device::{Device, FrameFormat};
use crate::sys::BUF_TYPE_VIDEO_OUTPUT;

/// A v4l2loopback device we produce frames for.
pub struct Output {
    dev: Device,
    pub format: FrameFormat,
}

impl Output {
    /// Claims the device as its producer with this format.
    ///
    /// Writes `first` before announcing the stream, so a reader that opens the device the
    /// moment it offers capture never gets a buffer the producer has not filled; and writes it
    /// once more than the device has buffers. v4l2loopback hands a reader that is exactly a
    /// ring behind the writer (`max_buffers` frames: a new reader starts at frame 0) the buffer
    /// the writer fills next, so a reader that opened as the ring's last buffer was written
    /// could get a picture torn between two frames. Past one ring, a new reader starts on the
    /// newest picture instead.
    pub fn start(dev: Device, want: FrameFormat, first: &[u8]) -> io::Result<Output> {
        let got = dev.set_format(BUF_TYPE_VIDEO_OUTPUT, want)?;
        if (got.fourcc, got.width, got.height) != (want.fourcc, want.width, want.height) {
            return Err(io::Error::other(format!(
                "{} took {}x{} {} instead of {}x{} {}",
                dev.path.display(),
                got.width,
                got.height,
                crate::fourcc_str(got.fourcc),
                want.width,
                want.height,
                crate::fourcc_str(want.fourcc)
            )));
        }
        // v4l2loopback with exclusive_caps=1 marks an opener as its writer only through
        // STREAMON(OUTPUT); a write()-only producer that exits can leave the device announcing
        // no capability at all (every later S_FMT fails) until the module is reloaded.
        let mut out = Output { dev, format: got };
        // A device we added has our buffer count, one made at module load the module's.
        let ring = ring_len().max(crate::control::ADDED_BUFFERS as usize);
        for _ in 0..=ring {
            out.write_frame(first)?;
        }
        let mut t = BUF_TYPE_VIDEO_OUTPUT as libc::c_int;
        match crate::device::ioctl(&out.dev.file, crate::sys::VIDIOC_STREAMON, &mut t) {
            Ok(_) => {}
            // Newer modules (0.13+) refuse STREAMON before buffers are requested; they
            // take a write()-only producer as it is.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
        Ok(out)
    }

    /// Writes one whole frame.
    pub fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        let n = (&self.dev.file).write(frame)?;
        if n != frame.len() {
            return Err(io::Error::other(format!(
                "{} took {n} of {} bytes of a frame",
                self.dev.path.display(),
                frame.len()
            )));
        }
        Ok(())
    }
}

/// Buffers a v4l2loopback device rings through: the module's `max_buffers` (2 unless it was
/// loaded with more; XoQ's on-demand devices take the module's default).
pub fn ring_len() -> usize {
    std::fs::read_to_string("/sys/module/v4l2loopback/parameters/max_buffers")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|n| (1..=MAX_RING).contains(n))
        .unwrap_or(DEFAULT_RING)
}

/// v4l2loopback's default `max_buffers`, and its ceiling.
const DEFAULT_RING: usize = 2;
const MAX_RING: usize = 32;
