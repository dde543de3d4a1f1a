//! A private, headless PipeWire for one test: `pipewire` and `wireplumber` (in its own session
//! bus, without which it exits) under a temporary XDG_RUNTIME_DIR, so nodes, recordings and
//! WirePlumber's remembered defaults never touch another session. Stopped on drop.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

pub struct PipeWire {
    pub dir: tempfile::TempDir,
    daemons: Vec<Child>,
}

impl PipeWire {
    /// Starts the daemon and the session manager and waits until both answer.
    pub fn start() -> PipeWire {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["run", "state", "config"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("pipewire dirs");
        }
        let mut pw = PipeWire {
            dir,
            daemons: Vec::new(),
        };
        let daemon = pw.spawn_logged("pipewire", &[]);
        pw.daemons.push(daemon);
        pw.wait_until("the PipeWire daemon", |pw| {
            pw.command("pw-cli")
                .args(["info", "0"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        let wireplumber = pw.spawn_logged("dbus-run-session", &["--", "wireplumber"]);
        pw.daemons.push(wireplumber);
        pw.wait_until("WirePlumber", |pw| {
            pw.dump().contains("\"application.name\": \"WirePlumber\"")
        });
        pw
    }

    fn spawn_logged(&self, prog: &str, args: &[&str]) -> Child {
        let log = std::fs::File::create(self.dir.path().join(format!("{prog}.log"))).expect("log");
        self.command(prog)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {prog}: {e} (scripts/deps.sh installs PipeWire)")
            })
    }

    fn wait_until(&self, what: &str, ok: impl Fn(&PipeWire) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ok(self) {
            assert!(
                Instant::now() < deadline,
                "{what} did not start within 20 s; logs: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The environment a PipeWire client needs to find this daemon.
    pub fn vars(&self) -> Vec<(&'static str, PathBuf)> {
        let p = |d: &str| self.dir.path().join(d);
        vec![
            ("XDG_RUNTIME_DIR", p("run")),
            ("PIPEWIRE_RUNTIME_DIR", p("run")),
            ("XDG_STATE_HOME", p("state")),
            ("XDG_CONFIG_HOME", p("config")),
        ]
    }

    /// A command that talks to this daemon.
    pub fn command(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.envs(self.vars())
            .env_remove("PIPEWIRE_REMOTE")
            .env("PIPEWIRE_DEBUG", "1");
        c
    }

    /// A virtual microphone: audio played to `<name>-in` (an Audio/Sink) comes out of `name`
    /// (an Audio/Source), the default source. Lives as long as the session.
    pub fn loopback_source(&mut self, name: &str) {
        let child = self
            .command("pw-loopback")
            .arg(format!(
                "--capture-props=media.class=Audio/Sink node.name={name}-in audio.position=[MONO]"
            ))
            .arg(format!(
                "--playback-props=media.class=Audio/Source node.name={name} audio.position=[MONO] priority.session=2000"
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("pw-loopback");
        self.daemons.push(child);
        self.wait_until("the loopback source", |pw| pw.has_node(name));
        self.wait_default("audio.source", name);
    }

    /// A null sink called `name`, the default sink; `pw-record --target name` records what
    /// is played to it.
    pub fn null_sink(&self, name: &str) {
        let props = format!(
            "{{ factory.name=support.null-audio-sink node.name={name} media.class=Audio/Sink \
             audio.position=[MONO] object.linger=true priority.session=2000 }}"
        );
        let out = self
            .command("pw-cli")
            .args(["create-node", "adapter", &props])
            .output()
            .expect("pw-cli");
        assert!(
            out.status.success(),
            "pw-cli create-node: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.wait_until("the null sink", |pw| pw.has_node(name));
        self.wait_default("audio.sink", name);
    }

    /// Waits until WirePlumber has made `node` the default `what` (`audio.source`,
    /// `audio.sink`): a program that opens "the default" right after a node appeared may
    /// otherwise get the previous one.
    fn wait_default(&self, what: &str, node: &str) {
        let key = format!("'default.{what}'");
        let value = format!("\"name\":\"{node}\"");
        self.wait_until(&format!("{node} as the default {what}"), |pw| {
            pw.command("pw-metadata")
                .args(["-n", "default"])
                .output()
                .is_ok_and(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .any(|l| l.contains(&key) && l.contains(&value))
                })
        });
    }

    /// `pw-dump`: every object, as JSON text.
    pub fn dump(&self) -> String {
        self.command("pw-dump")
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// `pw-link --links`: every port-to-port link, for a failure's message.
    pub fn links(&self) -> String {
        self.command("pw-link")
            .arg("--links")
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Whether a node named `name` exists.
    pub fn has_node(&self, name: &str) -> bool {
        self.dump().contains(&format!("\"node.name\": \"{name}\""))
    }

    /// `pw-record --target NODE` for `seconds`, mono S16 at `rate`, into `out`.
    pub fn record(&self, node: &str, seconds: f64, rate: u32, out: &Path) {
        let _ = self
            .record_in_background(node, seconds, rate, out, false)
            .join();
    }

    /// The same on a thread of its own; `monitor`: record what is played to the sink `node`
    /// (without it, a sink target gets the default source).
    pub fn record_in_background(
        &self,
        node: &str,
        seconds: f64,
        rate: u32,
        out: &Path,
        monitor: bool,
    ) -> std::thread::JoinHandle<()> {
        let mut cmd = self.command("pw-record");
        if monitor {
            cmd.args(["-P", "{ stream.capture.sink = true }"]);
        }
        cmd.args([
            "--target",
            node,
            "--rate",
            &rate.to_string(),
            "--channels",
            "1",
        ])
        .args(["--format", "s16"])
        .arg(out)
        .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("pw-record");
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(seconds));
            let _ = nix::sys::signal::kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
            let _ = child.wait();
        })
    }

    /// `pw-play --target NODE FILE`, waiting for it to finish.
    pub fn play(&self, node: &str, file: &Path) {
        let out = self
            .command("pw-play")
            .args(["--target", node])
            .arg(file)
            .output()
            .expect("pw-play");
        assert!(
            out.status.success(),
            "pw-play failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn logs(&self) -> String {
        ["pipewire", "dbus-run-session"]
            .iter()
            .map(|p| {
                std::fs::read_to_string(self.dir.path().join(format!("{p}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for PipeWire {
    fn drop(&mut self) {
        for c in self.daemons.iter_mut().rev() {
            let _ = killpg(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            let _ = c.wait();
        }
    }
}
