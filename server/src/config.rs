//! The server's configuration: a TOML file (see `packaging/server.toml`) plus CLI shortcuts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use xoq_wire::{AudioDirection, FlowControl, LineSettings, Parity, StopBits};

use crate::audio::config::AudioConfig;

/// Where the packaged service looks for its configuration.
pub const SYSTEM_CONFIG: &str = "/etc/xoq/server.toml";
/// Default UDP port of xoq-server.
pub const DEFAULT_PORT: u16 = 4700;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Name shown to clients (default: the host name).
    pub name: Option<String>,
    /// UDP addresses to listen on (default: 0.0.0.0:4700).
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    /// Identity key file (default: /var/lib/xoq/server.key as root, ~/.config/xoq/server.key).
    pub key: Option<PathBuf>,
    /// Authorized-clients file (default: /etc/xoq/authorized_clients.toml as root, else in
    /// ~/.config/xoq).
    pub authorized_clients: Option<PathBuf>,
    /// Publish via the public relays and DNS address lookup, so a bare id can be dialled.
    #[serde(default)]
    pub public_relays: bool,
    /// Relays of one's own (`iroh-relay`, see docs/OPERATIONS.md), e.g.
    /// `["https://relay.example.org"]`: clients behind other NATs reach this server through
    /// them, then directly once a hole is punched. They go in the ticket.
    #[serde(default)]
    pub relay_urls: Vec<String>,
    /// PEM file of the CA that signed the relays' certificates, if not a public one.
    pub relay_ca: Option<PathBuf>,
    #[serde(default)]
    pub serial: Vec<SerialConfig>,
    #[serde(default)]
    pub can: Vec<CanConfig>,
    #[serde(default)]
    pub camera: Vec<CameraConfig>,
    #[serde(default)]
    pub audio: Vec<AudioConfig>,
    /// Publish through a MoQ relay too (docs/OPERATIONS.md, "MoQ relays").
    #[serde(default)]
    pub moq: crate::relay::MoqConfig,
}

/// One `[[camera]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// The name clients see and open, e.g. `cam0`.
    pub name: String,
    /// V4L2 capture device, e.g. `/dev/video0`. Exactly one of `device` and `simulated`.
    pub device: Option<PathBuf>,
    /// Serve the numbered moving test pattern instead of a camera.
    #[serde(default)]
    pub simulated: bool,
    /// Mode to start in, e.g. `"1280x720@30"` (default: the camera's first).
    pub mode: Option<String>,
    /// H.264 encoder for raw cameras: `"auto"` (default: NVENC when this build has it and an
    /// NVIDIA GPU is there, else software), `"software"` or `"nvenc"`.
    pub encoder: Option<String>,
    /// Most bit rate the H.264 stream may use, kbit/s (default: 0.1 bit per pixel per frame,
    /// 2,765 at 720p30). Each client's congestion feedback lowers it to what its link carries.
    pub bitrate_kbps: Option<u32>,
    /// Simulated camera only: sensor-like grain of up to this many levels (0 to 40) on the
    /// pattern, so the stream needs the megabits a real camera's does (default 0).
    pub sim_grain: Option<u8>,
}

impl CameraConfig {
    /// The configured encoder choice, parsed.
    pub fn encoder(&self) -> Result<xoq_video::encoder::EncoderChoice> {
        match self.encoder.as_deref().unwrap_or("auto").parse() {
            Ok(e) => Ok(e),
            Err(e) => bail!("camera `{}`: {e}", self.name),
        }
    }

    /// The configured bit-rate ceiling in bit/s, checked.
    pub fn bitrate_bps(&self) -> Result<Option<u32>> {
        match self.bitrate_kbps {
            None => Ok(None),
            Some(k) if (100..=100_000).contains(&k) => Ok(Some(k * 1000)),
            Some(k) => bail!(
                "camera `{}`: bitrate_kbps = {k} is outside 100 to 100000",
                self.name
            ),
        }
    }

