//! Which v4l2loopback device a camera gets, and its stable name.
//!
//! With v4l2loopback 0.13 or later (`/dev/v4l2loopback` exists), the mounter adds a device of
//! its own, labelled after the server and camera ("XoQ robot1 cam0"), with exclusive caps, and
//! removes it on unmount. Debian 12's v4l2loopback (0.12.7) cannot add devices at run time, so
//! the package's modprobe options create a few with labels starting `xoq`
//! (kernel-helpers/modprobe.d/xoq.conf); then a mounter claims the first such device that has
//! no producer (it still offers video output) and that no other mounter holds (an exclusive
//! lock on a file named after it). Either way, `<dir>/<server>-<camera>` links to it.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use xoq_v4l2::control::{Control, LoopbackConfig};
use xoq_v4l2::sys::CAP_VIDEO_OUTPUT;
use xoq_v4l2::Device;

/// How long removal waits for readers to close an added device.
const REMOVE_WAIT: Duration = Duration::from_secs(2);

/// A loopback device held by this mounter until released or dropped.
pub struct Claim {
    pub path: PathBuf,
    hold: Hold,
}

enum Hold {
    /// A pre-created device, locked against other mounters.
    Locked(#[allow(dead_code)] Flock<File>),
    /// A device this mounter added (its number), to remove again.
    Added(u32),
}

impl Claim {
    /// Whether this mounter added the device (and will remove it).
    pub fn added(&self) -> bool {
        matches!(self.hold, Hold::Added(_))
    }

    /// Removes an added device, waiting briefly for programs that still have it open; a
    /// pre-created one is left for the next mounter. Call after closing our own writer.
    pub fn release(&self) {
        let Hold::Added(n) = self.hold else {
            return;
        };
        let ctl = match Control::open() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cannot remove /dev/video{n}: {e}");
                return;
            }
        };
        let start = Instant::now();
        loop {
            match ctl.remove(n) {
                Ok(()) => return,
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return,
                Err(e)
                    if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < REMOVE_WAIT =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    tracing::warn!(
                        "left /dev/video{n} in place: {e} (a program still has it open?); remove \
                         it later with `v4l2loopback-ctl delete {n}`"
                    );
                    return;
                }
            }
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.release();
    }
}

/// The label prefix of the pre-created devices we may use.
pub const LABEL_PREFIX: &str = "xoq";

/// A loopback device for a camera: a new one labelled `label` if the module can add devices,
/// else a free pre-created XoQ device.
pub fn claim_loopback(lock_dir: &Path, label: &str) -> Result<Claim> {
    match add_loopback(label) {
        Ok(c) => return Ok(c),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {} // v4l2loopback 0.12: no control device
        Err(e) => tracing::warn!(
            "cannot add a loopback device through {}: {e}; looking for a pre-created one",
            xoq_v4l2::control::CONTROL_PATH
        ),
    }
    claim_precreated(lock_dir)
}

fn add_loopback(label: &str) -> io::Result<Claim> {
    let ctl = Control::open()?;
    let n = ctl.add(&LoopbackConfig::labelled(label))?;
    tracing::info!("added /dev/video{n} labelled `{label}`");
    Ok(Claim {
        path: PathBuf::from(format!("/dev/video{n}")),
        hold: Hold::Added(n),
    })
}

/// Claims a free pre-created XoQ loopback device.
fn claim_precreated(lock_dir: &Path) -> Result<Claim> {
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
            return Ok(Claim {
                path,
                hold: Hold::Locked(l),
            });
        }
    }
    if seen.is_empty() {
        bail!(
            "no v4l2loopback control device and no device labelled xoq*: install \
             v4l2loopback-dkms and load it with the options in \
             kernel-helpers/modprobe.d/xoq.conf (the xoq-mount package installs them), e.g. `modprobe v4l2loopback devices=4 video_nr=10,11,12,13 \
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
        let path = xoq_link::paths::confined_join(dir, name)?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
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
