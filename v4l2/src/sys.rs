//! The V4L2 kernel ABI we use (`<linux/videodev2.h>`), for 64-bit Linux. Field names follow
//! the header; sizes are checked at compile time against the header's.

#![allow(non_camel_case_types)]

pub const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
pub const BUF_TYPE_VIDEO_OUTPUT: u32 = 2;
pub const MEMORY_MMAP: u32 = 1;
pub const FIELD_NONE: u32 = 1;
pub const COLORSPACE_SRGB: u32 = 8;
pub const FRMSIZE_TYPE_DISCRETE: u32 = 1;
pub const FRMIVAL_TYPE_DISCRETE: u32 = 1;
pub const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
pub const CAP_VIDEO_OUTPUT: u32 = 0x0000_0002;
pub const CAP_READWRITE: u32 = 0x0100_0000;
pub const CAP_STREAMING: u32 = 0x0400_0000;
pub const CAP_DEVICE_CAPS: u32 = 0x8000_0000;
pub const CAP_TIMEPERFRAME: u32 = 0x1000;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_capability {
    pub driver: [u8; 16],
    pub card: [u8; 32],
    pub bus_info: [u8; 32],
    pub version: u32,
    pub capabilities: u32,
    pub device_caps: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_fmtdesc {
    pub index: u32,
    pub type_: u32,
    pub flags: u32,
    pub description: [u8; 32],
    pub pixelformat: u32,
    pub mbus_code: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_pix_format {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub bytesperline: u32,
    pub sizeimage: u32,
    pub colorspace: u32,
    pub priv_: u32,
    pub flags: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
    pub xfer_func: u32,
}

/// `struct v4l2_format`: the union is 200 bytes, 8-aligned (it holds pointers).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_format {
    pub type_: u32,
    pub fmt: v4l2_format_union,
}

#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct v4l2_format_union {
    pub pix: v4l2_pix_format,
    pub raw: [u8; 200 - 48],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_fract {
    pub numerator: u32,
    pub denominator: u32,
}

/// `struct v4l2_streamparm` with the capture/output member (same layout for both).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_streamparm {
    pub type_: u32,
    pub capability: u32,
    pub mode: u32,
    pub timeperframe: v4l2_fract,
    pub extendedmode: u32,
    pub buffers: u32,
    pub reserved: [u32; 4],
    pub raw: [u8; 200 - 40],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_frmsizeenum {
    pub index: u32,
    pub pixel_format: u32,
    pub type_: u32,
    /// discrete: width, height; stepwise: min_w, max_w, step_w, min_h, max_h, step_h.
    pub size: [u32; 6],
    pub reserved: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_frmivalenum {
    pub index: u32,
    pub pixel_format: u32,
    pub width: u32,
    pub height: u32,
    pub type_: u32,
    /// discrete: numerator, denominator; stepwise: min, max, step fractions.
    pub interval: [u32; 6],
    pub reserved: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_requestbuffers {
    pub count: u32,
    pub type_: u32,
    pub memory: u32,
    pub capabilities: u32,
    pub flags: u8,
    pub reserved: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_timecode {
    pub type_: u32,
    pub flags: u32,
    pub frames: u8,
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub userbits: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_buffer {
    pub index: u32,
    pub type_: u32,
    pub bytesused: u32,
    pub flags: u32,
    pub field: u32,
    pub timestamp: libc::timeval,
    pub timecode: v4l2_timecode,
    pub sequence: u32,
    pub memory: u32,
    /// `m.offset` for mmap buffers (the union is 8 bytes).
    pub m_offset: u64,
    pub length: u32,
    pub reserved2: u32,
    pub request_fd: u32,
}

const _: () = assert!(std::mem::size_of::<v4l2_capability>() == 104);
const _: () = assert!(std::mem::size_of::<v4l2_fmtdesc>() == 64);
const _: () = assert!(std::mem::size_of::<v4l2_format>() == 208);
const _: () = assert!(std::mem::size_of::<v4l2_streamparm>() == 204);
const _: () = assert!(std::mem::size_of::<v4l2_frmsizeenum>() == 44);
const _: () = assert!(std::mem::size_of::<v4l2_frmivalenum>() == 52);
const _: () = assert!(std::mem::size_of::<v4l2_requestbuffers>() == 20);
const _: () = assert!(std::mem::size_of::<v4l2_buffer>() == 88);

const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((b'V' as u64) << 8) | nr
}
const R: u64 = 2;
const W: u64 = 1;
const RW: u64 = 3;

pub const VIDIOC_QUERYCAP: u64 = ioc(R, 0, 104);
pub const VIDIOC_ENUM_FMT: u64 = ioc(RW, 2, 64);
pub const VIDIOC_G_FMT: u64 = ioc(RW, 4, 208);
pub const VIDIOC_S_FMT: u64 = ioc(RW, 5, 208);
pub const VIDIOC_REQBUFS: u64 = ioc(RW, 8, 20);
pub const VIDIOC_QUERYBUF: u64 = ioc(RW, 9, 88);
pub const VIDIOC_QBUF: u64 = ioc(RW, 15, 88);
pub const VIDIOC_DQBUF: u64 = ioc(RW, 17, 88);
pub const VIDIOC_STREAMON: u64 = ioc(W, 18, 4);
pub const VIDIOC_STREAMOFF: u64 = ioc(W, 19, 4);
pub const VIDIOC_G_PARM: u64 = ioc(RW, 21, 204);
pub const VIDIOC_S_PARM: u64 = ioc(RW, 22, 204);
pub const VIDIOC_ENUM_FRAMESIZES: u64 = ioc(RW, 74, 44);
pub const VIDIOC_ENUM_FRAMEINTERVALS: u64 = ioc(RW, 75, 52);

/// Plain-old-data ABI structs: every field an integer, a byte array, a `timeval` or another
/// such struct, so the all-zero bit pattern is a valid value.
///
/// # Safety
/// Implement only for types of which all-zero bytes are a valid value (no references, no
/// `NonZero`, no enums, no function pointers). Sealed: implemented below, in this module only.
pub unsafe trait Pod: Copy + sealed::Sealed {}

mod sealed {
    pub trait Sealed {}
}

macro_rules! pod {
    ($($t:ty),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        // SAFETY: a `#[repr(C)]` struct of integers, byte arrays, a timeval and other structs
        // of this list: all-zero is a valid value.
        unsafe impl Pod for $t {}
    )*};
}

pod!(
    v4l2_capability,
    v4l2_fmtdesc,
    v4l2_pix_format,
    v4l2_format,
    v4l2_format_union,
    v4l2_fract,
    v4l2_streamparm,
    v4l2_frmsizeenum,
    v4l2_frmivalenum,
    v4l2_requestbuffers,
    v4l2_timecode,
    v4l2_buffer,
);

/// All-zero value of a plain-old-data ABI struct; sound for every [`Pod`] type, and only
/// those types can be asked for.
pub fn zeroed<T: Pod>() -> T {
    // SAFETY: `T: Pod` guarantees all-zero bytes are a valid `T`.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_header() {
        assert_eq!(VIDIOC_QUERYCAP, 0x8068_5600);
        assert_eq!(VIDIOC_S_FMT, 0xC0D0_5605);
        assert_eq!(VIDIOC_DQBUF, 0xC058_5611);
        assert_eq!(VIDIOC_STREAMON, 0x4004_5612);
        assert_eq!(VIDIOC_S_PARM, 0xC0CC_5616);
        assert_eq!(VIDIOC_ENUM_FRAMESIZES, 0xC02C_564A);
    }
}
