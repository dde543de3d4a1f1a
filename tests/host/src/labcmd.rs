//! The commands the test network labs (`netlab`, `natlab`) are built with: run a program and
//! report its error, feed one its input, and claim a free lab number.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `program` with `args`; its stderr is the error.
pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
    run_with_input(program, args, None)
}

/// The same, with `input` on its stdin.
pub fn run_with_input(program: &str, args: &[&str], input: Option<&str>) -> Result<(), String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {program}: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("writing to {program}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("running {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs a command and panics with its error: a lab that cannot be built is a broken machine.
pub fn must(program: &str, args: &[&str]) {
    if let Err(e) = run(program, args) {
        panic!("building the network lab: {e}");
    }
}

/// Claims a lab number K from 1 to 250 by creating network namespace `{prefix}K` (atomic: it
/// fails if another lab holds it), starting from this process's id so parallel test processes
/// rarely collide.
pub fn claim(prefix: &str) -> u8 {
    let start = std::process::id() % 250;
    (0..250u32)
        .map(|i| ((start + i) % 250 + 1) as u8)
        .find(|k| run("ip", &["netns", "add", &format!("{prefix}{k}")]).is_ok())
        .unwrap_or_else(|| {
            panic!("no free network lab (250 namespaces {prefix}K exist: remove stale ones with `ip netns del`)")
        })
}
