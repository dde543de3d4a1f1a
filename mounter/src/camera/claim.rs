//! Which v4l2loopback device a camera gets, and its stable name.
//!
//! Debian 12's v4l2loopback (0.12.7) cannot add devices at run time, so the package's modprobe
//! options create a few with labels starting `xoq` (kernel-helpers/modprobe.d/xoq.conf). A
//! mounter claims the first such device that has no producer (it still offers video output)
//! and that no other mounter holds (an exclusive lock on a file named after it), and links
//! `<dir>/<server>-<camera>` to it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use xoq_v4l2::sys::CAP_VIDEO_OUTPUT;
use xoq_v4l2::Device;

/// A loopback device held by this mounter until dropped.
pub struct Claim {
    pub path: PathBuf,
    _lock: Flock<File>,
}

/// The label prefix of the devices we may use.
pub const LABEL_PREFIX: &str = "xoq";

/// Claims a free XoQ loopback device.
pub fn claim_loopback(lock_dir: &Path) -> Result<Claim> {
    let mut nodes: Vec<(u32, String)> = std::fs::read_dir("/sys/class/video4linux")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let n = name.strip_prefix("video")?.parse().ok()?;
                    let label = std::fs::read_to_string(e.path().join("name")).ok()?;
                    Some((n, label.trim().to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    nodes.sort();
    std::fs::create_dir_all(lock_dir)
        .with_context(|| format!("cannot create {}", lock_dir.display()))?;
    let mut seen = Vec::new();
    for (n, label) in nodes {
        if !label.to_lowercase().starts_with(LABEL_PREFIX) {
            continue;
        }
        let path = PathBuf::from(format!("/dev/video{n}"));
        seen.push(format!("{} ({label})", path.display()));
        let Ok(dev) = Device::open(&path) else {
            continue;
        };
        match dev.query() {
            Ok((driver, _, caps)) if driver == "v4l2 loopback" && caps & CAP_VIDEO_OUTPUT != 0 => {}
            _ => continue, // not a loopback device, or another program produces for it
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_dir.join(format!("video{n}.lock")))?;
        if let Ok(l) = Flock::lock(lock, FlockArg::LockExclusiveNonblock) {
            return Ok(Claim { path, _lock: l });
        }
    }
    if seen.is_empty() {
        bail!(
            "no v4l2loopback device labelled xoq*: install v4l2loopback-dkms and load it with \
             the options in kernel-helpers/modprobe.d/xoq.conf (the xoq-mount package installs \
             them), e.g. `modprobe v4l2loopback devices=4 video_nr=10,11,12,13 \
             card_label=xoq0,xoq1,xoq2,xoq3 exclusive_caps=1,1,1,1`"
        )
    }
    bail!(
        "every XoQ loopback device is in use ({}); load v4l2loopback with more devices",
        seen.join(", ")
    )
}

/// A symlink `<dir>/<name>` to a device, removed when dropped if it still points there.
pub struct NamedLink {
    pub path: PathBuf,
    target: PathBuf,
}

impl NamedLink {
    pub fn create(dir: &Path, name: &str, target: &Path) -> Result<NamedLink> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(name);
        if let Ok(old) = std::fs::read_link(&path) {
            if !old.exists() || old == target {
                let _ = std::fs::remove_file(&path);
            } else {
                bail!(
                    "{} already links to {} (another mounter of the same camera?)",
                    path.display(),
                    old.display()
                );
            }
        }
        std::os::unix::fs::symlink(target, &path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(NamedLink {
            path,
            target: target.to_path_buf(),
        })
    }

    pub fn remove(&self) {
        if std::fs::read_link(&self.path).is_ok_and(|t| t == self.target) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
