//! Network impairment for tests and benchmarks: named link profiles (`lan`, `wifi`, `wan`,
//! `lte`, `outage`), a sans-IO model of one direction of a link that decides, from a seeded
//! random stream and the time a packet arrives, whether and when it is delivered, and two
//! carriers that apply a profile to real traffic: a TUN link between two network namespaces
//! ([`TunLink`], every protocol: what the tests and `net_bench` use) and a UDP relay a ticket
//! can point at ([`Relay`], the `impair_relay` binary, for trying a real robot over a bad link).
//!
//! The host kernel has no `netem`; this is its userspace counterpart. Decisions depend only on
//! the seed, the packet's index and its arrival time, so a profile run twice loses the same
//! packets.

// `unsafe` only for the TUN device's ioctl (`tun.rs`), with its SAFETY note.
#![deny(unsafe_code)]

pub mod model;
pub mod profile;
pub mod relay;
mod schedule;
pub mod tun;

pub use model::{Counters, DirectionModel};
pub use profile::{Blackholes, LinkSpec, Loss, Profile};
pub use relay::{Relay, RelayConfig};
pub use tun::TunLink;
