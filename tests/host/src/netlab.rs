//! A network lab for tests on real networks' terms: the server in one network namespace, the
//! mounter in another, and no route between them. The only path is an impairment relay
//! (`xoq_impair::Relay`, in this process, in the root namespace) that applies a named profile
//! (delay, jitter, loss, outages) to every packet, so iroh cannot find a direct path around it.
//!
//! ```text
//! [server ns] 10.201.K.2 --veth-- 10.201.K.1 [root: relay] 10.202.K.1 --veth-- 10.202.K.2 [mounter ns]
//! ```
//! K is claimed by creating the namespace `xoq-sK` (atomic: it fails if another lab holds
//! it), so tests in parallel processes get separate labs. Needs root and `ip` (iproute2).
//! Declare the lab before the processes that run in it, so they stop before it is removed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;

use xoq_impair::{Profile, Relay, RelayConfig};

use crate::proc::Env;

/// The port the server listens on inside its namespace (its own, so always free).
pub const SERVER_PORT: u16 = 7000;

pub struct NetLab {
    k: u8,
    pub relay: Relay,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `ip` and panics with its error: a lab that cannot be built is a broken test machine.
fn must(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("building the network lab: {e}");
    }
}

impl NetLab {
    /// Builds the two namespaces and starts the relay with `profile` and `seed`, forwarding to
    /// the server's address ([`NetLab::server_addr`]).
    pub fn new(profile: Profile, seed: u64) -> NetLab {
        let start = (std::process::id() % 250) as u8;
        let k = (0..250u16)
            .map(|i| ((u16::from(start) + i) % 250 + 1) as u8)
            .find(|k| ip(&["netns", "add", &format!("xoq-s{k}")]).is_ok())
            .expect("no free network lab (250 namespaces xoq-sK exist: remove stale ones with `ip netns del`)");
        // From here the lab owns xoq-sK; this removes what was made if a step panics.
        let cleanup = Cleanup(k);
        let c_ns = format!("xoq-c{k}");
        let _ = ip(&["netns", "del", &c_ns]); // a stale one from a killed run
        must(&["netns", "add", &c_ns]);
        for (side, net, ns) in [("s", 201, format!("xoq-s{k}")), ("c", 202, c_ns)] {
            let outer = format!("xoq{k}{side}");
            let inner = format!("xoq{k}{side}i");
            let _ = ip(&["link", "del", &outer]);
            must(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &ns,
            ]);
            must(&["addr", "add", &format!("10.{net}.{k}.1/24"), "dev", &outer]);
            must(&["link", "set", &outer, "up"]);
            must(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.{net}.{k}.2/24"),
                "dev",
                &inner,
            ]);
            must(&["-n", &ns, "link", "set", &inner, "up"]);
            must(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        let relay = Relay::start(RelayConfig {
            listen: SocketAddr::new(Ipv4Addr::new(10, 202, k, 1).into(), 0),
            upstream: SocketAddr::new(Ipv4Addr::new(10, 201, k, 2).into(), SERVER_PORT),
            upstream_bind: Ipv4Addr::new(10, 201, k, 1).into(),
            profile,
            seed,
        })
        .expect("starting the impairment relay");
        // The lab's own Drop cleans up from here.
        std::mem::forget(cleanup);
        NetLab { k, relay }
    }

    pub fn server_ns(&self) -> String {
        format!("xoq-s{}", self.k)
    }

    pub fn client_ns(&self) -> String {
        format!("xoq-c{}", self.k)
    }

    /// Where the server listens, inside its namespace.
    pub fn server_ip(&self) -> IpAddr {
        Ipv4Addr::new(10, 201, self.k, 2).into()
    }

    /// Runs `env`'s server in the server namespace and `client`'s commands in the mounter's.
    pub fn place(&self, env: &mut Env, client: &str) {
        env.set_netns("server", &self.server_ns());
        env.set_netns(client, &self.client_ns());
    }

    /// `ticket` pointed at the relay: the only address the mounter gets.
    pub fn ticket_via_relay(&self, ticket: &str) -> String {
        let mut t: xoq_link::Ticket = ticket.parse().expect("server ticket");
        t.addrs = vec![self.relay.local_addr()];
        t.to_string()
    }
}

/// Removes lab K's namespaces and links.
struct Cleanup(u8);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let k = self.0;
        for side in ["s", "c"] {
            let _ = ip(&["link", "del", &format!("xoq{k}{side}")]);
            let _ = ip(&["netns", "del", &format!("xoq-{side}{k}")]);
        }
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        drop(Cleanup(self.k));
    }
}
