//! Conversions between SocketCAN frames and wire frames, shared by the server's CAN backend and
//! the mounter's vcan sink so both ends agree bit for bit.

use std::time::{SystemTime, UNIX_EPOCH};

use socketcan::{CanAnyFrame, EmbeddedFrame, Frame};
use xoq_wire::can::flags;
use xoq_wire::CanFrame;

const CAN_EFF_FLAG: u32 = 0x8000_0000;
const CAN_RTR_FLAG: u32 = 0x4000_0000;
const CAN_ERR_FLAG: u32 = 0x2000_0000;
const CAN_EFF_MASK: u32 = 0x1fff_ffff;
const CANFD_BRS: u8 = 0x01;
const CANFD_ESI: u8 = 0x02;
const CANFD_FDF: u8 = 0x04;

/// Microseconds since the Unix epoch.
pub fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A frame as read from a CAN socket, with its receive time.
pub fn from_socketcan(f: &CanAnyFrame, timestamp_us: u64) -> CanFrame {
    let (word, mut fl, len, data) = match f {
        CanAnyFrame::Normal(d) => (d.id_word(), 0, d.dlc() as u8, d.data().to_vec()),
        CanAnyFrame::Remote(r) => (r.id_word(), flags::RTR, r.dlc() as u8, Vec::new()),
        CanAnyFrame::Error(e) => (
            e.id_word(),
            flags::ERR,
            e.data().len() as u8,
            e.data().to_vec(),
        ),
        CanAnyFrame::Fd(d) => {
            let mut fl = flags::FD;
            if d.is_brs() {
                fl |= flags::BRS;
            }
            if d.is_esi() {
                fl |= flags::ESI;
            }
            (d.id_word(), fl, d.data().len() as u8, d.data().to_vec())
        }
    };
    if word & CAN_EFF_FLAG != 0 && word & CAN_ERR_FLAG == 0 {
        fl |= flags::EFF;
    }
    let id = if word & (CAN_EFF_FLAG | CAN_ERR_FLAG) != 0 {
        word & CAN_EFF_MASK
    } else {
        word & 0x7ff
    };
    CanFrame {
        id,
        flags: fl,
        len,
        data,
        timestamp_us,
    }
}

/// A wire frame as a SocketCAN frame to write. The frame must have passed `validate()`.
pub fn to_socketcan(f: &CanFrame) -> CanAnyFrame {
    let mut word = f.id;
    if f.is_extended() {
        word |= CAN_EFF_FLAG;
    }
    if f.is_error() {
        word |= CAN_ERR_FLAG;
    }
    if f.is_fd() {
        // SAFETY: canfd_frame is plain old data; all-zero is a valid value.
        let mut raw: libc::canfd_frame = unsafe { std::mem::zeroed() };
        raw.can_id = word;
        raw.len = f.len;
        raw.flags = CANFD_FDF
            | if f.flags & flags::BRS != 0 {
                CANFD_BRS
            } else {
                0
            }
            | if f.flags & flags::ESI != 0 {
                CANFD_ESI
            } else {
                0
            };
        let n = f.data.len().min(raw.data.len());
        raw.data[..n].copy_from_slice(&f.data[..n]);
        CanAnyFrame::from(raw)
    } else {
        if f.is_rtr() {
            word |= CAN_RTR_FLAG;
        }
        // SAFETY: can_frame is plain old data; all-zero is a valid value.
        let mut raw: libc::can_frame = unsafe { std::mem::zeroed() };
        raw.can_id = word;
        raw.can_dlc = f.len;
        let n = f.data.len().min(raw.data.len());
        raw.data[..n].copy_from_slice(&f.data[..n]);
        CanAnyFrame::from(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(f: CanFrame) {
        f.validate().expect("valid test frame");
        let back = from_socketcan(&to_socketcan(&f), f.timestamp_us);
        assert_eq!(back, f);
    }

    #[test]
    fn every_frame_shape_survives_socketcan() {
        round_trip(CanFrame {
            id: 0x123,
            flags: 0,
            len: 4,
            data: vec![0xde, 0xad, 0xbe, 0xef],
            timestamp_us: 7,
        });
        round_trip(CanFrame {
            id: 0x1234_5678,
            flags: flags::EFF,
            len: 1,
            data: vec![1],
            timestamp_us: 0,
        });
        round_trip(CanFrame {
            id: 0x7ff,
            flags: flags::RTR,
            len: 3,
            data: vec![],
            timestamp_us: 0,
        });
        round_trip(CanFrame {
            id: 0x4,
            flags: flags::ERR,
            len: 8,
            data: vec![0, 4, 0, 0, 0, 0, 0, 0],
            timestamp_us: 0,
        });
        round_trip(CanFrame {
            id: 0x42,
            flags: flags::FD | flags::BRS,
            len: 64,
            data: (0..64).collect(),
            timestamp_us: 0,
        });
        round_trip(CanFrame {
            id: 0x42,
            flags: flags::FD,
            len: 8,
            data: vec![9; 8],
            timestamp_us: 0,
        });
        round_trip(CanFrame {
            id: 0x1fff_ffff,
            flags: flags::FD | flags::EFF | flags::ESI,
            len: 12,
            data: vec![1; 12],
            timestamp_us: 0,
        });
    }
}
