//! A hostile server's catalog: arbitrary bytes as the body of a `Welcome`, the message a
//! mounter running as root turns into local names (links, files, PipeWire nodes).
//!
//! Whatever decodes must be safe to use: the server's and every device's name valid (one
//! plain path component of `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 64 bytes), no name twice, at
//! most `MAX_DEVICES` devices, and the catalog must re-encode to exactly the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xoq_wire::limits::{MAX_DEVICES, MAX_NAME};
use xoq_wire::message::HEADER_LEN;
use xoq_wire::{is_valid_name, Message};

const WELCOME: u8 = 0x02;

fn safe(name: &str) -> bool {
    is_valid_name(name)
        && name.len() <= MAX_NAME
        && !name.contains(['/', '\0'])
        && name != "."
        && name != ".."
        && !name.starts_with(['-', '.'])
}

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::decode(WELCOME, data) else {
        return;
    };
    let Message::Welcome(w) = &m else {
        panic!("a Welcome body decoded as {}", m.name());
    };
    assert!(safe(&w.server_name), "server name {:?}", w.server_name);
    assert!(w.devices.len() <= MAX_DEVICES);
    for (i, d) in w.devices.iter().enumerate() {
        assert!(safe(&d.name), "device name {:?}", d.name);
        assert!(
            w.devices[..i].iter().all(|e| e.name != d.name),
            "{} twice",
            d.name
        );
    }
    assert_eq!(&m.to_bytes()[HEADER_LEN..], data, "catalog encoding is not canonical");
});
