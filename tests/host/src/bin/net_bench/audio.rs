//! Audio over an impaired link: `audio_bench --profile NAME --json` (the same directory's
//! release binary), which measures both directions' mouth-to-ear latency with clicks on the
//! wall clock's 250 ms marks, and PipeWire's RTP pair through the same link as the baseline
//! (its module docs). Its JSON line is this kind's line.

use std::process::Command;

use serde_json::Value;
use xoq_impair::Profile;

use crate::Args;

pub fn run(profile: &Profile, a: &Args) -> Value {
    let bench = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("audio_bench")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("audio_bench is not beside net_bench: cargo build --release --workspace --bins")
        });
    let out = Command::new(&bench)
        .args(["--profile", &profile.name, "--seed", &a.seed.to_string()])
        .args(["--clicks", &a.audio_clicks.to_string(), "--json"])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bench.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprint!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "audio_bench failed: {}", out.status);
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("audio_bench printed no JSON line"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("audio_bench's JSON line: {e}: {line}"))
}
