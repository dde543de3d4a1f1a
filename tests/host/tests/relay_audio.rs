//! Microphones through a real `moq-relay`, as hang Opus audio: the server's simulated
//! microphones (a 440 Hz sine at half scale), `mic0` sending PCM over iroh (re-encoded to Opus
//! for the relay) and `mic1` sending Opus (passed on as it is), -> `fleet/testbot/mic*` ->
//! `xoq-mount moq://...` -> the PipeWire sources `xoq.testbot.mic0`/`mic1` -> Debian's
//! `pw-record`, which records the tone at its pitch and level. The speaker beside them is not
//! published (relays carry nothing that plays into the robot) and the server says so. After a
//! relay restart the publisher and the mounter reconnect and the tone comes back.
//! Junction counts and delays are timing figures, printed, not asserted (as in `audio.rs`).

use std::time::{Duration, Instant};

use tokio::task::block_in_place;
use xoq_audio::Tone;
use xoq_tests_host::audio::{analyse_tone, status_of, RATE};
use xoq_tests_host::pipewire::PipeWire;
use xoq_tests_host::relay_lab::{RelayLab, PREFIX};
use xoq_tests_host::{wav, Env, Mount};

/// `pw-record` of `mic`'s source holds the tone at its pitch (within 0.1 %) and level (1 dB).
fn assert_tone(env: &Env, pw: &PipeWire, mic: &str, tag: &str) {
    let out = env.path(&format!("{mic}{tag}.wav"));
    block_in_place(|| pw.record(&format!("xoq.testbot.{mic}"), 3.5, RATE, &out));
    let rec = wav::read(&out);
    // From 1 s on: the jitter buffer aligns its delay once after play starts.
    let a = analyse_tone(&rec.samples, 440.0, 1.0);
    println!(
        "{mic}{tag}: {a}; {}",
        status_of(env, mic)["detail"]["jitter"]
    );
    let level = Tone::new(440.0, 0.5, RATE).level_dbfs();
    assert!(a.continuous_s > 1.0, "{mic}{tag}: too little tone: {a}");
    assert!((a.freq / 440.0 - 1.0).abs() <= 0.001, "{mic}{tag}: {a}");
    assert!(
        (a.level_dbfs - level).abs() <= 1.0,
        "{mic}{tag}: {a}, not {level:.2} dBFS"
    );
}

fn server_config(env: &Env) -> String {
    let toml = format!(
        "[[audio]]\nname = \"mic0\"\ndirection = \"capture\"\nsimulated = true\n\
         [[audio]]\nname = \"mic1\"\ndirection = \"capture\"\nsimulated = true\ncodec = \"opus\"\n\
         [[audio]]\nname = \"spk0\"\ndirection = \"playback\"\nsimulated = true\nrecord = \"{}\"\n",
        env.path("spk0.rec").display()
    );
    let cfg = env.path("server.toml");
    std::fs::write(&cfg, toml).expect("server config");
    cfg.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pw_record_of_microphones_mounted_from_the_relay_gets_their_tone() {
    let mut lab = RelayLab::start().await;
    let mut env = Env::new();
    let pw = PipeWire::start();
    for (k, v) in pw.vars() {
        env.set_var(k, v);
    }
    let cfg = server_config(&env);
    let server = lab.serve(&env, &["--config", &cfg]);
    let token = lab.client_token("mic0,mic1,spk0", "", "laptop");
    let target = format!(
        "moq://{}/{PREFIX}/testbot",
        lab.url().trim_start_matches("https://")
    );
    let fingerprint = lab.fingerprint();
    let _mount = block_in_place(|| {
        Mount::start(
            &env,
            "laptop",
            &target,
            2,
            &["--token", &token, "--relay-fingerprint", &fingerprint],
        )
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    for node in ["xoq.testbot.mic0", "xoq.testbot.mic1"] {
        while !pw.has_node(node) {
            assert!(Instant::now() < deadline, "{node} missing: {}", pw.dump());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for mic in ["mic0", "mic1"] {
        assert_tone(&env, &pw, mic, "");
    }
    assert!(
        !pw.has_node("xoq.testbot.spk0"),
        "a speaker was mounted from the relay"
    );
    let log = server.proc.stderr();
    assert!(
        log.contains("spk0") && log.contains("speakers are not carried by relays"),
        "the server did not say why the speaker is not published:\n{log}"
    );

    // The relay restarts: once packets flow again (a second of them: 50 of 20 ms, at least
    // 40 bytes each), the tone is back.
    lab.restart().await;
    let received = || status_of(&env, "mic0")["rx_bytes"].as_u64().unwrap_or(0);
    let before = received();
    let deadline = Instant::now() + Duration::from_secs(60);
    while received() < before + 50 * 40 {
        assert!(
            Instant::now() < deadline,
            "no packets after the relay restarted: {}",
            status_of(&env, "mic0")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_tone(&env, &pw, "mic0", "-after-restart");
}
