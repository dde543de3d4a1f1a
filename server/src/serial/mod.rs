//! Serial devices on the server: the backend trait, its real and simulated implementations,
//! and the device actor that shares one port among clients.

pub mod backend;
pub mod device;
pub mod hardware;
pub mod sim;
pub mod sim_flow;
pub mod sim_line;
pub mod stream;
pub mod writer;

pub use device::{Attachment, SerialDevice};
