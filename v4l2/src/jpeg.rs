//! JPEG images as cameras deliver them: a driver may hand over a buffer longer than the image
//! (v4l2loopback reports its whole buffer, with the tail of older, longer images after the
//! current one). The image's true end is found by walking its marker segments.

/// The image alone: from its start-of-image marker to its end-of-image marker, found by
/// following the segment lengths and the entropy-coded data (where `FF` is always stuffed
/// or a restart marker). A buffer that does not parse as JPEG is returned whole.
pub fn trim(data: &[u8]) -> &[u8] {
    match image_len(data) {
        Some(n) => &data[..n],
        None => data,
    }
}

fn image_len(d: &[u8]) -> Option<usize> {
    if d.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut i = 2;
    loop {
        if *d.get(i)? != 0xFF {
            return None;
        }
        while *d.get(i)? == 0xFF {
            i += 1; // fill bytes
        }
        let marker = *d.get(i)?;
        i += 1;
        match marker {
            0xD9 => return Some(i),
            0xD0..=0xD7 | 0x01 => continue,
            _ => {
                let len = usize::from(u16::from_be_bytes([*d.get(i)?, *d.get(i + 1)?]));
                if len < 2 {
                    return None;
                }
                i += len;
                if marker == 0xDA {
                    // Entropy-coded data: runs to the next marker that is not a stuffed FF 00
                    // or a restart marker.
                    loop {
                        let j = i + d.get(i..)?.iter().position(|b| *b == 0xFF)?;
                        match *d.get(j + 1)? {
                            0x00 | 0xD0..=0xD7 | 0xFF => i = j + 1,
                            _ => {
                                i = j;
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::trim;

    /// SOI, an APP0 segment, SOS with entropy data (a stuffed FF 00, a restart marker), EOI.
    const IMAGE: &[u8] = &[
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xFF, 0xD9, // APP0 whose payload looks like EOI
        0xFF, 0xDA, 0x00, 0x02, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56, 0xFF, 0xD9,
    ];

    #[test]
    fn the_image_ends_at_its_own_end_marker_whatever_follows() {
        let mut buf = IMAGE.to_vec();
        // The tail of an older, longer image: it has an end marker too.
        buf.extend_from_slice(&[0x77, 0x88, 0xFF, 0xD9, 0x00, 0x00]);
        assert_eq!(trim(&buf), IMAGE);
        assert_eq!(trim(IMAGE), IMAGE);
    }

    #[test]
    fn what_is_not_jpeg_stays_whole() {
        assert_eq!(trim(&[1, 2, 3]), &[1, 2, 3]);
        assert_eq!(trim(&[0xFF, 0xD8, 0xFF]), &[0xFF, 0xD8, 0xFF]);
    }
}
