//! CAN over an impaired link: a driver (a protocol-level client in the mounter's namespace)
//! sends Damiao commands at 1 kHz to the simulated bus. The bus records each command's age when
//! it executes it (the command's one-way delay, and the proof that none older than the maximum
//! age was executed); the motors' replies carry their time, which gives the feedback's one-way
//! delay (one host, one clock). The baseline is a plain UDP forwarder: the same 16-byte frames
//! at the same rate to a UDP peer in the server's namespace, which answers each.

use std::collections::HashSet;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use xoq_impair::Profile;
use xoq_link::copies::CopyCounts;
use xoq_tests_host::can_client::{cmd, executed_commands, now_us, open_with};
use xoq_tests_host::netlab::{NetLab, SERVER_PORT};
use xoq_tests_host::stats::percentile;
use xoq_tests_host::{Env, Server};
use xoq_wire::{Access, Message};

use crate::{ms, Args};

/// The server's default maximum age of a command, µs.
const MAX_AGE_US: u64 = 200_000;
const MIT: [u8; 8] = [0x80, 0x00, 0x80, 0x00, 0x00, 0x00, 0x08, 0x00];
const PERIOD: Duration = Duration::from_millis(1);

fn p50_p99(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    (percentile(&mut v, 0.5), percentile(&mut v, 0.99))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Commands at 1 kHz for `a.can_seconds`; returns (sent, feedback one-way delays in µs, stale
/// count, what became of the feedback's copies).
fn drive(env: &Env, ticket: &str, a: &Args) -> (u64, Vec<f64>, u64, CopyCounts) {
    let secs = a.can_seconds;
    runtime().block_on(async {
        let (_ep, session, mut dev) = open_with(
            env,
            "bench",
            ticket,
            "motors",
            Access::ReadWrite,
            a.can_delivery,
        )
        .await;
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let (mut sent, mut feedback, mut stale) = (0u64, Vec::new(), 0u64);
        let mut accounted = 0u64;
        let end = Instant::now() + Duration::from_secs(secs);
        let drain_end = end + Duration::from_secs(3);
        loop {
            tokio::select! {
                _ = tick.tick(), if Instant::now() < end => {
                    // The sequence number in the first four bytes (a position target).
                    let mut data = MIT;
                    data[..4].copy_from_slice(&(sent as u32).to_be_bytes());
                    let frame = cmd(1 + (sent % 8) as u32, data, now_us());
                    if dev.writer.send(&Message::CanFrames(vec![frame])).await.is_err() {
                        break;
                    }
                    sent += 1;
                }
                m = dev.reader.next() => match m {
                    Ok(Some(Message::CanFrames(frames))) => {
                        let arrived = now_us();
                        for f in frames.iter().filter(|f| (0x11..=0x18).contains(&f.id)) {
                            feedback.push(arrived.saturating_sub(f.timestamp_us) as f64);
                        }
                    }
                    Ok(Some(Message::CanCounters(c))) => {
                        stale = c.tx_stale;
                        accounted = c.tx_frames + c.tx_stale + c.tx_failed;
                    }
                    Ok(Some(_)) => {}
                    _ => break,
                },
                _ = tokio::time::sleep_until(drain_end.into()) => break,
            }
            if Instant::now() >= end && accounted >= sent {
                break;
            }
        }
        let copies = session.copy_stats().snapshot();
        session.close();
        (sent, feedback, stale, copies)
    })
}

/// The baseline: 16-byte records (sequence, send time) at 1 kHz over UDP to a peer that
/// records each one's one-way delay and answers with its own time. Returns (sent, one-way
/// delays at the peer, feedback delays, records the peer saw twice, late deliveries).
fn udp_baseline(lab: &NetLab, secs: u64) -> (u64, Vec<f64>, Vec<f64>, u64, u64) {
    let peer = NetLab::run_in(&lab.server_ns(), || {
        UdpSocket::bind((lab.server_ip(), 0)).expect("bind peer")
    });
    let peer_addr = peer.local_addr().expect("addr");
    peer.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let at_peer = s.spawn(|| {
            let (mut delays, mut seen, mut dup, mut late) = (Vec::new(), HashSet::new(), 0, 0);
            let mut buf = [0u8; 64];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, from)) = peer.recv_from(&mut buf) else {
                    continue;
                };
                if n < 16 {
                    continue;
                }
                let seq = u64::from_be_bytes(buf[..8].try_into().expect("8 bytes"));
                let t = u64::from_be_bytes(buf[8..16].try_into().expect("8 bytes"));
                let age = now_us().saturating_sub(t);
                if !seen.insert(seq) {
                    dup += 1;
                }
                if age > MAX_AGE_US {
                    late += 1;
                }
                delays.push(age as f64);
                let _ = peer.send_to(&now_us().to_be_bytes(), from);
            }
            (delays, dup, late)
        });
        let (sent, feedback) = NetLab::run_in(&lab.client_ns(), || {
            let sock = UdpSocket::bind((lab.client_ip(), 0)).expect("bind driver");
            sock.set_nonblocking(true).expect("nonblocking");
            let (mut sent, mut feedback) = (0u64, Vec::new());
            let end = Instant::now() + Duration::from_secs(secs);
            let mut next = Instant::now();
            let mut buf = [0u8; 64];
            while Instant::now() < end + Duration::from_secs(1) {
                if Instant::now() >= next && Instant::now() < end {
                    let mut rec = [0u8; 16];
                    rec[..8].copy_from_slice(&sent.to_be_bytes());
                    rec[8..].copy_from_slice(&now_us().to_be_bytes());
                    let _ = sock.send_to(&rec, peer_addr);
                    sent += 1;
                    next += PERIOD;
                }
                while let Ok((8, _)) = sock.recv_from(&mut buf) {
                    let t = u64::from_be_bytes(buf[..8].try_into().expect("8 bytes"));
                    feedback.push(now_us().saturating_sub(t) as f64);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            (sent, feedback)
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (delays, dup, late) = at_peer.join().expect("peer");
        (sent, delays, feedback, dup, late)
    })
}

pub fn run(profile: &Profile, a: &Args) -> Value {
    let lab = NetLab::new(profile.clone(), a.seed);
    let mut env = Env::new();
    lab.place(&mut env, "bench");
    env.authorize("bench", &[]);
    let record = env.path("motors.ages");
    let server = Server::start_on(
        &env,
        lab.server_ip(),
        SERVER_PORT,
        &["--sim-can".into(), format!("motors={}", record.display())],
    );
    let ticket = server.ticket.clone();
    let (sent, feedback, stale, feedback_copies) =
        NetLab::run_in(&lab.client_ns(), || drive(&env, &ticket, a));
    let command_copies_used = server.copies_used(std::time::Duration::from_secs(10));
    let commands_superseded =
        server.disconnect_counter("can_frames_superseded", std::time::Duration::from_secs(1));
    let executed_list: Vec<(f64, u32, u32)> = executed_commands(&record)
        .iter()
        .map(|e| (e.age_us as f64, e.motor, e.n))
        .collect();
    let mut seen = HashSet::new();
    let duplicated = executed_list
        .iter()
        .filter(|(_, _, s)| !seen.insert(*s))
        .count();
    // Out of order for its motor (an older command run after a newer one: never allowed), and
    // out of the order sent across motors (latest-wins delivery allows it).
    let mut newest = std::collections::HashMap::new();
    let reordered = executed_list
        .iter()
        .filter(|(_, id, s)| {
            let n = newest.entry(*id).or_insert(*s);
            let older = *n > *s;
            *n = (*n).max(*s);
            older
        })
        .count();
    let across_motors = executed_list.windows(2).filter(|w| w[1].2 < w[0].2).count();
    let ages: Vec<f64> = executed_list.iter().map(|(a, _, _)| *a).collect();
    let stale_delivered = ages.iter().filter(|a| **a > MAX_AGE_US as f64).count();
    let executed = ages.len() as u64;
    let (p50, p99) = p50_p99(ages);
    let (f50, f99) = p50_p99(feedback);
    let (b_sent, b_delays, b_feedback, b_dup, b_late) = udp_baseline(&lab, a.can_seconds);
    let b_received = b_delays.len() as u64;
    let (b50, b99) = p50_p99(b_delays);
    let (bf50, bf99) = p50_p99(b_feedback);
    json!({
        "profile": profile.name, "kind": "can", "delivery": a.can_delivery.as_str(),
        "p50_ms": ms(p50), "p99_ms": ms(p99),
        "feedback_p50_ms": ms(f50), "feedback_p99_ms": ms(f99),
        "sent": sent, "executed": executed, "stale_dropped": stale,
        "lost": sent.saturating_sub(executed + stale), "duplicated": duplicated,
        "reordered": reordered, "reordered_across_motors": across_motors,
        "stale_delivered": stale_delivered, "max_age_ms": MAX_AGE_US / 1000,
        "copies_used": {"commands": command_copies_used, "feedback": feedback_copies.used},
        "superseded": {"commands": commands_superseded, "feedback": feedback_copies.superseded},
        "driver_copies": feedback_copies,
        "baseline": {
            "path": "plain UDP forwarder",
            "p50_ms": ms(b50), "p99_ms": ms(b99),
            "feedback_p50_ms": ms(bf50), "feedback_p99_ms": ms(bf99),
            "sent": b_sent, "lost": b_sent.saturating_sub(b_received - b_dup.min(b_received)),
            "duplicated": b_dup, "stale_delivered": b_late,
        },
    })
}
