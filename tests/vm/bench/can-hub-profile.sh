#!/bin/sh
# Profile (not a test): where the CPU goes per CAN frame, XoQ beside can-hub's QUIC datagram
# tunnel, in the kernel guest (qemu TCG, one emulated CPU). 2000 frames at 2 ms gaps through
# each under `perf record -a` (cpu-clock, 499 Hz), then the share of each process, and of each
# daemon's symbols. Needs perf on the host (linux-perf), besides what can-hub-compare.sh needs.
#   scripts/build-can-hub.sh CAN_HUB_DIR
#   cargo build --release -p xoq-server -p xoq-mount
#   d=$(mktemp -d) && cp tests/vm/bench/can-hub-profile.sh "$d/" && XOQ_VM_SUITES=$d tests/vm/test.sh
# needs: target/release/xoq-server target/release/xoq-mount target/can-hub/tunnel target/can-hub/cert.pem target/can-hub/key.pem perf
# timeout: 1500
# mem: 1024
set -u
export XOQ_LOG=warn
. /payload/suite-lib.sh
can_tunnels

perf record -a -F 499 -o /tmp/xoq.data -- sh -c 'sleep 0.2; cangen vcan-xoq0 -g 2 -I 555 -L 8 -D i -n 2000' 2>&1 | tail -1
perf record -a -F 499 -o /tmp/ch.data -- sh -c 'sleep 0.2; cangen vcan2 -g 2 -I 555 -L 8 -D i -n 2000' 2>&1 | tail -1
for f in xoq ch; do
  echo "=== $f: by command"
  perf report -i /tmp/$f.data --sort comm --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
done
for c in xoq-mount xoq-server; do
  echo "=== xoq: $c by dso"
  perf report -i /tmp/xoq.data --comm $c --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8
  echo "=== xoq: $c by symbol"
  perf report -i /tmp/xoq.data --comm $c --sort sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
done
for c in tunnel; do
  echo "=== can-hub: $c by dso"
  perf report -i /tmp/ch.data --comm $c --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8
  echo "=== can-hub: $c by symbol"
  perf report -i /tmp/ch.data --comm $c --sort sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30
done
stop_can_tunnels
exit $fail
