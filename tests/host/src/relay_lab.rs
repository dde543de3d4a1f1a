//! A real `moq-relay` on loopback that admits sessions through our auth server, and small MoQ
//! sessions against it (what a subscriber or a browser does), for the relay tests. The relay
//! process dies with the lab.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use moq_net::Timestamp;
use tokio::sync::mpsc;
use xoq_moq::token::{generate_key, mint, Grants};
use xoq_moq::tracks::{MessageReader, MessageTrack};
use xoq_moq::RelayPaths;
use xoq_wire::Peer;

pub const PREFIX: &str = "fleet";

pub enum Role {
    Subscriber,
    Both,
}

pub struct RelayLab {
    dir: tempfile::TempDir,
    key: moq_auth::Key,
    relay: Child,
    relay_args: Vec<String>,
    /// Other relays of a cluster with this one.
    peers: Vec<Child>,
    pub addr: SocketAddr,
    /// The relay's HTTP listener (its certificate's fingerprint, announcements).
    pub http: SocketAddr,
    _auth: tokio::task::JoinHandle<()>,
}

impl Drop for RelayLab {
    fn drop(&mut self) {
        for r in self
            .peers
            .iter_mut()
            .chain(std::iter::once(&mut self.relay))
        {
            let _ = r.kill();
            let _ = r.wait();
        }
    }
}

fn free_tcp_port() -> u16 {
    let s = TcpListener::bind("127.0.0.1:0").expect("bind a TCP port");
    s.local_addr().expect("local addr").port()
}

/// The `moq-relay` binary: `$XOQ_MOQ_RELAY`, else the one on PATH (scripts/deps.sh installs it).
pub fn relay_binary() -> String {
    std::env::var("XOQ_MOQ_RELAY").unwrap_or_else(|_| "moq-relay".into())
}

/// Starts `moq-relay` with `args`, its log appended to `dir/relay.log`.
fn spawn_relay(dir: &std::path::Path, args: &[String]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("relay.log"))
        .expect("log file");
    Command::new(relay_binary())
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e}; run scripts/deps.sh, which installs moq-relay",
                relay_binary()
            )
        })
}

impl RelayLab {
    /// A second relay of a cluster with this one: it dials this relay with a cluster token
    /// (`--cluster-connect`, the certificate pinned), shares the certificate and the auth server.
    /// Returns its QUIC port; it dies with the lab.
    pub fn start_peer(&mut self) -> u16 {
        let port = crate::proc::free_udp_port();
        let token = xoq_moq::token::mint_cluster(&self.key, PREFIX, Duration::from_secs(3600))
            .expect("cluster token");
        let mut args = self.relay_args.clone();
        let listen = args.iter().position(|a| a == "--listen").expect("--listen") + 1;
        args[listen] = format!("127.0.0.1:{port}");
        let web = args
            .iter()
            .position(|a| a == "--web-http-listen")
            .expect("web")
            + 1;
        args[web] = format!("127.0.0.1:{}", free_tcp_port());
        args.extend([
            "--cluster-connect".to_string(),
            format!("https://localhost:{}/?jwt={token}", self.addr.port()),
            "--connect-tls-fingerprint".into(),
            self.fingerprint(),
        ]);
        self.peers.push(spawn_relay(self.dir.path(), &args));
        port
    }

    /// Kills the relay (every session drops at once) and starts it again on the same address,
    /// certificate and auth server; returns once it admits sessions again.
    pub async fn restart(&mut self) {
        let _ = self.relay.kill();
        let _ = self.relay.wait();
        self.relay = spawn_relay(self.dir.path(), &self.relay_args);
        self.wait_ready().await;
    }

