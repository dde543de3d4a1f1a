//! Helpers for the host end-to-end tests: run the real `xoq-server` and `xoq-mount` binaries
//! in a private temporary environment, hold "hardware" PTYs, and do tty I/O with deadlines.
//!
//! The binaries are the ones `cargo build --bins` put next to this test executable's `deps/`
//! directory, so the tests exercise exactly what ships.

pub mod audio;
pub mod browser;
pub mod camera_lab;
pub mod can_client;
pub mod labcmd;
pub mod natlab;
pub mod netlab;
pub mod pipewire;
pub mod proc;
pub mod pwclient;
pub mod relay_lab;
pub mod rtp_video;
pub mod serial_ioctl;
pub mod stall;
pub mod stats;
pub mod tty;
pub mod wav;
pub mod y4m;

pub use proc::{Env, Mount, Server};
pub use tty::{HardwarePty, Tty};
