#!/bin/sh
# CAN over the link, in a real kernel: xoq-server serves vcan0 (its "hardware") and the
# simulated Damiao bus; xoq-mount creates vcan-xoq<n> for each; can-utils check what crosses.
# needs: target/debug/xoq-server target/debug/xoq-mount
# timeout: 720
# (about 4 minutes under TCG, most of it the 100k-frame drain: 3x that)
set -u
. /payload/suite-lib.sh

ip link add vcan0 type vcan && ip link set vcan0 mtu 72 && ip link set vcan0 up || bad "vcan0 setup"
ip link add vsync type vcan && ip link set vsync up || bad "vsync setup"
xoq-server authorize "$(xoq-mount id 2>/dev/null)" >/dev/null 2>&1 || bad "authorize"
cat >/tmp/server.toml <<TOML
listen = ["127.0.0.1:4700"]
[[can]]
name = "bus"
interface = "vcan0"
# The flood below measures loss and order under emulation, where frames wait longer than the
# default maximum age (200 ms): no age limit on this bus.
max_age_ms = 0
[[can]]
name = "motors"
simulated = "damiao"
max_age_ms = 2000
TOML
start_server /tmp/server.toml
xoq-mount "$T" --link-dir /tmp/dev >/tmp/mount.out 2>/tmp/mount.log &
MOUNT=$!
wait_for /tmp/mount.out 'mounted  can  motors' 30 || { bad "mount"; cat /tmp/mount.log; exit 1; }
IF=$(sed -n 's/^mounted  can  bus  ->  \([^ ]*\).*/\1/p' /tmp/mount.out)
MIF=$(sed -n 's/^mounted  can  motors  ->  \([^ ]*\).*/\1/p' /tmp/mount.out)
[ "$IF" = vcan-xoq0 ] && ok "bus mounted as $IF" || bad "bus mounted as '$IF'"
grep -q 'mtu 72' /sys/class/net/$IF/mtu 2>/dev/null || [ "$(cat /sys/class/net/$IF/mtu)" = 72 ] && ok "$IF has MTU 72 (FD)" || bad "$IF mtu $(cat /sys/class/net/$IF/mtu)"
can_ready bus; can_ready motors

# 1. both directions, classic
dump /tmp/d1 vcan0; cansend "$IF" 123#DEADBEEF; got /tmp/d1 1; undump $P
[ "$(frames /tmp/d1)" = "123#DEADBEEF" ] && ok "cansend $IF 123#DEADBEEF arrived on vcan0" || bad "vcan0 got '$(frames /tmp/d1)'"
dump /tmp/d2 "$IF"; cansend vcan0 456#CAFE; got /tmp/d2 1; undump $P
[ "$(frames /tmp/d2)" = "456#CAFE" ] && ok "vcan0 456#CAFE arrived on $IF" || bad "$IF got '$(frames /tmp/d2)'"

# 2. every frame shape keeps its fields (FD 64 B with BRS, FD of 8 B, RTR, extended id; error
#    frames only from the bus: a client's error frame is refused, counted, never on the bus)
FD64=$(i=0; while [ $i -lt 64 ]; do printf '%02X' $i; i=$((i + 1)); done)
SENDABLE="123##1$FD64 124##00102030405060708 125#R4 12345678#0102"
ERRFRAME=20000004#0004000000000000
SHAPES="$SENDABLE $ERRFRAME"
dump /tmp/d3 'vcan0,0:0,#FFFFFFFF'
# 126#AA after the error frame is the fence: frames travel in order, so once it arrived the
# error frame had its chance.
for f in $SENDABLE $ERRFRAME 126#AA; do cansend "$IF" "$f"; done; got /tmp/d3 5; undump $P
for f in $SENDABLE; do
  # candump shows the kernel's FD flags nibble, which includes CANFD_FDF (4): ##1 is sent as ##5
  case $f in *##1*) want=$(echo "$f" | sed 's/##1/##5/');; *##0*) want=$(echo "$f" | sed 's/##0/##4/');; *) want=$f;; esac
  frames /tmp/d3 | grep -qx "$want" && ok "shape $want" || bad "shape $want missing; got: $(frames /tmp/d3 | tr '\n' ' ')"
