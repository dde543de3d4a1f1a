//! Microphones and speakers on the server: the backend traits (a sound card through ALSA, or
//! the simulated tone and measuring speaker), the device that packetizes what a microphone
//! captures and plays what clients send to a speaker, and the per-client stream handling.

pub mod backend;
pub mod card;
pub mod config;
pub mod device;
pub mod sim;
pub mod stream;

pub use device::{AudioAttachment, AudioDevice};
