//! CAN benchmark: the simulated Damiao bus on a real `xoq-server`, an in-process client (the
//! mounter's protocol, standing in for vcan, which this host kernel lacks), MIT commands at a
//! fixed rate. Measures bus -> client one-way latency (reply timestamp to arrival; one host,
//! one clock), command -> reply round trip, loss, and the highest lossless rate. Baseline in the
//! same run: the same exchange as 16-byte records over a plain TCP loopback connection.
//!
//! Run (release): `cargo build --release --workspace --bins && target/release/can_bench`
//! Options: `--seconds N` per rate (default 3).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use xoq_link::client::connect;
use xoq_link::{bind_endpoint, load_or_create_key, EndpointOptions, Ticket};
use xoq_tests_host::can_client::now_us;
use xoq_tests_host::proc::free_udp_port;
use xoq_tests_host::stats::percentile;
use xoq_tests_host::{Env, Server};
use xoq_wire::{Access, CanFrame, Message};

const MOTORS: u32 = 8;
const MIT: [u8; 8] = [0x80, 0x00, 0x80, 0x00, 0x00, 0x00, 0x08, 0x00];

#[derive(Default)]
struct RunResult {
    sent: u64,
    received: u64,
    one_way: Vec<u64>,
    rtt: Vec<u64>,
    achieved_fps: f64,
}

impl RunResult {
    fn row(&mut self, path: &str, rate: u32) {
        let (o50, o99) = (
            percentile(&mut self.one_way, 0.5),
            percentile(&mut self.one_way, 0.99),
        );
        let (r50, r99) = (
            percentile(&mut self.rtt, 0.5),
            percentile(&mut self.rtt, 0.99),
        );
        println!(
            "| {path} | {rate} | {:.0} | {} | {} | {o50} | {o99} | {r50} | {r99} |",
            self.achieved_fps,
            self.sent,
            self.sent - self.received.min(self.sent)
        );
    }
    fn lossless(&self, rate: u32) -> bool {
        self.sent > 0 && self.received == self.sent && self.achieved_fps >= f64::from(rate) * 0.95
    }
}

/// Commands at `rate` frames/s for `secs`, in 1 ms batches, over xoq; replies matched per motor.
async fn run_xoq(dev: &mut xoq_link::client::DeviceStream, rate: u32, secs: u64) -> RunResult {
    let mut res = RunResult::default();
    let mut pending: Vec<VecDeque<u64>> = (0..MOTORS).map(|_| VecDeque::new()).collect();
    let per_ms = (rate / 1000).max(1);
    let ticks = if rate >= 1000 {
        secs * 1000
    } else {
        secs * u64::from(rate)
    };
    let period = if rate >= 1000 {
        Duration::from_millis(1)
    } else {
        Duration::from_micros(1_000_000 / u64::from(rate))
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut motor = 0u32;
    let mut done_sending = false;
    let mut sent_ticks = 0u64;
    let drain_until = |t: Instant| t + Duration::from_millis(500);
    let mut last_send = start;
    loop {
        tokio::select! {
            _ = tick.tick(), if !done_sending => {
                let mut batch = Vec::with_capacity(per_ms as usize);
                let t = now_us();
                for _ in 0..per_ms {
                    let id = 1 + motor % MOTORS;
                    pending[(id - 1) as usize].push_back(t);
                    batch.push(CanFrame { id, flags: 0, len: 8, data: MIT.to_vec(), timestamp_us: t });
                    motor += 1;
                }
                res.sent += batch.len() as u64;
                if dev.writer.send(&Message::CanFrames(batch)).await.is_err() {
                    break;
                }
                sent_ticks += 1;
                last_send = Instant::now();
                if sent_ticks >= ticks {
                    done_sending = true;
                    res.achieved_fps = res.sent as f64 / start.elapsed().as_secs_f64();
                }
            }
            m = dev.reader.next() => match m {
                Ok(Some(Message::CanFrames(frames))) => {
                    let arrived = now_us();
                    for f in frames {
                        if !(0x11..0x11 + MOTORS).contains(&f.id) {
                            continue;
                        }
                        res.received += 1;
                        res.one_way.push(arrived.saturating_sub(f.timestamp_us));
                        if let Some(t) = pending[(f.id - 0x11) as usize].pop_front() {
                            res.rtt.push(arrived.saturating_sub(t));
                        }
                    }
                    if done_sending && res.received >= res.sent {
                        break;
                    }
                }
                Ok(Some(_)) => {}
                _ => break,
            },
            _ = tokio::time::sleep_until(drain_until(last_send).into()), if done_sending => break,
        }
    }
    res
}

/// The same exchange over TCP: the peer answers each 16-byte record with one carrying its
/// send time.
fn tcp_peer() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let _ = s.set_nodelay(true);
                let mut buf = vec![0u8; 16 * 4096];
                let mut have = 0;
                loop {
                    let n = match s.read(&mut buf[have..]) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    have += n;
                    let whole = have / 16 * 16;
                    let t = now_us().to_be_bytes();
                    for rec in buf[..whole].chunks_mut(16) {
                        rec[8..16].copy_from_slice(&t);
                    }
                    if s.write_all(&buf[..whole]).is_err() {
                        return;
                    }
                    buf.copy_within(whole..have, 0);
                    have -= whole;
                }
            });
        }
    });
    port
}

