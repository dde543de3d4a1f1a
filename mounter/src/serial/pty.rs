//! The local end of a mounted serial device: a PTY whose master we hold in packet mode with
//! `EXTPROC`, so every `tcsetattr` a program makes on the slave reaches us as an event.
//!
//! We also hold the slave open for the mount's whole life, so the master never sees a hangup
//! when programs come and go, and the PTY (and its symlink) survives link drops.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use xoq_link::fdio;
use xoq_wire::LineSettings;

use super::termios;

/// Status bits of a packet-mode read (`<linux/tty.h>` TIOCPKT_*).
pub mod packet {
    pub const DATA: u8 = 0;
    pub const FLUSHREAD: u8 = 0x01;
    pub const FLUSHWRITE: u8 = 0x02;
    /// Output stopped (`tcflow(TCOOFF)` on the slave) / restarted (`TCOON`).
    pub const STOP: u8 = 0x04;
    pub const START: u8 = 0x08;
    pub const IOCTL: u8 = 0x40;
}

/// One PTY pair.
pub struct Pty {
    master: AsyncFd<OwnedFd>,
    slave: OwnedFd,
    /// e.g. `/dev/pts/7`.
    pub path: PathBuf,
}

impl Pty {
    /// Opens a PTY in raw mode with `line` applied, packet mode on, `EXTPROC` set, and the
    /// slave given to group `dialout` with mode 0660 when that group exists (as real ports are).
    pub fn open(line: &LineSettings) -> io::Result<Pty> {
        let pair = nix::pty::openpty(None, None).map_err(io::Error::from)?;
        let (master, slave) = (pair.master, pair.slave);
        for fd in [&master, &slave] {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
        }
        let path = nix::unistd::ttyname(&slave).map_err(io::Error::from)?;
        let mut t = termios::get(slave.as_fd())?;
        termios::make_raw_extproc(&mut t);
        termios::apply_line(&mut t, line);
        termios::set(slave.as_fd(), &t)?;
        let on: libc::c_int = 1;
        // SAFETY: TIOCPKT reads one c_int through the pointer, which points to a live local.
        if unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&master), libc::TIOCPKT, &on) } < 0
        {
            return Err(io::Error::last_os_error());
        }
        let flags =
            OFlag::from_bits_truncate(fcntl(&master, FcntlArg::F_GETFL).map_err(io::Error::from)?);
        fcntl(&master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
        give_to_dialout(&slave);
        let interest = Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY;
        Ok(Pty {
            master: fdio::register_with(master, interest)?,
            slave,
            path,
        })
    }

    /// Reads one packet: `buf[0]` is the status byte, data (if status is 0) follows.
    pub async fn read_packet(&self, buf: &mut [u8]) -> io::Result<usize> {
        fdio::read(&self.master, buf).await
    }

    /// Waits until the master has a status for us (`POLLPRI`: flush, stop/start, ioctl),
    /// whether or not data is waiting behind it.
    pub async fn status_pending(&self) -> io::Result<()> {
        let mut ready = self.master.ready(Interest::PRIORITY).await?;
        // Edge-triggered: the caller reads the status next, so a new one raises a new edge.
        ready.clear_ready();
        Ok(())
    }

    /// Writes bytes that programs will read from the slave.
    pub async fn write_all(&self, data: &[u8]) -> io::Result<()> {
        fdio::write_all(&self.master, data).await
    }

    /// The settings programs have put on the tty.
    pub fn termios(&self) -> io::Result<libc::termios2> {
        termios::get(self.slave.as_fd())
    }

    /// Sets `EXTPROC` again if a program cleared it (we would stop seeing its changes).
    pub fn ensure_extproc(&self, t: &libc::termios2) -> io::Result<()> {
        if t.c_lflag & libc::EXTPROC == 0 {
            let mut t2 = *t;
            t2.c_lflag |= libc::EXTPROC;
            termios::set(self.slave.as_fd(), &t2)?;
        }
        Ok(())
    }
}

fn give_to_dialout(slave: &OwnedFd) {
    let Ok(Some(group)) = nix::unistd::Group::from_name("dialout") else {
        return;
    };
    if let Err(e) = nix::unistd::fchown(slave, None, Some(group.gid)) {
        tracing::debug!("cannot give the pty to group dialout: {e}");
        return;
    }
    if let Err(e) = nix::sys::stat::fchmod(slave, nix::sys::stat::Mode::from_bits_truncate(0o660)) {
        tracing::debug!("cannot set pty mode 0660: {e}");
    }
}
