//! Unauthorized flood benchmark: many connections from throwaway keys, each trying to push an
//! 8 MiB "VideoFrame" at the server, while an authorized client measures serial round trips
//! through `/dev/ttyXOQ0`. Reports the server's peak memory and the client's latency with and
//! without the attack, in the same run.
//!
//! A real attacker is on another machine, so its own CPU must not be what slows the robot down
//! on these 2 cores: the attackers run in a child process of this binary at `nice 19` pinned
//! to the second CPU, and the server, the mounter and the client measuring round trips are
//! pinned to the first, in every phase. What the server spends refusing is what is measured.
//!
//! Run (release): `cargo build --release --workspace --bins && target/release/attack_bench`
//! Options: `--attackers N` (default 200), `--round-trips N` (default 3000).

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use xoq_link::{bind_endpoint, EndpointOptions, Ticket};
use xoq_tests_host::proc::cpu_seconds;
use xoq_tests_host::serial_ioctl::set_speed_bother;
use xoq_tests_host::stats::percentile;
use xoq_tests_host::tty::{round_trips, BENCH_BAUD};
use xoq_tests_host::{Env, Mount, Server, Tty};

/// What each attacker tries to make the server buffer.
const PUSH: usize = 8 * 1024 * 1024;

#[derive(Default)]
struct Tally {
    connected: AtomicU64,
    failed: AtomicU64,
    bytes_accepted: AtomicU64,
}

fn arg(name: &str, default: usize) -> usize {
    let v: Vec<String> = std::env::args().collect();
    v.windows(2)
        .find(|w| w[0] == name)
        .map_or(default, |w| w[1].parse().expect("a number"))
}

/// The server's resident memory now, in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One attacker: its own key, connecting again and again, each time opening a stream and
/// pushing a VideoFrame header declaring 8 MiB followed by that much junk.
async fn attacker(ticket: Ticket, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let Ok(ep) = bind_endpoint(iroh::SecretKey::generate(), EndpointOptions::default()).await
    else {
        tally.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let junk = vec![0xa5u8; 64 * 1024];
    let mut header = vec![0x42u8];
    header.extend_from_slice(&(PUSH as u32).to_be_bytes());
    while !stop.load(Ordering::Relaxed) {
        let attempt = async {
            let conn = ep
                .connect(ticket.endpoint_addr(), xoq_wire::ALPN)
                .await
                .ok()?;
            tally.connected.fetch_add(1, Ordering::Relaxed);
            let (mut send, _recv) = conn.open_bi().await.ok()?;
            send.write_all(&header).await.ok()?;
            let mut sent = 0;
            while sent < PUSH {
                send.write_all(&junk).await.ok()?;
                sent += junk.len();
                tally
                    .bytes_accepted
                    .fetch_add(junk.len() as u64, Ordering::Relaxed);
            }
            Some(())
        };
        if tokio::time::timeout(Duration::from_secs(5), attempt)
            .await
            .ok()
            .flatten()
            .is_none()
        {
            tally.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    ep.close().await;
}

/// One phase: round trips measured while the server's CPU use is sampled.
fn phase(name: &str, server: u32, run: impl FnOnce() -> Vec<f64>) -> f64 {
    let (c0, t0) = (cpu_seconds(server), std::time::Instant::now());
    let mut v = run();
    let cpu = (cpu_seconds(server) - c0) / t0.elapsed().as_secs_f64() * 100.0;
    let (p50, p99) = (percentile(&mut v, 0.50), percentile(&mut v, 0.99));
    println!(
        "| {name} | {} | {p50:.0} | {p99:.0} | {cpu:.0} % |",
        v.len()
    );
    p50
}

/// The child process: `attack_bench --attack TICKET N` floods until killed, printing its tally
/// every second.
fn attack(ticket: &str, attackers: usize) {
    pin_to_cpu(1);
    let ticket: Ticket = ticket.parse().expect("ticket");
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for _ in 0..attackers {
        rt.spawn(attacker(ticket.clone(), stop.clone(), tally.clone()));
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
        println!(
            "{} {} {}",
            tally.connected.load(Ordering::Relaxed),
            tally.failed.load(Ordering::Relaxed),
            tally.bytes_accepted.load(Ordering::Relaxed)
        );
    }
}

fn main() {
    let v: Vec<String> = std::env::args().collect();
    if let [_, flag, ticket, n] = v.as_slice() {
        if flag == "--attack" {
            return attack(ticket, n.parse().expect("attackers"));
        }
    }
    let attackers = arg("--attackers", 200);
    // Inherited by the server and the mounter started below.
    pin_to_cpu(0);
    let n = arg("--round-trips", 3000);
    let env = Env::new();
    env.authorize("bench", &[]);
    let server = Server::with_sim_echo(&env);
    let pid = server.proc.child.id();
    let mount = Mount::start(&env, "bench", &server.ticket, 1, &[]);
    let tty = Tty::open_raw(&mount.links[0]);
    set_speed_bother(tty.fd.as_fd(), BENCH_BAUD).expect("bench baud rate");
    std::thread::sleep(Duration::from_millis(300));
    tty.drain();
    println!(
        "attack_bench: {attackers} attackers pushing {} MiB each, {n} round trips of 32 B\n",
        PUSH >> 20
    );
    println!("| phase | round trips | p50 us | p99 us | server CPU |\n|---|---:|---:|---:|---:|");
    let rss_idle = rss_mib(pid);
    let quiet = phase("no attack (baseline)", pid, || round_trips(&tty, n));

    let exe = std::env::current_exe().expect("own path");
    let mut flood = std::process::Command::new("nice")
        .args(["-n", "19"])
        .arg(exe)
        .args(["--attack", &server.ticket, &attackers.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("attacker process");
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max((rss_mib(pid) * 1024.0) as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // Let the flood build up before measuring under it.
    std::thread::sleep(Duration::from_secs(3));
    let attacked = phase("during the attack", pid, || round_trips(&tty, n));
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let _ = flood.kill();
    let _ = flood.wait();
    let mut out = String::new();
    if let Some(mut o) = flood.stdout.take() {
        use std::io::Read;
        let _ = o.read_to_string(&mut out);
    }
    let last: Vec<u64> = out
        .lines()
        .last()
        .unwrap_or("0 0 0")
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // The server settles once the attackers' connections have timed out.
    std::thread::sleep(Duration::from_secs(5));
    let after = phase("after the attack", pid, || round_trips(&tty, n));
    let peak = peak.load(Ordering::Relaxed) as f64 / 1024.0;
    println!(
        "\nserver RSS: {rss_idle:.1} MiB before, {peak:.1} MiB peak during the attack (limit 64)"
    );
    println!(
        "attack: {} connections established, {} attempts ended in refusal or error, {:.1} MiB accepted by QUIC from attackers in total",
        last.first().copied().unwrap_or(0),
        last.get(1).copied().unwrap_or(0),
        last.get(2).copied().unwrap_or(0) as f64 / (1024.0 * 1024.0)
    );
    println!(
        "authorized client p50: {:.2}x the baseline during the attack (limit 1.2x), {:.2}x after",
        attacked / quiet,
        after / quiet
    );
}

/// Runs this process (and the children it starts from now on) on CPU `cpu` only.
fn pin_to_cpu(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    let ok = set.set(cpu).is_ok()
        && nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).is_ok();
    if !ok {
        eprintln!(
            "attack_bench: cannot pin to CPU {cpu}; the figures include the attacker's own CPU use"
        );
    }
}
