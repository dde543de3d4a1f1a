//! The server's devices, in configured order, and the catalog each client sees.

use std::sync::Arc;

use iroh::EndpointId;
use xoq_link::AuthorizedClients;
use xoq_wire::{Access, DeviceInfo};

use xoq_link::cansock::ALL_ERRORS;

use crate::audio::card::{CardMicrophone, CardSpeaker};
use crate::audio::config::AudioConfig;
use crate::audio::sim::{SimMicrophone, SimSpeaker};
use crate::audio::AudioDevice;
use crate::camera::device::CameraOptions;
use crate::camera::sim::SimCamera;
use crate::camera::v4l2::V4l2Camera;
use crate::camera::CameraDevice;
use crate::can::sim::SimDamiao;
use crate::can::socket::SocketCanPort;
use crate::can::CanDevice;
use crate::config::ServerConfig;
use crate::serial::hardware::HardwarePort;
use crate::serial::sim::SimEcho;
use crate::serial::SerialDevice;
use xoq_audio::Tone;
use xoq_wire::AudioDirection;

/// One served device of any kind.
#[derive(Clone)]
pub enum Device {
    Serial(Arc<SerialDevice>),
    Can(Arc<CanDevice>),
    Camera(Arc<CameraDevice>),
    Audio(Arc<AudioDevice>),
}

impl Device {
    pub fn name(&self) -> &str {
        match self {
            Device::Serial(d) => &d.name,
            Device::Can(d) => &d.name,
            Device::Camera(d) => &d.name,
            Device::Audio(d) => &d.name,
        }
    }
    pub fn info(&self, access: Access) -> DeviceInfo {
        match self {
            Device::Serial(d) => d.info(access),
            Device::Can(d) => d.info(access),
            Device::Camera(d) => d.info(access),
            Device::Audio(d) => d.info(access),
        }
    }
}

/// Every served device.
pub struct Devices {
    list: Vec<Device>,
}

impl Devices {
    /// Starts one actor per configured device (the config has been validated). A camera that
    /// cannot start (no such device, no usable mode) is an error: the operator asked for it.
    pub fn start(cfg: &ServerConfig) -> anyhow::Result<Self> {
        let mut list = Vec::new();
        for s in &cfg.serial {
            let line = s.initial_line().unwrap_or_default();
            list.push(Device::Serial(match &s.path {
                Some(path) => {
                    SerialDevice::spawn(s.name.clone(), HardwarePort { path: path.clone() }, line)
                }
                None => SerialDevice::spawn(
                    s.name.clone(),
                    SimEcho {
                        record: s.record.clone(),
                    },
                    line,
                ),
            }));
        }
        for c in &cfg.can {
            let max_age_us = c.max_age_ms.saturating_mul(1000);
            list.push(Device::Can(match &c.interface {
                Some(ifname) => CanDevice::spawn(
                    c.name.clone(),
                    SocketCanPort::new(
                        ifname,
                        max_age_us,
                        c.bitrate,
                        c.error_mask.unwrap_or(ALL_ERRORS),
                    ),
                ),
                None => CanDevice::spawn(
                    c.name.clone(),
                    SimDamiao {
                        max_age_us,
                        record: c.record.clone(),
                    },
                ),
            }));
        }
        for c in &cfg.camera {
            let opts = CameraOptions {
                mode: c.start_mode()?,
                encoder: c.encoder()?,
                bitrate_bps: c.bitrate_bps()?,
            };
            let dev = match &c.device {
                Some(path) => CameraDevice::spawn(c.name.clone(), V4l2Camera::open(path)?, opts),
                None => CameraDevice::spawn(
                    c.name.clone(),
                    SimCamera::with_grain(c.sim_grain.unwrap_or(0)),
                    opts,
                ),
            };
            list.push(Device::Camera(
                dev.map_err(|e| anyhow::anyhow!("camera `{}`: {e}", c.name))?,
            ));
        }
        for a in &cfg.audio {
            list.push(Device::Audio(
                start_audio(a).map_err(|e| anyhow::anyhow!("audio `{}`: {e}", a.name))?,
            ));
        }
        Ok(Devices { list })
    }

    /// Every served device, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Device> {
        self.list.iter()
    }

    pub fn get(&self, name: &str) -> Option<Device> {
        self.list.iter().find(|d| d.name() == name).cloned()
    }

    /// The devices this client may open, each with its granted access.
    pub fn catalog_for(&self, client: &EndpointId, auth: &AuthorizedClients) -> Vec<DeviceInfo> {
        self.list
            .iter()
            .filter_map(|d| auth.access(client, d.name()).map(|a| d.info(a)))
            .collect()
    }
}

/// Starts one configured microphone or speaker (the config has been validated).
fn start_audio(a: &AudioConfig) -> anyhow::Result<Arc<AudioDevice>> {
    let name = a.name.clone();
    let dev = match (a.direction()?, &a.device) {
        (AudioDirection::Capture, None) => {
            let format = a.sim_format();
            let tone = Tone::new(a.tone_hz.unwrap_or(440.0), 0.5, format.rate);
            let mic = SimMicrophone {
                format,
                tone,
                drift_ppm: a.drift_ppm,
                clicks: a.clicks(),
            };
            AudioDevice::spawn_microphone(name, mic, a.packet_ms(), a.opus_bitrate())?
        }
        (AudioDirection::Playback, None) => {
            let speaker = SimSpeaker {
                format: a.sim_format(),
                drift_ppm: a.drift_ppm,
                record: a.record.clone(),
                jitter: None,
                arrivals: None,
            };
            let record = a.record.is_some();
            let opus = a.opus_bitrate().is_some();
            AudioDevice::spawn_speaker(name, speaker, a.packet_ms(), a.latency(), opus, |s, jb| {
                s.jitter = Some(jb);
                // Two seconds of packets queue for the record between its writes.
                let (tx, rx) = std::sync::mpsc::sync_channel(200);
                s.arrivals = record.then_some(rx);
                record.then_some(tx)
            })?
        }
        (AudioDirection::Capture, Some(device)) => {
            let mic = CardMicrophone::open(device, a.rate, a.channels)?;
            AudioDevice::spawn_microphone(name, mic, a.packet_ms(), a.opus_bitrate())?
        }
        (AudioDirection::Playback, Some(device)) => {
            let speaker = CardSpeaker::open(device, a.rate, a.channels)?;
            AudioDevice::spawn_speaker(
                name,
                speaker,
                a.packet_ms(),
                a.latency(),
                a.opus_bitrate().is_some(),
                |_, _| None,
            )?
        }
    };
    Ok(dev)
}
