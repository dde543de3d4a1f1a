//! Feeds arbitrary bytes to the wire decoders.
//!
//! 1. The input is pushed into a `FrameDecoder` in chunks whose size is chosen by the first
//!    byte, draining `next_message` after each chunk until it wants more bytes or fails; after
//!    a failure the decoder must keep failing with the same error.
//! 2. `Message::decode(data[0], &data[1..])` is tried on the raw input.
//! 3. `Message::from_frame(data)`: the input as one datagram; `from_frame_by` (a relay frame)
//!    agrees with it for the peer that may send the type and refuses it for the other.
//!
//! Every message that decodes is re-encoded; the re-encoding must decode to the same message
//! and respect its header's limit (and must be byte-identical to the body it came from).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xoq_wire::message::HEADER_LEN;
use xoq_wire::{FrameDecoder, Message, Peer};

fn check_reencode(m: &Message, original_body: Option<(u8, &[u8])>) {
    let bytes = m.to_bytes();
    assert!(bytes.len() >= HEADER_LEN);
    let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    assert_eq!(
        len,
        bytes.len() - HEADER_LEN,
        "header length does not match body"
    );
    let body = &bytes[HEADER_LEN..];
    let again =
        Message::decode(bytes[0], body).expect("re-encoding of a decoded message must decode");
    assert_eq!(&again, m, "re-encoding decodes to a different message");
    // The same re-encoding, through the streaming decoder.
    let mut dec = FrameDecoder::new();
    dec.push(&bytes);
    assert_eq!(dec.next_message(), Ok(Some(m.clone())));
    assert_eq!(dec.next_message(), Ok(None));
    assert_eq!(dec.pending(), 0);
    if let Some((t, orig)) = original_body {
        assert_eq!(bytes[0], t, "re-encoded with a different type");
        assert_eq!(body, orig, "encoding is not canonical");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };

    // 1. Streaming decoder, chunked.
    let chunk = usize::from(first) + 1;
    let mut dec = FrameDecoder::new();
    let mut failed = None;
    let mut consumed = 0usize;
    'outer: for piece in data.chunks(chunk) {
        dec.push(piece);
        loop {
            let before = dec.pending();
            match dec.next_message() {
                Ok(Some(m)) => {
                    let used = before - dec.pending();
                    let frame = &data[consumed..consumed + used];
                    consumed += used;
                    check_reencode(&m, Some((frame[0], &frame[HEADER_LEN..])));
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break 'outer;
                }
            }
        }
    }
    if let Some(e) = failed {
        dec.push(data);
        assert_eq!(
            dec.next_message(),
            Err(e.clone()),
            "decoder must stay poisoned"
        );
        assert_eq!(dec.next_message(), Err(e), "decoder must stay poisoned");
    } else {
        assert_eq!(dec.pending(), data.len() - consumed);
    }

    // 2. One body, decoded directly.
    if let Ok(m) = Message::decode(first, rest) {
        check_reencode(&m, Some((first, rest)));
    }

    // 3. The whole input as one datagram (an audio packet's carrier): exactly one framed
    //    message, canonical.
    let whole = Message::from_frame(data);
    if let Ok(m) = &whole {
        assert_eq!(m.to_bytes(), data, "datagram encoding is not canonical");
        check_reencode(m, None);
    }
    // 4. The same as a relay frame from either peer: the decoder of one's own direction agrees,
    //    and at most a type both may send decodes from both.
    let by = [Peer::Client, Peer::Server].map(|p| Message::from_frame_by(data, p));
    for m in by.iter().flatten() {
        assert_eq!(Ok(m), whole.as_ref(), "a relay frame decoded differently");
    }
    if whole.is_ok() {
        assert!(by.iter().any(|r| r.is_ok()), "no peer may send a decodable frame");
    }
});
