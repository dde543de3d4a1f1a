//! XoQ mount's second transport: MoQ relays, so one robot reaches many subscribers and browsers
//! while it uploads each stream once.
//!
//! This crate owns what is specific to relays and shared by both ends: where each device lives
//! on a relay (`paths`), the tokens a relay admits sessions with (`token`), the auth server a
//! `moq-relay` asks about every session (`auth`), a session with a relay (`client`) and XoQ
//! messages on MoQ tracks (`tracks`). See docs/ARCHITECTURE.md, "Transports".

#[cfg(feature = "session")]
pub mod auth;
#[cfg(feature = "session")]
pub mod client;
pub mod media;
pub mod paths;
#[cfg(feature = "session")]
pub mod token;
pub mod tracks;

#[cfg(feature = "session")]
pub use client::RelayTarget;
pub use paths::RelayPaths;
#[cfg(feature = "session")]
pub use token::{Grants, TokenError};
