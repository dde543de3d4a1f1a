//! Creates the local device for one catalog entry: a CUSE tty or PTY for a serial port, a vcan
//! interface for a CAN bus, a loopback video device (or file) for a camera, a PipeWire node for
//! a microphone or speaker.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use xoq_wire::{Access, DeviceInfo, DeviceKind, DeviceSettings};

use crate::audio::AudioMount;
use crate::camera::claim::{claim_loopback, NamedLink};
use crate::camera::decode::DecoderHandle;
use crate::camera::sink::Sink;
use crate::camera::CameraMount;
use crate::can::vcan::Vcan;
use crate::can::CanMount;
use crate::mounted::Mounted;
use crate::naming::{Link, SERIAL_PREFIX};
use crate::serial::cuse_device::open_cuse;
use crate::serial::pty::Pty;
use crate::serial::{CuseMount, CuseSpec, SerialMount};
use crate::status::DeviceStatus;
use crate::supervisor::MountOptions;

/// What a remote serial port becomes locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SerialDevice {
    /// A CUSE tty when /dev/cuse is usable, else a PTY.
    Auto,
    /// A CUSE tty, or fail.
    Cuse,
    /// A PTY (data and speed only: no modem lines, breaks or drains).
    Pty,
}

/// Where a remote camera's pictures go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraSink {
    /// A free v4l2loopback device labelled xoq*, linked as `<dir>/xoq/<server>-<camera>`.
    Loopback,
    /// `<dir>/<camera>.y4m` (YUV4MPEG2, I420), for tests and recording.
    Y4m(PathBuf),
    /// Decoded and dropped, for benchmarks.
    Null,
}

impl std::str::FromStr for CameraSink {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "loopback" => Ok(CameraSink::Loopback),
            None if s == "null" => Ok(CameraSink::Null),
            Some(("y4m", dir)) if !dir.is_empty() => Ok(CameraSink::Y4m(PathBuf::from(dir))),
            _ => Err(format!("`{s}` is not `loopback`, `y4m:DIR` or `null`")),
        }
    }
}

