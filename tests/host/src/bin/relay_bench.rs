//! Relay fan-out benchmark: one robot's simulated camera (1280x720@30, H.264) published once
//! through a local `moq-relay` to many subscribers, beside the same camera direct over iroh.
//!
//! Runs, each `--seconds` long (default 10), in one process and one run:
//! - `iroh direct`: `xoq-mount <ticket>` with the null sink (decode, then drop);
//! - `relay, 1 mounter`: `xoq-mount moq://...` with the null sink;
//! - `relay, 1 mounter + N-1 subscribers` (`--subscribers N`, default 50): the same mounter,
//!   and N-1 lightweight subscribers in this process (MoQ sessions reading the video track,
//!   no decoding).
//!
//! Figures: the mounter's latency from capture (server clock) to the decoded picture handed to
//! the sink (same machine, same clock; the same measure on both transports); the lightweight
//! subscribers' latency from capture to a frame's arrival; the relay's and the server's CPU
//! (percent of one core); and the robot's upload to the relay, counted by a UDP forwarder
//! between the server and the relay (what one stream costs, however many subscribe).
//!
//! Run (release): `cargo build --release --workspace --bins && target/release/relay_bench`
//! Options: `--seconds N`, `--subscribers N`, `--grain G` (sensor-like noise on the pattern,
//! 0 to 40, so the stream needs a real camera's megabits; default 0).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use xoq_moq::Grants;
use xoq_tests_host::proc::{cpu_seconds, free_udp_port};
use xoq_tests_host::relay_lab::{RelayLab, Role, PREFIX};
use xoq_tests_host::stats::percentile;
use xoq_tests_host::{Env, Mount, Server};

const MODE: &str = "1280x720@30";