    pub async fn start() -> RelayLab {
        let dir = tempfile::tempdir().expect("tempdir");
        let (private, public) = (
            dir.path().join("fleet.jwk"),
            dir.path().join("fleet.pub.jwk"),
        );
        generate_key(&private, &public).expect("key");
        let key = moq_auth::Key::from_file(&private).expect("key back");
        let (auth_addr, serve) = xoq_moq::auth::bind(public, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("auth server");
        let auth = tokio::spawn(async move {
            let _ = serve.await;
        });
        let port = crate::proc::free_udp_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let http: SocketAddr = format!("127.0.0.1:{}", free_tcp_port())
            .parse()
            .expect("addr");
        // A certificate of its own (not --listen-tls-generate), so a restarted relay keeps its
        // fingerprint, as a real one keeps its certificate.
        // In a directory of their own: the relay watches the directory of its certificate to
        // reload it, and its own log written beside it made it reload (and log) in a loop,
        // burning a core.
        let tls = dir.path().join("tls");
        std::fs::create_dir(&tls).expect("tls dir");
        let (cert, key_pem) = (tls.join("relay.crt"), tls.join("relay.key"));
        let made = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-days", "2", "-nodes", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost"])
            .arg("-keyout")
            .arg(&key_pem)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl (scripts/deps.sh installs it)");
        assert!(
            made.success(),
            "openssl could not make the relay's certificate"
        );
        let relay_args = vec![
            "--listen".to_string(),
            addr.to_string(),
            "--listen-tls-cert".into(),
            cert.to_string_lossy().into_owned(),
            "--listen-tls-key".into(),
            key_pem.to_string_lossy().into_owned(),
            "--auth-url".into(),
            format!("http://{auth_addr}/"),
            "--web-http-listen".into(),
            http.to_string(),
        ];
        let relay = spawn_relay(dir.path(), &relay_args);
        let mut lab = RelayLab {
            dir,
            key,
            relay,
            relay_args,
            peers: Vec::new(),
            addr,
            http,
            _auth: auth,
        };
        lab.wait_ready().await;
        lab
    }

    /// The relay's process id (for its CPU time).
    pub fn relay_pid(&self) -> u32 {
        self.relay.id()
    }

    /// The relay's QUIC address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn relay_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("relay.log")).unwrap_or_default()
    }

    /// Waits until a robot's session is admitted (the relay is listening and asks our server).
    async fn wait_ready(&mut self) {
        let probe = Grants {
            robot: true,
            ..Grants::default()
        };
        let token = self.token("probe", &probe, Duration::from_secs(60));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.relay.try_wait() {
                panic!("moq-relay exited ({status}):\n{}", self.relay_log());
            }
            match self.connect("probe", Some(&token), Role::Both).await {
                Ok(_) => return,
                Err(e) if tokio::time::Instant::now() > deadline => {
                    panic!(
                        "the relay never admitted a valid token: {e}\nrelay log:\n{}",
                        self.relay_log()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// The relay's base URL, as a server or mounter is given it.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// The SHA-256 fingerprint (hex) of the relay's self-signed certificate, from its HTTP
    /// listener, to pin it.
    pub fn fingerprint(&self) -> String {
        let mut s = TcpStream::connect(self.http).expect("relay HTTP listener");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            s,
            "GET /certificate.sha256 HTTP/1.0\r\nHost: localhost\r\n\r\n"
        )
        .expect("request");
        let mut reply = String::new();
        s.read_to_string(&mut reply).expect("reply");
        let body = reply.split("\r\n\r\n").nth(1).unwrap_or_default().trim();
        assert!(
            body.len() == 64 && body.chars().all(|c| c.is_ascii_hexdigit()),
            "the relay's fingerprint endpoint answered {reply:?}"
        );
        body.to_string()
    }

    /// Starts `xoq-server` (named `testbot`) serving `devices`, publishing them through this
    /// relay with a robot token and the relay's certificate pinned.
    pub fn serve(&self, env: &crate::proc::Env, devices: &[&str]) -> crate::proc::Server {
        let robot = Grants {
            robot: true,
            ..Grants::default()
        };
        let token = self.token("testbot", &robot, Duration::from_secs(3600));
        let token_file = self.token_file("robot.token", &token);
        let mut args: Vec<String> = devices.iter().map(|s| s.to_string()).collect();
        args.extend([
            "--moq-relay".into(),
            self.url(),
            "--moq-path".into(),
            PREFIX.into(),
            "--moq-token-file".into(),
            token_file.to_string_lossy().into_owned(),
            "--moq-tls-fingerprint".into(),
            self.fingerprint(),
        ]);
        crate::proc::Server::start(env, crate::proc::free_udp_port(), &args)
    }

    /// A client's token for `testbot`: watch `subscribe`, write `publish` as `client`.
    pub fn client_token(&self, subscribe: &str, publish: &str, client: &str) -> String {
        let g = Grants {
            subscribe: Grants::device_list(subscribe),
            publish: Grants::device_list(publish),
            client: Some(client.to_string()),
            robot: false,
        };
        self.token("testbot", &g, Duration::from_secs(3600))
    }

    /// Writes a token to a file in the lab's directory and returns its path.
    pub fn token_file(&self, name: &str, token: &str) -> std::path::PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, token).expect("token file");
        p
    }

    pub fn token(&self, server: &str, grants: &Grants, lifetime: Duration) -> String {
        let paths = RelayPaths::new(PREFIX, server).expect("paths");
        mint(&self.key, &paths, grants, lifetime).expect("mint")
    }

    /// A token that looks right but is signed by a key the relay does not trust.
    pub fn foreign_token(&self, server: &str, grants: &Grants) -> String {
        let other = moq_auth::Key::generate(moq_auth::Algorithm::EdDSA, None).expect("key");
        let paths = RelayPaths::new(PREFIX, server).expect("paths");
        mint(&other, &paths, grants, Duration::from_secs(600)).expect("mint")
    }

    /// A client of `testbot` with `client_token(subscribe, publish, name)`, publishing and
    /// receiving; panics if the relay does not admit it.
    pub async fn client(&self, subscribe: &str, publish: &str, name: &str) -> Session {
        let token = self.client_token(subscribe, publish, name);
        self.connect("testbot", Some(&token), Role::Both)
            .await
            .unwrap_or_else(|e| panic!("client {name} not admitted: {e}"))
    }

    /// A session dialled at `<prefix>/<server>`, or why it was not admitted.
    pub async fn connect(
        &self,
        server: &str,
        token: Option<&str>,
        role: Role,
    ) -> Result<Session, String> {
        self.connect_at(self.addr.port(), server, token, role).await
    }

    /// A session dialled at `<prefix>/<server>` of the relay on `port` (this one or a peer).
    pub async fn connect_at(
        &self,
        port: u16,
        server: &str,
        token: Option<&str>,
        role: Role,
    ) -> Result<Session, String> {
        let mut config = moq_tokio::connect::Config::default();
        config.tls.insecure = Some(true);
        let client = config.init(Default::default()).map_err(|e| e.to_string())?;
        let mut url = format!("https://localhost:{port}/{PREFIX}/{server}");
        if let Some(t) = token {
            url.push_str(&format!("?jwt={t}"));
        }
        let url: url::Url = url.parse().map_err(|e: url::ParseError| e.to_string())?;
        let published = moq_tokio::origin::spawn();
        let received = moq_tokio::origin::spawn();
        let client = client
            .with_reconnect(false)
            .with_subscriber(received.clone());
        let client = match role {
            Role::Subscriber => client,
            Role::Both => client.with_publisher(published.consume()),
        };
        let conn = tokio::time::timeout(Duration::from_secs(10), client.connect(url).established())
            .await
            .map_err(|_| "no answer within 10 s".to_string())?
            .map_err(|e| e.to_string())?;
        Ok(Session {
            conn,
            published,
            received,
        })
    }
}

