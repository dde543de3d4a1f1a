#!/bin/sh
# CAN over the link, in a real kernel: xoq-server serves vcan0 (its "hardware") and the
# simulated Damiao bus; xoq-mount creates vcan-xoq<n> for each; can-utils check what crosses.
# needs: target/debug/xoq-server target/debug/xoq-mount
# timeout: 300
set -u
export PATH=/payload/bin:$PATH
export XOQ_STATE_DIR=/tmp/xoq XOQ_RUNTIME_DIR=/tmp/xoq/run XOQ_AUTHORIZED_CLIENTS=/tmp/xoq/auth.toml
export XOQ_LOG=info,iroh=warn,noq=warn,noq_proto=warn
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
wait_for() { # wait_for FILE PATTERN SECONDS
  i=0; while [ $i -lt $(($3 * 10)) ]; do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; i=$((i + 1)); done; return 1
}
# frames FILE: candump -L lines without timestamp and interface, e.g. "123#DEADBEEF"
frames() { sed 's/^([^)]*) [^ ]* //' "$1"; }

ip link add vcan0 type vcan && ip link set vcan0 mtu 72 && ip link set vcan0 up || bad "vcan0 setup"
xoq-server authorize "$(xoq-mount id 2>/dev/null)" >/dev/null 2>&1 || bad "authorize"
xoq-server serve --listen 127.0.0.1:4700 --can bus=vcan0 --sim-can motors \
  >/tmp/server.out 2>/tmp/server.log &
wait_for /tmp/server.out '^ticket: ' 30 || { bad "server start"; cat /tmp/server.log; exit 1; }
T=$(sed -n 's/^ticket: //p' /tmp/server.out)
xoq-mount "$T" --link-dir /tmp/dev >/tmp/mount.out 2>/tmp/mount.log &
MOUNT=$!
wait_for /tmp/mount.out 'mounted  can  motors' 30 || { bad "mount"; cat /tmp/mount.log; exit 1; }
IF=$(sed -n 's/^mounted  can  bus  ->  \([^ ]*\).*/\1/p' /tmp/mount.out)
MIF=$(sed -n 's/^mounted  can  motors  ->  \([^ ]*\).*/\1/p' /tmp/mount.out)
[ "$IF" = vcan-xoq0 ] && ok "bus mounted as $IF" || bad "bus mounted as '$IF'"
grep -q 'mtu 72' /sys/class/net/$IF/mtu 2>/dev/null || [ "$(cat /sys/class/net/$IF/mtu)" = 72 ] && ok "$IF has MTU 72 (FD)" || bad "$IF mtu $(cat /sys/class/net/$IF/mtu)"
sleep 0.5

# 1. both directions, classic
candump -L -n 1 vcan0 >/tmp/d1 & P=$!; sleep 0.3; cansend "$IF" 123#DEADBEEF; sleep 1; kill $P 2>/dev/null
[ "$(frames /tmp/d1)" = "123#DEADBEEF" ] && ok "cansend $IF 123#DEADBEEF arrived on vcan0" || bad "vcan0 got '$(frames /tmp/d1)'"
candump -L -n 1 "$IF" >/tmp/d2 & P=$!; sleep 0.3; cansend vcan0 456#CAFE; sleep 1; kill $P 2>/dev/null
[ "$(frames /tmp/d2)" = "456#CAFE" ] && ok "vcan0 456#CAFE arrived on $IF" || bad "$IF got '$(frames /tmp/d2)'"

# 2. every frame shape keeps its fields (FD 64 B with BRS, FD of 8 B, RTR, extended id, error)
FD64=$(i=0; while [ $i -lt 64 ]; do printf '%02X' $i; i=$((i + 1)); done)
SHAPES="123##1$FD64 124##00102030405060708 125#R4 12345678#0102 20000004#0004000000000000"
candump -L -n 5 'vcan0,0:0,#FFFFFFFF' >/tmp/d3 & P=$!; sleep 0.3
for f in $SHAPES; do cansend "$IF" "$f"; done; sleep 1; kill $P 2>/dev/null
for f in $SHAPES; do
  # candump shows the kernel's FD flags nibble, which includes CANFD_FDF (4): ##1 is sent as ##5
  case $f in *##1*) want=$(echo "$f" | sed 's/##1/##5/');; *##0*) want=$(echo "$f" | sed 's/##0/##4/');; *) want=$f;; esac
  frames /tmp/d3 | grep -qx "$want" && ok "shape $want" || bad "shape $want missing; got: $(frames /tmp/d3 | tr '\n' ' ')"
done

# 3. no echo loop: what the mounter wrote to $IF is not sent back to vcan0 twice
candump -L vcan0 >/tmp/d4 & P=$!; sleep 0.3; cansend "$IF" 321#01; sleep 1; kill $P 2>/dev/null
[ "$(frames /tmp/d4 | grep -c '^321#01$')" = 1 ] && ok "no echo loop" || bad "321#01 seen $(frames /tmp/d4 | grep -c '^321#01$') times"

# 4. the simulated Damiao bus: enable motor 1 on the local interface, its reply comes back
candump -L -n 1 "$MIF,011:7FF" >/tmp/d5 & P=$!; sleep 0.3; cansend "$MIF" 001#FFFFFFFFFFFFFFFC; sleep 1; kill $P 2>/dev/null
frames /tmp/d5 | grep -q '^011#1' && ok "motor 1 answered enable: $(frames /tmp/d5)" || bad "no enable reply: '$(frames /tmp/d5)'"

# 5. 100,000 frames back to back. Not asserted yet: frames the kernel drops at a reading socket
# (the mounter's, or candump's) are not counted until SO_RXQ_OVFL is read (open in issue 3).
# Printed so every run shows where the loss is.
tx_sent() { # the server's tx_frames counter for device "bus", from the mounter's status
  XOQ_RUNTIME_DIR=/tmp/xoq/run xoq-mount status --json | sed 's/},{"access"/\n/g' | grep '"name":"bus"' |
    sed -n 's/.*"tx_frames":\([0-9]*\).*/\1/p'
}
sleep 0.3; before=$(tx_sent)
candump -L vcan0,7A0:7FF >/tmp/d6 & P=$!; sleep 0.3
cangen "$IF" -I 7A0 -L 8 -D i -g 0 -n 100000 -p 10 2>/dev/null; sleep 5; kill $P 2>/dev/null
got=$(wc -l </tmp/d6); after=$(tx_sent)
echo "100k: candump on vcan0 saw $got; server counted $((after - before)) sent"
echo "info: 100k back to back: $((after - before)) reached the bus, candump kept $got"

# 6. unmount removes the interfaces
kill -TERM $MOUNT; i=0; while [ -e /sys/class/net/$IF ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ ! -e /sys/class/net/$IF ] && [ ! -e /sys/class/net/$MIF ] && ok "unmount removed $IF and $MIF" || bad "interfaces left: $(ls /sys/class/net)"

[ $fail = 0 ] || { echo "--- server log"; tail -20 /tmp/server.log; echo "--- mount log"; tail -20 /tmp/mount.log; }
exit $fail
