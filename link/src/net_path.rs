//! Which network path a connection is using: direct (an address reached, or a hole punched
//! through NAT) or through a relay, for the mounter's status and both ends' logs; and what that
//! path's congestion window carries, for the camera's rate control.

use iroh::endpoint::Connection;
use iroh::TransportAddr;

/// The path the connection sends on now, as shown to a user: `direct 203.0.113.7:4700`,
/// `relay https://relay.example.org/`, or `none` (no path selected yet).
pub fn selected_path(conn: &Connection) -> String {
    let paths = conn.paths();
    let selected = paths.iter().find(|p| p.is_selected());
    selected.map_or_else(|| "none".to_string(), |p| describe(p.remote_addr()))
}

/// The selected path's congestion window (bytes) and smoothed round trip, for a sender that
/// keeps under what the window carries (`None` before a path is selected or while its round
/// trip is unknown).
pub fn congestion_window(conn: &Connection) -> Option<(u64, std::time::Duration)> {
    let paths = conn.paths();
    let stats = paths.iter().find(|p| p.is_selected())?.stats();
    (!stats.rtt.is_zero()).then_some((stats.cwnd, stats.rtt))
}

/// How a path's remote address is shown.
pub fn describe(addr: &TransportAddr) -> String {
    match addr {
        TransportAddr::Ip(a) => format!("direct {a}"),
        TransportAddr::Relay(url) => format!("relay {url}"),
        other => format!("other {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_direct_and_relay_paths() {
        let ip = TransportAddr::Ip("203.0.113.7:4700".parse().unwrap());
        assert_eq!(describe(&ip), "direct 203.0.113.7:4700");
        let relay = TransportAddr::Relay("https://relay.example.org".parse().unwrap());
        assert_eq!(describe(&relay), "relay https://relay.example.org/");
    }
}
