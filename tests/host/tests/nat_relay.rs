//! Through NAT, by a self-hosted relay: the server and the mounter each in a private network
//! behind its own NAT router, with no route between them; a real `iroh-relay` (TLS with a CA
//! of the lab's own, QUIC address discovery) on the "internet" between the NATs (`natlab`).
//! - the server is not reachable at the address in its ticket (a mounter given only that stays
//!   disconnected), so everything below goes through the relay or a punched hole;
//! - with the ticket's relay the mounter connects, its serial port works, and the status shows
//!   the relay path; where the internet lets the NATs' public addresses talk, the connection
//!   moves to a direct path through both NATs (a hole punched) and keeps working;
//! - where it does not, the connection stays on the relay, and bytes cross both ways intact;
//! - a client whose id is not on the relay's allowlist does not reach the server through it.

use std::time::{Duration, Instant};

use xoq_tests_host::natlab::{Internet, NatLab, SERVER_PORT};
use xoq_tests_host::{Env, HardwarePty, Mount, Server, Tty};

const T: Duration = Duration::from_secs(60);

/// The lab, its relay open to this test's server and mounter only.
fn lab(env: &Env, internet: Internet) -> NatLab {
    let server = env.run("xoq-server", "server", &["id"]).trim().to_string();
    NatLab::new(internet, &[server, env.client_id("laptop")])
}

/// A server whose port is `hw`, behind the server's NAT, with the lab's relay.
fn serve(lab: &NatLab, env: &mut Env, hw: &HardwarePty) -> Server {
    lab.place(env, "laptop");
    env.authorize("laptop", &[]);
    let ca = lab.relay_ca().to_string_lossy().to_string();
    Server::start_on(
        env,
        lab.server_ip(),
        SERVER_PORT,
        &[
            "--serial".into(),
            hw.serve_arg("ttyUSB0"),
            "--relay".into(),
            lab.relay_url(),
            "--relay-ca".into(),
            ca,
        ],
    )
}

fn mount(lab: &NatLab, env: &Env, server: &Server) -> Mount {
    let ca = lab.relay_ca().to_string_lossy().to_string();
    Mount::start(env, "laptop", &server.ticket, 1, &["--relay-ca", &ca])
}

/// Sends `n` bytes each way between the mounted tty and the port, both at once (the line
/// paces writes: a side that is not read stops its writer), and checks them.
fn exchange(tty: &Tty, hw: &HardwarePty, n: usize, salt: u8) {
    let up: Vec<u8> = (0..n).map(|i| (i % 251) as u8 ^ salt).collect();
    let down: Vec<u8> = up.iter().rev().copied().collect();
    let (at_port, at_tty) = std::thread::scope(|s| {
        s.spawn(|| tty.write_all(&up, T));
        s.spawn(|| hw.master.write_all(&down, T));
        let at_port = s.spawn(|| hw.master.read_exact(n, T));
        let at_tty = tty.read_exact(n, T);
        (at_port.join().expect("port reader"), at_tty)
    });
    assert!(
        at_port == up,
        "tty -> port: bytes lost, repeated or reordered"
    );
    assert!(
        at_tty == down,
        "port -> tty: bytes lost, repeated or reordered"
    );
}

/// The path the mounter reports, once it is connected.
fn path(env: &Env) -> String {
    let s = env.mount_status("laptop");
    s["path"].as_str().unwrap_or_default().to_string()
}

/// Waits until the reported path starts with `prefix`; panics with the last one seen.
fn wait_path(env: &Env, prefix: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let p = path(env);
        if p.starts_with(prefix) {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "the path is `{p}`, not `{prefix}...`, after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Prints the logs of the server, the mounter and the relay if the test fails.
struct LogsOnFailure<'a>(&'a NatLab, &'a Server, &'a Mount);

impl Drop for LogsOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- server\n{}", self.1.proc.stderr());
            eprintln!("--- mounter\n{}", self.2.proc.stderr());
            eprintln!("--- relay\n{}", self.0.relay_log());
        }
    }
}

