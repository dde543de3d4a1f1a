//! Default locations of keys and files: system paths for root (the service), user paths else.

use std::path::{Component, Path, PathBuf};

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

/// Where `xoq-mount` keeps its key: `/var/lib/xoq-mount` for root (a directory of root's own:
/// `/var/lib/xoq` belongs to the server's service user, who must not be able to replace or
/// plant root's client key), the same as [`state_dir`] otherwise. `XOQ_STATE_DIR` overrides both.
pub fn mount_state_dir() -> PathBuf {
    if std::env::var_os("XOQ_STATE_DIR").is_none() && is_root() {
        return PathBuf::from("/var/lib/xoq-mount");
    }
    state_dir()
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

/// `dir/file` where `file` is built from names that came from the wire: refused unless it is
/// one plain path component (a valid name, see `xoq_wire::name`, optionally with a suffix such
/// as `.y4m`), so a hostile peer's name can never leave `dir`. The decoder has already checked
/// the names; this is the second check, where the path is made.
pub fn confined_join(dir: &Path, file: &str) -> anyhow::Result<PathBuf> {
    let stem = file.split_once('.').map_or(file, |(s, _)| s);
    let mut parts = Path::new(file).components();
    let one_plain_part =
        matches!(parts.next(), Some(Component::Normal(_))) && parts.next().is_none();
    if !one_plain_part
        || file.contains(['/', '\0'])
        || !xoq_wire::is_valid_name(if stem.is_empty() { file } else { stem })
        || !file
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        anyhow::bail!(
            "refusing to create \"{}\" in {}: not a plain file name (a peer sent a name that is not allowed)",
            xoq_wire::name::printable(file),
            dir.display()
        );
    }
    Ok(dir.join(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_name_joins() {
        let d = Path::new("/dev/xoq");
        assert_eq!(
            confined_join(d, "robot-cam0").unwrap(),
            d.join("robot-cam0")
        );
        assert_eq!(confined_join(d, "cam0.y4m").unwrap(), d.join("cam0.y4m"));
    }

    #[test]
    fn anything_that_could_leave_the_directory_is_refused() {
        let d = Path::new("/dev/xoq");
        for f in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/etc/passwd",
            "x\0y",
            "-x",
            ".y4m",
            "a b",
            "robot-../../etc",
        ] {
            assert!(confined_join(d, f).is_err(), "{f:?}");
        }
    }
}
