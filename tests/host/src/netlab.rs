//! A network lab for tests on real networks' terms: the server in one network namespace, the
//! mounter in another, joined only by an impaired link (`xoq_impair::TunLink`: a TUN device in
//! each namespace, carried by this process under a named profile). Every packet between them,
//! QUIC or a baseline's TCP, crosses the profile's delay, jitter, loss and outages; there is no
//! other path for iroh to find.
//!
//! ```text
//! [xoq-sK] 10.210.K.1 (tun xoqKs) <== impaired link, this process ==> (tun xoqKc) 10.210.K.2 [xoq-cK]
//! ```
//! K is claimed by creating namespace `xoq-sK` (atomic: it fails if another lab holds it), so
//! tests in parallel processes get separate labs. Needs root, `/dev/net/tun` and `ip`
//! (iproute2). Declare the lab before the processes that run in it, so they stop first.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

use xoq_impair::{Profile, TunLink};

use crate::labcmd::{claim, must, run};
use crate::proc::Env;

/// The port the server listens on inside its namespace (its own, so always free).
pub const SERVER_PORT: u16 = 7000;

pub struct NetLab {
    k: u8,
    pub link: TunLink,
}

impl NetLab {
    /// Builds the two namespaces and the link between them, impaired by `profile` from `seed`.
    pub fn new(profile: Profile, seed: u64) -> NetLab {
        let k = claim("xoq-s");
        // From here the lab owns xoq-sK; this removes what was made if a step panics.
        let cleanup = Cleanup(k);
        let _ = run("ip", &["netns", "del", &format!("xoq-c{k}")]); // a stale one from a killed run
        must("ip", &["netns", "add", &format!("xoq-c{k}")]);
        let link = TunLink::start(&format!("xoq{k}s"), &format!("xoq{k}c"), &profile, seed)
            .unwrap_or_else(|e| panic!("building the network lab: {e:#}"));
        for (side, host) in [("s", 1), ("c", 2)] {
            let (ns, dev) = (format!("xoq-{side}{k}"), format!("xoq{k}{side}"));
            must("ip", &["link", "set", &dev, "netns", &ns]);
            must(
                "ip",
                &[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("10.210.{k}.{host}/24"),
                    "dev",
                    &dev,
                ],
            );
            must("ip", &["-n", &ns, "link", "set", &dev, "up"]);
            must("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        }
        // The lab's own Drop cleans up from here.
        std::mem::forget(cleanup);
        NetLab { k, link }
    }

    pub fn server_ns(&self) -> String {
        format!("xoq-s{}", self.k)
    }

    pub fn client_ns(&self) -> String {
        format!("xoq-c{}", self.k)
    }

    /// The server side's address.
    pub fn server_ip(&self) -> IpAddr {
        Ipv4Addr::new(10, 210, self.k, 1).into()
    }

    /// The client side's address.
    pub fn client_ip(&self) -> IpAddr {
        Ipv4Addr::new(10, 210, self.k, 2).into()
    }

    /// Runs `env`'s server in the server namespace and `client`'s commands in the mounter's.
    pub fn place(&self, env: &mut Env, client: &str) {
        env.set_netns("server", &self.server_ns());
        env.set_netns(client, &self.client_ns());
    }

    /// Runs `f` on a thread that has joined network namespace `ns`: every socket it (and any
    /// thread it starts, such as a runtime's) opens lives there. For in-process clients.
    pub fn run_in<R: Send>(ns: &str, f: impl FnOnce() -> R + Send) -> R {
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(format!("/run/netns/{ns}"))
                    .unwrap_or_else(|e| panic!("network namespace {ns}: {e}"));
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("joining network namespace {ns}: {e}"));
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// `cmd` run inside namespace `ns` (`ip netns exec`).
    pub fn in_ns(ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }
}

/// Removes lab K's namespaces (the TUN devices go with the link's descriptors).
struct Cleanup(u8);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for side in ["s", "c"] {
            let _ = run("ip", &["netns", "del", &format!("xoq-{side}{}", self.0)]);
        }
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        drop(Cleanup(self.k));
    }
}
