//! `net_bench`: every device kind over an impaired network, beside a baseline through the same
//! impairment. The server and the mounter (or a protocol-level client) run in separate network
//! namespaces joined only by a seeded impaired link (`xoq_tests_host::netlab`), so the runs of
//! a profile lose the same packets.
//!
//!     target/release/net_bench [--profile NAME|all] [--kind serial|can|camera|audio|all]
//!                              [--seed N]
//!                              [--round-trips N] [--megabytes N] [--can-seconds N]
//!                              [--can-delivery ordered|latest]
//!                              [--camera-seconds N] [--camera-mode WxH@FPS]
//!                              [--camera-kbps N] [--camera-grain N] [--audio-clicks N]
//!
//! Prints one JSON line per kind and profile: `profile`, `kind`, `p50_ms`, `p99_ms`, `lost`,
//! `duplicated`, `reordered`, `stale_delivered` (CAN), `recovered_ms` (profiles with outages),
//! and `baseline` with the same figures for a socat TCP bridge (serial), a plain UDP
//! forwarder (CAN), an ffmpeg x264/RTP pipeline (camera) or PipeWire's RTP pair (audio, run by
//! `audio_bench`). Needs root (network namespaces), socat, ffmpeg, PipeWire and a release
//! build. `all` kinds are serial, CAN and audio; the camera runs when asked (`--kind camera`),
//! a minute a profile.

mod audio;
mod camera;
mod can;
mod serial;

use xoq_impair::profile::PROFILE_NAMES;
use xoq_impair::Profile;

/// What to run.
pub struct Args {
    pub profiles: Vec<String>,
    pub kinds: Vec<String>,
    pub seed: u64,
    pub round_trips: usize,
    pub megabytes: usize,
    pub can_seconds: u64,
    pub can_delivery: xoq_wire::Delivery,
    pub camera_seconds: u64,
    pub camera_mode: String,
    pub camera_kbps: u32,
    pub camera_grain: u8,
    pub audio_clicks: usize,
}

fn args() -> Args {
    let mut a = Args {
        profiles: PROFILE_NAMES.iter().map(|s| s.to_string()).collect(),
        kinds: vec!["serial".into(), "can".into(), "audio".into()],
        seed: 1,
        round_trips: 500,
        megabytes: 10,
        can_seconds: 20,
        can_delivery: xoq_wire::Delivery::Ordered,
        camera_seconds: 60,
        camera_mode: "1280x720@30".into(),
        camera_kbps: 16_000,
        camera_grain: 12,
        audio_clicks: 100,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut it = v.iter();
    while let Some(flag) = it.next() {
        let Some(value) = it.next() else {
            panic!("{flag} needs a value");
        };
        match flag.as_str() {
            "--profile" if value != "all" => a.profiles = vec![value.clone()],
            "--kind" if value != "all" => a.kinds = vec![value.clone()],
            "--profile" | "--kind" => {}
            "--seed" => a.seed = value.parse().expect("--seed N"),
            "--round-trips" => a.round_trips = value.parse().expect("--round-trips N"),
            "--megabytes" => a.megabytes = value.parse().expect("--megabytes N"),
            "--can-seconds" => a.can_seconds = value.parse().expect("--can-seconds N"),
            "--can-delivery" => a.can_delivery = value.parse().expect("--can-delivery"),
            "--camera-seconds" => a.camera_seconds = value.parse().expect("--camera-seconds N"),
            "--camera-mode" => a.camera_mode = value.clone(),
            "--camera-kbps" => a.camera_kbps = value.parse().expect("--camera-kbps N"),
            "--camera-grain" => a.camera_grain = value.parse().expect("--camera-grain N"),
            "--audio-clicks" => a.audio_clicks = value.parse().expect("--audio-clicks N"),
            other => panic!("unknown option {other}"),
        }
    }
    a
}

/// Milliseconds, rounded to 0.01.
pub fn ms(us: f64) -> f64 {
    (us / 10.0).round() / 100.0
}

fn main() {
    let a = args();
    for name in &a.profiles {
        let profile = Profile::named(name).unwrap_or_else(|| {
            panic!(
                "unknown profile {name}; one of {}",
                PROFILE_NAMES.join(", ")
            )
        });
        for kind in &a.kinds {
            let line = match kind.as_str() {
                "serial" => serial::run(&profile, &a),
                "can" => can::run(&profile, &a),
                "camera" => camera::run(&profile, &a),
                "audio" => audio::run(&profile, &a),
                other => panic!("unknown kind {other} (serial, can, camera, audio)"),
            };
            println!("{line}");
        }
    }
}
