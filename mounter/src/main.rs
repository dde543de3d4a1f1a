//! `xoq-mount`: makes a remote robot's hardware appear as local devices.

mod audio;
mod camera;
mod can;
mod local;
mod mounted;
mod naming;
mod relay;
mod serial;
mod status;
mod supervisor;
mod transport;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use xoq_link::{bind_endpoint, load_or_create_key, paths, EndpointOptions, Ticket};

use crate::local::{CameraSink, SerialDevice};
use crate::status::MountStatus;
use crate::supervisor::{MountOptions, Mounts};

#[derive(Parser)]
#[command(
    name = "xoq-mount",
    version,
    about = "Mount a remote robot's hardware as local devices",
    subcommand_negates_reqs = true
)]
struct Cli {
    /// This client's identity key file (created on first start, mode 0600). Default:
    /// /var/lib/xoq-mount/client.key as root, ~/.config/xoq/client.key otherwise.
    #[arg(long, global = true, env = "XOQ_CLIENT_KEY")]
    key: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    mount: MountArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Print this client's id, for `xoq-server authorize <id>` on the robot.
    Id,
    /// Show every running mounter: link, devices, counters.
    Status {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop every running mounter; each removes the devices it created.
    Umount,
}

#[derive(clap::Args)]
struct MountArgs {
    /// The server: a ticket from `xoq-server ticket`, or its id (then give --addr), or a MoQ
    /// relay and the server's path on it, moq://HOST[:PORT]/PREFIX/SERVER (then give --token).
    target: Option<String>,
    /// The relay token (from `xoq-server token`) for a moq:// target. It may also come from
    /// --token-file or XOQ_RELAY_TOKEN (a command line is visible to every local user).
    #[arg(long, env = "XOQ_RELAY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the relay token.
    #[arg(long, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// SHA-256 fingerprint (hex) of a MoQ relay's self-signed certificate, to trust it
    /// (repeatable). A relay signed by a private CA takes --relay-ca instead.
    #[arg(long)]
    relay_fingerprint: Vec<String>,
    /// A direct address of the server (repeatable), added to the ticket's.
    #[arg(long)]
    addr: Vec<SocketAddr>,
    /// A relay (`iroh-relay`) through which to reach the server, e.g. https://relay.example.org
    /// (repeatable), added to the ticket's. The mounter also keeps its own connection to the
    /// ticket's relays and these, to punch a hole for a direct path.
    #[arg(long)]
    relay: Vec<String>,
    /// PEM file of the CA that signed the relays' certificates, if not a public one.
    #[arg(long)]
    relay_ca: Option<PathBuf>,
    /// Directory for the ttyXOQ* links (default: /dev as root, else $XDG_RUNTIME_DIR/xoq).
    #[arg(long)]
    link_dir: Option<PathBuf>,
    /// First index for link names (ttyXOQ<N>).
    #[arg(long, default_value_t = 0)]
    first_index: u32,
    /// What a remote serial port becomes: a CUSE tty (every termios and modem-line call
    /// reaches the port; needs /dev/cuse, i.e. root and the cuse module) or a PTY.
    #[arg(long, value_enum, default_value_t = SerialDevice::Auto)]
    serial_device: SerialDevice,
    /// Where remote cameras go: `loopback` (a v4l2loopback device, added on demand with
    /// v4l2loopback 0.13+ or else a free one labelled xoq*, linked as
    /// /dev/xoq/<server>-<camera>), `y4m:DIR` (DIR/<camera>.y4m, for tests and recording) or
    /// `null` (decode and drop, for benchmarks).
    #[arg(long, default_value = "loopback")]
    camera_sink: CameraSink,
    /// Ask every camera for this mode, e.g. 1280x720@30 (default: the camera's own).
    #[arg(long)]
    camera_mode: Option<xoq_wire::VideoMode>,
    /// Delay of the jitter buffer that plays remote microphones, in milliseconds: larger rides
    /// out worse networks, smaller is closer to live. It rises with the link's jitter, up to
    /// --audio-latency-max-ms.
    #[arg(long, default_value_t = audio::bridge::DEFAULT_LATENCY_MS, value_parser = clap::value_parser!(u32).range(1..=1000))]
    audio_latency_ms: u32,
    /// Most the microphones' delay rises to while the link's jitter needs it (the same as
    /// --audio-latency-ms for a fixed delay).
    #[arg(long, default_value_t = xoq_audio::Delay::DEFAULT_MAX_MS, value_parser = clap::value_parser!(u32).range(1..=1000))]
    audio_latency_max_ms: u32,
    /// How CAN frames cross the link, both ways: `ordered` (every frame, in order: ISO-TP,
    /// flashing, anything stateful) or `latest` (each frame as soon as it arrives, a lost one
    /// not waited for, an older one of an id dropped once a newer one ran: cyclic motor
    /// commands over lossy links). Over a MoQ relay buses are always latest-wins.
    #[arg(long, default_value = "ordered")]
    can_delivery: xoq_wire::Delivery,
    /// Open every device read-only, whatever the server grants.
    #[arg(long)]
    read_only: bool,
    /// Use the public relays and address lookup to find a server by bare id.
    #[arg(long)]
    public_relays: bool,
}

fn main() {
    // `BIN generate-docs DIR`: man pages and completions for the Debian package (not a clap
    // subcommand, so it appears in no help or completion; see packaging/docs-gen).
    if let Some(code) = xoq_docs_gen::generate_if_asked(<Cli as clap::CommandFactory>::command) {
        std::process::exit(code);
    }
    xoq_link::runtime::init_logging();
    let cli = Cli::parse();
    let rt = match xoq_link::runtime::build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xoq-mount: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(cli)) {
        eprintln!("xoq-mount: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    let key_path = cli
        .key
        .unwrap_or_else(|| paths::mount_state_dir().join("client.key"));
    match cli.command {
        Some(Command::Id) => {
            println!("{}", load_or_create_key(&key_path)?.public());
            Ok(())
        }
        Some(Command::Status { json }) => {
            let all = status::query_all(&paths::runtime_dir(), "status").await?;
            if all.is_empty() {
                println!(
                    "no xoq-mount is running (looked in {})",
                    paths::runtime_dir().display()
                );
            }
            for v in all {
                if json {
                    println!("{v}");
                } else {
                    print!("{}", status::render(&v));
                }
            }
            Ok(())
        }
        Some(Command::Umount) => {
            let n = status::query_all(&paths::runtime_dir(), "umount")
                .await?
                .len();
            println!("asked {n} mounter(s) to unmount");
            Ok(())
        }
        None => mount(key_path, cli.mount).await,
    }
}

async fn mount(key_path: PathBuf, args: MountArgs) -> Result<()> {
    let Some(target) = args.target.clone() else {
        bail!("give the server to mount: `xoq-mount <ticket>` (from `xoq-server ticket` on the robot)");
    };
    if relay::is_relay_target(&target) {
        return mount_from_relay(&target, args).await;
    }
    let mut ticket: Ticket = target.parse()?;
    ticket.addrs.extend(args.addr.iter().copied());
    for r in &args.relay {
        let url = xoq_link::parse_relay_url(r)?;
        if !ticket.relays.contains(&url) {
            ticket.relays.push(url);
        }
    }
    if ticket.addrs.is_empty() && ticket.relays.is_empty() && !args.public_relays {
        bail!(
            "server {} has no known address: use the ticket printed by `xoq-server ticket`, add \
             --addr HOST:PORT or --relay URL, or use --public-relays",
            ticket.id.fmt_short()
        );
    }
    // The relays named by the ticket are the ones to keep a connection to, unless the public
    // relays were asked for instead.
    let relays = if args.public_relays {
        Vec::new()
    } else {
        ticket.relays.clone()
    };
    let key = load_or_create_key(&key_path)?;
    tracing::info!(client = %key.public(), "this client's id");
    let ep = bind_endpoint(
        key,
        EndpointOptions {
            public_relays: args.public_relays,
            relays,
            relay_ca: args.relay_ca.clone(),
            ..Default::default()
        },
    )
    .await?;
    let opts = mount_options(&args);
    let ticket_id = ticket.id.to_string();
    let result = run_mount(&ticket_id, &ticket_id, |status, mounts| {
        supervisor::run(ep.clone(), ticket, opts, mounts, status)
    })
    .await;
    ep.close().await;
    result
}

/// Mounts the devices a server publishes on a MoQ relay.
async fn mount_from_relay(target: &str, args: MountArgs) -> Result<()> {
    let (url, relay_paths) = relay::parse_target(target)?;
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => t.trim().to_string(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the relay token file {}", f.display()))?
            .trim()
            .to_string(),
        (None, None) => bail!(
            "a relay admits no anonymous client: give --token or --token-file (a token from              `xoq-server token` for {})",
            relay_paths.root()
        ),
    };
    let target = xoq_moq::RelayTarget {
        url,
        paths: relay_paths.clone(),
        token,
        fingerprints: args.relay_fingerprint.clone(),
        roots: args.relay_ca.iter().cloned().collect(),
    };
    let opts = mount_options(&args);
    // One status socket per relay path: its name is short, so it is named by a hash.
    let root = format!("moq://{}", relay_paths.root());
    let sock_id = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (target.url.as_str(), &root).hash(&mut h);
        format!("moq{:07x}", h.finish() & 0xfff_ffff)
    };
    run_mount(&root, &sock_id, |status, mounts| {
        relay::run(target, opts, mounts, status)
    })
    .await
}

/// Runs `mount` with the status socket up, until it ends, a signal, or `xoq-mount umount`;
/// then removes every device it made.
async fn run_mount<F, Fut>(id: &str, sock_id: &str, mount: F) -> Result<()>
where
    F: FnOnce(Arc<MountStatus>, Arc<Mounts>) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let status = MountStatus::new(id.to_string());
    let sock = status::socket_path(&paths::runtime_dir(), sock_id);
    // Before anything is mounted: a second mounter of the same server stops here.
    let listener = status::bind(&sock)?;
    let mounts = Arc::new(Mounts::default());
    let status_server = status::serve(listener, status.clone());
    let result = tokio::select! {
        r = mount(status.clone(), mounts.clone()) => r,
        r = status_server => r.context("status socket failed"),
        _ = xoq_link::runtime::shutdown_signal() => Ok(()),
        _ = status.umount.notified() => Ok(()),
    };
    mounts.remove_all();
    let _ = std::fs::remove_file(&sock);
    result
}

/// Where and how devices are mounted, from the command line.
fn mount_options(args: &MountArgs) -> MountOptions {
    let link_dir = args
        .link_dir
        .clone()
        .unwrap_or_else(naming::default_link_dir);
    if !paths::is_root() {
        println!("links go in {} (not root)", link_dir.display());
    }
    MountOptions {
        link_dir,
        serial_device: args.serial_device,
        camera_sink: args.camera_sink.clone(),
        camera_mode: args.camera_mode,
        audio_latency: xoq_audio::Delay {
            ms: args.audio_latency_ms,
            max_ms: args.audio_latency_max_ms,
        },
        first_index: args.first_index,
        read_only: args.read_only,
        can_delivery: args.can_delivery,
        // Shown in the server's log only; a hostname that is not a valid name is not sent.
        client_name: nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| xoq_wire::is_valid_name(h))
            .unwrap_or_default(),
    }
}
