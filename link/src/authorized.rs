//! The server's authorized-clients file: which client keys may open which devices, and how.
//!
//! Default deny: a key that is not listed gets nothing. The file is TOML, one table per client:
//!
//! ```toml
//! [clients.4f1c...e2]          # the client's id (hex public key)
//! comment = "lab laptop"
//! devices = { "*" = "ro", ttyUSB0 = "rw" }
//! ```
//!
//! An exact device name wins over `*`. The server reads the file on every new connection and
//! watches it (`server/src/grants.rs`), so `xoq-server authorize` and `revoke` take effect
//! without a restart, on live connections too.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use iroh::EndpointId;
use serde::{Deserialize, Serialize};
use xoq_wire::Access;

/// The wildcard device name: every device of the server.
pub const ALL_DEVICES: &str = "*";

/// One client's grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientGrant {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// Device name (or `*`) to `"ro"` or `"rw"`.
    #[serde(default)]
    pub devices: BTreeMap<String, AccessName>,
}

/// `"ro"` or `"rw"` in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessName {
    #[serde(rename = "ro")]
    Ro,
    #[serde(rename = "rw")]
    Rw,
}

impl From<AccessName> for Access {
    fn from(a: AccessName) -> Access {
        match a {
            AccessName::Ro => Access::ReadOnly,
            AccessName::Rw => Access::ReadWrite,
        }
    }
}

impl From<Access> for AccessName {
    fn from(a: Access) -> AccessName {
        match a {
            Access::ReadOnly => AccessName::Ro,
            Access::ReadWrite => AccessName::Rw,
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizedClients {
    #[serde(default)]
    pub clients: BTreeMap<String, ClientGrant>,
}

impl AuthorizedClients {
    /// Reads the file; a missing file is an empty list (everyone denied).
    pub fn load(path: &Path) -> Result<Self> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let parsed: Self = toml::from_str(&text).with_context(|| {
            format!("{} is not a valid authorized-clients file", path.display())
        })?;
        for id in parsed.clients.keys() {
            id.parse::<EndpointId>().map_err(|e| {
                anyhow::anyhow!("{}: `{id}` is not a client id ({e})", path.display())
            })?;
        }
        Ok(parsed)
    }

    /// Loads the file, applies `change` and saves the result, holding an exclusive lock on
    /// `<file>.lock` from the read to the rename, so two `xoq-server authorize` runs at once
    /// cannot lose an update.
    pub fn update<T>(path: &Path, change: impl FnOnce(&mut Self) -> T) -> Result<T> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
        }
        let lock_path = path.with_extension("lock");
        let lock_file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
        let mut auth = Self::load(path)?;
        let out = change(&mut auth);
        auth.save(path)?;
        Ok(out)
    }

    /// Writes the file atomically (temporary file, then rename), mode 0600. Use [`Self::update`]
    /// for a read-modify-write.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let body = format!(
            "# xoq-server authorized clients: edit with `xoq-server authorize`.\n{}",
            toml::to_string_pretty(self)?
        );
        // Keep the owner, group and mode an existing file has (the packaged service reads it as
        // user xoq through group ownership); a new file is 0600.
        let existing = fs::metadata(path).ok();
        let mode = existing
            .as_ref()
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0o600);
        // O_EXCL: never written through a file or a link someone put there.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(body.as_bytes())?;
        if let Some(m) = &existing {
            std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()))
                .with_context(|| format!("cannot keep the owner of {}", path.display()))?;
        }
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
        Ok(())
    }

    /// Adds or replaces a client's grants.
    pub fn grant(&mut self, id: EndpointId, grant: ClientGrant) {
        self.clients.insert(id.to_string(), grant);
    }

    /// Removes a client; true if it was listed.
    pub fn revoke(&mut self, id: &EndpointId) -> bool {
        self.clients.remove(&id.to_string()).is_some()
    }

    /// The grants of this client, if it is listed at all.
    pub fn client(&self, id: &EndpointId) -> Option<&ClientGrant> {
        self.clients.get(&id.to_string())
    }

    /// What this client may do with this device; `None` means nothing at all.
    pub fn access(&self, id: &EndpointId, device: &str) -> Option<Access> {
        let c = self.client(id)?;
        c.devices
            .get(device)
            .or_else(|| c.devices.get(ALL_DEVICES))
            .map(|a| Access::from(*a))
    }
}

