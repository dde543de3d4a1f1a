//! The stale-command rule of CAN end to end over an impaired network: a driver streams motor
//! commands at 200 Hz to the simulated Damiao bus across `wan` (40 ms RTT, 1 % loss) while the
//! link blacks out for 3 s. Commands held up by the outage arrive seconds old; the bus must
//! never execute one older than its maximum age (the simulated bus records the age of every
//! command it executes), the stale ones are counted, and the motors' feedback keeps flowing
//! before and after the outage.

use std::time::{Duration, Instant};

use xoq_impair::Profile;
use xoq_link::client::ConnectError;
use xoq_tests_host::can_client::{
    cmd, executed_commands, now_us, open, open_with, wait_for, Executed, ENABLE,
};
use xoq_tests_host::netlab::{NetLab, SERVER_PORT};
use xoq_tests_host::{Env, Server};
use xoq_wire::{Access, CanCounters, Delivery, ErrorCode, Message};

/// The server's default maximum age, in µs.
const MAX_AGE_US: u64 = 200_000;
const PERIOD: Duration = Duration::from_millis(5);

/// A lab at `profile` (seeded), a server in it with the simulated bus `motors` recording what
/// it runs (and `more` devices), and the client `driver` authorized for everything.
fn motors_on(
    profile: &str,
    seed: u64,
    more: &[String],
) -> (NetLab, Env, std::path::PathBuf, Server) {
    let lab = NetLab::new(Profile::named(profile).expect("profile"), seed);
    let mut env = Env::new();
    lab.place(&mut env, "driver");
    env.authorize("driver", &[]);
    let record = env.path("motors.ages");
    let mut args = vec!["--sim-can".into(), format!("motors={}", record.display())];
    args.extend_from_slice(more);
    let server = Server::start_on(&env, lab.server_ip(), SERVER_PORT, &args);
    (lab, env, record, server)
}

#[test]
fn no_command_older_than_the_maximum_age_reaches_the_bus_through_an_outage() {
    let (lab, env, record, server) = motors_on("wan", 3, &[]);
    let ticket = server.ticket.clone();
    let (sent, feedback_before, feedback_after, stale) = NetLab::run_in(&lab.client_ns(), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (_ep, _session, mut dev) =
                open(&env, "driver", &ticket, "motors", Access::ReadWrite).await;
            let mut sent = 0u64;
            let (mut before, mut after) = (0u64, 0u64);
            let mut counters = None;
            let start = Instant::now();
            let mut outage_end = None;
            let mut tick = tokio::time::interval(PERIOD);
            // 2 s of commands, a 3 s outage, then 3 s more.
            while start.elapsed() < Duration::from_secs(8) {
                tokio::select! {
                    _ = tick.tick() => {
                        if outage_end.is_none() && start.elapsed() >= Duration::from_secs(2) {
                            lab.link.blackhole(Duration::from_secs(3));
                            outage_end = Some(Instant::now() + Duration::from_secs(3));
                        }
                        let motor = 1 + (sent % 8) as u32;
                        let frame = cmd(motor, ENABLE, now_us());
                        dev.writer.send(&Message::CanFrames(vec![frame])).await.expect("send");
                        sent += 1;
                    }
                    m = dev.reader.next() => match m {
                        Ok(Some(Message::CanFrames(f))) => {
                            let replies = f.iter().filter(|f| (0x11..=0x18).contains(&f.id)).count() as u64;
                            match outage_end {
                                None => before += replies,
                                Some(end) if Instant::now() > end => after += replies,
                                Some(_) => {}
                            }
                        }
                        Ok(Some(Message::CanCounters(c))) => counters = Some(c),
                        _ => {}
                    }
                }
            }
            // The server's counters, once it has accounted for every command (they come when
            // they change, at most every 100 ms).
            let stale = loop {
                if let Some(c) = counters.filter(|c| c.tx_frames + c.tx_stale + c.tx_failed >= sent) {
                    assert_eq!(c.tx_failed, 0, "{c:?}");
                    break c.tx_stale;
                }
                let Some(Message::CanCounters(c)) =
                    wait_for(&mut dev, |m| matches!(m, Message::CanCounters(_))).await
                else {
                    panic!("the server accounted for fewer commands than were sent: {counters:?}, {sent} sent");
                };
                counters = Some(c);
            };
            (sent, before, after, stale)
        })
    });
    let ages: Vec<u64> = std::fs::read_to_string(&record)
        .expect("the bus's record")
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    let oldest = ages.iter().copied().max().unwrap_or(0);
    assert!(
        oldest <= MAX_AGE_US,
        "the bus executed a command {oldest} us old (limit {MAX_AGE_US})"
    );
    assert_eq!(
        ages.len() as u64 + stale,
        sent,
        "every command was executed or counted stale"
    );
    // The outage held about 600 commands back: they arrived stale, and were refused.
    assert!(stale >= 100, "only {stale} of {sent} commands were stale");
    assert!(
        feedback_before > 0 && feedback_after > 0,
        "feedback before the outage {feedback_before}, after {feedback_after}"
    );
}