done
frames /tmp/d3 | grep -qx "126#AA" && ok "fence 126#AA arrived" || bad "fence missing; got: $(frames /tmp/d3 | tr '\n' ' ')"
frames /tmp/d3 | grep -qx "$ERRFRAME" && bad "a client's error frame reached the bus" || ok "a client's error frame did not reach the bus"
wait_for /tmp/mount.log 'error frame(s) refused' 10 && ok "the refusal is reported to the client" || bad "no refusal in the mount log"

# ... and the same shapes from the remote bus to the local interface
dump /tmp/d3r "$IF,0:0,#FFFFFFFF"
for f in $SHAPES; do cansend vcan0 "$f"; done; got /tmp/d3r 5; undump $P
for f in $SHAPES; do
  case $f in *##1*) want=$(echo "$f" | sed 's/##1/##5/');; *##0*) want=$(echo "$f" | sed 's/##0/##4/');; *) want=$f;; esac
  frames /tmp/d3r | grep -qx "$want" && ok "shape $want from the remote bus" || bad "shape $want missing on $IF; got: $(frames /tmp/d3r | tr '\n' ' ')"
done

# 3. no echo loop: what the mounter wrote to $IF is not sent back to vcan0 twice
# (after the first copy, 1 s for a second one that must not come)
dump /tmp/d4 vcan0; cansend "$IF" 321#01; got /tmp/d4 1; sleep 1; undump $P
[ "$(frames /tmp/d4 | grep -c '^321#01$')" = 1 ] && ok "no echo loop" || bad "321#01 seen $(frames /tmp/d4 | grep -c '^321#01$') times"

# 4. the simulated Damiao bus: enable motor 1 on the local interface, its reply comes back
dump /tmp/d5 "$MIF,011:7FF"; cansend "$MIF" 001#FFFFFFFFFFFFFFFC; got /tmp/d5 1; undump $P
frames /tmp/d5 | grep -q '^011#1' && ok "motor 1 answered enable: $(frames /tmp/d5)" || bad "no enable reply: '$(frames /tmp/d5)'"

