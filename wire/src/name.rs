//! The one definition of a valid server, client or device name.
//!
//! Names cross the link and then become parts of local names the mounter creates as root:
//! `/dev/xoq/<server>-<device>` links, `<dir>/<device>.y4m` files, PipeWire node names,
//! v4l2loopback labels. So a name is deliberately boring: 1 to [`MAX_NAME`] bytes of ASCII
//! letters, digits, `.`, `_` and `-`, starting with a letter or a digit. That excludes `/`,
//! `..` as a whole name, NUL, spaces, control characters and anything that could start an
//! option (`-x`). The decoder refuses any other name with [`WireError::BadName`], and the
//! mounter checks again where it builds a path.

use crate::error::WireError;
use crate::limits::MAX_NAME;

/// Whether `s` is a valid name: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
pub fn is_valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    b.len() <= MAX_NAME
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// `Ok` for a valid name, otherwise the error that says which field and why.
pub fn check_name(field: &'static str, s: &str) -> Result<(), WireError> {
    if is_valid_name(s) {
        Ok(())
    } else {
        Err(WireError::BadName {
            field,
            name: printable(s),
        })
    }
}

/// `s` made safe to show in a message or a log: at most [`MAX_NAME`] characters, anything
/// outside printable ASCII escaped.
pub fn printable(s: &str) -> String {
    s.chars()
        .take(MAX_NAME)
        .flat_map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                vec![c]
            } else {
                c.escape_default().collect()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_are_valid() {
        for s in [
            "ttyUSB0",
            "can0",
            "cam0",
            "mic-left",
            "robot.lab_3",
            "0",
            "usb-FTDI_FT232R_USB_UART_A10K-if00-port0",
            &"a".repeat(MAX_NAME),
        ] {
            assert!(is_valid_name(s), "{s}");
        }
    }

    #[test]
    fn names_that_could_become_paths_or_options_are_not() {
        for s in [
            "",
            ".",
            "..",
            "../../etc/udev/rules.d/99",
            "a/b",
            "/etc",
            "-rf",
            ".hidden",
            "nul\0byte",
            "new\nline",
            "sp ace",
            "tab\t",
            "ünïcode",
            "a:b",
            "a\\b",
            &"a".repeat(MAX_NAME + 1),
        ] {
            assert!(!is_valid_name(s), "{s:?}");
            assert!(check_name("device", s).is_err());
        }
    }

    #[test]
    fn a_refused_name_is_shown_escaped() {
        let e = check_name("server_name", "../x\n\u{1b}[31m").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("server_name"), "{text}");
        assert!(!text.contains('\n') && !text.contains('\u{1b}'), "{text}");
    }
}
