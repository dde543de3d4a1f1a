//! A serial port mounted from a real `moq-relay`: `xoq-mount moq://HOST:PORT/PREFIX/SERVER
//! --token T` makes the PTY `/dev/ttyXOQ0` of a port the server publishes there. Bytes typed
//! into it come out of the remote port and the port's bytes come back, a mount whose token only
//! watches reads the port but never writes it, both survive a relay restart, and a mount with
//! no token or a refused one fails with the reason.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::RngCore;
use tokio::task::block_in_place;
use xoq_tests_host::relay_lab::{RelayLab, PREFIX};
use xoq_tests_host::{Env, HardwarePty, Mount, Tty};

const T: Duration = Duration::from_secs(30);

fn relay_target(lab: &RelayLab) -> String {
    format!(
        "moq://{}/{PREFIX}/testbot",
        lab.url().trim_start_matches("https://")
    )
}

/// Starts `xoq-mount` on the relay as `client` with `token`, waiting for one device.
fn mount(env: &Env, lab: &RelayLab, client: &str, token: &str, first_index: &str) -> Mount {
    let fingerprint = lab.fingerprint();
    Mount::start(
        env,
        client,
        &relay_target(lab),
        1,
        &[
            "--token",
            token,
            "--relay-fingerprint",
            &fingerprint,
            "--first-index",
            first_index,
        ],
    )
}

/// Reads `tty` until `needle` has arrived (true) or `within` passed (false).
fn read_until(tty: &Tty, needle: &[u8], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        seen.extend(tty.read_for(Duration::from_millis(100)));
        if seen.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
    }
    false
}

/// Writes `line` to `tty` until `port` reads it (the writer's command broadcast is served a
/// moment after the mount opens the device), for at most `within`.
fn write_until_received(tty: &Tty, port: &Tty, line: &[u8], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        tty.write_all(line, T);
        if read_until(port, line, Duration::from_millis(700)) {
            return true;
        }
    }
    false
}

fn open(link: &Path) -> Tty {
    let tty = Tty::open_raw(link);
    tty.drain();
    tty
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serial_port_mounted_from_the_relay_carries_bytes_both_ways_for_its_writer_only() {
    let mut lab = RelayLab::start().await;
    let env = Env::new();
    let hw = HardwarePty::new();
    let port_arg = hw.serve_arg("ttyUSB0");
    let server = lab.serve(&env, &["--serial", &port_arg]);
    let writer_token = lab.client_token("", "ttyUSB0", "laptop");
    let watcher_token = lab.client_token("ttyUSB0", "", "watcher");

    let (mut writer, mut watcher) = block_in_place(|| {
        (
            mount(&env, &lab, "laptop", &writer_token, "0"),
            mount(&env, &lab, "watcher", &watcher_token, "1"),
        )
    });
    let (tty, watching) = block_in_place(|| (open(&writer.links[0]), open(&watcher.links[0])));
    block_in_place(|| hw.master.drain());

    // program -> remote port, through the relay.
    let ok = block_in_place(|| write_until_received(&tty, &hw.master, b"<hello>", T));
    assert!(
        ok,
        "bytes typed into the mounted tty never reached the remote port\nserver: {}\nmount: {}",
        server.proc.stderr(),
        writer.proc.stderr()
    );
    let mut up = vec![0u8; 64 * 1024];
    rand::rng().fill_bytes(&mut up);
    let got = block_in_place(|| {
        std::thread::scope(|s| {
            let w = s.spawn(|| tty.write_all(&up, T));
            let got = hw.master.read_exact(up.len(), T);
            w.join().expect("writer");
            got
        })
    });
    assert!(
        got == up,
        "64 KiB typed into the tty reached the remote port as {} bytes, not intact and in order",
        got.len()
    );

    // remote port -> both mounts.
    block_in_place(|| {
        hw.master.write_all(b"[from the robot]", T);
        assert!(
            read_until(&tty, b"[from the robot]", T),
            "the port's bytes did not reach the writer's tty"
        );
        assert!(
            read_until(&watching, b"[from the robot]", T),
            "the port's bytes did not reach the watcher's tty"
        );
    });

    // The watcher's writes never reach the port, and its mount says it is read-only.
    block_in_place(|| {
        for _ in 0..3 {
            watching.write_all(b"<watcher>", T);
        }
        assert!(
            !read_until(&hw.master, b"<watcher>", Duration::from_secs(2)),
            "a watcher's bytes reached the remote port"
        );
        let status = env.mount_status("watcher");
        assert_eq!(
            status["devices"][0]["access"], "ro",
            "watcher's status: {status}"
        );
        assert_eq!(status["devices"][0]["errors"], 1, "{status}");
    });

    // The relay restarts: the ttys stay, and bytes flow again both ways once it is back.
    lab.restart().await;
    block_in_place(|| {
        assert!(
            writer.links[0].exists() && watcher.links[0].exists(),
            "a tty went away with the relay"
        );
        assert!(
            write_until_received(
                &tty,
                &hw.master,
                b"<after restart>",
                Duration::from_secs(60)
            ),
            "the writer's bytes did not reach the port after the relay restarted\nmount: {}",
            writer.proc.stderr()
        );
        hw.master.write_all(b"[back]", T);
        assert!(
            read_until(&watching, b"[back]", T),
            "the watcher did not read the port after the relay restarted\nmount: {}",
            watcher.proc.stderr()
        );
    });
    let _ = (&mut writer, &mut watcher);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_from_the_relay_needs_a_token_the_relay_accepts() {
    let lab = RelayLab::start().await;
    let env = Env::new();
    let _server = lab.serve(&env, &["--sim-serial", "tty0"]);
    let fingerprint = lab.fingerprint();
    let target = relay_target(&lab);

    let watch = xoq_moq::Grants {
        subscribe: vec!["tty0".into()],
        ..Default::default()
    };
    // Signed by a key the relay does not trust, and a token for another server.
    let forged = lab.foreign_token("testbot", &watch);
    let other = lab.token("otherbot", &watch, Duration::from_secs(600));
    // (client, token, what the error must say)
    let cases = [
        ("anon", None, "--token"),
        ("forger", Some(forged), "relay"),
        ("lost", Some(other), "otherbot"),
    ];
    for (client, token, says) in cases {
        let mut args = vec!["--relay-fingerprint", fingerprint.as_str()];
        if let Some(t) = &token {
            args.extend(["--token", t.as_str()]);
        }
        let (code, err) = block_in_place(|| Mount::expect_failure(&env, client, &target, &args));
        assert_eq!(code, Some(1), "{client}: {err}");
        assert!(err.contains(says), "{client}: {err}");
    }
}
