#!/bin/sh
# Benchmark (not a test): 32-byte round trips through the simulated echo port, with the port
# mounted as a CUSE tty and, in the same run, as a PTY; three alternating rounds of 5000.
# The host has no /dev/cuse, so this runs in the kernel guest (qemu TCG, one emulated CPU):
# absolute figures are the emulator's, the CUSE/PTY ratio is what carries over.
#   cargo build --release -p xoq-server -p xoq-mount -p xoq-tests-host --bins
#   XOQ_VM_SUITES=tests/vm/bench tests/vm/test.sh
# needs: target/release/xoq-server target/release/xoq-mount target/release/tty_exercise
# timeout: 900
set -u
export XOQ_LOG=warn
. /payload/suite-lib.sh
open_state() { xoq-mount status --json 2>/dev/null | grep -q '"state":"open"'; }
printf 'listen = ["127.0.0.1:4720"]\n[[serial]]\nname = "echo0"\nsimulated = true\n' >/tmp/server.toml
xoq-server authorize "$(xoq-mount id 2>/dev/null)" >/dev/null 2>&1
start_server /tmp/server.toml
for round in 1 2 3; do
  for kind in cuse pty; do
    rm -rf /tmp/links
    xoq-mount "$T" --serial-device $kind --link-dir /tmp/links >/tmp/m.out 2>/tmp/m.log &
    M=$!
    wait_for /tmp/m.out 'mounted  serial' 30 || { bad "mount $kind"; cat /tmp/m.log; }
    i=0; while ! open_state && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    echo "round $round $kind: $(tty_exercise rtt /tmp/links/ttyXOQ0 5000)"
    kill -TERM $M; wait $M 2>/dev/null
  done
done
exit $fail
