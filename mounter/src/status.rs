//! Live state of a running mounter (link, devices, counters), served as JSON on a Unix socket
//! that `xoq-mount status` and `xoq-mount umount` talk to.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;
use xoq_link::copies::CopyCounts;
use xoq_link::sync::lock;

/// Counters and state of one mounted device.
pub struct DeviceStatus {
    pub name: String,
    pub kind: String,
    pub local: String,
    pub access: String,
    state: Mutex<String>,
    detail: Mutex<Value>,
    pub tx_bytes: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub errors: AtomicU64,
}

impl DeviceStatus {
    pub fn new(name: &str, kind: &str, local: String, access: String) -> Arc<Self> {
        Arc::new(DeviceStatus {
            name: name.into(),
            kind: kind.into(),
            local,
            access,
            state: Mutex::new("waiting".into()),
            detail: Mutex::new(Value::Null),
            tx_bytes: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        })
    }
    pub fn set_state(&self, s: impl Into<String>) {
        *lock(&self.state) = s.into();
    }
    /// Kind-specific facts (remote line settings, modem lines...).
    pub fn set_detail(&self, key: &str, v: Value) {
        let mut d = lock(&self.detail);
        if !d.is_object() {
            *d = json!({});
        }
        d[key] = v;
    }
    fn to_json(&self) -> Value {
        json!({
            "name": self.name, "kind": self.kind, "local": self.local, "access": self.access,
            "state": *lock(&self.state), "detail": *lock(&self.detail),
            "tx_bytes": self.tx_bytes.load(Ordering::Relaxed),
            "rx_bytes": self.rx_bytes.load(Ordering::Relaxed),
            "errors": self.errors.load(Ordering::Relaxed),
        })
    }
}

/// The whole mounter's state.
pub struct MountStatus {
    pub server_id: String,
    server_name: Mutex<String>,
    link: Mutex<String>,
    /// The network path in use: `direct ADDR` or `relay URL` (see `xoq_link::net_path`).
    path: Mutex<String>,
    pub rtt_us: AtomicU64,
    pub reconnects: AtomicU64,
    /// The current connection's stream copies.
    pub copies: Mutex<CopyCounts>,
    /// Camera frames' tail probes received on the current connection (`Message::Probe`).
    pub probes: AtomicU64,
    devices: Mutex<Vec<Arc<DeviceStatus>>>,
    /// Signalled by `xoq-mount umount`.
    pub umount: Notify,
}

impl MountStatus {
    pub fn new(server_id: String) -> Arc<Self> {
        Arc::new(MountStatus {
            server_id,
            server_name: Mutex::new(String::new()),
            link: Mutex::new("connecting".into()),
            path: Mutex::new("none".into()),
            rtt_us: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            copies: Mutex::new(CopyCounts::default()),
            probes: AtomicU64::new(0),
            devices: Mutex::new(Vec::new()),
            umount: Notify::new(),
        })
    }
    pub fn set_link(&self, s: impl Into<String>) {
        *lock(&self.link) = s.into();
    }
    /// Records the path in use; true if it changed.
    pub fn set_path(&self, s: String) -> bool {
        let mut p = lock(&self.path);
        let changed = *p != s;
        *p = s;
        changed
    }
    pub fn set_server_name(&self, s: &str) {
        *lock(&self.server_name) = s.into();
    }
    pub fn add_device(&self, d: Arc<DeviceStatus>) {
        lock(&self.devices).push(d);
    }
    pub fn to_json(&self) -> Value {
        let copies = *lock(&self.copies);
        json!({
            "server_id": self.server_id,
            "server_name": *lock(&self.server_name),
            "link": *lock(&self.link),
            "path": *lock(&self.path),
            "rtt_us": self.rtt_us.load(Ordering::Relaxed),
            "reconnects": self.reconnects.load(Ordering::Relaxed),
            "copies": copies,
            "probes": self.probes.load(Ordering::Relaxed),
            "busy_poll": xoq_link::busy_poll::stats()
                .map(|(window_us, windows)| json!({"window_us": window_us, "windows": windows})),
            "devices": lock(&self.devices).iter().map(|d| d.to_json()).collect::<Vec<_>>(),
        })
    }
}

/// The socket a mounter of `server_id` listens on.
pub fn socket_path(dir: &Path, server_id: &str) -> PathBuf {
    dir.join(format!(
        "mount-{}.sock",
        &server_id[..server_id.len().min(10)]
    ))
}

/// Longest request line read from the socket (`status`, `umount`).
const MAX_REQUEST: u64 = 256;

/// Binds the status socket: owner-only (0600), and never over the live socket of another
/// mounter (one that answers is left alone; a dead one from a crash is replaced).
pub fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!(
            "another xoq-mount of this server is running (its status socket {} answers); \
             stop it first (`xoq-mount umount`)",
            path.display()
        );
    }
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} owner-only", path.display()))?;
    Ok(listener)
}

/// Serves status requests until the task is dropped. Each connection sends one line,
/// `status` or `umount`, and gets one JSON line back; only this user (or root) is answered.
pub async fn serve(listener: UnixListener, status: Arc<MountStatus>) -> Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    loop {
        let (stream, _) = listener.accept().await?;
        match stream.peer_cred() {
            Ok(c) if c.uid() == me || c.uid() == 0 => {}
            other => {
                tracing::warn!(peer = ?other.map(|c| c.uid()), "status request from another user refused");
                continue;
            }
        }
        let status = status.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &status).await {
                tracing::debug!("status request failed: {e}");
            }
        });
    }
}