    /// The configured start mode, parsed.
    pub fn start_mode(&self) -> Result<Option<xoq_wire::VideoMode>> {
        let Some(text) = &self.mode else {
            return Ok(None);
        };
        match text.parse() {
            Ok(m) => Ok(Some(m)),
            Err(e) => bail!("camera `{}`: mode {e}", self.name),
        }
    }
}

/// One `[[can]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanConfig {
    /// The name clients see and open, e.g. `can0`.
    pub name: String,
    /// SocketCAN interface to serve (`can0`, `vcan0`). Exactly one of `interface` and
    /// `simulated` is given. CAN FD is used when the interface's MTU is 72.
    pub interface: Option<String>,
    /// `"damiao"`: serve the simulated bus of eight Damiao motors.
    pub simulated: Option<String>,
    /// Frames from clients older than this when they would be written to the bus are dropped
    /// and counted (0 = no limit). The default, [`DEFAULT_CAN_MAX_AGE_MS`], lets a frame
    /// repaired by a retransmission on a 40 ms link through, and never one held seconds by an
    /// outage.
    #[serde(default = "default_can_max_age_ms")]
    pub max_age_ms: u32,
    /// Simulated only: append the age of every command the bus executes to this file.
    pub record: Option<PathBuf>,
    /// Nominal bit rate, for the catalog (0 = unknown).
    #[serde(default)]
    pub bitrate: u32,
    /// Error-frame classes to receive and forward (linux/can/error.h bits; default all).
    pub error_mask: Option<u32>,
}

/// The default maximum age of a client's CAN frame at the bus, in milliseconds.
pub const DEFAULT_CAN_MAX_AGE_MS: u32 = 200;

fn default_can_max_age_ms() -> u32 {
    DEFAULT_CAN_MAX_AGE_MS
}

/// One `[[serial]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// The name clients see and open, e.g. `ttyUSB0`.
    pub name: String,
    /// Device path of a real port. Exactly one of `path` and `simulated` is given.
    pub path: Option<String>,
    /// Serve the simulated echo device instead of hardware.
    #[serde(default)]
    pub simulated: bool,
    /// Simulated only: append every settings/modem change to this file as JSON lines.
    pub record: Option<PathBuf>,
    /// Initial baud rate (default 115200).
    pub baud: Option<u32>,
    /// Data bits, 5 to 8 (default 8). Clients on a PTY cannot change this; set it here.
    pub data_bits: Option<u8>,
    /// `none`, `odd`, `even`, `mark` or `space` (default none). Clients on a PTY cannot change
    /// this; set it here.
    pub parity: Option<String>,
    /// 1 or 2 (default 1).
    pub stop_bits: Option<u8>,
    /// `none`, `software` (XON/XOFF) or `hardware` (RTS/CTS) (default none).
    pub flow: Option<String>,
}

impl SerialConfig {
    /// A serial table with only a name, the rest defaulted.
    fn named(name: &str) -> Self {
        SerialConfig {
            name: name.into(),
            path: None,
            simulated: false,
            record: None,
            baud: None,
            data_bits: None,
            parity: None,
            stop_bits: None,
            flow: None,
        }
    }

