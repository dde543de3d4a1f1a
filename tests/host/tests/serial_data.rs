//! Bytes typed into /dev/ttyXOQ0 come out of the remote port, intact and in order, and back.

use std::time::{Duration, Instant};

use rand::RngCore;
use xoq_tests_host::proc::cpu_seconds;
use xoq_tests_host::{Env, HardwarePty, Mount, Server, Tty};

const MIB: usize = 1024 * 1024;
const T: Duration = Duration::from_secs(120);

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

#[test]
fn one_mebibyte_each_way_through_a_real_pty_port() {
    let env = Env::new();
    let hw = HardwarePty::new();
    env.authorize("laptop", &[]);
    let server = Server::with_pty_port(&env, &hw);
    let mount = Mount::start(&env, "laptop", &server.ticket, 1, &[]);
    assert!(
        mount.links[0].ends_with("ttyXOQ0"),
        "first link is ttyXOQ0: {:?}",
        mount.links
    );
    let tty = Tty::open_raw(&mount.links[0]);
    // Opening and setting raw mode happen before the mount's settings reach the port.
    std::thread::sleep(Duration::from_millis(300));
    hw.master.drain();

    // program -> remote port
    let up = random(MIB);
    std::thread::scope(|s| {
        let writer = s.spawn(|| tty.write_all(&up, T));
        let got = hw.master.read_exact(MIB, T);
        writer.join().expect("writer thread");
        assert_eq!(got.len(), MIB, "bytes at the remote port");
        assert!(
            got == up,
            "1 MiB arrived at the remote port, but not intact and in order"
        );
    });

    // remote port -> program
    let down = random(MIB);
    std::thread::scope(|s| {
        let writer = s.spawn(|| hw.master.write_all(&down, T));
        let got = tty.read_exact(MIB, T);
        writer.join().expect("writer thread");
        assert_eq!(got.len(), MIB, "bytes read from /dev/ttyXOQ0");
        assert!(
            got == down,
            "1 MiB arrived at /dev/ttyXOQ0, but not intact and in order"
        );
    });

    // The mounter's counters saw it all.
    let status = env.run("xoq-mount", "laptop", &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(status.trim()).expect("status json");
    let dev = &v["devices"][0];
    assert_eq!(v["link"], "connected");
    assert!(
        dev["tx_bytes"].as_u64().unwrap_or(0) >= MIB as u64,
        "{status}"
    );
    assert!(
        dev["rx_bytes"].as_u64().unwrap_or(0) >= MIB as u64,
        "{status}"
    );
}

#[test]
fn simulated_echo_answers_what_is_written() {
    let env = Env::new();
    env.authorize("laptop", &["--devices", "echo0"]);
    let server = Server::with_sim_echo(&env);
    let mount = Mount::start(&env, "laptop", &server.ticket, 1, &[]);
    let tty = Tty::open_raw(&mount.links[0]);
    echo_lines(&tty, 20, "ping", "over xoq");
    // Loopback loses nothing, so the writes were not copied (`xoq_link::copies::CopyMode`):
    // the mounter counts them as not needed (its status is refreshed every second).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let copies = &env.mount_status("laptop")["copies"];
        if copies["unneeded"].as_u64().unwrap_or(0) >= 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes on a clean path were copied anyway: {copies}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Writes `n` numbered lines and checks each comes back, whole, before the next.
fn echo_lines(tty: &Tty, n: usize, head: &str, tail: &str) {
    for i in 0..n {
        let msg = format!("{head} {i:04} {tail}\n");
        tty.write_all(msg.as_bytes(), T);
        assert_eq!(
            tty.read_exact(msg.len(), Duration::from_secs(10)),
            msg.as_bytes()
        );
    }
}

/// `XOQ_BUSY_POLL_US` on both daemons: echoes still arrive intact, the mounter polled a window
/// per exchange, and once the traffic stops both daemons go back to sleep instead of spinning.
#[test]
fn busy_polling_daemons_echo_and_then_go_back_to_sleep() {
    let mut env = Env::new();
    env.authorize("laptop", &["--devices", "echo0"]);
    env.set_var("XOQ_BUSY_POLL_US", "2000");
    let server = Server::with_sim_echo(&env);
    let mount = Mount::start(&env, "laptop", &server.ticket, 1, &[]);
    let tty = Tty::open_raw(&mount.links[0]);
    echo_lines(&tty, 200, "busy", "poll");
    let poll = &env.mount_status("laptop")["busy_poll"];
    assert_eq!(poll["window_us"], 2000, "status: {poll}");
    let windows = poll["windows"].as_u64().unwrap_or(0);
    assert!(windows >= 1, "the mounter polled after traffic: {poll}");
    assert!(
        server
            .proc
            .stderr()
            .contains("busy polling after device traffic"),
        "the server polls too: {}",
        server.proc.stderr()
    );

    // Quiet: a poller that never stopped would use the whole measured second (or, sharing
    // two busy cores, still far more than a keep-alive's handful of milliseconds).
    std::thread::sleep(Duration::from_millis(300));
    let pids = [server.proc.child.id(), mount.proc.child.id()];
    let before = pids.map(cpu_seconds);
    std::thread::sleep(Duration::from_secs(2));
    for (pid, t0) in pids.into_iter().zip(before) {
        let used = cpu_seconds(pid) - t0;
        assert!(
            used < 0.4,
            "process {pid} used {used:.2} s of CPU in 2 s without traffic: busy polling did not stop"
        );
    }
}
