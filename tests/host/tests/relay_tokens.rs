//! The relay's token rules, against the real `moq-relay` asking our auth server: a robot token
//! publishes and a client token subscribes; no token, an expired one, one for another robot,
//! and a subscribe-only token trying to publish are all refused.

use std::time::Duration;

use xoq_moq::token::Grants;
use xoq_tests_host::relay_lab::{RelayLab, Role};

const WAIT: Duration = Duration::from_secs(20);

fn client(subscribe: &str, publish: &str, name: &str) -> Grants {
    Grants {
        subscribe: Grants::device_list(subscribe),
        publish: Grants::device_list(publish),
        client: (!name.is_empty()).then(|| name.to_string()),
        robot: false,
    }
}

fn robot() -> Grants {
    Grants {
        robot: true,
        ..Grants::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_robot_publishes_and_a_client_with_a_token_receives() {
    let lab = RelayLab::start().await;
    let robot_token = lab.token("robot1", &robot(), Duration::from_secs(600));
    let pub_session = lab.connect("robot1", Some(&robot_token), Role::Both).await;
    let pub_session = pub_session.expect("the robot's token is accepted");
    let _track = pub_session.publish("can0", "state");

    let token = lab.token("robot1", &client("can0", "", ""), Duration::from_secs(600));
    let sub = lab.connect("robot1", Some(&token), Role::Subscriber).await;
    let sub = sub.expect("the client's token is accepted");
    let got = sub.first_frame("can0", "state", WAIT).await;
    assert_eq!(
        got.as_deref(),
        Some(&b"frame"[..]),
        "the client receives the robot's frames"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_without_a_valid_token_for_this_robot_are_refused() {
    let lab = RelayLab::start().await;
    assert!(
        lab.refused("robot1", None).await,
        "an anonymous session is refused"
    );

    let forged = lab.foreign_token("robot1", &client("can0", "", ""));
    assert!(
        lab.refused("robot1", Some(&forged)).await,
        "a token signed by another key is refused"
    );

    let other = lab.token("robot2", &client("can0", "", ""), Duration::from_secs(600));
    assert!(
        lab.refused("robot1", Some(&other)).await,
        "a token for robot2 is refused at robot1"
    );

    let expiring = lab.token("robot1", &client("can0", "", ""), Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        lab.refused("robot1", Some(&expiring)).await,
        "an expired token is refused"
    );

    // The same checks admit a valid token, so they can tell the difference.
    let valid = lab.token("robot1", &client("can0", "", ""), Duration::from_secs(600));
    assert!(
        !lab.refused("robot1", Some(&valid)).await,
        "a valid token is admitted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_publishing_token_reaches_the_robot_and_only_the_named_devices_are_seen() {
    let lab = RelayLab::start().await;
    let robot_token = lab.token("robot1", &robot(), Duration::from_secs(600));
    let robot = lab
        .connect("robot1", Some(&robot_token), Role::Both)
        .await
        .expect("robot accepted");
    let _can = robot.publish("can0", "state");
    let _cam = robot.publish("cam0", "state");
    let mut commands = robot.watch_commands();

    // Subscribe-only for can0: it sees can0, not cam0, and what it publishes never reaches the
    // robot (the relay does not forward a broadcast outside the token's publish grant).
    let reader = lab.token(
        "robot1",
        &client("can0", "", "op1"),
        Duration::from_secs(600),
    );
    let reader = lab
        .connect("robot1", Some(&reader), Role::Both)
        .await
        .expect("reader accepted");
    assert!(reader.first_frame("can0", "state", WAIT).await.is_some());
    assert!(
        reader
            .first_frame("cam0", "state", Duration::from_secs(3))
            .await
            .is_none(),
        "a device outside the token is not served"
    );
    let _rogue = reader.publish("can0/w/op1", "cmd");

    // A writer for can0 named op2: its command broadcast reaches the robot.
    let writer = lab.token(
        "robot1",
        &client("", "can0", "op2"),
        Duration::from_secs(600),
    );
    let writer = lab
        .connect("robot1", Some(&writer), Role::Both)
        .await
        .expect("writer accepted");
    let _cmd = writer.publish("can0/w/op2", "cmd");
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !seen.iter().any(|p: &String| p.ends_with("can0/w/op2")) {
        match tokio::time::timeout_at(deadline, commands.recv()).await {
            Ok(Some(path)) => seen.push(path),
            _ => break,
        }
    }
    assert!(
        seen.iter().any(|p| p.ends_with("can0/w/op2")),
        "the writer's commands reach the robot: {seen:?}"
    );
    assert!(
        !seen.iter().any(|p| p.contains("/w/op1")),
        "a subscribe-only client's broadcast reached the robot: {seen:?}"
    );
    // The writer cannot publish as another client either.
    let _spoof = writer.publish("can0/w/op1", "cmd");
    let later = tokio::time::timeout(Duration::from_secs(3), commands.recv()).await;
    assert!(
        !matches!(&later, Ok(Some(p)) if p.contains("/w/op1")),
        "a writer published under another client's name: {later:?}"
    );
}
