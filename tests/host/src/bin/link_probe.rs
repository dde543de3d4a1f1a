//! Link probe (a benchmark, not a test): measures a network link itself, not the QUIC stack,
//! the same way through either impairment of a named profile, so the userspace one can be
//! cross-checked against the kernel's `netem`. UDP probes (sequence number + send time) go
//! from a client namespace to an echo in a server namespace and back; prints ONE JSON line:
//! round trips (p50, p99, min), loss each way, reordering.
//!
//! - `--via impair`: `NetLab` (two namespaces joined by `xoq_impair::TunLink`, this process).
//! - `--via netem`: namespaces `xoqn-s`/`xoqn-c` joined by veth `xoqn-vs`/`xoqn-vc`, with
//!   `tc qdisc ... root netem` on each end's egress (up = client -> server on `xoqn-vc`)
//!   mapped from the profile's `LinkSpec`; the output names what could not be mapped. netem
//!   has no seed on Linux 6.1: its losses differ from run to run.
//!
//! Needs root, `ip` and `tc` (iproute2), `/dev/net/tun` (impair), `sch_netem` + `veth` (netem).
//! Run: `link_probe --via impair|netem [--profile wan] [--seconds 30] [--rate 200] [--seed 1]`

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xoq_impair::{LinkSpec, Loss, Profile};
use xoq_tests_host::labcmd::{must, run};
use xoq_tests_host::netlab::{NetLab, SERVER_PORT};
use xoq_tests_host::stats::percentile;

const PROBE_LEN: usize = 64;
const WARMUP: u64 = u64::MAX;

fn arg(name: &str, default: &str) -> String {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn num<T: std::str::FromStr>(name: &str, default: &str) -> T {
    arg(name, default)
        .parse()
        .unwrap_or_else(|_| panic!("{name}: not a number"))
}

/// The netem arguments for one direction, and the parameters of `s` they leave out.
fn netem_args(s: &LinkSpec, unmapped: &mut Vec<String>, dir: &str) -> Vec<String> {
    let us = |d: Duration| format!("{}us", d.as_micros());
    let pct = |p: f64| format!("{}%", p * 100.0);
    let mut a = vec!["delay".to_string(), us(s.delay)];
    if !s.jitter.is_zero() {
        // netem draws per packet and reorders by send time; the model's jitter wanders smoothly
        // (jitter_period) and keeps order: same spread, different shape.
        a.extend([us(s.jitter), "distribution".into(), "normal".into()]);
        unmapped.push(format!("{dir}.jitter_period"));
    }
    match s.loss {
        Loss::None => {}
        Loss::Random(p) => a.extend(["loss".into(), "random".into(), pct(p)]),
        Loss::GilbertElliott {
            p_enter_bad,
            p_leave_bad,
            loss_good,
            loss_bad,
        } => a.extend([
            "loss".into(),
            "gemodel".into(),
            pct(p_enter_bad),
            pct(p_leave_bad),
            pct(1.0 - loss_bad),
            pct(1.0 - loss_good),
        ]),
    }
    if s.duplicate > 0.0 {
        a.extend(["duplicate".into(), pct(s.duplicate)]);
    }
    if let Some(bps) = s.rate_bps {
        a.extend(["rate".into(), format!("{bps}bit")]);
        // netem's limit counts packets, the model's queue bytes: assume full-size packets.
        let limit = (s.queue_bytes / 1500).max(1);
        a.extend(["limit".into(), limit.to_string()]);
    }
    if s.reorder > 0.0 {
        // netem sends a reordered packet at once; the model holds it back by reorder_gap.
        unmapped.push(format!("{dir}.reorder"));
    }
    a
}

/// Namespaces `xoqn-s`/`xoqn-c` joined by a veth pair with netem on both ends; removed on drop.
struct NetemLab;

const NETEM_NS: [(&str, &str, &str); 2] = [
    ("xoqn-s", "xoqn-vs", "10.211.0.1/24"),
    ("xoqn-c", "xoqn-vc", "10.211.0.2/24"),
];

impl NetemLab {
    fn new(p: &Profile, unmapped: &mut Vec<String>) -> (NetemLab, [Vec<String>; 2]) {
        NetemLab::remove(); // stale ones from a killed run
        let lab = NetemLab;
        for (ns, _, _) in NETEM_NS {
            must("ip", &["netns", "add", ns]);
        }
        must(
            "ip",
            &[
                "link", "add", "xoqn-vs", "type", "veth", "peer", "name", "xoqn-vc",
            ],
        );
        let down = netem_args(&p.down, unmapped, "down");
        let up = netem_args(&p.up, unmapped, "up");
        for ((ns, dev, addr), args) in NETEM_NS.into_iter().zip([&down, &up]) {
            must("ip", &["link", "set", dev, "netns", ns]);
            must("ip", &["-n", ns, "addr", "add", addr, "dev", dev]);
            must("ip", &["-n", ns, "link", "set", dev, "up"]);
            must("ip", &["-n", ns, "link", "set", "lo", "up"]);
            let mut tc = vec!["-n", ns, "qdisc", "add", "dev", dev, "root", "netem"];
            tc.extend(args.iter().map(String::as_str));
            must("tc", &tc);
        }
        (lab, [up, down])
    }

    fn remove() {
        for (ns, dev, _) in NETEM_NS {
            let _ = run("ip", &["netns", "del", ns]);
            let _ = run("ip", &["link", "del", dev]); // never moved into its namespace
        }
    }
}

impl Drop for NetemLab {
    fn drop(&mut self) {
        NetemLab::remove();
    }
}

fn probe(seq: u64, t0: Instant) -> [u8; PROBE_LEN] {
    let mut b = [0u8; PROBE_LEN];
    b[..8].copy_from_slice(&seq.to_be_bytes());
    b[8..16].copy_from_slice(&(t0.elapsed().as_nanos() as u64).to_be_bytes());
    b
}

fn field(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

/// Echoes every probe back to its sender until `stop`; returns the sequence numbers it saw.
fn echo(sock: UdpSocket, stop: Arc<AtomicBool>) -> HashSet<u64> {
    let mut seen = HashSet::new();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue; // read timeout: check `stop`
        };
        if n >= 16 {
            seen.insert(field(&buf, 0));
            let _ = sock.send_to(&buf[..n], from);
        }
    }
    seen
}

