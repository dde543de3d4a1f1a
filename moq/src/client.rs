//! A session with a relay: the URL of one server's root with the token in its query, the TLS
//! trust (a pinned certificate fingerprint, private roots, or the system's), reconnection.

use std::path::PathBuf;

use anyhow::{Context, Result};
use url::Url;

use crate::paths::RelayPaths;

/// Where a relay is and how to trust it.
#[derive(Debug, Clone)]
pub struct RelayTarget {
    /// `https://host:port` (WebTransport) or `moqt://host:port` (QUIC); its path is ignored.
    pub url: Url,
    pub paths: RelayPaths,
    /// The token (a JWT from `xoq-server token`).
    pub token: String,
    /// SHA-256 fingerprints (hex) of the relay's certificate, for a self-signed one.
    pub fingerprints: Vec<String>,
    /// PEM files of private CAs that sign the relay's certificate.
    pub roots: Vec<PathBuf>,
}

impl RelayTarget {
    /// The URL a session dials: `<relay>/<prefix>/<server>?jwt=<token>`. Broadcast names in the
    /// session are relative to that root.
    pub fn session_url(&self) -> Result<Url> {
        let mut url = self.url.clone();
        url.set_path(&format!("/{}", self.paths.root()));
        url.set_query(None);
        if !self.token.is_empty() {
            url.query_pairs_mut().append_pair("jwt", &self.token);
        }
        Ok(url)
    }

    /// A session publishing `publish` and receiving into `receive`, redialled whenever it
    /// drops (the broadcasts are announced again on each new session).
    pub fn connect(
        &self,
        publish: Option<moq_net::origin::Consumer>,
        receive: Option<moq_net::origin::Producer>,
    ) -> Result<moq_tokio::Connection> {
        let mut config = moq_tokio::connect::Config::default();
        config.tls.fingerprint = self.fingerprints.clone();
        config.tls.root = self.roots.clone();
        let client = config
            .init(Default::default())
            .context("cannot set up a MoQ client")?;
        let mut client = client.with_reconnect(true);
        if let Some(p) = publish {
            client = client.with_publisher(p);
        }
        if let Some(r) = receive {
            client = client.with_subscriber(r);
        }
        Ok(client.connect(self.session_url()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_url_is_the_servers_root_with_the_token() {
        let t = RelayTarget {
            url: "https://relay.example:4443/ignored?x=1"
                .parse()
                .expect("url"),
            paths: RelayPaths::new("fleet", "robot1").expect("paths"),
            token: "a.b.c".into(),
            fingerprints: vec![],
            roots: vec![],
        };
        assert_eq!(
            t.session_url().expect("url").as_str(),
            "https://relay.example:4443/fleet/robot1?jwt=a.b.c"
        );
    }
}
