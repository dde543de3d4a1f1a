//! `xoq-sys`: the few system calls the workspace's Linux glue makes that have no safe wrapper
//! in tokio, nix or socketcan. Each `unsafe` block of that glue lives here, small and with its
//! SAFETY note, behind a safe function, so the crates above it (`xoq-link` among them) can
//! `#![forbid(unsafe_code)]`. (`xoq-v4l2` keeps its own ioctls: they are its whole job.)

pub mod canrecv;
pub mod reactor;
pub mod realtime;
