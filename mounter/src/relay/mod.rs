//! The mounter's end of the relay transport: `xoq-mount moq://HOST[:PORT]/PREFIX/SERVER` mounts
//! the devices one server publishes on a MoQ relay, with the same local devices as over iroh.
//! `session` finds them and `stream` opens each as a `DeviceStream`; this module parses the
//! target and runs the mount: each device is mounted when it is first announced, and the
//! device loops wait out the relay's (or the server's) absences.

mod audio;
mod camera;
mod echo;
mod session;
mod stream;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tokio::task::JoinSet;
use url::Url;
use xoq_moq::{RelayPaths, RelayTarget};

pub use session::RelaySession;

use crate::status::MountStatus;
use crate::supervisor::{mount_new_devices, MountOptions, Mounts};
use crate::transport::Session;

/// The port of a relay URL that names none.
const DEFAULT_PORT: u16 = 443;

/// Whether `target` names a relay rather than an iroh ticket.
pub fn is_relay_target(target: &str) -> bool {
    ["moq://", "https://"]
        .iter()
        .any(|s| target.to_ascii_lowercase().starts_with(s))
}

/// `moq://HOST[:PORT]/PREFIX/SERVER` (or `https://`): the relay's WebTransport URL and the
/// server's paths on it. The last path segment is the server; those before it, the prefix.
pub fn parse_target(target: &str) -> Result<(Url, RelayPaths)> {
    // URL parsing would resolve these; a relay path names its segments as they are.
    if target.split('/').any(|s| s == ".." || s == ".") {
        bail!("`{target}`: `.` and `..` are not relay path segments");
    }
    let url: Url = target
        .parse()
        .with_context(|| format!("`{target}` is not a URL"))?;
    if !matches!(url.scheme(), "moq" | "https") {
        bail!("`{target}`: a relay is named moq://HOST[:PORT]/PREFIX/SERVER or https://...");
    }
    let Some(host) = url.host_str() else {
        bail!("`{target}` names no relay host");
    };
    if url.query().is_some() || url.fragment().is_some() {
        bail!("`{target}`: give the token with --token, not in the URL");
    }
    let path = url.path().trim_matches('/');
    let (prefix, server) = path.rsplit_once('/').unwrap_or(("", path));
    if server.is_empty() {
        bail!("`{target}` names no server: moq://HOST[:PORT]/PREFIX/SERVER");
    }
    let paths = RelayPaths::new(prefix, server)?;
    let port = url.port().unwrap_or(DEFAULT_PORT);
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let relay: Url = format!("https://{host}:{port}")
        .parse()
        .context("relay URL")?;
    Ok((relay, paths))
}

/// Mounts what the relay announces for the server until the session gives up for good (a
/// refused token); an absent relay or server is waited for.
pub async fn run(
    target: RelayTarget,
    opts: MountOptions,
    mounts: Arc<Mounts>,
    status: Arc<MountStatus>,
) -> Result<()> {
    let relay = Arc::new(RelaySession::connect(target)?);
    let server = relay.target.paths.server().to_string();
    status.set_link("connecting");
    status.set_server_name(&server);
    status.set_path(format!("moq relay {}", relay.target.url));
    let session = Session::Relay(relay.clone());
    let mut catalog = relay.catalog();
    let mut conn = relay.conn.clone();
    let mut loops = JoinSet::new();
    loop {
        tokio::select! {
            info = catalog.recv() => {
                let Some(info) = info else { bail!("the relay session ended") };
                mount_new_devices(&session, &[info], &server, &opts, &mounts, &status, &mut loops).await?;
            }
            changed = conn.status() => match changed {
                Ok(moq_tokio::Status::Connected) => {
                    tracing::info!(relay = %relay.target.url, root = %relay.target.paths.root(), "relay session up");
                    status.set_link("connected");
                }
                Ok(other) => {
                    tracing::warn!(relay = %relay.target.url, "relay session {other:?}; devices stay mounted, redialling");
                    status.set_link(format!("reconnecting: relay session {other:?}"));
                    status.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)).with_context(|| format!(
                        "the relay {} ended this mounter's session for good (a token it refuses, \
                         expired or for another server?)",
                        relay.target.url
                    ));
                }
            },
            Some(_) = loops.join_next(), if !loops.is_empty() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_target_names_the_relay_the_prefix_and_the_server() {
        let (url, paths) = parse_target("moq://relay.example:4443/fleet/lab/robot1").expect("ok");
        assert_eq!(url.as_str(), "https://relay.example:4443/");
        assert_eq!(paths.root(), "fleet/lab/robot1");
        assert_eq!(paths.server(), "robot1");
        let (url, paths) = parse_target("https://localhost/robot1/").expect("ok");
        assert_eq!(url.port_or_known_default(), Some(443));
        assert_eq!(paths.root(), "robot1");
        for bad in [
            "moq://relay.example/",
            "moq://relay.example/fleet/../x",
            "ftp://relay.example/a/b",
            "moq://relay.example/a/b?jwt=x",
            "moq:///a/b",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
        assert!(is_relay_target("MOQ://x/y"));
        assert!(!is_relay_target("endpointabc"));
    }
}