#[test]
fn through_two_nats_the_relay_connects_and_a_punched_hole_takes_over() {
    let mut env = Env::new();
    let lab = lab(&env, Internet::Open);
    let hw = HardwarePty::new();
    if let Ok(log) = std::env::var("XOQ_TEST_LOG") {
        env.set_var("XOQ_LOG", log);
    }
    let server = serve(&lab, &mut env, &hw);
    let mount = mount(&lab, &env, &server);
    let _logs = LogsOnFailure(&lab, &server, &mount);
    let tty = hw.open_synced(&mount.links[0]);
    exchange(&tty, &hw, 4096, 1);
    // The hole is punched within seconds; the QUIC connection moves to the direct path
    // without a reconnection.
    let direct = wait_path(&env, "direct ", Duration::from_secs(30));
    assert!(
        direct.contains(&lab.server_public_ip()),
        "the direct path goes to the server's NAT ({}), not {direct}",
        lab.server_public_ip()
    );
    exchange(&tty, &hw, 64 * 1024, 2);
    let s = env.mount_status("laptop");
    assert_eq!(s["reconnects"], 0, "{s}");
}

#[test]
fn where_no_hole_can_be_punched_the_link_stays_on_the_relay() {
    let mut env = Env::new();
    let lab = lab(&env, Internet::RelayOnly);
    let hw = HardwarePty::new();
    let server = serve(&lab, &mut env, &hw);
    // Without the relay the server cannot be reached at all: a mounter with only the address
    // the server listens on stays disconnected.
    {
        let addr = format!("{}:{SERVER_PORT}", lab.server_ip());
        let _m = spawn_unmounted(&env, &[&server.id, "--addr", &addr]);
        std::thread::sleep(Duration::from_secs(3));
        let s = env.mount_status("laptop");
        assert_ne!(s["link"], "connected", "reached the private address: {s}");
    }
    let mount = mount(&lab, &env, &server);
    let _logs = LogsOnFailure(&lab, &server, &mount);
    let tty = hw.open_synced(&mount.links[0]);
    assert_eq!(
        wait_path(&env, "relay ", Duration::from_secs(10)),
        format!("relay {}/", lab.relay_url())
    );
    exchange(&tty, &hw, 64 * 1024, 3);
    // Still on the relay, still the same connection.
    let s = env.mount_status("laptop");
    assert!(
        s["path"].as_str().unwrap_or("").starts_with("relay "),
        "{s}"
    );
    assert_eq!(s["reconnects"], 0, "{s}");
}

/// A mounter of server `id` at `addr` only (no relay), which never mounts anything here.
/// A mounter started with `args` that is not expected to mount anything (so not waited for).
fn spawn_unmounted(env: &Env, args: &[&str]) -> xoq_tests_host::proc::Proc {
    let mut cmd = env.cmd("xoq-mount", "laptop");
    cmd.args(args)
        .args(["--serial-device", "pty", "--link-dir"])
        .arg(env.links());
    xoq_tests_host::proc::Proc::spawn(cmd, env.path("unmounted.err"))
}

#[test]
fn a_client_not_on_the_relays_allowlist_cannot_reach_the_server_through_it() {
    let mut env = Env::new();
    // The relay lets only the server in: the mounter's relay connection is refused, and with
    // no hole to punch (relay-only internet) it never reaches the server.
    let server_id = env.run("xoq-server", "server", &["id"]).trim().to_string();
    let lab = NatLab::new(Internet::RelayOnly, &[server_id]);
    let hw = HardwarePty::new();
    let server = serve(&lab, &mut env, &hw);
    let ca = lab.relay_ca().to_string_lossy().to_string();
    let _m = spawn_unmounted(&env, &[&server.ticket, "--relay-ca", &ca]);
    std::thread::sleep(Duration::from_secs(5));
    let s = env.mount_status("laptop");
    assert_ne!(
        s["link"], "connected",
        "reached the server through the relay: {s}"
    );
    assert!(
        std::fs::read_dir(env.links()).map_or(true, |mut d| d.next().is_none()),
        "something was mounted"
    );
}
