#!/usr/bin/env bash
# The main job, on one machine: a simulated robot (xoq-server with a simulated serial port)
# served over QUIC on loopback and mounted by xoq-mount as /dev/ttyXOQ0.
#
#   scripts/demo.sh              run until Ctrl-C, printing how to talk to the device
#   scripts/demo.sh --self-test  send one message through it, check the echo, and stop
set -euo pipefail
cd "$(dirname "$0")/.."
self_test=0; [ "${1:-}" = "--self-test" ] && self_test=1

scripts/deps.sh >/dev/null
cargo build --workspace --bins -q
BIN=$PWD/target/debug

DEMO=$(mktemp -d /tmp/xoq-demo.XXXXXX)
export XOQ_STATE_DIR=$DEMO/state XOQ_RUNTIME_DIR=$DEMO/run XOQ_AUTHORIZED_CLIENTS=$DEMO/authorized_clients.toml
PORT=${XOQ_DEMO_PORT:-4700}
LINK_DIR=/dev; [ "$(id -u)" -eq 0 ] || LINK_DIR=$DEMO/dev
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DEMO"
}
trap cleanup EXIT INT TERM

# 1. The robot: its key is created on first start; it serves one simulated serial port.
"$BIN/xoq-server" authorize "$("$BIN/xoq-mount" id 2>/dev/null)" --devices echo0 --comment "demo laptop" >/dev/null 2>&1
"$BIN/xoq-server" serve --name demo-robot --listen "127.0.0.1:$PORT" \
  --sim-serial "echo0=$DEMO/echo0-record.jsonl" >"$DEMO/server.out" 2>"$DEMO/server.log" &
pids+=($!)
for _ in $(seq 600); do grep -q '^ticket: ' "$DEMO/server.out" 2>/dev/null && break; sleep 0.1; done  # up to 60 s: a busy host
TICKET=$(sed -n 's/^ticket: //p' "$DEMO/server.out")
[ -n "$TICKET" ] || { echo "xoq-server did not start:"; cat "$DEMO/server.log"; exit 1; }

# 2. The laptop: mount it.
"$BIN/xoq-mount" "$TICKET" --link-dir "$LINK_DIR" >"$DEMO/mount.out" 2>"$DEMO/mount.log" &
pids+=($!)
for _ in $(seq 600); do grep -q '^mounted ' "$DEMO/mount.out" 2>/dev/null && break; sleep 0.1; done
TTY=$(sed -n 's/^mounted .*->  \([^ ]*\).*/\1/p' "$DEMO/mount.out" | head -n1)
[ -n "$TTY" ] || { echo "xoq-mount did not mount:"; cat "$DEMO/mount.log"; exit 1; }

if [ $self_test = 1 ]; then
  reply=$(/usr/bin/python3 -c "
import serial
s = serial.Serial('$TTY', 115200, timeout=5)
s.write(b'hello robot')
print(s.read(11).decode())")
  [ "$reply" = "hello robot" ] || { echo "demo self-test: expected 'hello robot', got '$reply'"; exit 1; }
  echo "demo self-test: $TTY echoed 'hello robot' over xoq"
  exit 0
fi

cat <<MSG

  simulated robot served and mounted: $TTY  (remote port echo0, simulated echo)

  talk to it:   /usr/bin/python3 -c "import serial; s=serial.Serial('$TTY',115200,timeout=1); s.write(b'hello robot'); print(s.read(11))"
  or:           picocom -b 115200 $TTY        (exit with Ctrl-A Ctrl-X)
  status:       XOQ_RUNTIME_DIR=$XOQ_RUNTIME_DIR $BIN/xoq-mount status
  what the port saw:  tail -f $DEMO/echo0-record.jsonl

  Ctrl-C stops both and removes $TTY.
MSG
wait
