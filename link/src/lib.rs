//! `xoq-link`: everything between a wire message and the network.
//!
//! It owns this host's identity key, the server's authorized-clients file, tickets (an id plus
//! direct addresses and relays), the iroh endpoint with our transport settings, and framed message
//! streams over QUIC. Servers and mounters build on it; neither touches iroh directly for
//! anything but accepting and dialling.
//!
//! No `unsafe` here: the few raw system calls are `xoq-sys`'s.

#![forbid(unsafe_code)]

pub mod authorized;
pub mod busy_poll;
pub mod canframe;
pub mod cansock;
pub mod client;
pub mod clock;
pub mod congestion;
pub mod copies;
pub mod datagrams;
pub mod endpoint;
pub mod fdio;
pub mod framed;
pub mod frames;
pub mod identity;
pub mod net_path;
pub mod paths;
pub use xoq_sys::realtime;
pub mod runtime;
pub mod stats;
pub mod sync;
pub mod ticket;

pub use authorized::{AuthorizedClients, ClientGrant};
pub use client::{connect, ClientSession, ConnectError};
pub use endpoint::{bind_endpoint, EndpointOptions};
pub use framed::{ChannelItem, MessageReader, MessageWriter, StreamError};
pub use identity::load_or_create_key;
pub use iroh::{EndpointId, SecretKey};
pub use ticket::{parse_relay_url, Ticket};

/// QUIC application close code: the server refused this client (see `Refused`).
pub const CLOSE_REFUSED: u32 = 2;
/// QUIC application close code: the server is at its connection limit; try again later.
pub const CLOSE_FULL: u32 = 3;
/// QUIC application close code: orderly shutdown by either side.
pub const CLOSE_NORMAL: u32 = 0;
/// QUIC application close code: the peer broke the protocol on the control stream.
pub const CLOSE_PROTOCOL: u32 = 8;
