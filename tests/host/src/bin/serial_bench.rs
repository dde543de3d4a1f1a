//! Serial benchmark: round-trip latency and throughput through `/dev/ttyXOQ0`, against a plain
//! `socat` PTY-to-TCP bridge and a bare PTY pair measured in the same run.
//!
//! Run (release): `cargo build --release --workspace --bins && target/release/serial_bench`
//! Options: `--round-trips N` (default 10000), `--megabytes N` (default 16).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xoq_tests_host::serial_ioctl::set_speed_bother;
use xoq_tests_host::stats::percentile;
use xoq_tests_host::tty::{round_trips, BENCH_BAUD, ECHO_MSG as MSG};
use xoq_tests_host::{Env, HardwarePty, Mount, Server, Tty};

const T: Duration = Duration::from_secs(60);
/// The busy-polling window of the third latency row.
const BUSY_POLL_US: u32 = 200;

struct Args {
    round_trips: usize,
    megabytes: usize,
}

fn args() -> Args {
    let mut a = Args {
        round_trips: 10_000,
        megabytes: 16,
    };
    let v: Vec<String> = std::env::args().collect();
    for w in v.windows(2) {
        match w[0].as_str() {
            "--round-trips" => a.round_trips = w[1].parse().expect("--round-trips N"),
            "--megabytes" => a.megabytes = w[1].parse().expect("--megabytes N"),
            _ => {}
        }
    }
    a
}

fn report(name: &str, mut v: Vec<f64>) -> (f64, f64) {
    let (p50, p99) = (percentile(&mut v, 0.50), percentile(&mut v, 0.99));
    println!(
        "| {name} | {} | {p50:.0} | {p99:.0} | {:.0} |",
        v.len(),
        percentile(&mut v, 0.999)
    );
    (p50, p99)
}

/// Bytes per second moving `total` bytes from `write` to `read` (both closures loop).
fn throughput(
    total: usize,
    write: impl FnOnce() + Send,
    read: impl FnOnce() -> usize + Send,
) -> f64 {
    let t0 = Instant::now();
    let got = std::thread::scope(|s| {
        let w = s.spawn(write);
        let got = read();
        w.join().expect("writer");
        got
    });
    assert_eq!(got, total, "all bytes arrived");
    total as f64 / t0.elapsed().as_secs_f64() / 1e6
}

/// A TCP echo server on 127.0.0.1 (one connection, TCP_NODELAY).
fn tcp_echo() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
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
    port
}

