//! Two real `moq-relay`s in a cluster (`--cluster-connect` with a cluster token): the server
//! publishes to relay A, a client on relay B watches the bus and moves a motor through both.

use std::time::Duration;

use xoq_tests_host::proc::Env;
use xoq_tests_host::relay_lab::{enable_until_answered, RelayLab, Role};

const WAIT: Duration = Duration::from_secs(30);

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
    assert!(
        enable_until_answered(&mut cmd, &mut state, 0x05)
            .await
            .is_some(),
        "motor 5 never answered a command sent through relay B: {}",
        server.proc.stderr()
    );
}
