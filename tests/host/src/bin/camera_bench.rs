//! Camera benchmark: per-frame latency from capture to the picture handed to the sink, and
//! CPU per side, for the real server (simulated camera, H.264) and mounter (decoding into the
//! null sink) on loopback; in the same run, the baseline of an ffmpeg pipeline at the same
//! size, rate, GOP and bit rate: libx264 (ultrafast, zerolatency: no B-frames) -> RTP/UDP on
//! 127.0.0.1 -> ffmpeg decoding to raw pictures, timed from the moment each raw picture is
//! written to the encoder to the moment its decoded picture is read back.
//!
//! Run (release): `cargo build --release --workspace --bins && target/release/camera_bench`
//! Options: `--seconds N` per mode (default 10), `--modes 640x480@30,1280x720@30,...`.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xoq_tests_host::proc::{cpu_seconds, free_udp_port};
use xoq_tests_host::stats::percentile;
use xoq_tests_host::{Env, Mount, Server};
use xoq_video::pattern;
use xoq_wire::VideoMode;

struct Row {
    what: String,
    frames: usize,
    p50_ms: f64,
    p99_ms: f64,
    cpu_send: f64,
    cpu_recv: f64,
}

fn bitrate(m: VideoMode) -> u32 {
    // The same rule as the server's encoder: 0.1 bit per pixel per frame.
    (f64::from(m.width) * f64::from(m.height) * f64::from(m.fps) * 0.1) as u32
}

fn xoq(m: VideoMode, secs: u64) -> Row {
    let env = Env::new();
    env.authorize("laptop", &[]);
    let server = Server::start(
        &env,
        free_udp_port(),
        &["--sim-camera".into(), "cam0".into()],
    );
    let mode = m.to_string();
    let mount = Mount::start(
        &env,
        "laptop",
        &server.ticket,
        1,
        &["--camera-sink", "null", "--camera-mode", &mode],
    );
    // Let the mode switch and the first keyframe settle.
    std::thread::sleep(Duration::from_secs(2));
    let (sp, mp) = (server.proc.child.id(), mount.proc.child.id());
    let (s0, m0) = (cpu_seconds(sp), cpu_seconds(mp));
    let status0 = status(&env);
    std::thread::sleep(Duration::from_secs(secs));
    let (s1, m1) = (cpu_seconds(sp), cpu_seconds(mp));
    let st = status(&env);
    let frames = st["written"].as_u64().unwrap_or(0) - status0["written"].as_u64().unwrap_or(0);
    let ms = |k: &str| st[k].as_u64().unwrap_or(0) as f64 / 1000.0;
    println!(
        "xoq {m}: {st} (repeated pictures are the stall rule at work; dropped/decode errors are losses)"
    );
    Row {
        what: format!("xoq {m}"),
        frames: frames as usize,
        p50_ms: ms("latency_p50_us"),
        p99_ms: ms("latency_p99_us"),
        cpu_send: (s1 - s0) / secs as f64 * 100.0,
        cpu_recv: (m1 - m0) / secs as f64 * 100.0,
    }
}

