//! An impaired IP link between two network namespaces, through a TUN device in each: every
//! packet one side sends to the other (QUIC, the TCP of a socat baseline, anything) is read
//! by this process from one device, passed through its direction's model and written into
//! the other device when the model says. The userspace counterpart of `netem` on a veth pair,
//! for a host kernel without `netem`.
//!
//! The devices are created here, attached to this process, in the caller's namespace; the
//! caller then moves each into its namespace (`ip link set DEV netns NS`) and gives it an
//! address. The descriptors keep working after the move, and the devices vanish with them.

#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::model::{counters_json, Counters};
use crate::profile::Profile;
use crate::schedule::{Dir, Impaired, Out};

/// `struct ifreq` as TUNSETIFF reads it: a name and the flags, padded to the kernel's 40 bytes.
#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Creates TUN device `name` (IP packets, no packet-info header) attached to the returned file.
fn create_tun(name: &str) -> Result<File> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', '\0', ' ']) {
        bail!("bad interface name {name:?}");
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .context("opening /dev/net/tun (the kernel needs CONFIG_TUN, and we need root)")?;
    let mut req = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads (and may write back) one `struct ifreq`; `req` is a live,
    // exclusively borrowed, repr(C) value of that layout and size (name, flags, padding to
    // 40 bytes), and the descriptor is an open /dev/net/tun.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).context(format!("TUNSETIFF {name}"));
    }
    Ok(file)
}

/// A running link between a server-side and a client-side TUN device; stopped (and the devices
/// gone) when dropped.
pub struct TunLink {
    link: Arc<Impaired>,
    threads: Vec<JoinHandle<()>>,
}

/// Reads packets from `from` and submits them in direction `dir` towards `to`.
fn carry(link: &Impaired, from: &File, dir: Dir, to: Out) {
    let mut buf = vec![0u8; 65_536];
    let mut reader = from;
    while !link.scheduler.stopped() {
        let mut fds = [PollFd::new(from.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(n) if n > 0 => {}
            _ => continue,
        }
        if let Ok(n) = reader.read(&mut buf) {
            link.submit(dir, &to, &buf[..n]);
        }
    }
}

impl TunLink {
    /// Creates TUN devices `server_if` and `client_if` in the current namespace and carries
    /// packets between them under `profile` (client -> server is `up`).
    pub fn start(
        server_if: &str,
        client_if: &str,
        profile: &Profile,
        seed: u64,
    ) -> Result<TunLink> {
        let server = Arc::new(create_tun(server_if)?);
        let client = Arc::new(create_tun(client_if)?);
        let link = Arc::new(Impaired::new(profile, seed));
        let mut threads = Vec::new();
        for (from, dir, to) in [
            (client.clone(), Dir::Up, server.clone()),
            (server, Dir::Down, client),
        ] {
            let l = link.clone();
            threads.push(std::thread::spawn(move || {
                carry(&l, &from, dir, Out::Tun(to))
            }));
        }
        let l = link.clone();
        threads.push(std::thread::spawn(move || l.scheduler.run()));
        Ok(TunLink { link, threads })
    }

    /// Nothing crosses either way from now for `length`.
    pub fn blackhole(&self, length: Duration) {
        self.link.blackhole(length);
    }

    /// The next scheduled outage of the profile that has not ended yet: (start, end).
    pub fn next_outage(&self) -> Option<(std::time::Instant, std::time::Instant)> {
        self.link.next_outage(std::time::Instant::now())
    }

    /// (client -> server, server -> client) counters so far.
    pub fn counters(&self) -> (Counters, Counters) {
        self.link.counters()
    }

    /// The counters as one JSON object.
    pub fn counters_json(&self) -> serde_json::Value {
        let (up, down) = self.counters();
        counters_json(up, down)
    }
}

impl Drop for TunLink {
    fn drop(&mut self) {
        self.link.scheduler.stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
