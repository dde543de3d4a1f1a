//! A CAN bus published through a real `moq-relay`: the server (`--moq-relay`, its certificate
//! pinned by fingerprint, a robot token) publishes the simulated Damiao bus; a client whose
//! token may write it gets motors to answer, one whose token may only watch does not, and both
//! see the bus's frames.

use std::time::Duration;

use xoq_tests_host::proc::Env;
use xoq_tests_host::relay_lab::{enable, enable_until_answered, frame_with_id, RelayLab, Role};
use xoq_wire::{DeviceKind, Message};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_on_the_relay_obeys_a_writer_and_not_a_watcher() {
    let lab = RelayLab::start().await;
    let env = Env::new();
    let server = lab.serve(&env, &["--sim-can", "can0"]);

    // A watcher: sees the device and its bus, cannot move a motor.
    let watcher = lab.client("can0", "", "watcher").await;
    let mut info = watcher
        .subscribe_messages("can0", "info", WAIT)
        .await
        .unwrap_or_else(|| panic!("can0 was not published: {}", server.proc.stderr()));
    match info.next().await {
        Ok(Some(Message::Opened(d))) => {
            assert_eq!(d.name, "can0");
            assert_eq!(d.kind, DeviceKind::Can);
        }
        other => panic!("the info track holds {other:?}"),
    }
    let mut state = watcher
        .subscribe_messages("can0", "state", WAIT)
        .await
        .expect("state track");
    // It keeps asking for 3 s, as long as a writer gets its answer below.
    let (_b, mut cmd) = watcher.publish_messages("can0/w/watcher", "cmd");
    for _ in 0..6 {
        cmd.write(&enable(0x01)).expect("write");
        assert!(
            frame_with_id(&mut state, 0x11, Duration::from_millis(500))
                .await
                .is_none(),
            "a watcher's command moved motor 1"
        );
    }

    // A writer: its enable reaches the bus, motor 2 answers, and everyone sees both frames.
    let writer = lab.client("", "can0", "op").await;
    let (_b, mut cmd) = writer.publish_messages("can0/w/op", "cmd");
    let answered = enable_until_answered(&mut cmd, &mut state, 0x02).await;
    let reply = answered.unwrap_or_else(|| {
        panic!(
            "motor 2 never answered the writer: {}",
            server.proc.stderr()
        )
    });
    assert_eq!(
        reply.data[0], 0x12,
        "feedback of motor 2, enabled: {reply:?}"
    );
    assert!(reply.timestamp_us > 0, "bus frames carry their time");
    // The writer compares clocks with the server on its own reply track (for the maximum age).
    let mut reply = writer
        .subscribe_messages("can0/r/op", "reply", WAIT)
        .await
        .expect("the writer's reply track");
    let sent_us = 123_456_789;
    let mut answered = None;
    for _ in 0..40 {
        cmd.write(&Message::TimeSync {
            client_us: sent_us,
            server_us: 0,
        })
        .expect("write");
        let next = tokio::time::timeout(Duration::from_millis(500), reply.next()).await;
        if let Ok(Ok(Some(Message::TimeSync {
            client_us,
            server_us,
        }))) = next
        {
            answered = Some((client_us, server_us));
            break;
        }
    }
    let (client_us, server_us) = answered.expect("no TimeSync answer on the reply track");
    assert_eq!(client_us, sent_us, "the answer echoes the client's time");
    assert!(
        server_us > 1_600_000_000_000_000,
        "the server's time: {server_us}"
    );

    // Motor 1 stayed disabled: nothing the watcher sent reached the bus.
    assert!(
        !server.proc.stderr().contains("watcher"),
        "the server took commands from the watcher: {}",
        server.proc.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_publishes_again_after_the_relay_restarts() {
    let mut lab = RelayLab::start().await;
    let env = Env::new();
    let server = lab.serve(&env, &["--sim-can", "can0"]);
    let token = lab.client_token("", "can0", "op");
    for round in 0..2 {
        if round == 1 {
            lab.restart().await;
        }
        let writer = lab
            .connect("testbot", Some(&token), Role::Both)
            .await
            .expect("writer admitted");
        let mut state = writer
            .subscribe_messages("can0", "state", WAIT)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "can0 not published (round {round}): {}",
                    server.proc.stderr()
                )
            });
        let (_b, mut cmd) = writer.publish_messages("can0/w/op", "cmd");
        let motor = 0x03 + round;
        let answered = enable_until_answered(&mut cmd, &mut state, motor).await;
        assert!(
            answered.is_some(),
            "motor {motor} never answered (round {round}): {}",
            server.proc.stderr()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_sending_malformed_frames_is_dropped_and_nobody_else_is() {
    let lab = RelayLab::start().await;
    let env = Env::new();
    let server = lab.serve(&env, &["--sim-can", "can0"]);
    let hostile = lab.client("", "can0", "bad").await;
    let mut state = hostile
        .subscribe_messages("can0", "state", WAIT)
        .await
        .expect("state track");
    let (_b, cmd) = hostile.publish_raw("can0/w/bad", "cmd");
    // A CanFrames header declaring 4 GiB, then a frame of a type only servers send, repeated
    // until the server has read one and said so.
    let garbage: [&[u8]; 2] = [
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3],
        &[0x02, 0, 0, 0, 0],
    ];
    let mut refused = false;
    for _ in 0..40 {
        for g in garbage {
            let mut group = cmd.append_group().expect("group");
            group
                .write_frame(moq_net::Timestamp::now(), g.to_vec())
                .expect("frame");
            group.finish().expect("finish");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        if server
            .proc
            .stderr()
            .contains("malformed message on a relay track")
        {
            refused = true;
            break;
        }
    }
    assert!(
        refused,
        "the server never refused the frames: {}",
        server.proc.stderr()
    );

    // The bus and the other writers are untouched.
    let writer = lab.client("", "can0", "op").await;
    let (_b, mut good) = writer.publish_messages("can0/w/op", "cmd");
    let answered = enable_until_answered(&mut good, &mut state, 0x04).await;
    assert!(
        answered.is_some(),
        "the bus stopped answering: {}",
        server.proc.stderr()
    );
}