# 5. a command delayed past its maximum age (2 s on "motors": generous, so that fresh commands
# always make it under emulation) is dropped, never delivered. The server is stopped 2.5 s (the
# link's idle timeout is 6 s); the command's age counts from the kernel's receive time on $MIF,
# which is after the STOP, so it is at least 2.5 s old when the server reads it.
stale0=$(counter motors tx_stale)
dump /tmp/d7 "$MIF,012:7FF"
kill -STOP $SERVER; cansend "$MIF" 002#FFFFFFFFFFFFFFFC; sleep 2.5; kill -CONT $SERVER
i=0; while [ "$(counter motors tx_stale)" -le "$stale0" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
sleep 1; undump $P # 1 s for a reply that must not come
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
can_ready bus /tmp/ro/run
dump /tmp/d8 "$RIF"; cansend vcan0 5A5#A5; got /tmp/d8 1; undump $P
[ "$(frames /tmp/d8)" = "5A5#A5" ] && ok "read-only client sees the bus" || bad "$RIF got '$(frames /tmp/d8)'"
dump /tmp/d9 vcan0; cansend "$RIF" 666#66; sleep 1; undump $P # 1 s for a frame that must not come
[ -z "$(frames /tmp/d9)" ] && ok "read-only client cannot send" || bad "vcan0 got '$(frames /tmp/d9)' from a read-only client"
# the bus view: what another client sends reaches it once the bus carried it, and the sender
# is not sent its own frame back (candump on $IF sees the local copy only)
dump /tmp/d10 "$RIF,777:7FF"; P10=$P; dump /tmp/d11 "$IF,777:7FF"
cansend "$IF" 777#77; got /tmp/d10 1; got /tmp/d11 1; sleep 1; undump $P10 $P # 1 s for a second copy
[ "$(frames /tmp/d10)" = "777#77" ] && ok "other clients see a client's frame (confirmed by the bus)" || bad "$RIF got '$(frames /tmp/d10)'"
[ "$(frames /tmp/d11 | grep -c '^777#77$')" = 1 ] && ok "the sender does not get its own frame back" || bad "$IF saw 777#77 $(frames /tmp/d11 | grep -c '^777#77$') times"
kill -TERM $RO

# 7. 100,000 frames back to back: every one reaches the bus, or each loss is counted exactly
t0=$(counter bus tx_frames); s0=$(counter bus tx_stale); f0=$(counter bus tx_failed); l0=$(counter bus local_kernel_dropped)
dump /tmp/d6 -d vcan0,7A0:7FF
deadline=$(($(date +%s) + 540))
# renice: the VM has one emulated CPU; a full-speed cangen would starve the link (keep-alives)
cangen "$IF" -I 7A0 -L 8 -D i -g 0 -n 100000 -p 10 & CG=$!
renice -n 19 -p $CG >/dev/null; wait $CG || bad "cangen failed"
# accounted: the server's counters and the mounter's drops now; dumped: candump's count now
accounted() {
  st=$(dev_status bus)
  sent=$(($(field "$st" tx_frames) - t0)); stale=$(($(field "$st" tx_stale) - s0))
  failed=$(($(field "$st" tx_failed) - f0)); lost=$(($(field "$st" local_kernel_dropped) - l0))
}
dumped() { seen=$(grep -c ' 7A0#' /tmp/d6); cdrop=$(sed -n 's/.*total drops \([0-9]*\).*/\1/p' /tmp/d6 | tail -n1); cdrop=${cdrop:-0}; }
# Wait until every frame is accounted for (under emulation the mounter drains its socket buffer
# minutes after cangen has finished), then until candump has seen (or counted as dropped) every
# frame on the bus; 540 s at most from cangen's start (the suite's limit is 720 s).
accounted
until [ $((sent + stale + failed + lost)) = 100000 ] || [ "$(date +%s)" -ge $deadline ]; do sleep 1; accounted; done
dumped
until [ $((seen + cdrop)) = "$sent" ] || [ "$(date +%s)" -ge $deadline ]; do sleep 1; dumped; done
undump $P
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

# 10. latest-wins delivery (--can-delivery latest): the same kernel interfaces, frames cross both
# ways, the motors answer, and both ends say which delivery the bus runs
xoq-mount "$T" --link-dir /tmp/dev --can-delivery latest >/tmp/latest.out 2>/tmp/latest.log &
LATEST=$!
wait_for /tmp/latest.out 'mounted  can  motors' 30 || { bad "latest-wins mount"; cat /tmp/latest.log; }
LIF=$(sed -n 's/^mounted  can  bus  ->  \([^ ]*\).*/\1/p' /tmp/latest.out)
LMIF=$(sed -n 's/^mounted  can  motors  ->  \([^ ]*\).*/\1/p' /tmp/latest.out)
grep -q 'mounted  can  motors .*latest delivery' /tmp/latest.out && ok "mounted latest-wins: $(grep 'can  motors' /tmp/latest.out)" || bad "mount line: $(cat /tmp/latest.out)"
can_ready bus; can_ready motors
dump /tmp/d12 vcan0; cansend "$LIF" 1A1#0102; got /tmp/d12 1; undump $P
[ "$(frames /tmp/d12)" = "1A1#0102" ] && ok "latest-wins: cansend $LIF 1A1#0102 arrived on vcan0" || bad "vcan0 got '$(frames /tmp/d12)'"
dump /tmp/d13 "$LIF"; cansend vcan0 2B2#03; got /tmp/d13 1; undump $P
[ "$(frames /tmp/d13)" = "2B2#03" ] && ok "latest-wins: vcan0 2B2#03 arrived on $LIF" || bad "$LIF got '$(frames /tmp/d13)'"
dump /tmp/d14 "$LMIF,013:7FF"; cansend "$LMIF" 003#FFFFFFFFFFFFFFFC; got /tmp/d14 1; undump $P
frames /tmp/d14 | grep -q '^013#13' && ok "latest-wins: motor 3 answered enable: $(frames /tmp/d14)" || bad "no enable reply: '$(frames /tmp/d14)'"
grep -q 'device opened.*device=motors.*delivery=latest\|delivery=latest.*device opened' /tmp/server.log && ok "the server opened motors latest-wins" || bad "no latest-wins open in the server log: $(grep 'device opened' /tmp/server.log | tail -3)"
kill -TERM $LATEST; wait $LATEST 2>/dev/null

[ $fail = 0 ] || { echo "--- server log"; tail -20 /tmp/server.log; echo "--- mount log"; tail -20 /tmp/mount.log; }
exit $fail