fn main() {
    let via = arg("--via", "impair");
    let name = arg("--profile", "wan");
    let secs: f64 = num("--seconds", "30");
    let rate: f64 = num("--rate", "200");
    let seed: u64 = num("--seed", "1");
    let profile = Profile::named(&name).unwrap_or_else(|| panic!("no profile {name}"));
    let mut unmapped = Vec::new();

    // The lab lives until the end of main, after every socket in it.
    let (mut impair, mut netem, mut netem_args) = (None, None, None);
    let (server_ns, client_ns, server_ip) = match via.as_str() {
        "impair" => {
            let lab = NetLab::new(profile.clone(), seed);
            let ns = (lab.server_ns(), lab.client_ns(), lab.server_ip());
            impair = Some(lab);
            ns
        }
        "netem" => {
            if profile.blackholes.is_some() {
                unmapped.push("blackholes".to_string());
            }
            let (lab, args) = NetemLab::new(&profile, &mut unmapped);
            netem = Some(lab);
            netem_args = Some(args.map(|a| a.join(" ")));
            let ip = IpAddr::V4(Ipv4Addr::new(10, 211, 0, 1));
            ("xoqn-s".to_string(), "xoqn-c".to_string(), ip)
        }
        _ => panic!("--via impair|netem"),
    };
    let server = SocketAddr::new(server_ip, SERVER_PORT);
    let srv = NetLab::run_in(&server_ns, || UdpSocket::bind(server)).expect("binding the echo");
    let cli = NetLab::run_in(&client_ns, || UdpSocket::bind("0.0.0.0:0")).expect("binding");
    for s in [&srv, &cli] {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
    }
    cli.connect(server).expect("connecting the probe socket");
    let stop = Arc::new(AtomicBool::new(false));
    let echo_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || echo(srv, stop))
    };

    // Warm-up (not counted): the first packet over a veth waits for ARP, itself impaired.
    let t0 = Instant::now();
    let mut buf = [0u8; 2048];
    let warm = (0..50).any(|_| {
        let _ = cli.send(&probe(WARMUP, t0));
        let until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < until {
            if matches!(cli.recv(&mut buf), Ok(n) if n >= 16 && field(&buf, 0) == WARMUP) {
                return true;
            }
        }
        false
    });
    assert!(warm, "no echo in 10 s: the link does not carry packets");

    let count = (secs * rate) as u64;
    let receiver = {
        let cli = cli.try_clone().expect("cloning the probe socket");
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut rtt_us, mut back, mut top, mut reordered) = (Vec::new(), HashSet::new(), 0, 0);
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let Ok(n) = cli.recv(&mut buf) else { continue };
                let seq = field(&buf, 0);
                if n < 16 || seq >= count || !back.insert(seq) {
                    continue; // warm-up, stray or duplicate
                }
                let now = t0.elapsed().as_nanos() as u64;
                rtt_us.push(now.saturating_sub(field(&buf, 8)) / 1000);
                if seq < top {
                    reordered += 1;
                }
                top = top.max(seq);
            }
            (rtt_us, back, reordered)
        })
    };
    let start = Instant::now();
    for seq in 0..count {
        let due = start + Duration::from_secs_f64(seq as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if let Err(e) = cli.send(&probe(seq, t0)) {
            eprintln!("link_probe: send {seq}: {e}");
        }
    }
    let sending = start.elapsed().as_secs_f64();
    // Late echoes: a generous multiple of the profile's round trip, at least a second.
    std::thread::sleep((profile.base_rtt() * 10).max(Duration::from_secs(1)));
    stop.store(true, Ordering::Relaxed);
    let (mut rtt, back, reordered) = receiver.join().expect("receiver thread");
    let reached = echo_thread.join().expect("echo thread");
    let reached_probes: HashSet<u64> = reached.into_iter().filter(|s| *s < count).collect();
    let returned = back.intersection(&reached_probes).count();

    let ms = |us: u64| us as f64 / 1000.0;
    let pct = |part: usize, of: usize| 100.0 * part as f64 / of.max(1) as f64;
    let mut out = serde_json::json!({
        "via": via,
        "profile": name,
        "sent": count,
        "seconds": (sending * 100.0).round() / 100.0,
        "received": back.len(),
        "rtt_p50_ms": ms(percentile(&mut rtt, 0.5)),
        "rtt_p99_ms": ms(percentile(&mut rtt, 0.99)),
        "rtt_min_ms": ms(rtt.iter().copied().min().unwrap_or(0)),
        "loss_up_pct": pct(count as usize - reached_probes.len(), count as usize),
        "loss_down_pct": pct(reached_probes.len() - returned, reached_probes.len()),
        "reordered": reordered,
    });
    if let Some(lab) = &impair {
        out["seed"] = seed.into();
        // Every packet the carrier saw, the warm-up and the kernel's own (IPv6) included.
        out["carrier"] = lab.link.counters_json();
    }
    if let Some([up, down]) = &netem_args {
        // The tc arguments each direction got, and the profile's parameters netem did not.
        out["netem"] = serde_json::json!({ "up": up, "down": down, "unmapped": unmapped });
    }
    println!("{out}");
    drop(cli);
    drop(impair);
    drop(netem);
}
