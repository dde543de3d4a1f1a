//! The auth server a `moq-relay` asks about every session (its `--auth-url`): tokens are
//! verified against the fleet's public key, anonymous sessions and client certificates are
//! refused. The key file is read per request, so a rotated key applies without a restart.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use moq_auth::serve::{Keys, Policy, Server};

/// Serves the auth contract on `listen` (a loopback or private address: the relay is its only
/// client) until the task is dropped. Returns once bound, with the address and the serving
/// future.
pub async fn bind(
    key: PathBuf,
    listen: SocketAddr,
) -> Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    // Fail now, not at the first session, if the key is missing or unreadable.
    moq_auth::Key::from_file(&key)
        .with_context(|| format!("cannot read the relay key {}", key.display()))?;
    let mut policy = Policy::default();
    policy.keys = Some(Keys::File(key));
    let server = Server::new(policy).context("cannot set up the auth policy")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} for the relay's auth requests"))?;
    let addr = listener.local_addr()?;
    Ok((addr, async move { server.serve(listener).await }))
}
