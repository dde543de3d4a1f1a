//! Tickets: a server id plus the direct addresses it listens on, as one copyable string.
//!
//! Format: `xoq1` followed by lowercase base32 (no padding) of: the 32-byte public key, then per
//! address a family byte (4 or 6), the IP bytes, and the port (u16 BE). A bare id (hex or base32)
//! is also accepted where a ticket is; it then needs `--addr` or address lookup to be dialled.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use iroh::{EndpointAddr, EndpointId};

const PREFIX: &str = "xoq1";
const MAX_ADDRS: usize = 16;

/// A server to dial: its id and any direct addresses known for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: EndpointId,
    pub addrs: Vec<SocketAddr>,
}

impl Ticket {
    /// The iroh address to dial.
    pub fn endpoint_addr(&self) -> EndpointAddr {
        self.addrs
            .iter()
            .fold(EndpointAddr::new(self.id), |a, s| a.with_ip_addr(*s))
    }
}

impl std::fmt::Display for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut b = self.id.as_bytes().to_vec();
        for a in self.addrs.iter().take(MAX_ADDRS) {
            match a.ip() {
                IpAddr::V4(ip) => {
                    b.push(4);
                    b.extend_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    b.push(6);
                    b.extend_from_slice(&ip.octets());
                }
            }
            b.extend_from_slice(&a.port().to_be_bytes());
        }
        write!(
            f,
            "{PREFIX}{}",
            data_encoding::BASE32_NOPAD.encode(&b).to_lowercase()
        )
    }
}

impl FromStr for Ticket {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let Some(body) = s.strip_prefix(PREFIX) else {
            let id = EndpointId::from_str(s).map_err(|e| {
                anyhow::anyhow!("`{s}` is neither a ticket (xoq1...) nor a server id ({e})")
            })?;
            return Ok(Ticket {
                id,
                addrs: Vec::new(),
            });
        };
        let bytes = data_encoding::BASE32_NOPAD
            .decode(body.to_uppercase().as_bytes())
            .context("ticket is not valid base32; copy it again from `xoq-server ticket`")?;
        if bytes.len() < 32 {
            bail!("ticket is too short to hold a server id");
        }
        let (key, mut rest) = bytes.split_at(32);
        let key: [u8; 32] = key.try_into().context("ticket id")?;
        let id = EndpointId::from_bytes(&key).context("ticket holds an invalid server id")?;
        let mut addrs = Vec::new();
        while !rest.is_empty() {
            if addrs.len() == MAX_ADDRS {
                bail!("ticket holds more than {MAX_ADDRS} addresses");
            }
            let (ip, len): (IpAddr, usize) = match rest[0] {
                4 if rest.len() >= 7 => {
                    let o: [u8; 4] = rest[1..5].try_into().context("ipv4")?;
                    (Ipv4Addr::from(o).into(), 5)
                }
                6 if rest.len() >= 19 => {
                    let o: [u8; 16] = rest[1..17].try_into().context("ipv6")?;
                    (Ipv6Addr::from(o).into(), 17)
                }
                _ => {
                    bail!("ticket has a malformed address; copy it again from `xoq-server ticket`")
                }
            };
            let port = u16::from_be_bytes([rest[len], rest[len + 1]]);
            addrs.push(SocketAddr::new(ip, port));
            rest = &rest[len + 2..];
        }
        Ok(Ticket { id, addrs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_v4_and_v6_and_accepts_bare_ids() {
        let id = iroh::SecretKey::generate().public();
        let t = Ticket {
            id,
            addrs: vec![
                "127.0.0.1:4700".parse().unwrap(),
                "[::1]:4701".parse().unwrap(),
            ],
        };
        let s = t.to_string();
        assert!(s.starts_with("xoq1"));
        assert_eq!(s.parse::<Ticket>().unwrap(), t);
        let bare: Ticket = id.to_string().parse().unwrap();
        assert_eq!(bare, Ticket { id, addrs: vec![] });
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        let e = "xoq1!!!".parse::<Ticket>().unwrap_err().to_string();
        assert!(e.contains("xoq-server ticket"), "{e}");
        assert!("hello".parse::<Ticket>().is_err());
        let id = iroh::SecretKey::generate().public();
        let mut t = Ticket {
            id,
            addrs: vec!["127.0.0.1:1".parse().unwrap()],
        }
        .to_string();
        t.truncate(t.len() - 2);
        assert!(t.parse::<Ticket>().is_err());
    }
}
