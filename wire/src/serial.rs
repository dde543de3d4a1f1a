//! Serial-port semantics: line settings, modem lines, flush queues.

use crate::codec::{Reader, Writer};
use crate::error::WireError;
use crate::limits::MAX_BAUD;

/// Parity bit mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parity {
    None,
    Odd,
    Even,
    Mark,
    Space,
}

/// Number of stop bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopBits {
    One,
    Two,
}

/// Flow control applied by the remote port's driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowControl {
    None,
    /// XON/XOFF in band (`IXON`/`IXOFF`): a received XOFF stops output until an XON.
    Software,
    /// XON/XOFF, and any received character restarts stopped output (`IXANY`).
    SoftwareAnyRestarts,
    /// RTS/CTS.
    Hardware,
}

/// Complete line settings of a serial port. Any baud rate from 1 to [`MAX_BAUD`] is allowed,
/// including non-standard rates (the server applies them with `BOTHER` where needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LineSettings {
    pub baud: u32,
    /// 5, 6, 7 or 8.
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: StopBits,
    pub flow: FlowControl,
}

impl Default for LineSettings {
    /// 115200 8N1, no flow control: what most robot hardware speaks.
    fn default() -> Self {
        LineSettings {
            baud: 115_200,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: StopBits::One,
            flow: FlowControl::None,
        }
    }
}

impl std::fmt::Display for LineSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = match self.parity {
            Parity::None => 'N',
            Parity::Odd => 'O',
            Parity::Even => 'E',
            Parity::Mark => 'M',
            Parity::Space => 'S',
        };
        let s = match self.stop_bits {
            StopBits::One => 1,
            StopBits::Two => 2,
        };
        let fl = match self.flow {
            FlowControl::None => "",
            FlowControl::Software => " xon/xoff",
            FlowControl::SoftwareAnyRestarts => " xon/xoff ixany",
            FlowControl::Hardware => " rts/cts",
        };
        write!(f, "{} {}{}{}{}", self.baud, self.data_bits, p, s, fl)
    }
}

impl LineSettings {
    pub(crate) const ENCODED_LEN: usize = 8;

    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u32(self.baud);
        w.u8(self.data_bits);
        w.u8(match self.parity {
            Parity::None => 0,
            Parity::Odd => 1,
            Parity::Even => 2,
            Parity::Mark => 3,
            Parity::Space => 4,
        });
        w.u8(match self.stop_bits {
            StopBits::One => 1,
            StopBits::Two => 2,
        });
        w.u8(match self.flow {
            FlowControl::None => 0,
            FlowControl::Software => 1,
            FlowControl::Hardware => 2,
            FlowControl::SoftwareAnyRestarts => 3,
        });
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let baud = r.u32("baud")?;
        if baud == 0 || baud > MAX_BAUD {
            return Err(WireError::BadValue {
                field: "baud",
                value: baud.into(),
            });
        }
        let data_bits = r.u8("data_bits")?;
        if !(5..=8).contains(&data_bits) {
            return Err(WireError::BadValue {
                field: "data_bits",
                value: data_bits.into(),
            });
        }
        let parity = match r.u8("parity")? {
            0 => Parity::None,
            1 => Parity::Odd,
            2 => Parity::Even,
            3 => Parity::Mark,
            4 => Parity::Space,
            v => {
                return Err(WireError::BadValue {
                    field: "parity",
                    value: v.into(),
                })
            }
        };
        let stop_bits = match r.u8("stop_bits")? {
            1 => StopBits::One,
            2 => StopBits::Two,
            v => {
                return Err(WireError::BadValue {
                    field: "stop_bits",
                    value: v.into(),
                })
            }
        };
        let flow = match r.u8("flow")? {
            0 => FlowControl::None,
            1 => FlowControl::Software,
            2 => FlowControl::Hardware,
            3 => FlowControl::SoftwareAnyRestarts,
            v => {
                return Err(WireError::BadValue {
                    field: "flow",
                    value: v.into(),
                })
            }
        };
        Ok(LineSettings {
            baud,
            data_bits,
            parity,
            stop_bits,
            flow,
        })
    }
}

