//! `xoq-server`: serves this robot's hardware to authorized XoQ clients.

mod admission;
mod audio;
mod camera;
mod can;
mod config;
mod daemon;
mod devices;
mod grants;
mod relay;
mod relay_cli;
mod reopen;
mod serial;
mod session;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use xoq_link::authorized::{parse_device_spec, AuthorizedClients, ClientGrant};
use xoq_link::{load_or_create_key, paths, EndpointId, Ticket};
use xoq_wire::{Access, AudioDirection};

use crate::config::ServerConfig;

#[derive(Parser)]
#[command(
    name = "xoq-server",
    version,
    about = "Serve this robot's hardware over QUIC to authorized XoQ clients"
)]
struct Cli {
    /// Configuration file (default: /etc/xoq/server.toml if it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Identity key file (created on first start, mode 0600).
    #[arg(long, global = true, env = "XOQ_SERVER_KEY")]
    key: Option<PathBuf>,
    /// Authorized-clients file.
    #[arg(long, global = true, env = "XOQ_AUTHORIZED_CLIENTS")]
    authorized: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the configured devices (the default).
    Serve(Box<ServeArgs>),
    /// Print this server's id (its public key).
    Id,
    /// Print a ticket: the id plus the direct addresses and relays, for `xoq-mount <ticket>`.
    Ticket {
        /// Addresses to put in the ticket instead of the configured listen addresses.
        #[arg(long = "listen")]
        listen: Vec<SocketAddr>,
        /// Relays to put in the ticket, besides the configured `relay_urls` (repeatable).
        #[arg(long = "relay")]
        relay: Vec<String>,
    },
    /// Allow a client to open devices.
    Authorize {
        /// The client's id, as printed by `xoq-mount id`.
        client: String,
        /// Devices it may open, e.g. 'ttyUSB0,can0:rw,cam0:ro' (default: all).
        #[arg(long, default_value = "")]
        devices: String,
        /// Grant read-only access to the devices listed without a mode.
        #[arg(long)]
        read_only: bool,
        /// A note kept in the file (who this client is).
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Remove a client from the authorized list.
    Revoke { client: String },
    /// List authorized clients.
    Clients,
    #[command(flatten)]
    Relay(relay_cli::RelayCommand),
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    /// UDP address to listen on (repeatable; default 0.0.0.0:4700).
    #[arg(long)]
    listen: Vec<SocketAddr>,
    /// Name shown to clients.
    #[arg(long)]
    name: Option<String>,
    /// Serve a real port: NAME=PATH, e.g. ttyUSB0=/dev/ttyUSB0 (repeatable).
    #[arg(long = "serial")]
    serial: Vec<String>,
    /// Serve a simulated echo port: NAME[=RECORD_FILE] (repeatable).
    #[arg(long = "sim-serial")]
    sim_serial: Vec<String>,
    /// Serve a SocketCAN interface: NAME=INTERFACE, e.g. can0=can0 (repeatable).
    #[arg(long = "can")]
    can: Vec<String>,
    /// Serve the simulated bus of eight Damiao motors: NAME[=RECORD_FILE], appending the age of
    /// every command it executes to RECORD_FILE (repeatable).
    #[arg(long = "sim-can")]
    sim_can: Vec<String>,
    /// Serve a V4L2 camera: NAME=DEVICE, e.g. cam0=/dev/video0 (repeatable).
    #[arg(long = "camera")]
    camera: Vec<String>,
    /// Serve the simulated camera (numbered moving test pattern) as NAME (repeatable).
    #[arg(long = "sim-camera")]
    sim_camera: Vec<String>,
    /// Serve a microphone: NAME=ALSA_DEVICE, e.g. mic0=plughw:1,0 (as `arecord -L` lists them;
    /// repeatable).
    #[arg(long = "mic")]
    mic: Vec<String>,
    /// Serve a speaker: NAME=ALSA_DEVICE, e.g. spk0=default (as `aplay -L` lists them;
    /// repeatable).
    #[arg(long = "speaker")]
    speaker: Vec<String>,
    /// Serve a simulated microphone (a 440 Hz sine, 48 kHz mono) as NAME (repeatable).
    #[arg(long = "sim-mic")]
    sim_mic: Vec<String>,
    /// Serve a simulated speaker that measures what it plays: NAME[=RECORD_FILE], writing a
    /// line of frequency, level and jitter-buffer counters per second to RECORD_FILE.
    #[arg(long = "sim-speaker")]
    sim_speaker: Vec<String>,
    /// Maximum age in ms of client frames at the bus for the --can/--sim-can devices; older ones
    /// are dropped and counted (0 = no limit).
    #[arg(long, default_value_t = config::DEFAULT_CAN_MAX_AGE_MS)]
    can_max_age_ms: u32,
    /// Use the public relays and address lookup (lets clients dial a bare id through NAT).
    #[arg(long)]
    public_relays: bool,
    /// A relay of your own (`iroh-relay`), e.g. https://relay.example.org (repeatable; added
    /// to `relay_urls`): clients behind NAT reach this server through it, then directly.
    #[arg(long = "relay")]
    relay: Vec<String>,
    /// PEM file of the CA that signed the relays' certificates, if not a public one.
    #[arg(long)]
    relay_ca: Option<PathBuf>,
    /// Also publish the devices through this MoQ relay, e.g. https://relay.example.org:4443
    /// (`[moq] url`; needs --moq-token-file).
    #[arg(long = "moq-relay")]
    moq_relay: Option<String>,
    /// Path prefix on the MoQ relay: devices are published as <PREFIX>/<server>/<device>.
    #[arg(long = "moq-path")]
    moq_path: Option<String>,
    /// File holding this robot's relay token (`xoq-server token --robot`).
    #[arg(long = "moq-token-file")]
    moq_token_file: Option<PathBuf>,
    /// SHA-256 fingerprint (hex) of the MoQ relay's self-signed certificate (repeatable).
    #[arg(long = "moq-tls-fingerprint")]
    moq_tls_fingerprint: Vec<String>,
}

fn main() {
    // `BIN generate-docs DIR`: man pages and completions for the Debian package (not a clap
    // subcommand, so it appears in no help or completion; see packaging/docs-gen).
    if let Some(code) = xoq_docs_gen::generate_if_asked(<Cli as clap::CommandFactory>::command) {
        std::process::exit(code);
    }
    xoq_link::runtime::init_logging();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("xoq-server: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let mut cfg = ServerConfig::load_default(cli.config.as_deref())?;
    let key_path = cli
        .key
        .or(cfg.key.clone())
        .unwrap_or_else(|| paths::state_dir().join("server.key"));
    let auth_path = cli
        .authorized
        .or(cfg.authorized_clients.clone())
        .unwrap_or_else(default_authorized_path);
    match cli.command.unwrap_or(Command::Serve(Box::default())) {
        Command::Serve(a) => {
            cfg.listen.extend(a.listen);
            if a.name.is_some() {
                cfg.name = a.name;
            }
            cfg.public_relays |= a.public_relays;
            cfg.relay_urls.extend(a.relay);
            if a.relay_ca.is_some() {
                cfg.relay_ca = a.relay_ca;
            }
            if a.moq_relay.is_some() {
                cfg.moq.url = a.moq_relay;
            }
            if let Some(p) = a.moq_path {
                cfg.moq.path = p;
            }
            if a.moq_token_file.is_some() {
                cfg.moq.token_file = a.moq_token_file;
            }
            cfg.moq.tls_fingerprint.extend(a.moq_tls_fingerprint);
            for s in &a.serial {
                cfg.add_serial_shortcut(s)?;
            }
            for s in &a.sim_serial {
                cfg.add_sim_serial_shortcut(s);
            }
            for c in &a.can {
                cfg.add_can_shortcut(c, false, a.can_max_age_ms)?;
            }
            for c in &a.sim_can {
                cfg.add_can_shortcut(c, true, a.can_max_age_ms)?;
            }
            for c in &a.camera {
                cfg.add_camera_shortcut(c, false)?;
            }
            for c in &a.sim_camera {
                cfg.add_camera_shortcut(c, true)?;
            }
            for m in &a.mic {
                cfg.add_audio_shortcut(m, AudioDirection::Capture, false)?;
            }
            for m in &a.speaker {
                cfg.add_audio_shortcut(m, AudioDirection::Playback, false)?;
            }
            for m in &a.sim_mic {
                cfg.add_audio_shortcut(m, AudioDirection::Capture, true)?;
            }
            for m in &a.sim_speaker {
                cfg.add_audio_shortcut(m, AudioDirection::Playback, true)?;
            }
            cfg.validate()?;
            let key = load_or_create_key(&key_path)?;
            let rt = xoq_link::runtime::build().context("cannot start the async runtime")?;
            rt.block_on(daemon::serve(cfg, key, auth_path))
        }
        Command::Id => {
            println!("{}", load_or_create_key(&key_path)?.public());
            Ok(())
        }
        Command::Ticket { listen, relay } => {
            cfg.relay_urls.extend(relay);
            let key = load_or_create_key(&key_path)?;
            let addrs = if listen.is_empty() {
                cfg.listen_addrs()
            } else {
                listen
            };
            let t = Ticket {
                id: key.public(),
                addrs: daemon::dialable_addrs(&addrs),
                relays: cfg.relays()?,
            };
            println!("{t}");
            Ok(())
        }
        Command::Authorize {
            client,
            devices,
            read_only,
            comment,
        } => {
            let id = parse_client(&client)?;
            let default = if read_only {
                Access::ReadOnly
            } else {
                Access::ReadWrite
            };
            let devices = parse_device_spec(&devices, default)?;
            AuthorizedClients::update(&auth_path, |auth| {
                auth.grant(
                    id,
                    ClientGrant {
                        comment,
                        devices: devices.clone(),
                    },
                )
            })?;
            let list: Vec<String> = devices
                .iter()
                .map(|(d, a)| format!("{d}:{}", Access::from(*a)))
                .collect();
            println!(
                "authorized {} for {} in {}",
                id.fmt_short(),
                list.join(","),
                auth_path.display()
            );
            Ok(())
        }
        Command::Revoke { client } => {
            let id = parse_client(&client)?;
            if AuthorizedClients::update(&auth_path, |auth| auth.revoke(&id))? {
                println!("revoked {}", id.fmt_short());
            } else {
                println!("{} was not authorized", id.fmt_short());
            }
            Ok(())
        }
        Command::Relay(r) => relay_cli::run(r, cfg.display_name()),
        Command::Clients => {
            let auth = AuthorizedClients::load(&auth_path)?;
            for (id, g) in &auth.clients {
                let list: Vec<String> = g
                    .devices
                    .iter()
                    .map(|(d, a)| format!("{d}:{}", Access::from(*a)))
                    .collect();
                println!("{id}  {}  {}", list.join(","), g.comment);
            }
            Ok(())
        }
    }
}

fn parse_client(s: &str) -> Result<EndpointId> {
    s.trim().parse::<EndpointId>().map_err(|e| {
        anyhow::anyhow!("`{s}` is not a client id ({e}); get it with `xoq-mount id` on the client")
    })
}

fn default_authorized_path() -> PathBuf {
    if paths::is_root() {
        Path::new("/etc/xoq/authorized_clients.toml").to_path_buf()
    } else {
        paths::state_dir().join("authorized_clients.toml")
    }
}
