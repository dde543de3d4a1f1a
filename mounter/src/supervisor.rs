//! The mounter's main loop: connect, mount what the catalog offers, bridge every device, and
//! when the link drops keep the local devices in place and reconnect with backoff.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use iroh::Endpoint;
use tokio::task::JoinSet;
use xoq_link::client::{connect, ConnectError};
use xoq_link::sync::lock;
use xoq_link::Ticket;
use xoq_wire::limits::MAX_DEVICES;
use xoq_wire::{Access, DeviceInfo, ErrorCode};

use crate::local::{mount_one, CameraSink, SerialDevice};
use crate::mounted::{BridgeEnd, Mounted};
use crate::status::MountStatus;
use crate::transport::Session;

/// First and largest wait between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Wait before reopening a device the server refused or lost.
const REOPEN_DELAY: Duration = Duration::from_secs(1);
/// How long the first connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one attempt may take while reconnecting, at least (and five of the last link's
/// round trips, if more): each attempt starts a fresh handshake, so a link that returns is
/// found by the next attempt instead of a handshake whose retransmissions have backed off to
/// a second apart. Reconnecting within a second of the link's return is the aim.
const RECONNECT_ATTEMPT: Duration = Duration::from_millis(500);

/// Where and how devices are mounted.
#[derive(Clone)]
pub struct MountOptions {
    pub link_dir: PathBuf,
    pub serial_device: SerialDevice,
    pub camera_sink: CameraSink,
    /// The mode to ask cameras for (`--camera-mode`), if any.
    pub camera_mode: Option<xoq_wire::VideoMode>,
    /// Delay of the jitter buffer of remote microphones, in milliseconds.
    /// The remote microphones' jitter-buffer delay.
    pub audio_latency: xoq_audio::Delay,
    pub first_index: u32,
    pub read_only: bool,
    /// How CAN buses are delivered (`--can-delivery`).
    pub can_delivery: xoq_wire::Delivery,
    pub client_name: String,
}

/// The devices this mounter created; shared so shutdown can remove them.
#[derive(Default)]
pub struct Mounts {
    list: Mutex<Vec<Mounted>>,
}

impl Mounts {
    pub fn list(&self) -> Vec<Mounted> {
        lock(&self.list).clone()
    }

    /// Removes every link and interface this mounter made (PTYs close when the process exits).
    pub fn remove_all(&self) {
        for m in self.list() {
            m.unmount();
        }
    }
}

