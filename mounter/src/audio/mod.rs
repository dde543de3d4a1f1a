//! Remote microphones and speakers on the client: each becomes a PipeWire node,
//! `xoq.<server>.<device>` ("XoQ <server> <device>"): an Audio/Source that programs record
//! from, or an Audio/Sink that programs play to.
//!
//! Packets travel as iroh datagrams (`xoq_link::datagrams`), or a microphone's on a relay's
//! audio track (`crate::relay`, delivered through the same router). A microphone's packets go through a
//! jitter buffer that the node's graph clock drains, so the delay stays constant even though
//! the robot's sound card and this machine's clock drift apart; a speaker's samples are cut
//! into packets as PipeWire hands them over (the server's jitter buffer does the rest). Nodes
//! live as long as the mount: across link drops a source plays silence and a sink's samples
//! are dropped.

pub mod bridge;
#[cfg(feature = "pipewire")]
pub mod node;
#[cfg(feature = "pipewire")]
pub mod sink_queue;

pub use bridge::AudioMount;
