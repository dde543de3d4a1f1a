//! The serial port over an impaired network: the server and the mounter in separate network
//! namespaces, the only path between them a seeded impaired link (`netlab`), so the outcomes
//! below hold for the same lost packets on every run.
//! - `wan` (40 ms RTT, 1 % loss each way): 1 MiB crosses each way at once, none lost,
//!   duplicated or reordered.
//! - small writes through a lossy link: each arrives once and in order, the copies sent beside
//!   the stream (`xoq_wire::copy`) were used in both directions when the stream's packet was
//!   lost.
//! - an outage (`wan` plus a 3 s blackhole, within the idle timeout; and 8 s, beyond it, so
//!   the connection is made again): the tty stays, lines written during the outage reach the
//!   port once and in order, and traffic resumes within a second of the link's return.
//!
//! Figures (round trips, throughput, recovery at every profile) are in `net_bench`.

use std::time::{Duration, Instant};

use xoq_impair::{LinkSpec, Loss, Profile};
use xoq_tests_host::netlab::{NetLab, SERVER_PORT};
use xoq_tests_host::{Env, HardwarePty, Mount, Server};

const T: Duration = Duration::from_secs(60);

/// A server whose port is `hw`, in `lab`'s server namespace, and a PTY mount of it through
/// the relay.
fn mounted(lab: &NetLab, env: &mut Env, hw: &HardwarePty) -> (Server, Mount) {
    lab.place(env, "laptop");
    env.authorize("laptop", &[]);
    let server = Server::start_on(
        env,
        lab.server_ip(),
        SERVER_PORT,
        &["--serial".into(), hw.serve_arg("ttyUSB0")],
    );
    let mount = Mount::start(env, "laptop", &server.ticket, 1, &[]);
    (server, mount)
}

/// `len` bytes of a pattern that shows a lost, repeated or swapped chunk.
fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 251) as u8).wrapping_mul(31) ^ (i % 251) as u8 ^ salt)
        .collect()
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    let at = a.iter().zip(b).position(|(x, y)| x != y);
    format!(
        "lengths {} and {}, first difference at {at:?}",
        a.len(),
        b.len()
    )
}

#[test]
fn at_wan_bytes_cross_both_ways_with_none_lost_duplicated_or_reordered() {
    let lab = NetLab::new(Profile::named("wan").expect("wan"), 1);
    let mut env = Env::new();
    let hw = HardwarePty::new();
    let (_server, mount) = mounted(&lab, &mut env, &hw);
    let tty = hw.open_synced(&mount.links[0]);
    // About 1100 packets each way: at 1 % a loss is all but certain (and seeded).
    const LEN: usize = 1024 * 1024;
    let (up, down) = (pattern(LEN, 0x55), pattern(LEN, 0xaa));
    let (at_port, at_tty) = std::thread::scope(|s| {
        s.spawn(|| {
            for c in up.chunks(1000) {
                tty.write_all(c, T);
            }
        });
        s.spawn(|| {
            for c in down.chunks(1000) {
                hw.master.write_all(c, T);
            }
        });
        let reader = s.spawn(|| tty.read_exact(LEN, T * 2));
        let at_port = hw.master.read_exact(LEN, T * 2);
        (at_port, reader.join().expect("reader"))
    });
    assert!(
        at_port == up,
        "mounter -> port: {}",
        first_difference(&at_port, &up)
    );
    assert!(
        at_tty == down,
        "port -> mounter: {}",
        first_difference(&at_tty, &down)
    );
    // Nothing more arrives (a duplicate would show here).
    assert!(hw.master.read_for(Duration::from_millis(300)).is_empty());
    assert!(tty.read_for(Duration::from_millis(300)).is_empty());
    let (c_up, c_down) = lab.link.counters();
    assert!(
        c_up.lost > 0 && c_down.lost > 0,
        "the profile lost no packet, so the test proved nothing: {c_up:?} {c_down:?}"
    );
}

