//! A lab of two private networks behind their own NAT routers, joined by an "internet" that
//! runs a self-hosted relay (`iroh-relay`, TLS with a CA of the lab's own, QUIC address
//! discovery on). Five network namespaces, K claimed by creating `xoq-niK` (atomic):
//!
//! ```text
//! [xoq-nsK] server 10.231.K.2 -- 10.231.K.1 [xoq-nrsK] 10.233.K.2 --+
//!                                  masquerade                        10.233.K.1
//!                                                                  [xoq-niK] internet + relay
//!                                  masquerade                        10.234.K.1
//! [xoq-ncK] client 10.232.K.2 -- 10.232.K.1 [xoq-nrcK] 10.234.K.2 --+
//! ```
//! The private networks have no route to each other: a packet from the client reaches the
//! server only through the relay, or through the server's NAT once the server has sent to the
//! client's public address (a punched hole: Linux's masquerade keeps the source port and lets
//! in only replies to a flow it has seen). `Internet::RelayOnly` drops every packet between
//! the two NATs' public addresses, so no hole can be punched.
//! Needs root, `ip` (iproute2), `nft` (nftables) and `openssl`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::labcmd::{claim, must, run, run_with_input};
use crate::proc::Env;

/// The port the server listens on inside its namespace.
pub const SERVER_PORT: u16 = 7000;
/// The relay's HTTPS port (its QUIC address discovery is on iroh's default, 7842).
pub const RELAY_HTTPS_PORT: u16 = 3443;

/// What the internet between the two NATs lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Internet {
    /// Everything: the ends can punch a hole and talk directly.
    Open,
    /// Only traffic to and from the relay.
    RelayOnly,
}

pub struct NatLab {
    k: u8,
    dir: tempfile::TempDir,
    relay: Option<Child>,
}

/// `nft -f` of `rules` inside namespace `ns`.
fn nft(ns: &str, rules: &str) {
    if let Err(e) = run_with_input("ip", &["netns", "exec", ns, "nft", "-f", "-"], Some(rules)) {
        panic!("building the NAT lab: {e}");
    }
}

/// Turns on IPv4 forwarding in namespace `ns`.
fn forward(ns: &str) {
    must(
        "ip",
        &[
            "netns",
            "exec",
            ns,
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv4/ip_forward",
        ],
    );
}

