//! A CAN client at the protocol level, for tests that need no kernel CAN: open a server's
//! CAN device as a client would, build Damiao commands, wait for messages.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use xoq_link::client::{connect, DeviceStream};
use xoq_link::{bind_endpoint, EndpointOptions, Ticket};
use xoq_wire::{Access, CanFrame, Delivery, Message};

use crate::proc::Env;

/// How long a test waits for one expected message.
pub const T: Duration = Duration::from_secs(10);
/// The Damiao "enable" command's payload.
pub const ENABLE: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc];

/// Now, in µs since the epoch (the clock CAN timestamps use).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A classic 8-byte frame.
pub fn cmd(id: u32, data: [u8; 8], timestamp_us: u64) -> CanFrame {
    CanFrame {
        id,
        flags: 0,
        len: 8,
        data: data.to_vec(),
        timestamp_us,
    }
}

/// Reads messages until `pred` matches one (returned) or [`T`] passes (None).
pub async fn wait_for(
    dev: &mut DeviceStream,
    mut pred: impl FnMut(&Message) -> bool,
) -> Option<Message> {
    tokio::time::timeout(T, async {
        loop {
            match dev.reader.next().await {
                Ok(Some(m)) if pred(&m) => return Some(m),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Connects as `client` and opens `device`; the endpoint and session must outlive the stream.
pub async fn open(
    env: &Env,
    client: &str,
    ticket: &str,
    device: &str,
    access: Access,
) -> (iroh::Endpoint, xoq_link::ClientSession, DeviceStream) {
    open_with(env, client, ticket, device, access, Delivery::Ordered).await
}

/// [`open`], delivered as `delivery` says.
pub async fn open_with(
    env: &Env,
    client: &str,
    ticket: &str,
    device: &str,
    access: Access,
    delivery: Delivery,
) -> (iroh::Endpoint, xoq_link::ClientSession, DeviceStream) {
    let key = env.client_key(client);
    let ep = bind_endpoint(key, EndpointOptions::default())
        .await
        .expect("endpoint");
    let ticket: Ticket = ticket.parse().expect("ticket");
    let session = connect(&ep, &ticket, client, T).await.expect("connect");
    let dev = session
        .open_device_with(device, access, 0, delivery)
        .await
        .unwrap_or_else(|e| panic!("open {device}: {e}"));
    (ep, session, dev)
}

/// One command the simulated bus executed, from its record (`--sim-can NAME=RECORD_FILE`: one
/// `AGE_US ID DATA` line each, id and data in hex).
#[derive(Debug, Clone, Copy)]
pub struct Executed {
    /// How old the command was when the bus ran it, µs.
    pub age_us: u64,
    /// The motor's CAN id.
    pub motor: u32,
    /// The command's number, from its first four data bytes.
    pub n: u32,
}

/// The commands the simulated bus recorded in `path`, in the order it ran them (none if the
/// file is missing).
pub fn executed_commands(path: &std::path::Path) -> Vec<Executed> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some(Executed {
                age_us: w.next()?.parse().ok()?,
                motor: u32::from_str_radix(w.next()?, 16).ok()?,
                n: u32::from_str_radix(w.next()?.get(..8)?, 16).ok()?,
            })
        })
        .collect()
}
