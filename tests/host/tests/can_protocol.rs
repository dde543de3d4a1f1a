//! The server's CAN side against the simulated Damiao bus, at the protocol level (no kernel CAN
//! needed): motor replies, the maximum-age rule with its counter, read-only clients, and the
//! bus view other clients get.

use std::time::Duration;

use xoq_tests_host::can_client::{cmd, now_us, open as open_device, wait_for, ENABLE};
use xoq_tests_host::proc::free_udp_port;
use xoq_tests_host::{Env, Server};
use xoq_wire::{Access, CanCounters, CanFrame, DeviceKind, DeviceSettings, ErrorCode, Message};

async fn open(
    env: &Env,
    client: &str,
    ticket: &str,
    access: Access,
) -> (
    iroh::Endpoint,
    xoq_link::ClientSession,
    xoq_link::client::DeviceStream,
) {
    open_device(env, client, ticket, "motors", access).await
}

#[test]
fn damiao_bus_answers_enforces_max_age_and_respects_read_only() {
    let env = Env::new();
    env.authorize("driver", &[]);
    env.authorize("viewer", &["--read-only"]);
    let args = [
        "--sim-can".to_string(),
        "motors".into(),
        // Long enough that a fresh command is never stale however the host schedules the
        // path; the stale one below is far older.
        "--can-max-age-ms".into(),
        "2000".into(),
    ];
    let server = Server::start(&env, free_udp_port(), &args);

    tokio::runtime::Runtime::new().expect("rt").block_on(async {
        let (_e1, _s1, mut driver) = open(&env, "driver", &server.ticket, Access::ReadWrite).await;
        let (_e2, _s2, mut viewer) = open(&env, "viewer", &server.ticket, Access::ReadOnly).await;
        assert_eq!(driver.info.kind, DeviceKind::Can);
        let DeviceSettings::Can(settings) = driver.info.settings else {
            panic!("CAN settings in the catalog")
        };
        assert_eq!(settings.max_age_us, 2_000_000);

        // Clock comparison.
        let t0 = now_us();
        driver
            .writer
            .send(&Message::TimeSync {
                client_us: t0,
                server_us: 0,
            })
            .await
            .expect("send");
        let sync = wait_for(&mut driver, |m| matches!(m, Message::TimeSync { .. }))
            .await
            .expect("time sync");
        let Message::TimeSync {
            client_us,
            server_us,
        } = sync
        else {
            unreachable!()
        };
        assert_eq!(client_us, t0);
        assert!(
            server_us.abs_diff(now_us()) < 5_000_000,
            "same host, same clock"
        );

        // Enable motor 1: the reply comes on 0x11 with the enabled state.
        driver
            .writer
            .send(&Message::CanFrames(vec![cmd(0x01, ENABLE, now_us())]))
            .await
            .expect("send");
        let reply = wait_for(
            &mut driver,
            |m| matches!(m, Message::CanFrames(f) if f.iter().any(|f| f.id == 0x11)),
        )
        .await;
        let Some(Message::CanFrames(frames)) = reply else {
            panic!("no reply from motor 1")
        };
        let fb = frames.iter().find(|f| f.id == 0x11).expect("reply");
        assert_eq!(fb.data[0] >> 4, 1, "motor reports enabled: {fb}");
        assert!(fb.timestamp_us > 0, "replies carry a timestamp");

        // The viewer saw the command (from the bus) and the reply; the driver never gets its
        // own command back.
        let mut seen_cmd = false;
        let got = wait_for(&mut viewer, |m| {
            if let Message::CanFrames(f) = m {
                seen_cmd |= f.iter().any(|f| f.id == 0x01);
                f.iter().any(|f| f.id == 0x11)
            } else {
                false
            }
        })
        .await;
        assert!(
            got.is_some() && seen_cmd,
            "the viewer sees command and reply"
        );

        // A command older than the maximum age is dropped and counted, never delivered late.
        let stale = cmd(0x02, ENABLE, now_us() - 10_000_000);
        driver
            .writer
            .send(&Message::CanFrames(vec![stale]))
            .await
            .expect("send");
        let counters = wait_for(
            &mut driver,
            |m| matches!(m, Message::CanCounters(c) if c.tx_stale == 1),
        )
        .await;
        let Some(Message::CanCounters(c)) = counters else {
            panic!("stale frame not counted")
        };
        assert_eq!(
            c,
            CanCounters {
                tx_stale: 1,
                tx_frames: 1,
                rx_frames: c.rx_frames,
                ..c
            },
            "{c:?}"
        );
        assert!(c.rx_frames >= 1, "{c:?}");
        assert_eq!(c.tx_frames, 1, "only the fresh enable was sent: {c:?}");

        // The read-only viewer cannot send.
        viewer
            .writer
            .send(&Message::CanFrames(vec![cmd(0x03, ENABLE, now_us())]))
            .await
            .expect("send");
        let err = wait_for(&mut viewer, |m| matches!(m, Message::Error { .. })).await;
        assert!(
            matches!(
                err,
                Some(Message::Error {
                    code: ErrorCode::ReadOnly,
                    ..
                })
            ),
            "{err:?}"
        );
        let no_reply = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                if let Ok(Some(Message::CanFrames(f))) = driver.reader.next().await {
                    if f.iter().any(|f| f.id == 0x13) {
                        return;
                    }
                }
            }
        })
        .await;
        assert!(
            no_reply.is_err(),
            "motor 3 answered a read-only client's command"
        );
    });
}