impl NatLab {
    /// Builds the five namespaces, the NATs, the relay's certificates, and starts the relay,
    /// which relays for the endpoints in `allow` only (`access.allowlist`, as
    /// docs/relay/iroh-relay.toml recommends).
    pub fn new(internet: Internet, allow: &[String]) -> NatLab {
        let k = claim("xoq-ni");
        let mut lab = NatLab {
            k,
            dir: tempfile::tempdir().expect("tempdir"),
            relay: None,
        };
        for ns in lab.others() {
            let _ = run("ip", &["netns", "del", &ns]); // a stale one from a killed run
            must("ip", &["netns", "add", &ns]);
        }
        for ns in lab.all() {
            must("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        }
        let (srv, nat_s, inet, nat_c, cli) = (
            lab.server_ns(),
            format!("xoq-nrs{k}"),
            format!("xoq-ni{k}"),
            format!("xoq-nrc{k}"),
            lab.client_ns(),
        );
        // Private side of each NAT, then its public side on the internet.
        lab.wire(&srv, "lan", "10.231", 2, &nat_s, "lan", 1);
        lab.wire(&cli, "lan", "10.232", 2, &nat_c, "lan", 1);
        lab.wire(&nat_s, "wan", "10.233", 2, &inet, "to-s", 1);
        lab.wire(&nat_c, "wan", "10.234", 2, &inet, "to-c", 1);
        for (ns, via) in [
            (&srv, format!("10.231.{k}.1")),
            (&cli, format!("10.232.{k}.1")),
            (&nat_s, format!("10.233.{k}.1")),
            (&nat_c, format!("10.234.{k}.1")),
        ] {
            must("ip", &["-n", ns, "route", "add", "default", "via", &via]);
        }
        for ns in [&nat_s, &nat_c, &inet] {
            forward(ns);
        }
        // A home router: masquerade out of `wan`; in from `wan` only replies to flows seen going
        // out, to itself as well as to the LAN. (Dropping an unsolicited packet before conntrack
        // confirms it also keeps it from taking the port mapping a hole punch needs next.)
        let masquerade = "table ip nat {\n chain lab_postrouting {\n  type nat hook postrouting priority 100;\n  oifname \"wan\" masquerade\n }\n}\n\
             table ip filter {\n chain lab_forward {\n  type filter hook forward priority 0; policy drop;\n  iifname \"lan\" accept\n  ct state established,related accept\n }\n\
             chain lab_input {\n  type filter hook input priority 0; policy accept;\n  iifname \"wan\" ct state new drop\n }\n}\n";
        nft(&nat_s, masquerade);
        nft(&nat_c, masquerade);
        if internet == Internet::RelayOnly {
            nft(
                &inet,
                "table ip filter {\n chain lab_forward {\n  type filter hook forward priority 0; policy drop;\n }\n}\n",
            );
        }
        lab.make_certificates();
        lab.start_relay(allow);
        lab
    }

    /// A veth pair: `a_dev` in `a` with NET.K.`a_host`/24, `b_dev` in `b` with NET.K.`b_host`.
    #[allow(clippy::too_many_arguments)]
    fn wire(&self, a: &str, a_dev: &str, net: &str, a_host: u8, b: &str, b_dev: &str, b_host: u8) {
        let k = self.k;
        let (ta, tb) = (format!("xn{k}a{a_dev}"), format!("xn{k}b{b_dev}"));
        let _ = run("ip", &["link", "del", &ta]);
        must(
            "ip",
            &["link", "add", &ta, "type", "veth", "peer", "name", &tb],
        );
        for (ns, tmp, dev, host) in [(a, &ta, a_dev, a_host), (b, &tb, b_dev, b_host)] {
            must("ip", &["link", "set", tmp, "netns", ns]);
            must("ip", &["-n", ns, "link", "set", tmp, "name", dev]);
            must(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{net}.{k}.{host}/24"),
                    "dev",
                    dev,
                ],
            );
            must("ip", &["-n", ns, "link", "set", dev, "up"]);
        }
    }

    fn others(&self) -> Vec<String> {
        let k = self.k;
        ["ns", "nrs", "nrc", "nc"]
            .iter()
            .map(|n| format!("xoq-{n}{k}"))
            .collect()
    }

    fn all(&self) -> Vec<String> {
        let mut v = self.others();
        v.push(format!("xoq-ni{}", self.k));
        v
    }

    pub fn server_ns(&self) -> String {
        format!("xoq-ns{}", self.k)
    }

    pub fn client_ns(&self) -> String {
        format!("xoq-nc{}", self.k)
    }

    /// The server's private address.
    pub fn server_ip(&self) -> std::net::IpAddr {
        std::net::Ipv4Addr::new(10, 231, self.k, 2).into()
    }

    /// The public address of the server's NAT: what a punched direct path goes to.
    pub fn server_public_ip(&self) -> String {
        format!("10.233.{}.2", self.k)
    }

    /// The relay's URL.
    pub fn relay_url(&self) -> String {
        format!("https://10.233.{}.1:{RELAY_HTTPS_PORT}", self.k)
    }

    /// The PEM file of the CA that signed the relay's certificate (`--relay-ca`).
    pub fn relay_ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Runs `env`'s server in the server's private network and `client`'s commands in the
    /// client's.
    pub fn place(&self, env: &mut Env, client: &str) {
        env.set_netns("server", &self.server_ns());
        env.set_netns(client, &self.client_ns());
    }

    /// A CA of the lab's own and a certificate for the relay's address signed by it (an end
    /// entity, as TLS verifiers require).
    fn make_certificates(&self) {
        let d = self.dir.path();
        let p = |f: &str| d.join(f).to_string_lossy().to_string();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let mut ca = vec!["req", "-x509", "-nodes", "-days", "2"];
        ca.extend(ec);
        let (ca_key, ca_pem) = (p("ca.key"), p("ca.pem"));
        ca.extend([
            "-keyout",
            &ca_key,
            "-out",
            &ca_pem,
            "-subj",
            "/CN=xoq lab CA",
        ]);
        must("openssl", &ca);
        let mut csr = vec!["req", "-nodes"];
        csr.extend(ec);
        let (key, req) = (p("relay.key"), p("relay.csr"));
        csr.extend(["-keyout", &key, "-out", &req, "-subj", "/CN=xoq lab relay"]);
        must("openssl", &csr);
        let ext = p("relay.ext");
        std::fs::write(
            &ext,
            format!(
                "basicConstraints=CA:FALSE\nsubjectAltName=IP:10.233.{}.1\nextendedKeyUsage=serverAuth\n",
                self.k
            ),
        )
        .expect("extensions file");
        let crt = p("relay.crt");
        must(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &req,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &crt,
            ],
        );
    }

