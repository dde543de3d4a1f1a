//! The simulated camera served across a network lab: its server configuration (mode, grain,
//! bit-rate ceiling), the mounter's frame counters for it, and the figures of the server's
//! `frame sender stopped` summary. Shared by the camera network tests and `net_bench`.

use std::path::PathBuf;

use xoq_wire::VideoMode;

use crate::netlab::{NetLab, SERVER_PORT};
use crate::{Env, Server};

/// Starts a server in `lab` serving the simulated camera `cam0` in `mode`, with `grain` and a
/// ceiling of `bitrate_kbps` (software encoder).
pub fn serve_sim_camera(
    env: &Env,
    lab: &NetLab,
    mode: VideoMode,
    grain: u8,
    bitrate_kbps: u32,
) -> Server {
    let cfg: PathBuf = env.path("server.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[camera]]\nname = \"cam0\"\nsimulated = true\nmode = \"{mode}\"\n\
             sim_grain = {grain}\nbitrate_kbps = {bitrate_kbps}\nencoder = \"software\"\n"
        ),
    )
    .expect("server.toml");
    Server::start_on(
        env,
        lab.server_ip(),
        SERVER_PORT,
        &["--config".into(), cfg.display().to_string()],
    )
}

/// The mounter's frame counters for `cam0` (`detail.frames`, plus the device's `rx_bytes`).
pub fn frames_status(env: &Env, client: &str) -> serde_json::Value {
    let v = env.mount_status(client);
    v["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "cam0"))
        .map(|d| {
            let mut f = d["detail"]["frames"].clone();
            f["rx_bytes"] = d["rx_bytes"].clone();
            f
        })
        .unwrap_or_default()
}

/// The server's last `frame sender stopped` line in `log`.
pub fn sender_summary(log: &str) -> Option<&str> {
    log.lines()
        .rev()
        .find(|l| l.contains("frame sender stopped"))
}

/// `key=N` from a `frame sender stopped` line.
pub fn figure(line: &str, key: &str) -> Option<u64> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}
