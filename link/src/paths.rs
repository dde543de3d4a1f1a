//! Default locations of keys and files: system paths for root (the service), user paths else.

use std::path::PathBuf;

/// True when running as root, i.e. as the packaged system service.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Where this host's state lives: `/var/lib/xoq` for root, `$XDG_CONFIG_HOME/xoq` or
/// `~/.config/xoq` otherwise. `XOQ_STATE_DIR` overrides both.
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XOQ_STATE_DIR") {
        return PathBuf::from(d);
    }
    if is_root() {
        return PathBuf::from("/var/lib/xoq");
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME") {
        return PathBuf::from(d).join("xoq");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".config/xoq"),
        None => PathBuf::from(".xoq"),
    }
}

/// Where runtime sockets live: `/run/xoq` for root, `$XDG_RUNTIME_DIR/xoq` otherwise (falling
/// back to the state dir). `XOQ_RUNTIME_DIR` overrides both.
pub fn runtime_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XOQ_RUNTIME_DIR") {
        return PathBuf::from(d);
    }
    if is_root() {
        return PathBuf::from("/run/xoq");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => PathBuf::from(d).join("xoq"),
        None => state_dir().join("run"),
    }
}
