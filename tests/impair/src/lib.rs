//! Network impairment for tests and benchmarks: named link profiles (`lan`, `wifi`, `wan`,
//! `lte`, `outage`), a sans-IO model of one direction of a link that decides, from a seeded
//! random stream and the time a packet arrives, whether and when it is delivered, and a UDP
//! relay that applies a profile to real traffic between a mounter and a server.
//!
//! The host kernel has no `netem`; this is its userspace counterpart. Decisions depend only on
//! the seed, the packet's index and its arrival time, so a profile run twice loses the same
//! packets.

#![forbid(unsafe_code)]

pub mod model;
pub mod profile;
pub mod relay;

pub use model::{Counters, DirectionModel};
pub use profile::{Blackholes, LinkSpec, Loss, Profile};
pub use relay::{Relay, RelayConfig};
