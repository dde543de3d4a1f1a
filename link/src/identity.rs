//! This host's ed25519 identity: created on first start, stored 0600, never shown.
//!
//! A key file is opened without following a symlink (`O_NOFOLLOW`: a link planted at its path
//! by someone else is refused, not read or written through), must be readable by its owner
//! only and, unless we are root, owned by us. It is created whole or not at all: written to
//! a temporary file in the same directory, synced, then linked into place, so a crash never
//! leaves an empty key that would block the next start, and two processes starting at once
//! end up with the same key.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use iroh::SecretKey;

/// Loads the secret key at `path`, or creates it (mode 0600, parent 0700) if it is missing.
///
/// A key file that group or others can read, that another user owns, or that is a symlink is
/// refused: the key is the host's identity.
pub fn load_or_create_key(path: &Path) -> Result<SecretKey> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => read_key(f, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key(path),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => bail!(
            "key file {} is a symbolic link; refusing to follow it (replace it by the key itself)",
            path.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot read key file {}", path.display())),
    }
}

fn read_key(mut f: File, path: &Path) -> Result<SecretKey> {
    let meta = f.metadata()?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "key file {} has mode {:o}, readable by others; run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    let me = nix::unistd::geteuid();
    if !me.is_root() && meta.uid() != me.as_raw() {
        bail!(
            "key file {} belongs to uid {}, not to this user ({me}); refusing another user's key",
            path.display(),
            meta.uid()
        );
    }
    let mut text = String::new();
    f.read_to_string(&mut text)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    parse_key(text.trim())
        .with_context(|| format!("key file {} is not a valid xoq key", path.display()))
}

fn parse_key(text: &str) -> Result<SecretKey> {
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(text.as_bytes())
        .context("not hex")?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected 32 bytes"))?;
    Ok(SecretKey::from_bytes(&arr))
}

fn create_key(path: &Path) -> Result<SecretKey> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            fs::create_dir_all(dir)
                .with_context(|| format!("cannot create key directory {}", dir.display()))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
    }
    let key = SecretKey::generate();
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        // create_new is O_EXCL: never opens an existing file or follows a link.
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        writeln!(f, "{}", data_encoding::HEXLOWER.encode(&key.to_bytes()))?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot create key file {}", path.display()));
    }
    // link() never replaces: if another process created the key meanwhile, use that one.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), id = %key.public(), "created a new identity key");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_key(path),
        Err(e) => Err(e).with_context(|| format!("cannot create key file {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_0600_then_reloads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/host.key");
        let a = load_or_create_key(&p).unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = load_or_create_key(&p).unwrap();
        assert_eq!(a.public(), b.public());
        let left: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn refuses_a_world_readable_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("host.key");
        load_or_create_key(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create_key(&p).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }

    #[test]
    fn refuses_a_key_path_that_is_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("elsewhere.key");
        load_or_create_key(&real).unwrap();
        let p = dir.path().join("host.key");
        std::os::unix::fs::symlink(&real, &p).unwrap();
        let e = load_or_create_key(&p).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        // A dangling link is not written through either.
        let p2 = dir.path().join("other.key");
        std::os::unix::fs::symlink(dir.path().join("target.key"), &p2).unwrap();
        assert!(load_or_create_key(&p2).is_err());
        assert!(!dir.path().join("target.key").exists());
    }

    #[test]
    fn an_empty_key_file_is_refused_with_its_path_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("host.key");
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&p)
            .unwrap();
        let e = format!("{:#}", load_or_create_key(&p).unwrap_err());
        assert!(e.contains("not a valid xoq key"), "{e}");
    }
}
