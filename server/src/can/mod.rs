//! CAN devices on the server: the backend trait, SocketCAN and the simulated Damiao bus, and
//! the device actor that shares one bus among clients.

pub mod backend;
pub mod damiao;
pub mod device;
pub mod sim;
pub mod socket;
pub mod stream;

pub use device::{CanAttachment, CanDevice};
