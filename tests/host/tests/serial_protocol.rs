//! The serial control messages end to end against the simulated port, which records every
//! change it receives: line settings PTYs cannot carry (data bits, parity), modem lines, break,
//! flush and drain; and the PTY's hang-up (speed 0) as DTR/RTS.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use xoq_link::client::connect;
use xoq_link::{bind_endpoint, EndpointOptions, Ticket};
use xoq_tests_host::proc::free_udp_port;
use xoq_tests_host::{Env, Mount, Server, Tty};
use xoq_wire::{
    Access, FlowControl, FlushQueue, LineSettings, Message, ModemLines, ModemStatus, Parity,
    StopBits,
};

const T: Duration = Duration::from_secs(10);

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// The events the simulated port recorded, once `want` of them are there.
fn record(path: &Path, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + T;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let events: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if events.len() >= want || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn control_messages_reach_the_port_in_order_and_are_answered() {
    let env = Env::new();
    env.authorize("tool", &[]);
    let rec = env.path("echo0.jsonl");
    let server = Server::start(
        &env,
        free_udp_port(),
        &["--sim-serial".into(), format!("echo0={}", rec.display())],
    );
    let key = env.client_key("tool");
    let ticket: Ticket = server.ticket.parse().expect("ticket");
    let line = LineSettings {
        baud: 2_000_000,
        data_bits: 7,
        parity: Parity::Even,
        stop_bits: StopBits::Two,
        flow: FlowControl::Hardware,
    };

    let replies = tokio::runtime::Runtime::new().expect("rt").block_on(async {
        let ep = bind_endpoint(key, EndpointOptions::default())
            .await
            .expect("endpoint");
        let session = connect(&ep, &ticket, "tool", T).await.expect("connect");
        assert_eq!(session.welcome.server_name, "testbot");
        assert_eq!(session.welcome.devices.len(), 1);
        let mut dev = session
            .open_device("echo0", Access::ReadWrite)
            .await
            .expect("open");
        for m in [
            Message::LineSettings(line),
            Message::SetModem(ModemLines {
                dtr: true,
                rts: false,
            }),
            Message::Data(b"between".to_vec()),
            Message::Break { duration_ms: 100 },
            Message::SetBreak(true),
            Message::SetBreak(false),
            Message::Flush(FlushQueue::Output),
            Message::Drain { seq: 7 },
        ] {
            dev.writer.send(&m).await.expect("send");
        }
        // The echo may come back before or after Drained (drained = transmitted, not echoed).
        let mut got = Vec::new();
        let _ = tokio::time::timeout(T, async {
            while let Ok(Some(m)) = dev.reader.next().await {
                got.push(m);
                let drained = got.iter().any(|m| matches!(m, Message::Drained { .. }));
                if drained && got.contains(&Message::Data(b"between".to_vec())) {
                    break;
                }
            }
        })
        .await;
        got
    });
    assert!(
        replies.contains(&Message::LineSettings(line)),
        "settings in force are announced: {replies:?}"
    );
    let loopback = ModemStatus {
        dtr: true,
        rts: false,
        cts: false,
        dsr: true,
        dcd: true,
        ri: false,
    };
    assert!(
        replies.contains(&Message::ModemStatus(loopback)),
        "modem lines reported: {replies:?}"
    );
    assert!(
        replies.contains(&Message::Data(b"between".to_vec())),
        "echo: {replies:?}"
    );
    assert!(
        replies.contains(&Message::Drained { seq: 7 }),
        "drain answered with its seq: {replies:?}"
    );

    let events = record(&rec, 9);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "open",
            "line",
            "modem",
            "data",
            "break",
            "break_on",
            "break_off",
            "flush",
            "drain"
        ],
        "{events:?}"
    );
    assert_eq!(events[3]["hex"], hex(b"between"), "{events:?}");
    let l = &events[1]["line"];
    assert_eq!(
        (
            l["baud"].as_u64(),
            l["data_bits"].as_u64(),
            l["parity"].as_str()
        ),
        (Some(2_000_000), Some(7), Some("even"))
    );
    assert_eq!(
        (l["stop_bits"].as_u64(), l["flow"].as_str()),
        (Some(2), Some("hardware"))
    );
    assert_eq!(
        (events[2]["dtr"].as_bool(), events[2]["rts"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(events[4]["duration_ms"].as_u64(), Some(100));
    assert_eq!(events[7]["queue"].as_str(), Some("output"));
    let times: Vec<f64> = events.iter().filter_map(|e| e["t"].as_f64()).collect();
    assert_eq!(times.len(), events.len(), "every event is timestamped");
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "timestamps are in order: {times:?}"
    );
}

#[test]
fn speed_zero_on_the_tty_drops_dtr_and_rts_and_leaving_it_raises_them() {
    let env = Env::new();
    env.authorize("laptop", &[]);
    let rec = env.path("echo0.jsonl");
    let server = Server::start(
        &env,
        free_udp_port(),
        &["--sim-serial".into(), format!("echo0={}", rec.display())],
    );
    let mount = Mount::start(&env, "laptop", &server.ticket, 1, &[]);
    let tty = Tty::open_raw(&mount.links[0]);
    let modem_events = |n: usize| -> Vec<(bool, bool)> {
        let deadline = Instant::now() + T;
        loop {
            let ev: Vec<(bool, bool)> = record(&rec, 0)
                .iter()
                .filter(|e| e["event"] == "modem")
                .map(|e| {
                    (
                        e["dtr"].as_bool().unwrap_or(true),
                        e["rts"].as_bool().unwrap_or(true),
                    )
                })
                .collect();
            if ev.len() >= n || Instant::now() > deadline {
                return ev;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut t = tty.termios2();
    let speed = t.c_cflag & libc::CBAUD;
    t.c_cflag &= !libc::CBAUD;
    t.c_cflag |= libc::B0;
    tty.set_termios2(&t);
    assert_eq!(
        modem_events(1),
        [(false, false)],
        "hang-up drops DTR and RTS"
    );
    t.c_cflag &= !libc::CBAUD;
    t.c_cflag |= speed;
    tty.set_termios2(&t);
    assert_eq!(
        modem_events(2),
        [(false, false), (true, true)],
        "leaving speed 0 raises them"
    );
}

#[test]
fn framing_set_on_the_server_survives_speed_changes_from_a_pty() {
    let env = Env::new();
    env.authorize("laptop", &[]);
    let rec = env.path("bus.jsonl");
    let cfg = env.path("server.toml");
    let toml = format!(
        "[[serial]]\nname = \"bus\"\nsimulated = true\nrecord = \"{}\"\nbaud = 19200\ndata_bits = 7\nparity = \"even\"\n",
        rec.display()
    );
    std::fs::write(&cfg, toml).expect("config");
    let server = Server::start(
        &env,
        free_udp_port(),
        &["--config".into(), cfg.display().to_string()],
    );
    let mount = Mount::start(&env, "laptop", &server.ticket, 1, &[]);
    assert!(
        mount.proc.seen.iter().any(|l| l.contains("19200 7E1")),
        "catalog framing shown: {:?}",
        mount.proc.seen
    );
    let _tty = Tty::open_raw(&mount.links[0]);
    let out = std::process::Command::new("stty")
        .arg("-F")
        .arg(&mount.links[0])
        .arg("57600")
        .output()
        .expect("stty");
    assert!(out.status.success());
    let deadline = Instant::now() + T;
    let last = loop {
        let events = record(&rec, 0);
        let last = events
            .iter()
            .rev()
            .find(|e| e["event"] == "line")
            .cloned()
            .unwrap_or_default();
        if last["line"]["baud"] == 57600 || Instant::now() > deadline {
            break last;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let l = &last["line"];
    assert_eq!(
        (
            l["baud"].as_u64(),
            l["data_bits"].as_u64(),
            l["parity"].as_str()
        ),
        (Some(57600), Some(7), Some("even")),
        "{last}"
    );
}
