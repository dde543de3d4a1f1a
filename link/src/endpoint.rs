//! The iroh endpoint with XoQ's settings: minimal preset, no relays or address lookup unless
//! asked for, fast keep-alives so a dead link is noticed within seconds.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use iroh::endpoint::{presets, IdleTimeout, PortmapperConfig, QuicTransportConfig};
use iroh::{Endpoint, RelayMode, SecretKey};

/// Keep-alive period: an idle link still carries a packet this often.
pub const KEEP_ALIVE: Duration = Duration::from_millis(1000);
/// A link silent this long is declared dead and the mounter starts reconnecting.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// How to bind an endpoint.
#[derive(Debug, Clone, Default)]
pub struct EndpointOptions {
    /// UDP addresses to listen on; empty means an ephemeral port on every interface.
    pub bind: Vec<SocketAddr>,
    /// ALPNs accepted (servers); clients leave this empty.
    pub alpns: Vec<Vec<u8>>,
    /// Use the public n0 relays and DNS address lookup (needed to dial a bare id across NATs).
    pub public_relays: bool,
}

/// Binds an endpoint with this host's key.
pub async fn bind_endpoint(key: SecretKey, opts: EndpointOptions) -> Result<Endpoint> {
    let idle = IdleTimeout::try_from(IDLE_TIMEOUT).context("idle timeout out of range")?;
    let transport = QuicTransportConfig::builder()
        .keep_alive_interval(KEEP_ALIVE)
        .max_idle_timeout(Some(idle))
        .build();
    let mut b = if opts.public_relays {
        Endpoint::builder(presets::N0)
    } else {
        Endpoint::builder(presets::Minimal)
            .relay_mode(RelayMode::Disabled)
            .clear_address_lookup()
            .portmapper_config(PortmapperConfig::Disabled)
    };
    b = b
        .secret_key(key)
        .alpns(opts.alpns)
        .transport_config(transport);
    if !opts.bind.is_empty() {
        // Only the addresses asked for: the defaults would add ephemeral wildcard sockets.
        b = b.clear_ip_transports();
    }
    for addr in &opts.bind {
        b = b
            .bind_addr(*addr)
            .with_context(|| format!("invalid listen address {addr}"))?;
    }
    let ep = b.bind().await.with_context(|| {
        format!(
            "cannot bind the QUIC endpoint on {:?}; is another xoq-server using that port?",
            opts.bind
        )
    })?;
    Ok(ep)
}