/// Latest-wins delivery (`--can-delivery latest`) over `lte`, whose losses come in bursts:
/// commands for eight motors at 1 kHz for 4 s. However the losses fall, no motor runs an older
/// command after a newer one, none older than the maximum age runs, and every command is
/// accounted for by the server's counters: executed, stale, or superseded by a newer command of
/// its motor (latest-wins drops those, and says so). A serial port is not a bus: opening one
/// latest-wins is refused with a reason.
#[test]
fn latest_wins_never_runs_an_older_command_and_counts_every_one() {
    let (lab, env, record, server) = motors_on("lte", 5, &["--sim-serial".into(), "echo0".into()]);
    let ticket = server.ticket.clone();
    let (sent, counters) = NetLab::run_in(&lab.client_ns(), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (_ep, session, mut dev) = open_with(
                &env,
                "driver",
                &ticket,
                "motors",
                Access::ReadWrite,
                Delivery::Latest,
            )
            .await;
            let refused = session
                .open_device_with("echo0", Access::ReadWrite, 0, Delivery::Latest)
                .await;
            match refused {
                Err(ConnectError::Refused { code, text }) => {
                    assert_eq!(code, ErrorCode::InvalidSetting, "{text}");
                    assert!(text.contains("CAN buses only"), "{text}");
                }
                Err(e) => panic!("a serial port opened latest-wins: {e}"),
                Ok(_) => panic!("a serial port opened latest-wins"),
            }
            let mut sent = 0u32;
            let mut counters = CanCounters::default();
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let end = Instant::now() + Duration::from_secs(4);
            while Instant::now() < end {
                tokio::select! {
                    _ = tick.tick() => {
                        // The command's number in its first four bytes (a position target).
                        let mut data = ENABLE;
                        data[..4].copy_from_slice(&sent.to_be_bytes());
                        let frame = cmd(1 + sent % 8, data, now_us());
                        dev.writer.send(&Message::CanFrames(vec![frame])).await.expect("send");
                        sent += 1;
                    }
                    m = dev.reader.next() => {
                        if let Ok(Some(Message::CanCounters(c))) = m {
                            counters = c;
                        }
                    }
                }
            }
            let sent = u64::from(sent);
            let accounted = |c: &CanCounters| c.tx_frames + c.tx_stale + c.tx_failed + c.tx_superseded;
            while accounted(&counters) < sent {
                let Some(Message::CanCounters(c)) =
                    wait_for(&mut dev, |m| matches!(m, Message::CanCounters(_))).await
                else {
                    panic!("the server accounted for fewer commands than were sent: {counters:?}, {sent} sent");
                };
                counters = c;
            }
            (sent, counters)
        })
    });
    assert!(
        server.proc.stderr().contains("delivery=latest"),
        "the server opened the bus latest-wins"
    );
    let executed = executed_commands(&record);
    let mut newest = std::collections::HashMap::new();
    for &Executed {
        age_us: age,
        motor,
        n,
    } in &executed
    {
        assert!(
            age <= MAX_AGE_US,
            "command {n} ran {age} us old (limit {MAX_AGE_US})"
        );
        if let Some(&last) = newest.get(&motor) {
            assert!(
                n > last,
                "motor {motor:#x} ran command {n} after command {last}"
            );
        }
        newest.insert(motor, n);
    }
    eprintln!("{sent} sent, {} executed, {counters:?}", executed.len());
    assert_eq!(counters.tx_failed, 0, "{counters:?}");
    assert_eq!(
        counters.tx_frames,
        executed.len() as u64,
        "the bus ran what the counters say"
    );
    assert_eq!(
        counters.tx_frames + counters.tx_stale + counters.tx_superseded,
        sent,
        "every command executed, stale or superseded: {counters:?}"
    );
}
