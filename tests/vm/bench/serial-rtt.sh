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
export PATH=/payload/bin:$PATH
export XOQ_STATE_DIR=/tmp/xoq XOQ_RUNTIME_DIR=/tmp/xoq/run XOQ_AUTHORIZED_CLIENTS=/tmp/xoq/auth.toml
export XOQ_LOG=warn
wait_for() { # wait_for FILE PATTERN SECONDS
  i=0; while [ $i -lt $(($3 * 10)) ]; do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; i=$((i + 1)); done; return 1
}
open_state() { xoq-mount status --json 2>/dev/null | grep -q '"state":"open"'; }
printf 'listen = ["127.0.0.1:4720"]\n[[serial]]\nname = "echo0"\nsimulated = true\n' >/tmp/server.toml
xoq-server authorize "$(xoq-mount id 2>/dev/null)" >/dev/null 2>&1
xoq-server --config /tmp/server.toml serve >/tmp/server.out 2>/tmp/server.log &
wait_for /tmp/server.out '^ticket: ' 30 || { echo "server did not start"; exit 1; }
T=$(sed -n 's/^ticket: //p' /tmp/server.out)
fail=0
for round in 1 2 3; do
  for kind in cuse pty; do
    rm -rf /tmp/links
    xoq-mount "$T" --serial-device $kind --link-dir /tmp/links >/tmp/m.out 2>/tmp/m.log &
    M=$!
    wait_for /tmp/m.out 'mounted  serial' 30 || { echo "mount $kind failed"; cat /tmp/m.log; fail=1; }
    i=0; while ! open_state && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    echo "round $round $kind: $(tty_exercise rtt /tmp/links/ttyXOQ0 5000)"
    kill -TERM $M; wait $M 2>/dev/null
  done
done
exit $fail
