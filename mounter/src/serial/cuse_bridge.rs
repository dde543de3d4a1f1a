//! A serial device mounted as a CUSE tty, and the bridge that connects it to the device
//! stream of each connection. The device itself (and the programs holding it open) outlive
//! connections: a bridge only announces the stream to the device and carries messages.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use xoq_cuse::TtyConfig;
use xoq_link::client::DeviceStream;
use xoq_wire::{Access, DeviceSettings, LineSettings, Message, ModemStatus};

use super::bridge::{modem_json, on_error};
use super::cuse_device::{self, Event, UPLINK_DEPTH};
use crate::mounted::BridgeEnd;
use crate::naming::Link;
use crate::status::DeviceStatus;

/// Remote messages queued toward the device.
const EVENT_DEPTH: usize = 16;

/// A serial device mounted as `/dev/ttyXOQ<N>` through CUSE.
pub struct CuseMount {
    /// The server's name for the device.
    pub name: String,
    pub access: Access,
    /// `/dev/ttyXOQ<N>`.
    pub path: PathBuf,
    /// A link to it in the link directory, when that is not `/dev`.
    pub link: Option<Link>,
    pub status: Arc<DeviceStatus>,
    /// Names this mount's writer to the server across reconnections (never 0).
    pub writer_token: u64,
    events: mpsc::Sender<Event>,
    task: JoinHandle<()>,
}

/// Everything needed to create one.
pub struct CuseSpec<'a> {
    pub name: &'a str,
    pub access: Access,
    pub line: LineSettings,
    pub modem: ModemStatus,
    pub link_dir: &'a std::path::Path,
    pub first_index: u32,
}

impl CuseMount {
    /// Registers the device on `cuse` (an opened `/dev/cuse`) and starts serving it.
    pub fn create(mut cuse: std::fs::File, spec: CuseSpec<'_>) -> Result<CuseMount> {
        let devname = cuse_device::free_name(spec.link_dir, spec.first_index)?;
        let path = cuse_device::register(&mut cuse, &devname)
            .with_context(|| format!("cannot create /dev/{devname} with CUSE"))?;
        let line_number = devname
            .trim_start_matches(crate::naming::SERIAL_PREFIX)
            .parse()
            .unwrap_or(0);
        let link = if spec.link_dir != std::path::Path::new("/dev") {
            Some(Link::create(
                spec.link_dir,
                crate::naming::SERIAL_PREFIX,
                line_number,
                &path,
            )?)
        } else {
            None
        };
        let local = match &link {
            Some(l) => format!("{} -> {} (cuse)", l.path.display(), path.display()),
            None => format!("{} (cuse)", path.display()),
        };
        let status = DeviceStatus::new(spec.name, "serial", local, spec.access.to_string());
        let (events, rx) = mpsc::channel(EVENT_DEPTH);
        let cfg = TtyConfig {
            line_number,
            read_only: spec.access == Access::ReadOnly,
            line: spec.line,
            modem: spec.modem,
        };
        let task_status = status.clone();
        let device = spec.name.to_string();
        let task = tokio::spawn(async move {
            if let Err(e) = cuse_device::serve(cuse, cfg, rx, task_status.clone()).await {
                tracing::error!(%device, "CUSE device stopped: {e}");
                task_status.set_state(format!("local device failed: {e}"));
            }
        });
        Ok(CuseMount {
            name: spec.name.to_string(),
            access: spec.access,
            path,
            link,
            status,
            writer_token: rand::random::<u64>() | 1,
            events,
            task,
        })
    }

    /// The path programs open.
    pub fn local_path(&self) -> &std::path::Path {
        self.link.as_ref().map_or(&self.path, |l| &l.path)
    }

    /// Removes the device: the kernel deletes it when its `/dev/cuse` closes.
    pub fn remove(&self) {
        self.task.abort();
        if let Some(l) = &self.link {
            l.remove();
        }
    }

    /// Carries one connection's device stream until it or the device ends.
    pub async fn bridge(&self, stream: DeviceStream) -> BridgeEnd {
        let DeviceStream {
            info,
            mut reader,
            mut writer,
            ..
        } = stream;
        let DeviceSettings::Serial { line, modem } = info.settings else {
            return BridgeEnd::DeviceGone("the server's device is no longer a serial port".into());
        };
        self.status.set_detail("line", json!(line.to_string()));
        self.status.set_detail("modem", modem_json(&modem));
        let (uplink, mut up_rx) = mpsc::channel(UPLINK_DEPTH);
        let stopped = || BridgeEnd::LocalFailed(io::Error::other("the CUSE device stopped"));
        if self
            .events
            .send(Event::Connected {
                uplink,
                line,
                modem,
                writer: info.access == Access::ReadWrite,
            })
            .await
            .is_err()
        {
            return stopped();
        }
        let up = async {
            while let Some(m) = up_rx.recv().await {
                if let Err(e) = writer.send(&m).await {
                    return BridgeEnd::LinkLost(e.to_string());
                }
            }
            stopped()
        };
        let down = async {
            let mut warned_read_only = false;
            loop {
                let m = match reader.next().await {
                    Ok(Some(m)) => m,
                    Ok(None) => {
                        return BridgeEnd::DeviceGone("the server closed the device stream".into())
                    }
                    Err(e) => return BridgeEnd::LinkLost(e.to_string()),
                };
                match &m {
                    Message::Data(_) | Message::Drained { .. } | Message::TxProgress { .. } => {}
                    Message::LineSettings(l) => {
                        self.status.set_detail("line", json!(l.to_string()))
                    }
                    Message::ModemStatus(s) => self.status.set_detail("modem", modem_json(s)),
                    Message::Error { code, text } => {
                        let (code, text) = (*code, text.clone());
                        match on_error(&self.name, &self.status, code, text, &mut warned_read_only)
                        {
                            Some(end) => return end,
                            None => continue,
                        }
                    }
                    other => {
                        return BridgeEnd::LinkLost(format!(
                            "server sent {} on a device stream",
                            other.name()
                        ))
                    }
                }
                if self.events.send(Event::Remote(m)).await.is_err() {
                    return stopped();
                }
            }
        };
        let end = tokio::select! {
            e = up => e,
            e = down => e,
        };
        writer.finish();
        end
    }
}
