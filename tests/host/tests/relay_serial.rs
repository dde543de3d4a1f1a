//! A serial port published through a real `moq-relay`: a client whose token may write it
//! sends bytes on its `tx` track, the simulated port echoes them, and every watcher reads the
//! echo on `rx`; the writer hears on its `reply` track how much the port took; a watcher's own
//! `tx` never reaches the port, and a second writer is refused while the first writes.

use std::time::Duration;

use xoq_moq::tracks::MessageReader;
use xoq_tests_host::proc::Env;
use xoq_tests_host::relay_lab::RelayLab;
use xoq_wire::{DeviceKind, ErrorCode, Message};

const WAIT: Duration = Duration::from_secs(20);

/// Reads `rx` until it has seen `needle` (true) or `within` passed (false).
async fn echoed(
    rx: &mut MessageReader,
    seen: &mut Vec<u8>,
    needle: &[u8],
    within: Duration,
) -> bool {
    let find = async {
        loop {
            if seen.windows(needle.len()).any(|w| w == needle) {
                return true;
            }
            match rx.next().await {
                Ok(Some(Message::Data(d))) => seen.extend_from_slice(&d),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return false,
            }
        }
    };
    tokio::time::timeout(within, find).await.unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_on_the_relay_echoes_a_writers_bytes_to_every_watcher() {
    let lab = RelayLab::start().await;
    let env = Env::new();
    let server = lab.serve(&env, &["--sim-serial", "tty0"]);

    let watcher = lab.client("tty0", "", "watcher").await;
    let mut info = watcher
        .subscribe_messages("tty0", "info", WAIT)
        .await
        .unwrap_or_else(|| panic!("tty0 was not published: {}", server.proc.stderr()));
    match info.next().await {
        Ok(Some(Message::Opened(d))) => assert_eq!(d.kind, DeviceKind::Serial),
        other => panic!("the info track holds {other:?}"),
    }
    let mut rx = watcher
        .subscribe_messages("tty0", "rx", WAIT)
        .await
        .expect("rx track");
    let mut seen = Vec::new();

    // The watcher's writes are not forwarded by the relay: nothing comes back.
    let (_b, mut tx) = watcher.publish_messages("tty0/w/watcher", "tx");
    for _ in 0..6 {
        tx.write(&Message::Data(b"from the watcher;".to_vec()))
            .expect("write");
        assert!(
            !echoed(&mut rx, &mut seen, b"watcher", Duration::from_millis(500)).await,
            "a watcher's bytes reached the port"
        );
    }

    // The writer's bytes are echoed by the port and read by the watcher, in order.
    let writer = lab.client("", "tty0", "op").await;
    let (_b, mut tx) = writer.publish_messages("tty0/w/op", "tx");
    let mut got = false;
    for i in 0..40 {
        // The server subscribes once it sees the announcement: send until the echo comes.
        tx.write(&Message::Data(format!("<line {i:02}>").into_bytes()))
            .expect("write");
        if echoed(&mut rx, &mut seen, b">", Duration::from_millis(500)).await {
            got = true;
            break;
        }
    }
    assert!(
        got,
        "no echo of the writer's bytes: {}",
        server.proc.stderr()
    );
    let message: Vec<u8> = (0..20)
        .map(|i| format!("[{i:02}]"))
        .collect::<String>()
        .into_bytes();
    for chunk in message.chunks(12) {
        tx.write(&Message::Data(chunk.to_vec())).expect("write");
    }
    assert!(
        echoed(&mut rx, &mut seen, &message, WAIT).await,
        "the writer's bytes came back incomplete or out of order: {:?}",
        String::from_utf8_lossy(&seen)
    );

    // The writer's answers: the port took every byte it sent.
    let mut reply = writer
        .subscribe_messages("tty0/r/op", "reply", WAIT)
        .await
        .expect("the writer's reply track");
    let took = async {
        loop {
            match reply.next().await {
                Ok(Some(Message::TxProgress { written, .. })) if written > 0 => return written,
                Ok(Some(_)) => {}
                other => panic!("reply track ended: {other:?}"),
            }
        }
    };
    // Progress is reported as the port takes bytes: write once more so a report follows.
    tx.write(&Message::Data(b"!".to_vec())).expect("write");
    let taken = tokio::time::timeout(WAIT, took)
        .await
        .expect("no TxProgress");
    assert!(taken > 0);

    // A second writer while the first holds the port: refused, said on its own reply track.
    let second = lab.client("", "tty0", "op2").await;
    let (_b2, mut tx2) = second.publish_messages("tty0/w/op2", "tx");
    tx2.write(&Message::Data(b"second writer".to_vec()))
        .expect("write");
    let mut reply2 = second
        .subscribe_messages("tty0/r/op2", "reply", WAIT)
        .await
        .unwrap_or_else(|| panic!("no reply broadcast for op2: {}", server.proc.stderr()));
    match tokio::time::timeout(WAIT, reply2.next()).await {
        Ok(Ok(Some(Message::Error { code, .. }))) => assert_eq!(code, ErrorCode::Busy),
        other => panic!("the second writer was not refused: {other:?}"),
    }
    assert!(
        !echoed(&mut rx, &mut seen, b"second writer", Duration::from_secs(2)).await,
        "the second writer's bytes reached the port"
    );
}
