//! A real serial port, opened with the `serialport` crate; data moves through the same file
//! descriptor in non-blocking mode under tokio, settings through `serialport`'s termios calls.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use serialport::{
    ClearBuffer, DataBits, FlowControl as SpFlow, Parity as SpParity, SerialPort,
    StopBits as SpStop, TTYPort,
};
use tokio::io::unix::AsyncFd;
use xoq_link::fdio;
use xoq_wire::catalog::serial_caps;
use xoq_wire::{
    FlowAction, FlowControl, FlushQueue, LineSettings, ModemLines, ModemStatus, Parity, StopBits,
};

use super::backend::{FlowSwitch, PortControl, PortReader, SerialBackend};

/// A port at a path such as `/dev/ttyUSB0`.
pub struct HardwarePort {
    pub path: String,
}

impl SerialBackend for HardwarePort {
    type Reader = HwReader;
    type Control = HwControl;

    fn open(&mut self, line: &LineSettings) -> io::Result<(HwReader, HwControl)> {
        let mut port = serialport::new(&self.path, line.baud)
            .timeout(Duration::from_secs(1))
            .open_native()
            .map_err(|e| io::Error::other(format!("cannot open {}: {e}", self.path)))?;
        apply(&mut port, line)?;
        // SAFETY: the port owns this fd and outlives the borrow, which ends in this function.
        let fd = unsafe { BorrowedFd::borrow_raw(port.as_raw_fd()) };
        set_ixany(fd, line.flow)?;
        let flags =
            OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?);
        fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
        let rfd: OwnedFd = fd.try_clone_to_owned()?;
        let wfd: OwnedFd = fd.try_clone_to_owned()?;
        let has_modem = port.read_clear_to_send().is_ok();
        Ok((
            HwReader {
                fd: fdio::register(rfd)?,
            },
            HwControl {
                port,
                wfd: fdio::register(wfd)?,
                has_modem,
            },
        ))
    }

    fn describe(&self) -> String {
        self.path.clone()
    }

    fn capabilities(&self) -> u32 {
        serial_caps::LINE_SETTINGS
            | serial_caps::MODEM_LINES
            | serial_caps::BREAK
            | serial_caps::ARBITRARY_BAUD
    }
}

pub struct HwReader {
    fd: AsyncFd<OwnedFd>,
}

impl PortReader for HwReader {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        fdio::read(&self.fd, buf).await
    }
}

pub struct HwControl {
    port: TTYPort,
    wfd: AsyncFd<OwnedFd>,
    has_modem: bool,
}

