//! `impair_relay`: a UDP relay that applies a named link profile to the traffic it carries.
//!
//!     impair_relay --listen ADDR --upstream ADDR [--upstream-bind IP] --profile NAME [--seed N]
//!
//! Prints `listening: ADDR` when ready. Reads commands on standard input, one a line:
//! `blackhole MS` (nothing crosses for MS milliseconds from now) and `stats` (prints the
//! counters as one JSON line); at the end of input it prints the counters and exits.

use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xoq_impair::profile::PROFILE_NAMES;
use xoq_impair::{Profile, Relay, RelayConfig};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut listen: Option<SocketAddr> = None;
    let mut upstream: Option<SocketAddr> = None;
    let mut bind = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let mut profile = None;
    let mut seed = 1u64;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = Some(value.parse().context("--listen ADDR:PORT")?),
            "--upstream" => upstream = Some(value.parse().context("--upstream ADDR:PORT")?),
            "--upstream-bind" => bind = value.parse().context("--upstream-bind IP")?,
            "--seed" => seed = value.parse().context("--seed N")?,
            "--profile" => {
                profile = Some(Profile::named(value).with_context(|| {
                    format!(
                        "unknown profile {value}; one of {}",
                        PROFILE_NAMES.join(", ")
                    )
                })?)
            }
            other => bail!("unknown option {other}"),
        }
    }
    let (Some(listen), Some(upstream), Some(profile)) = (listen, upstream, profile) else {
        bail!("usage: impair_relay --listen ADDR --upstream ADDR [--upstream-bind IP] --profile NAME [--seed N]");
    };
    let relay = Relay::start(RelayConfig {
        listen,
        upstream,
        upstream_bind: bind,
        profile,
        seed,
    })?;
    println!("listening: {}", relay.local_addr());
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading commands")?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["blackhole", ms] => {
                let ms: u64 = ms.parse().context("blackhole MS")?;
                relay.blackhole(Duration::from_millis(ms));
            }
            ["stats"] => println!("{}", relay.counters_json()),
            [] => {}
            _ => eprintln!("impair_relay: unknown command {line:?} (blackhole MS | stats)"),
        }
    }
    println!("{}", relay.counters_json());
    Ok(())
}
