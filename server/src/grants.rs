//! The authorized-clients file, watched, so that live sessions follow it.
//!
//! `xoq-server authorize`/`revoke` (or any edit of the file) must reach connections that are
//! already open, not only new ones. The file is checked every [`POLL`] (its size, inode and
//! modification time; `authorize` replaces it by a rename, so the inode changes) and at once on
//! SIGHUP, and read again at every new connection. Each change is published on a watch
//! channel: a session closes itself when its client is no longer listed, and each device
//! stream closes when its grant is gone or narrower than what it was opened with. A file that
//! does not parse is reported and the last good one stays in force.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iroh::EndpointId;
use tokio::sync::watch;
use xoq_link::sync::lock;
use xoq_link::AuthorizedClients;
use xoq_wire::Access;

/// How often the file is looked at.
pub const POLL: Duration = Duration::from_millis(250);

/// What identifies one version of the file on disk.
type Stamp = Option<(u64, u64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// The grants in force, and everyone who follows them.
pub struct Grants {
    path: PathBuf,
    tx: watch::Sender<Arc<AuthorizedClients>>,
    seen: Mutex<Stamp>,
}

impl Grants {
    /// Reads the file. A missing one grants nothing; so does one that does not parse (reported,
    /// and read again when it changes).
    pub fn load(path: PathBuf) -> Arc<Grants> {
        let seen = stamp(&path);
        let auth = AuthorizedClients::load(&path).unwrap_or_else(|e| {
            tracing::error!("{e:#}; no client is authorized until it is fixed");
            AuthorizedClients::default()
        });
        let (tx, _) = watch::channel(Arc::new(auth));
        Arc::new(Grants {
            path,
            tx,
            seen: Mutex::new(seen),
        })
    }

    /// Reads the file again if it changed on disk; returns the grants in force. A file that
    /// does not parse leaves the last good grants in force and is reported.
    pub fn refresh(&self) -> Arc<AuthorizedClients> {
        let now = stamp(&self.path);
        let mut seen = lock(&self.seen);
        if *seen != now {
            *seen = now;
            match AuthorizedClients::load(&self.path) {
                Ok(a) => {
                    tracing::info!(file = %self.path.display(), clients = a.clients.len(), "authorized clients changed");
                    self.tx.send_replace(Arc::new(a));
                }
                Err(e) => {
                    tracing::error!("{e:#}; the previous grants stay in force until it is fixed")
                }
            }
        }
        self.current()
    }

    /// The grants in force, as last read (at most [`POLL`] old), without touching the file.
    pub fn current(&self) -> Arc<AuthorizedClients> {
        self.tx.borrow().clone()
    }

    /// Follows every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<AuthorizedClients>> {
        self.tx.subscribe()
    }

    /// Checks the file every [`POLL`] and on SIGHUP, until the server stops.
    pub async fn watch(self: Arc<Self>) {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(POLL);
        loop {
            match hup.as_mut() {
                Some(h) => tokio::select! {
                    _ = tick.tick() => {}
                    _ = h.recv() => tracing::info!("SIGHUP: reading the authorized clients again"),
                },
                None => {
                    tick.tick().await;
                }
            }
            self.refresh();
        }
    }
}

/// Resolves with what `check` returns once it returns something, checking the grants in
/// force now and after every change. Never resolves once the server stops publishing changes
/// (it is shutting down: nothing to enforce any more).
async fn until<T>(
    mut rx: watch::Receiver<Arc<AuthorizedClients>>,
    mut check: impl FnMut(&AuthorizedClients) -> Option<T>,
) -> T {
    loop {
        if let Some(v) = check(&rx.borrow_and_update()) {
            return v;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Resolves when `client`'s grant for `device` no longer covers `opened` (revoked, or narrowed
/// from read-write to read-only), with the reason to tell the client.
pub async fn lost(
    rx: watch::Receiver<Arc<AuthorizedClients>>,
    client: EndpointId,
    device: &str,
    opened: Access,
) -> String {
    until(rx, |auth| match auth.access(&client, device) {
        None => Some(format!("access to `{device}` was revoked on the server")),
        Some(a) if a < opened => Some(format!(
            "access to `{device}` was narrowed to read-only on the server; reopen it read-only"
        )),
        Some(_) => None,
    })
    .await
}

/// Resolves when `client` is no longer listed at all.
pub async fn client_removed(rx: watch::Receiver<Arc<AuthorizedClients>>, client: EndpointId) {
    until(rx, |auth| auth.client(&client).is_none().then_some(())).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use xoq_link::authorized::{parse_device_spec, ClientGrant};

    fn grant(auth: &mut AuthorizedClients, id: EndpointId, spec: &str) {
        auth.grant(
            id,
            ClientGrant {
                comment: String::new(),
                devices: parse_device_spec(spec, Access::ReadWrite).unwrap(),
            },
        );
    }

    #[tokio::test]
    async fn a_narrowed_or_revoked_grant_is_noticed_and_a_broken_file_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authorized_clients.toml");
        let id = iroh::SecretKey::from_bytes(&[7; 32]).public();
        let mut auth = AuthorizedClients::default();
        grant(&mut auth, id, "tty0,cam0:ro");
        auth.save(&path).unwrap();
        let g = Grants::load(path.clone());
        let tty = tokio::spawn(lost(g.subscribe(), id, "tty0", Access::ReadWrite));
        let cam = tokio::spawn(lost(g.subscribe(), id, "cam0", Access::ReadOnly));
        let gone = tokio::spawn(client_removed(g.subscribe(), id));

        // A file that does not parse: reported, the grants stay.
        std::fs::write(&path, "this is not toml [").unwrap();
        g.refresh();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!tty.is_finished() && !cam.is_finished() && !gone.is_finished());

        // tty0 narrowed to read-only: its read-write stream goes; cam0 (ro) stays.
        grant(&mut auth, id, "tty0:ro,cam0:ro");
        auth.save(&path).unwrap();
        g.refresh();
        let why = tokio::time::timeout(Duration::from_secs(5), tty)
            .await
            .unwrap()
            .unwrap();
        assert!(why.contains("narrowed to read-only"), "{why}");
        assert!(!cam.is_finished() && !gone.is_finished());

        // Revoked: everything goes.
        auth.revoke(&id);
        auth.save(&path).unwrap();
        g.refresh();
        let why = tokio::time::timeout(Duration::from_secs(5), cam)
            .await
            .unwrap()
            .unwrap();
        assert!(why.contains("revoked"), "{why}");
        tokio::time::timeout(Duration::from_secs(5), gone)
            .await
            .unwrap()
            .unwrap();
    }
}
