//! The iroh endpoint with XoQ's settings: minimal preset, no relays or address lookup unless
//! asked for (one's own relays, or the public ones), fast keep-alives so a dead link is noticed
//! within seconds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use iroh::endpoint::{
    presets, AckFrequencyConfig, IdleTimeout, PortmapperConfig, QuicTransportConfig,
    QuicTransportConfigBuilder, VarInt,
};
use iroh::tls::CaTlsConfig;
use iroh::{Endpoint, RelayMap, RelayMode, RelayUrl, SecretKey};

/// Keep-alive period: an idle link still carries a packet this often.
pub const KEEP_ALIVE: Duration = Duration::from_millis(1000);
/// A link silent this long is declared dead and the mounter starts reconnecting. QUIC probes
/// a silent path at most a second apart (noq caps its probe backoff at 1 s for idle timeouts
/// under 25 s), so an outage of up to about this minus 1 s and a round trip is ridden out
/// without a new connection: 6 s covers the `outage` profile's 3 s blackholes even with a
/// full congestion window (at 4 s, a 3 s outage during a bulk transfer ended the connection
/// and lost what the port had sent meanwhile), and a dead link still shows within seconds.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(6);

/// The round trip assumed before one is measured (QUIC's default is 333 ms): a handshake's
/// first retransmission comes after 3x this, 300 ms rather than a second, so a reconnection
/// attempt started during an outage finds the returning link sooner.
pub const INITIAL_RTT: Duration = Duration::from_millis(100);

/// How to bind an endpoint.
#[derive(Debug, Clone, Default)]
pub struct EndpointOptions {
    /// UDP addresses to listen on; empty means an ephemeral port on every interface.
    pub bind: Vec<SocketAddr>,
    /// ALPNs accepted (servers); clients leave this empty.
    pub alpns: Vec<Vec<u8>>,
    /// Use the public n0 relays and DNS address lookup (needed to dial a bare id across NATs).
    pub public_relays: bool,
    /// Our own relays (`--relay`, `relay_urls`): the endpoint keeps a connection to the nearest
    /// (its home relay, through which peers reach it across NATs), learns its public address
    /// from them (QUIC address discovery) and punches holes for a direct path.
    pub relays: Vec<RelayUrl>,
    /// A PEM file of certificate authorities trusted for the relays' TLS, besides the usual
    /// web ones (a relay with a certificate of one's own CA, or a self-signed one).
    pub relay_ca: Option<PathBuf>,
}

/// Datagrams (audio packets, stream copies) QUIC holds while the path cannot take them (QUIC's
/// default, stated because `copies` measures what waits against it).
pub const DATAGRAM_SEND_BUFFER: usize = 1024 * 1024;

/// Binds an endpoint with this host's key.
pub async fn bind_endpoint(key: SecretKey, opts: EndpointOptions) -> Result<Endpoint> {
    let idle = IdleTimeout::try_from(IDLE_TIMEOUT).context("idle timeout out of range")?;
    let server = !opts.alpns.is_empty();
    let transport = stream_limits(QuicTransportConfig::builder(), server)
        .keep_alive_interval(KEEP_ALIVE)
        .max_idle_timeout(Some(idle))
        .initial_rtt(INITIAL_RTT)
        .ack_frequency_config(ack_frequency())
        .datagram_send_buffer_size(DATAGRAM_SEND_BUFFER);
    let transport = transport
        .congestion_controller_factory(congestion())
        .build();
    if opts.public_relays && !opts.relays.is_empty() {
        anyhow::bail!("use either the public relays or your own (--relay), not both");
    }
    let mut b = if opts.public_relays {
        Endpoint::builder(presets::N0)
    } else {
        let relays = if opts.relays.is_empty() {
            RelayMode::Disabled
        } else {
            RelayMode::Custom(RelayMap::from_iter(opts.relays.iter().cloned()))
        };
        Endpoint::builder(presets::Minimal)
            .relay_mode(relays)
            .clear_address_lookup()
            .portmapper_config(PortmapperConfig::Disabled)
    };
    if let Some(path) = &opts.relay_ca {
        b = b.ca_tls_config(CaTlsConfig::default().with_extra_roots(load_certificates(path)?));
    }
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

/// Reads the certificates of a PEM file (`--relay-ca`).
fn load_certificates(
    path: &std::path::Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read the relay CA file {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} holds a malformed PEM certificate", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "{} holds no certificate: give the PEM file of the CA that signed the relay's certificate",
            path.display()
        );
    }
    Ok(certs)
}