fn socat_pty(dir: &Path, name: &str, tcp: &str) -> (Child, PathBuf) {
    let link = dir.join(name);
    let child = Command::new("socat")
        .arg(format!("pty,link={},raw,echo=0", link.display()))
        .arg(format!("tcp:{tcp},nodelay"))
        .stderr(Stdio::null())
        .spawn()
        .expect("socat (apt install socat)");
    let deadline = Instant::now() + T;
    while !link.exists() {
        assert!(
            Instant::now() < deadline,
            "socat did not create {}",
            link.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, link)
}

/// Reports `n` round trips through `/dev/ttyXOQ0` mounted from a simulated echo port served
/// in `env`, at [`BENCH_BAUD`]; returns p50 and p99.
fn xoq_round_trips(env: &Env, name: &str, n: usize) -> (f64, f64) {
    let server = Server::with_sim_echo(env);
    let mount = Mount::start(env, "bench", &server.ticket, 1, &[]);
    let tty = Tty::open_raw(&mount.links[0]);
    set_speed_bother(tty.fd.as_fd(), BENCH_BAUD).expect("bench baud rate");
    std::thread::sleep(Duration::from_millis(300));
    tty.drain();
    report(name, round_trips(&tty, n))
}

fn main() {
    let a = args();
    let env = Env::new();
    env.authorize("bench", &[]);
    println!(
        "serial_bench: {} round trips of {MSG} B; {} MiB each way\n",
        a.round_trips, a.megabytes
    );

    // --- latency ---
    println!("| path | round trips | p50 us | p99 us | p99.9 us |\n|---|---:|---:|---:|---:|");
    // floor: a bare PTY pair, echo thread on the master
    let floor = HardwarePty::new();
    let floor_tty = Tty::open_raw(&floor.slave_path);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let echo = {
        let stop = stop.clone();
        let master = floor.master.fd.as_fd().try_clone_to_owned().expect("dup");
        std::thread::spawn(move || {
            let m = Tty { fd: master };
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let d = m.read_exact(MSG, Duration::from_millis(50));
                if !d.is_empty() {
                    m.write_all(&d, T);
                }
            }
        })
    };
    report(
        "bare PTY pair (floor)",
        round_trips(&floor_tty, a.round_trips),
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    echo.join().expect("echo thread");

    let port = tcp_echo();
    let (mut socat, socat_link) =
        socat_pty(env.dir.path(), "socat-tty", &format!("127.0.0.1:{port}"));
    let socat_tty = Tty::open_raw(&socat_link);
    let (socat_p50, socat_p99) = report(
        "socat PTY -> TCP echo (baseline)",
        round_trips(&socat_tty, a.round_trips),
    );
    drop(socat_tty);
    let _ = socat.kill();

    let (p50, p99) = xoq_round_trips(
        &env,
        "xoq: /dev/ttyXOQ0 -> QUIC -> simulated echo",
        a.round_trips,
    );
    // The same with both daemons busy polling after device traffic (link/src/busy_poll.rs).
    let mut busy = Env::new();
    busy.authorize("bench", &[]);
    busy.set_var("XOQ_BUSY_POLL_US", BUSY_POLL_US.to_string());
    let (bp50, bp99) = xoq_round_trips(
        &busy,
        &format!("xoq, busy polling {BUSY_POLL_US} us (XOQ_BUSY_POLL_US)"),
        a.round_trips,
    );
    println!("\nxoq/socat: p50 {:.2}x, p99 {:.2}x (targets 1.3x, 1.5x); busy polling: p50 {:.2}x, p99 {:.2}x\n",
        p50 / socat_p50, p99 / socat_p99, bp50 / socat_p50, bp99 / socat_p99);

    // --- throughput ---
    let total = a.megabytes * 1024 * 1024;
    let data: Vec<u8> = (0..total).map(|i| (i * 7 + i / 251) as u8).collect();
    println!("| path | direction | MB/s |\n|---|---|---:|");
    // socat: PTY -> TCP sink, and TCP source -> PTY
    {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let tcp = l.local_addr().expect("addr").to_string();
        let (mut child, link) = socat_pty(env.dir.path(), "socat-tp", &tcp);
        let (mut conn, _) = l.accept().expect("socat connects");
        let tty = Tty::open_raw(&link);
        let up = throughput(
            total,
            || tty.write_all(&data, T),
            || {
                let mut buf = vec![0u8; 65536];
                let mut n = 0;
                while n < total {
                    n += conn.read(&mut buf).expect("tcp read");
                }
                n
            },
        );
        println!("| socat PTY <-> TCP (baseline) | program -> remote | {up:.1} |");
        let mut conn2 = conn.try_clone().expect("clone");
        let src = &data;
        let down = throughput(
            total,
            move || conn2.write_all(src).expect("tcp write"),
            || tty.read_exact(total, T).len(),
        );
        println!("| socat PTY <-> TCP (baseline) | remote -> program | {down:.1} |");
        let _ = child.kill();
    }
    // xoq: /dev/ttyXOQ0 <-> a PTY served as the remote port
    {
        let hw = HardwarePty::new();
        let server = Server::with_pty_port(&env, &hw);
        let mount = Mount::start(&env, "bench", &server.ticket, 1, &[]);
        let tty = Tty::open_raw(&mount.links[0]);
        std::thread::sleep(Duration::from_millis(300));
        hw.master.drain();
        let up = throughput(
            total,
            || tty.write_all(&data, T),
            || hw.master.read_exact(total, T).len(),
        );
        println!("| xoq: /dev/ttyXOQ0 <-> PTY port | program -> remote | {up:.1} |");
        let down = throughput(
            total,
            || hw.master.write_all(&data, T),
            || tty.read_exact(total, T).len(),
        );
        println!("| xoq: /dev/ttyXOQ0 <-> PTY port | remote -> program | {down:.1} |");
    }
}
