//! Which local device a serial port becomes: with `--serial-device auto` (the default) a CUSE
//! tty where `/dev/cuse` can be opened, else a PTY with the reason printed; with
//! `--serial-device cuse` and no usable `/dev/cuse`, a clear failure. The CUSE tty itself is
//! tested in the VM (tests/vm/suites/cuse.sh): this host has no CUSE.

use std::time::Duration;

use xoq_tests_host::{Env, Mount, Server, Tty};

fn cuse_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/cuse")
        .is_ok()
}

/// A server with one simulated echo port, and a client allowed to use it.
fn echo_server() -> (Env, Server) {
    let env = Env::new();
    env.authorize("laptop", &[]);
    let server = Server::with_sim_echo(&env);
    (env, server)
}

#[test]
fn auto_falls_back_to_a_pty_and_says_why_or_makes_a_cuse_tty() {
    let (env, server) = echo_server();
    let mount = Mount::start(
        &env,
        "laptop",
        &server.ticket,
        1,
        &["--serial-device", "auto"],
    );
    let seen = mount.proc.seen.join("\n");
    if cuse_usable() {
        assert!(seen.contains("cuse tty"), "{seen}");
    } else {
        assert!(
            seen.contains("using a PTY for echo0: ") && seen.contains("/dev/cuse"),
            "the fallback names its reason: {seen}"
        );
    }
    let tty = Tty::open_raw(&mount.links[0]);
    tty.write_all(b"hello", Duration::from_secs(10));
    assert_eq!(tty.read_exact(5, Duration::from_secs(10)), b"hello");
}

#[test]
fn cuse_without_dev_cuse_fails_with_the_reason() {
    if cuse_usable() {
        return; // this machine has CUSE: the VM suite covers what happens then
    }
    let (env, server) = echo_server();
    let (code, stderr) =
        Mount::expect_failure(&env, "laptop", &server.ticket, &["--serial-device", "cuse"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("/dev/cuse"), "{stderr}");
}
