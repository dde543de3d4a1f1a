//! The versioned handshake on a connection's control stream.
//!
//! The client speaks first with [`Hello`]; the server answers [`Welcome`] (with the catalog)
//! or a [`Refusal`] and closes the connection.

use crate::catalog::DeviceInfo;
use crate::error::ErrorCode;

/// The client's opening message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub min_version: u16,
    pub max_version: u16,
    /// For the server's logs (e.g. the client's host name): empty or a valid name.
    pub client_name: String,
}

/// The server's answer to an acceptable `Hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The version both sides now speak.
    pub version: u16,
    pub server_name: String,
    /// The devices this client may open, in the server's configured order.
    pub devices: Vec<DeviceInfo>,
}

/// Why a server will not talk to this client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub text: String,
}

/// Picks the highest version both ranges share, or explains why there is none.
pub fn negotiate_version(hello: &Hello, min: u16, max: u16) -> Result<u16, Refusal> {
    let lo = hello.min_version.max(min);
    let hi = hello.max_version.min(max);
    if hello.min_version <= hello.max_version && lo <= hi {
        Ok(hi)
    } else {
        Err(Refusal {
            code: ErrorCode::UnsupportedVersion,
            text: format!(
                "client speaks protocol versions {}..={}, this server speaks {min}..={max}; \
                 upgrade the older side",
                hello.min_version, hello.max_version
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(min: u16, max: u16) -> Hello {
        Hello {
            min_version: min,
            max_version: max,
            client_name: String::new(),
        }
    }

    #[test]
    fn picks_highest_common_version() {
        assert_eq!(negotiate_version(&hello(1, 3), 1, 2), Ok(2));
        assert_eq!(negotiate_version(&hello(2, 2), 1, 5), Ok(2));
    }

    #[test]
    fn refuses_disjoint_ranges_with_both_ranges_named() {
        let r = negotiate_version(&hello(3, 4), 1, 2).unwrap_err();
        assert_eq!(r.code, ErrorCode::UnsupportedVersion);
        assert!(
            r.text.contains("3..=4") && r.text.contains("1..=2"),
            "{}",
            r.text
        );
        assert!(negotiate_version(&hello(2, 1), 1, 2).is_err());
    }
}
