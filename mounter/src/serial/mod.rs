//! Serial devices on the client: each remote port becomes `/dev/ttyXOQ<N>`, either a CUSE
//! character device (every termios and modem-line call reaches the remote port) or, where
//! `/dev/cuse` is unavailable, a PTY (data and speed only).

pub mod bridge;
pub mod cuse_bridge;
pub mod cuse_device;
pub mod pty;
pub mod pty_tx;
pub mod termios;

pub use bridge::{bridge, SerialMount};
pub use cuse_bridge::{CuseMount, CuseSpec};
