//! Reads a YUV4MPEG2 stream that is still being written (the mounter's file sink), and checks
//! its pictures against the simulated camera's numbered pattern.

use std::path::Path;
use std::time::{Duration, Instant};

use xoq_video::{pattern, quality};

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

/// What [`check_pictures`] found.
pub struct PictureCheck {
    /// Pictures that repeat the one before (the mounter repeats the last picture while a frame
    /// is late).
    pub repeats: usize,
    /// Different frame numbers seen.
    pub distinct: usize,
    pub worst_psnr: f64,
}

/// Checks consecutive pictures of the simulated camera (with `grain`, as the server adds it):
/// numbers that only go up (a repeat is allowed) and a PSNR of at least `min_psnr` each
/// against the picture of that number (no picture from a broken reference chain); panics
/// otherwise.
pub fn check_pictures(
    frames: &[Vec<u8>],
    w: usize,
    h: usize,
    grain: u8,
    min_psnr: f64,
) -> PictureCheck {
    let mut last: Option<u16> = None;
    let mut c = PictureCheck {
        repeats: 0,
        distinct: 0,
        worst_psnr: f64::INFINITY,
    };
    for (i, f) in frames.iter().enumerate() {
        let y = &f[..w * h];
        let n = pattern::read(y, w, h).unwrap_or_else(|| panic!("picture {i}: no frame number"));
        match last {
            Some(prev) if n == prev => c.repeats += 1,
            Some(prev) => {
                assert!(n > prev, "picture {i}: number {n} after {prev}");
                c.distinct += 1;
            }
            None => c.distinct += 1,
        }
        last = Some(n);
        let mut reference = pattern::render(w, h, u32::from(n));
        pattern::add_grain(&mut reference, u32::from(n), grain);
        let psnr = quality::psnr(y, reference.y_plane());
        assert!(psnr >= min_psnr, "picture {i} (#{n}): PSNR {psnr:.1} dB");
        c.worst_psnr = c.worst_psnr.min(psnr);
    }
    c
}
