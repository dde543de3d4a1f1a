//! Raw pictures and the conversions the pipeline needs: a camera gives YUYV, NV12 or I420; the
//! encoder takes I420; the loopback device is fed YUYV.

/// How the bytes of a raw picture are laid out (no padding between rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Planar 4:2:0: Y (w*h), then U and V (w/2*h/2 each). V4L2 `YU12`.
    I420,
    /// Packed 4:2:2: Y0 U Y1 V per two pixels. V4L2 `YUYV`.
    Yuyv,
    /// Y plane, then interleaved UV at half resolution. V4L2 `NV12`.
    Nv12,
}

impl PixelFormat {
    /// Bytes of one picture of this size.
    pub fn frame_len(self, width: usize, height: usize) -> usize {
        match self {
            PixelFormat::I420 | PixelFormat::Nv12 => width * height * 3 / 2,
            PixelFormat::Yuyv => width * height * 2,
        }
    }
}

/// One raw picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Picture {
    /// A picture whose buffer has exactly the size its format needs; `None` otherwise.
    pub fn new(format: PixelFormat, width: usize, height: usize, data: Vec<u8>) -> Option<Self> {
        (width.is_multiple_of(2)
            && height.is_multiple_of(2)
            && data.len() == format.frame_len(width, height))
        .then_some(Picture {
            format,
            width,
            height,
            data,
        })
    }

    /// The luma plane (I420 and NV12 only).
    pub fn y_plane(&self) -> &[u8] {
        match self.format {
            PixelFormat::I420 | PixelFormat::Nv12 => &self.data[..self.width * self.height],
            PixelFormat::Yuyv => &[],
        }
    }

    /// This picture as I420 (a copy when it already is).
    pub fn to_i420(&self) -> Picture {
        let (w, h) = (self.width, self.height);
        let data = match self.format {
            PixelFormat::I420 => self.data.clone(),
            PixelFormat::Nv12 => nv12_to_i420(&self.data, w, h),
            PixelFormat::Yuyv => yuyv_to_i420(&self.data, w, h),
        };
        Picture {
            format: PixelFormat::I420,
            width: w,
            height: h,
            data,
        }
    }

    /// This picture as YUYV.
    pub fn to_yuyv(&self) -> Picture {
        let (w, h) = (self.width, self.height);
        let data = match self.format {
            PixelFormat::Yuyv => self.data.clone(),
            PixelFormat::I420 => i420_to_yuyv(&self.data, w, h),
            PixelFormat::Nv12 => i420_to_yuyv(&self.to_i420().data, w, h),
        };
        Picture {
            format: PixelFormat::Yuyv,
            width: w,
            height: h,
            data,
        }
    }
}

fn nv12_to_i420(src: &[u8], w: usize, h: usize) -> Vec<u8> {
    let ys = w * h;
    let cs = ys / 4;
    let mut out = vec![0u8; ys + 2 * cs];
    out[..ys].copy_from_slice(&src[..ys]);
    let (u, v) = out[ys..].split_at_mut(cs);
    for (i, uv) in src[ys..ys + 2 * cs].chunks_exact(2).enumerate() {
        u[i] = uv[0];
        v[i] = uv[1];
    }
    out
}

/// 4:2:2 to 4:2:0: chroma of each row pair averaged.
fn yuyv_to_i420(src: &[u8], w: usize, h: usize) -> Vec<u8> {
    let ys = w * h;
    let cw = w / 2;
    let mut out = vec![0u8; ys + ys / 2];
    let (y, c) = out.split_at_mut(ys);
    let (u, v) = c.split_at_mut(ys / 4);
    for row in 0..h {
        let line = &src[row * w * 2..(row + 1) * w * 2];
        for (i, px) in line.chunks_exact(4).enumerate() {
            y[row * w + 2 * i] = px[0];
            y[row * w + 2 * i + 1] = px[2];
        }
    }
    for crow in 0..h / 2 {
        let a = &src[2 * crow * w * 2..(2 * crow + 1) * w * 2];
        let b = &src[(2 * crow + 1) * w * 2..(2 * crow + 2) * w * 2];
        for i in 0..cw {
            u[crow * cw + i] =
                (u16::from(a[4 * i + 1]) + u16::from(b[4 * i + 1])).div_ceil(2) as u8;
            v[crow * cw + i] =
                (u16::from(a[4 * i + 3]) + u16::from(b[4 * i + 3])).div_ceil(2) as u8;
        }
    }
    out
}

/// 4:2:0 to 4:2:2: each chroma row used for two picture rows.
fn i420_to_yuyv(src: &[u8], w: usize, h: usize) -> Vec<u8> {
    let ys = w * h;
    let cw = w / 2;
    let (y, c) = src.split_at(ys);
    let (u, v) = c.split_at(ys / 4);
    let mut out = vec![0u8; ys * 2];
    for row in 0..h {
        let crow = row / 2;
        let line = &mut out[row * w * 2..(row + 1) * w * 2];
        for (i, px) in line.chunks_exact_mut(4).enumerate() {
            px[0] = y[row * w + 2 * i];
            px[1] = u[crow * cw + i];
            px[2] = y[row * w + 2 * i + 1];
            px[3] = v[crow * cw + i];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i420_survives_yuyv_and_nv12_round_trips() {
        let (w, h) = (8, 4);
        let data: Vec<u8> = (0..PixelFormat::I420.frame_len(w, h))
            .map(|i| (i * 37 % 251) as u8)
            .collect();
        let p = Picture::new(PixelFormat::I420, w, h, data).unwrap();
        let yuyv = p.to_yuyv();
        assert_eq!(yuyv.data.len(), w * h * 2);
        // Chroma is duplicated on the way to 4:2:2 and averaged back: exact for I420 input.
        assert_eq!(yuyv.to_i420(), p);
        let ys = w * h;
        let mut nv12 = p.data[..ys].to_vec();
        for i in 0..ys / 4 {
            nv12.push(p.data[ys + i]);
            nv12.push(p.data[ys + ys / 4 + i]);
        }
        let n = Picture::new(PixelFormat::Nv12, w, h, nv12).unwrap();
        assert_eq!(n.to_i420(), p);
    }

    #[test]
    fn wrong_sizes_are_refused() {
        assert!(Picture::new(PixelFormat::I420, 4, 4, vec![0; 23]).is_none());
        assert!(Picture::new(PixelFormat::Yuyv, 3, 4, vec![0; 24]).is_none());
    }
}
