//! Default deny: unknown clients are refused with a clear message and nothing is opened;
//! read-only clients see the port and cannot change it.

use std::time::Duration;

use xoq_tests_host::proc::free_udp_port;
use xoq_tests_host::{Env, HardwarePty, Mount, Server, Tty};

const T: Duration = Duration::from_secs(10);

#[test]
fn an_unauthorized_client_is_refused_with_a_clear_message() {
    let env = Env::new();
    let hw = HardwarePty::new();
    env.authorize("friend", &[]);
    let server = Server::with_pty_port(&env, &hw);
    let stranger = env.client_id("stranger");
    let (code, stderr) = Mount::expect_failure(&env, "stranger", &server.ticket, &[]);
    assert_eq!(code, Some(1), "refused mount exits 1; stderr: {stderr}");
    assert!(stderr.contains("not authorized"), "says why: {stderr}");
    assert!(
        stderr.contains(&format!("xoq-server authorize {stranger}")),
        "says what to do: {stderr}"
    );
    assert!(
        !env.links().join("ttyXOQ0").exists(),
        "nothing is mounted for a refused client"
    );
    // Nothing was opened on the server either: the authorized client gets the port read-write.
    let mount = Mount::start(&env, "friend", &server.ticket, 1, &[]);
    let tty = Tty::open_raw(&mount.links[0]);
    std::thread::sleep(Duration::from_millis(200));
    hw.master.drain();
    tty.write_all(b"friend", T);
    assert_eq!(hw.master.read_exact(6, T), b"friend");
}

