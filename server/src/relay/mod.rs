//! The relay publisher: this server's second transport. One session with a MoQ relay publishes
//! every served device once, however many subscribe, and takes the commands of the clients
//! whose tokens allow them (docs/ARCHITECTURE.md, "Transports"). It attaches to the device
//! actors like any iroh session, so their rules (one writer, a bus's maximum age) hold here too.

mod can;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Deserialize;
use xoq_moq::{RelayPaths, RelayTarget};

use crate::devices::{Device, Devices};

/// `[moq]` in server.toml: publish through a MoQ relay as well as serving iroh clients.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MoqConfig {
    /// The relay, e.g. `https://relay.example.org:4443`.
    pub url: Option<String>,
    /// Path prefix the devices are published under: `<path>/<server>/<device>`.
    #[serde(default)]
    pub path: String,
    /// File holding this robot's token (`xoq-server token --robot`).
    pub token_file: Option<PathBuf>,
    /// SHA-256 fingerprints (hex) of a self-signed relay certificate.
    #[serde(default)]
    pub tls_fingerprint: Vec<String>,
    /// PEM files of private CAs that sign the relay's certificate.
    #[serde(default)]
    pub tls_root: Vec<PathBuf>,
}

impl MoqConfig {
    /// The relay to publish to, if one is configured.
    pub fn target(&self, server: &str) -> Result<Option<RelayTarget>> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        let url = url
            .parse()
            .with_context(|| format!("[moq] url `{url}` is not a URL"))?;
        let paths = RelayPaths::new(&self.path, server)
            .with_context(|| format!("[moq] path `{}` with server name `{server}`", self.path))?;
        let token_file = self.token_file.as_ref().context(
            "[moq] needs token_file: a robot token from `xoq-server token --robot` (the relay admits no anonymous publisher)",
        )?;
        let token = std::fs::read_to_string(token_file)
            .with_context(|| format!("cannot read the relay token {}", token_file.display()))?
            .trim()
            .to_string();
        Ok(Some(RelayTarget {
            url,
            paths,
            token,
            fingerprints: self.tls_fingerprint.clone(),
            roots: self.tls_root.clone(),
        }))
    }
}

/// Publishes every device through the relay until the server stops; the session is redialled
/// whenever it drops.
pub async fn publish(target: RelayTarget, devices: Arc<Devices>) -> Result<()> {
    let published = moq_tokio::origin::spawn();
    let commands = moq_tokio::origin::spawn();
    let mut tasks = tokio::task::JoinSet::new();
    let mut buses = Vec::new();
    for d in devices.iter() {
        match d {
            Device::Can(dev) => {
                let b = can::Publisher::start(&published, dev.clone())?;
                buses.push(dev.clone());
                tasks.spawn(b.run());
            }
            other => {
                tracing::info!(device = %other.name(), "not published on the relay yet (only CAN buses are)");
            }
        }
    }
    tasks.spawn(can::take_commands(commands.consume(), buses));
    let conn = target.connect(Some(published.consume()), Some(commands))?;
    tracing::info!(relay = %target.url, root = %target.paths.root(), "publishing through the MoQ relay");
    tokio::select! {
        r = conn.closed() => r.context("the relay session ended"),
        _ = async { while tasks.join_next().await.is_some() {} } => Ok(()),
    }
}
