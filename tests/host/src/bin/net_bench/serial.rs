//! Serial over an impaired link. The remote side serves two ports: the simulated echo (at the
//! benchmarks' 4 Mbaud, for round trips of 32 bytes) and a PTY standing for hardware (for bulk
//! transfer both ways at once, checked byte for byte). The baseline is socat: a PTY in the
//! mounter's namespace bridged over TCP to an echo server or a sink in the server's.
//! Profiles with outages also measure how long after the link's return written lines reach the
//! port again, for both paths.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use xoq_impair::Profile;
use xoq_tests_host::netlab::{NetLab, SERVER_PORT};
use xoq_tests_host::serial_ioctl::set_speed_bother;
use xoq_tests_host::stats::percentile;
use xoq_tests_host::tty::{round_trips_after, BENCH_BAUD};
use xoq_tests_host::{Env, HardwarePty, Mount, Server, Tty};

use crate::{ms, Args};

const T: Duration = Duration::from_secs(900);
const WARMUP: usize = 20;
/// A bulk transfer that makes no progress this long has lost what is missing.
const STALL: Duration = Duration::from_secs(20);

/// The link of the device `name` among a mount's lines.
fn link_of(mount: &Mount, name: &str) -> PathBuf {
    let needle = format!("mounted  serial  {name}  ->  ");
    let line = mount
        .proc
        .seen
        .iter()
        .find(|l| l.starts_with(&needle))
        .unwrap_or_else(|| panic!("{name} was not mounted"));
    PathBuf::from(
        line[needle.len()..]
            .split_whitespace()
            .next()
            .expect("path"),
    )
}

fn latency(mut v: Vec<f64>) -> (f64, f64) {
    (percentile(&mut v, 0.5), percentile(&mut v, 0.99))
}

/// A TCP echo server in `ns`, on `ip`; returns its address.
fn tcp_echo_in(ns: &str, ip: IpAddr) -> SocketAddr {
    NetLab::run_in(ns, || {
        let l = TcpListener::bind((ip, 0)).expect("bind echo");
        let addr = l.local_addr().expect("addr");
        // Threads started here stay in the namespace.
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = s;
                    let _ = s.set_nodelay(true);
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    })
}

/// A TCP listener in `ns`, on `ip`.
fn tcp_listener_in(ns: &str, ip: IpAddr) -> TcpListener {
    NetLab::run_in(ns, || TcpListener::bind((ip, 0)).expect("bind sink"))
}

/// socat in `ns`: a PTY at `link` bridged to TCP `to`.
fn socat_pty(ns: &str, link: &Path, to: SocketAddr) -> Child {
    let child = NetLab::in_ns(ns, "socat")
        .arg(format!("pty,link={},raw,echo=0", link.display()))
        .arg(format!("tcp:{to},nodelay"))
        .stderr(Stdio::null())
        .spawn()
        .expect("socat (apt install socat)");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !link.exists() {
        assert!(
            Instant::now() < deadline,
            "socat made no {}",
            link.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Lines written every 20 ms to `write` from 1 s before the outage `(start, end)` until 2 s
/// after it; `read` collects what arrives. Returns ms from the link's return to the first
/// arrival after it.
fn recovery(
    outage: (Instant, Instant),
    write: impl Fn(&[u8]) + Send + Sync,
    read: impl Fn(Duration) -> Vec<u8> + Send,
) -> f64 {
    let (start, end) = outage;
    std::thread::sleep(start.saturating_duration_since(Instant::now() + Duration::from_secs(1)));
    let first_after = Arc::new(Mutex::new(None));
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u32;
            while Instant::now() < end + Duration::from_secs(2) {
                write(format!("line {i:06}\n").as_bytes());
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            stop.store(true, Ordering::Relaxed);
        });
        while !stop.load(Ordering::Relaxed) {
            let got = read(Duration::from_millis(5));
            let now = Instant::now();
            if !got.is_empty() && now > end {
                let mut f = first_after.lock().expect("lock");
                f.get_or_insert(now);
            }
        }
    });
    let first = *first_after.lock().expect("lock");
    first.map_or(f64::NAN, |t| ms(t.duration_since(end).as_secs_f64() * 1e6))
}

/// Reads from `tty` until `len` bytes arrived or none arrived for `stall` (bytes lost on the
/// way never come: the shortfall is reported, not waited for).
fn read_until_stalled(tty: &Tty, len: usize, stall: Duration) -> Vec<u8> {
    let mut got = Vec::with_capacity(len);
    while got.len() < len {
        let chunk = tty.read_exact(len - got.len(), stall);
        if chunk.is_empty() {
            break;
        }
        got.extend(chunk);
    }
    got
}

/// Bytes lost, duplicated (more than sent) and out of place between `want` and `got`.
fn compare(want: &[u8], got: &[u8]) -> (usize, usize, usize) {
    let lost = want.len().saturating_sub(got.len());
    let dup = got.len().saturating_sub(want.len());
    let misplaced = want.iter().zip(got).filter(|(a, b)| a != b).count();
    (lost, dup, misplaced)
}

