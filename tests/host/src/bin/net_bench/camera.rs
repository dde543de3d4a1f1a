//! The camera over an impaired link. The server serves the simulated camera (the numbered
//! pattern with grain, so the stream needs the megabits a real camera's does) with a bit-rate
//! ceiling; the mounter decodes into the null sink and reports each frame's capture-to-sink
//! latency. Sampled every second: the last second's latency and the bytes received, so a
//! queue building up shows as latency growing from the first ten seconds to the last ten.
//! The baseline is an ffmpeg x264 -> RTP -> ffmpeg pipeline (`rtp_video`) at the same size,
//! rate, GOP, grain and bit rate, sender in the server's namespace and receiver in the
//! mounter's, through the same link.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use xoq_impair::Profile;
use xoq_tests_host::camera_lab::{figure, frames_status, sender_summary, serve_sim_camera};
use xoq_tests_host::netlab::NetLab;
use xoq_tests_host::rtp_video::RtpVideo;
use xoq_tests_host::stats::percentile;
use xoq_tests_host::{Env, Mount};
use xoq_wire::VideoMode;

use crate::{ms, Args};

/// Seconds before measuring (the first keyframe, the rate control's first judgement).
const WARMUP_S: u64 = 2;

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

/// `key=N` from the server's `frame sender stopped` summary.
fn sender_figure(log: &str, key: &str) -> Option<u64> {
    sender_summary(log).and_then(|l| figure(l, key))
}

fn median(mut v: Vec<f64>) -> f64 {
    percentile(&mut v, 0.5)
}

/// The median of `(t, x)` samples with `from <= t < to`.
fn median_between(v: &[(f64, f64)], from: f64, to: f64) -> f64 {
    median(
        v.iter()
            .filter(|(t, _)| (from..to).contains(t))
            .map(|(_, x)| *x)
            .collect(),
    )
}

pub fn run(profile: &Profile, a: &Args) -> Value {
    let mode: VideoMode = a.camera_mode.parse().unwrap_or_else(|e| panic!("{e}"));
    let secs = a.camera_seconds;
    let lab = NetLab::new(profile.clone(), a.seed);
    let mut env = Env::new();
    if let Ok(filter) = std::env::var("XOQ_LOG") {
        env.set_var("XOQ_LOG", filter);
    }
    lab.place(&mut env, "laptop");
    env.authorize("laptop", &[]);
    let mut server = serve_sim_camera(&env, &lab, mode, a.camera_grain, a.camera_kbps);
    let mut mount = Mount::start(
        &env,
        "laptop",
        &server.ticket,
        1,
        &["--camera-sink", "null"],
    );
    std::thread::sleep(Duration::from_secs(WARMUP_S));
    let first = frames_status(&env, "laptop");
    let start = Instant::now();
    let mut series = Vec::new(); // (t, recent p50 ms, recent p99 ms, rx bytes)
    for s in 1..=secs {
        std::thread::sleep(
            (start + Duration::from_secs(s)).saturating_duration_since(Instant::now()),
        );
        let f = frames_status(&env, "laptop");
        eprintln!(
            "camera {} t={s}s: last second p50 {:.1} ms p99 {:.1} ms, received {} kB",
            profile.name,
            num(&f, "latency_recent_p50_us") / 1000.0,
            num(&f, "latency_recent_p99_us") / 1000.0,
            (num(&f, "rx_bytes") / 1000.0).round()
        );
        series.push((
            start.elapsed().as_secs_f64(),
            num(&f, "latency_recent_p50_us") / 1000.0,
            num(&f, "latency_recent_p99_us") / 1000.0,
            num(&f, "rx_bytes"),
        ));
    }
    let last = frames_status(&env, "laptop");
    let elapsed = start.elapsed().as_secs_f64();
    let _ = std::fs::write(
        std::env::temp_dir().join("net_bench_camera_mount.log"),
        mount.proc.stderr(),
    );
    mount.proc.signal(Signal::SIGTERM);
    let _ = mount.proc.wait_exit(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.proc.stderr().contains("frame sender stopped") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = server.proc.stderr();
    // Kept for a look at the rate control's decisions (`XOQ_LOG=info,xoq_server::camera=debug`).
    let _ = std::fs::write(
        std::env::temp_dir().join("net_bench_camera_server.log"),
        &log,
    );
    server.proc.signal(Signal::SIGTERM);
    let _ = server.proc.wait_exit(Duration::from_secs(10));
    let delta = |k: &str| num(&last, k) - num(&first, k);
    let produced = elapsed * f64::from(mode.fps);
    let shown = delta("written") - delta("repeated");
    let p50s: Vec<(f64, f64)> = series.iter().map(|s| (s.0, s.1)).collect();
    let end = series.last().map_or(0.0, |s| s.0);
    let kbps = (delta("rx_bytes") * 8.0 / elapsed / 1000.0).round();

    let baseline = RtpVideo {
        mode,
        bitrate_bps: a.camera_kbps * 1000,
        grain: a.camera_grain,
        seconds: secs,
        receiver_ip: lab.client_ip(),
        port: 5004,
        sender_ns: Some(lab.server_ns()),
        receiver_ns: Some(lab.client_ns()),
    }
    .run();
    let lat: Vec<f64> = baseline.latencies.iter().map(|(_, l)| *l).collect();
    let b_end = baseline.latencies.last().map_or(0.0, |l| l.0);
    let mut b_lat = lat.clone();
    json!({
        "profile": profile.name,
        "kind": "camera",
        "mode": mode.to_string(),
        "grain": a.camera_grain,
        "ceiling_kbps": a.camera_kbps,
        "p50_ms": ms(num(&last, "latency_p50_us")),
        "p99_ms": ms(num(&last, "latency_p99_us")),
        "first_10s_p50_ms": ms(median_between(&p50s, 0.0, 10.0) * 1000.0),
        "last_10s_p50_ms": ms(median_between(&p50s, end - 10.0, end + 1.0) * 1000.0),
        "worst_second_p99_ms": ms(series.iter().map(|s| s.2).fold(0.0, f64::max) * 1000.0),
        "received_kbps": kbps,
        "encoder_kbps_at_end": sender_figure(&log, "rate_bps").map(|b| b / 1000),
        "rate_decreases": sender_figure(&log, "rate_decreases"),
        "window_cuts": sender_figure(&log, "window_cuts"),
        "held_back": sender_figure(&log, "held_back"),
        "backlogs": sender_figure(&log, "backlogs"),
        "abandoned": sender_figure(&log, "abandoned"),
        "shown_pct": (shown / produced * 1000.0).round() / 10.0,
        "lost": delta("gaps") as u64 + delta("dropped") as u64,
        "gaps": delta("gaps") as u64,
        "dropped": delta("dropped") as u64,
        "too_late": delta("too_late") as u64,
        "decode_errors": delta("decode_errors") as u64,
        "reordered": delta("reordered") as u64,
        "duplicated": 0,
        "baseline": {
            "path": "ffmpeg x264 -> RTP/UDP -> ffmpeg",
            "p50_ms": ms(percentile(&mut b_lat, 0.5) * 1000.0),
            "p99_ms": ms(percentile(&mut b_lat, 0.99) * 1000.0),
            "first_10s_p50_ms": ms(median_between(&baseline.latencies, 0.0, 10.0) * 1000.0),
            "last_10s_p50_ms": ms(median_between(&baseline.latencies, b_end - 10.0, b_end + 1.0) * 1000.0),
            "shown_pct": (lat.len() as f64 / baseline.written as f64 * 1000.0).round() / 10.0,
        },
    })
}