    /// The line settings the port starts with.
    pub fn initial_line(&self) -> Result<LineSettings> {
        let d = LineSettings::default();
        let baud = self.baud.unwrap_or(d.baud);
        if baud == 0 || baud > xoq_wire::limits::MAX_BAUD {
            bail!(
                "serial `{}`: baud must be 1 to {}",
                self.name,
                xoq_wire::limits::MAX_BAUD
            );
        }
        let data_bits = self.data_bits.unwrap_or(d.data_bits);
        if !(5..=8).contains(&data_bits) {
            bail!("serial `{}`: data_bits must be 5 to 8", self.name);
        }
        let parity = match self.parity.as_deref().unwrap_or("none") {
            "none" => Parity::None,
            "odd" => Parity::Odd,
            "even" => Parity::Even,
            "mark" => Parity::Mark,
            "space" => Parity::Space,
            p => bail!(
                "serial `{}`: parity `{p}` is not none, odd, even, mark or space",
                self.name
            ),
        };
        let stop_bits = match self.stop_bits.unwrap_or(1) {
            1 => StopBits::One,
            2 => StopBits::Two,
            n => bail!("serial `{}`: stop_bits must be 1 or 2, not {n}", self.name),
        };
        let flow = match self.flow.as_deref().unwrap_or("none") {
            "none" => FlowControl::None,
            "software" => FlowControl::Software,
            "software-ixany" => FlowControl::SoftwareAnyRestarts,
            "hardware" => FlowControl::Hardware,
            f => bail!(
                "serial `{}`: flow `{f}` is not none, software, software-ixany or hardware",
                self.name
            ),
        };
        Ok(LineSettings {
            baud,
            data_bits,
            parity,
            stop_bits,
            flow,
        })
    }
}

/// A device name must be a valid wire name (see `xoq_wire::name`) used by one device only.
fn unique_name<'a>(seen: &mut std::collections::HashSet<&'a str>, name: &'a str) -> Result<()> {
    xoq_wire::check_name("device name", name).with_context(|| {
        format!(
            "device `{}` cannot be served",
            xoq_wire::name::printable(name)
        )
    })?;
    if !seen.insert(name) {
        bail!("device name `{name}` is used twice");
    }
    Ok(())
}

