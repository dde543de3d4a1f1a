//! Terminal I/O for tests: the "hardware" PTY the server serves, and programs' side of
//! `/dev/ttyXOQ*`, with deadlines on every read and write.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{open, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

/// An open terminal file descriptor (non-blocking) with deadline-bound I/O.
pub struct Tty {
    pub fd: OwnedFd,
}

impl Tty {
    /// Opens a tty path read-write, non-blocking, in raw mode.
    pub fn open_raw(path: &Path) -> Tty {
        let fd = open(
            path,
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
            Mode::empty(),
        )
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let mut t = tcgetattr(&fd).expect("tcgetattr");
        cfmakeraw(&mut t);
        tcsetattr(&fd, SetArg::TCSANOW, &t).expect("tcsetattr raw");
        Tty { fd }
    }

    fn wait(&self, flags: PollFlags, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms =
            PollTimeout::try_from(left.as_millis().min(10_000) as i32).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.fd.as_fd(), flags)];
        matches!(poll(&mut fds, ms), Ok(n) if n > 0)
    }

    /// Writes everything or panics at the deadline.
    pub fn write_all(&self, mut data: &[u8], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !data.is_empty() {
            match nix::unistd::write(&self.fd, data) {
                Ok(n) => data = &data[n..],
                Err(nix::errno::Errno::EAGAIN) => {
                    assert!(
                        Instant::now() < deadline,
                        "write timed out with {} bytes left",
                        data.len()
                    );
                    self.wait(PollFlags::POLLOUT, deadline);
                }
                Err(e) => panic!("write failed: {e}"),
            }
        }
    }

    /// Reads exactly `n` bytes, or returns what arrived by the deadline.
    pub fn read_exact(&self, n: usize, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::with_capacity(n.min(4 * 1024 * 1024));
        let mut buf = vec![0u8; 64 * 1024];
        while out.len() < n && Instant::now() < deadline {
            if !self.wait(PollFlags::POLLIN, deadline) {
                continue;
            }
            let want = (n - out.len()).min(buf.len());
            match nix::unistd::read(&self.fd, &mut buf[..want]) {
                Ok(k) => out.extend_from_slice(&buf[..k]),
                Err(nix::errno::Errno::EAGAIN) => {}
                Err(e) => panic!("read failed: {e}"),
            }
        }
        out
    }

    /// Reads whatever arrives within `timeout` (for "nothing arrives" checks).
    pub fn read_for(&self, timeout: Duration) -> Vec<u8> {
        self.read_exact(usize::MAX / 2, timeout)
    }

    /// Discards anything pending.
    pub fn drain(&self) {
        let _ = self.read_for(Duration::from_millis(100));
    }

    /// The terminal's settings through `TCGETS2` (exact speed, even non-standard).
    pub fn termios2(&self) -> libc::termios2 {
        // SAFETY: termios2 is plain old data; the kernel overwrites it.
        let mut t: libc::termios2 = unsafe { std::mem::zeroed() };
        // SAFETY: TCGETS2 writes one termios2 into the live local.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TCGETS2, &mut t) };
        assert!(r == 0, "TCGETS2: {}", std::io::Error::last_os_error());
        t
    }

    /// Sets the terminal's settings through `TCSETS2`, as a program would with `tcsetattr`.
    pub fn set_termios2(&self, t: &libc::termios2) {
        // SAFETY: TCSETS2 reads one termios2 from the live reference.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TCSETS2, t) };
        assert!(r == 0, "TCSETS2: {}", std::io::Error::last_os_error());
    }

    /// Waits until `check` holds for this terminal's settings.
    pub fn wait_termios(
        &self,
        timeout: Duration,
        check: impl Fn(&libc::termios2) -> bool,
    ) -> libc::termios2 {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.termios2();
            if check(&t) || Instant::now() > deadline {
                return t;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A PTY pair standing in for a serial port: the server opens `slave_path` with `serialport`,
/// the test reads and writes the master as the wire on the other side of the UART.
pub struct HardwarePty {
    pub master: Tty,
    pub slave_path: PathBuf,
    _slave: OwnedFd,
}

impl HardwarePty {
    pub fn new() -> HardwarePty {
        let pair = nix::pty::openpty(None, None).expect("openpty");
        let slave_path = nix::unistd::ttyname(&pair.slave).expect("ttyname");
        // openpty does not set close-on-exec: without it every spawned xoq process would hold
        // the "hardware" open and it could never vanish.
        for fd in [&pair.master, &pair.slave] {
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .expect("cloexec");
        }
        let flags = nix::fcntl::fcntl(&pair.master, nix::fcntl::FcntlArg::F_GETFL).expect("getfl");
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&pair.master, nix::fcntl::FcntlArg::F_SETFL(flags)).expect("setfl");
        HardwarePty {
            master: Tty { fd: pair.master },
            slave_path,
            _slave: pair.slave,
        }
    }

    /// Opens the mounted tty at `link` raw and waits until the remote port (this PTY) is open
    /// for it: bytes the port receives before that are dropped, as a local UART drops input
    /// while nobody has it open.
    pub fn open_synced(&self, link: &Path) -> Tty {
        let t = Duration::from_secs(60);
        let tty = Tty::open_raw(link);
        tty.write_all(b"sync", t);
        assert_eq!(self.master.read_exact(4, t), b"sync", "the port opened");
        tty
    }

    /// The `--serial NAME=PATH` argument serving this PTY as `name`.
    pub fn serve_arg(&self, name: &str) -> String {
        format!("{name}={}", self.slave_path.display())
    }
}

impl Default for HardwarePty {
    fn default() -> Self {
        HardwarePty::new()
    }
}

/// Size of one round-trip message of the serial benchmarks.
pub const ECHO_MSG: usize = 32;
/// The simulated port's rate in the round-trip benchmarks: it transmits at its baud rate,
/// and at 12 Mbaud a 32-byte message is 27 us on its line, well under the fastest round trip
/// (about 70 us with busy polling), so the line never runs ahead of the clock far enough to
/// sleep and the round trip measures the software path, as the PTY and socat baselines do.
/// (At 4 Mbaud, 80 us a message, busy-polled round trips caught up with the line and one in
/// a few hundred waited a millisecond for it.)
pub const BENCH_BAUD: u32 = 12_000_000;
const ECHO_TIMEOUT: Duration = Duration::from_secs(60);

/// Latencies in microseconds of `n` round trips of a 32-byte message through `tty`, after 200
/// unmeasured ones.
pub fn round_trips(tty: &Tty, n: usize) -> Vec<f64> {
    round_trips_after(tty, n, 200)
}

/// Latencies in microseconds of `n` round trips of a 32-byte message through `tty`, after
/// `warmup` unmeasured ones.
pub fn round_trips_after(tty: &Tty, n: usize, warmup: usize) -> Vec<f64> {
    let msg = [0x5au8; ECHO_MSG];
    for _ in 0..warmup {
        tty.write_all(&msg, ECHO_TIMEOUT);
        assert_eq!(
            tty.read_exact(ECHO_MSG, ECHO_TIMEOUT).len(),
            ECHO_MSG,
            "warm-up echo"
        );
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut m = msg;
        m[0] = i as u8;
        let t0 = Instant::now();
        tty.write_all(&m, ECHO_TIMEOUT);
        let got = tty.read_exact(ECHO_MSG, ECHO_TIMEOUT);
        out.push(t0.elapsed().as_secs_f64() * 1e6);
        assert_eq!(got, m, "echo {i}");
    }
    out
}
