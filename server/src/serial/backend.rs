//! The serial backend trait: what a port must do, whatever it is (a UART or a simulation).

use std::future::Future;
use std::io;
use std::sync::Arc;

use xoq_wire::{FlowAction, FlushQueue, LineSettings, ModemLines, ModemStatus};

/// `tcflow` on an open port. It acts at once, outside the queue of operations: output that
/// is stopped holds that queue up, and restarting it must not wait behind it.
pub type FlowSwitch = Arc<dyn Fn(FlowAction) -> io::Result<()> + Send + Sync>;

/// Opens a port. The device actor calls `open` again after the port failed (unplugged), so a
/// backend is a recipe for a port, not the open port itself.
pub trait SerialBackend: Send + 'static {
    type Reader: PortReader;
    type Control: PortControl;

    /// Opens the port with these initial line settings.
    fn open(&mut self, line: &LineSettings) -> io::Result<(Self::Reader, Self::Control)>;

    /// For logs and errors, e.g. `/dev/ttyUSB0` or `simulated echo`.
    fn describe(&self) -> String;

    /// Capability bits (`xoq_wire::catalog::serial_caps`).
    fn capabilities(&self) -> u32;
}

/// The receiving half of an open port.
pub trait PortReader: Send + 'static {
    /// Reads what the port received; an error means the port is gone.
    fn read(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
}

/// The transmitting and controlling half of an open port. Operations arrive in the order the
/// client sent them, interleaved with data, so settings apply between the right bytes.
pub trait PortControl: Send + 'static {
    fn write_all(&mut self, data: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// Applies settings; returns what the port now uses.
    fn apply_line(&mut self, line: &LineSettings) -> io::Result<LineSettings>;
    fn set_modem(&mut self, lines: ModemLines) -> io::Result<()>;
    /// Current modem lines; `Ok(None)` if the port has none (a PTY, say).
    fn modem_status(&mut self) -> io::Result<Option<ModemStatus>>;
    fn send_break(&mut self, duration_ms: u16) -> impl Future<Output = io::Result<()>> + Send;
    /// Holds the line in break (`true`) until called again with `false`.
    fn set_break(&mut self, on: bool) -> io::Result<()>;
    fn flush(&mut self, queue: FlushQueue) -> io::Result<()>;
    /// The port's `tcflow`, usable while the queue of operations waits.
    fn flow_switch(&self) -> io::Result<FlowSwitch>;
    /// Bytes written and not yet transmitted (the driver's `TIOCOUTQ`).
    fn output_queue(&mut self) -> io::Result<u32>;
    /// Waits until everything written has been transmitted.
    fn drain(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}
