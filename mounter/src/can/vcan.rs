//! The local end of a mounted CAN bus: a `vcan-xoq<n>` interface created over netlink (no
//! shelling out to `ip`), MTU 72 when the remote bus is FD, deleted on unmount.

use anyhow::{bail, Result};
use socketcan::nl::{CanInterface, Mtu, NlError};

/// Prefix of the interface names we create.
pub const PREFIX: &str = "vcan-xoq";

/// A vcan interface we created; `remove` deletes it.
pub struct Vcan {
    pub name: String,
    index: u32,
}

fn errno(e: &socketcan::Error) -> Option<i32> {
    match e {
        socketcan::Error::Nl(NlError::Netlink { errno }) => Some(*errno),
        socketcan::Error::Io(io) => io.raw_os_error(),
        _ => None,
    }
}

/// Bit of CAP_NET_ADMIN in the capability sets (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;

/// Whether this process may create network interfaces (CapEff in /proc/self/status).
fn has_cap_net_admin() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return true;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_none_or(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

fn missing_cap(name: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot create {name}: creating network interfaces needs CAP_NET_ADMIN; run xoq-mount \
         as root (or the xoq-mount@ service), or grant it with \
         `sudo setcap cap_net_admin+ep $(command -v xoq-mount)`"
    )
}

fn explain(name: &str, e: &socketcan::Error) -> anyhow::Error {
    let no_vcan = || {
        anyhow::anyhow!(
            "cannot create {name}: this kernel has no vcan support; run `sudo modprobe vcan` \
             (the xoq-mount package loads it at boot via /usr/lib/modules-load.d/xoq.conf)"
        )
    };
    match errno(e) {
        Some(libc::EPERM) | Some(libc::EACCES) => missing_cap(name),
        Some(libc::EOPNOTSUPP) | Some(libc::ENODEV) | Some(libc::ENOENT) => no_vcan(),
        // Without the module the kernel may not even answer the request.
        _ if !std::path::Path::new("/sys/module/vcan").exists() => no_vcan(),
        _ => anyhow::anyhow!("cannot create {name}: {e}"),
    }
}

impl Vcan {
    /// Creates and brings up the first free `vcan-xoq<n>` from `first`.
    pub fn create(first: u32, fd: bool) -> Result<Vcan> {
        if !has_cap_net_admin() {
            return Err(missing_cap(&format!("{PREFIX}{first}")));
        }
        for n in first..first + 64 {
            let name = format!("{PREFIX}{n}");
            if std::path::Path::new("/sys/class/net").join(&name).exists() {
                continue;
            }
            let iface = match CanInterface::create_vcan(&name, None) {
                Ok(i) => i,
                Err(e) if errno(&e) == Some(libc::EEXIST) => continue,
                Err(e) => return Err(explain(&name, &e)),
            };
            let index = match nix::net::if_::if_nametoindex(name.as_str()) {
                Ok(i) => i,
                Err(e) => bail!("created {name} but cannot find its index: {e}"),
            };
            let v = Vcan {
                name: name.clone(),
                index,
            };
            if fd {
                if let Err(e) = iface.set_mtu(Mtu::Fd) {
                    v.remove();
                    bail!("cannot set MTU 72 (CAN FD) on {name}: {e}");
                }
            }
            if let Err(e) = iface.bring_up() {
                v.remove();
                return Err(explain(&name, &e));
            }
            return Ok(v);
        }
        bail!("no free {PREFIX}N interface name")
    }

    /// Deletes the interface (only the one we created: by its index).
    pub fn remove(&self) {
        if let Err((_, e)) = CanInterface::open_iface(self.index).delete() {
            tracing::warn!(interface = %self.name, "cannot delete: {e}");
        }
    }
}
