//! The CAN backend trait: a bus that frames are read from and written to.

use std::future::Future;
use std::io;

use xoq_wire::{CanFrame, CanSettings};

/// Opens a bus; called again after the bus failed (interface removed), so it is a recipe.
pub trait CanBackend: Send + 'static {
    type Bus: CanBus;
    fn open(&mut self) -> io::Result<Self::Bus>;
    fn settings(&self) -> CanSettings;
    fn capabilities(&self) -> u32;
    fn describe(&self) -> String;
}

/// An open bus. Both methods take `&self` so one task may read while another writes.
pub trait CanBus: Send + Sync + 'static {
    /// The next frame on the bus, with its receive timestamp (µs since the epoch).
    fn recv(&self) -> impl Future<Output = io::Result<BusFrame>> + Send;
    /// A frame already waiting, without blocking.
    fn try_recv(&self) -> io::Result<Option<BusFrame>>;
    /// True if frames we send come back through `recv` (flagged `own`) once the bus carried
    /// them; then only those confirmations are shown to other clients.
    fn echoes_own(&self) -> bool;
    /// Writes one frame, waiting while the transmit queue is full (backpressure), unless the
    /// clock passes `not_after_us` (µs since the epoch) before the write: then it returns
    /// `Ok(false)` and the frame is not sent. An error means this frame was not sent;
    /// `is_fatal` says whether the bus itself is gone.
    fn send(
        &self,
        frame: &CanFrame,
        not_after_us: Option<u64>,
    ) -> impl Future<Output = io::Result<bool>> + Send;
}

/// A frame read from a bus.
pub struct BusFrame {
    pub frame: CanFrame,
    /// Frames the kernel dropped before this one for lack of buffer.
    pub dropped: u32,
    /// A frame we sent, confirmed by the bus.
    pub own: bool,
}

/// True for errors after which the bus must be reopened.
pub fn is_fatal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENODEV) | Some(libc::ENXIO) | Some(libc::EBADF) | Some(libc::ENETDOWN)
    )
}
