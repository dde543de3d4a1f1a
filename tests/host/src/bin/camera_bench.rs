//! Camera benchmark: per-frame latency from capture to the picture handed to the sink, and
//! CPU per side, for the real server (simulated camera, H.264) and mounter (decoding into the
//! null sink) on loopback; in the same run, the baseline of an ffmpeg pipeline at the same
//! size, rate, GOP and bit rate: libx264 (ultrafast, zerolatency: no B-frames) -> RTP/UDP on
//! 127.0.0.1 -> ffmpeg decoding to raw pictures, timed from the moment each raw picture is
//! written to the encoder to the moment its decoded picture is read back.
//!
//! Run (release): `cargo build --release --workspace --bins && target/release/camera_bench`
//! Options: `--seconds N` per mode (default 10), `--modes 640x480@30,1280x720@30,...`.

use std::time::Duration;

use xoq_tests_host::proc::{cpu_seconds, free_udp_port};
use xoq_tests_host::rtp_video::RtpVideo;
use xoq_tests_host::stats::percentile;
use xoq_tests_host::{Env, Mount, Server};
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

fn ffmpeg(m: VideoMode, secs: u64) -> Row {
    let r = RtpVideo {
        mode: m,
        bitrate_bps: bitrate(m),
        grain: 0,
        seconds: secs,
        receiver_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        port: free_udp_port(),
        sender_ns: None,
        receiver_ns: None,
    }
    .run();
    let mut lat: Vec<f64> = r.latencies.iter().map(|(_, l)| *l).collect();
    Row {
        what: format!("ffmpeg x264/RTP {m}"),
        frames: lat.len(),
        p50_ms: percentile(&mut lat, 0.5),
        p99_ms: percentile(&mut lat, 0.99),
        cpu_send: r.cpu_sender_pct,
        cpu_recv: r.cpu_receiver_pct,
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
