//! Serial devices on the client: a PTY per remote port, bridged to its device stream.

pub mod bridge;
pub mod pty;
pub mod termios;

pub use bridge::{bridge, SerialMount};
