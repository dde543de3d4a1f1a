//! Feeds arbitrary requests and events to the CUSE tty: whatever the kernel (or a bug in our
//! reading of its protocol) sends, and whatever the link does, the tty must not panic, and
//! every reply it produces must be a well-formed `/dev/cuse` reply.
//!
//! The input is a script of steps; each starts with a byte choosing what happens:
//! 0 a kernel request (an opcode choice, a body length and the body, framed with a header
//! and parsed as read from `/dev/cuse`), 1 data from the remote (1-byte length), 2 a modem status, 3 a `Drained`,
//! 4 link down, 5 link up, 6 time passes (1 byte, in 10 ms), 7 the link takes a message.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use xoq_cuse::abi::{opcode, parse_request, IN_HEADER_LEN, OUT_HEADER_LEN};
use xoq_cuse::{Tty, TtyConfig};
use xoq_wire::{LineSettings, Message, ModemStatus};

fn check_replies(tty: &mut Tty) {
    for r in tty.take_replies() {
        assert!(r.len() >= OUT_HEADER_LEN);
        let len = u32::from_le_bytes([r[0], r[1], r[2], r[3]]) as usize;
        assert_eq!(len, r.len(), "reply length field");
        let error = i32::from_le_bytes([r[4], r[5], r[6], r[7]]);
        assert!(error <= 0 || error == 1, "errors are negative errnos (or a poll notification)");
        assert!(error == 0 || len == OUT_HEADER_LEN || error == 1, "an error carries no data");
    }
}

const OPCODES: [u32; 10] = [
    opcode::OPEN,
    opcode::READ,
    opcode::WRITE,
    opcode::RELEASE,
    opcode::FLUSH,
    opcode::FSYNC,
    opcode::INTERRUPT,
    opcode::IOCTL,
    opcode::POLL,
    opcode::DESTROY,
];

fn request(op: u32, unique: u64, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(IN_HEADER_LEN + body.len());
    v.extend_from_slice(&((IN_HEADER_LEN + body.len()) as u32).to_le_bytes());
    v.extend_from_slice(&op.to_le_bytes());
    v.extend_from_slice(&unique.to_le_bytes());
    v.resize(IN_HEADER_LEN, 0);
    v.extend_from_slice(body);
    v
}

fuzz_target!(|data: &[u8]| {
    // The raw bytes as one request.
    let _ = parse_request(data);

    let mut now = Instant::now();
    let mut tty = Tty::new(TtyConfig {
        line_number: 0,
        read_only: data.first().is_some_and(|b| b & 0x80 != 0),
        line: LineSettings::default(),
        modem: ModemStatus::default(),
    });
    tty.link_up(LineSettings::default(), ModemStatus::default(), true, now);
    let mut unique = 0u64;
    let mut rest = data.get(1..).unwrap_or_default();
    let mut take = |n: usize| -> Option<&[u8]> {
        if rest.len() < n {
            return None;
        }
        let (a, b) = rest.split_at(n);
        rest = b;
        Some(a)
    };
    while let Some(step) = take(1) {
        match step[0] % 8 {
            0 => {
                // opcode choice, body length, body: framed with a correct header, so the
                // fuzzer spends its time on the tty rather than on the length field.
                let Some(h) = take(2) else { break };
                let Some(body) = take(usize::from(h[1])) else { break };
                unique += 1;
                let raw = request(OPCODES[usize::from(h[0]) % OPCODES.len()], unique, body);
                if let Ok(req) = parse_request(&raw) {
                    tty.handle(&req, now);
                }
            }
            1 => {
                let Some(l) = take(1) else { break };
                let Some(d) = take(usize::from(l[0])) else { break };
                tty.remote(Message::Data(d.to_vec()), now);
            }
            2 => {
                let Some(b) = take(1) else { break };
                let s = ModemStatus {
                    dtr: b[0] & 1 != 0,
                    rts: b[0] & 2 != 0,
                    cts: b[0] & 4 != 0,
                    dsr: b[0] & 8 != 0,
                    dcd: b[0] & 16 != 0,
                    ri: b[0] & 32 != 0,
                };
                tty.remote(Message::ModemStatus(s), now);
            }
            3 => {
                let Some(b) = take(2) else { break };
                let m = if b[0] & 1 == 0 {
                    Message::Drained { seq: u32::from(b[1]) }
                } else {
                    // Any count, even one the port could not have reached.
                    Message::TxProgress {
                        written: u64::from(b[1]) << (b[0] >> 2),
                        queued: u32::from(b[0] >> 1),
                    }
                };
                tty.remote(m, now);
            }
            4 => tty.link_down(now),
            5 => tty.link_up(LineSettings::default(), ModemStatus::default(), true, now),
            6 => {
                let Some(b) = take(1) else { break };
                now += Duration::from_millis(10 * u64::from(b[0]));
                tty.tick(now);
            }
            _ => {
                let _ = tty.pop_uplink();
            }
        }
        check_replies(&mut tty);
    }
});