    /// Starts `iroh-relay` in the internet namespace and waits until it accepts TLS.
    fn start_relay(&mut self, allow: &[String]) {
        let k = self.k;
        let d = self.dir.path();
        let config = d.join("relay.toml");
        std::fs::write(
            &config,
            format!(
                "enable_relay = true\nhttp_bind_addr = \"10.233.{k}.1:3340\"\n\
                 enable_quic_addr_discovery = true\n\
                 [tls]\ncert_mode = \"Manual\"\nmanual_cert_path = \"{}\"\nmanual_key_path = \"{}\"\n\
                 https_bind_addr = \"10.233.{k}.1:{RELAY_HTTPS_PORT}\"\n\
                 [access]\nallowlist = [{}]\n",
                d.join("relay.crt").display(),
                d.join("relay.key").display(),
                allow
                    .iter()
                    .map(|id| format!("\"{id}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        )
        .expect("relay config");
        let log = std::fs::File::create(d.join("relay.log")).expect("relay log");
        let child = Command::new("ip")
            .args(["netns", "exec", &format!("xoq-ni{k}")])
            .arg(relay_binary())
            .arg("--config-path")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting iroh-relay");
        self.relay = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        // Its log says when each service listens.
        let ready = |log: &str| {
            log.contains("[HTTPS/WSS] relay: serving") && log.contains("QUIC server listening")
        };
        while !ready(&self.relay_log()) {
            if Instant::now() > deadline {
                panic!("iroh-relay did not start:\n{}", self.relay_log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the relay logged.
    pub fn relay_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("relay.log")).unwrap_or_default()
    }
}

/// The `iroh-relay` binary that `scripts/deps.sh` installs (pinned to iroh's version).
pub fn relay_binary() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"));
    let bin = home.join("bin/iroh-relay");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/deps.sh (it installs the pinned iroh-relay)",
        bin.display()
    );
    // The relay must speak the protocol of the iroh the workspace is built with.
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
        .expect("Cargo.lock");
    let want = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"iroh-relay\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .map(|v| v.trim_matches('"').to_string())
        .expect("iroh-relay in Cargo.lock");
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .expect("iroh-relay --version");
    let have = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        have,
        format!("iroh-relay {want}"),
        "the installed iroh-relay is not the version in Cargo.lock: update IROH_RELAY_VERSION in scripts/deps.sh and run it"
    );
    bin
}

impl Drop for NatLab {
    fn drop(&mut self) {
        if let Some(mut c) = self.relay.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.all() {
            let _ = run("ip", &["netns", "del", &ns]);
        }
    }
}
