//! Where a robot's devices live on a relay: broadcast paths built only from checked names.
//!
//! A server publishes each device as `<prefix>/<server>/<device>`; a client that may write
//! publishes its commands as `<prefix>/<server>/<device>/w/<client>`, and the server answers it
//! (progress, errors, clock comparisons) in `<prefix>/<server>/<device>/r/<client>`. Every segment is a wire
//! name (`[A-Za-z0-9][A-Za-z0-9._-]{0,63}`), so a path from a relay's announcement is parsed
//! back only when it has exactly this shape.

use thiserror::Error;
use xoq_wire::name::is_valid_name;

/// The segment between a device and a writer's name in a command broadcast's path.
pub const WRITER_SEGMENT: &str = "w";
/// The segment between a device and a writer's name in the path of the server's replies.
pub const REPLY_SEGMENT: &str = "r";
/// The most segments a prefix may have.
pub const MAX_PREFIX_SEGMENTS: usize = 8;

/// A path that is not one of ours.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PathError {
    #[error("`{0}` is not a valid name on a relay path: use letters, digits, `.`, `_` and `-` (at most 64, starting with a letter or digit)")]
    BadSegment(String),
    #[error("the relay path prefix `{0}` has more than {MAX_PREFIX_SEGMENTS} segments")]
    PrefixTooLong(String),
}

/// The paths of one server's devices on a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayPaths {
    /// The checked prefix, its segments joined by `/` (may be empty).
    prefix: String,
    server: String,
}

fn checked(segment: &str) -> Result<&str, PathError> {
    if is_valid_name(segment) {
        Ok(segment)
    } else {
        Err(PathError::BadSegment(segment.to_string()))
    }
}

impl RelayPaths {
    /// The paths under `prefix` (segments separated by `/`, leading and trailing `/` ignored)
    /// for the server named `server`.
    pub fn new(prefix: &str, server: &str) -> Result<Self, PathError> {
        Ok(Self {
            prefix: checked_prefix(prefix)?,
            server: checked(server)?.to_string(),
        })
    }

    /// `<prefix>/<server>`: the root of this server's broadcasts, and of its tokens.
    pub fn root(&self) -> String {
        if self.prefix.is_empty() {
            self.server.clone()
        } else {
            format!("{}/{}", self.prefix, self.server)
        }
    }

    /// The server's name.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// `<root>/<device>`: the broadcast the server publishes for `device`.
    pub fn device(&self, device: &str) -> Result<String, PathError> {
        Ok(format!("{}/{}", self.root(), checked(device)?))
    }

    /// `<root>/<device>/w/<client>`: where the client `client` publishes its commands.
    pub fn writer(&self, device: &str, client: &str) -> Result<String, PathError> {
        Ok(format!(
            "{}/{WRITER_SEGMENT}/{}",
            self.device(device)?,
            checked(client)?
        ))
    }

    /// `<root>/<device>/r/<client>`: where the server answers the writer `client`.
    pub fn reply(&self, device: &str, client: &str) -> Result<String, PathError> {
        Ok(format!(
            "{}/{REPLY_SEGMENT}/{}",
            self.device(device)?,
            checked(client)?
        ))
    }

    /// What a broadcast path under this root names, if it is one of ours: `None` for any other
    /// shape, or a segment that is not a wire name.
    pub fn parse(&self, path: &str) -> Option<RelayPath> {
        let rest = path.trim_matches('/').strip_prefix(&self.root())?;
        RelayPath::parse_relative(rest.strip_prefix('/')?)
    }
}

/// A prefix's segments, each checked (leading and trailing `/` ignored), joined by `/`.
pub fn checked_prefix(prefix: &str) -> Result<String, PathError> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let segments: Vec<&str> = trimmed.split('/').map(checked).collect::<Result<_, _>>()?;
    if segments.len() > MAX_PREFIX_SEGMENTS {
        return Err(PathError::PrefixTooLong(prefix.to_string()));
    }
    Ok(segments.join("/"))
}

/// A broadcast of one server, as parsed from its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayPath {
    Device(String),
    Writer { device: String, client: String },
}

impl RelayPath {
    /// What a path relative to a server's root names (`dev` or `dev/w/<client>`), if it is one
    /// of ours: `None` for any other shape, or a segment that is not a wire name.
    pub fn parse_relative(path: &str) -> Option<RelayPath> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match parts.as_slice() {
            [device] if is_valid_name(device) => Some(RelayPath::Device(device.to_string())),
            [device, WRITER_SEGMENT, client] if is_valid_name(device) && is_valid_name(client) => {
                Some(RelayPath::Writer {
                    device: device.to_string(),
                    client: client.to_string(),
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_built_from_checked_segments() {
        let p = RelayPaths::new("/fleet/lab/", "robot1").expect("valid");
        assert_eq!(p.root(), "fleet/lab/robot1");
        assert_eq!(p.device("can0").expect("valid"), "fleet/lab/robot1/can0");
        assert_eq!(
            p.writer("can0", "op-3").expect("valid"),
            "fleet/lab/robot1/can0/w/op-3"
        );
        assert_eq!(
            p.reply("can0", "op-3").expect("valid"),
            "fleet/lab/robot1/can0/r/op-3"
        );
        assert!(p.reply("can0", "..").is_err());
        assert_eq!(RelayPaths::new("", "r").expect("valid").root(), "r");
        for bad in ["../etc", "a//b", "a/.hidden", "a b"] {
            assert!(RelayPaths::new(bad, "r").is_err(), "{bad}");
        }
        assert!(RelayPaths::new("x", "..").is_err());
        assert!(p.device("../../x").is_err());
        assert!(p.writer("can0", "a/b").is_err());
        assert!(RelayPaths::new(&["a"; 9].join("/"), "r").is_err());
    }

    #[test]
    fn only_our_shapes_parse() {
        let p = RelayPaths::new("fleet", "robot1").expect("valid");
        assert_eq!(
            p.parse("fleet/robot1/cam0"),
            Some(RelayPath::Device("cam0".into()))
        );
        assert_eq!(
            p.parse("/fleet/robot1/can0/w/op/"),
            Some(RelayPath::Writer {
                device: "can0".into(),
                client: "op".into()
            })
        );
        for other in [
            "fleet/robot1",
            "fleet/robot10/cam0",
            "fleet/robot1/cam0/x/op",
            "fleet/robot1/can0/w/op/more",
            "fleet/robot1/../cam0",
            "other/robot1/cam0",
        ] {
            assert_eq!(p.parse(other), None, "{other}");
        }
    }
}