/// Streams a client may open on a server: the control stream and one per device, with room
/// for reopening devices while old streams close.
pub const SERVER_MAX_BIDI: u32 = 1 + xoq_wire::limits::MAX_DEVICES as u32 + 15;
/// Camera frames in flight towards a client, one unidirectional stream each.
pub const CLIENT_MAX_UNI: u32 = 32;
/// What a server buffers for one client stream, and for a whole connection: serial data,
/// CAN frames and control messages are small; a megabyte is ample at any link's RTT.
/// How the peer should acknowledge (the QUIC ACK-frequency extension): after more than
/// [`ACK_THRESHOLD`] packets or [`ACK_DELAY`], instead of every second packet. Fewer ACK-only
/// packets cross the path of each small serial write and its echo: the median 32-byte round
/// trip fell from 161-170 us to 136-137 us (docs/BENCHMARKS.md); loss detection waits at most
/// 2 ms longer. `XOQ_ACK_FREQUENCY=THRESHOLD,MAX_DELAY_MS` sets other values, `off` QUIC's
/// default, for experiments.
fn ack_frequency() -> Option<AckFrequencyConfig> {
    let (threshold, delay) = match std::env::var("XOQ_ACK_FREQUENCY").ok().as_deref() {
        Some("off") => return None,
        Some(v) => {
            let (t, d) = v.split_once(',')?;
            (t.trim().parse().ok()?, d.trim().parse().ok()?)
        }
        None => (ACK_THRESHOLD, ACK_DELAY.as_millis() as u64),
    };
    let mut c = AckFrequencyConfig::default();
    c.ack_eliciting_threshold(VarInt::from_u32(threshold));
    c.max_ack_delay(Some(Duration::from_millis(delay)));
    Some(c)
}

/// The congestion controller: CUBIC that keeps an application-limited connection's window
/// through random losses ([`crate::congestion`]). `XOQ_CONGESTION=cubic|bbr3|newreno` picks
/// one of the stack's own instead, for experiments.
fn congestion() -> std::sync::Arc<dyn iroh::endpoint::ControllerFactory + Send + Sync> {
    use noq_proto::congestion::{Bbr3Config, CubicConfig, NewRenoConfig};
    let default = || std::sync::Arc::new(crate::congestion::AppLimitedFloorConfig::default());
    match std::env::var("XOQ_CONGESTION").ok().as_deref() {
        None => default(),
        Some("bbr3") => std::sync::Arc::new(Bbr3Config::default()),
        Some("newreno") => std::sync::Arc::new(NewRenoConfig::default()),
        Some("cubic") => std::sync::Arc::new(CubicConfig::default()),
        Some(other) => {
            tracing::warn!("XOQ_CONGESTION={other} is not cubic, bbr3 or newreno; using XoQ's");
            default()
        }
    }
}

/// See [`ack_frequency`].
const ACK_THRESHOLD: u32 = 10;
const ACK_DELAY: Duration = Duration::from_millis(2);

const SERVER_STREAM_WINDOW: u32 = 256 * 1024;
const SERVER_CONNECTION_WINDOW: u32 = 1024 * 1024;

/// Sets, explicitly, what the peer may open and how much it may send unread, for what each
/// side legitimately does: a client opens bidirectional streams (control and devices) and no
/// unidirectional ones; a server opens unidirectional streams (camera frames) and no
/// bidirectional ones. The QUIC defaults (100 of each, ~1.25 MB a stream) would let any peer
/// make the other buffer far more than the protocol ever needs.
fn stream_limits(b: QuicTransportConfigBuilder, server: bool) -> QuicTransportConfigBuilder {
    if server {
        b.max_concurrent_bidi_streams(SERVER_MAX_BIDI.into())
            .max_concurrent_uni_streams(0u32.into())
            .stream_receive_window(SERVER_STREAM_WINDOW.into())
            .receive_window(SERVER_CONNECTION_WINDOW.into())
    } else {
        // Windows stay at the defaults: one camera frame may be several megabytes.
        b.max_concurrent_bidi_streams(0u32.into())
            .max_concurrent_uni_streams(CLIENT_MAX_UNI.into())
    }
}