impl ServerConfig {
    /// Reads a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config {} is invalid", path.display()))
    }

    /// The config file to use: the one given, else the system one if present, else none.
    pub fn load_default(explicit: Option<&Path>) -> Result<Self> {
        match explicit {
            Some(p) => Self::load(p),
            None if Path::new(SYSTEM_CONFIG).exists() => Self::load(Path::new(SYSTEM_CONFIG)),
            None => Ok(Self::default()),
        }
    }

    /// Adds `--serial NAME=PATH` shortcuts.
    pub fn add_serial_shortcut(&mut self, spec: &str) -> Result<()> {
        let Some((name, path)) = spec.split_once('=') else {
            bail!("--serial wants NAME=PATH (e.g. ttyUSB0=/dev/ttyUSB0), got `{spec}`");
        };
        self.serial.push(SerialConfig {
            path: Some(path.into()),
            ..SerialConfig::named(name)
        });
        Ok(())
    }

    /// Adds `--sim-serial NAME[=RECORD_FILE]` shortcuts.
    pub fn add_sim_serial_shortcut(&mut self, spec: &str) {
        let (name, record) = match spec.split_once('=') {
            Some((n, r)) => (n, Some(PathBuf::from(r))),
            None => (spec, None),
        };
        self.serial.push(SerialConfig {
            simulated: true,
            record,
            ..SerialConfig::named(name)
        });
    }

    /// Adds `--can NAME=IFACE` and `--sim-can NAME[=RECORD_FILE]` shortcuts.
    pub fn add_can_shortcut(&mut self, spec: &str, simulated: bool, max_age_ms: u32) -> Result<()> {
        let (name, interface, sim, record) = if simulated {
            match spec.split_once('=') {
                Some((n, r)) => (n, None, Some("damiao".to_string()), Some(PathBuf::from(r))),
                None => (spec, None, Some("damiao".to_string()), None),
            }
        } else {
            let Some((n, i)) = spec.split_once('=') else {
                bail!("--can wants NAME=INTERFACE (e.g. can0=can0), got `{spec}`");
            };
            (n, Some(i.to_string()), None, None)
        };
        self.can.push(CanConfig {
            name: name.into(),
            interface,
            simulated: sim,
            max_age_ms,
            record,
            bitrate: 0,
            error_mask: None,
        });
        Ok(())
    }

    /// Adds `--camera NAME=DEVICE` and `--sim-camera NAME` shortcuts.
    pub fn add_camera_shortcut(&mut self, spec: &str, simulated: bool) -> Result<()> {
        let (name, device) = if simulated {
            (spec, None)
        } else {
            let Some((n, d)) = spec.split_once('=') else {
                bail!("--camera wants NAME=DEVICE (e.g. cam0=/dev/video0), got `{spec}`");
            };
            (n, Some(PathBuf::from(d)))
        };
        self.camera.push(CameraConfig {
            name: name.into(),
            device,
            simulated,
            mode: None,
            encoder: None,
            bitrate_kbps: None,
            sim_grain: None,
        });
        Ok(())
    }

    /// Adds `--mic`/`--speaker NAME=ALSA_DEVICE` and `--sim-mic`/`--sim-speaker NAME`.
    pub fn add_audio_shortcut(
        &mut self,
        spec: &str,
        direction: AudioDirection,
        simulated: bool,
    ) -> Result<()> {
        self.audio
            .push(AudioConfig::shortcut(spec, direction, simulated)?);
        Ok(())
    }

    /// Checks names are unique and every device says what it is.
    /// The configured relays, parsed.
    pub fn relays(&self) -> Result<Vec<iroh::RelayUrl>> {
        if self.relay_urls.len() > xoq_link::ticket::MAX_RELAYS {
            bail!(
                "relay_urls names {} relays; a ticket carries at most {}",
                self.relay_urls.len(),
                xoq_link::ticket::MAX_RELAYS
            );
        }
        self.relay_urls
            .iter()
            .map(|u| xoq_link::parse_relay_url(u).context("relay_urls"))
            .collect()
    }

    pub fn validate(&self) -> Result<()> {
        let relays = self.relays()?;
        if self.public_relays && !relays.is_empty() {
            bail!("give either `public_relays = true` or `relay_urls`, not both");
        }
        let mut seen = std::collections::HashSet::new();
        for a in &self.audio {
            unique_name(&mut seen, &a.name)?;
            a.validate()?;
        }
        for c in &self.camera {
            unique_name(&mut seen, &c.name)?;
            if c.device.is_some() == c.simulated {
                bail!(
                    "camera `{}`: give `device = \"/dev/video0\"` or `simulated = true`, exactly one",
                    c.name
                );
            }
            c.start_mode()?;
            c.encoder()?;
            c.bitrate_bps()?;
            match c.sim_grain {
                Some(g) if g > 40 => bail!("camera `{}`: sim_grain = {g} is above 40", c.name),
                Some(_) if !c.simulated => {
                    bail!(
                        "camera `{}`: sim_grain is for simulated cameras only",
                        c.name
                    )
                }
                _ => {}
            }
        }
        for c in &self.can {
            unique_name(&mut seen, &c.name)?;
            match (&c.interface, c.simulated.as_deref()) {
                (Some(_), None) | (None, Some("damiao")) => {}
                (None, Some(other)) => bail!("can `{}`: simulated = \"{other}\" is unknown; use \"damiao\"", c.name),
                _ => bail!("can `{}`: give `interface = \"can0\"` or `simulated = \"damiao\"`, exactly one", c.name),
            }
            if u64::from(c.max_age_ms) * 1000 > u64::from(u32::MAX) {
                bail!("can `{}`: max_age_ms is too large", c.name);
            }
        }
        for s in &self.serial {
            unique_name(&mut seen, &s.name)?;
            match (&s.path, s.simulated) {
                (Some(_), true) => bail!(
                    "serial `{}`: give `path` or `simulated = true`, not both",
                    s.name
                ),
                (None, false) => bail!(
                    "serial `{}`: give `path = \"/dev/...\"` or `simulated = true`",
                    s.name
                ),
                _ => {}
            }
            s.initial_line()?;
        }
        let count = self.serial.len() + self.can.len() + self.camera.len() + self.audio.len();
        if count > xoq_wire::limits::MAX_DEVICES {
            bail!(
                "{count} devices configured; one server serves at most {} (run a second server for the rest)",
                xoq_wire::limits::MAX_DEVICES
            );
        }
        xoq_wire::check_name("server name", &self.display_name()).context(
            "the server's name cannot be announced: set `name = \"...\"` in the config or --name",
        )?;
        if self.serial.is_empty()
            && self.can.is_empty()
            && self.camera.is_empty()
            && self.audio.is_empty()
        {
            bail!(
                "no devices to serve: give --serial NAME=PATH, --sim-serial NAME, --can \
                 NAME=IFACE, --sim-can NAME, --camera NAME=DEVICE, --sim-camera NAME, --sim-mic \
                 NAME, --sim-speaker NAME, or a config file (see packaging/server.toml)"
            );
        }
        Ok(())
    }

    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        if self.listen.is_empty() {
            vec![SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))]
        } else {
            self.listen.clone()
        }
    }

    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "xoq-server".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_in_the_repo_parses_and_validates() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/server.toml");
        let c = ServerConfig::load(&p).unwrap();
        c.validate().unwrap();
        assert!(!c.serial.is_empty());
    }

    /// The example's commented `[[serial]]`/`[[can]]` tables are valid too: with every one of
    /// them switched on, the file has a device of each kind and still validates.
    #[test]
    fn example_config_commented_devices_are_valid() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/server.toml");
        let text = std::fs::read_to_string(p).unwrap();
        let mut on = String::new();
        let mut in_table = false;
        for line in text.lines() {
            in_table = match line {
                "" => false,
                l if l.starts_with("# [[") => true,
                _ => in_table,
            };
            match line.strip_prefix("# ") {
                Some(l) if in_table => on.push_str(l),
                _ => on.push_str(line),
            }
            on.push('\n');
        }
        let c: ServerConfig = toml::from_str(&on).unwrap();
        c.validate().unwrap();
        assert!(c.serial.iter().any(|s| s.path.is_some()));
        assert!(c.serial.iter().any(|s| s.simulated));
        assert!(c.can.iter().any(|c| c.interface.is_some()));
        assert!(c.can.iter().any(|c| c.simulated.is_some()));
        assert!(c.can.iter().any(|c| c.error_mask.is_some()));
    }

    #[test]
    fn shortcuts_and_validation_errors() {
        let mut c = ServerConfig::default();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--sim-serial"));
        c.add_serial_shortcut("ttyUSB0=/dev/ttyUSB0").unwrap();
        c.add_sim_serial_shortcut("echo0=/tmp/rec.jsonl");
        c.validate().unwrap();
        assert!(c.add_serial_shortcut("nopath").is_err());
        c.add_sim_serial_shortcut("echo0");
        assert!(c.validate().unwrap_err().to_string().contains("twice"));
        c.serial.pop();
        c.serial[0].parity = Some("even".into());
        c.serial[0].data_bits = Some(7);
        let line = c.serial[0].initial_line().unwrap();
        assert_eq!((line.data_bits, line.parity), (7, Parity::Even));
        c.serial[0].parity = Some("evn".into());
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("parity `evn`"));
    }

    #[test]
    fn camera_bit_rate_and_grain_are_checked() {
        let camera = |extra: &str| -> Result<()> {
            let c: ServerConfig = toml::from_str(&format!(
                "[[camera]]\nname = \"cam0\"\nsimulated = true\n{extra}"
            ))?;
            c.validate()
        };
        camera("bitrate_kbps = 4000\nsim_grain = 12").unwrap();
        let e = camera("bitrate_kbps = 50").unwrap_err().to_string();
        assert!(
            e.contains("bitrate_kbps = 50 is outside 100 to 100000"),
            "{e}"
        );
        let e = camera("sim_grain = 41").unwrap_err().to_string();
        assert!(e.contains("sim_grain = 41 is above 40"), "{e}");
        let c: ServerConfig =
            toml::from_str("[[camera]]\nname = \"cam0\"\ndevice = \"/dev/video0\"\nsim_grain = 3")
                .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("for simulated cameras only"), "{e}");
    }
}
