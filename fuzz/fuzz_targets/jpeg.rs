//! Cuts arbitrary bytes as if a camera driver had delivered them as an MJPEG frame: the cut
//! must not panic, must be a prefix, and a shortened buffer must be a whole image (SOI...EOI).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let image = xoq_v4l2::jpeg::trim(data);
    assert!(data.starts_with(image));
    if image.len() < data.len() {
        assert!(image.starts_with(&[0xFF, 0xD8]) && image.ends_with(&[0xFF, 0xD9]));
    }
});
