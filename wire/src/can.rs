//! CAN and CAN FD semantics: frames with their full identity, and the counters that make every
//! lost frame visible.

use crate::codec::{Reader, Writer};
use crate::error::WireError;

/// Flag bits of a frame on the wire.
pub mod flags {
    /// 29-bit extended identifier.
    pub const EFF: u8 = 1 << 0;
    /// Remote transmission request (classic CAN only).
    pub const RTR: u8 = 1 << 1;
    /// Error frame: `id` holds the error class, `data` the details (linux/can/error.h).
    pub const ERR: u8 = 1 << 2;
    /// CAN FD frame, also when it carries 8 bytes or fewer.
    pub const FD: u8 = 1 << 3;
    /// FD bit-rate switch.
    pub const BRS: u8 = 1 << 4;
    /// FD error state indicator.
    pub const ESI: u8 = 1 << 5;
    pub(crate) const ALL: u8 = EFF | RTR | ERR | FD | BRS | ESI;
}

/// Largest standard (11-bit) identifier.
pub const MAX_SFF_ID: u32 = 0x7ff;
/// Largest extended (29-bit) identifier; also the mask of an error frame's class bits.
pub const MAX_EFF_ID: u32 = 0x1fff_ffff;
/// Payload lengths a CAN FD frame may have.
pub const FD_LENGTHS: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64];
/// Most frames in one `CanFrames` message.
pub const MAX_BATCH: usize = 256;
/// Bytes of one encoded frame before its data.
pub(crate) const FRAME_HEADER: usize = 1 + 4 + 1 + 8;

/// One CAN or CAN FD frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanFrame {
    /// Identifier without flag bits (11 or 29 bits; the error class for an error frame).
    pub id: u32,
    /// [`flags`] bits.
    pub flags: u8,
    /// Data length. For an RTR frame, the requested length (its DLC); `data` is then empty.
    pub len: u8,
    pub data: Vec<u8>,
    /// Microseconds since the Unix epoch: the kernel's receive timestamp for frames from a bus,
    /// the sender's clock (corrected by `TimeSync`) for frames to one. 0 = unknown.
    pub timestamp_us: u64,
}

impl CanFrame {
    pub fn is_fd(&self) -> bool {
        self.flags & flags::FD != 0
    }
    pub fn is_extended(&self) -> bool {
        self.flags & flags::EFF != 0
    }
    pub fn is_rtr(&self) -> bool {
        self.flags & flags::RTR != 0
    }
    pub fn is_error(&self) -> bool {
        self.flags & flags::ERR != 0
    }

    /// Checks the rules a bus would enforce; a frame that fails them is never sent anywhere.
    pub fn validate(&self) -> Result<(), WireError> {
        let bad = |field: &'static str, value: u64| Err(WireError::BadValue { field, value });
        if self.flags & !flags::ALL != 0 {
            return bad("can_flags", self.flags.into());
        }
        let max_id = if self.is_extended() || self.is_error() {
            MAX_EFF_ID
        } else {
            MAX_SFF_ID
        };
        if self.id > max_id {
            return bad("can_id", self.id.into());
        }
        if self.is_fd() {
            if self.flags & (flags::RTR | flags::ERR) != 0 {
                return bad("can_flags", self.flags.into());
            }
            if !FD_LENGTHS.contains(&self.len) {
                return bad("can_len", self.len.into());
            }
        } else {
            if self.flags & (flags::BRS | flags::ESI) != 0 {
                return bad("can_flags", self.flags.into());
            }
            if self.len > 8 {
                return bad("can_len", self.len.into());
            }
        }
        let data_len = if self.is_rtr() {
            0
        } else {
            usize::from(self.len)
        };
        if self.data.len() != data_len {
            return bad("can_data", self.data.len() as u64);
        }
        Ok(())
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u8(self.flags);
        w.u32(self.id);
        w.u8(self.len);
        w.u64(self.timestamp_us);
        w.0.extend_from_slice(&self.data);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let flags = r.u8("can_flags")?;
        let id = r.u32("can_id")?;
        let len = r.u8("can_len")?;
        let timestamp_us = r.u64("can_timestamp")?;
        let data_len = if flags & flags::RTR != 0 {
            0
        } else {
            usize::from(len).min(64)
        };
        let data = r.bytes(data_len, "can_data")?.to_vec();
        let f = CanFrame {
            id,
            flags,
            len,
            data,
            timestamp_us,
        };
        f.validate()?;
        Ok(f)
    }
}

impl std::fmt::Display for CanFrame {
    /// candump-like: `123#DEADBEEF`, `12345678#R4`, `123##1112233` (FD, flags nibble).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_extended() || self.is_error() {
            write!(f, "{:08X}", self.id)?;
        } else {
            write!(f, "{:03X}", self.id)?;
        }
        if self.is_fd() {
            let fl = u8::from(self.flags & flags::BRS != 0)
                | (u8::from(self.flags & flags::ESI != 0) << 1);
            write!(f, "##{fl:X}")?;
        } else if self.is_rtr() {
            return write!(f, "#R{}", self.len);
        } else {
            f.write_str("#")?;
        }
        for b in &self.data {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// State of the CAN controller, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BusState {
    ErrorActive,
    ErrorWarning,
    ErrorPassive,
    BusOff,
    Stopped,
    #[default]
    Unknown,
}

