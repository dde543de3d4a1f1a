//! XON/XOFF on the simulated port, as a UART driver does it: with software flow control
//! (`IXON`) a received XOFF stops output and an XON restarts it, both swallowed (a reader
//! never sees them); with `IXANY` any received character restarts it. `tcflow` suspends and
//! restarts output directly, or sends XOFF/XON ahead of the queue. The echo device at the far
//! end sends back what it receives, so an XOFF the program writes stops the port's own
//! output, as it would through a loopback plug.

use std::sync::Mutex;

use tokio::sync::Notify;
use xoq_wire::FlowControl;

/// The START character.
pub const XON: u8 = 0x11;
/// The STOP character.
pub const XOFF: u8 = 0x13;

#[derive(Default)]
struct State {
    flow: Option<FlowControl>,
    stopped: bool,
}

/// The output's flow state, shared by the transmitter and `tcflow`.
#[derive(Default)]
pub struct SoftFlow {
    state: Mutex<State>,
    restarted: Notify,
}

impl SoftFlow {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        xoq_link::sync::lock(&self.state)
    }

    /// The line's flow control changed; leaving software flow control restarts output.
    pub fn set_mode(&self, flow: FlowControl) {
        let mut s = self.lock();
        s.flow = Some(flow);
        if !flow.is_software() && s.stopped {
            s.stopped = false;
            self.restarted.notify_waiters();
        }
    }

    fn software(&self) -> bool {
        self.lock().flow.is_some_and(|f| f.is_software())
    }

    /// The UART received `bytes`: applies XON/XOFF and IXANY; returns what a reader gets.
    pub fn receive(&self, bytes: &[u8]) -> Vec<u8> {
        let mut s = self.lock();
        let Some(flow) = s.flow.filter(|f| f.is_software()) else {
            return bytes.to_vec();
        };
        let mut out = Vec::with_capacity(bytes.len());
        for &b in bytes {
            match b {
                XOFF => s.stopped = true,
                XON => s.stopped = false,
                _ => {
                    if flow == FlowControl::SoftwareAnyRestarts {
                        s.stopped = false;
                    }
                    out.push(b);
                }
            }
        }
        if !s.stopped {
            self.restarted.notify_waiters();
        }
        out
    }

    /// `tcflow(TCOOFF)`.
    pub fn suspend(&self) {
        self.lock().stopped = true;
    }

    /// `tcflow(TCOON)`.
    pub fn restart(&self) {
        self.lock().stopped = false;
        self.restarted.notify_waiters();
    }

    pub fn stopped(&self) -> bool {
        self.lock().stopped
    }

    /// Waits while output is stopped; true if it had to wait.
    pub async fn wait_running(&self) -> bool {
        let mut waited = false;
        loop {
            let restarted = self.restarted.notified();
            if !self.stopped() {
                return waited;
            }
            waited = true;
            restarted.await;
        }
    }

    /// Bytes of `data` to send in one piece, at most `max`: with software flow control a
    /// piece ends just after an XON or XOFF, so that its effect on the output (through the
    /// echo) comes before the next byte, as on a UART.
    pub fn piece_len(&self, data: &[u8], max: usize) -> usize {
        let max = max.min(data.len()).max(1);
        if !self.software() {
            return max;
        }
        data[..max]
            .iter()
            .position(|&b| b == XON || b == XOFF)
            .map_or(max, |i| i + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_ixon_xoff_stops_xon_restarts_and_both_are_swallowed() {
        let f = SoftFlow::default();
        f.set_mode(FlowControl::Software);
        assert_eq!(f.receive(&[b'a', XOFF, b'b']), b"ab");
        assert!(f.stopped(), "b does not restart without IXANY");
        assert_eq!(f.receive(&[XON]), b"");
        assert!(!f.stopped());
        f.set_mode(FlowControl::SoftwareAnyRestarts);
        f.receive(&[XOFF]);
        assert_eq!(f.receive(b"x"), b"x");
        assert!(!f.stopped(), "IXANY: any character restarts");
        f.set_mode(FlowControl::None);
        assert_eq!(
            f.receive(&[XOFF, XON]),
            [XOFF, XON],
            "without IXON they are data"
        );
        assert!(!f.stopped());
    }

    #[test]
    fn pieces_end_after_a_flow_character() {
        let f = SoftFlow::default();
        f.set_mode(FlowControl::Software);
        assert_eq!(f.piece_len(&[1, 2, XOFF, 4, 5], 10), 3);
        assert_eq!(f.piece_len(&[1, 2, 3], 2), 2);
        f.set_mode(FlowControl::None);
        assert_eq!(f.piece_len(&[1, XOFF, 3], 10), 3);
    }
}
