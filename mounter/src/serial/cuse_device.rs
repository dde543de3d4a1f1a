//! A remote serial port as a CUSE character device `/dev/ttyXOQ<N>`: we open `/dev/cuse`,
//! register the device, and for the mount's whole life answer every request the kernel passes
//! us (open, read, write, poll, ioctl, ...) with the tty state machine of `xoq_cuse`, whose
//! messages for the remote port go to the bridge of the current connection.
//!
//! Unlike a PTY, every termios and modem-line call reaches us, so programs get a real serial
//! port: baud changes, DTR/RTS, breaks, `tcdrain`, `TIOCMIWAIT`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use xoq_cuse::abi::{self, Op, REQUEST_OVERHEAD};
use xoq_cuse::tty::MAX_IO;
use xoq_cuse::{Tty, TtyConfig};
use xoq_wire::{LineSettings, Message, ModemStatus};

use crate::status::DeviceStatus;

/// Where the kernel's CUSE device is.
const CUSE_PATH: &str = "/dev/cuse";
/// Messages queued toward the link beyond the tty's own transmit queue.
pub const UPLINK_DEPTH: usize = 8;

/// What the bridge of a connection tells the device.
pub enum Event {
    /// A device stream is open: messages for the remote go to `uplink` until it closes.
    Connected {
        uplink: mpsc::Sender<Message>,
        line: LineSettings,
        modem: ModemStatus,
        /// The stream is read-write: its port reports what it took (`TxProgress`).
        writer: bool,
    },
    /// A message from the remote port.
    Remote(Message),
}

/// An opened `/dev/cuse`, or why there is none.
pub fn open_cuse() -> std::result::Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(CUSE_PATH)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!(
                "{CUSE_PATH} does not exist (load the cuse module: `modprobe cuse`, or install \
                 the xoq-mount package, which loads it at boot)"
            ),
            io::ErrorKind::PermissionDenied => {
                format!("no permission to open {CUSE_PATH} (CUSE devices need root)")
            }
            _ => format!("cannot open {CUSE_PATH}: {e}"),
        })
}

/// The first `ttyXOQ<N>` (N >= `first`) free in `/dev` and in `link_dir`.
pub fn free_name(link_dir: &Path, first: u32) -> Result<String> {
    for n in first..first + 256 {
        let name = format!("{}{n}", crate::naming::SERIAL_PREFIX);
        let taken = |p: PathBuf| std::fs::symlink_metadata(p).is_ok();
        if !taken(Path::new("/dev").join(&name))
            && !taken(Path::new("/sys/class/cuse").join(&name))
            && !taken(link_dir.join(&name))
        {
            return Ok(name);
        }
    }
    bail!("no free ttyXOQ<N> name in /dev")
}

/// Registers the device `name` on an opened `/dev/cuse`: reads the kernel's `CUSE_INIT` and
/// answers it. Returns the device's path once the kernel has created it.
pub fn register(cuse: &mut File, name: &str) -> Result<PathBuf> {
    let mut buf = vec![0u8; MAX_IO as usize + REQUEST_OVERHEAD + 4096];
    let n = cuse
        .read(&mut buf)
        .context("cannot read CUSE_INIT from /dev/cuse")?;
    let req = abi::parse_request(&buf[..n]).context("malformed CUSE_INIT from the kernel")?;
    let Op::CuseInit { major, minor, .. } = req.op else {
        bail!(
            "the kernel's first CUSE request was {:?}, not CUSE_INIT",
            req.op
        );
    };
    if major != abi::KERNEL_VERSION || minor < abi::MIN_MINOR {
        bail!(
            "this kernel speaks FUSE {major}.{minor}; CUSE needs 7.{}",
            abi::MIN_MINOR
        );
    }
    cuse.write_all(&abi::cuse_init_reply(req.unique, minor, name, MAX_IO))
        .context("the kernel refused our CUSE_INIT reply")?;
    let path = Path::new("/dev").join(name);
    // The kernel creates the node (devtmpfs) while handling the reply; allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    while std::fs::symlink_metadata(&path).is_err() {
        if Instant::now() > deadline {
            bail!(
                "CUSE accepted {name} but {} did not appear (is devtmpfs mounted on /dev?)",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    give_to_dialout(&path);
    Ok(path)
}

/// What udev's rule (udev/60-xoq.rules) would do, for systems where it has not run yet.
fn give_to_dialout(path: &Path) {
    let Ok(Some(group)) = nix::unistd::Group::from_name("dialout") else {
        return;
    };
    if let Err(e) = nix::unistd::chown(path, None, Some(group.gid)) {
        tracing::debug!("cannot give {} to group dialout: {e}", path.display());
    }
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)) {
        tracing::debug!("cannot set mode 0660 on {}: {e}", path.display());
    }
}

