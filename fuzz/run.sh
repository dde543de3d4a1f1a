#!/usr/bin/env bash
# Fuzzes each target for SECONDS (default 60) with cargo-fuzz (libFuzzer + ASan): `decode`
# (the xoq-wire decoders), `cuse` (the /dev/cuse request parser and the CUSE tty) and `jpeg`
# (cutting a camera's MJPEG buffer to its image), `audio` (a packet's samples, PCM or Opus,
# into the jitter buffer), `catalog` (a hostile server's catalog: every name that decodes is
# safe to make local names of) and `relay_media` (a relay's camera catalog and media frames).
# Works on a stable toolchain: RUSTC_BOOTSTRAP=1 lets stable rustc accept the -Z flags that
# cargo-fuzz passes. Exits non-zero if a target crashes; the input is saved under
# fuzz/artifacts/<target>/. Extra arguments after SECONDS go to libFuzzer. FUZZ_TARGETS
# chooses targets (default: all).
#
#   fuzz/run.sh          # 60 s
#   fuzz/run.sh 300      # 5 min
#   fuzz/run.sh 30 -max_len=70000
set -euo pipefail

secs="${1:-60}"
shift || true
case "$secs" in
    ''|*[!0-9]*) echo "usage: $0 [SECONDS] [libFuzzer args...]" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."   # the workspace root; cargo fuzz finds fuzz/ from here

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found; installing it (takes a few minutes)" >&2
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
for target in ${FUZZ_TARGETS:-decode cuse jpeg audio catalog relay_media}; do
    echo "== fuzz $target ($secs s)"
    cargo fuzz run "$target" -- -max_total_time="$secs" "$@"
done
