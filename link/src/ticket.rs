//! Tickets: a server id plus the direct addresses it listens on and the relays it can be reached
//! through, as one copyable string.
//!
//! Format: `xoq1` followed by lowercase base32 (no padding) of: the 32-byte public key, then per
//! address a family byte (4 or 6), the IP bytes, and the port (u16 BE); per relay the byte `R`,
//! the URL's length (one byte) and the URL. A bare id (hex or base32) is also accepted where a
//! ticket is; it then needs `--addr`, `--relay` or address lookup to be dialled.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use iroh::{EndpointAddr, EndpointId, RelayUrl};

const PREFIX: &str = "xoq1";
const MAX_ADDRS: usize = 16;
/// Relays a ticket may name: a server uses one home relay, a few are spares.
pub const MAX_RELAYS: usize = 4;
/// Longest relay URL a ticket carries (its length is one byte).
pub const MAX_RELAY_URL: usize = 255;
/// The byte that starts a relay entry (after the 4 and 6 of addresses).
const RELAY_TAG: u8 = b'R';

/// A server to dial: its id and any direct addresses known for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: EndpointId,
    pub addrs: Vec<SocketAddr>,
    /// Relays the server keeps a connection to (its `relay_urls`).
    pub relays: Vec<RelayUrl>,
}

impl Ticket {
    /// The iroh address to dial.
    pub fn endpoint_addr(&self) -> EndpointAddr {
        let a = self
            .addrs
            .iter()
            .fold(EndpointAddr::new(self.id), |a, s| a.with_ip_addr(*s));
        self.relays
            .iter()
            .fold(a, |a, r| a.with_relay_url(r.clone()))
    }

    /// A ticket with only an id: dialled through `--addr`, `--relay` or address lookup.
    pub fn bare(id: EndpointId) -> Self {
        Ticket {
            id,
            addrs: Vec::new(),
            relays: Vec::new(),
        }
    }
}

/// Parses a relay URL given by a user or a config file: `https://HOST[:PORT]` (or `http://` for
/// a relay in development mode), no longer than a ticket can carry.
pub fn parse_relay_url(s: &str) -> Result<RelayUrl> {
    let url: RelayUrl = s.parse().map_err(|e| {
        anyhow::anyhow!("`{s}` is not a relay URL like https://relay.example.org ({e})")
    })?;
    let scheme = url.scheme();
    if scheme != "https" && scheme != "http" {
        bail!("relay URL `{s}` must start with https:// (or http:// for a relay run with --dev)");
    }
    if url.host().is_none() {
        bail!("relay URL `{s}` names no host");
    }
    if url.to_string().len() > MAX_RELAY_URL {
        bail!("relay URL `{s}` is longer than {MAX_RELAY_URL} bytes");
    }
    Ok(url)
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
        for r in self.relays.iter().take(MAX_RELAYS) {
            let url = r.to_string();
            // Longer URLs are refused by `parse_relay_url`; one that slipped past is left out.
            let Ok(len) = u8::try_from(url.len()) else {
                continue;
            };
            b.push(RELAY_TAG);
            b.push(len);
            b.extend_from_slice(url.as_bytes());
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
            return Ok(Ticket::bare(id));
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
        let mut relays = Vec::new();
        while !rest.is_empty() {
            if rest[0] == RELAY_TAG {
                if relays.len() == MAX_RELAYS {
                    bail!("ticket holds more than {MAX_RELAYS} relays");
                }
                let len = usize::from(*rest.get(1).context("ticket has a truncated relay")?);
                let url = rest.get(2..2 + len).context(
                    "ticket has a truncated relay; copy it again from `xoq-server ticket`",
                )?;
                let url =
                    std::str::from_utf8(url).context("ticket has a relay URL that is not text")?;
                relays.push(parse_relay_url(url).context("ticket has a malformed relay")?);
                rest = &rest[2 + len..];
                continue;
            }
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
        Ok(Ticket { id, addrs, relays })
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
            relays: vec![
                parse_relay_url("https://relay.example.org").unwrap(),
                parse_relay_url("http://10.0.0.1:3340").unwrap(),
            ],
        };
        let s = t.to_string();
        assert!(s.starts_with("xoq1"));
        assert_eq!(s.parse::<Ticket>().unwrap(), t);
        let bare: Ticket = id.to_string().parse().unwrap();
        assert_eq!(bare, Ticket::bare(id));
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
            relays: vec![],
        }
        .to_string();
        t.truncate(t.len() - 2);
        assert!(t.parse::<Ticket>().is_err());
    }

    #[test]
    fn refuses_truncated_or_bad_relays() {
        let id = iroh::SecretKey::generate().public();
        let encode = |extra: &[u8]| {
            let mut b = id.as_bytes().to_vec();
            b.extend_from_slice(extra);
            format!(
                "xoq1{}",
                data_encoding::BASE32_NOPAD.encode(&b).to_lowercase()
            )
        };
        // Length beyond the end, a missing length, a URL that is not one, a bad scheme.
        assert!(encode(b"R\x20https://a").parse::<Ticket>().is_err());
        assert!(encode(b"R").parse::<Ticket>().is_err());
        assert!(encode(b"R\x03\xff\xfe\xfd").parse::<Ticket>().is_err());
        assert!(encode(b"R\x0cftp://a.b/cd").parse::<Ticket>().is_err());
        let ok = encode(b"R\x11https://relay.lan");
        let t: Ticket = ok.parse().unwrap();
        assert_eq!(t.relays.len(), 1);
        assert_eq!(t.endpoint_addr().relay_urls().count(), 1);
        // At most MAX_RELAYS.
        let five: Vec<u8> = (0..5)
            .flat_map(|_| b"R\x11https://relay.lan".to_vec())
            .collect();
        assert!(encode(&five).parse::<Ticket>().is_err());
        assert!(parse_relay_url(&format!("https://{}.org", "a".repeat(300))).is_err());
    }

    proptest::proptest! {
        /// Whatever follows the prefix, parsing returns (a ticket or an error) without panicking,
        /// and what parses prints back to a ticket that parses to the same.
        #[test]
        fn any_bytes_parse_without_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let id = iroh::SecretKey::generate().public();
            let mut b = id.as_bytes().to_vec();
            b.extend_from_slice(&body);
            let text = format!("xoq1{}", data_encoding::BASE32_NOPAD.encode(&b).to_lowercase());
            if let Ok(t) = text.parse::<Ticket>() {
                proptest::prop_assert_eq!(t.to_string().parse::<Ticket>().unwrap(), t);
            }
        }
    }
}
