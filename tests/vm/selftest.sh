#!/bin/sh
# Guest-side smoke test of the VM harness (busybox ash, inside the VM): the default payload of
# run.sh. Proves that what the project's real-kernel tests rely on works in the guest:
#   - the kernel modules loaded by /init,
#   - vcan: a classic CAN frame and a CAN FD frame (mtu 72) through cansend/candump, can-gw routing,
#   - v4l2loopback: /dev/video10 and /dev/video11 with their card labels,
#   - CUSE: /dev/cuse,
#   - TCP over lo with busybox nc.
# Prints "ok: ...", "FAIL: ..." lines and a count; exits 1 if anything failed.
set -u

passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
# check DESCRIPTION COMMAND...: ok/FAIL on COMMAND's status, its output shown on failure.
check() {
	what=$1
	shift
	if out=$("$@" 2>&1); then ok "$what"; else bad "$what: $out"; fi
}

# --- modules ---------------------------------------------------------------------------------
for m in vcan can_raw can_gw cuse fuse v4l2loopback videodev; do
	if grep -q "^$m " /proc/modules; then ok "module $m loaded"; else bad "module $m not loaded"; fi
done

# --- CAN -------------------------------------------------------------------------------------
# can_rx IFACE-SEND FRAME IFACE-DUMP PATTERN WHAT: candump waits for one frame on IFACE-DUMP while
# FRAME is sent on IFACE-SEND every 0.1 s (no sleep-and-hope race with candump's start-up);
# candump's output must match PATTERN (a grep -E regex).
can_rx() {
	send_if=$1 frame=$2 dump_if=$3 pattern=$4 what=$5
	timeout 10 candump -n 1 "$dump_if" >/tmp/candump.out 2>&1 &
	pid=$!
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
		cansend "$send_if" "$frame" || break
		sleep 0.1
		i=$((i + 1))
	done
	wait "$pid"
	got=$(tr -s ' ' </tmp/candump.out)
	if grep -Eq "$pattern" /tmp/candump.out; then ok "$what: $got"; else bad "$what: candump printed '$got'"; fi
}

check "ip link add vcan0 type vcan (busybox ip)" ip link add vcan0 type vcan
check "vcan0 up" ip link set vcan0 up
can_rx vcan0 123#DEADBEEF vcan0 '123 +\[4\] +DE AD BE EF' "classic CAN frame on vcan0"

# CAN FD: the MTU of a vcan can only change while it is down; 72 = CANFD_MTU.
ip link set vcan0 down
check "ip link set vcan0 mtu 72" ip link set vcan0 mtu 72
ip link set vcan0 up
if [ "$(cat /sys/class/net/vcan0/mtu)" = 72 ]; then ok "vcan0 mtu is 72"; else bad "vcan0 mtu is $(cat /sys/class/net/vcan0/mtu)"; fi
# 123##1112233: id 0x123, FD flags 1 (bit rate switch), data 11 22 33; candump prints the FD
# length with two digits: "123  [03]  11 22 33".
can_rx vcan0 '123##1112233' vcan0 '123 +\[03\] +11 22 33' "CAN FD frame on vcan0"

# can-gw: the kernel routes vcan0 -> vcan1.
ip link add vcan1 type vcan && ip link set vcan1 up
check "cangw -A -s vcan0 -d vcan1 -e" cangw -A -s vcan0 -d vcan1 -e
can_rx vcan0 456#CAFE vcan1 '456 +\[2\] +CA FE' "can-gw vcan0 -> vcan1"

# --- v4l2loopback ----------------------------------------------------------------------------
for n in 0 1; do
	dev=/dev/video1$n
	if [ -c "$dev" ]; then
		ok "$dev exists"
		card=$(v4l2-ctl -d "$dev" --all 2>&1 | sed -n 's/^[[:space:]]*Card type[[:space:]]*:[[:space:]]*//p')
		if [ "$card" = "xoq-cam$n" ]; then ok "v4l2-ctl -d $dev --all: card xoq-cam$n"; else bad "v4l2-ctl -d $dev --all: card '$card'"; fi
	else
		bad "$dev missing"
	fi
done

# --- CUSE ------------------------------------------------------------------------------------
if [ -c /dev/cuse ]; then ok "/dev/cuse exists"; else bad "/dev/cuse missing"; fi

# --- TCP on lo -------------------------------------------------------------------------------
(echo from-server | timeout 10 nc -l -p 5555 >/tmp/nc.srv 2>&1) &
srv=$!
i=0
while [ $i -lt 50 ]; do
	# Retried until the listener is up (connection refused before that).
	if echo from-client | timeout 5 nc 127.0.0.1 5555 >/tmp/nc.cli 2>/dev/null && [ -s /tmp/nc.cli ]; then break; fi
	sleep 0.1
	i=$((i + 1))
done
wait $srv
if grep -q from-client /tmp/nc.srv && grep -q from-server /tmp/nc.cli; then
	ok "TCP 127.0.0.1:5555 both ways (busybox nc)"
else
	bad "TCP over lo: server got '$(cat /tmp/nc.srv)', client got '$(cat /tmp/nc.cli)'"
fi

echo "selftest: $passed ok, $failed failed"
[ "$failed" = 0 ]
