//! The /dev/cuse codec: requests as the kernel lays them out parse to the right operation,
//! malformed ones are errors (never panics), and our replies have the kernel's layout.

use xoq_cuse::abi::*;

fn request(op: u32, unique: u64, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((IN_HEADER_LEN + body.len()) as u32).to_le_bytes());
    v.extend_from_slice(&op.to_le_bytes());
    v.extend_from_slice(&unique.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes()); // nodeid
    v.extend_from_slice(&[0; 8]); // uid, gid
    v.extend_from_slice(&4242u32.to_le_bytes()); // pid
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(body);
    v
}

#[test]
fn cuse_init_and_its_reply() {
    let mut body = Vec::new();
    for v in [7u32, 38, 0, 1] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    let raw = request(opcode::CUSE_INIT, 1, &body);
    let r = parse_request(&raw).unwrap();
    assert_eq!((r.unique, r.pid), (1, 4242));
    assert_eq!(
        r.op,
        Op::CuseInit {
            major: 7,
            minor: 38,
            flags: 1
        }
    );
    let reply = cuse_init_reply(1, 38, "ttyXOQ0", 65536);
    let info = b"DEVNAME=ttyXOQ0\0";
    assert_eq!(reply.len(), OUT_HEADER_LEN + 72 + info.len());
    assert_eq!(reply[..4], (reply.len() as u32).to_le_bytes());
    assert_eq!(reply[4..8], 0i32.to_le_bytes());
    assert_eq!(reply[8..16], 1u64.to_le_bytes());
    let u = |i: usize| u32::from_le_bytes(reply[16 + 4 * i..20 + 4 * i].try_into().unwrap());
    assert_eq!(
        (u(0), u(1)),
        (7, MAX_MINOR),
        "we answer with at most our minor"
    );
    assert_eq!(u(3), CUSE_UNRESTRICTED_IOCTL);
    assert_eq!((u(4), u(5)), (65536, 65536));
    assert_eq!(&reply[16 + 72..], info);
}

#[test]
fn write_and_ioctl_carry_their_data() {
    let mut b = vec![0u8; WRITE_IN_LEN];
    b[0..8].copy_from_slice(&9u64.to_le_bytes());
    b[16..20].copy_from_slice(&3u32.to_le_bytes());
    b[32..36].copy_from_slice(&0o4000u32.to_le_bytes());
    b.extend_from_slice(b"abc");
    let raw = request(opcode::WRITE, 5, &b);
    assert_eq!(
        parse_request(&raw).unwrap().op,
        Op::Write {
            fh: 9,
            flags: 0o4000,
            data: b"abc"
        }
    );
    let mut b = vec![0u8; 32];
    b[12..16].copy_from_slice(&0x5418u32.to_le_bytes());
    b[16..24].copy_from_slice(&0x1000u64.to_le_bytes());
    b[24..28].copy_from_slice(&4u32.to_le_bytes());
    b[28..32].copy_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&6u32.to_le_bytes());
    let raw = request(opcode::IOCTL, 6, &b);
    let Op::Ioctl {
        cmd, arg, input, ..
    } = parse_request(&raw).unwrap().op
    else {
        panic!("not an ioctl")
    };
    assert_eq!((cmd, arg, input), (0x5418, 0x1000, &6u32.to_le_bytes()[..]));
}

#[test]
fn malformed_requests_are_errors() {
    assert!(matches!(
        parse_request(&[0; 10]),
        Err(AbiError::Short { what: "header", .. })
    ));
    let mut raw = request(opcode::OPEN, 1, &[0; 8]);
    raw.push(0);
    assert!(matches!(
        parse_request(&raw),
        Err(AbiError::LengthMismatch { .. })
    ));
    let raw = request(opcode::READ, 1, &[0; 12]);
    assert!(matches!(
        parse_request(&raw),
        Err(AbiError::Short {
            what: "fuse_read_in",
            ..
        })
    ));
    let mut b = vec![0u8; WRITE_IN_LEN];
    b[16..20].copy_from_slice(&100u32.to_le_bytes());
    b.extend_from_slice(b"short");
    assert!(matches!(
        parse_request(&request(opcode::WRITE, 1, &b)),
        Err(AbiError::WriteSize {
            declared: 100,
            got: 5
        })
    ));
    let mut b = vec![0u8; 32];
    b[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        parse_request(&request(opcode::IOCTL, 1, &b)),
        Err(AbiError::IoctlSize { .. })
    ));
    assert_eq!(
        parse_request(&request(9999, 1, &[])).unwrap().op,
        Op::Other(9999)
    );
}

#[test]
fn replies_have_the_kernels_layout() {
    let e = reply_err(77, libc::EAGAIN);
    assert_eq!(e.len(), OUT_HEADER_LEN);
    assert_eq!(e[4..8], (-libc::EAGAIN).to_le_bytes());
    let r = ioctl_retry(3, Some((0x10, 44)), Some((0x10, 44)));
    assert_eq!(r.len(), OUT_HEADER_LEN + 16 + 32);
    assert_eq!(r[20..24], ioctl_flags::RETRY.to_le_bytes());
    assert_eq!((r[24], r[28]), (1, 1), "one input and one output iovec");
    let n = poll_wakeup(12);
    assert_eq!(n[4..8], 1i32.to_le_bytes(), "FUSE_NOTIFY_POLL");
    assert_eq!(n[8..16], 0u64.to_le_bytes(), "notifications have unique 0");
    assert_eq!(n[16..], 12u64.to_le_bytes());
}
