#!/bin/sh
# A remote serial port as a CUSE tty, in a real kernel: xoq-server serves the simulated echo
# port (which records every change that reaches it); xoq-mount creates /dev/ttyXOQ0 through
# /dev/cuse; tty_exercise and busybox stty drive it as serial tools do. Ends with the
# round-trip benchmark through the CUSE tty and, in the same run, through a PTY mount.
# needs: target/debug/xoq-server target/debug/xoq-mount target/debug/tty_exercise
# timeout: 400
set -u
. /payload/suite-lib.sh
# state: the mounter's state of device echo0 ("open", "waiting for link", ...)
state() { xoq-mount status --json 2>/dev/null | sed -n 's/.*"name":"echo0"[^}]*"state":"\([^"]*\)".*/\1/p'; }
wait_state() { # wait_state PATTERN SECONDS
  i=0; while [ $i -lt $(($2 * 10)) ]; do state | grep -q "$1" && return 0; sleep 0.1; i=$((i + 1)); done; return 1
}
run() { # run CHECK-NAME tty_exercise ARGS...: its ok/FAIL lines count
  shift; tty_exercise "$@" >/tmp/ex.out 2>&1; rc=$?; cat /tmp/ex.out
  [ $rc = 0 ] || fail=1
}

REC=/tmp/rec.jsonl
cat >/tmp/server.toml <<TOML
listen = ["127.0.0.1:4710"]
[[serial]]
name = "echo0"
simulated = true
record = "$REC"
baud = 9600
TOML
xoq-server authorize "$(xoq-mount id 2>/dev/null)" >/dev/null 2>&1 || bad "authorize"
start_server /tmp/server.toml
xoq-mount "$T" --serial-device cuse --link-dir /tmp/dev >/tmp/mount.out 2>/tmp/mount.log &
MOUNT=$!
wait_for /tmp/mount.out 'mounted  serial  echo0' 30 || { bad "mount"; cat /tmp/mount.out /tmp/mount.log; exit 1; }
grep -q 'cuse tty' /tmp/mount.out && ok "mounted as a CUSE tty: $(grep 'mounted  serial' /tmp/mount.out)" || bad "mount line: $(cat /tmp/mount.out)"
DEV=/dev/ttyXOQ0
[ -c $DEV ] && ok "$DEV is a character device" || bad "$DEV: $(ls -l $DEV 2>&1)"
[ "$(readlink /tmp/dev/ttyXOQ0)" = $DEV ] && ok "/tmp/dev/ttyXOQ0 links to it" || bad "link: $(ls -l /tmp/dev 2>&1)"
[ "$(stat -c '%G %a' $DEV)" = "dialout 660" ] && ok "group dialout, mode 0660" || bad "owner/mode $(stat -c '%G %a' $DEV)"
[ -e /sys/class/cuse/ttyXOQ0 ] && ok "registered in class cuse" || bad "no /sys/class/cuse/ttyXOQ0"
wait_state '^open$' 20 || bad "device not open: $(state)"

echo "-- pyserial's sequence"
run seq sequence $DEV $REC

echo "-- busybox stty"
stty -F $DEV 57600 cs7 parenb -parodd cstopb && ok "stty -F $DEV 57600 cs7 parenb -parodd cstopb" || bad "stty set"
out=$(stty -F $DEV 2>&1)
echo "$out" | grep -q 'speed 57600 baud' && ok "stty reads back: $(echo "$out" | head -1)" || bad "stty read: $out"
# the change travels to the port asynchronously: wait until the port has recorded it
wait_for $REC '"event":"line".*"baud":57600' 20 || bad "the port never got 57600 baud"
last=$(grep '"event":"line"' $REC | tail -n 1)
echo "$last" | grep -q '"baud":57600' && echo "$last" | grep -q '"data_bits":7' &&
  echo "$last" | grep -q '"parity":"even"' && echo "$last" | grep -q '"stop_bits":2' &&
  ok "the port got 57600 7E2" || bad "port line: $last"

echo "-- esptool's reset"
run esp esptool $DEV $REC

echo "-- 1 MiB each way"
stty -F $DEV 4000000 >/dev/null 2>&1
run bulk bulk $DEV 1

echo "-- close and reopen"
run ping ping $DEV

echo "-- a last close: what was still coming back never reaches the next program"
run closeflush closeflush $DEV $REC

echo "-- writes paced by the line: writers wait, TIOCOUTQ, tcdrain"
run paced paced $DEV

echo "-- XON/XOFF and tcflow"
run xonxoff xonxoff $DEV

echo "-- the server dies: the tty stays"
kill -9 $SERVER; wait $SERVER 2>/dev/null
wait_state 'waiting for link' 30 && ok "mounter noticed: $(state)" || bad "state after kill: $(state)"
[ -c $DEV ] && ok "$DEV still there" || bad "$DEV gone"
run unplugged unplugged $DEV
start_server /tmp/server.toml
wait_state '^open$' 30 && ok "reconnected" || bad "state after restart: $(state)"
run ping2 ping $DEV

echo "-- benchmark: 32-byte round trips, CUSE tty then PTY, same run"
tty_exercise rtt $DEV 2000 | tee /tmp/rtt-cuse
kill -TERM $MOUNT; wait $MOUNT 2>/dev/null
i=0; while [ -e $DEV ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ ! -e $DEV ] && [ ! -e /tmp/dev/ttyXOQ0 ] && ok "unmount removed $DEV and its link" || bad "left: $(ls -l $DEV /tmp/dev 2>&1)"
xoq-mount "$T" --serial-device pty --link-dir /tmp/pty >/tmp/pty.out 2>/tmp/pty.log &
PTYM=$!
wait_for /tmp/pty.out 'mounted  serial  echo0' 30 || bad "pty mount: $(cat /tmp/pty.out /tmp/pty.log)"
wait_state '^open$' 20 || bad "pty device not open"
tty_exercise rtt /tmp/pty/ttyXOQ0 2000 | tee /tmp/rtt-pty
c50=$(sed -n 's/.*p50_us=\([0-9]*\).*/\1/p' /tmp/rtt-cuse); p50=$(sed -n 's/.*p50_us=\([0-9]*\).*/\1/p' /tmp/rtt-pty)
c99=$(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' /tmp/rtt-cuse); p99=$(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' /tmp/rtt-pty)
echo "bench: cuse p50 ${c50}us p99 ${c99}us; pty p50 ${p50}us p99 ${p99}us (guest, TCG)"
kill -TERM $PTYM; wait $PTYM 2>/dev/null
kill $SERVER

[ $fail = 0 ] || { echo "--- server log"; tail -20 /tmp/server.log; echo "--- mount log"; tail -30 /tmp/mount.log; }
exit $fail