impl PortControl for HwControl {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        fdio::write_all(&self.wfd, data).await
    }

    fn apply_line(&mut self, line: &LineSettings) -> io::Result<LineSettings> {
        apply(&mut self.port, line)?;
        set_ixany(self.wfd.get_ref().as_fd(), line.flow)?;
        read_back(&self.port, line)
    }

    fn set_modem(&mut self, lines: ModemLines) -> io::Result<()> {
        if !self.has_modem {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this port has no modem lines",
            ));
        }
        self.port
            .write_data_terminal_ready(lines.dtr)
            .map_err(io::Error::other)?;
        self.port
            .write_request_to_send(lines.rts)
            .map_err(io::Error::other)
    }

    fn modem_status(&mut self) -> io::Result<Option<ModemStatus>> {
        if !self.has_modem {
            return Ok(None);
        }
        let bits = tiocmget(self.port.as_raw_fd())?;
        Ok(Some(ModemStatus {
            dtr: bits & libc::TIOCM_DTR != 0,
            rts: bits & libc::TIOCM_RTS != 0,
            cts: bits & libc::TIOCM_CTS != 0,
            dsr: bits & libc::TIOCM_DSR != 0,
            dcd: bits & libc::TIOCM_CAR != 0,
            ri: bits & libc::TIOCM_RNG != 0,
        }))
    }

    async fn send_break(&mut self, duration_ms: u16) -> io::Result<()> {
        let ms = if duration_ms == 0 { 250 } else { duration_ms };
        self.port.set_break().map_err(io::Error::other)?;
        tokio::time::sleep(Duration::from_millis(ms.into())).await;
        self.port.clear_break().map_err(io::Error::other)
    }

    fn set_break(&mut self, on: bool) -> io::Result<()> {
        let r = if on {
            self.port.set_break()
        } else {
            self.port.clear_break()
        };
        r.map_err(io::Error::other)
    }

    fn flow_switch(&self) -> io::Result<FlowSwitch> {
        use nix::sys::termios::{tcflow, FlowArg};
        let fd = std::sync::Arc::new(self.wfd.get_ref().try_clone()?);
        Ok(std::sync::Arc::new(move |action| {
            let arg = match action {
                FlowAction::SuspendOutput => FlowArg::TCOOFF,
                FlowAction::RestartOutput => FlowArg::TCOON,
                FlowAction::SendStop => FlowArg::TCIOFF,
                FlowAction::SendStart => FlowArg::TCION,
            };
            tcflow(fd.as_ref(), arg).map_err(io::Error::from)
        }))
    }

    fn output_queue(&mut self) -> io::Result<u32> {
        self.port.bytes_to_write().map_err(io::Error::other)
    }

    fn flush(&mut self, queue: FlushQueue) -> io::Result<()> {
        let which = match queue {
            FlushQueue::Input => ClearBuffer::Input,
            FlushQueue::Output => ClearBuffer::Output,
            FlushQueue::Both => ClearBuffer::All,
        };
        self.port.clear(which).map_err(io::Error::other)
    }

    async fn drain(&mut self) -> io::Result<()> {
        let fd = self.wfd.get_ref().try_clone()?;
        tokio::task::spawn_blocking(move || {
            nix::sys::termios::tcdrain(&fd).map_err(io::Error::from)
        })
        .await
        .map_err(io::Error::other)?
    }
}

fn tiocmget(fd: i32) -> io::Result<i32> {
    let mut bits: libc::c_int = 0;
    // SAFETY: TIOCMGET writes one c_int through the pointer, which points to a live local.
    let r = unsafe { libc::ioctl(fd, libc::TIOCMGET, &mut bits) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(bits)
}

fn apply(port: &mut TTYPort, line: &LineSettings) -> io::Result<()> {
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("this port does not support {what}"),
        )
    };
    let parity = match line.parity {
        Parity::None => SpParity::None,
        Parity::Odd => SpParity::Odd,
        Parity::Even => SpParity::Even,
        Parity::Mark | Parity::Space => return Err(bad("mark/space parity")),
    };
    let data_bits = match line.data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let stop = match line.stop_bits {
        StopBits::One => SpStop::One,
        StopBits::Two => SpStop::Two,
    };
    let flow = match line.flow {
        FlowControl::None => SpFlow::None,
        FlowControl::Software | FlowControl::SoftwareAnyRestarts => SpFlow::Software,
        FlowControl::Hardware => SpFlow::Hardware,
    };
    port.set_baud_rate(line.baud).map_err(io::Error::other)?;
    port.set_data_bits(data_bits).map_err(io::Error::other)?;
    port.set_parity(parity).map_err(io::Error::other)?;
    port.set_stop_bits(stop).map_err(io::Error::other)?;
    port.set_flow_control(flow).map_err(io::Error::other)?;
    Ok(())
}

/// `IXANY` (any received character restarts output), which `serialport` does not set.
fn set_ixany(fd: BorrowedFd<'_>, flow: FlowControl) -> io::Result<()> {
    use nix::sys::termios::{tcgetattr, tcsetattr, InputFlags, SetArg};
    let mut t = tcgetattr(fd).map_err(io::Error::from)?;
    t.input_flags
        .set(InputFlags::IXANY, flow == FlowControl::SoftwareAnyRestarts);
    tcsetattr(fd, SetArg::TCSANOW, &t).map_err(io::Error::from)
}

/// What the port reports now; fields the driver cannot report are taken from `asked`.
fn read_back(port: &TTYPort, asked: &LineSettings) -> io::Result<LineSettings> {
    let baud = port.baud_rate().unwrap_or(asked.baud);
    Ok(LineSettings { baud, ..*asked })
}
