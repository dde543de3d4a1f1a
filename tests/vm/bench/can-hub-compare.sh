#!/bin/sh
# Benchmark (not a test): one-way CAN latency from a client's interface to the robot's bus, XoQ
# beside can-hub's QUIC datagram tunnel in the same run, by can-hub's own method (its
# spike/e0-quic-datagram/run-bench.sh): cangen at 0.2 ms gaps (5000 frames/s) and 2 ms gaps
# (500/s) with a counter payload, candump -L on both interfaces (one clock), the delay of each
# frame matched by payload. Rounds alternate between the two. Needs vcan, so it runs in the
# kernel guest (qemu TCG, one emulated CPU): absolute figures are the emulator's, the two
# side by side are what carries over.
#   scripts/build-can-hub.sh CAN_HUB_DIR        # the baseline, into target/can-hub
#   cargo build --release -p xoq-server -p xoq-mount
#   d=$(mktemp -d) && cp tests/vm/bench/can-hub-compare.sh "$d/" && XOQ_VM_SUITES=$d tests/vm/test.sh
# needs: target/release/xoq-server target/release/xoq-mount target/can-hub/tunnel target/can-hub/cert.pem target/can-hub/key.pem
# timeout: 900
set -u
export XOQ_LOG=warn
. /payload/suite-lib.sh
N=5000

can_tunnels

# measure LABEL FROM TO GAP_MS: N frames on FROM, their one-way delays to TO.
measure() {
  candump -L "$2" "$3" >/tmp/d.log & D=$!
  sleep 0.5
  cangen "$2" -g "$4" -I 555 -L 8 -D i -n $N
  sleep 1
  kill $D; wait $D 2>/dev/null
  awk -v from="$2" -v to="$3" 'NF == 3 {
      t = substr($1, 2, length($1) - 2)
      if ($2 == from) sent[$3] = t; else if ($2 == to && ($3 in sent)) printf "%.1f\n", (t - sent[$3]) * 1e6
    }' /tmp/d.log | sort -n >/tmp/delays
  # Percentiles as can-hub's script takes them: the sorted delays' element int(count * p).
  awk -v label="$1" -v n=$N 'function at(p,  i) { i = int(NR * p) + 1; return d[i > NR ? NR : i] }
    { d[NR] = $1 } END {
      p50 = NR ? at(0.50) : 0; p99 = NR ? at(0.99) : 0; mx = NR ? d[NR] : 0
      printf "%s: sent=%d received=%d p50=%.0fus p99=%.0fus max=%.0fus\n", label, n, NR, p50, p99, mx
    }' /tmp/delays
}

for gap in 0.2 2; do
  for round in 1 2 3; do
    measure "xoq gap=${gap}ms round $round" vcan-xoq0 vcan0 $gap
    measure "can-hub gap=${gap}ms round $round" vcan2 vcan3 $gap
  done
done
stop_can_tunnels
grep -v 'handshake' /tmp/ch-*.log | head -5
exit $fail