/// Runs until a permanent error (refusal); link trouble is retried forever.
pub async fn run(
    ep: Endpoint,
    ticket: Ticket,
    opts: MountOptions,
    mounts: Arc<Mounts>,
    status: Arc<MountStatus>,
) -> Result<()> {
    let mut backoff = BACKOFF_MIN;
    let mut attempts = 0u32;
    // The round trip of the last connection, once there was one.
    let mut last_rtt: Option<Duration> = None;
    loop {
        status.set_link("connecting");
        let timeout = match last_rtt {
            None => CONNECT_TIMEOUT,
            Some(rtt) => RECONNECT_ATTEMPT.max(rtt * 5),
        };
        let started = tokio::time::Instant::now();
        let session = match connect(&ep, &ticket, &opts.client_name, timeout).await {
            Ok(s) => Arc::new(s),
            Err(e) if e.is_permanent() => return Err(e.into()),
            Err(e) => {
                attempts += 1;
                if attempts == 1 || attempts.is_multiple_of(10) {
                    tracing::warn!("{e}; retrying (attempt {attempts})");
                }
                status.set_link(format!("reconnecting: {e}"));
                // The backoff spaces attempts that fail fast; an attempt that waited out its
                // timeout has waited already.
                tokio::time::sleep_until(started + backoff).await;
                if last_rtt.is_none() {
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                continue;
            }
        };
        if attempts > 0 {
            tracing::info!("link restored after {attempts} failed attempts");
        }
        backoff = BACKOFF_MIN;
        attempts = 0;
        status.set_link("connected");
        status.set_server_name(&session.welcome.server_name);
        let mut tasks = JoinSet::new();
        let transport = Session::Iroh(session.clone());
        for m in mounts.list() {
            tasks.spawn(device_loop(m, transport.clone()));
        }
        let (devices, server) = (&session.welcome.devices, &session.welcome.server_name);
        mount_new_devices(
            &transport, devices, server, &opts, &mounts, &status, &mut tasks,
        )
        .await?;
        let rtt = async {
            loop {
                if let Some(r) = session.rtt() {
                    status.rtt_us.store(r.as_micros() as u64, Ordering::Relaxed);
                }
                let path = xoq_link::net_path::selected_path(&session.conn);
                if status.set_path(path.clone()) {
                    tracing::info!(%path, "network path to the server");
                }
                *xoq_link::sync::lock(&status.copies) = session.copy_stats().snapshot();
                status.probes.store(session.probes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        let reason = tokio::select! {
            e = session.conn.closed() => e.to_string(),
            _ = rtt => unreachable!("the rtt loop never ends"),
        };
        tasks.abort_all();
        // From now on, reconnecting: short attempts, scaled by this link's round trip.
        last_rtt = Some(session.rtt().unwrap_or(Duration::ZERO));
        tracing::warn!(
            "link to {} lost: {reason}; devices stay mounted, reconnecting",
            ticket.id.fmt_short()
        );
        status.reconnects.fetch_add(1, Ordering::Relaxed);
        status.set_path("none".into());
        for m in mounts.list() {
            m.status().set_state("waiting for link");
        }
    }
}

/// Creates the local device for each catalog entry not mounted yet, and starts its loop as
/// soon as it exists. Creating one can take seconds (a PipeWire node waits up to 10 s for
/// the daemon, a CUSE tty for devtmpfs), so devices are made in the blocking pool, one thread
/// per kind (devices of one kind one after the other: they draw local names from one
/// sequence), while the link, the devices already mounted and the other kinds keep running.
/// A device that cannot be mounted is reported, not fatal, unless nothing at all could be.
pub async fn mount_new_devices(
    session: &Session,
    devices: &[DeviceInfo],
    server: &str,
    opts: &MountOptions,
    mounts: &Mounts,
    status: &MountStatus,
    loops: &mut JoinSet<()>,
) -> Result<()> {
    let mut by_kind: Vec<Vec<(DeviceInfo, Access)>> = Vec::new();
    for (d, access) in entries_to_mount(devices, opts, mounts) {
        match by_kind.iter_mut().find(|g| g[0].0.kind == d.kind) {
            Some(g) => g.push((d, access)),
            None => by_kind.push(vec![(d, access)]),
        }
    }
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel();
    for group in by_kind {
        let (opts, server) = (opts.clone(), server.to_string());
        let done_tx = done_tx.clone();
        tokio::task::spawn_blocking(move || {
            for (d, access) in group {
                if let Some(delay) = test_mount_delay(&d.kind.to_string()) {
                    std::thread::sleep(delay);
                }
                let r = mount_one(&d, access, &opts, &server);
                if done_tx.send((d, r)).is_err() {
                    return;
                }
            }
        });
    }
    drop(done_tx);
    let mut failures = Vec::new();
    while let Some((d, r)) = done.recv().await {
        match r {
            Ok(Some(m)) => {
                status.add_device(m.status().clone());
                lock(&mounts.list).push(m.clone());
                loops.spawn(device_loop(m, session.clone()));
            }
            Ok(None) => {
                tracing::info!(device = %d.name, kind = %d.kind, "this mounter cannot mount that kind yet; skipped");
            }
            Err(e) => {
                println!("not mounted  {}  {}: {e:#}", d.kind, d.name);
                tracing::error!(device = %d.name, "{e:#}");
                failures.push(e);
            }
        }
    }
    match failures.into_iter().next() {
        Some(first) if lock(&mounts.list).is_empty() => Err(first),
        _ => Ok(()),
    }
}

/// Test hook: `XOQ_TEST_MOUNT_DELAY=KIND:MS` makes making each device of kind `KIND` (as
/// printed: `serial`, `audio`, ...) take `MS` milliseconds longer, so a test can show that a
/// slow kind stalls nothing else.
fn test_mount_delay(kind: &str) -> Option<Duration> {
    let v = std::env::var("XOQ_TEST_MOUNT_DELAY").ok()?;
    let (k, ms) = v.split_once(':')?;
    (k == kind).then(|| Duration::from_millis(ms.parse().unwrap_or(0)))
}

/// The catalog entries not mounted yet, with the access to mount them with.
fn entries_to_mount(
    devices: &[DeviceInfo],
    opts: &MountOptions,
    mounts: &Mounts,
) -> Vec<(DeviceInfo, Access)> {
    let list = lock(&mounts.list);
    let mut out: Vec<(DeviceInfo, Access)> = Vec::new();
    for d in devices {
        if list.iter().any(|m| m.name() == d.name) {
            continue;
        }
        // Each catalog is bounded by the decoder; this bounds their union, so a server that
        // announces new names on every reconnect cannot make this mounter create devices
        // without end.
        if list.len() + out.len() >= MAX_DEVICES {
            println!(
                "not mounted  {}  {}: already {MAX_DEVICES} devices mounted from this server, the most one mount holds",
                d.kind, d.name
            );
            tracing::warn!(device = %d.name, "device limit reached; not mounted");
            continue;
        }
        let access = if opts.read_only {
            Access::ReadOnly
        } else {
            d.access
        };
        out.push((d.clone(), access));
    }
    out
}

/// Keeps one device open and bridged for the life of a connection (of the mounter, for a
/// transport that redials by itself).
async fn device_loop(m: Mounted, session: Session) {
    loop {
        let incoming = m.listen(&session);
        let (opened, state) = session.open(&m).await;
        match opened {
            Ok(stream) => {
                m.status().set_state(state);
                match m.bridge(stream, incoming, &session).await {
                    BridgeEnd::LinkLost(why) if session.redials_itself() => {
                        tracing::info!(device = %m.name(), "{why}; reopening when it is back");
                        m.status().set_state(format!("waiting for link: {why}"));
                    }
                    BridgeEnd::LinkLost(why) => {
                        tracing::debug!(device = %m.name(), "bridge stopped: {why}");
                        return;
                    }
                    BridgeEnd::DeviceGone(why) => {
                        tracing::warn!(device = %m.name(), "remote device unavailable: {why}");
                        m.status().set_state(format!("remote gone: {why}"));
                    }
                    BridgeEnd::LocalFailed(e) => {
                        tracing::error!(device = %m.name(), "local device failed: {e}; this device stops");
                        m.status().set_state(format!("local device failed: {e}"));
                        return;
                    }
                }
            }
            Err(ConnectError::Refused { code, text }) => {
                if code != ErrorCode::DeviceGone {
                    tracing::warn!(device = %m.name(), %code, "open refused: {text}");
                }
                m.status().set_state(format!("{code}"));
            }
            Err(e) if session.redials_itself() => {
                tracing::info!(device = %m.name(), "open failed: {e}; retrying");
                m.status().set_state(format!("waiting: {e}"));
            }
            Err(e) => {
                tracing::debug!(device = %m.name(), "open failed: {e}");
                return;
            }
        }
        tokio::time::sleep(REOPEN_DELAY).await;
    }
}
