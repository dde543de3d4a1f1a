//! Mouth-to-ear latency of remote audio, and a soak for underruns (docs/BENCHMARKS.md).
//!
//! In a private PipeWire session, with release binaries:
//! - microphone: the server's simulated microphone clicks at every 250 ms of the wall clock;
//!   this program records `xoq.testbot.mic0` with its own PipeWire stream and notes when each
//!   click is handed to it;
//! - speaker: this program plays a click at every 250 ms of the wall clock into
//!   `xoq.testbot.spk0`; the simulated speaker notes when it plays each;
//! - baseline, in the same run: PipeWire's own RTP pair on 127.0.0.1 (module-rtp-sink ->
//!   UDP -> module-rtp-source with a 20 ms buffer, like ours) between this program's playback
//!   and capture streams;
//! - soak: both directions run for `--soak SECONDS`; then the jitter buffers' counters.
//!   `--drift-ppm PPM` runs the simulated microphone's clock that much fast and the speaker's
//!   that much slow, so both jitter buffers correct drift throughout.
//!
//! - `--profile NAME` (lan, wifi, wan, lte, outage): the server and the mounter in separate
//!   network namespaces joined by that seeded impaired link (`xoq_tests_host::netlab`); the
//!   RTP baseline's sender and receiver run on the same two sides, so it crosses the same link.
//!   Without it, everything is on loopback.
//! - `--latency-max-ms MS`: most the adaptive jitter buffers rise to (both; default 200; equal
//!   to `--latency-ms` for fixed buffers). The RTP baseline's buffer is `--latency-ms`.
//! - `--load`: both cores kept busy by normal-priority work (`stress-ng --cpu 2`) for the whole
//!   run, baseline included, as on a busy laptop or robot.
//! - `--json`: after the table, one JSON line in `net_bench`'s format (`net_bench --kind audio`
//!   runs this program and passes that line on).
//!
//! Usage: audio_bench [--clicks N] [--soak SECONDS] [--latency-ms MS (both jitter buffers)]
//!                    [--latency-max-ms MS] [--packet-ms MS] [--drift-ppm PPM]
//!                    [--profile NAME] [--seed N] [--load] [--json]

use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xoq_impair::profile::PROFILE_NAMES;
use xoq_impair::Profile;
use xoq_tests_host::audio::{record_lines, status_of};
use xoq_tests_host::netlab::{NetLab, SERVER_PORT};
use xoq_tests_host::pipewire::PipeWire;
use xoq_tests_host::proc::{cpu_seconds, free_udp_port};
use xoq_tests_host::pwclient::{Callback, ClientStream, Direction};
use xoq_tests_host::stats::percentile;
use xoq_tests_host::{Env, Mount, Server};

const RATE: u32 = 48_000;
const EVERY_US: u64 = 250_000;
/// The benchmark's own streams run at PipeWire's usual small quantum.
const QUANTUM: u32 = 256;

/// Latencies (µs) of clicks heard, each against the 250 ms mark it was made on.
type Heard = Arc<Mutex<Vec<u64>>>;

/// A capture callback noting when each click arrives.
fn click_listener(heard: Heard) -> Callback {
    let mut last = 0u64;
    Box::new(move |samples, now| {
        if samples.iter().any(|s| *s > 0.5) && now > last + EVERY_US / 2 {
            last = now;
            xoq_link::sync::lock(&heard).push(now % EVERY_US);
        }
    })
}

/// A playback callback putting a click on each 250 ms mark.
fn click_maker() -> Callback {
    Box::new(move |out, now| {
        out.fill(0.0);
        let end = now + out.len() as u64 * 1_000_000 / u64::from(RATE);
        let mark = now.div_ceil(EVERY_US) * EVERY_US;
        if mark < end {
            let i = ((mark - now) * u64::from(RATE) / 1_000_000) as usize;
            if let Some(s) = out.get_mut(i) {
                *s = 0.9;
            }
        }
    })
}