async fn answer(stream: UnixStream, status: &MountStatus) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    BufReader::new(r.take(MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let reply = match line.trim() {
        "umount" => {
            status.umount.notify_one();
            json!({"ok": true})
        }
        _ => status.to_json(),
    };
    w.write_all(format!("{reply}\n").as_bytes()).await
}

/// Sends `command` to every mounter socket in `dir` and returns the replies.
pub async fn query_all(dir: &Path, command: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for e in entries.flatten() {
        let p = e.path();
        let is_sock = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("mount-") && n.ends_with(".sock"));
        if !is_sock {
            continue;
        }
        match query(&p, command).await {
            Ok(v) => out.push(v),
            Err(err) => tracing::debug!(socket = %p.display(), "no mounter answers: {err}"),
        }
    }
    Ok(out)
}

async fn query(path: &Path, command: &str) -> Result<Value> {
    let mut s = UnixStream::connect(path).await?;
    s.write_all(format!("{command}\n").as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).await?;
    Ok(serde_json::from_str(&line)?)
}

/// Human-readable rendering of one mounter's status.
pub fn render(v: &Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let id = s("server_id");
    let mut out = format!(
        "server {} ({})  link {}  path {}  rtt {:.2} ms  reconnects {}  copies used {} of {}\n",
        id.chars().take(10).collect::<String>(),
        s("server_name"),
        s("link"),
        s("path"),
        v["rtt_us"].as_u64().unwrap_or(0) as f64 / 1000.0,
        v["reconnects"].as_u64().unwrap_or(0),
        v["copies"]["used"].as_u64().unwrap_or(0),
        v["copies"]["unused"].as_u64().unwrap_or(0) + v["copies"]["used"].as_u64().unwrap_or(0),
    );
    let superseded = v["copies"]["superseded"].as_u64().unwrap_or(0);
    if superseded > 0 {
        out.insert_str(
            out.len() - 1,
            &format!("  CAN feedback frames superseded {superseded}"),
        );
    }
    if let Some(window) = v["busy_poll"]["window_us"].as_u64() {
        out.insert_str(
            out.len() - 1,
            &format!(
                "  busy polling {window} us ({} windows)",
                v["busy_poll"]["windows"].as_u64().unwrap_or(0)
            ),
        );
    }
    for d in v["devices"].as_array().into_iter().flatten() {
        let g = |k: &str| d[k].as_str().unwrap_or("").to_string();
        let n = |k: &str| d[k].as_u64().unwrap_or(0);
        let line = d["detail"]["line"].as_str().unwrap_or("").to_string();
        out.push_str(&format!(
            "  {:<7} {:<10} {:<28} {}  {:<8} {:<16} tx {} B  rx {} B  errors {}\n",
            g("kind"),
            g("name"),
            g("local"),
            g("access"),
            g("state"),
            line,
            n("tx_bytes"),
            n("rx_bytes"),
            n("errors")
        ));
        let c = &d["detail"]["counters"];
        if c.is_object() {
            let k = |key: &str| c[key].as_u64().unwrap_or(0);
            let local = |key: &str| d["detail"][key].as_u64().unwrap_or(0);
            out.push_str(&format!(
                "          frames: to bus {}  from bus {}  | not delivered: stale {}  superseded {}  \
                 failed {}  too slow {}  server kernel {}  local kernel {}  unconfirmed at link \
                 loss {}  | bus {}\n",
                k("tx_frames"),
                k("rx_frames"),
                k("tx_stale"),
                k("tx_superseded"),
                k("tx_failed"),
                k("rx_dropped"),
                k("kernel_dropped"),
                local("local_kernel_dropped"),
                local("unconfirmed_at_link_loss"),
                c["state"].as_str().unwrap_or("?"),
            ));
        }
        let j = &d["detail"]["jitter"];
        if j.is_object() {
            let k = |key: &str| j[key].as_u64().unwrap_or(0);
            let f = |key: &str| j[key].as_f64().unwrap_or(0.0);
            out.push_str(&format!(
                "          audio: delay {:.1} ms ({:.1}..{:.1}, target {:.0})  drift {:+.0} ppm  | packets {}  \
                 late {}  concealed {}  reordered {}  underruns {}  overruns {}  resyncs {}  realigned {}\n",
                f("depth_ms"),
                f("depth_min_ms"),
                f("depth_max_ms"),
                f("target_ms"),
                f("drift_ppm"),
                k("received"),
                k("late"),
                k("concealed"),
                k("reordered"),
                k("underruns"),
                k("overruns"),
                k("resyncs"),
                k("realigned"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn the_socket_is_owner_only_and_a_live_one_is_never_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(dir.path(), "0123456789abcdef");
        let listener = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let status = MountStatus::new("0123456789abcdef".into());
        let server = tokio::spawn(serve(listener, status));
        let err = bind(&path).unwrap_err().to_string();
        assert!(err.contains("another xoq-mount"), "{err}");
        // Still answering.
        let v = query(&path, "status").await.unwrap();
        assert!(v.is_object(), "{v}");
        server.abort();
        let _ = server.await;
        // A dead socket (its mounter gone) is replaced.
        assert!(bind(&path).is_ok());
    }

    #[test]
    fn the_summary_line_shows_busy_polling_only_when_it_is_on() {
        let mut v = json!({"server_id": "abc", "busy_poll": null, "devices": []});
        assert!(!render(&v).contains("busy polling"), "{}", render(&v));
        v["busy_poll"] = json!({"window_us": 200, "windows": 7});
        let first = render(&v);
        let first = first.lines().next().unwrap_or_default();
        assert!(
            first.ends_with("busy polling 200 us (7 windows)"),
            "{first}"
        );
    }
}