/// The two output modem lines a client drives. They are always set together, atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ModemLines {
    pub dtr: bool,
    pub rts: bool,
}

impl ModemLines {
    pub(crate) fn to_bits(self) -> u8 {
        u8::from(self.dtr) | (u8::from(self.rts) << 1)
    }
    pub(crate) fn from_bits(b: u8) -> Result<Self, WireError> {
        if b & !0b11 != 0 {
            return Err(WireError::BadValue {
                field: "modem_lines",
                value: b.into(),
            });
        }
        Ok(ModemLines {
            dtr: b & 1 != 0,
            rts: b & 2 != 0,
        })
    }
}

/// Every modem line as the port sees it: the outputs we drive and the inputs it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ModemStatus {
    pub dtr: bool,
    pub rts: bool,
    pub cts: bool,
    pub dsr: bool,
    pub dcd: bool,
    pub ri: bool,
}

impl ModemStatus {
    pub(crate) fn to_bits(self) -> u8 {
        u8::from(self.dtr)
            | (u8::from(self.rts) << 1)
            | (u8::from(self.cts) << 2)
            | (u8::from(self.dsr) << 3)
            | (u8::from(self.dcd) << 4)
            | (u8::from(self.ri) << 5)
    }
    pub(crate) fn from_bits(b: u8) -> Result<Self, WireError> {
        if b & !0b11_1111 != 0 {
            return Err(WireError::BadValue {
                field: "modem_status",
                value: b.into(),
            });
        }
        Ok(ModemStatus {
            dtr: b & 1 != 0,
            rts: b & 2 != 0,
            cts: b & 4 != 0,
            dsr: b & 8 != 0,
            dcd: b & 16 != 0,
            ri: b & 32 != 0,
        })
    }
}

/// Which buffered data a flush discards, as `tcflush` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlushQueue {
    /// Data received by the port and not yet read.
    Input,
    /// Data written and not yet transmitted.
    Output,
    Both,
}

/// `tcflow`: what a program asks of the port's flow, at once (not queued behind output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowAction {
    /// `TCOOFF`: suspend output.
    SuspendOutput,
    /// `TCOON`: restart suspended output.
    RestartOutput,
    /// `TCIOFF`: transmit a STOP character (XOFF), ahead of queued output.
    SendStop,
    /// `TCION`: transmit a START character (XON), ahead of queued output.
    SendStart,
}

impl FlowAction {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            FlowAction::SuspendOutput => 1,
            FlowAction::RestartOutput => 2,
            FlowAction::SendStop => 3,
            FlowAction::SendStart => 4,
        }
    }
    pub(crate) fn from_u8(v: u8) -> Result<Self, WireError> {
        match v {
            1 => Ok(FlowAction::SuspendOutput),
            2 => Ok(FlowAction::RestartOutput),
            3 => Ok(FlowAction::SendStop),
            4 => Ok(FlowAction::SendStart),
            v => Err(WireError::BadValue {
                field: "flow_action",
                value: v.into(),
            }),
        }
    }
}

impl FlowControl {
    /// XON/XOFF in either form.
    pub fn is_software(self) -> bool {
        matches!(
            self,
            FlowControl::Software | FlowControl::SoftwareAnyRestarts
        )
    }
}

impl FlushQueue {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            FlushQueue::Input => 1,
            FlushQueue::Output => 2,
            FlushQueue::Both => 3,
        }
    }
    pub(crate) fn from_u8(v: u8) -> Result<Self, WireError> {
        match v {
            1 => Ok(FlushQueue::Input),
            2 => Ok(FlushQueue::Output),
            3 => Ok(FlushQueue::Both),
            v => Err(WireError::BadValue {
                field: "flush_queue",
                value: v.into(),
            }),
        }
    }
}
