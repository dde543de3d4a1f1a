//! The two ends of the camera test in the kernel guest (`tests/vm/suites/camera.sh`):
//!
//!   video_check feed DEV WxH@FPS [yuyv|mjpg]   be the robot's camera: write the numbered
//!                                               pattern to a v4l2loopback device, forever
//!   video_check read DEV N [yuyv|mjpg]          be an ordinary V4L2 app: capture N frames
//!                                               with mmap streaming and check them
//!   video_check stall DEV SECONDS               capture for SECONDS and report the frames
//!                                               and numbers seen (while the server is stopped)
//!
//! `read` checks: every frame carries a frame number; numbers never go back; for YUYV each
//! picture's PSNR against the pattern is at least 30 dB; for MJPEG each frame is byte for
//! byte the JPEG the feeder made for that number. Prints `ok: ...` / `FAIL: ...`, exits 1 on
//! any failure.

use std::path::Path;
use std::time::{Duration, Instant};

use xoq_v4l2::capture::Capture;
use xoq_v4l2::output::Output;
use xoq_v4l2::sys::BUF_TYPE_VIDEO_CAPTURE;
use xoq_v4l2::{Device, FrameFormat, MJPG, YUYV};
use xoq_video::{pattern, quality, Picture, PixelFormat};
use xoq_wire::VideoMode;

fn jpeg_of(n: u32, w: usize, h: usize) -> Vec<u8> {
    let p = pattern::render(w, h, n).to_yuyv();
    // Deterministic: the reader re-encodes frame n and compares bytes.
    let rgb = yuyv_to_rgb(&p.data, w, h);
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 90);
    // The number also rides in an APP15 segment, so the reader finds which JPEG to compare
    // against without decoding it.
    let tag = format!("xoq-frame:{n}");
    if let Err(e) = enc.add_app_segment(15, tag.as_bytes()) {
        panic!("jpeg: {e}");
    }
    if let Err(e) = enc.encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb) {
        panic!("jpeg: {e}");
    }
    out
}