fn wait_for(what: &str, heard: &Heard, n: usize) {
    let deadline = Instant::now() + Duration::from_micros(EVERY_US * n as u64 * 2 + 10_000_000);
    while xoq_link::sync::lock(heard).len() < n {
        assert!(
            Instant::now() < deadline,
            "{what}: fewer than {n} clicks within the time"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn row(what: &str, v: &mut [u64]) -> String {
    let ms = |x: u64| x as f64 / 1000.0;
    format!(
        "| {what} | {} | {:.1} | {:.1} | {:.1} |",
        v.len(),
        ms(percentile(v, 0.5)),
        ms(percentile(v, 0.99)),
        ms(*v.iter().max().unwrap_or(&0)),
    )
}

/// `pw-cli` holding `module` loaded (in its own process), in network namespace `ns` if given.
fn pw_cli_module(pw: &PipeWire, ns: Option<&str>, module: &str, args: &str) -> Child {
    let mut c = match ns {
        Some(ns) => {
            let mut c = pw.command("ip");
            c.args(["netns", "exec", ns, "pw-cli"]);
            c
        }
        None => pw.command("pw-cli"),
    };
    c.args(["-m", "load-module", module, args])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pw-cli load-module")
}

/// "mean (min to max)" of `v`.
fn spread(v: &[f64]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{mean:.1} ({min:.1} to {max:.1})")
}

/// The value after `name` on the command line, or `default`; a value that does not parse stops
/// the benchmark with a message.
fn opt<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T
where
    T::Err: std::fmt::Display,
{
    match args
        .iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
    {
        Some(v) => v
            .parse()
            .unwrap_or_else(|e| panic!("{name} {v}: {e} (see the usage at the top)")),
        None => default,
    }
}

/// A child process, leader of its own process group, whose group is stopped when this is
/// dropped (stress-ng's workers with it).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let clicks: usize = opt(&args, "--clicks", 100);
    let soak: u64 = opt(&args, "--soak", 0);
    let latency_ms: u64 = opt(&args, "--latency-ms", 20);
    let packet_ms: u64 = opt(&args, "--packet-ms", 10);
    let drift_ppm: f64 = opt(&args, "--drift-ppm", 0.0);
    let latency_max_ms: u64 = opt(&args, "--latency-max-ms", 200);
    let profile: String = opt(&args, "--profile", String::new());
    let seed: u64 = opt(&args, "--seed", 1);
    let json = args.iter().any(|a| a == "--json");
    let _load = args.iter().any(|a| a == "--load").then(|| {
        let child = std::process::Command::new("stress-ng")
            .args(["--cpu", "2", "--quiet", "--timeout", "0"])
            .process_group(0)
            .spawn()
            .expect("stress-ng (scripts/deps.sh installs it)");
        println!("load: stress-ng --cpu 2 on both cores");
        KillOnDrop(child)
    });

    let pw = PipeWire::start();
    for (k, v) in pw.vars() {
        // For this process's own PipeWire streams (no other thread runs yet).
        std::env::set_var(k, v);
    }
    let mut env = Env::new();
    for (k, v) in pw.vars() {
        env.set_var(k, v);
    }
    // Declared before the daemons, so they stop first.
    let lab = (!profile.is_empty()).then(|| {
        let p = Profile::named(&profile).unwrap_or_else(|| {
            panic!(
                "unknown profile {profile}; one of {}",
                PROFILE_NAMES.join(", ")
            )
        });
        NetLab::new(p, seed)
    });
    if let Some(lab) = &lab {
        lab.place(&mut env, "laptop");
        println!("link: {profile} (seed {seed}), server and mounter in their own namespaces");
    }
    env.authorize("laptop", &[]);
    let record = env.path("spk0.rec");
    let cfg = env.path("server.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[audio]]\nname = \"mic0\"\ndirection = \"capture\"\nsimulated = true\nsignal = \"clicks\"\npacket_ms = {packet_ms}\n\
             drift_ppm = {drift_ppm}\n\
             [[audio]]\nname = \"spk0\"\ndirection = \"playback\"\nsimulated = true\nrecord = \"{}\"\n\
             latency_ms = {latency_ms}\nlatency_max_ms = {latency_max_ms}\npacket_ms = {packet_ms}\ndrift_ppm = {}\n",
            record.display(),
            -drift_ppm
        ),
    )
    .expect("config");
    let config = ["--config".into(), cfg.display().to_string()];
    let server = match &lab {
        Some(lab) => Server::start_on(&env, lab.server_ip(), SERVER_PORT, &config),
        None => Server::start(&env, free_udp_port(), &config),
    };
    let (latency, latency_max) = (latency_ms.to_string(), latency_max_ms.to_string());
    let mount = Mount::start(
        &env,
        "laptop",
        &server.ticket,
        2,
        &[
            "--audio-latency-ms",
            &latency,
            "--audio-latency-max-ms",
            &latency_max,
        ],
    );
    std::thread::sleep(Duration::from_secs(1));
    let (spid, mpid) = (server.proc.child.id(), mount.proc.child.id());
    let (s0, m0, t0) = (cpu_seconds(spid), cpu_seconds(mpid), Instant::now());

    // XoQ, both directions at once.
    let mic_heard: Heard = Arc::default();
    let capture = ClientStream::start(
        "xoq.testbot.mic0",
        Direction::Capture,
        RATE,
        QUANTUM,
        false,
        click_listener(mic_heard.clone()),
    );
    let playback = ClientStream::start(
        "xoq.testbot.spk0",
        Direction::Playback,
        RATE,
        QUANTUM,
        false,
        click_maker(),
    );
    wait_for("microphone", &mic_heard, clicks + 4);
    let spk_heard = || -> Vec<u64> {
        record_lines(&record)
            .iter()
            .filter_map(|l| l.get("at_us").map(|t| *t as u64 % EVERY_US))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while spk_heard().len() < clicks + 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (
        (cpu_seconds(spid) - s0) / secs * 100.0,
        (cpu_seconds(mpid) - m0) / secs * 100.0,
    );
    if soak > 0 {
        println!("soak: both directions for {soak} s ...");
        // The microphone's buffer every 10 s (the mounter's status); the speaker's every second
        // (its record).
        let (mut mic_ppm, mut mic_ms) = (Vec::new(), Vec::new());
        let end = Instant::now() + Duration::from_secs(soak);
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            std::thread::sleep(left.min(Duration::from_secs(10)));
            let j = &status_of(&env, "mic0")["detail"]["jitter"];
            mic_ppm.extend(j["drift_ppm"].as_f64());
            mic_ms.extend(j["depth_ms"].as_f64());
        }
        let lines = record_lines(&record);
        let spk: Vec<_> = lines
            .iter()
            .filter(|l| l.contains_key("ratio_ppm"))
            .collect();
        let spk = &spk[spk.len().saturating_sub(soak as usize)..];
        let spk_ppm: Vec<f64> = spk.iter().map(|l| l["ratio_ppm"]).collect();
        let spk_ms: Vec<f64> = spk.iter().map(|l| l["depth_ms"]).collect();
        println!(
            "during the soak: mic0 correction {} ppm, delay {} ms (every 10 s); \
             spk0 correction {} ppm, delay {} ms (every second)",
            spread(&mic_ppm),
            spread(&mic_ms),
            spread(&spk_ppm),
            spread(&spk_ms)
        );
    }
    let mic_status = status_of(&env, "mic0")["detail"]["jitter"].clone();
    let spk_last = record_lines(&record)
        .into_iter()
        .rfind(|l| l.contains_key("underruns"))
        .unwrap_or_default();
    drop((capture, playback));
    // The first clicks fall while the buffers start: dropped.
    let mut mic: Vec<u64> = xoq_link::sync::lock(&mic_heard)[4..].to_vec();
    let mut spk: Vec<u64> = spk_heard().into_iter().skip(4).take(clicks).collect();
    mic.truncate(clicks);

    // Baseline: PipeWire's RTP pair, between our own playback and capture streams.
    // Across the lab's link: the sender on the server's side, the receiver (and the SAP
    // announcements it listens for, unicast) on the mounter's.
    pw.null_sink("rtp-tap");
    let (from, to) = match &lab {
        Some(lab) => (lab.server_ip().to_string(), lab.client_ip().to_string()),
        None => ("127.0.0.1".to_string(), "127.0.0.1".to_string()),
    };
    let (sender_ns, receiver_ns) = match &lab {
        Some(lab) => (Some(lab.server_ns()), Some(lab.client_ns())),
        None => (None, None),
    };
    let rtp_sink = pw_cli_module(
        &pw,
        sender_ns.as_deref(),
        "libpipewire-module-rtp-sink",
        &format!(
            "{{ source.ip={from} destination.ip={to} sap.ip={to} sap.port=9875 \
             sess.name=xoq-rtp-bench sess.min-ptime=2 sess.max-ptime=20 audio.format=S16BE \
             audio.rate=48000 audio.channels=1 audio.position=[MONO] \
             stream.props={{ node.name=rtp-sink media.class=Audio/Sink }} }}"
        ),
    );
    let rtp_source = pw_cli_module(
        &pw,
        receiver_ns.as_deref(),
        "libpipewire-module-rtp-source",
        &format!(
            "{{ sap.ip={to} sap.port=9875 sess.latency.msec={latency_ms} \
             stream.props={{ target.object=rtp-tap }} }}"
        ),
    );
    std::thread::sleep(Duration::from_secs(2));
    let rtp_heard: Heard = Arc::default();
    let rtp_capture = ClientStream::start(
        "rtp-tap",
        Direction::Capture,
        RATE,
        QUANTUM,
        true,
        click_listener(rtp_heard.clone()),
    );
    let rtp_play = ClientStream::start(
        "rtp-sink",
        Direction::Playback,
        RATE,
        QUANTUM,
        false,
        click_maker(),
    );
    wait_for("RTP", &rtp_heard, clicks + 4);
    drop((rtp_capture, rtp_play));
    let mut rtp: Vec<u64> = xoq_link::sync::lock(&rtp_heard)[4..]
        .iter()
        .take(clicks)
        .copied()
        .collect();
    for mut c in [rtp_sink, rtp_source] {
        let _ = c.kill();
        let _ = c.wait();
    }
    let _ = pw.dump();

    println!(
        "jitter buffers: {latency_ms} ms on both sides, adapting up to {latency_max_ms} ms \
         (RTP: {latency_ms} ms); packets of {packet_ms} ms"
    );
    println!("| path | clicks | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    println!(
        "{}",
        row(
            "XoQ microphone: simulated mic -> link -> node -> PipeWire capture",
            &mut mic
        )
    );
    println!(
        "{}",
        row(
            "XoQ speaker: PipeWire playback -> node -> link -> simulated speaker",
            &mut spk
        )
    );
    println!("{}", row("baseline: PipeWire playback -> module-rtp-sink -> UDP -> module-rtp-source (20 ms) -> capture", &mut rtp));
    println!();
    println!(
        "CPU while both directions ran: xoq-server {:.1} %, xoq-mount {:.1} %",
        cpu.0, cpu.1
    );
    println!("mounter mic0 jitter buffer: {mic_status}");
    println!("server spk0 jitter buffer (last second): {spk_last:?}");
    if json {
        let keys = [
            "concealed",
            "late",
            "reordered",
            "duplicated",
            "underruns",
            "target_ms",
            "target_changes",
        ];
        let counters = [
            keys.map(|k| (k, mic_status[k].as_f64().unwrap_or(0.0))),
            keys.map(|k| (k, spk_last.get(k).copied().unwrap_or(0.0))),
        ];
        let line = summary_json(&profile, [&mut mic, &mut spk, &mut rtp], counters);
        println!("{line}");
    }
}

/// `net_bench`'s line for audio: the worse direction's percentiles at the top, both directions'
/// with their jitter buffers' counters (`counters`: microphone, speaker), and the RTP pair's.
fn summary_json(
    profile: &str,
    [mic, spk, rtp]: [&mut [u64]; 3],
    counters: [[(&str, f64); 7]; 2],
) -> serde_json::Value {
    let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
    let direction = |v: &mut [u64], c: &[(&str, f64); 7]| {
        let mut d = serde_json::json!({
            "clicks": v.len(),
            "p50_ms": ms(percentile(v, 0.5)),
            "p99_ms": ms(percentile(v, 0.99)),
        });
        for (k, x) in c {
            d[*k] = serde_json::json!(x);
        }
        d
    };
    let (m, s) = (direction(mic, &counters[0]), direction(spk, &counters[1]));
    let worse = |k: &str| f64::max(m[k].as_f64().unwrap_or(0.0), s[k].as_f64().unwrap_or(0.0));
    let total = |k: &str| m[k].as_f64().unwrap_or(0.0) + s[k].as_f64().unwrap_or(0.0);
    serde_json::json!({
        "profile": if profile.is_empty() { "loopback" } else { profile },
        "kind": "audio",
        "p50_ms": worse("p50_ms"),
        "p99_ms": worse("p99_ms"),
        // Packets never played: concealed (lost, or later than their samples were due).
        "lost": total("concealed"),
        "late": total("late"),
        "underruns": total("underruns"),
        // Packets the jitter buffers put back in place or dropped as second copies: each
        // sequence number plays once and in order.
        "duplicated": total("duplicated"),
        "reordered": total("reordered"),
        "microphone": m,
        "speaker": s,
        "baseline": {
            "path": "PipeWire module-rtp-sink -> RTP/UDP -> module-rtp-source",
            "clicks": rtp.len(),
            "p50_ms": ms(percentile(rtp, 0.5)),
            "p99_ms": ms(percentile(rtp, 0.99)),
        },
    })
}
