//! Spawning and stopping the real binaries, each test in its own directory and ports.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Directory holding the built binaries (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let mut dir = exe.parent().expect("target/<profile>/...").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().map(Path::to_path_buf).unwrap_or(dir);
    }
    for b in ["xoq-server", "xoq-mount"] {
        assert!(
            dir.join(b).exists(),
            "{} is missing: run `cargo build --workspace --bins` before the tests",
            dir.join(b).display()
        );
    }
    dir
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

/// A free UDP port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind probe socket");
    s.local_addr().expect("probe addr").port()
}

/// A private world for one test: state dir, runtime dir, link dir, authorized-clients file.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// More environment for every command (e.g. where PipeWire is).
    vars: Vec<(String, std::ffi::OsString)>,
    /// Network namespace each client's commands run in (`server` is the server's), if any.
    netns: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            vars: Vec::new(),
            netns: Vec::new(),
        }
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    pub fn links(&self) -> PathBuf {
        self.path("dev")
    }
    /// Sets a variable for every command started from now on.
    pub fn set_var(&mut self, key: &str, value: impl Into<std::ffi::OsString>) {
        self.vars.push((key.to_string(), value.into()));
    }
    /// Runs every later command of `client` (`server` for the server) in network namespace
    /// `ns` (see [`crate::netlab::NetLab`]).
    pub fn set_netns(&mut self, client: &str, ns: &str) {
        self.netns.push((client.to_string(), ns.to_string()));
    }
    /// A command for `bin` with this environment's directories.
    pub fn cmd(&self, bin: &str, client: &str) -> Command {
        let mut c = match self.netns.iter().rev().find(|(c, _)| c == client) {
            Some((_, ns)) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin_dir().join(bin));
                c
            }
            None => Command::new(bin_dir().join(bin)),
        };
        c.env("XOQ_STATE_DIR", self.path(&format!("state-{client}")))
            .env("XOQ_RUNTIME_DIR", self.path(&format!("run-{client}")))
            .env(
                "XOQ_AUTHORIZED_CLIENTS",
                self.path("authorized_clients.toml"),
            )
            .env("XOQ_LOG", "info,iroh=warn,noq=warn,noq_proto=warn")
            .envs(self.vars.iter().map(|(k, v)| (k, v)));
        c
    }
    /// Runs a short command to completion and returns stdout; panics on failure.
    pub fn run(&self, bin: &str, client: &str, args: &[&str]) -> String {
        let out = self.cmd(bin, client).args(args).output().expect("spawn");
        assert!(
            out.status.success(),
            "{bin} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    /// What `xoq-mount status --json` says of client `client`'s (first) mounter.
    pub fn mount_status(&self, client: &str) -> serde_json::Value {
        let out = self.run("xoq-mount", client, &["status", "--json"]);
        serde_json::from_str(out.lines().next().unwrap_or("{}"))
            .unwrap_or_else(|e| panic!("status JSON: {e}: {out}"))
    }
    /// The key of client `name` (created in its state dir if it has none yet), for tests that
    /// speak the protocol themselves.
    pub fn client_key(&self, name: &str) -> iroh::SecretKey {
        xoq_link::load_or_create_key(&self.path(&format!("state-{name}")).join("client.key"))
            .expect("client key")
    }

    /// The id of client `name` (its key lives in its own state dir).
    pub fn client_id(&self, name: &str) -> String {
        self.run("xoq-mount", name, &["id"]).trim().to_string()
    }
    /// Authorizes client `name` with `xoq-server authorize`.
    pub fn authorize(&self, name: &str, extra: &[&str]) {
        let id = self.client_id(name);
        let mut args = vec!["authorize", id.as_str()];
        args.extend_from_slice(extra);
        self.run("xoq-server", "server", &args);
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

/// A running child whose stdout lines we can wait for; killed on drop.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    stderr_path: PathBuf,
}

impl Proc {
    pub fn spawn(mut cmd: Command, stderr_path: PathBuf) -> Proc {
        let err = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("spawn");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
            stderr_path,
        }
    }

    /// Waits for a stdout line starting with `prefix`.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.starts_with(prefix) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no line starting with {prefix:?} within {timeout:?}; stdout so far: {:?}; stderr: {}",
                    self.seen,
                    self.stderr()
                ),
            }
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn signal(&self, sig: Signal) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), sig);
    }

    /// Waits for the process to exit; returns its exit code (None if killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st.code();
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit within {timeout:?}; stderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `xoq-server`.
pub struct Server {
    pub proc: Proc,
    pub ticket: String,
    pub id: String,
    pub port: u16,
}

impl Server {
    /// Starts `xoq-server serve` on 127.0.0.1:`port` with extra device arguments.
    pub fn start(env: &Env, port: u16, devices: &[String]) -> Server {
        Server::start_on(env, std::net::Ipv4Addr::LOCALHOST.into(), port, devices)
    }