pub fn run(profile: &Profile, a: &Args) -> Value {
    let lab = NetLab::new(profile.clone(), a.seed);
    let mut env = Env::new();
    lab.place(&mut env, "bench");
    env.authorize("bench", &[]);
    let hw = HardwarePty::new();
    let server = Server::start_on(
        &env,
        lab.server_ip(),
        SERVER_PORT,
        &[
            "--sim-serial".into(),
            "echo0".into(),
            "--serial".into(),
            hw.serve_arg("bulk"),
        ],
    );
    let mut mount = Mount::start(&env, "bench", &server.ticket, 2, &[]);

    // Round trips.
    let echo = Tty::open_raw(&link_of(&mount, "echo0"));
    set_speed_bother(echo.fd.as_fd(), BENCH_BAUD).expect("bench baud rate");
    std::thread::sleep(Duration::from_millis(300));
    echo.drain();
    let (p50, p99) = latency(round_trips_after(&echo, a.round_trips, WARMUP));
    drop(echo);

    let echo_addr = tcp_echo_in(&lab.server_ns(), lab.server_ip());
    let socat_link = env.path("socat-echo");
    let mut socat = socat_pty(&lab.client_ns(), &socat_link, echo_addr);
    let socat_tty = Tty::open_raw(&socat_link);
    let (b50, b99) = latency(round_trips_after(&socat_tty, a.round_trips, WARMUP));
    drop(socat_tty);
    let _ = socat.kill();
    let _ = socat.wait();

    // Bulk, both ways at once, through the PTY port.
    let bulk = Tty::open_raw(&link_of(&mount, "bulk"));
    bulk.write_all(b"sync", T);
    assert_eq!(hw.master.read_exact(4, T), b"sync", "bulk port open");
    let len = a.megabytes * 1024 * 1024;
    let pattern = |salt: u8| -> Vec<u8> {
        (0..len)
            .map(|i| ((i / 251) as u8).wrapping_mul(31) ^ (i % 251) as u8 ^ salt)
            .collect()
    };
    let (up, down) = (pattern(0x55), pattern(0xaa));
    let t0 = Instant::now();
    let (at_port, t_up, at_tty, t_down) = std::thread::scope(|s| {
        s.spawn(|| bulk.write_all(&up, T));
        s.spawn(|| hw.master.write_all(&down, T));
        let reader = s.spawn(|| {
            let got = read_until_stalled(&bulk, len, STALL);
            (got, t0.elapsed())
        });
        let at_port = read_until_stalled(&hw.master, len, STALL);
        let t_up = t0.elapsed();
        let (at_tty, t_down) = reader.join().expect("reader");
        (at_port, t_up, at_tty, t_down)
    });
    let (l1, d1, r1) = compare(&up, &at_port);
    let (l2, d2, r2) = compare(&down, &at_tty);
    let mbps = |t: Duration| (len as f64 / t.as_secs_f64() / 1e6 * 100.0).round() / 100.0;

    // Recovery from the profile's next outage: xoq, then socat at the one after.
    let (recovered, base_recovered) = match lab.link.next_outage() {
        Some(outage) => {
            let x = recovery(
                outage,
                |l| bulk.write_all(l, T),
                |t| hw.master.read_exact(1 << 20, t),
            );
            let sink = tcp_listener_in(&lab.server_ns(), lab.server_ip());
            let link = env.path("socat-sink");
            let mut child = socat_pty(&lab.client_ns(), &link, sink.local_addr().expect("addr"));
            let (conn, _) = sink.accept().expect("socat connects");
            conn.set_read_timeout(Some(Duration::from_millis(5)))
                .expect("timeout");
            let tty = Tty::open_raw(&link);
            let next = lab.link.next_outage().expect("another outage");
            let reader = Mutex::new(conn);
            let b = recovery(
                next,
                |l| tty.write_all(l, T),
                |_| {
                    let mut buf = [0u8; 65536];
                    let n = reader.lock().expect("lock").read(&mut buf).unwrap_or(0);
                    buf[..n].to_vec()
                },
            );
            let _ = child.kill();
            let _ = child.wait();
            (json!(x), json!(b))
        }
        None => (Value::Null, Value::Null),
    };
    let (c_up, c_down) = lab.link.counters();
    let status = env.run("xoq-mount", "bench", &["status", "--json"]);
    let status: Option<Value> = serde_json::from_str(&status).ok();
    let reconnects = status.as_ref().and_then(|v| v["reconnects"].as_u64());
    let echo_copies_used = status.as_ref().and_then(|v| v["copies"]["used"].as_u64());
    // A polite end, so that the server logs the connection's copies at once.
    drop(bulk);
    mount.proc.signal(nix::sys::signal::Signal::SIGTERM);
    mount.proc.wait_exit(std::time::Duration::from_secs(10));
    let write_copies_used = server.copies_used(std::time::Duration::from_secs(10));
    json!({
        "profile": profile.name, "kind": "serial",
        "p50_ms": ms(p50), "p99_ms": ms(p99), "round_trips": a.round_trips,
        "lost": l1 + l2, "duplicated": d1 + d2, "reordered": r1 + r2,
        "bulk_mib_each_way": a.megabytes, "up_mb_s": mbps(t_up), "down_mb_s": mbps(t_down),
        "recovered_ms": recovered, "reconnects": reconnects,
        "link_lost_packets": c_up.lost + c_down.lost,
        "copies_used": {"writes": write_copies_used, "echoes": echo_copies_used},
        "baseline": {
            "path": "socat PTY -> TCP echo",
            "p50_ms": ms(b50), "p99_ms": ms(b99), "recovered_ms": base_recovered,
        },
    })
}
