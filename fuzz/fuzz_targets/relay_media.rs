//! What a relay hands a mounter in the players' media format: arbitrary bytes as a camera's
//! catalog (`read_catalog`, JSON a hostile server or relay wrote) and as one frame of a
//! camera's or microphone's track (`decode_frame`).
//!
//! Whatever is accepted must be safe to use: a rendition's track name valid (it becomes a
//! subscription, and names nothing local), its size within 16..=8192 pixels; a frame's payload
//! no larger than the bytes it came in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xoq_moq::media;
use xoq_wire::is_valid_name;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = media::read_catalog(data) {
        assert!(is_valid_name(&r.track), "track {:?}", r.track);
        for side in [r.width, r.height] {
            assert!((16..=8192).contains(&side), "{r:?}");
        }
    }
    if let Ok((_, payload)) = media::decode_frame(bytes::Bytes::copy_from_slice(data)) {
        assert!(payload.len() <= data.len());
    }
});
