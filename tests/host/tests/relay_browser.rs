//! The browser viewer (`web/`, built with npm from its lock file) in a real browser: Debian's
//! chromium, headless, connects over WebTransport to a local `moq-relay` with a self-signed
//! certificate (pinned by its SHA-256, `serverCertificateHashes`), plays the simulated camera
//! with @moq/watch, and shows the simulated Damiao bus's frames in its CAN monitor. The page
//! reports what it shows; the camera's frame numbers, read from the canvas's pixels, must
//! advance, and the motor a writer enables must appear in the monitor with its feedback.

use std::time::{Duration, Instant};

use base64::Engine;
use xoq_tests_host::browser::{viewer_dist, Browser, PageServer};
use xoq_tests_host::relay_lab::{enable_until_answered, RelayLab, PREFIX};
use xoq_tests_host::Env;

const T: Duration = Duration::from_secs(60);

/// The frame number in a reported picture, if it shows one.
fn frame_number(report: &serde_json::Value) -> Option<u16> {
    let p = &report["picture"];
    let (w, h) = (
        p["width"].as_u64()? as usize,
        p["height"].as_u64()? as usize,
    );
    let y = base64::engine::general_purpose::STANDARD
        .decode(p["y"].as_str()?)
        .ok()?;
    (y.len() == w * h)
        .then(|| xoq_video::pattern::read(&y, w, h))
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_plays_the_camera_and_shows_the_can_bus_in_chromium() {
    assert!(
        viewer_dist().join("viewer.js").exists(),
        "build the viewer first: (cd web && npm ci && npm run build); scripts/test.sh does"
    );
    let lab = RelayLab::start().await;
    let env = Env::new();
    let server = lab.serve(&env, &["--sim-camera", "cam0", "--sim-can", "can0"]);
    let page = PageServer::start(viewer_dist()).await;
    let token = lab.client_token("cam0,can0", "", "browser");
    // 127.0.0.1, not localhost: chromium tries ::1 for localhost, where the relay is not.
    let url = format!(
        "http://127.0.0.1:{}/index.html?relay=https://127.0.0.1:{}&path={PREFIX}/testbot&jwt={token}&camera=cam0&can=can0&fingerprint={}&report=http://127.0.0.1:{}/report",
        page.port,
        lab.addr().port(),
        lab.fingerprint(),
        page.port
    );
    let browser = Browser::open(&url);

    // The page's canvas: frame numbers that advance.
    let deadline = Instant::now() + T;
    let mut seen: Vec<u16> = Vec::new();
    while Instant::now() < deadline {
        let last = page.reports.lock().expect("lock").last().cloned();
        if let Some(n) = last.as_ref().and_then(frame_number) {
            if seen.last() != Some(&n) {
                seen.push(n);
            }
        }
        if seen.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let last = page.reports.lock().expect("lock").last().cloned();
    assert!(
        seen.len() >= 3 && seen.windows(2).all(|w| w[0] < w[1]),
        "the page's camera did not advance: frame numbers {seen:?}; last report status {:?}\nbrowser log:\n{}\nserver:\n{}",
        last.map(|r| r["status"].clone()),
        browser.log(),
        server.proc.stderr()
    );

    // A writer enables motor 1; its feedback (id 0x11) appears in the page's CAN monitor.
    let writer = lab.client("", "can0", "op").await;
    let (_b, mut cmd) = writer.publish_messages("can0/w/op", "cmd");
    let mut state = writer
        .subscribe_messages("can0", "state", T)
        .await
        .expect("state track");
    assert!(
        enable_until_answered(&mut cmd, &mut state, 1)
            .await
            .is_some(),
        "motor 1 never answered"
    );
    let deadline = Instant::now() + T;
    let shown = loop {
        let last = page.reports.lock().expect("lock").last().cloned();
        let motor = last.as_ref().map(|r| r["can"]["17"].clone());
        if let Some(m) = motor.filter(|m| m["count"].as_u64().unwrap_or(0) > 0) {
            break Some(m);
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let m = shown.unwrap_or_else(|| {
        panic!(
            "motor 1's feedback never appeared in the page's CAN monitor\nbrowser log:\n{}",
            browser.log()
        )
    });
    assert_eq!(m["motor"]["motor"], 1, "{m}");
    assert_eq!(m["motor"]["enabled"], true, "{m}");
}