#[test]
fn error_frames_from_a_client_are_refused_and_the_rest_of_its_batch_goes_out() {
    let env = Env::new();
    env.authorize("driver", &[]);
    env.authorize("viewer", &["--read-only"]);
    let args = [
        "--sim-can".to_string(),
        "motors".into(),
        "--can-max-age-ms".into(),
        "2000".into(),
    ];
    let server = Server::start(&env, free_udp_port(), &args);
    tokio::runtime::Runtime::new().expect("rt").block_on(async {
        let (_e1, _s1, mut driver) = open(&env, "driver", &server.ticket, Access::ReadWrite).await;
        let (_e2, _s2, mut viewer) = open(&env, "viewer", &server.ticket, Access::ReadOnly).await;
        // A bus-off report dressed as a frame, then a real command to motor 2.
        let bogus = CanFrame {
            id: 0x40,
            flags: xoq_wire::can::flags::ERR,
            len: 8,
            data: vec![0; 8],
            timestamp_us: now_us(),
        };
        driver
            .writer
            .send(&Message::CanFrames(vec![
                bogus,
                cmd(0x02, ENABLE, now_us()),
            ]))
            .await
            .expect("send");
        let err = wait_for(&mut driver, |m| matches!(m, Message::Error { .. })).await;
        let Some(Message::Error { code, text }) = err else {
            panic!("no refusal: {err:?}")
        };
        assert_eq!(code, ErrorCode::NotPermitted, "{text}");
        assert!(text.contains("1 error frame(s) refused"), "{text}");
        // The command went out (motor 2 answers) and the other client never saw an error frame.
        let mut saw_error_frame = false;
        let reply = wait_for(&mut viewer, |m| {
            if let Message::CanFrames(f) = m {
                saw_error_frame |= f.iter().any(|f| f.is_error());
                f.iter().any(|f| f.id == 0x12)
            } else {
                false
            }
        })
        .await;
        assert!(reply.is_some(), "motor 2 did not answer");
        assert!(!saw_error_frame, "the viewer was shown the error frame");
        let counters = wait_for(
            &mut driver,
            |m| matches!(m, Message::CanCounters(c) if c.tx_frames >= 1),
        )
        .await;
        let Some(Message::CanCounters(c)) = counters else {
            panic!("no counters")
        };
        assert_eq!(c.tx_frames, 1, "only the command was sent: {c:?}");
    });
}
