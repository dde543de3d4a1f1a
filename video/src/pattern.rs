//! The simulated camera's picture: a moving gradient (something for the encoder to work on)
//! with the frame number written into it as two rows of 16 large blocks, the number's bits
//! and their complement, each block white (1) or black (0). Blocks of at least 16x16 pixels,
//! aligned to macroblocks, read back exactly after H.264 or JPEG coding at any sane quality;
//! the complement row tells a real reading from noise.

use crate::picture::{Picture, PixelFormat};

/// Bits of the frame number carried.
pub const BITS: usize = 16;
const WHITE: u8 = 235;
const BLACK: u8 = 16;

/// Side of a block for a picture this wide: the largest multiple of 16 that fits 16 blocks
/// across (at least 8, for tiny test pictures).
pub fn block_side(width: usize) -> usize {
    ((width / BITS) / 16 * 16).max(8)
}

/// Renders frame `n` (the low 16 bits are written into it) as I420.
pub fn render(width: usize, height: usize, n: u32) -> Picture {
    let ys = width * height;
    let mut data = vec![0u8; ys + ys / 2];
    let shift = (n as usize).wrapping_mul(4);
    for y in 0..height {
        for x in 0..width {
            let v = ((x + shift) % width) * 160 / width + y * 60 / height.max(1) + 20;
            data[y * width + x] = v as u8;
        }
    }
    let (cw, ch) = (width / 2, height / 2);
    for y in 0..ch {
        for x in 0..cw {
            data[ys + y * cw + x] = (96 + (x + shift / 2) % cw * 64 / cw) as u8;
            data[ys + ys / 4 + y * cw + x] = (160 - y * 64 / ch) as u8;
        }
    }
    let b = block_side(width);
    let number = n as u16;
    for bit in 0..BITS {
        let one = number >> (BITS - 1 - bit) & 1 == 1;
        for (row, value) in [(0, one), (1, !one)] {
            fill_block(&mut data, width, height, bit * b, row * b, b, value);
        }
    }
    Picture {
        format: PixelFormat::I420,
        width,
        height,
        data,
    }
}

/// Adds sensor-like grain to a rendered picture's luma: each pixel moves by up to
/// `amplitude` either way, from a generator seeded by the frame number, so the same frame
/// always gets the same grain (a receiver can render the reference) and no two frames share
/// it (the encoder cannot predict it away). A real camera's noise is what makes its stream
/// need megabits; the plain pattern needs a few hundred kilobits at any size.
pub fn add_grain(p: &mut Picture, n: u32, amplitude: u8) {
    if amplitude == 0 {
        return;
    }
    let span = 2 * u32::from(amplitude) + 1;
    let mut state = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let ys = p.width * p.height;
    for px in &mut p.data[..ys] {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let r = (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32;
        let delta = (r % span) as i32 - i32::from(amplitude);
        *px = (i32::from(*px) + delta).clamp(16, 235) as u8;
    }
}

fn fill_block(data: &mut [u8], w: usize, h: usize, x0: usize, y0: usize, b: usize, one: bool) {
    let ys = w * h;
    for y in y0..(y0 + b).min(h) {
        for x in x0..(x0 + b).min(w) {
            data[y * w + x] = if one { WHITE } else { BLACK };
            // Grey chroma, so the block is white or black whatever the background.
            data[ys + (y / 2) * (w / 2) + x / 2] = 128;
            data[ys + ys / 4 + (y / 2) * (w / 2) + x / 2] = 128;
        }
    }
}

/// Reads the frame number from a luma plane; `None` if the blocks are not there (a picture
/// that is not the pattern, or one damaged beyond reading).
pub fn read(y_plane: &[u8], width: usize, height: usize) -> Option<u16> {
    let b = block_side(width);
    if 2 * b > height || BITS * b > width || y_plane.len() < width * height {
        return None;
    }
    let mean = |x0: usize, y0: usize| -> u32 {
        // The central half of the block: edges may ring after lossy coding.
        let (lo, hi) = (b / 4, b - b / 4);
        let mut sum = 0u32;
        for y in y0 + lo..y0 + hi {
            for x in x0 + lo..x0 + hi {
                sum += u32::from(y_plane[y * width + x]);
            }
        }
        sum / ((hi - lo) * (hi - lo)) as u32
    };
    let mut n = 0u16;
    for bit in 0..BITS {
        let top = mean(bit * b, 0) > 125;
        let bottom = mean(bit * b, b) > 125;
        if top == bottom {
            return None;
        }
        n = n << 1 | u16::from(top);
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_reads_back_and_other_pictures_do_not() {
        for (w, h) in [(640, 480), (1280, 720), (320, 240)] {
            for n in [0u32, 1, 2, 255, 256, 12345, 65535, 65536 + 7] {
                let p = render(w, h, n);
                assert_eq!(read(p.y_plane(), w, h), Some(n as u16), "{w}x{h} #{n}");
            }
        }
        assert_eq!(read(&vec![128; 640 * 480], 640, 480), None);
    }

    #[test]
    fn grain_keeps_the_number_and_differs_per_frame() {
        let (w, h) = (640, 480);
        let mut a = render(w, h, 7);
        add_grain(&mut a, 7, 12);
        let mut again = render(w, h, 7);
        add_grain(&mut again, 7, 12);
        assert_eq!(a.data, again.data, "the same frame gets the same grain");
        assert_ne!(a.data, render(w, h, 7).data);
        assert_eq!(read(a.y_plane(), w, h), Some(7));
        let mut b = render(w, h, 8);
        add_grain(&mut b, 8, 12);
        let moved = a.data.iter().zip(&b.data).filter(|(x, y)| x != y).count();
        assert!(moved > w * h / 2);
    }

    #[test]
    fn the_pattern_moves() {
        assert_ne!(
            render(64, 48, 1).data[64 * 40..],
            render(64, 48, 2).data[64 * 40..]
        );
    }
}
