//! A real browser for tests: Debian's `chromium`, headless, on a page served by a small HTTP
//! server of the test (the built viewer, `web/dist`), which also takes the page's reports
//! (`POST /report`: what the page shows, as JSON).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// The built viewer (`npm run build` in web/, which scripts/test.sh runs).
pub fn viewer_dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist")
}

/// The page's server: static files from `root`, and the reports it received, newest last.
pub struct PageServer {
    pub port: u16,
    pub reports: Arc<Mutex<Vec<serde_json::Value>>>,
}

/// The largest report accepted (a 640x480 picture's luma in base64, and the CAN table).
const MAX_REPORT: usize = 2 * 1024 * 1024;

impl PageServer {
    pub async fn start(root: PathBuf) -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let reports: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let r = reports.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (root, r) = (root.clone(), r.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, &root, &r).await;
                });
            }
        });
        PageServer { port, reports }
    }
}

async fn serve(
    sock: tokio::net::TcpStream,
    root: &Path,
    reports: &Mutex<Vec<serde_json::Value>>,
) -> std::io::Result<()> {
    let mut sock = BufReader::new(sock);
    loop {
        let mut line = String::new();
        if sock.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("/").to_string(),
        );
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            sock.read_line(&mut h).await?;
            if h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let (status, kind, body) = if method == "POST" && length <= MAX_REPORT {
            let mut body = vec![0u8; length];
            sock.read_exact(&mut body).await?;
            if let Ok(v) = serde_json::from_slice(&body) {
                reports.lock().expect("lock").push(v);
            }
            ("204 No Content", "text/plain", Vec::new())
        } else {
            let name = target
                .split('?')
                .next()
                .unwrap_or("/")
                .trim_start_matches('/');
            let name = if name.is_empty() { "index.html" } else { name };
            let kind = match name.rsplit('.').next() {
                Some("html") => "text/html",
                Some("js") => "text/javascript",
                Some("css") => "text/css",
                _ => "application/octet-stream",
            };
            // Only the files the build makes, by plain name.
            match name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
                .then(|| std::fs::read(root.join(name)).ok())
                .flatten()
            {
                Some(b) => ("200 OK", kind, b),
                None => ("404 Not Found", "text/plain", b"not found".to_vec()),
            }
        };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let w = sock.get_mut();
        w.write_all(head.as_bytes()).await?;
        w.write_all(&body).await?;
    }
}

/// Headless chromium showing `url`; killed when dropped.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    pub log: PathBuf,
}

impl Browser {
    pub fn open(url: &str) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let log = profile.path().join("chromium.log");
        let err = std::fs::File::create(&log).expect("log");
        let child = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required",
                "--enable-logging=stderr",
                "--v=0",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("chromium (scripts/deps.sh installs it)");
        Browser {
            child,
            _profile: profile,
            log,
        }
    }

    /// What the browser logged (its console messages included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
