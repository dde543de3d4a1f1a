//! Two real `moq-relay`s in a cluster (`--cluster-connect` with a cluster token): the server
//! publishes to relay A, a client on relay B watches the bus and moves a motor through both.

use std::time::{Duration, SystemTime};

use xoq_tests_host::proc::Env;
use xoq_tests_host::relay_lab::{RelayLab, Role};
use xoq_wire::{CanFrame, Message};

const WAIT: Duration = Duration::from_secs(30);

fn enable(id: u32) -> Message {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    Message::CanFrames(vec![CanFrame {
        id,
        flags: 0,
        len: 8,
        data: vec![0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFC],
        timestamp_us: now,
    }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_relay_b_drives_a_bus_published_on_relay_a() {
    let mut lab = RelayLab::start().await;
    let env = Env::new();
    let server = lab.serve(&env, &["--sim-can", "can0"]);
    let b = lab.start_peer();

    let token = lab.client_token("", "can0", "op");
    // Relay B starts and dials A in its own time: try until it serves the bus.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (session, mut state) = loop {
        if let Ok(s) = lab.connect_at(b, "testbot", Some(&token), Role::Both).await {
            if let Some(st) = s
                .subscribe_messages("can0", "state", Duration::from_secs(2))
                .await
            {
                break (s, st);
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay B never served can0 from relay A: {}",
            lab.relay_log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let (_b, mut cmd) = session.publish_messages("can0/w/op", "cmd");
    let answer = async {
        loop {
            cmd.write(&enable(0x05)).expect("write");
            let next = tokio::time::timeout(Duration::from_millis(500), async {
                loop {
                    match state.next().await {
                        Ok(Some(Message::CanFrames(f))) if f.iter().any(|f| f.id == 0x15) => {
                            return true
                        }
                        Ok(Some(_)) => {}
                        _ => return false,
                    }
                }
            })
            .await;
            if next == Ok(true) {
                return;
            }
        }
    };
    assert!(
        tokio::time::timeout(WAIT, answer).await.is_ok(),
        "motor 5 never answered a command sent through relay B: {}",
        server.proc.stderr()
    );
}