/// The mounter's frame counters for cam0.
fn status(env: &Env) -> serde_json::Value {
    let out = env.run("xoq-mount", "laptop", &["status", "--json"]);
    let v: serde_json::Value =
        serde_json::from_str(out.lines().next().unwrap_or("{}")).unwrap_or_default();
    v["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "cam0"))
        .map(|d| d["detail"]["frames"].clone())
        .unwrap_or_default()
}

fn spawn(args: &[&str], stdin: bool, stdout: bool) -> Child {
    Command::new("ffmpeg")
        .args(
            ["-hide_banner", "-loglevel", "error", "-nostdin"]
                .iter()
                .filter(|a| !(stdin && **a == "-nostdin")),
        )
        .args(args)
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(if stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg ({e}): apt-get install ffmpeg"))
}

fn ffmpeg(m: VideoMode, secs: u64) -> Row {
    let (w, h) = (usize::from(m.width), usize::from(m.height));
    let port = free_udp_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let sdp = dir.path().join("stream.sdp");
    std::fs::write(
        &sdp,
        format!(
            "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=xoq-baseline\nc=IN IP4 127.0.0.1\nt=0 0\n\
             m=video {port} RTP/AVP 96\na=rtpmap:96 H264/90000\na=fmtp:96 packetization-mode=1\n"
        ),
    )
    .expect("sdp");
    let sdp_s = sdp.display().to_string();
    let size = format!("{w}x{h}");
    let mut recv = spawn(
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
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-s",
            &size,
            "pipe:1",
        ],
        false,
        true,
    );
    std::thread::sleep(Duration::from_millis(500));
    let fps = m.fps.to_string();
    let rate = bitrate(m).to_string();
    let gop = m.fps.to_string();
    let url = format!("rtp://127.0.0.1:{port}?pkt_size=1200");
    let mut send = spawn(
        &[
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-s",
            &size,
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
            "-f",
            "rtp",
            &url,
        ],
        true,
        false,
    );
    let (sp, rp) = (send.id(), recv.id());
    let mut out = recv.stdout.take().expect("receiver stdout");
    let mut inp = send.stdin.take().expect("sender stdin");
    let total = secs as usize * usize::from(m.fps) + 2 * usize::from(m.fps);
    let period = Duration::from_secs(1) / u32::from(m.fps);
    let start = Instant::now();
    let written: std::sync::Arc<std::sync::Mutex<Vec<Instant>>> = Default::default();
    let w2 = written.clone();
    let writer = std::thread::spawn(move || {
        for n in 0..total {
            let at = start + period * n as u32;
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            xoq_link::sync::lock(&w2).push(Instant::now());
            // Each picture carries its number n (mod 65536): the reader matches by it.
            let pic = pattern::render(w, h, n as u32).data;
            if inp.write_all(&pic).is_err() {
                return;
            }
        }
    });
    let mut lat = Vec::new();
    let mut buf = vec![0u8; w * h * 3 / 2];
    let warmup = 2 * usize::from(m.fps);
    let (mut s0, mut r0) = (0.0, 0.0);
    let mut t_first = None;
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
        if usize::from(n) == warmup {
            s0 = cpu_seconds(sp);
            r0 = cpu_seconds(rp);
            t_first = Some(now);
        }
        if usize::from(n) >= warmup {
            if let Some(t) = sent {
                lat.push(now.duration_since(t).as_secs_f64() * 1000.0);
            }
        }
        if usize::from(n) + 1 >= total {
            break;
        }
    }
    let span = t_first
        .map_or(secs as f64, |t| t.elapsed().as_secs_f64())
        .max(0.001);
    let (s1, r1) = (cpu_seconds(sp), cpu_seconds(rp));
    let _ = writer.join();
    let _ = send.kill();
    let _ = recv.kill();
    let _ = send.wait();
    let _ = recv.wait();
    Row {
        what: format!("ffmpeg x264/RTP {m}"),
        frames: lat.len(),
        p50_ms: percentile(&mut lat, 0.5),
        p99_ms: percentile(&mut lat, 0.99),
        cpu_send: (s1 - s0) / span * 100.0,
        cpu_recv: (r1 - r0) / span * 100.0,
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let mut secs = 10u64;
    let mut modes = "640x480@30,1280x720@30,1920x1080@30".to_string();
    for w in a.windows(2) {
        match w[0].as_str() {
            "--seconds" => secs = w[1].parse().expect("--seconds N"),
            "--modes" => modes = w[1].clone(),
            _ => {}
        }
    }
    let mut rows = Vec::new();
    for m in modes.split(',') {
        let m: VideoMode = m.parse().unwrap_or_else(|e| panic!("{e}"));
        rows.push(xoq(m, secs));
        rows.push(ffmpeg(m, secs));
    }
    println!("\n| pipeline | frames | latency p50 | latency p99 | CPU sender | CPU receiver |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.1} ms | {:.1} ms | {:.0} % | {:.0} % |",
            r.what, r.frames, r.p50_ms, r.p99_ms, r.cpu_send, r.cpu_recv
        );
    }
}
