//! A compromised robot: `hostile_server` speaks the wire protocol but announces names that
//! would become paths outside the mounter's directories, absurd device counts, contradictory
//! catalogs and catalogs that grow on every reconnect. The mounter (root here, as packaged)
//! must refuse each with a clear message and create nothing anywhere.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use xoq_tests_host::proc::{bin_dir, free_udp_port, Proc};
use xoq_tests_host::{Env, Mount};

/// Starts the hostile server; returns it and its ticket.
fn hostile(env: &Env, scenario: &str) -> (Proc, String) {
    let mut cmd = Command::new(bin_dir().join("hostile_server"));
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{}", free_udp_port()))
        .arg(scenario);
    let mut p = Proc::spawn(cmd, env.path(&format!("hostile-{scenario}.err")));
    let ticket = p.wait_line("ticket: ", Duration::from_secs(20))[8..].to_string();
    (p, ticket)
}

/// Every path under `dir`, recursively (symlinks not followed).
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p.clone());
            }
            out.insert(p);
        }
    }
    out
}

/// What the mounter could touch: its own world (state, runtime, links, the y4m directory),
/// and the places the hostile names aim at.
fn snapshot(env: &Env) -> Vec<BTreeSet<PathBuf>> {
    let aimed_at: BTreeSet<PathBuf> = ["/tmp/xoq-pwned", "/tmp/xoq-pwned.y4m", "/rf"]
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    let mut world = tree(env.dir.path());
    // The mounter's own stderr file is the test's, not the mounter's doing.
    world.retain(|p| p.extension().is_none_or(|e| e != "err"));
    vec![
        world,
        tree(Path::new("/etc/udev/rules.d")),
        tree(Path::new("/dev/xoq")),
        aimed_at,
    ]
}

/// The mounter connects, refuses the catalog for good with `reason` in its error, exits, and
/// leaves every directory as it was.
fn refused(scenario: &str, reason: &str) {
    let env = Env::new();
    // The mounter's key and runtime directory (its status socket's) exist before the snapshot.
    env.client_id("laptop");
    std::fs::create_dir_all(env.path("run-laptop")).expect("runtime dir");
    std::fs::create_dir_all(env.path("y4m")).expect("y4m dir");
    let (_server, ticket) = hostile(&env, scenario);
    let before = snapshot(&env);
    let y4m = format!("y4m:{}", env.path("y4m").display());
    let (code, stderr) = Mount::expect_failure(&env, "laptop", &ticket, &["--camera-sink", &y4m]);
    assert_eq!(code, Some(1), "{scenario}: {stderr}");
    assert!(
        stderr.contains("catalog is refused") && stderr.contains(reason),
        "{scenario}: expected the refusal to say {reason:?}: {stderr}"
    );
    assert_eq!(
        snapshot(&env),
        before,
        "{scenario}: the mounter created something"
    );
}

#[test]
fn a_server_name_that_is_a_path_is_refused_and_nothing_is_created() {
    refused("server-name-traversal", "server_name is not a valid name");
}

#[test]
fn a_device_name_that_is_a_path_is_refused_and_nothing_is_created() {
    refused("device-name-traversal", "device_name is not a valid name");
}

#[test]
fn a_device_name_that_looks_like_an_option_is_refused() {
    refused("device-name-option", "device_name is not a valid name");
}

#[test]
fn a_catalog_of_more_than_64_devices_is_refused() {
    refused(
        "too-many-devices",
        "65 devices listed, more than the limit of 64",
    );
}

#[test]
fn a_catalog_naming_one_device_twice_is_refused() {
    refused(
        "duplicate-names",
        "lists the device name \"ttyS0\" more than once",
    );
}

#[test]
fn a_camera_of_absurd_size_and_rate_is_refused() {
    refused("huge-camera", "width");
}

#[test]
fn an_audio_device_whose_settings_contradict_its_codec_is_refused() {
    refused("contradictory-audio", "packet_frames");
}

#[test]
fn a_server_answering_a_version_the_mounter_did_not_offer_is_refused() {
    refused("old-version", "protocol version 1");
}

#[test]
fn a_catalog_that_grows_on_every_reconnect_mounts_at_most_64_devices() {
    let env = Env::new();
    let (_server, ticket) = hostile(&env, "growing-catalog");
    // 20 new serial ports per connection, then the server hangs up: 64 are mounted over four
    // connections, and the rest are refused, one line each.
    let mut mount = Mount::start(&env, "laptop", &ticket, 64, &[]);
    let line = mount.wait_line_containing("not mounted", Duration::from_secs(60));
    assert!(
        line.contains("already 64 devices mounted"),
        "unexpected refusal: {line}"
    );
    // A fifth connection offers s80..s99; none of it is mounted.
    let line = mount.wait_line_containing("serial  s99:", Duration::from_secs(60));
    assert!(line.starts_with("not mounted"), "{line}");
    let links: Vec<_> = std::fs::read_dir(env.links())
        .expect("link dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(links.len(), 64, "{links:?}");
    assert!(mount
        .proc
        .child
        .try_wait()
        .expect("mounter state")
        .is_none());
}
