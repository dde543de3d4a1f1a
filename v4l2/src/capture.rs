//! Capture with mmap streaming: a few driver buffers mapped once, dequeued one frame at a
//! time, copied out, and queued again. Each frame comes with the driver's timestamp turned
//! into wall-clock microseconds.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::device::{ioctl, Device};
use crate::sys::*;

/// Driver buffers requested: enough to ride out a slow frame, few enough to stay live.
const BUFFERS: u32 = 4;
/// Frames in a row that may turn out overwritten while copied before `next` gives up.
const TORN_RETRIES: usize = 4;

struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

/// A streaming capture; stops streaming and unmaps when dropped.
pub struct Capture {
    dev: Device,
    bufs: Vec<Mapped>,
}

// SAFETY: the mapped buffers belong to this Capture alone and are only touched through &mut
// self, so moving it to another thread is sound.
unsafe impl Send for Capture {}

impl Capture {
    /// Maps the buffers and starts streaming (the format must be set).
    pub fn start(dev: Device) -> io::Result<Capture> {
        let mut req: v4l2_requestbuffers = zeroed();
        req.count = BUFFERS;
        req.type_ = BUF_TYPE_VIDEO_CAPTURE;
        req.memory = MEMORY_MMAP;
        ioctl(&dev.file, VIDIOC_REQBUFS, &mut req)?;
        if req.count == 0 {
            return Err(io::Error::other("the driver gave no capture buffers"));
        }
        let mut cap = Capture {
            dev,
            bufs: Vec::new(),
        };
        for index in 0..req.count {
            let mut b: v4l2_buffer = zeroed();
            b.index = index;
            b.type_ = BUF_TYPE_VIDEO_CAPTURE;
            b.memory = MEMORY_MMAP;
            ioctl(&cap.dev.file, VIDIOC_QUERYBUF, &mut b)?;
            // SAFETY: maps the driver buffer `index` at the offset and length it reported, on
            // our open fd; the mapping is unmapped in Drop and never outlives `self`.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    b.length as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    cap.dev.file.as_raw_fd(),
                    b.m_offset as libc::off_t,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            cap.bufs.push(Mapped {
                ptr,
                len: b.length as usize,
            });
            ioctl(&cap.dev.file, VIDIOC_QBUF, &mut b)?;
        }
        let mut t = BUF_TYPE_VIDEO_CAPTURE as libc::c_int;
        ioctl(&cap.dev.file, VIDIOC_STREAMON, &mut t)?;
        Ok(cap)
    }

    /// Waits up to `timeout` for the next frame; returns its bytes and capture time
    /// (microseconds since the Unix epoch).
    ///
    /// A buffer is not always ours while dequeued: v4l2loopback writes the next frame into its
    /// ring whether or not a reader holds that buffer (reader and writer share its pages). A
    /// frame whose buffer was written again while we copied it (its sequence number moved) is
    /// dropped, and the next one read instead.
    pub fn next(&mut self, timeout: Duration) -> io::Result<(Vec<u8>, u64)> {
        for _ in 0..TORN_RETRIES {
            let (data, captured, torn) = self.next_copy(timeout)?;
            if !torn {
                return Ok((data, captured));
            }
        }
        Err(io::Error::other(format!(
            "{}: {TORN_RETRIES} frames in a row were overwritten while read (is this reader \
             starved of CPU?)",
            self.dev.path.display()
        )))
    }

    /// One frame, copied out, and whether its buffer was written again meanwhile.
    fn next_copy(&mut self, timeout: Duration) -> io::Result<(Vec<u8>, u64, bool)> {
        let mut pfd = libc::pollfd {
            fd: self.dev.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis().min(60_000) as libc::c_int) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no frame from {} in {timeout:?}", self.dev.path.display()),
            ));
        }
        let mut b: v4l2_buffer = zeroed();
        b.type_ = BUF_TYPE_VIDEO_CAPTURE;
        b.memory = MEMORY_MMAP;
        ioctl(&self.dev.file, VIDIOC_DQBUF, &mut b)?;
        let m = self
            .bufs
            .get(b.index as usize)
            .ok_or_else(|| io::Error::other("the driver returned an unknown buffer"))?;
        let used = (b.bytesused as usize).min(m.len);
        let mut data = vec![0u8; used];
        // SAFETY: `m` maps `m.len` readable bytes and `data` has room for `used <= m.len`. The
        // bytes are copied, never borrowed: another process (v4l2loopback's writer) may write
        // the shared pages meanwhile, which `rewritten` detects.
        unsafe { std::ptr::copy_nonoverlapping(m.ptr as *const u8, data.as_mut_ptr(), used) };
        let torn = self.rewritten(&b);
        let captured = wall_clock_us(&b.timestamp);
        ioctl(&self.dev.file, VIDIOC_QBUF, &mut b)?;
        Ok((data, captured, torn))
    }

    /// Whether the driver has put a newer frame in `b`'s buffer since it was dequeued.
    fn rewritten(&self, b: &v4l2_buffer) -> bool {
        let mut q: v4l2_buffer = zeroed();
        q.index = b.index;
        q.type_ = b.type_;
        q.memory = b.memory;
        ioctl(&self.dev.file, VIDIOC_QUERYBUF, &mut q).is_ok_and(|_| q.sequence != b.sequence)
    }
}

/// Turns a driver timestamp (CLOCK_MONOTONIC) into microseconds since the Unix epoch.
fn wall_clock_us(ts: &libc::timeval) -> u64 {
    let now_wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let mut mono = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut mono) };
    let now_mono = mono.tv_sec as u64 * 1_000_000 + mono.tv_nsec as u64 / 1000;
    let frame_mono = ts.tv_sec as u64 * 1_000_000 + ts.tv_usec as u64;
    if frame_mono == 0 || frame_mono > now_mono {
        return now_wall;
    }
    now_wall.saturating_sub(now_mono - frame_mono)
}

impl Drop for Capture {
    fn drop(&mut self) {
        let mut t = BUF_TYPE_VIDEO_CAPTURE as libc::c_int;
        let _ = ioctl(&self.dev.file, VIDIOC_STREAMOFF, &mut t);
        for m in &self.bufs {
            // SAFETY: unmaps exactly the mappings made in `start`, once.
            unsafe { libc::munmap(m.ptr, m.len) };
        }
    }
}
