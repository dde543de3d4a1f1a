//! CAN buses on the client: a vcan interface per remote bus, bridged to its device stream.

pub mod bridge;
pub mod vcan;

pub use bridge::CanMount;
