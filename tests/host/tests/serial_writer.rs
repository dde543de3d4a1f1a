//! A serial writer that reconnects, at the protocol level against the simulated port: its new
//! stream takes the place of the old one (whose connection the server still thinks alive), the
//! port says how much of the writer's data it took, and what the writer sends again reaches
//! the port once: nothing lost, nothing twice.

use std::time::{Duration, Instant};

use serde_json::Value;
use xoq_link::client::{connect, ConnectError, DeviceStream};
use xoq_link::{bind_endpoint, EndpointOptions, Ticket};
use xoq_tests_host::proc::free_udp_port;
use xoq_tests_host::serial_ioctl::{hex, record};
use xoq_tests_host::{Env, Server};
use xoq_wire::{Access, ErrorCode, LineSettings, Message};

const T: Duration = Duration::from_secs(20);
const TOKEN: u64 = 0x5eed_0001;

/// The next `TxProgress` on the stream (echoes and other reports are skipped).
async fn next_progress(d: &mut DeviceStream) -> u64 {
    loop {
        match tokio::time::timeout(T, d.reader.next()).await {
            Ok(Ok(Some(Message::TxProgress { written, .. }))) => return written,
            Ok(Ok(Some(_))) => {}
            other => panic!("no TxProgress: {other:?}"),
        }
    }
}

fn recorded_data(path: &std::path::Path) -> (usize, String) {
    let events: Vec<Value> = record(path)
        .into_iter()
        .filter(|e| e["event"] == "data")
        .collect();
    let len = events.iter().filter_map(|e| e["len"].as_u64()).sum::<u64>() as usize;
    let hex = events.iter().filter_map(|e| e["hex"].as_str()).collect();
    (len, hex)
}

#[test]
fn a_reconnected_writer_replaces_its_stream_and_the_port_gets_every_byte_once() {
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
    // 20 writes of 10 bytes: each write is counted whole, so the port took a multiple of 10.
    let data: Vec<u8> = (0..200u8).collect();

    tokio::runtime::Runtime::new().expect("rt").block_on(async {
        let ep1 = bind_endpoint(key.clone(), EndpointOptions::default())
            .await
            .expect("endpoint");
        let s1 = connect(&ep1, &ticket, "tool", T).await.expect("connect");
        let mut d1 = s1
            .open_device_as("echo0", Access::ReadWrite, TOKEN)
            .await
            .expect("open");
        assert_eq!(next_progress(&mut d1).await, 0, "a new writer's count");
        let line = LineSettings {
            baud: 1200,
            ..LineSettings::default()
        };
        d1.writer
            .send(&Message::LineSettings(line))
            .await
            .expect("send");
        d1.writer
            .send(&Message::Data(data[..10].to_vec()))
            .await
            .expect("send");
        assert_eq!(next_progress(&mut d1).await, 10);
        // A long break holds the port, so the rest is still queued at the server when the
        // writer comes back on a new connection (the old one is never closed: as after a
        // link that died unnoticed).
        d1.writer
            .send(&Message::Break { duration_ms: 4000 })
            .await
            .expect("send");
        for chunk in data[10..].chunks(10) {
            d1.writer
                .send(&Message::Data(chunk.to_vec()))
                .await
                .expect("send");
        }
        let t0 = Instant::now();
        let ep2 = bind_endpoint(key.clone(), EndpointOptions::default())
            .await
            .expect("endpoint");
        let s2 = connect(&ep2, &ticket, "tool", T).await.expect("connect");
        let other = s2
            .open_device_as("echo0", Access::ReadWrite, TOKEN + 1)
            .await;
        assert!(
            matches!(
                other,
                Err(ConnectError::Refused {
                    code: ErrorCode::Busy,
                    ..
                })
            ),
            "another writer name is refused while the port is held: {:?}",
            other.err()
        );
        let mut d2 = s2
            .open_device_as("echo0", Access::ReadWrite, TOKEN)
            .await
            .expect("the same writer takes its stream's place");
        let took_over_in_break = t0.elapsed() < Duration::from_millis(3500);
        let w = next_progress(&mut d2).await as usize;
        if took_over_in_break {
            assert_eq!(
                w, 10,
                "the port took the first write; the old stream's queue was dropped"
            );
        } else {
            // A machine so slow that the break was over: whatever the port took is counted.
            eprintln!("the takeover came {:?} after the break began", t0.elapsed());
            assert_eq!(w % 10, 0, "whole writes only: {w}");
        }
        d2.writer
            .send(&Message::Data(data[w..].to_vec()))
            .await
            .expect("send");
        assert_eq!(next_progress(&mut d2).await as usize, data.len());
        drop((d1, s1, ep1));
    });
    let (len, seen) = recorded_data(&rec);
    let want = hex(&data);
    assert_eq!(len, data.len(), "every byte reached the port once");
    assert_eq!(&seen[..20], &want[..20]);
    // What was sent again went as one write; the record keeps each write's first 32 bytes.
    assert!(seen.starts_with(&want[..20 + 64]), "in order: {seen}");
}