impl RelayLab {
    /// Whether a session dialled with `token` is refused: not established, or closed by the
    /// relay right after (over WebTransport the relay accepts the CONNECT, asks the auth server,
    /// then closes). A session admitted by mistake stays open, and this returns false.
    pub async fn refused(&self, server: &str, token: Option<&str>) -> bool {
        let before = self.relay_log().matches("refused the session").count();
        let closed = match self.connect(server, token, Role::Subscriber).await {
            Err(_) => true,
            Ok(s) => tokio::time::timeout(Duration::from_secs(10), s.conn.closed())
                .await
                .is_ok(),
        };
        // The relay says why; give its log a moment to be written.
        for _ in 0..50 {
            if self.relay_log().matches("refused the session").count() > before {
                return closed;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

pub struct Session {
    conn: moq_tokio::Connection,
    published: moq_net::origin::Producer,
    received: moq_net::origin::Producer,
}

/// A broadcast this session publishes, writing a frame `frame` every 100 ms (a group each)
/// until dropped.
pub struct Published {
    _broadcast: moq_net::broadcast::Producer,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Published {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Session {
    pub fn publish(&self, broadcast: &str, track: &str) -> Published {
        let (b, t) = self.publish_raw(broadcast, track);
        let task = tokio::spawn(async move {
            loop {
                if let Ok(mut g) = t.append_group() {
                    let _ = g.write_frame(Timestamp::now(), &b"frame"[..]);
                    let _ = g.finish();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Published {
            _broadcast: b,
            task,
        }
    }

    /// The first frame of `track` in `broadcast` (relative to the dialled path), if one arrives
    /// within `within`.
    pub async fn first_frame(
        &self,
        broadcast: &str,
        track: &str,
        within: Duration,
    ) -> Option<Vec<u8>> {
        let read = async {
            let mut sub = self.subscribe(broadcast, track, None).await?;
            let mut group = sub.recv_group().await.ok()??;
            let frame = group.read_frame().await.ok()??;
            Some(frame.payload.to_vec())
        };
        tokio::time::timeout(within, read).await.ok().flatten()
    }

    /// A subscription to `track` of `broadcast` once the broadcast is announced to this session.
    pub async fn subscribe(
        &self,
        broadcast: &str,
        track: &str,
        subscription: Option<moq_net::track::Subscription>,
    ) -> Option<moq_net::track::Subscriber> {
        let consumer = self.received.consume();
        let mut announced = consumer.announced();
        loop {
            let update = announced.next().await?;
            if update.kind.is_active() && update.prefix.as_str() == broadcast {
                break;
            }
        }
        let b = consumer.request_broadcast(broadcast).await.ok()?;
        b.track(track).ok()?.subscribe(subscription).await.ok()
    }

    /// A track this session publishes in broadcast `broadcast`, written raw (for hostile
    /// frames); the broadcast lives as long as the returned producer.
    pub fn publish_raw(
        &self,
        broadcast: &str,
        track: &str,
    ) -> (moq_net::broadcast::Producer, moq_net::track::Producer) {
        let b = self
            .published
            .create_broadcast(broadcast)
            .expect("broadcast");
        let t = b.create_track(track, None).expect("track");
        b.announce(Default::default()).expect("announce");
        (b, t)
    }

    /// A track of XoQ messages this session publishes in broadcast `broadcast` (a group per
    /// message); the broadcast lives as long as the returned producer.
    pub fn publish_messages(
        &self,
        broadcast: &str,
        track: &str,
    ) -> (moq_net::broadcast::Producer, MessageTrack) {
        let (b, t) = self.publish_raw(broadcast, track);
        (b, MessageTrack::new(t, Duration::ZERO))
    }

    /// The XoQ messages of `track` in `broadcast`, once the broadcast is announced (within
    /// `within`), read as a client reads what a server sends.
    pub async fn subscribe_messages(
        &self,
        broadcast: &str,
        track: &str,
        within: Duration,
    ) -> Option<MessageReader> {
        let every_group =
            moq_net::track::Subscription::default().with_max_age(Duration::from_secs(2));
        let open = self.subscribe(broadcast, track, Some(every_group));
        let sub = tokio::time::timeout(within, open).await.ok().flatten()?;
        Some(MessageReader::new(sub, Peer::Server))
    }

    /// Every broadcast announced to this session from now on, by path.
    pub fn watch_commands(&self) -> mpsc::Receiver<String> {
        let (tx, rx) = mpsc::channel(64);
        let consumer = self.received.consume();
        tokio::spawn(async move {
            let mut announced = consumer.announced();
            while let Some(u) = announced.next().await {
                if u.kind.is_active() && tx.send(u.prefix.as_str().to_string()).await.is_err() {
                    return;
                }
            }
        });
        rx
    }
}

/// Damiao "enable" for motor `id` (answered with a feedback frame from `id + 0x10`), stamped
/// now.
pub fn enable(id: u32) -> xoq_wire::Message {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    xoq_wire::Message::CanFrames(vec![xoq_wire::CanFrame {
        id,
        flags: 0,
        len: 8,
        data: vec![0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFC],
        timestamp_us: now,
    }])
}

/// The first bus frame with `id` on a `state` track within `within`.
pub async fn frame_with_id(
    state: &mut MessageReader,
    id: u32,
    within: Duration,
) -> Option<xoq_wire::CanFrame> {
    let find = async {
        loop {
            match state.next().await {
                Ok(Some(xoq_wire::Message::CanFrames(frames))) => {
                    if let Some(f) = frames.into_iter().find(|f| f.id == id) {
                        return Some(f);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    };
    tokio::time::timeout(within, find).await.ok().flatten()
}

/// Sends `enable(motor)` on `cmd` every half second (the server subscribes to a command track
/// once it sees it announced) until the motor's feedback shows on `state`, for at most 20 s.
pub async fn enable_until_answered(
    cmd: &mut MessageTrack,
    state: &mut MessageReader,
    motor: u32,
) -> Option<xoq_wire::CanFrame> {
    for _ in 0..40 {
        cmd.write(&enable(motor)).expect("write");
        if let Some(f) = frame_with_id(state, motor + 0x10, Duration::from_millis(500)).await {
            return Some(f);
        }
    }
    None
}
