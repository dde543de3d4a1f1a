#!/bin/sh
# CAN over the link, in a real kernel: xoq-server serves vcan0 (its "hardware") and the
# simulated Damiao bus; xoq-mount creates vcan-xoq<n> for each; can-utils check what crosses.
# needs: target/debug/xoq-server target/debug/xoq-mount
# timeout: 480
set -u
. /payload/suite-lib.sh
# frames FILE: candump -L lines without timestamp and interface, e.g. "123#DEADBEEF"
frames() { sed 's/^([^)]*) [^ ]* //' "$1" | grep -v '^DROPCOUNT'; }
# counter DEVICE FIELD: a number from the mounter's status (server counters, or local drops)
counter() {
  v=$(XOQ_RUNTIME_DIR=/tmp/xoq/run xoq-mount status --json | awk '{ gsub(/\},\{"access"/, "\n"); print }' |
    grep "\"name\":\"$1\"" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p")
  echo "${v:-0}"
}

ip link add vcan0 type vcan && ip link set vcan0 mtu 72 && ip link set vcan0 up || bad "vcan0 setup"
xoq-server authorize "$(xoq-mount id 2>/dev/null)" >/dev/null 2>&1 || bad "authorize"
cat >/tmp/server.toml <<TOML
listen = ["127.0.0.1:4700"]
[[can]]
name = "bus"
interface = "vcan0"
[[can]]
name = "motors"
simulated = "damiao"
max_age_ms = 100
TOML
start_server /tmp/server.toml
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

# ... and the same shapes from the remote bus to the local interface
candump -L -n 5 "$IF,0:0,#FFFFFFFF" >/tmp/d3r & P=$!; sleep 0.3
for f in $SHAPES; do cansend vcan0 "$f"; done; sleep 1; kill $P 2>/dev/null
for f in $SHAPES; do
  case $f in *##1*) want=$(echo "$f" | sed 's/##1/##5/');; *##0*) want=$(echo "$f" | sed 's/##0/##4/');; *) want=$f;; esac
  frames /tmp/d3r | grep -qx "$want" && ok "shape $want from the remote bus" || bad "shape $want missing on $IF; got: $(frames /tmp/d3r | tr '\n' ' ')"
done

# 3. no echo loop: what the mounter wrote to $IF is not sent back to vcan0 twice
candump -L vcan0 >/tmp/d4 & P=$!; sleep 0.3; cansend "$IF" 321#01; sleep 1; kill $P 2>/dev/null
[ "$(frames /tmp/d4 | grep -c '^321#01$')" = 1 ] && ok "no echo loop" || bad "321#01 seen $(frames /tmp/d4 | grep -c '^321#01$') times"

# 4. the simulated Damiao bus: enable motor 1 on the local interface, its reply comes back
candump -L -n 1 "$MIF,011:7FF" >/tmp/d5 & P=$!; sleep 0.3; cansend "$MIF" 001#FFFFFFFFFFFFFFFC; sleep 1; kill $P 2>/dev/null
frames /tmp/d5 | grep -q '^011#1' && ok "motor 1 answered enable: $(frames /tmp/d5)" || bad "no enable reply: '$(frames /tmp/d5)'"

# 5. a command delayed past its maximum age (100 ms on "motors") is dropped, never delivered
stale0=$(counter motors tx_stale)
candump -L "$MIF,012:7FF" >/tmp/d7 & P=$!; sleep 0.3
kill -STOP $SERVER; cansend "$MIF" 002#FFFFFFFFFFFFFFFC; sleep 0.5; kill -CONT $SERVER; sleep 1.5; kill $P 2>/dev/null
stale1=$(counter motors tx_stale)
[ -z "$(frames /tmp/d7)" ] && ok "late enable not delivered (no reply from motor 2)" || bad "motor 2 answered a late command: $(frames /tmp/d7)"
[ "$stale1" -gt "$stale0" ] && ok "late command counted (tx_stale $stale0 -> $stale1)" || bad "tx_stale $stale0 -> $stale1"

# 6. a read-only client sees the bus and cannot send
mkdir -p /tmp/ro
XOQ_STATE_DIR=/tmp/ro xoq-server authorize "$(XOQ_STATE_DIR=/tmp/ro xoq-mount id 2>/dev/null)" --read-only >/dev/null 2>&1
XOQ_STATE_DIR=/tmp/ro XOQ_RUNTIME_DIR=/tmp/ro/run xoq-mount "$T" --link-dir /tmp/ro/dev >/tmp/ro.out 2>/tmp/ro.log &
RO=$!
wait_for /tmp/ro.out 'mounted  can  bus' 30 || bad "read-only mount"
RIF=$(sed -n 's/^mounted  can  bus  ->  \([^ ]*\).*/\1/p' /tmp/ro.out)
grep -q "(ro, " /tmp/ro.out && ok "read-only client mounted $RIF read-only" || bad "ro mount line: $(cat /tmp/ro.out)"
sleep 0.5
candump -L -n 1 "$RIF" >/tmp/d8 & P=$!; sleep 0.3; cansend vcan0 5A5#A5; sleep 1; kill $P 2>/dev/null
[ "$(frames /tmp/d8)" = "5A5#A5" ] && ok "read-only client sees the bus" || bad "$RIF got '$(frames /tmp/d8)'"
candump -L vcan0 >/tmp/d9 & P=$!; sleep 0.3; cansend "$RIF" 666#66; sleep 1; kill $P 2>/dev/null
[ -z "$(frames /tmp/d9)" ] && ok "read-only client cannot send" || bad "vcan0 got '$(frames /tmp/d9)' from a read-only client"
# the bus view: what another client sends reaches it once the bus carried it, and the sender
# is not sent its own frame back (candump on $IF sees the local copy only)
candump -L -n 1 "$RIF,777:7FF" >/tmp/d10 & P=$!; candump -L "$IF,777:7FF" >/tmp/d11 & P2=$!; sleep 0.3
cansend "$IF" 777#77; sleep 1; kill $P $P2 2>/dev/null
[ "$(frames /tmp/d10)" = "777#77" ] && ok "other clients see a client's frame (confirmed by the bus)" || bad "$RIF got '$(frames /tmp/d10)'"
[ "$(frames /tmp/d11 | grep -c '^777#77$')" = 1 ] && ok "the sender does not get its own frame back" || bad "$IF saw 777#77 $(frames /tmp/d11 | grep -c '^777#77$') times"
kill -TERM $RO

# 7. 100,000 frames back to back: every one reaches the bus, or each loss is counted exactly
t0=$(counter bus tx_frames); s0=$(counter bus tx_stale); f0=$(counter bus tx_failed); l0=$(counter bus local_kernel_dropped)
candump -d -L vcan0,7A0:7FF >/tmp/d6 & P=$!; sleep 0.3
# renice: the VM has one emulated CPU; a full-speed cangen would starve the link (keep-alives)
cangen "$IF" -I 7A0 -L 8 -D i -g 0 -n 100000 -p 10 & CG=$!
renice -n 19 -p $CG >/dev/null; wait $CG || bad "cangen failed"
# wait until the frames stop moving (3 quiet seconds), at most 150 s: under emulation the
# mounter drains its socket buffer well after cangen has finished
last=-1; quiet=0; i=0
while [ $i -lt 150 ] && [ $quiet -lt 3 ]; do
  sleep 1; i=$((i + 1)); now=$(( $(counter bus tx_frames) + $(wc -l </tmp/d6) ))
  if [ "$now" = "$last" ]; then quiet=$((quiet + 1)); else quiet=0; last=$now; fi
done
kill $P 2>/dev/null; sleep 0.2
t1=$(counter bus tx_frames); s1=$(counter bus tx_stale); f1=$(counter bus tx_failed); l1=$(counter bus local_kernel_dropped)
sent=$((t1 - t0)); stale=$((s1 - s0)); failed=$((f1 - f0)); lost=$((l1 - l0))
seen=$(frames /tmp/d6 | grep -c '^7A0#'); cdrop=$(sed -n 's/.*total drops \([0-9]*\).*/\1/p' /tmp/d6 | tail -n1); cdrop=${cdrop:-0}
echo "100k: on the bus $sent, stale $stale, failed $failed, dropped by the kernel at the mounter $lost; candump saw $seen, dropped $cdrop"
[ $((sent + stale + failed + lost)) = 100000 ] && ok "all 100000 frames accounted for (lost $((stale + failed + lost)))" || bad "accounted $((sent + stale + failed + lost)) of 100000"
[ $((seen + cdrop)) = "$sent" ] && ok "counters match candump ($seen seen + $cdrop dropped by candump = $sent sent)" || bad "candump $seen+$cdrop != sent $sent"

# 8. without CAP_NET_ADMIN the mounter says exactly what is missing
mkdir -p /tmp/nb && chmod 777 /tmp/nb
NB="XOQ_STATE_DIR=/tmp/nb XOQ_RUNTIME_DIR=/tmp/nb/run PATH=$PATH"
XOQ_STATE_DIR=/tmp/ro xoq-server authorize "$(su -s /bin/sh nobody -c "$NB xoq-mount id" 2>/dev/null)" >/dev/null 2>&1
su -s /bin/sh nobody -c "$NB xoq-mount $T --link-dir /tmp/nb/dev" >/tmp/nb.out 2>&1
grep -q "needs CAP_NET_ADMIN" /tmp/nb.out && ok "unprivileged mount explains: $(grep -o 'cannot create vcan-xoq[0-9]*: creating network interfaces needs CAP_NET_ADMIN' /tmp/nb.out)" || bad "unprivileged mount said: $(tail -2 /tmp/nb.out)"

# 9. unmount removes the interfaces
kill -TERM $MOUNT; i=0; while [ -e /sys/class/net/$IF ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ ! -e /sys/class/net/$IF ] && [ ! -e /sys/class/net/$MIF ] && ok "unmount removed $IF and $MIF" || bad "interfaces left: $(ls /sys/class/net)"

[ $fail = 0 ] || { echo "--- server log"; tail -20 /tmp/server.log; echo "--- mount log"; tail -20 /tmp/mount.log; }
exit $fail
