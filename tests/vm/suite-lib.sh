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
