#!/usr/bin/env bash
# Runs every test of XoQ mount: formatting, lints, unit and property tests, the host
# end-to-end suite (real binaries, real PTYs, loopback QUIC, a private PipeWire for audio), the
# NVENC feature's build and its clean failure without a GPU, the browser viewer (web/, and in
# headless chromium against a real moq-relay), a fuzz smoke run of each fuzz
# target (fuzz/run.sh), the Debian packages in a real install (tests/pkg), the real-kernel suites in a qemu VM
# (tests/vm), and the demo's self-check. Installs what it needs first (scripts/deps.sh).
#
#   scripts/test.sh            everything
#   FUZZ_SECONDS=0 scripts/test.sh   skip the fuzz smoke run
set -euo pipefail
cd "$(dirname "$0")/.."

# A fresh clone's build, fuzz, package and VM outputs take about 5 GB: say so before a full
# disk fails a build halfway (it did once, in CI).
free_kib=$(df -Pk . | awk 'NR == 2 { print $4 }')
if [ "${free_kib:-0}" -lt $((6 * 1024 * 1024)) ]; then
  echo "test.sh: only $((free_kib / 1024)) MiB free on $(df -P . | awk 'NR == 2 { print $6 }'); the tests need about 6 GiB (remove old target/ dirs, e.g. cargo clean)" >&2
  exit 1
fi

scripts/deps.sh

echo "== fmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== NVENC feature (builds without CUDA; fails cleanly without an NVIDIA GPU)"
cargo clippy -p xoq-video -p xoq-server --features xoq-server/nvenc --all-targets -- -D warnings
cargo test -p xoq-video --features nvenc
echo "== build"
cargo build --workspace --bins
echo "== browser viewer (web/: npm ci from the lock file, its unit tests, the bundle the browser test loads)"
(cd web && npm ci --no-audit --no-fund --loglevel=error && npm test --silent && npm run build --silent)
echo "== tests"
cargo nextest run --workspace --no-run
# The build leaves gigabytes of dirty pages; written back while the tests run, they stall the
# processes of the tests that time real audio. Written back now instead.
sync
cargo nextest run --workspace --no-fail-fast
if [ "${FUZZ_SECONDS:-20}" != 0 ]; then
  echo "== fuzz smoke (${FUZZ_SECONDS:-20} s)"
  fuzz/run.sh "${FUZZ_SECONDS:-20}"
fi
echo "== Debian packages (lintian, install/upgrade/purge in a debootstrap root)"
tests/pkg/test.sh
echo "== real-kernel tests (qemu VM: vcan, CUSE, v4l2loopback, udev)"
tests/vm/test.sh
echo "== demo self-check"
scripts/demo.sh --self-test