/// The frame number in a JPEG's APP15 `xoq-frame:N` segment.
fn jpeg_number(jpeg: &[u8]) -> Option<u32> {
    let tag = b"xoq-frame:";
    let at = jpeg.windows(tag.len()).position(|w| w == tag)? + tag.len();
    let digits: Vec<u8> = jpeg[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

fn yuyv_to_rgb(yuyv: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(w * h * 3);
    for px in yuyv.chunks_exact(4) {
        let (u, v) = (f32::from(px[1]) - 128.0, f32::from(px[3]) - 128.0);
        for y in [px[0], px[2]] {
            let y = f32::from(y);
            rgb.push((y + 1.402 * v).clamp(0.0, 255.0) as u8);
            rgb.push((y - 0.344 * u - 0.714 * v).clamp(0.0, 255.0) as u8);
            rgb.push((y + 1.772 * u).clamp(0.0, 255.0) as u8);
        }
    }
    rgb
}

fn feed(dev: &Path, mode: VideoMode, mjpg: bool) -> ! {
    let (w, h) = (usize::from(mode.width), usize::from(mode.height));
    let d = Device::open(dev).unwrap_or_else(|e| panic!("{e}"));
    let fourcc = if mjpg { MJPG } else { YUYV };
    let frame_of = |n: u32| {
        if mjpg {
            jpeg_of(n, w, h)
        } else {
            pattern::render(w, h, n).to_yuyv().data
        }
    };
    let mut out = Output::start(
        d,
        FrameFormat {
            fourcc,
            width: u32::from(mode.width),
            height: u32::from(mode.height),
            fps: u32::from(mode.fps),
        },
        &frame_of(0),
    )
    .unwrap_or_else(|e| panic!("feed {}: {e}", dev.display()));
    println!(
        "feeding {} with {mode} {}",
        dev.display(),
        if mjpg { "MJPG" } else { "YUYV" }
    );
    let period = Duration::from_secs(1) / u32::from(mode.fps);
    let mut next = Instant::now();
    for n in 1u32.. {
        next += period;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        if let Err(e) = out.write_frame(&frame_of(n)) {
            eprintln!("feed: {e}");
        }
    }
    unreachable!()
}

/// Opens `dev` as a reader once a producer has given it a format (up to 30 s).
fn open_reader(dev: &Path) -> (Capture, FrameFormat) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(d) = Device::open(dev) {
            if let Ok(f) = d.format(BUF_TYPE_VIDEO_CAPTURE) {
                if f.width > 0 {
                    match Capture::start(d) {
                        Ok(c) => return (c, f),
                        Err(e) => eprintln!("read: {e}; retrying"),
                    }
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never got a format",
            dev.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn number_of(f: &FrameFormat, data: &[u8]) -> Option<(u16, Picture)> {
    let (w, h) = (f.width as usize, f.height as usize);
    let p = Picture::new(PixelFormat::Yuyv, w, h, data.get(..w * h * 2)?.to_vec())?.to_i420();
    Some((pattern::read(p.y_plane(), w, h)?, p))
}

/// Which frame each quarter of a bad picture matches best (a picture torn between two frames
/// shows two numbers, up to a loopback ring of frames apart), for the failure message.
fn bands_matched(y: &[u8], w: usize, h: usize, num: u16) -> String {
    let near: Vec<(u32, Picture)> = (u32::from(num).saturating_sub(30)..=u32::from(num) + 30)
        .map(|k| (k, pattern::render(w, h, k)))
        .collect();
    let band = w * (h / 4);
    let best: Vec<String> = (0..4)
        .map(|q| {
            let rows = q * band..(q + 1) * band;
            let (k, db) = near
                .iter()
                .map(|(k, p)| {
                    (
                        *k,
                        quality::psnr(&y[rows.clone()], &p.y_plane()[rows.clone()]),
                    )
                })
                .fold((0, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
            format!("#{k} {db:.1} dB")
        })
        .collect();
    format!("its quarters match best {}", best.join(", "))
}

fn read(dev: &Path, n: usize, fails: &mut u32) {
    let (mut cap, f) = open_reader(dev);
    let mjpg = f.fourcc == MJPG;
    println!(
        "reading {}: {}x{} {} at {} fps",
        dev.display(),
        f.width,
        f.height,
        xoq_v4l2::fourcc_str(f.fourcc),
        f.fps
    );
    let (w, h) = (f.width as usize, f.height as usize);
    let mut bad = |what: String| {
        println!("FAIL: {what}");
        *fails += 1;
    };
    let mut last: Option<u16> = None;
    let (mut repeats, mut worst) = (0, f64::INFINITY);
    let t0 = Instant::now();
    for i in 0..n {
        let (data, _) = match cap.next(Duration::from_secs(5)) {
            Ok(x) => x,
            Err(e) => return bad(format!("frame {i}: {e}")),
        };
        let num = if mjpg {
            let image = xoq_v4l2::jpeg::trim(&data);
            let Some(k) = jpeg_number(image) else {
                return bad(format!("frame {i}: not one of the feeder's JPEGs"));
            };
            let source = jpeg_of(k, w, h);
            if source != image {
                return bad(format!(
                    "frame {i} (#{k}): {} bytes, not byte-identical to the source JPEG of {} (buffer {})",
                    image.len(),
                    source.len(),
                    data.len()
                ));
            }
            k as u16
        } else {
            let Some((num, p)) = number_of(&f, &data) else {
                return bad(format!("frame {i}: no frame number in the picture"));
            };
            let psnr = quality::psnr(p.y_plane(), pattern::render(w, h, u32::from(num)).y_plane());
            worst = worst.min(psnr);
            if psnr < 30.0 {
                bad(format!(
                    "frame {i} (#{num}): PSNR {psnr:.1} dB < 30 ({})",
                    bands_matched(p.y_plane(), w, h, num)
                ));
            }
            num
        };
        if let Some(prev) = last {
            if num < prev {
                bad(format!("frame {i}: number {num} after {prev}"));
            }
            if num == prev {
                repeats += 1;
            }
        }
        last = Some(num);
    }
    let what = if mjpg {
        "byte-identical to the source JPEGs".to_string()
    } else {
        format!("worst PSNR {worst:.1} dB")
    };
    println!(
        "ok: {n} frames from {} in {:.1} s, numbers never back, {repeats} repeats, {what}",
        dev.display(),
        t0.elapsed().as_secs_f64()
    );
}

fn stall(dev: &Path, secs: u64, fails: &mut u32) {
    let (mut cap, f) = open_reader(dev);
    let t0 = Instant::now();
    let (mut frames, mut numbers) = (0, Vec::new());
    while t0.elapsed() < Duration::from_secs(secs) {
        match cap.next(Duration::from_secs(2)) {
            Ok((data, _)) => {
                frames += 1;
                if let Some((n, _)) = number_of(&f, &data) {
                    if numbers.last() != Some(&n) {
                        numbers.push(n);
                    }
                }
            }
            Err(e) => {
                println!("FAIL: while stalled: {e}");
                *fails += 1;
                return;
            }
        }
    }
    println!("stall: {frames} frames in {secs} s, distinct numbers {numbers:?}");
    if frames == 0 {
        println!("FAIL: no frames while the link stalled");
        *fails += 1;
    } else {
        println!("ok: the device kept giving frames ({frames} in {secs} s) while the link stalled");
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize| a.get(i).cloned().unwrap_or_default();
    let dev = arg(2);
    let dev = Path::new(&dev);
    let mut fails = 0;
    match arg(1).as_str() {
        "feed" => {
            let mode: VideoMode = arg(3).parse().unwrap_or_else(|e| panic!("{e}"));
            feed(dev, mode, arg(4) == "mjpg")
        }
        "read" => read(dev, arg(3).parse().unwrap_or(60), &mut fails),
        "stall" => stall(dev, arg(3).parse().unwrap_or(2), &mut fails),
        other => {
            eprintln!("unknown command {other:?}; see the module doc");
            std::process::exit(2);
        }
    }
    std::process::exit(i32::from(fails > 0));
}