#[test]
fn a_read_only_client_sees_the_port_but_cannot_write_or_configure_it() {
    let env = Env::new();
    let hw = HardwarePty::new();
    env.authorize("viewer", &["--read-only"]);
    env.authorize("driver", &[]);
    let server = Server::with_pty_port(&env, &hw);
    let viewer = Mount::start(&env, "viewer", &server.ticket, 1, &[]);
    assert!(
        viewer.proc.seen.iter().any(|l| l.contains("(ro,")),
        "mounted read-only: {:?}",
        viewer.proc.seen
    );
    let vtty = Tty::open_raw(&viewer.links[0]);
    std::thread::sleep(Duration::from_millis(300));
    hw.master.drain();
    let speed_before = hw.master.termios2().c_ospeed;

    // It reads what the port receives...
    hw.master.write_all(b"telemetry", T);
    assert_eq!(vtty.read_exact(9, T), b"telemetry");
    // ...but its writes and settings never reach the port.
    vtty.write_all(b"motor on", T);
    let mut t = vtty.termios2();
    t.c_cflag &= !libc::CBAUD;
    t.c_cflag |= libc::BOTHER;
    t.c_ospeed = 57_600;
    t.c_ispeed = 57_600;
    vtty.set_termios2(&t);
    assert_eq!(
        hw.master.read_for(Duration::from_secs(1)),
        b"",
        "a read-only client wrote to the port"
    );
    assert_eq!(
        hw.master.termios2().c_ospeed,
        speed_before,
        "a read-only client changed the speed"
    );
    // The server's refusal reaches the mounter's counters when it arrives.
    let deadline = std::time::Instant::now() + T;
    let status = loop {
        let status = env.run("xoq-mount", "viewer", &["status", "--json"]);
        if status.contains("\"errors\":") && !status.contains("\"errors\":0") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "refusals are not counted: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("viewer status: {status}");

    // A read-write client alongside it is unaffected and its output is seen by both.
    let driver = Mount::start(&env, "driver", &server.ticket, 1, &[]);
    let dtty = Tty::open_raw(&driver.links[0]);
    std::thread::sleep(Duration::from_millis(300));
    hw.master.drain();
    dtty.write_all(b"motor on", T);
    assert_eq!(hw.master.read_exact(8, T), b"motor on");
    hw.master.write_all(b"ack", T);
    assert_eq!(dtty.read_exact(3, T), b"ack");
    assert_eq!(vtty.read_exact(3, T), b"ack");
}

#[test]
fn a_second_read_write_client_is_refused_as_busy() {
    let env = Env::new();
    env.authorize("first", &[]);
    env.authorize("second", &[]);
    let server = Server::with_sim_echo(&env);
    let first = Mount::start(&env, "first", &server.ticket, 1, &[]);
    let second = Mount::start(&env, "second", &server.ticket, 1, &[]);
    let deadline = std::time::Instant::now() + T;
    let status = loop {
        let s = env.run("xoq-mount", "second", &["status", "--json"]);
        if s.contains("\"state\":\"busy\"") || std::time::Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.contains("\"state\":\"busy\""),
        "second writer is told busy: {status}"
    );
    assert!(
        second
            .proc
            .stderr()
            .contains("busy: echo0 is open read-write by another client (for "),
        "{}",
        second.proc.stderr()
    );
    // Busy says since when, never who.
    let first_id = env.client_id("first");
    assert!(
        !second.proc.stderr().contains(&first_id[..10]),
        "{}",
        second.proc.stderr()
    );
    // The first keeps working.
    let tty = Tty::open_raw(&first.links[0]);
    tty.write_all(b"still mine", T);
    assert_eq!(tty.read_exact(10, T), b"still mine");
}

#[test]
fn an_ungranted_name_gets_the_same_answer_whether_or_not_the_device_exists() {
    let env = Env::new();
    let server = Server::start(
        &env,
        free_udp_port(),
        &[
            "--sim-serial".into(),
            "echo0".into(),
            "--sim-serial".into(),
            "secret0".into(),
        ],
    );
    // This test is the client, granted echo0 only.
    let key = xoq_link::SecretKey::generate();
    let id = key.public().to_string();
    env.run(
        "xoq-server",
        "server",
        &["authorize", &id, "--devices", "echo0"],
    );
    let ticket: xoq_link::Ticket = server.ticket.parse().expect("ticket");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let answers = rt.block_on(async {
        let ep = xoq_link::bind_endpoint(key, xoq_link::EndpointOptions::default())
            .await
            .expect("endpoint");
        let session = xoq_link::connect(&ep, &ticket, "prober", T)
            .await
            .expect("connect");
        let mut answers = Vec::new();
        for name in ["secret0", "nosuch0"] {
            match session.open_device(name, xoq_wire::Access::ReadOnly).await {
                Err(xoq_link::ConnectError::Refused { code, text }) => {
                    answers.push((code, text.replace(name, "NAME")))
                }
                Err(e) => panic!("{name}: {e}"),
                Ok(_) => panic!("{name} opened without a grant"),
            }
        }
        assert!(session
            .open_device("echo0", xoq_wire::Access::ReadWrite)
            .await
            .is_ok());
        answers
    });
    assert_eq!(
        answers[0].0,
        xoq_wire::ErrorCode::NotPermitted,
        "{answers:?}"
    );
    assert_eq!(answers[0], answers[1], "the answers tell the names apart");
}

#[test]
fn a_narrowed_grant_and_a_revocation_reach_a_live_connection() {
    let env = Env::new();
    let hw = HardwarePty::new();
    env.authorize("laptop", &[]);
    let server = Server::with_pty_port(&env, &hw);
    let mut mount = Mount::start(&env, "laptop", &server.ticket, 1, &[]);
    let tty = Tty::open_raw(&mount.links[0]);
    std::thread::sleep(Duration::from_millis(300));
    hw.master.drain();
    tty.write_all(b"rw", T);
    assert_eq!(hw.master.read_exact(2, T), b"rw");

    // Narrowed to read-only while connected: the stream is closed and reopened read-only.
    let t0 = std::time::Instant::now();
    env.authorize("laptop", &["--read-only"]);
    let deadline = t0 + T;
    loop {
        let s = env.run("xoq-mount", "laptop", &["status", "--json"]);
        if s.contains("open read-only (the server narrowed") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not narrowed: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("narrowed and reopened read-only after {:?}", t0.elapsed());
    hw.master.drain();
    tty.write_all(b"motor on", T);
    assert_eq!(
        hw.master.read_for(Duration::from_secs(1)),
        b"",
        "a narrowed client still wrote to the port"
    );
    hw.master.write_all(b"seen", T);
    assert_eq!(tty.read_exact(4, T), b"seen", "reads go on read-only");

    // Revoked while connected: the connection is closed with the reason and the mounter,
    // refused on reconnecting, exits saying so.
    let t0 = std::time::Instant::now();
    let id = env.client_id("laptop");
    env.run("xoq-server", "server", &["revoke", &id]);
    let code = mount.proc.wait_exit(T);
    println!("mounter exited {:?} after the revocation", t0.elapsed());
    assert_eq!(code, Some(1), "{}", mount.proc.stderr());
    let stderr = mount.proc.stderr();
    assert!(
        stderr.contains("revoked") || stderr.contains("not authorized"),
        "{stderr}"
    );
}
