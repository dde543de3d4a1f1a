//! The MoQ relay's administration commands: the fleet's signing key, tokens for robots and
//! clients, and the auth server the relay asks about every session (see docs/OPERATIONS.md,
//! "MoQ relays").

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use xoq_moq::token::{self, Grants};
use xoq_moq::RelayPaths;

#[derive(Subcommand)]
pub enum RelayCommand {
    /// Make the fleet's relay key pair: KEY signs tokens (keep it with whoever issues them),
    /// KEY's `.pub` twin is all the auth server needs.
    RelayKey {
        /// Where to write the private key (mode 0600); the public half goes beside it with
        /// `.pub` before the extension, e.g. fleet.jwk -> fleet.pub.jwk.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a token for a MoQ relay, scoped to one server's devices.
    Token {
        /// The private relay key (from `relay-key`).
        #[arg(long = "relay-key")]
        relay_key: PathBuf,
        /// The relay path prefix the server publishes under (its `--moq-path`).
        #[arg(long, default_value = "")]
        prefix: String,
        /// The server's name on the relay (default: this server's configured name).
        #[arg(long)]
        server: Option<String>,
        /// Devices the holder may watch, e.g. 'cam0,can0'.
        #[arg(long, default_value = "")]
        subscribe: String,
        /// Devices the holder may also write (send CAN frames, write a serial port): the
        /// relay's read-write. Needs --client.
        #[arg(long, default_value = "")]
        publish: String,
        /// The writer's name: its commands are published under `<device>/w/<client>`.
        #[arg(long)]
        client: Option<String>,
        /// A robot's token: publish every device, read the clients' commands.
        #[arg(long)]
        robot: bool,
        /// A relay's token for joining a cluster (moq-relay --cluster-token): everything under
        /// --prefix, both ways.
        #[arg(long, conflicts_with_all = ["robot", "subscribe", "publish", "client", "server"])]
        cluster: bool,
        /// How long the token is valid: 30m, 12h, 7d (at most 366d).
        #[arg(long, default_value = "1h")]
        expires: String,
    },
    /// Answer a moq-relay's `--auth-url` requests: admit sessions whose token the fleet's
    /// public key verifies, refuse anonymous ones.
    RelayAuth {
        /// The public relay key (from `relay-key`); re-read per request, so it can be rotated.
        #[arg(long = "relay-key")]
        relay_key: PathBuf,
        /// Address to listen on; the relay is its only client, so keep it private.
        #[arg(long, default_value = "127.0.0.1:4440")]
        listen: SocketAddr,
    },
}

/// The public key's file name beside the private one: `fleet.jwk` -> `fleet.pub.jwk`.
pub fn public_key_path(private: &std::path::Path) -> PathBuf {
    let stem = private
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "relay".into());
    let name = match private.extension() {
        Some(ext) => format!("{stem}.pub.{}", ext.to_string_lossy()),
        None => format!("{stem}.pub"),
    };
    private.with_file_name(name)
}

pub fn run(cmd: RelayCommand, server_name: String) -> Result<()> {
    match cmd {
        RelayCommand::RelayKey { out } => {
            if out.exists() {
                anyhow::bail!(
                    "{} exists; not overwriting a key (move it away first)",
                    out.display()
                );
            }
            let public = public_key_path(&out);
            token::generate_key(&out, &public)?;
            println!(
                "relay key written: {} (private: signs tokens), {} (public: for relay-auth)",
                out.display(),
                public.display()
            );
            Ok(())
        }
        RelayCommand::Token {
            relay_key,
            prefix,
            server,
            subscribe,
            publish,
            client,
            robot,
            cluster,
            expires,
        } => {
            let key = moq_auth_key(&relay_key)?;
            let lifetime = token::parse_duration(&expires)?;
            if cluster {
                println!("{}", token::mint_cluster(&key, &prefix, lifetime)?);
                return Ok(());
            }
            let paths = RelayPaths::new(&prefix, server.as_deref().unwrap_or(&server_name))?;
            let grants = Grants {
                subscribe: Grants::device_list(&subscribe),
                publish: Grants::device_list(&publish),
                client,
                robot,
            };
            println!("{}", token::mint(&key, &paths, &grants, lifetime)?);
            Ok(())
        }
        RelayCommand::RelayAuth { relay_key, listen } => {
            let rt = xoq_link::runtime::build().context("cannot start the async runtime")?;
            rt.block_on(async {
                let (addr, serve) = xoq_moq::auth::bind(relay_key, listen).await?;
                tracing::info!(%addr, "answering the relay's auth requests (moq-relay --auth-url http://{addr}/)");
                tokio::select! {
                    r = serve => r.context("the auth server failed"),
                    _ = tokio::signal::ctrl_c() => Ok(()),
                }
            })
        }
    }
}

fn moq_auth_key(path: &std::path::Path) -> Result<xoq_moq::token::Key> {
    xoq_moq::token::Key::from_file(path)
        .with_context(|| format!("cannot read the relay key {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_key_sits_beside_the_private_one() {
        assert_eq!(
            public_key_path(std::path::Path::new("/k/fleet.jwk")),
            PathBuf::from("/k/fleet.pub.jwk")
        );
        assert_eq!(
            public_key_path(std::path::Path::new("key")),
            PathBuf::from("key.pub")
        );
    }
}
