//! A camera through a real `moq-relay`, in the players' format (hang catalog, H.264 groups
//! from keyframes): the server's simulated camera (numbered moving pattern) -> H.264 ->
//! `fleet/testbot/cam0` -> `xoq-mount moq://...` -> decoder -> file sink. The pictures carry
//! increasing frame numbers and match the source; a second mounter that joins later starts on
//! a keyframe and decodes cleanly too; after a relay restart, the publisher and both viewers
//! reconnect and the pictures resume. (That the server uploads one stream however many watch
//! is measured by the relay fan-out benchmark.)

use std::time::Duration;

use tokio::task::block_in_place;
use xoq_tests_host::relay_lab::{RelayLab, PREFIX};
use xoq_tests_host::y4m::{check_pictures, wait_frames};
use xoq_tests_host::{Env, Mount};

const T: Duration = Duration::from_secs(90);

fn mount(env: &Env, lab: &RelayLab, client: &str, token: &str) -> Mount {
    let sink = format!("y4m:{}", env.path(&format!("video-{client}")).display());
    let target = format!(
        "moq://{}/{PREFIX}/testbot",
        lab.url().trim_start_matches("https://")
    );
    let fingerprint = lab.fingerprint();
    Mount::start(
        env,
        client,
        &target,
        1,
        &[
            "--token",
            token,
            "--relay-fingerprint",
            &fingerprint,
            "--camera-sink",
            &sink,
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_through_the_relay_arrives_numbered_and_matching_the_source() {
    let mut lab = RelayLab::start().await;
    let env = Env::new();
    let _server = lab.serve(&env, &["--sim-camera", "cam0"]);
    let token = lab.client_token("cam0", "", "viewer");

    let first = block_in_place(|| mount(&env, &lab, "viewer", &token));
    assert!(
        first
            .proc
            .seen
            .iter()
            .any(|l| l.contains("mounted  camera  cam0") && l.contains("640x480@30 h264")),
        "{:?}",
        first.proc.seen
    );
    let y = block_in_place(|| wait_frames(&env.path("video-viewer/cam0.y4m"), 61, T));
    assert_eq!((y.width, y.height), (640, 480));
    let c = check_pictures(&y.frames[1..61], 640, 480, 0, 30.0);
    println!(
        "60 pictures through the relay: {} distinct, {} repeats, worst PSNR {:.1} dB",
        c.distinct, c.repeats, c.worst_psnr
    );
    assert!(c.distinct > 1, "the picture never changed");

    // A late joiner starts on a keyframe: every picture it writes decodes cleanly.
    let _late = block_in_place(|| mount(&env, &lab, "late", &token));
    let y = block_in_place(|| wait_frames(&env.path("video-late/cam0.y4m"), 31, T));
    let c = check_pictures(&y.frames[..31], 640, 480, 0, 30.0);
    assert!(c.distinct > 1, "the late joiner's picture never changed");

    // The relay restarts: the server publishes again, both mounters reopen the camera, and
    // the picture moves again: the newest picture's number changes twice after the restart
    // (a mounter repeats its last picture while frames are late, so one change is not enough).
    lab.restart().await;
    let newest = |env: &Env| {
        let y = wait_frames(&env.path("video-viewer/cam0.y4m"), 1, T);
        xoq_video::pattern::read(&y.frames[y.frames.len() - 1][..640 * 480], 640, 480)
    };
    let stale = block_in_place(|| newest(&env));
    let mut seen = vec![stale];
    let deadline = std::time::Instant::now() + T;
    while seen.len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the picture did not move after the relay restarted: {seen:?}\nmount:\n{}",
            first.proc.stderr()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let n = block_in_place(|| newest(&env));
        if n.is_some() && seen.last() != Some(&n) {
            seen.push(n);
        }
    }
}
