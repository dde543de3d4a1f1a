//! The v4l2loopback control device, `/dev/v4l2loopback` (module 0.13 and later; Debian 12's
//! 0.12.7 has none): add a loopback video device with a card label at run time, and remove it.
//!
//! The ioctl numbers are the original ones (`0x4C80`..`0x4C82`): 0.13.x knows only these, and
//! 0.15.x still accepts them beside its new `_IOW('~', ...)` numbers. The configuration
//! structure has the same 72-byte layout in every release with a control device.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Where the control device appears.
pub const CONTROL_PATH: &str = "/dev/v4l2loopback";

const CTL_ADD: libc::c_ulong = 0x4C80;
const CTL_REMOVE: libc::c_ulong = 0x4C81;
const CTL_QUERY: libc::c_ulong = 0x4C82;

/// Longest card label, in bytes (the field holds 32 with the terminating NUL).
pub const MAX_LABEL: usize = 31;
/// Buffers of a device we add. v4l2loopback writes each frame into the next buffer of its
/// ring even while a reader has that buffer dequeued, so a reader copying a frame is safe
/// only if it is done before the writer comes round: the module's default of 2 buffers leaves
/// one frame interval (a reader preempted for 70 ms at 15 fps got a torn picture); 8 leave
/// seven.
pub const ADDED_BUFFERS: i32 = 8;

/// `struct v4l2_loopback_config`. Zero in a limit means the module's default.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopbackConfig {
    /// `/dev/videoN` wanted, or -1 for the first free number.
    pub output_nr: i32,
    /// Ignored by released modules (the old `capture_nr`); set like `output_nr`.
    pub unused: i32,
    pub card_label: [u8; 32],
    pub min_width: u32,
    pub max_width: u32,
    pub min_height: u32,
    pub max_height: u32,
    /// 0 = the module's default; never above 32.
    pub max_buffers: i32,
    pub max_openers: i32,
    pub debug: i32,
    /// 0: the device offers output only until a producer streams, then capture only (what
    /// the module option `exclusive_caps=1` does, and what Chrome needs to list it); 1: both.
    pub announce_all_caps: i32,
}

const _: () = assert!(std::mem::size_of::<LoopbackConfig>() == 72);

impl LoopbackConfig {
    /// A device with this label (cut to [`MAX_LABEL`] bytes at a character boundary),
    /// numbered by the module, with exclusive caps.
    pub fn labelled(label: &str) -> Self {
        let mut end = label.len().min(MAX_LABEL);
        while !label.is_char_boundary(end) {
            end -= 1;
        }
        let mut card_label = [0u8; 32];
        for (d, s) in card_label.iter_mut().zip(label[..end].bytes()) {
            *d = if s == 0 { b' ' } else { s };
        }
        LoopbackConfig {
            output_nr: -1,
            unused: -1,
            card_label,
            min_width: 0,
            max_width: 0,
            min_height: 0,
            max_height: 0,
            max_buffers: ADDED_BUFFERS,
            max_openers: 0,
            debug: 0,
            announce_all_caps: 0,
        }
    }

    pub fn label(&self) -> String {
        let end = self.card_label.iter().position(|&b| b == 0).unwrap_or(32);
        String::from_utf8_lossy(&self.card_label[..end]).into_owned()
    }
}

/// The open control device.
pub struct Control(File);

impl Control {
    /// Opens [`CONTROL_PATH`]. `NotFound` means the module is not loaded or older than 0.13;
    /// `PermissionDenied` that this user may not add devices (the node is root's).
    pub fn open() -> io::Result<Control> {
        Self::open_at(Path::new(CONTROL_PATH))
    }

    pub fn open_at(path: &Path) -> io::Result<Control> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(Control)
    }

    /// Adds a device; returns its number N (`/dev/videoN`), which may differ from the one asked
    /// for when another driver holds it.
    pub fn add(&self, cfg: &LoopbackConfig) -> io::Result<u32> {
        // SAFETY: ADD reads one `struct v4l2_loopback_config`, which `cfg` is (layout checked
        // above), alive for the call.
        let r = unsafe { libc::ioctl(self.0.as_raw_fd(), CTL_ADD, cfg as *const LoopbackConfig) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r as u32)
    }

    /// Removes `/dev/videoN`. `EBUSY` while a program has it open; `ENODEV` if it is not a
    /// loopback device.
    pub fn remove(&self, n: u32) -> io::Result<()> {
        // SAFETY: REMOVE takes the device number by value; no memory is passed.
        let r = unsafe { libc::ioctl(self.0.as_raw_fd(), CTL_REMOVE, n as libc::c_ulong) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The configuration of loopback device N (`ENODEV` if it is none).
    pub fn query(&self, n: u32) -> io::Result<LoopbackConfig> {
        let mut cfg = LoopbackConfig::labelled("");
        cfg.output_nr = n as i32;
        // SAFETY: QUERY reads and writes one `struct v4l2_loopback_config`; `cfg` is one,
        // exclusively borrowed for the call.
        let r = unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                CTL_QUERY,
                &mut cfg as *mut LoopbackConfig,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn layout_matches_the_module_header() {
        // Offsets of `struct v4l2_loopback_config` in v4l2loopback 0.13.2 and 0.15.x.
        let offsets = [
            offset_of!(LoopbackConfig, output_nr),
            offset_of!(LoopbackConfig, unused),
            offset_of!(LoopbackConfig, card_label),
            offset_of!(LoopbackConfig, min_width),
            offset_of!(LoopbackConfig, max_width),
            offset_of!(LoopbackConfig, min_height),
            offset_of!(LoopbackConfig, max_height),
            offset_of!(LoopbackConfig, max_buffers),
            offset_of!(LoopbackConfig, max_openers),
            offset_of!(LoopbackConfig, debug),
            offset_of!(LoopbackConfig, announce_all_caps),
        ];
        assert_eq!(offsets, [0, 4, 8, 40, 44, 48, 52, 56, 60, 64, 68]);
        assert_eq!(std::mem::align_of::<LoopbackConfig>(), 4);
    }

    #[test]
    fn labels_are_cut_at_31_bytes_on_a_character_boundary() {
        assert_eq!(
            LoopbackConfig::labelled("XoQ robot1 cam0").label(),
            "XoQ robot1 cam0"
        );
        let long = format!("XoQ {} cam0", "é".repeat(20));
        let l = LoopbackConfig::labelled(&long).label();
        assert!(l.len() <= MAX_LABEL && long.starts_with(&l), "{l}");
        assert_eq!(LoopbackConfig::labelled("a\0b").label(), "a b");
    }
}
