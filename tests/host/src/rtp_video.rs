//! The camera baseline: an ffmpeg pipeline at the same size, rate, GOP and bit rate as the
//! server's stream. The numbered test pattern (with the same grain) is written raw into
//! libx264 (ultrafast, zerolatency: no B-frames) -> RTP/UDP -> a second ffmpeg decoding to raw
//! pictures; each picture's number says when it was written, so its latency is measured from
//! that moment to the moment its decoded picture is read back. Either ffmpeg may run in a
//! network namespace (the `netlab` sides), so the baseline crosses the same impaired link.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xoq_video::pattern;
use xoq_wire::VideoMode;

use crate::proc::cpu_seconds;

/// One run of the pipeline.
pub struct RtpVideo {
    pub mode: VideoMode,
    pub bitrate_bps: u32,
    /// Grain on the pattern (`pattern::add_grain`).
    pub grain: u8,
    pub seconds: u64,
    /// Where the receiver listens (its namespace's address, or 127.0.0.1).
    pub receiver_ip: IpAddr,
    pub port: u16,
    pub sender_ns: Option<String>,
    pub receiver_ns: Option<String>,
}

/// What it measured (after a warm-up of two seconds).
pub struct RtpVideoResult {
    /// (seconds since the first measured picture, latency ms) for each picture shown.
    pub latencies: Vec<(f64, f64)>,
    /// Pictures written after the warm-up, and how many of them were shown.
    pub written: usize,
    pub cpu_sender_pct: f64,
    pub cpu_receiver_pct: f64,
}

/// Raw I420 pictures of `size` (`WxH`), for ffmpeg's input or output.
fn raw_video(size: &str) -> [&str; 6] {
    ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", size]
}

fn ffmpeg(ns: Option<&str>, args: &[&str], stdin: bool, stdout: bool) -> Child {
    let mut c = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "ffmpeg"]);
            c
        }
        None => Command::new("ffmpeg"),
    };
    c.args(["-hide_banner", "-loglevel", "error"]);
    if !stdin {
        c.arg("-nostdin");
    }
    c.args(args)
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(if stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg ({e}): apt-get install ffmpeg"))
}

impl RtpVideo {
    /// Runs the pipeline for its seconds (plus the warm-up).
    pub fn run(&self) -> RtpVideoResult {
        let m = self.mode;
        let (w, h) = (usize::from(m.width), usize::from(m.height));
        let dir = tempfile::tempdir().expect("tempdir");
        let sdp = dir.path().join("stream.sdp");
        let ip = self.receiver_ip;
        std::fs::write(
            &sdp,
            format!(
                "v=0\no=- 0 0 IN IP4 {ip}\ns=xoq-baseline\nc=IN IP4 {ip}\nt=0 0\n\
                 m=video {} RTP/AVP 96\na=rtpmap:96 H264/90000\na=fmtp:96 packetization-mode=1\n",
                self.port
            ),
        )
        .expect("sdp");
        let sdp_s = sdp.display().to_string();
        let size = format!("{w}x{h}");
        let mut recv = ffmpeg(
            self.receiver_ns.as_deref(),
            &[
                "-protocol_whitelist",
                "file,udp,rtp",
                "-fflags",
                "nobuffer",
                "-flags",
                "low_delay",
                "-probesize",
                "32",
                "-analyzeduration",
                "0",
                "-i",
                &sdp_s,
            ]
            .iter()
            .chain(&raw_video(&size))
            .chain(&["pipe:1"])
            .copied()
            .collect::<Vec<_>>(),
            false,
            true,
        );
        std::thread::sleep(Duration::from_millis(500));
        let fps = m.fps.to_string();
        let rate = self.bitrate_bps.to_string();
        // The same one-second GOP as the server; VBV of one frame's bits, as a live stream.
        let bufsize = (self.bitrate_bps / u32::from(m.fps.max(1))).to_string();
        let gop = m.fps.to_string();
        let url = format!("rtp://{ip}:{}?pkt_size=1200", self.port);
        let mut send = ffmpeg(
            self.sender_ns.as_deref(),
            &raw_video(&size)
                .iter()
                .chain(&[
                    "-r",
                    &fps,
                    "-i",
                    "pipe:0",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-tune",
                    "zerolatency",
                    "-bf",
                    "0",
                    "-g",
                    &gop,
                    "-b:v",
                    &rate,
                    "-maxrate",
                    &rate,
                    "-bufsize",
                    &bufsize,
                    "-f",
                    "rtp",
                    &url,
                ])
                .copied()
                .collect::<Vec<_>>(),
            true,
            false,
        );
        let (sp, rp) = (send.id(), recv.id());
        let mut out = recv.stdout.take().expect("receiver stdout");
        let mut inp = send.stdin.take().expect("sender stdin");
        let warmup = 2 * usize::from(m.fps);
        let total = self.seconds as usize * usize::from(m.fps) + warmup;
        let period = Duration::from_secs(1) / u32::from(m.fps.max(1));
        let start = Instant::now();
        let written: Arc<Mutex<Vec<Instant>>> = Default::default();
        let w2 = written.clone();
        let grain = self.grain;
        let writer = std::thread::spawn(move || {
            for n in 0..total {
                let mut pic = pattern::render(w, h, n as u32);
                pattern::add_grain(&mut pic, n as u32, grain);
                let at = start + period * n as u32;
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                xoq_link::sync::lock(&w2).push(Instant::now());
                // Each picture carries its number n (mod 65536): the reader matches by it.
                if inp.write_all(&pic.data).is_err() {
                    return;
                }
            }
        });
        // The reader stops at the last picture, or when nothing came for 3 s after the end.
        let reader = std::thread::spawn(move || {
            let mut lat = Vec::new();
            let mut buf = vec![0u8; w * h * 3 / 2];
            let mut t_first = None;
            let mut cpu0 = (0.0, 0.0);
            let mut last_n: Option<u16> = None;
            while out.read_exact(&mut buf).is_ok() {
                let now = Instant::now();
                let Some(n) = pattern::read(&buf[..w * h], w, h) else {
                    continue;
                };
                // A picture ffmpeg repeated, or a misread: only count each new number once.
                if last_n.is_some_and(|l| n <= l) {
                    continue;
                }
                last_n = Some(n);
                let sent = xoq_link::sync::lock(&written).get(usize::from(n)).copied();
                if usize::from(n) >= warmup {
                    let first = *t_first.get_or_insert_with(|| {
                        cpu0 = (cpu_seconds(sp), cpu_seconds(rp));
                        now
                    });
                    if let Some(t) = sent {
                        lat.push((
                            now.duration_since(first).as_secs_f64(),
                            now.duration_since(t).as_secs_f64() * 1000.0,
                        ));
                    }
                }
                if usize::from(n) + 1 >= total {
                    break;
                }
            }
            let span = t_first.map_or(1.0, |t: Instant| t.elapsed().as_secs_f64().max(0.001));
            let cpu = (
                (cpu_seconds(sp) - cpu0.0) / span * 100.0,
                (cpu_seconds(rp) - cpu0.1) / span * 100.0,
            );
            (lat, cpu)
        });
        let _ = writer.join();
        // Pictures still on the way get 3 s; then the receiver is stopped.
        let until = Instant::now() + Duration::from_secs(3);
        while !reader.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = send.kill();
        let _ = recv.kill();
        let _ = send.wait();
        let _ = recv.wait();
        let (latencies, (cpu_sender_pct, cpu_receiver_pct)) = reader
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        RtpVideoResult {
            latencies,
            written: total - warmup,
            cpu_sender_pct,
            cpu_receiver_pct,
        }
    }
}