/// Creates the local device for one catalog entry; `None` for kinds this build cannot mount.
pub fn mount_one(
    d: &DeviceInfo,
    access: Access,
    opts: &MountOptions,
    server_name: &str,
) -> Result<Option<Mounted>> {
    // Checked when decoded; checked again here, where the names become local names (links,
    // files, PipeWire nodes, v4l2loopback labels) made by a mounter that may run as root.
    xoq_wire::check_name("server name", server_name)?;
    xoq_wire::check_name("device name", &d.name)?;
    Ok(Some(match (d.kind, &d.settings) {
        (DeviceKind::Serial, DeviceSettings::Serial { line, modem }) => {
            let cuse = match opts.serial_device {
                SerialDevice::Pty => None,
                SerialDevice::Cuse => Some(open_cuse().map_err(anyhow::Error::msg)?),
                SerialDevice::Auto => match open_cuse() {
                    Ok(f) => Some(f),
                    Err(why) => {
                        println!("using a PTY for {}: {why}; modem lines, breaks and tcdrain will not reach the port", d.name);
                        None
                    }
                },
            };
            if let Some(cuse) = cuse {
                let m = CuseMount::create(
                    cuse,
                    CuseSpec {
                        name: &d.name,
                        access,
                        line: *line,
                        modem: *modem,
                        link_dir: &opts.link_dir,
                        first_index: opts.first_index,
                    },
                )?;
                println!(
                    "mounted  serial  {}  ->  {}  ({access}, {line}, cuse tty)",
                    d.name,
                    m.local_path().display()
                );
                return Ok(Some(Mounted::SerialCuse(Arc::new(m))));
            }
            let pty = Pty::open(line)?;
            let link = Link::create(&opts.link_dir, SERIAL_PREFIX, opts.first_index, &pty.path)?;
            let local = format!("{} -> {}", link.path.display(), pty.path.display());
            let dstatus = DeviceStatus::new(&d.name, "serial", local, access.to_string());
            println!(
                "mounted  serial  {}  ->  {}  ({access}, {line})",
                d.name,
                link.path.display()
            );
            Mounted::Serial(Arc::new(SerialMount {
                name: d.name.clone(),
                access,
                pty,
                link,
                status: dstatus,
                writer_token: rand::random::<u64>() | 1,
                tx: Default::default(),
            }))
        }
        (DeviceKind::Can, DeviceSettings::Can(c)) => {
            let vcan = Vcan::create(opts.first_index, c.fd)?;
            let dstatus = DeviceStatus::new(&d.name, "can", vcan.name.clone(), access.to_string());
            let fd = if c.fd { "CAN FD" } else { "CAN" };
            println!(
                "mounted  can  {}  ->  {}  ({access}, {fd}, {} delivery)",
                d.name, vcan.name, opts.can_delivery
            );
            Mounted::Can(Arc::new(CanMount {
                name: d.name.clone(),
                access,
                vcan,
                status: dstatus,
                max_age_us: c.max_age_us,
                delivery: opts.can_delivery,
                local_stale: Default::default(),
                local_dropped: Default::default(),
                link_unconfirmed: Default::default(),
            }))
        }
        (DeviceKind::Camera, DeviceSettings::Camera(cs)) => {
            Mounted::Camera(Arc::new(mount_camera(d, cs, access, opts, server_name)?))
        }
        (DeviceKind::Audio, DeviceSettings::Audio(a)) => {
            let m = AudioMount::create(&d.name, server_name, *a, access, opts.audio_latency)?;
            println!(
                "mounted  audio  {}  ->  {}  ({access}, {}, {} frames a packet)",
                d.name, m.status.local, a.format, a.packet_frames
            );
            Mounted::Audio(Arc::new(m))
        }
        _ => return Ok(None),
    }))
}

fn mount_camera(
    d: &DeviceInfo,
    cs: &xoq_wire::CameraSettings,
    access: Access,
    opts: &MountOptions,
    server_name: &str,
) -> Result<CameraMount> {
    let (sink, claim) = match &opts.camera_sink {
        CameraSink::Loopback => {
            let label = format!("XoQ {server_name} {}", d.name);
            let c = claim_loopback(&xoq_link::paths::runtime_dir(), &label)?;
            (Sink::loopback(&c.path, cs.codec), Some(c))
        }
        CameraSink::Y4m(dir) => {
            let file = xoq_link::paths::confined_join(dir, &format!("{}.y4m", d.name))?;
            std::fs::create_dir_all(dir)?;
            (Sink::y4m(&file), None)
        }
        CameraSink::Null => (
            Sink::Null {
                path: PathBuf::from("(null)"),
            },
            None,
        ),
    };
    let link = match &claim {
        Some(c) => {
            let dir = if xoq_link::paths::is_root() {
                PathBuf::from("/dev/xoq")
            } else {
                opts.link_dir.join("xoq")
            };
            Some(NamedLink::create(
                &dir,
                &format!("{server_name}-{}", d.name),
                &c.path,
            )?)
        }
        None => None,
    };
    let local = sink.path().display().to_string();
    let shown = link
        .as_ref()
        .map_or(local.clone(), |l| format!("{local} ({})", l.path.display()));
    let decoder = DecoderHandle::spawn(&d.name, cs.codec, cs.mode, sink)?;
    let status = DeviceStatus::new(&d.name, "camera", shown.clone(), access.to_string());
    println!(
        "mounted  camera  {}  ->  {shown}  ({access}, {} {})",
        d.name, cs.mode, cs.codec
    );
    Ok(CameraMount {
        name: d.name.clone(),
        access,
        status,
        link,
        _claim: claim,
        wanted: opts.camera_mode,
        decoder,
    })
}