/// Parses `--devices 'ttyUSB0,can0:rw,cam0:ro'`; entries without a mode get `default`.
/// An empty spec means every device.
pub fn parse_device_spec(spec: &str, default: Access) -> Result<BTreeMap<String, AccessName>> {
    let mut out = BTreeMap::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, mode) = match item.rsplit_once(':') {
            Some((n, "rw")) => (n, Access::ReadWrite),
            Some((n, "ro")) => (n, Access::ReadOnly),
            Some((_, m)) => bail!("`{item}`: access must be `ro` or `rw`, not `{m}`"),
            None => (item, default),
        };
        if name.is_empty() || name.len() > xoq_wire::limits::MAX_NAME {
            bail!(
                "`{item}`: a device name is 1 to {} bytes",
                xoq_wire::limits::MAX_NAME
            );
        }
        out.insert(name.to_string(), mode.into());
    }
    if out.is_empty() {
        out.insert(ALL_DEVICES.to_string(), default.into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some_id() -> EndpointId {
        iroh::SecretKey::generate().public()
    }

    #[test]
    fn default_deny_and_exact_name_beats_wildcard() {
        let id = some_id();
        let mut a = AuthorizedClients::default();
        assert_eq!(a.access(&id, "ttyUSB0"), None);
        let devices = parse_device_spec("*:ro,ttyUSB0:rw", Access::ReadWrite).unwrap();
        a.grant(
            id,
            ClientGrant {
                comment: String::new(),
                devices,
            },
        );
        assert_eq!(a.access(&id, "ttyUSB0"), Some(Access::ReadWrite));
        assert_eq!(a.access(&id, "cam0"), Some(Access::ReadOnly));
        assert_eq!(a.access(&some_id(), "ttyUSB0"), None);
    }

    #[test]
    fn spec_defaults_and_errors() {
        let d = parse_device_spec("a,b:ro", Access::ReadWrite).unwrap();
        assert_eq!(d["a"], AccessName::Rw);
        assert_eq!(d["b"], AccessName::Ro);
        let all = parse_device_spec("", Access::ReadOnly).unwrap();
        assert_eq!(all[ALL_DEVICES], AccessName::Ro);
        assert!(parse_device_spec("a:rx", Access::ReadOnly).is_err());
    }

    #[test]
    fn save_then_load_round_trips_and_bad_ids_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("authorized_clients.toml");
        let mut a = AuthorizedClients::default();
        a.grant(
            some_id(),
            ClientGrant {
                comment: "x".into(),
                devices: parse_device_spec("ttyUSB0", Access::ReadOnly).unwrap(),
            },
        );
        a.save(&p).unwrap();
        assert_eq!(AuthorizedClients::load(&p).unwrap(), a);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        a.save(&p).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640,
            "mode kept"
        );
        fs::write(&p, "[clients.nothex]\ndevices = {}\n").unwrap();
        assert!(AuthorizedClients::load(&p).is_err());
    }

    #[test]
    fn two_writers_at_once_lose_no_update() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authorized_clients.toml");
        let writers: Vec<_> = (0..2u8)
            .map(|w| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..25u8 {
                        let id = iroh::SecretKey::from_bytes(&[w * 100 + i + 1; 32]).public();
                        AuthorizedClients::update(&path, |a| a.grant(id, ClientGrant::default()))
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(AuthorizedClients::load(&path).unwrap().clients.len(), 50);
    }
}