/// Serves the registered device until `/dev/cuse` fails or `events` closes.
pub async fn serve(
    cuse: File,
    cfg: TtyConfig,
    mut events: mpsc::Receiver<Event>,
    status: Arc<DeviceStatus>,
) -> io::Result<()> {
    let fd: OwnedFd = cuse.into();
    let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL).map_err(io::Error::from)?);
    fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    let fd = xoq_link::fdio::register(fd)?;
    let mut tty = Tty::new(cfg);
    let mut buf = vec![0u8; MAX_IO as usize + REQUEST_OVERHEAD + 4096];
    let mut uplink: Option<mpsc::Sender<Message>> = None;
    let mut shown = (0, 0);
    loop {
        feed_uplink(&mut tty, uplink.as_ref());
        write_replies(&fd, &mut tty)?;
        let c = tty.counters();
        status.rx_bytes.store(c.rx_bytes, Ordering::Relaxed);
        status.tx_bytes.store(c.tx_bytes, Ordering::Relaxed);
        if (c.rx_discarded, c.barrier_timeouts) != shown {
            shown = (c.rx_discarded, c.barrier_timeouts);
            // Received while nobody had the port open, or before the last close.
            status.set_detail("rx_discarded_closed", serde_json::json!(c.rx_discarded));
            status.set_detail(
                "close_barrier_timeouts",
                serde_json::json!(c.barrier_timeouts),
            );
        }
        let deadline = tty.next_deadline();
        let has_uplink = uplink.is_some();
        tokio::select! {
            r = fd.readable() => {
                let mut guard = r?;
                loop {
                    match guard.try_io(|f| nix::unistd::read(f.get_ref(), &mut buf).map_err(io::Error::from)) {
                        Ok(Ok(n)) => handle_request(&mut tty, &buf[..n], &fd)?,
                        Ok(Err(e)) if e.raw_os_error() == Some(libc::EINTR) => continue,
                        Ok(Err(e)) if e.raw_os_error() == Some(libc::ENODEV) => {
                            return Err(io::Error::other("the kernel removed the CUSE device"));
                        }
                        Ok(Err(e)) => return Err(e),
                        Err(_would_block) => break,
                    }
                }
            }
            ev = events.recv(), if tty.wants_rx() => match ev {
                Some(Event::Connected { uplink: tx, line, modem, writer }) => {
                    uplink = Some(tx);
                    tty.link_up(line, modem, writer, Instant::now());
                }
                Some(Event::Remote(m)) => tty.remote(m, Instant::now()),
                None => return Ok(()),
            },
            _ = closed(uplink.as_ref()), if has_uplink => {
                uplink = None;
                tty.link_down(Instant::now());
            }
            _ = wait_room(uplink.as_ref()), if has_uplink && tty.has_uplink() => {}
            _ = sleep_until(deadline), if deadline.is_some() => tty.tick(Instant::now()),
        }
    }
}

/// Hands queued messages to the connection while it has room.
fn feed_uplink(tty: &mut Tty, uplink: Option<&mpsc::Sender<Message>>) {
    let Some(tx) = uplink else {
        return;
    };
    while tty.has_uplink() {
        let Ok(permit) = tx.try_reserve() else {
            return;
        };
        if let Some(m) = tty.pop_uplink() {
            permit.send(m);
        }
    }
}

async fn closed(uplink: Option<&mpsc::Sender<Message>>) {
    match uplink {
        Some(tx) => tx.closed().await,
        None => std::future::pending().await,
    }
}

async fn wait_room(uplink: Option<&mpsc::Sender<Message>>) {
    match uplink {
        // The permit is released at once; `feed_uplink` takes it again.
        Some(tx) => drop(tx.reserve().await),
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

fn handle_request(tty: &mut Tty, raw: &[u8], fd: &AsyncFd<OwnedFd>) -> io::Result<()> {
    match abi::parse_request(raw) {
        Ok(req) => {
            if let Op::Ioctl { cmd, .. } = req.op {
                if xoq_cuse::ioctl::shape_of(cmd).is_none() {
                    tracing::debug!("ioctl {cmd:#x} is not a serial port's: ENOTTY");
                }
            }
            tty.handle(&req, Instant::now());
            Ok(())
        }
        Err(e) => {
            tracing::warn!("unreadable request from the kernel: {e}; answered EIO");
            if raw.len() >= 16 {
                let mut u = [0u8; 8];
                u.copy_from_slice(&raw[8..16]);
                send_reply(fd, &abi::reply_err(u64::from_le_bytes(u), libc::EIO))?;
            }
            Ok(())
        }
    }
}

fn write_replies(fd: &AsyncFd<OwnedFd>, tty: &mut Tty) -> io::Result<()> {
    for r in tty.take_replies() {
        send_reply(fd, &r)?;
    }
    Ok(())
}

/// Writes one reply. A reply to a request the kernel has already dropped (`ENOENT`: its
/// caller was interrupted) is not an error.
fn send_reply(fd: &AsyncFd<OwnedFd>, reply: &[u8]) -> io::Result<()> {
    match nix::unistd::write(fd.get_ref().as_fd(), reply) {
        Ok(_) => Ok(()),
        Err(nix::errno::Errno::ENOENT) => {
            tracing::debug!("reply to a request the kernel no longer waits for");
            Ok(())
        }
        Err(nix::errno::Errno::ENODEV) => {
            Err(io::Error::other("the kernel removed the CUSE device"))
        }
        Err(e) => Err(io::Error::other(format!("cannot answer the kernel: {e}"))),
    }
}
