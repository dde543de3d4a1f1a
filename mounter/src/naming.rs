//! Stable local names: `ttyXOQ0`, `ttyXOQ1`, ... symlinks to the PTYs we create, in `/dev` for
//! root or a directory the user owns otherwise. We remove only links we made, and only while
//! they still point where we pointed them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Prefix of serial link names.
pub const SERIAL_PREFIX: &str = "ttyXOQ";

/// The directory links go in by default.
pub fn default_link_dir() -> PathBuf {
    if xoq_link::paths::is_root() {
        PathBuf::from("/dev")
    } else {
        xoq_link::paths::runtime_dir()
    }
}

/// A symlink we created.
#[derive(Debug)]
pub struct Link {
    pub path: PathBuf,
    target: PathBuf,
}

impl Link {
    /// Creates `dir/PREFIX<n>` -> `target` at the lowest free index from `first`. A link whose
    /// target no longer exists is stale (a crashed mounter) and is replaced; a live link or any
    /// other file is left alone and the next index is tried.
    pub fn create(dir: &Path, prefix: &str, first: u32, target: &Path) -> Result<Link> {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create link directory {}", dir.display()))?;
        for n in first..first + 256 {
            let path = dir.join(format!("{prefix}{n}"));
            match fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() && !path.exists() => {
                    tracing::info!(link = %path.display(), "replacing a stale link");
                    fs::remove_file(&path)?;
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot inspect {}", path.display()))
                }
            }
            match std::os::unix::fs::symlink(target, &path) {
                Ok(()) => {
                    return Ok(Link {
                        path,
                        target: target.to_path_buf(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "cannot create {}; run as root or pass --link-dir",
                            path.display()
                        )
                    })
                }
            }
        }
        anyhow::bail!("no free {prefix}N name in {}", dir.display())
    }

    /// Removes the link if it is still ours.
    pub fn remove(&self) {
        match fs::read_link(&self.path) {
            Ok(t) if t == self.target => {
                if let Err(e) = fs::remove_file(&self.path) {
                    tracing::warn!(link = %self.path.display(), "cannot remove link: {e}");
                }
            }
            _ => {
                tracing::debug!(link = %self.path.display(), "link changed by someone else; left alone")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_index_replaces_stale_and_removes_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("target-live");
        fs::write(&live, b"").unwrap();
        std::os::unix::fs::symlink(&live, dir.path().join("ttyXOQ0")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("ttyXOQ1")).unwrap();
        let a = Link::create(dir.path(), SERIAL_PREFIX, 0, &live).unwrap();
        assert_eq!(
            a.path,
            dir.path().join("ttyXOQ1"),
            "stale link is reused, live one skipped"
        );
        let b = Link::create(dir.path(), SERIAL_PREFIX, 0, &live).unwrap();
        assert_eq!(b.path, dir.path().join("ttyXOQ2"));
        fs::remove_file(&b.path).unwrap();
        std::os::unix::fs::symlink(dir.path().join("other"), &b.path).unwrap();
        b.remove();
        assert!(
            fs::symlink_metadata(&b.path).is_ok(),
            "a link someone replaced is not ours"
        );
        a.remove();
        assert!(fs::symlink_metadata(&a.path).is_err());
        assert!(fs::symlink_metadata(dir.path().join("ttyXOQ0")).is_ok());
    }
}
