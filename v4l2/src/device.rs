//! An open video node and its format negotiation.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::sys::*;

/// A picture format on the device: pixel format, size, rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameFormat {
    pub fourcc: u32,
    pub width: u32,
    pub height: u32,
    /// Frames per second (0 when the driver does not say).
    pub fps: u32,
}

/// An open `/dev/videoN`.
pub struct Device {
    pub(crate) file: File,
    pub path: PathBuf,
}

/// One ioctl on `fd` with a pointer to `arg`.
pub(crate) fn ioctl<T>(fd: &File, req: u64, arg: &mut T) -> io::Result<()> {
    loop {
        // SAFETY: every `req` used with this helper is a VIDIOC_* whose argument is exactly a
        // `T` (the sys structs are size-checked against the header); `arg` is a live, exclusive
        // reference for the duration of the call.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as libc::Ioctl, arg as *mut T) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl Device {
    /// Opens a video node read-write.
    pub fn open(path: &Path) -> io::Result<Device> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
            })?;
        Ok(Device {
            file,
            path: path.to_path_buf(),
        })
    }

    /// (driver, card label, device capabilities).
    pub fn query(&self) -> io::Result<(String, String, u32)> {
        let mut c: v4l2_capability = zeroed();
        ioctl(&self.file, VIDIOC_QUERYCAP, &mut c)?;
        let caps = if c.capabilities & CAP_DEVICE_CAPS != 0 {
            c.device_caps
        } else {
            c.capabilities
        };
        Ok((cstr(&c.driver), cstr(&c.card), caps))
    }

    /// Pixel formats offered for buffers of `buf_type`.
    pub fn formats(&self, buf_type: u32) -> Vec<u32> {
        let mut v = Vec::new();
        for index in 0..64 {
            let mut d: v4l2_fmtdesc = zeroed();
            d.index = index;
            d.type_ = buf_type;
            if ioctl(&self.file, VIDIOC_ENUM_FMT, &mut d).is_err() {
                break;
            }
            v.push(d.pixelformat);
        }
        v
    }

    /// Discrete sizes of `fourcc` (empty if the driver lists none, or a range).
    pub fn sizes(&self, fourcc: u32) -> Vec<(u32, u32)> {
        let mut v = Vec::new();
        for index in 0..64 {
            let mut s: v4l2_frmsizeenum = zeroed();
            s.index = index;
            s.pixel_format = fourcc;
            if ioctl(&self.file, VIDIOC_ENUM_FRAMESIZES, &mut s).is_err()
                || s.type_ != FRMSIZE_TYPE_DISCRETE
            {
                break;
            }
            v.push((s.size[0], s.size[1]));
        }
        v
    }

    /// Discrete frame rates of `fourcc` at a size, in whole frames per second.
    pub fn rates(&self, fourcc: u32, width: u32, height: u32) -> Vec<u32> {
        let mut v = Vec::new();
        for index in 0..64 {
            let mut i: v4l2_frmivalenum = zeroed();
            i.index = index;
            i.pixel_format = fourcc;
            i.width = width;
            i.height = height;
            if ioctl(&self.file, VIDIOC_ENUM_FRAMEINTERVALS, &mut i).is_err()
                || i.type_ != FRMIVAL_TYPE_DISCRETE
                || i.interval[0] == 0
            {
                break;
            }
            let fps = (i.interval[1] + i.interval[0] / 2) / i.interval[0];
            if fps > 0 && !v.contains(&fps) {
                v.push(fps);
            }
        }
        v
    }

    /// The format in force for `buf_type`, with its rate if the driver reports one.
    pub fn format(&self, buf_type: u32) -> io::Result<FrameFormat> {
        let mut f: v4l2_format = zeroed();
        f.type_ = buf_type;
        ioctl(&self.file, VIDIOC_G_FMT, &mut f)?;
        // SAFETY (union read): for VIDEO_CAPTURE / VIDEO_OUTPUT the kernel fills `pix`.
        let pix = f.fmt.pix;
        let mut p: v4l2_streamparm = zeroed();
        p.type_ = buf_type;
        let fps = match ioctl(&self.file, VIDIOC_G_PARM, &mut p) {
            Ok(()) if p.timeperframe.numerator > 0 => {
                (p.timeperframe.denominator + p.timeperframe.numerator / 2)
                    / p.timeperframe.numerator
            }
            _ => 0,
        };
        Ok(FrameFormat {
            fourcc: pix.pixelformat,
            width: pix.width,
            height: pix.height,
            fps,
        })
    }

    /// Sets the format for `buf_type` (packed formats: no row padding) and, if `fps` is not 0,
    /// the frame rate. Returns what the driver chose, which may differ.
    pub fn set_format(&self, buf_type: u32, want: FrameFormat) -> io::Result<FrameFormat> {
        let mut f: v4l2_format = zeroed();
        f.type_ = buf_type;
        f.fmt.pix.width = want.width;
        f.fmt.pix.height = want.height;
        f.fmt.pix.pixelformat = want.fourcc;
        f.fmt.pix.field = FIELD_NONE;
        f.fmt.pix.colorspace = COLORSPACE_SRGB;
        let (bpl, size) = match want.fourcc {
            crate::YUYV => (want.width * 2, want.width * want.height * 2),
            crate::YU12 | crate::NV12 => (want.width, want.width * want.height * 3 / 2),
            _ => (0, want.width * want.height * 2),
        };
        f.fmt.pix.bytesperline = bpl;
        f.fmt.pix.sizeimage = size;
        ioctl(&self.file, VIDIOC_S_FMT, &mut f)?;
        if want.fps > 0 {
            let mut p: v4l2_streamparm = zeroed();
            p.type_ = buf_type;
            p.timeperframe = v4l2_fract {
                numerator: 1,
                denominator: want.fps,
            };
            // Not every driver takes a rate; the format still stands.
            let _ = ioctl(&self.file, VIDIOC_S_PARM, &mut p);
        }
        self.format(buf_type)
    }
}
