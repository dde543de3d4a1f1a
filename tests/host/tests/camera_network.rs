//! The remote camera on real networks' terms: server and mounter in separate network
//! namespaces joined by a seeded impaired link (`netlab`), the simulated camera with grain (a
//! real camera's noise, so frames span many packets and losses hit them), the mounter's
//! decoder writing to its file sink.
//! - at `wan` (1 % loss each way), a frame that lost a packet is retransmitted and put back in
//!   place: no picture from a broken reference chain is ever shown, and the picture does not
//!   freeze until the next keyframe at each loss (most frames are shown);
//! - at `lte` (its uplink 10 Mbit/s, 2 % bursty loss), a camera allowed more than the link
//!   carries is brought down by the congestion feedback (the server's encoder target falls
//!   below its ceiling) and keeps showing most frames instead of queueing them;
//! - a new stream starts at the rate control's start rate, not at the camera's ceiling (a new
//!   link is unknown);
//! - a direct stream carries a keyframe only when its client needs one (periodic keyframes
//!   were the slowest frames at `wan`).
//!
//! Latency figures belong to `net_bench --kind camera` (docs/BENCHMARKS.md).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use xoq_impair::Profile;
use xoq_tests_host::camera_lab::{figure, frames_status, sender_summary, serve_sim_camera};
use xoq_tests_host::netlab::NetLab;
use xoq_tests_host::y4m::{check_pictures, wait_frames};
use xoq_tests_host::{Env, Mount, Server};
use xoq_wire::VideoMode;

const W: usize = 640;
const H: usize = 480;
const GRAIN: u8 = 8;
/// The mode of the labs that do not need another.
const MODE: VideoMode = VideoMode {
    width: W as u16,
    height: H as u16,
    fps: 30,
};

struct Lab {
    env: Env,
    server: Server,
    mount: Mount,
    dir: tempfile::TempDir,
    _lab: NetLab,
}

/// The camera served at `profile` with `bitrate_kbps` as its ceiling, mounted into a file.
fn camera_lab(profile: &str, seed: u64, bitrate_kbps: u32) -> Lab {
    lab_with(profile, seed, MODE, GRAIN, bitrate_kbps, None)
}

/// The camera served at `profile` in `mode` with `grain` and a ceiling of `bitrate_kbps`,
/// mounted into `sink` (a `--camera-sink` value), or into a y4m file in the lab's directory.
fn lab_with(
    profile: &str,
    seed: u64,
    mode: VideoMode,
    grain: u8,
    bitrate_kbps: u32,
    sink: Option<&str>,
) -> Lab {
    let lab = NetLab::new(Profile::named(profile).expect("profile"), seed);
    let mut env = Env::new();
    lab.place(&mut env, "laptop");
    env.authorize("laptop", &[]);
    let server = serve_sim_camera(&env, &lab, mode, grain, bitrate_kbps);
    let dir = tempfile::tempdir().expect("tempdir");
    let y4m = format!("y4m:{}", dir.path().display());
    let sink = sink.unwrap_or(&y4m);
    let mount = Mount::start(&env, "laptop", &server.ticket, 1, &["--camera-sink", sink]);
    Lab {
        env,
        server,
        mount,
        dir,
        _lab: lab,
    }
}

