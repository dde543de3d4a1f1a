//! The serving daemon: bind the endpoint, print the ticket, accept connections.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Result;
use tracing::Instrument;
use xoq_link::{bind_endpoint, EndpointOptions, Ticket};

use tokio::sync::Semaphore;

use crate::admission::{
    HandshakeRate, Sessions, HANDSHAKE_RATE, HANDSHAKE_TIMEOUT, MAX_HANDSHAKES,
};
use crate::config::ServerConfig;
use crate::devices::Devices;
use crate::grants::Grants;
use crate::session::{serve_connection, ServerCtx};

/// Runs until the process is told to stop.
pub async fn serve(
    cfg: ServerConfig,
    key: iroh::SecretKey,
    authorized_path: std::path::PathBuf,
) -> Result<()> {
    cfg.validate()?;
    let id = key.public();
    let relays = cfg.relays()?;
    let opts = EndpointOptions {
        bind: cfg.listen_addrs(),
        alpns: vec![xoq_wire::ALPN.to_vec()],
        public_relays: cfg.public_relays,
        relays: relays.clone(),
        relay_ca: cfg.relay_ca.clone(),
    };
    let ep = bind_endpoint(key, opts).await?;
    let ticket = Ticket {
        id,
        addrs: dialable_addrs(&ep.bound_sockets()),
        relays,
    };
    let relay = cfg.moq.target(&cfg.display_name())?;
    let devices = Arc::new(Devices::start(&cfg)?);
    if let Some(target) = relay {
        let devices = devices.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::relay::publish(target, devices).await {
                tracing::error!("publishing through the MoQ relay stopped: {e:#}");
            }
        });
    }
    let ctx = Arc::new(ServerCtx {
        name: cfg.display_name(),
        id,
        devices,
        grants: Grants::load(authorized_path.clone()),
    });
    tokio::spawn(ctx.grants.clone().watch());
    tracing::info!(name = %ctx.name, %id, authorized = %authorized_path.display(), "xoq-server ready");
    // Scripts and tests read these two lines from stdout.
    println!("id: {id}");
    println!("ticket: {ticket}");
    for s in &cfg.serial {
        println!(
            "serving: serial {} ({})",
            s.name,
            s.path.as_deref().unwrap_or("simulated echo")
        );
    }
    for c in &cfg.camera {
        let what = c
            .device
            .as_ref()
            .map_or("test pattern".to_string(), |d| d.display().to_string());
        println!("serving: camera {} ({what})", c.name);
    }
    let sessions = Arc::new(Sessions::default());
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let accept = async {
        let mut turned_away = 0u64;
        let mut rate = HandshakeRate::new(std::time::Instant::now());
        while let Some(incoming) = ep.accept().await {
            // A flood of handshakes is refused before any cryptography is done for it.
            let permit = if rate.allow(std::time::Instant::now()) {
                handshakes.clone().try_acquire_owned().ok()
            } else {
                None
            };
            let Some(permit) = permit else {
                incoming.refuse();
                turned_away += 1;
                if turned_away.is_power_of_two() {
                    tracing::warn!(
                        turned_away,
                        "over {HANDSHAKE_RATE} handshakes a second or {MAX_HANDSHAKES} at once; refusing more"
                    );
                }
                continue;
            };
            let (ctx, sessions) = (ctx.clone(), sessions.clone());
            tokio::spawn(async move {
                let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await;
                drop(permit);
                match conn {
                    Ok(Ok(conn)) => {
                        let span =
                            tracing::info_span!("client", id = %conn.remote_id().fmt_short());
                        serve_connection(ctx, conn, sessions).instrument(span).await
                    }
                    Ok(Err(e)) => tracing::debug!("incoming connection failed: {e}"),
                    Err(_) => tracing::debug!("incoming handshake took over {HANDSHAKE_TIMEOUT:?}"),
                }
            });
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = xoq_link::runtime::shutdown_signal() => tracing::info!("shutting down"),
    }
    ep.close().await;
    Ok(())
}

/// The addresses a client could dial: bound sockets, with a wildcard bind replaced by every
/// interface address of its family (loopback last).
pub fn dialable_addrs(bound: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    let ifaces: Vec<IpAddr> = nix::ifaddrs::getifaddrs()
        .map(|it| {
            it.filter_map(|i| i.address)
                .filter_map(|a| {
                    a.as_sockaddr_in()
                        .map(|v4| IpAddr::V4(v4.ip()))
                        .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
                })
                .collect()
        })
        .unwrap_or_default();
    for b in bound {
        if b.ip().is_unspecified() {
            let mut ips: Vec<IpAddr> = ifaces
                .iter()
                .copied()
                .filter(|ip| ip.is_ipv4() == b.is_ipv4())
                .filter(|ip| !matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80))
                .collect();
            ips.sort_by_key(|ip| ip.is_loopback());
            out.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, b.port())));
        } else {
            out.push(*b);
        }
    }
    out.dedup();
    out
}
