//! The remote microphone over LTE's terms: the server (simulated 440 Hz microphone) and the
//! mounter in separate network namespaces joined by the seeded `lte` link (70 ms +/- 25 ms
//! RTT, 2 % loss in bursts), a real PipeWire daemon and `pw-record` on the mounter's side.
//! - the jitter buffer's target rises from the configured 20 ms to what the link's jitter
//!   needs, and stays within its bound;
//! - lost packets are concealed and counted (`concealed` in the status), and the tone between
//!   them keeps its pitch and level.
//!
//! Underruns and delays at each profile are timing figures (`net_bench --kind audio` is not
//! built yet; see docs/BENCHMARKS.md).

use std::time::{Duration, Instant};

use xoq_impair::Profile;
use xoq_tests_host::audio::{analyse_tone, status_of, RATE};
use xoq_tests_host::netlab::{NetLab, SERVER_PORT};
use xoq_tests_host::pipewire::PipeWire;
use xoq_tests_host::{wav, Env, Mount, Server};

const MIC: &str = "xoq.testbot.mic0";

#[test]
fn at_lte_the_delay_rises_to_the_jitter_and_losses_are_concealed_and_counted() {
    let lab = NetLab::new(Profile::named("lte").expect("lte"), 3);
    let mut env = Env::new();
    let pw = PipeWire::start();
    for (k, v) in pw.vars() {
        env.set_var(k, v);
    }
    lab.place(&mut env, "laptop");
    env.authorize("laptop", &[]);
    let server = Server::start_on(
        &env,
        lab.server_ip(),
        SERVER_PORT,
        &["--sim-mic".into(), "mic0".into()],
    );
    let _mount = Mount::start(&env, "laptop", &server.ticket, 1, &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pw.has_node(MIC) {
        assert!(Instant::now() < deadline, "node missing: {}", pw.dump());
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = env.path("mic.wav");
    pw.record(MIC, 20.0, RATE, &out);
    let j = status_of(&env, "mic0")["detail"]["jitter"].clone();
    println!("mic0 at lte: {j}");
    let target = j["target_ms"].as_f64().expect("target_ms");
    assert!(
        target > 20.0 && target <= 200.0,
        "the delay did not rise to the link's jitter (or passed its bound): {j}"
    );
    assert!(j["target_changes"].as_u64() >= Some(1), "{j}");
    // About 2 % of 100 packets a second were lost on the way; each was concealed.
    assert!(
        j["concealed"].as_u64() >= Some(5),
        "losses not concealed/counted: {j}"
    );
    // Between the concealed packets the tone is the microphone's (from 5 s on: the delay has
    // risen by then).
    let rec = wav::read(&out);
    let a = analyse_tone(&rec.samples, 440.0, 5.0);
    println!("tone: {a}");
    assert!(a.continuous_s > 0.2, "no stretch of tone: {a}");
    assert!((a.freq / 440.0 - 1.0).abs() <= 0.001, "pitch: {a}");
}
