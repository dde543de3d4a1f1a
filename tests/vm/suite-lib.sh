# Sourced by every suite (tests/vm/suites/*.sh, tests/vm/bench/*.sh) as /payload/suite-lib.sh:
# the payload's binaries on PATH, a private state for xoq-server and xoq-mount, and the
# helpers suites report with. test.sh copies it into each payload.
export PATH=/payload/bin:$PATH
export XOQ_STATE_DIR=/tmp/xoq XOQ_RUNTIME_DIR=/tmp/xoq/run XOQ_AUTHORIZED_CLIENTS=/tmp/xoq/auth.toml
export XOQ_LOG=${XOQ_LOG:-info,iroh=warn,noq=warn,noq_proto=warn}
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
wait_for() { # wait_for FILE PATTERN SECONDS: until a line of FILE matches
  i=0; while [ $i -lt $(($3 * 10)) ]; do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; i=$((i + 1)); done; return 1
}
# start_server CONFIG: xoq-server with CONFIG, its ticket in $T, its pid in $SERVER
start_server() {
  # the shell truncates the output file in the background child: remove it first, or a restart
  # could read the previous server's ticket line while it is being truncated
  rm -f /tmp/server.out
  xoq-server --config "$1" serve >/tmp/server.out 2>>/tmp/server.log &
  SERVER=$!
  wait_for /tmp/server.out '^ticket: ' 30 || { bad "server start"; cat /tmp/server.log; exit 1; }
  T=$(sed -n 's/^ticket: //p' /tmp/server.out)
}

# CAN helpers (the suites that mount CAN buses; vsync is a vcan the suite creates).
# frames FILE: candump -L lines without timestamp and interface, e.g. "123#DEADBEEF" (candump
# right-aligns interface names to the longest one; the sync frames on vsync are left out)
frames() { grep -v -e '^DROPCOUNT' -e '^([^)]*) *vsync ' "$1" | sed 's/^([^)]*) *[^ ]* //'; }
# dev_status DEVICE [RUNTIME_DIR]: DEVICE's object in the mounter's status (one line)
dev_status() {
  XOQ_RUNTIME_DIR=${2:-/tmp/xoq/run} xoq-mount status --json 2>/dev/null | awk '{ gsub(/\},\{"access"/, "\n"); print }' |
    grep "\"name\":\"$1\""
}
# field JSON FIELD: a number from a dev_status line, 0 if absent
field() { v=$(echo "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"); echo "${v:-0}"; }
# counter DEVICE FIELD: a number from the mounter's status (server counters, or local drops)
counter() { field "$(dev_status "$1")" "$2"; }
# can_ready DEVICE [RUNTIME_DIR]: waits (30 s at most) until the mounter bridges DEVICE: its
# vcan socket is open and the clock synchronised ("mounted" is printed before either, and
# frames meanwhile are not forwarded)
can_ready() {
  i=0; while [ $i -lt 300 ]; do dev_status "$@" | grep -q '"clock_offset_us"' && return 0; sleep 0.1; i=$((i + 1)); done
  bad "$1 never bridged: $(dev_status "$@")"; return 1
}
# dump FILE ARGS...: candump -L ARGS... (options, then interface[,filters]) into FILE in the
# background, pid in $P; returns once candump listens. candump binds its sockets in argument
# order, the sync interface vsync last: once a frame sent on vsync is in FILE, every socket is
# bound (a fixed sleep could end before candump got that far).
dump() {
  f=$1; shift
  rm -f "$f" # the background child truncates it: no stale content meanwhile
  candump -L "$@" vsync >"$f" & P=$!
  i=0
  until grep -q '^([^)]*) *vsync ' "$f" 2>/dev/null; do
    [ $i -lt 200 ] && kill -0 $P 2>/dev/null || { bad "candump $* never listened"; return 1; }
    cansend vsync 7FF#; sleep 0.1; i=$((i + 1))
  done
}
# got FILE N: waits (20 s at most) until FILE holds N frames
got() { i=0; while [ "$(frames "$1" | wc -l)" -lt "$2" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done; }
# undump PID...: stops those candumps
undump() { kill "$@" 2>/dev/null; wait "$@" 2>/dev/null; }

# can_tunnels: the two CAN tunnels the can-hub benches (tests/vm/bench/can-hub-*.sh) put side by
# side. XoQ: the robot's bus vcan0, mounted as vcan-xoq0 (no age limit: can-hub has none, and
# frames may wait longer under emulation). can-hub: its client reads vcan2, its server writes
# vcan3 (needs its tunnel, cert.pem and key.pem in the payload). Pids in $SERVER, $MOUNT,
# $CH_SERVER, $CH_CLIENT (stop_can_tunnels stops them).
can_tunnels() {
  for i in vcan0 vcan2 vcan3; do ip link add $i type vcan && ip link set $i up || bad "$i setup"; done
  xoq-server authorize "$(xoq-mount id 2>/dev/null)" >/dev/null 2>&1 || bad "authorize"
  printf 'listen = ["127.0.0.1:4730"]\n[[can]]\nname = "bus"\ninterface = "vcan0"\nmax_age_ms = 0\n' >/tmp/server.toml
  start_server /tmp/server.toml
  xoq-mount "$T" --link-dir /tmp/dev >/tmp/mount.out 2>/tmp/mount.log &
  MOUNT=$!
  wait_for /tmp/mount.out 'mounted  can  bus' 30 || { bad "mount"; cat /tmp/mount.log; exit 1; }
  can_ready bus
  tunnel server 4433 vcan3 /payload/bin/cert.pem /payload/bin/key.pem 2>/tmp/ch-server.log &
  CH_SERVER=$!
  sleep 0.3
  tunnel client 127.0.0.1 4433 vcan2 2>/tmp/ch-client.log &
  CH_CLIENT=$!
  wait_for /tmp/ch-client.log 'handshake completed' 30 || { bad "can-hub handshake"; cat /tmp/ch-*.log; }
}
# stop_can_tunnels: stops what can_tunnels started.
stop_can_tunnels() {
  kill $CH_CLIENT $CH_SERVER $MOUNT $SERVER 2>/dev/null
  wait $CH_CLIENT $CH_SERVER $MOUNT $SERVER 2>/dev/null
}
