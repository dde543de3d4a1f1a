//! The transports a mounter reaches a server by, behind one type: an iroh connection (the
//! supervisor redials it and restarts the device loops) or a MoQ relay session (which redials
//! by itself, so device loops wait for their broadcasts to return). Device loops and bridges
//! see only a `Session` and the `DeviceStream`s it opens (docs/ARCHITECTURE.md, "Transports").

use std::sync::Arc;
use std::time::Duration;

use xoq_link::client::{ClientSession, ConnectError, DeviceStream};
use xoq_wire::{Access, ErrorCode};

use crate::mounted::Mounted;
use crate::relay::RelaySession;

#[derive(Clone)]
pub enum Session {
    Iroh(Arc<ClientSession>),
    Relay(Arc<RelaySession>),
}

impl Session {
    /// Opens `m`'s remote device as `m` asks, or read-only where the server narrowed this
    /// client's grant or the relay token does not allow writing; with the state to show.
    pub async fn open(&self, m: &Mounted) -> (Result<DeviceStream, ConnectError>, &'static str) {
        match self {
            Session::Iroh(s) => {
                match s
                    .open_device_with(m.name(), m.access(), m.writer_token(), m.delivery())
                    .await
                {
                    // Keep the device, read-only (its writes are refused by the server and
                    // counted).
                    Err(ConnectError::Refused {
                        code: ErrorCode::NotPermitted,
                        ..
                    }) if m.access() == Access::ReadWrite => (
                        s.open_device_with(m.name(), Access::ReadOnly, 0, m.delivery())
                            .await,
                        "open read-only (the server narrowed this client's grant)",
                    ),
                    other => (other, "open"),
                }
            }
            Session::Relay(r) => {
                let opened = r.open(m.name(), m.access(), m.writer_token()).await;
                let state = match &opened {
                    Ok(s) if s.info.access != m.access() => {
                        "open read-only (the relay token does not allow writing)"
                    }
                    _ => "open",
                };
                (opened, state)
            }
        }
    }

    /// The iroh connection, for what only it carries (camera frames, audio datagrams).
    pub fn iroh(&self) -> Option<&Arc<ClientSession>> {
        match self {
            Session::Iroh(s) => Some(s),
            Session::Relay(_) => None,
        }
    }

    /// The link's round trip, where the transport measures it.
    pub fn rtt(&self) -> Option<Duration> {
        self.iroh().and_then(|s| s.rtt())
    }

    /// True when the transport comes back by itself after a lost link, so a device loop keeps
    /// reopening instead of ending with its connection.
    pub fn redials_itself(&self) -> bool {
        matches!(self, Session::Relay(_))
    }
}