/// The mounter's frame counters once `counter` reached `n` (at most `within`).
fn frames_once(l: &Lab, counter: &str, n: u64, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let f = frames_status(&l.env, "laptop");
        if f[counter].as_u64().unwrap_or(0) >= n {
            return f;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {n} frames {counter} in {within:?}: {f}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Records for `secs` seconds after the first picture; returns the pictures written then.
fn record(l: &Lab, secs: u64) -> Vec<Vec<u8>> {
    let path = l.dir.path().join("cam0.y4m");
    let first = wait_frames(&path, 1, Duration::from_secs(60)).frames.len();
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
    }
    let y = wait_frames(&path, first, Duration::from_secs(5));
    y.frames[first..].to_vec()
}

#[test]
fn at_wan_losses_are_put_back_in_place_and_never_show_a_broken_picture() {
    let l = camera_lab("wan", 11, 3000);
    let secs = 12;
    let pictures = record(&l, secs);
    let f = frames_status(&l.env, "laptop");
    println!("frames at wan: {f}");
    // A picture from a broken chain would fail here (wrong number or a low PSNR).
    let c = check_pictures(&pictures, W, H, GRAIN, 25.0);
    println!(
        "{} pictures, {} distinct, {} repeated, worst PSNR {:.1} dB",
        pictures.len(),
        c.distinct,
        c.repeats,
        c.worst_psnr
    );
    assert!(
        f["reordered"].as_u64() >= Some(1),
        "no frame was put back in place: were packets lost at all? {f}"
    );
    // Frames held for a lost packet's retransmission, not given up: at 1 % loss, giving up a
    // frame costs the picture until the next keyframe (up to a second) each time.
    let expected = secs as usize * 30;
    assert!(
        c.distinct * 10 >= expected * 7,
        "only {} of about {expected} frames shown: {f}",
        c.distinct
    );
}

#[test]
fn at_lte_the_stream_comes_down_to_what_the_link_carries() {
    let mut l = camera_lab("lte", 12, 12_000);
    let secs = 20;
    let pictures = record(&l, secs);
    let f = frames_status(&l.env, "laptop");
    println!("frames at lte: {f}");
    let c = check_pictures(&pictures, W, H, GRAIN, 25.0);
    l.mount.proc.signal(Signal::SIGTERM);
    let _ = l.mount.proc.wait_exit(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let log = l.server.proc.stderr();
        if let Some(line) = sender_summary(&log) {
            break line.to_string();
        }
        assert!(Instant::now() < deadline, "no frame sender summary: {log}");
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("{line}");
    let figure = |key: &str| figure(&line, key).unwrap_or_else(|| panic!("no {key}: {line}"));
    // Feedback from the frames' delivery times (a queue) or from the congestion window
    // (usually first: a window cut lowers the rate before frames queue).
    assert!(
        figure("rate_decreases") + figure("window_cuts") >= 1,
        "no congestion feedback: {line}"
    );
    assert!(
        figure("rate_bps") < 10_000_000,
        "the encoder still aims above the 10 Mbit/s link: {line}"
    );
    // Instead of a growing queue (or a camera paused most of the time for a link it
    // overruns), most frames are shown.
    let expected = secs as usize * 30;
    assert!(
        c.distinct * 2 >= expected,
        "only {} of about {expected} frames shown: {f}",
        c.distinct
    );
}

#[test]
fn a_new_stream_starts_at_the_start_rate_not_at_the_ceiling() {
    // 1280x720 with grain 12: the encoder uses all of a 16 Mbit/s ceiling when allowed (about
    // 65 kB a frame at 30 fps; docs/BENCHMARKS.md, camera at `lan`).
    let mode = VideoMode {
        width: 1280,
        height: 720,
        fps: 30,
    };
    let l = lab_with("lan", 13, mode, 12, 16_000, Some("null"));
    // The first 45 frames (a second and a half at full rate; fewer a second on a busy machine,
    // which does not change what the encoder allows each frame).
    let f = frames_once(&l, "written", 45, Duration::from_secs(60));
    let (bytes, frames) = (f["rx_bytes"].as_f64(), f["written"].as_f64());
    let per_frame = bytes.unwrap_or(0.0) / frames.unwrap_or(1.0);
    println!("first frames: {f}; {per_frame:.0} bytes a frame");
    // At the 2 Mbit/s start rate (rising by a quarter each half second while no queue shows) a
    // frame is 8-13 kB, and the first keyframe, made with a quality floor, about 250 kB: 15 kB
    // a frame on average; at the ceiling, 65 kB.
    assert!(
        per_frame < 30_000.0,
        "{per_frame:.0} bytes a frame: the stream started above its start rate: {f}\n{}",
        l.server.proc.stderr()
    );
}

#[test]
fn a_direct_stream_carries_keyframes_only_when_its_client_needs_one() {
    let l = lab_with("lan", 14, MODE, GRAIN, 4_000, Some("null"));
    // 150 frames: five seconds at full rate, which carried five keyframes when the encoder
    // made one a second.
    let f = frames_once(&l, "received", 150, Duration::from_secs(90));
    println!("frames: {f}");
    let n = |k: &str| f[k].as_u64().unwrap_or(0);
    // The first, which the client asked for by joining, and one more for each frame it could
    // not use (on a busy machine the decoder may fall behind and drop some).
    let asked = 1 + n("dropped") + n("gaps") + n("decode_errors");
    assert!(n("keyframes") >= 1, "no keyframe: {f}");
    assert!(
        n("keyframes") <= asked,
        "{} keyframes in {} frames, {asked} asked for: {f}",
        n("keyframes"),
        n("received")
    );
}

#[test]
fn each_frame_is_followed_by_a_probe_that_the_client_takes() {
    let l = lab_with("lan", 15, MODE, GRAIN, 4_000, Some("null"));
    let f = frames_once(&l, "received", 90, Duration::from_secs(90));
    // The mounter publishes the connection's probe count once a second: wait for it to
    // cover most of the frames (a datagram may be dropped, a frame's probe may be in flight).
    let deadline = Instant::now() + Duration::from_secs(30);
    let probes = loop {
        let probes = l.env.mount_status("laptop")["probes"].as_u64().unwrap_or(0);
        if probes * 10 >= 90 * 8 || Instant::now() > deadline {
            break probes;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        probes * 10 >= 90 * 8,
        "{probes} probes counted for {} frames (the link stayed up: {f})",
        f["received"]
    );
}