struct Row {
    what: String,
    frames: u64,
    p50_ms: f64,
    p99_ms: f64,
    subs: Option<(usize, f64, f64)>,
    cpu_relay: Option<f64>,
    cpu_server: f64,
    upload_kbps: Option<f64>,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The mounter's frame figures for cam0.
fn frames(env: &Env, client: &str) -> serde_json::Value {
    let v = env.mount_status(client);
    v["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "cam0"))
        .map(|d| d["detail"]["frames"].clone())
        .unwrap_or_default()
}

/// Forwards UDP between one client (the server) and `upstream`, counting the client's bytes.
async fn forwarder(upstream: SocketAddr, uploaded: Arc<AtomicU64>) -> SocketAddr {
    let front = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = front.local_addr().expect("addr");
    let back = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    back.connect(upstream).await.expect("connect");
    let (front, back) = (Arc::new(front), Arc::new(back));
    let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let (f, b, c) = (front.clone(), back.clone(), client.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = f.recv_from(&mut buf).await {
            *c.lock().expect("lock") = Some(from);
            uploaded.fetch_add(n as u64, Ordering::Relaxed);
            let _ = b.send(&buf[..n]).await;
        }
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = back.recv(&mut buf).await {
            let to = *client.lock().expect("lock");
            if let Some(to) = to {
                let _ = front.send_to(&buf[..n], to).await;
            }
        }
    });
    addr
}

/// `xoq-server` with the simulated camera at MODE, publishing through `relay` (if any).
fn server(env: &Env, relay: Option<(&RelayLab, SocketAddr)>, grain: u8) -> Server {
    let mut toml = format!(
        "name = \"testbot\"\n[[camera]]\nname = \"cam0\"\nsimulated = true\nmode = \"{MODE}\"\nsim_grain = {grain}\n"
    );
    if let Some((lab, via)) = relay {
        let robot = Grants {
            robot: true,
            ..Grants::default()
        };
        let token = lab.token("testbot", &robot, Duration::from_secs(3600));
        let file = lab.token_file("robot.token", &token);
        toml.push_str(&format!(
            "[moq]\nurl = \"https://localhost:{}\"\npath = \"{PREFIX}\"\ntoken_file = \"{}\"\ntls_fingerprint = [\"{}\"]\n",
            via.port(),
            file.display(),
            lab.fingerprint()
        ));
    }
    let path = env.path(&format!("server-{}.toml", rand::random::<u32>()));
    std::fs::write(&path, toml).expect("config");
    Server::start_configured(env, &path, free_udp_port())
}

fn relay_mount(env: &Env, lab: &RelayLab, client: &str) -> Mount {
    let token = lab.client_token("cam0", "", client);
    let target = format!("moq://localhost:{}/{PREFIX}/testbot", lab.addr().port());
    let fp = lab.fingerprint();
    Mount::start(
        env,
        client,
        &target,
        1,
        &[
            "--token",
            &token,
            "--relay-fingerprint",
            &fp,
            "--camera-sink",
            "null",
        ],
    )
}

/// Measures `mount` (and the relay, the server, the upload) for `secs`.
fn measure(
    what: String,
    env: &Env,
    client: &str,
    pids: (u32, Option<u32>),
    uploaded: Option<&AtomicU64>,
    secs: u64,
) -> Row {
    let (server_pid, relay_pid) = pids;
    std::thread::sleep(Duration::from_secs(3));
    let before = frames(env, client);
    let (s0, r0) = (cpu_seconds(server_pid), relay_pid.map(cpu_seconds));
    let u0 = uploaded.map(|u| u.load(Ordering::Relaxed));
    std::thread::sleep(Duration::from_secs(secs));
    let after = frames(env, client);
    let (s1, r1) = (cpu_seconds(server_pid), relay_pid.map(cpu_seconds));
    let u1 = uploaded.map(|u| u.load(Ordering::Relaxed));
    println!("{what}: {after}");
    let ms = |k: &str| after[k].as_u64().unwrap_or(0) as f64 / 1000.0;
    Row {
        what,
        frames: after["written"].as_u64().unwrap_or(0) - before["written"].as_u64().unwrap_or(0),
        p50_ms: ms("latency_p50_us"),
        p99_ms: ms("latency_p99_us"),
        subs: None,
        cpu_relay: r0.zip(r1).map(|(a, b)| (b - a) / secs as f64 * 100.0),
        cpu_server: (s1 - s0) / secs as f64 * 100.0,
        upload_kbps: u0
            .zip(u1)
            .map(|(a, b)| (b - a) as f64 * 8.0 / 1000.0 / secs as f64),
    }
}

/// N lightweight subscribers of cam0's video track; each frame's latency (capture to arrival)
/// goes into `lat` while `record` is set.
async fn subscribers(
    lab: &RelayLab,
    n: usize,
    lat: Arc<Mutex<Vec<f64>>>,
    record: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<xoq_tests_host::relay_lab::Session> {
    let token = lab.client_token("cam0", "", "watcher");
    let mut sessions = Vec::new();
    for _ in 0..n {
        let s = lab
            .connect("testbot", Some(&token), Role::Subscriber)
            .await
            .expect("subscriber admitted");
        let sub = s
            .subscribe("cam0", xoq_moq::media::VIDEO_TRACK, None)
            .await
            .expect("video track");
        let (lat, record) = (lat.clone(), record.clone());
        tokio::spawn(async move {
            let mut sub = sub;
            while let Ok(Some(mut g)) = sub.recv_group().await {
                while let Ok(Some(f)) = g.read_frame().await {
                    if let Ok((ts, _)) = xoq_moq::media::decode_frame(f.payload) {
                        if record.load(Ordering::Relaxed) {
                            let l = now_us().saturating_sub(ts) as f64 / 1000.0;
                            lat.lock().expect("lock").push(l);
                        }
                    }
                }
            }
        });
        sessions.push(s);
    }
    sessions
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (mut secs, mut n, mut grain) = (10u64, 50usize, 0u8);
    for w in a.windows(2) {
        match w[0].as_str() {
            "--seconds" => secs = w[1].parse().expect("--seconds N"),
            "--subscribers" => n = w[1].parse().expect("--subscribers N"),
            "--grain" => grain = w[1].parse().expect("--grain 0..40"),
            _ => {}
        }
    }
    let mut rows = Vec::new();

    // iroh direct.
    let env = Env::new();
    env.authorize("laptop", &[]);
    let direct = server(&env, None, grain);
    let mount = Mount::start(
        &env,
        "laptop",
        &direct.ticket,
        1,
        &["--camera-sink", "null"],
    );
    let row = tokio::task::block_in_place(|| {
        measure(
            "iroh direct, 1 mounter".into(),
            &env,
            "laptop",
            (direct.proc.child.id(), None),
            None,
            secs,
        )
    });
    rows.push(row);
    drop((mount, direct));

    // Through the relay.
    let lab = RelayLab::start().await;
    let uploaded = Arc::new(AtomicU64::new(0));
    let via = forwarder(lab.addr(), uploaded.clone()).await;
    let env = Env::new();
    let published = server(&env, Some((&lab, via)), grain);
    let pids = (published.proc.child.id(), Some(lab.relay_pid()));
    let mount = tokio::task::block_in_place(|| relay_mount(&env, &lab, "viewer"));
    let row = tokio::task::block_in_place(|| {
        measure(
            "relay, 1 mounter".into(),
            &env,
            "viewer",
            pids,
            Some(&uploaded),
            secs,
        )
    });
    rows.push(row);
    drop(mount);

    // The subscribers first, then a fresh mounter (its figures cover this run only).
    let lat = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let subs = subscribers(&lab, n.saturating_sub(1), lat.clone(), record.clone()).await;
    let mount = tokio::task::block_in_place(|| relay_mount(&env, &lab, "viewer2"));
    record.store(true, Ordering::Relaxed);
    let mut row = tokio::task::block_in_place(|| {
        measure(
            format!("relay, 1 mounter + {} subscribers", subs.len()),
            &env,
            "viewer2",
            pids,
            Some(&uploaded),
            secs,
        )
    });
    record.store(false, Ordering::Relaxed);
    let mut l = lat.lock().expect("lock").clone();
    let count = l.len();
    row.subs = Some((count, percentile(&mut l, 0.5), percentile(&mut l, 0.99)));
    rows.push(row);
    drop((mount, subs, published));

    println!(
        "\n| run | mounter pictures | mounter p50 | mounter p99 | subscribers' frames, p50 / p99 | relay CPU | server CPU | robot upload |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let subs = r
            .subs
            .map(|(c, p50, p99)| format!("{c}, {p50:.1} / {p99:.1} ms"))
            .unwrap_or_else(|| "-".into());
        let relay = r
            .cpu_relay
            .map(|c| format!("{c:.0} %"))
            .unwrap_or_else(|| "-".into());
        let up = r
            .upload_kbps
            .map(|k| format!("{:.2} Mbit/s", k / 1000.0))
            .unwrap_or_else(|| "-".into());
        println!(
            "| {} | {} | {:.1} ms | {:.1} ms | {} | {} | {:.0} % | {} |",
            r.what, r.frames, r.p50_ms, r.p99_ms, subs, relay, r.cpu_server, up
        );
    }
}