#[test]
fn small_writes_lost_on_the_stream_arrive_once_by_their_copy() {
    // 5 ms each way and 5 % loss each way: 400 round trips lose about 40 stream packets.
    let lossy = LinkSpec {
        loss: Loss::Random(0.05),
        ..LinkSpec::delay(Duration::from_millis(5))
    };
    let profile = Profile {
        name: "lossy".into(),
        up: lossy,
        down: lossy,
        blackholes: None,
    };
    let lab = NetLab::new(profile, 5);
    let mut env = Env::new();
    let hw = HardwarePty::new();
    let (server, mut mount) = mounted(&lab, &mut env, &hw);
    let tty = hw.open_synced(&mount.links[0]);
    const ROUNDS: usize = 400;
    std::thread::scope(|s| {
        // The port echoes each 32-byte line.
        s.spawn(|| {
            for _ in 0..ROUNDS {
                let line = hw.master.read_exact(32, T);
                if line.is_empty() {
                    return;
                }
                hw.master.write_all(&line, T);
            }
        });
        for i in 0..ROUNDS {
            let line = format!("round trip {i:05} of the copies.\n");
            assert_eq!(line.len(), 32);
            tty.write_all(line.as_bytes(), T);
            let echo = tty.read_exact(32, T);
            assert_eq!(
                String::from_utf8_lossy(&echo),
                line,
                "round trip {i}: an echo lost, repeated or out of order"
            );
        }
    });
    assert!(hw.master.read_for(Duration::from_millis(300)).is_empty());
    assert!(tty.read_for(Duration::from_millis(300)).is_empty());
    // The mounter's status (refreshed every second) counts the server's copies it used.
    let deadline = Instant::now() + Duration::from_secs(5);
    let down_used = loop {
        let status = env.run("xoq-mount", "laptop", &["status", "--json"]);
        let status: serde_json::Value = serde_json::from_str(&status).unwrap_or_default();
        let used = status["copies"]["used"].as_u64().unwrap_or(0);
        if used > 0 || Instant::now() > deadline {
            break used;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // The server logs the mounter's copies it used when the connection ends.
    drop(tty);
    mount.proc.signal(nix::sys::signal::Signal::SIGTERM);
    mount.proc.wait_exit(T);
    let up_used = server.copies_used(T).unwrap_or_else(|| {
        panic!(
            "the server logged no disconnection with its copies: {}",
            server.proc.stderr()
        )
    });
    let (c_up, c_down) = lab.link.counters();
    eprintln!("copies used: up {up_used}, down {down_used}; link {c_up:?} {c_down:?}");
    assert!(c_up.lost > 0 && c_down.lost > 0, "nothing was lost");
    assert!(up_used > 0, "no write was delivered by its copy");
    assert!(down_used > 0, "no echo was delivered by its copy");
}

/// Writes 300 lines at 20 ms intervals through a `wan` link that blacks out for `outage`
/// after 1.5 s; checks every line reaches the port once, in order, through the same open tty,
/// and that traffic resumed within a second of the link's return. Returns the mounter's
/// status afterwards.
fn lines_across_an_outage(seed: u64, outage: Duration) -> String {
    let lab = NetLab::new(Profile::named("wan").expect("wan"), seed);
    let mut env = Env::new();
    let hw = HardwarePty::new();
    let (_server, mount) = mounted(&lab, &mut env, &hw);
    let tty = hw.open_synced(&mount.links[0]);
    const LINES: usize = 300;
    let want: Vec<u8> = (0..LINES)
        .flat_map(|i| format!("line {i:04}\n").into_bytes())
        .collect();
    let (got, arrivals, outage_end) = std::thread::scope(|s| {
        s.spawn(|| {
            for line in want.chunks(10) {
                tty.write_all(line, T);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let ends = s.spawn(|| {
            std::thread::sleep(Duration::from_millis(1500));
            lab.link.blackhole(outage);
            Instant::now() + outage
        });
        let t0 = Instant::now();
        let mut got = Vec::new();
        let mut arrivals = Vec::new();
        while got.len() < want.len() && t0.elapsed() < T * 2 {
            let chunk = hw
                .master
                .read_exact(want.len() - got.len(), Duration::from_millis(20));
            if !chunk.is_empty() {
                arrivals.push((Instant::now(), got.len()));
                got.extend(chunk);
            }
        }
        got.extend(hw.master.read_for(Duration::from_millis(500)));
        (got, arrivals, ends.join().expect("outage"))
    });
    let text = String::from_utf8_lossy(&got);
    assert!(got == want, "lines lost, repeated or out of order: {text}");
    // The first bytes after the outage: the link came back without tearing the tty down.
    let resumed = arrivals
        .iter()
        .find(|(t, _)| *t >= outage_end)
        .map(|(t, _)| t.duration_since(outage_end))
        .expect("bytes arrived after the outage");
    eprintln!("traffic resumed {resumed:?} after the link returned");
    let (c_up, _) = lab.link.counters();
    assert!(
        c_up.blackholed > 0,
        "the outage swallowed nothing: {c_up:?}"
    );
    assert!(
        resumed < Duration::from_secs(1),
        "traffic resumed {resumed:?} after the link returned (at most 1 s)"
    );
    env.run("xoq-mount", "laptop", &["status", "--json"])
}

#[test]
fn through_an_outage_the_tty_stays_and_every_line_arrives_once_in_order() {
    let status = lines_across_an_outage(2, Duration::from_secs(3));
    assert!(
        status.contains("\"reconnects\":0"),
        "3 s is within the idle timeout: {status}"
    );
}

#[test]
fn after_an_outage_longer_than_the_idle_timeout_the_link_is_back_within_a_second() {
    let status = lines_across_an_outage(4, Duration::from_secs(8));
    assert!(
        !status.contains("\"reconnects\":0"),
        "the connection was given up and made again: {status}"
    );
}
