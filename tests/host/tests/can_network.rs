//! The stale-command rule of CAN end to end over an impaired network: a driver streams motor
//! commands at 200 Hz to the simulated Damiao bus across `wan` (40 ms RTT, 1 % loss) while the
//! link blacks out for 3 s. Commands held up by the outage arrive seconds old; the bus must
//! never execute one older than its maximum age (the simulated bus records the age of every
//! command it executes), the stale ones are counted, and the motors' feedback keeps flowing
//! before and after the outage.

use std::time::{Duration, Instant};

use xoq_impair::Profile;
use xoq_tests_host::can_client::{cmd, now_us, open, wait_for, ENABLE};
use xoq_tests_host::netlab::{NetLab, SERVER_PORT};
use xoq_tests_host::{Env, Server};
use xoq_wire::{Access, Message};

/// The server's default maximum age, in µs.
const MAX_AGE_US: u64 = 200_000;
const PERIOD: Duration = Duration::from_millis(5);

#[test]
fn no_command_older_than_the_maximum_age_reaches_the_bus_through_an_outage() {
    let lab = NetLab::new(Profile::named("wan").expect("wan"), 3);
    let mut env = Env::new();
    lab.place(&mut env, "driver");
    env.authorize("driver", &[]);
    let record = env.path("motors.ages");
    let server = Server::start_on(
        &env,
        lab.server_ip(),
        SERVER_PORT,
        &["--sim-can".into(), format!("motors={}", record.display())],
    );
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
