//! The server's devices, in configured order, and the catalog each client sees.

use std::sync::Arc;

use iroh::EndpointId;
use xoq_link::AuthorizedClients;
use xoq_wire::DeviceInfo;

use crate::config::ServerConfig;
use crate::serial::hardware::HardwarePort;
use crate::serial::sim::SimEcho;
use crate::serial::SerialDevice;

/// Every served device.
pub struct Devices {
    serial: Vec<Arc<SerialDevice>>,
}

impl Devices {
    /// Starts one actor per configured device.
    pub fn start(cfg: &ServerConfig) -> Self {
        let serial = cfg
            .serial
            .iter()
            .map(|s| {
                // validate() has checked every table, so the default is never used.
                let line = s.initial_line().unwrap_or_default();
                match &s.path {
                    Some(path) => SerialDevice::spawn(
                        s.name.clone(),
                        HardwarePort { path: path.clone() },
                        line,
                    ),
                    None => SerialDevice::spawn(
                        s.name.clone(),
                        SimEcho {
                            record: s.record.clone(),
                        },
                        line,
                    ),
                }
            })
            .collect();
        Devices { serial }
    }

    pub fn serial(&self, name: &str) -> Option<&Arc<SerialDevice>> {
        self.serial.iter().find(|d| d.name == name)
    }

    /// The devices this client may open, each with its granted access.
    pub fn catalog_for(&self, client: &EndpointId, auth: &AuthorizedClients) -> Vec<DeviceInfo> {
        self.serial
            .iter()
            .filter_map(|d| auth.access(client, &d.name).map(|a| d.info(a)))
            .collect()
    }
}
