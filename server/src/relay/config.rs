//! `[moq]` in server.toml (and `--moq-*` on `serve`): the relay to publish to, this robot's
//! token, and how the relay's certificate is trusted.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Deserialize;
use xoq_moq::{RelayPaths, RelayTarget};

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
