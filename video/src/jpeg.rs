//! JPEG images as cameras deliver them: drivers may hand over a buffer longer than the image
//! (padding, or stale bytes after the end-of-image marker).

/// The image without anything after its last end-of-image marker (`FF D9`); the whole buffer
/// if it has none.
pub fn trim(data: &[u8]) -> &[u8] {
    match data.windows(2).rposition(|w| w == [0xFF, 0xD9]) {
        Some(i) => &data[..i + 2],
        None => data,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trailing_bytes_go() {
        assert_eq!(
            super::trim(&[0xFF, 0xD8, 1, 0xFF, 0xD9, 0, 0, 0]),
            &[0xFF, 0xD8, 1, 0xFF, 0xD9]
        );
        assert_eq!(super::trim(&[1, 2, 3]), &[1, 2, 3]);
    }
}
