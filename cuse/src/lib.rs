//! A serial tty served through CUSE (character devices in user space), without any I/O.
//!
//! - [`abi`]: the `/dev/cuse` protocol: parsing the kernel's requests, encoding our replies.
//! - [`termios`]: the kernel's `termios` / `termios2` byte layouts and their meaning as line
//!   settings.
//! - [`ioctl`]: the tty ioctls we answer, with the size of what each reads and writes.
//! - [`tty`]: the device's behaviour: reads, writes, poll, modem lines, breaks, drains, as a
//!   state machine fed with requests and remote messages, producing replies and messages for
//!   the remote port.
//!
//! The mounter owns the file descriptor and the link; everything here is testable on a host
//! that has no `/dev/cuse`.
#![forbid(unsafe_code)]

pub mod abi;
pub mod ioctl;
pub mod termios;
pub mod tty;

pub use abi::{parse_request, AbiError, Op, Request};
pub use tty::{Tty, TtyConfig};
