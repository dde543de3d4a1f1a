//! SocketCAN frames in their kernel layout (`struct can_frame` / `struct canfd_frame`) to and
//! from wire frames, shared by the server's CAN backend and the mounter's vcan sink so both
//! ends agree bit for bit. Plain byte handling: no unsafe, no C structs.

use std::time::{SystemTime, UNIX_EPOCH};

use xoq_wire::can::flags;
use xoq_wire::CanFrame;

/// Bytes of a classic frame (`CAN_MTU`) and of an FD frame (`CANFD_MTU`).
pub const CAN_MTU: usize = 16;
pub const CANFD_MTU: usize = 72;

const CAN_EFF_FLAG: u32 = 0x8000_0000;
const CAN_RTR_FLAG: u32 = 0x4000_0000;
const CAN_ERR_FLAG: u32 = 0x2000_0000;
const CAN_EFF_MASK: u32 = 0x1fff_ffff;
const CAN_SFF_MASK: u32 = 0x7ff;
const CANFD_BRS: u8 = 0x01;
const CANFD_ESI: u8 = 0x02;
const CANFD_FDF: u8 = 0x04;

/// Microseconds since the Unix epoch.
pub fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Decodes what a raw CAN socket returned (16 or 72 bytes). `None` for any other size or an
/// impossible length.
pub fn decode_raw(buf: &[u8], timestamp_us: u64) -> Option<CanFrame> {
    if buf.len() != CAN_MTU && buf.len() != CANFD_MTU {
        return None;
    }
    let word = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let len = buf[4];
    let mut fl = 0;
    if buf.len() == CANFD_MTU {
        fl |= flags::FD;
        if buf[5] & CANFD_BRS != 0 {
            fl |= flags::BRS;
        }
        if buf[5] & CANFD_ESI != 0 {
            fl |= flags::ESI;
        }
    }
    if word & CAN_ERR_FLAG != 0 {
        fl |= flags::ERR;
    } else if word & CAN_EFF_FLAG != 0 {
        fl |= flags::EFF;
    }
    if word & CAN_RTR_FLAG != 0 && fl & flags::FD == 0 {
        fl |= flags::RTR;
    }
    let id = if fl & (flags::EFF | flags::ERR) != 0 {
        word & CAN_EFF_MASK
    } else {
        word & CAN_SFF_MASK
    };
    let max = buf.len() - 8;
    let data = if fl & flags::RTR != 0 {
        Vec::new()
    } else {
        buf.get(8..8 + usize::from(len).min(max))?.to_vec()
    };
    let f = CanFrame {
        id,
        flags: fl,
        len,
        data,
        timestamp_us,
    };
    f.validate().ok()?;
    Some(f)
}

/// Encodes a valid wire frame in kernel layout into `out`; returns the bytes to write.
pub fn encode_raw(f: &CanFrame, out: &mut [u8; CANFD_MTU]) -> usize {
    *out = [0; CANFD_MTU];
    let mut word = f.id;
    if f.is_extended() {
        word |= CAN_EFF_FLAG;
    }
    if f.is_error() {
        word |= CAN_ERR_FLAG;
    }
    if f.is_rtr() {
        word |= CAN_RTR_FLAG;
    }
    out[..4].copy_from_slice(&word.to_ne_bytes());
    out[4] = f.len;
    let n = if f.is_fd() {
        out[5] = CANFD_FDF
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
        CANFD_MTU
    } else {
        CAN_MTU
    };
    let d = f.data.len().min(n - 8);
    out[8..8 + d].copy_from_slice(&f.data[..d]);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(f: CanFrame) {
        f.validate().expect("valid test frame");
        let mut buf = [0u8; CANFD_MTU];
        let n = encode_raw(&f, &mut buf);
        assert_eq!(n, if f.is_fd() { CANFD_MTU } else { CAN_MTU });
        assert_eq!(decode_raw(&buf[..n], f.timestamp_us), Some(f));
    }

    #[test]
    fn every_frame_shape_survives_the_kernel_layout() {
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

    #[test]
    fn impossible_input_is_refused() {
        assert_eq!(decode_raw(&[0u8; 20], 0), None, "neither MTU");
        let mut b = [0u8; CAN_MTU];
        b[4] = 9;
        assert_eq!(decode_raw(&b, 0), None, "classic length 9");
    }
}
