//! This host's ed25519 identity: created on first start, stored 0600, never shown.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use iroh::SecretKey;

/// Loads the secret key at `path`, or creates it (mode 0600, parent 0700) if it is missing.
///
/// A key file that group or others can read is refused: the key is the host's identity.
pub fn load_or_create_key(path: &Path) -> Result<SecretKey> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let mode = fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                bail!(
                    "key file {} has mode {:o}, readable by others; run `chmod 600 {}`",
                    path.display(),
                    mode & 0o777,
                    path.display()
                );
            }
            parse_key(text.trim())
                .with_context(|| format!("key file {} is not a valid xoq key", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key(path),
        Err(e) => Err(e).with_context(|| format!("cannot read key file {}", path.display())),
    }
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
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create key file {}", path.display()))?;
    writeln!(f, "{}", data_encoding::HEXLOWER.encode(&key.to_bytes()))?;
    f.sync_all()?;
    tracing::info!(path = %path.display(), id = %key.public(), "created a new identity key");
    Ok(key)
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
}