    /// Starts `xoq-server serve` on `ip`:`port` with extra device arguments.
    pub fn start_on(env: &Env, ip: std::net::IpAddr, port: u16, devices: &[String]) -> Server {
        Server::spawn(env, None, ip, port, devices)
    }

    /// Starts `xoq-server --config CONFIG serve` on 127.0.0.1:`port`.
    pub fn start_configured(env: &Env, config: &Path, port: u16) -> Server {
        let ip = std::net::Ipv4Addr::LOCALHOST.into();
        Server::spawn(env, Some(config), ip, port, &[])
    }

    fn spawn(
        env: &Env,
        config: Option<&Path>,
        ip: std::net::IpAddr,
        port: u16,
        devices: &[String],
    ) -> Server {
        let mut cmd = env.cmd("xoq-server", "server");
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.arg("serve")
            .arg("--listen")
            .arg(std::net::SocketAddr::new(ip, port).to_string())
            .arg("--name")
            .arg("testbot");
        cmd.args(devices);
        let mut proc = Proc::spawn(
            cmd,
            env.path(&format!("server-{port}-{}.err", rand::random::<u32>())),
        );
        let id = proc.wait_line("id: ", Duration::from_secs(20))[4..].to_string();
        let ticket = proc.wait_line("ticket: ", Duration::from_secs(5))[8..].to_string();
        Server {
            proc,
            ticket,
            id,
            port,
        }
    }

    /// Starts a server whose one device is the simulated echo port `echo0`.
    pub fn with_sim_echo(env: &Env) -> Server {
        Server::start(
            env,
            free_udp_port(),
            &["--sim-serial".into(), "echo0".into()],
        )
    }

    /// Starts a server whose one device is `hw`'s PTY, served as serial port `ttyUSB0`.
    pub fn with_pty_port(env: &Env, hw: &crate::HardwarePty) -> Server {
        Server::start(
            env,
            free_udp_port(),
            &["--serial".into(), hw.serve_arg("ttyUSB0")],
        )
    }

    /// The stream copies this server used (those that arrived before their stream message),
    /// summed over the `client disconnected` lines it logs; waits up to `timeout` for one.
    pub fn copies_used(&self, timeout: Duration) -> Option<u64> {
        self.disconnect_counter("copies_used", timeout)
    }

    /// The counter `name` (e.g. `copies_used`, `can_frames_superseded`) summed over the
    /// `client disconnected` lines this server logs; waits up to `timeout` for one.
    pub fn disconnect_counter(&self, name: &str, timeout: Duration) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        let key = format!("{name}=");
        loop {
            let values: Vec<u64> = self
                .proc
                .stderr()
                .lines()
                .filter(|l| l.contains("client disconnected"))
                .filter_map(|l| {
                    let at = l.find(&key)? + key.len();
                    let digits: String =
                        l[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
                    digits.parse().ok()
                })
                .collect();
            if !values.is_empty() || Instant::now() > deadline {
                return (!values.is_empty()).then(|| values.iter().sum());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A running `xoq-mount`.
pub struct Mount {
    pub proc: Proc,
    /// The link of each mounted device, in catalog order.
    pub links: Vec<PathBuf>,
}

impl Mount {
    /// Starts `xoq-mount <ticket>` as client `client` and waits for `n` devices to be mounted.
    /// Serial ports are PTYs unless `extra` chooses (`--serial-device`): the host suites test
    /// the PTY path even where `/dev/cuse` exists; the CUSE path is tested in the VM.
    pub fn start(env: &Env, client: &str, ticket: &str, n: usize, extra: &[&str]) -> Mount {
        let mut cmd = env.cmd("xoq-mount", client);
        cmd.arg(ticket).arg("--link-dir").arg(env.links());
        if !extra.iter().any(|a| a.starts_with("--serial-device")) {
            cmd.args(["--serial-device", "pty"]);
        }
        cmd.args(extra);
        let mut proc = Proc::spawn(
            cmd,
            env.path(&format!("mount-{client}-{}.err", rand::random::<u32>())),
        );
        let mut links = Vec::new();
        for _ in 0..n {
            let l = proc.wait_line("mounted ", Duration::from_secs(30));
            let path = l
                .split("->")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .expect("link path in mount line");
            links.push(PathBuf::from(path));
        }
        Mount { proc, links }
    }

    /// Waits for a stdout line (already seen or new) containing `needle`.
    pub fn wait_line_containing(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(l) = self.proc.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = self.proc.wait_line("", left);
            if l.contains(needle) {
                return l;
            }
        }
    }

    /// Starts a mount expected to fail; returns (exit code, stderr).
    pub fn expect_failure(
        env: &Env,
        client: &str,
        ticket: &str,
        extra: &[&str],
    ) -> (Option<i32>, String) {
        let mut cmd = env.cmd("xoq-mount", client);
        cmd.arg(ticket)
            .arg("--link-dir")
            .arg(env.links())
            .args(extra);
        let mut proc = Proc::spawn(cmd, env.path(&format!("mount-{client}-fail.err")));
        let code = proc.wait_exit(Duration::from_secs(30));
        (code, proc.stderr())
    }
}
