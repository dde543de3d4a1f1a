//! Reads a YUV4MPEG2 stream that is still being written (the mounter's file sink).

use std::path::Path;
use std::time::{Duration, Instant};

/// A stream's geometry and its frames so far (I420 each).
pub struct Y4m {
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    pub frames: Vec<Vec<u8>>,
}

/// Parses what is in `bytes`: the header and every complete frame.
pub fn parse(bytes: &[u8]) -> Option<Y4m> {
    let nl = bytes.iter().position(|b| *b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..nl]).ok()?;
    let mut it = header.split(' ');
    if it.next()? != "YUV4MPEG2" {
        return None;
    }
    let (mut width, mut height, mut fps) = (0, 0, 0);
    for tok in it {
        match tok.as_bytes().first() {
            Some(b'W') => width = tok[1..].parse().ok()?,
            Some(b'H') => height = tok[1..].parse().ok()?,
            Some(b'F') => fps = tok[1..].split(':').next()?.parse().ok()?,
            _ => {}
        }
    }
    let size = width * height * 3 / 2;
    let mut frames = Vec::new();
    let mut at = nl + 1;
    while bytes.len() >= at + 6 + size && &bytes[at..at + 6] == b"FRAME\n" {
        frames.push(bytes[at + 6..at + 6 + size].to_vec());
        at += 6 + size;
    }
    Some(Y4m {
        width,
        height,
        fps,
        frames,
    })
}

/// Waits until `path` holds at least `n` frames; panics at the deadline.
pub fn wait_frames(path: &Path, n: usize, timeout: Duration) -> Y4m {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(y) = std::fs::read(path).ok().and_then(|b| parse(&b)) {
            if y.frames.len() >= n {
                return y;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} did not reach {n} frames in {timeout:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