impl BusState {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            BusState::ErrorActive => 0,
            BusState::ErrorWarning => 1,
            BusState::ErrorPassive => 2,
            BusState::BusOff => 3,
            BusState::Stopped => 4,
            BusState::Unknown => 255,
        }
    }
    pub(crate) fn from_u8(v: u8) -> Result<Self, WireError> {
        Ok(match v {
            0 => BusState::ErrorActive,
            1 => BusState::ErrorWarning,
            2 => BusState::ErrorPassive,
            3 => BusState::BusOff,
            4 => BusState::Stopped,
            255 => BusState::Unknown,
            v => {
                return Err(WireError::BadValue {
                    field: "bus_state",
                    value: v.into(),
                })
            }
        })
    }
}
/// Settings and capabilities of a CAN device, announced in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CanSettings {
    /// The bus carries CAN FD (the local interface gets MTU 72).
    pub fd: bool,
    /// Nominal bit rate in bit/s (0 = unknown, e.g. a virtual bus).
    pub bitrate: u32,
    /// FD data-phase bit rate in bit/s (0 = none or unknown).
    pub data_bitrate: u32,
    /// Frames sent to the bus older than this on arrival are dropped and counted (0 = no limit).
    pub max_age_us: u32,
}

impl CanSettings {
    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u8(u8::from(self.fd));
        w.u32(self.bitrate);
        w.u32(self.data_bitrate);
        w.u32(self.max_age_us);
    }
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let fd = match r.u8("can_fd")? {
            0 => false,
            1 => true,
            v => {
                return Err(WireError::BadValue {
                    field: "can_fd",
                    value: v.into(),
                })
            }
        };
        Ok(CanSettings {
            fd,
            bitrate: r.u32("bitrate")?,
            data_bitrate: r.u32("data_bitrate")?,
            max_age_us: r.u32("max_age_us")?,
        })
    }
}

/// Counters a CAN device reports, so no frame is lost silently. All are totals since the
/// device stream was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CanCounters {
    /// Frames received from the bus and sent to this client.
    pub rx_frames: u64,
    /// Frames from this client written to the bus.
    pub tx_frames: u64,
    /// Frames from the bus this client could not take in time (its queue was full).
    pub rx_dropped: u64,
    /// Frames from this client not written because they were older than `max_age_us`.
    pub tx_stale: u64,
    /// Frames from this client the bus refused (buffer full beyond the wait limit, bus off...).
    pub tx_failed: u64,
    /// Frames the kernel dropped before we could read them (`SO_RXQ_OVFL`).
    pub kernel_dropped: u64,
    pub state: BusState,
    /// Frames from this client not written because a newer frame of the same id had been
    /// written (latest-wins delivery, version 4). Encoded after `state`, only when not 0: a
    /// version-3 client never asks for latest-wins delivery, so never sees it.
    pub tx_superseded: u64,
}

impl CanCounters {
    pub(crate) const ENCODED_LEN: usize = 6 * 8 + 1 + 8;
    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        for v in [
            self.rx_frames,
            self.tx_frames,
            self.rx_dropped,
            self.tx_stale,
            self.tx_failed,
            self.kernel_dropped,
        ] {
            w.u64(v);
        }
        w.u8(self.state.to_u8());
        if self.tx_superseded != 0 {
            w.u64(self.tx_superseded);
        }
    }
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut c = CanCounters {
            rx_frames: r.u64("rx_frames")?,
            tx_frames: r.u64("tx_frames")?,
            rx_dropped: r.u64("rx_dropped")?,
            tx_stale: r.u64("tx_stale")?,
            tx_failed: r.u64("tx_failed")?,
            kernel_dropped: r.u64("kernel_dropped")?,
            state: BusState::from_u8(r.u8("bus_state")?)?,
            tx_superseded: 0,
        };
        if !r.is_empty() {
            // Present only when not 0: one encoding per value.
            c.tx_superseded = match r.u64("tx_superseded")? {
                0 => {
                    return Err(WireError::BadValue {
                        field: "tx_superseded",
                        value: 0,
                    })
                }
                n => n,
            };
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: u32, fl: u8, data: &[u8]) -> CanFrame {
        CanFrame {
            id,
            flags: fl,
            len: data.len() as u8,
            data: data.to_vec(),
            timestamp_us: 0,
        }
    }

    #[test]
    fn validation_follows_the_bus_rules() {
        assert!(frame(0x123, 0, &[0xde, 0xad]).validate().is_ok());
        assert!(
            frame(0x800, 0, &[]).validate().is_err(),
            "11-bit id overflow"
        );
        assert!(frame(0x1234_5678, flags::EFF, &[]).validate().is_ok());
        assert!(frame(0x2000_0000, flags::EFF, &[]).validate().is_err());
        assert!(
            frame(0x1, 0, &[0; 9]).validate().is_err(),
            "classic is at most 8"
        );
        assert!(frame(0x1, flags::FD | flags::BRS, &[0; 64])
            .validate()
            .is_ok());
        assert!(
            frame(0x1, flags::FD, &[0; 8]).validate().is_ok(),
            "FD of 8 bytes stays FD"
        );
        assert!(
            frame(0x1, flags::FD, &[0; 9]).validate().is_err(),
            "9 is no FD length"
        );
        assert!(
            frame(0x1, flags::BRS, &[]).validate().is_err(),
            "BRS needs FD"
        );
        assert!(
            frame(0x1, flags::FD | flags::RTR, &[]).validate().is_err(),
            "no RTR in FD"
        );
        let rtr = CanFrame {
            id: 0x7ff,
            flags: flags::RTR,
            len: 4,
            data: vec![],
            timestamp_us: 0,
        };
        assert!(rtr.validate().is_ok());
        assert_eq!(rtr.to_string(), "7FF#R4");
        assert_eq!(
            frame(0x123, 0, &[0xde, 0xad, 0xbe, 0xef]).to_string(),
            "123#DEADBEEF"
        );
        assert_eq!(
            frame(0x123, flags::FD | flags::BRS, &[0x11, 0x22]).to_string(),
            "123##11122"
        );
    }
}