fn run_tcp(port: u16, rate: u32, secs: u64) -> RunResult {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut reader = s.try_clone().expect("clone");
    let per_ms = (rate / 1000).max(1) as usize;
    let ticks = secs * 1000;
    let total = ticks * per_ms as u64;
    let recv = std::thread::spawn(move || {
        let mut res = RunResult::default();
        let mut buf = vec![0u8; 16 * 4096];
        let mut have = 0;
        while res.received < total {
            let n = match reader.read(&mut buf[have..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            have += n;
            let arrived = now_us();
            let whole = have / 16 * 16;
            for rec in buf[..whole].chunks(16) {
                let sent = u64::from_be_bytes(rec[..8].try_into().unwrap_or([0; 8]));
                let stamped = u64::from_be_bytes(rec[8..].try_into().unwrap_or([0; 8]));
                res.rtt.push(arrived.saturating_sub(sent));
                res.one_way.push(arrived.saturating_sub(stamped));
                res.received += 1;
            }
            buf.copy_within(whole..have, 0);
            have -= whole;
        }
        res
    });
    let mut w = s;
    let start = Instant::now();
    let mut batch = vec![0u8; 16 * per_ms];
    for k in 0..ticks {
        let due = start + Duration::from_millis(k);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let t = now_us().to_be_bytes();
        for rec in batch.chunks_mut(16) {
            rec[..8].copy_from_slice(&t);
        }
        w.write_all(&batch).expect("tcp write");
    }
    let achieved = total as f64 / start.elapsed().as_secs_f64();
    let mut res = recv.join().expect("receiver");
    res.sent = total;
    res.achieved_fps = achieved;
    res
}

fn main() {
    let secs: u64 = std::env::args()
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| w[0] == "--seconds")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(3);
    let env = Env::new();
    env.authorize("bench", &[]);
    let server = Server::start(
        &env,
        free_udp_port(),
        &["--sim-can".into(), "motors".into()],
    );
    let ticket: Ticket = server.ticket.parse().expect("ticket");
    let key = load_or_create_key(&env.path("state-bench").join("client.key")).expect("key");
    // The mounter's runtime: busy polling too when XOQ_BUSY_POLL_US is set.
    let rt = xoq_link::runtime::build().expect("runtime");
    let port = tcp_peer();
    println!("can_bench: {secs} s per rate; latencies in microseconds\n");
    println!("| path | target frames/s | achieved | sent | lost | one-way p50 | one-way p99 | round trip p50 | round trip p99 |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    rt.block_on(async {
        let ep = bind_endpoint(key, EndpointOptions::default()).await.expect("endpoint");
        let session = connect(&ep, &ticket, "bench", Duration::from_secs(10)).await.expect("connect");
        let mut dev = session.open_device("motors", Access::ReadWrite).await.expect("open");
        for rate in [1_000, 5_000, 40_000] {
            run_tcp(port, rate, secs).row("TCP loopback records (baseline)", rate);
            run_xoq(&mut dev, rate, secs).await.row("xoq: Damiao sim -> QUIC -> client", rate);
        }
        let mut best = 0;
        for rate in [60_000, 80_000, 100_000, 150_000, 200_000] {
            let mut r = run_xoq(&mut dev, rate, secs).await;
            let ok = r.lossless(rate);
            r.row("xoq (ramp)", rate);
            if !ok {
                break;
            }
            best = rate;
        }
        println!("\nhighest lossless sustained rate tried: {best} frames/s (a 0 means 60,000 already failed)");
    });
}
