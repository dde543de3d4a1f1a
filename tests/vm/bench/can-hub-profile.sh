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
for i in vcan0 vcan2 vcan3; do ip link add $i type vcan && ip link set $i up || bad "$i setup"; done
xoq-server authorize "$(xoq-mount id 2>/dev/null)" >/dev/null 2>&1 || bad "authorize"
printf 'listen = ["127.0.0.1:4730"]\n[[can]]\nname = "bus"\ninterface = "vcan0"\nmax_age_ms = 0\n' >/tmp/server.toml
tunnel server 4433 vcan3 /payload/bin/cert.pem /payload/bin/key.pem 2>/tmp/ch-server.log &
CH_SERVER=$!
sleep 0.3
tunnel client 127.0.0.1 4433 vcan2 2>/tmp/ch-client.log &
CH_CLIENT=$!
wait_for /tmp/ch-client.log 'handshake completed' 30 || { bad "can-hub handshake"; cat /tmp/ch-*.log; }
rm -f /tmp/server.out /tmp/mount.out
xoq-server --config /tmp/server.toml serve >/tmp/server.out 2>>/tmp/server.log &
SERVER=$!
wait_for /tmp/server.out '^ticket: ' 30 || { bad "server start"; cat /tmp/server.log; exit 1; }
T=$(sed -n 's/^ticket: //p' /tmp/server.out)
xoq-mount "$T" --link-dir /tmp/dev >/tmp/mount.out 2>/tmp/mount.log &
MOUNT=$!
wait_for /tmp/mount.out 'mounted  can  bus' 30 || { bad "mount"; cat /tmp/mount.log; exit 1; }
can_ready bus
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
kill $MOUNT $SERVER; wait $MOUNT $SERVER 2>/dev/null
kill $CH_CLIENT $CH_SERVER 2>/dev/null
exit $fail
