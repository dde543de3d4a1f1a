#!/bin/sh
# CAN through a MoQ relay, in a real kernel: xoq-server publishes the simulated Damiao bus on a
# local moq-relay (its own certificate, tokens checked by xoq-server relay-auth); two mounters
# make vcan interfaces of it with `xoq-mount moq://...`. The writer's cansend enables a motor
# and the motor's answer reaches both; the writer does not see its own command again; the
# watcher's cansend never reaches the bus.
# needs: target/debug/xoq-server target/debug/xoq-mount moq-relay /etc/ssl/certs/ca-certificates.crt
# timeout: 600
# mem: 1024
# (three binaries of 50-60 MB: the payload does not unpack into 512 MB)
set -u
. /payload/suite-lib.sh
ip link add vsync type vcan && ip link set vsync up || bad "vsync setup"

# The fleet's key, the auth server, the relay with a certificate of its own.
xoq-server relay-key --out /tmp/fleet.jwk >/dev/null || bad "relay-key"
xoq-server relay-auth --relay-key /tmp/fleet.pub.jwk --listen 127.0.0.1:4801 >/tmp/auth.log 2>&1 &
# moq-relay will not start without trusted roots (for relays it would dial): the host's bundle.
SSL_CERT_FILE=/payload/bin/ca-certificates.crt moq-relay --listen 127.0.0.1:4443 --listen-tls-generate localhost --auth-url http://127.0.0.1:4801/ \
  --web-http-listen 127.0.0.1:4802 >/tmp/relay.log 2>&1 &
i=0; until FP=$(wget -q -O - http://127.0.0.1:4802/certificate.sha256 2>/dev/null) && [ -n "$FP" ]; do
  [ $i -lt 600 ] || { bad "moq-relay never served its fingerprint"; tail -20 /tmp/relay.log; exit 1; }
  sleep 0.1; i=$((i + 1))
done
ok "moq-relay up, certificate $FP"
token() { xoq-server token --relay-key /tmp/fleet.jwk --prefix fleet --server testbot "$@"; }
token --robot >/tmp/robot.token || bad "robot token"
cat >/tmp/server.toml <<TOML
name = "testbot"
listen = ["127.0.0.1:4700"]
[[can]]
name = "motors"
simulated = "damiao"
max_age_ms = 2000
[moq]
url = "https://localhost:4443"
path = "fleet"
token_file = "/tmp/robot.token"
tls_fingerprint = ["$FP"]
TOML
start_server /tmp/server.toml

WRITER=$(token --publish motors --client op) || bad "writer token"
WATCHER=$(token --subscribe motors --client eye) || bad "watcher token"
URL=moq://localhost:4443/fleet/testbot
XOQ_RUNTIME_DIR=/tmp/run-op xoq-mount "$URL" --token "$WRITER" --relay-fingerprint "$FP" \
  --link-dir /tmp/dev-op >/tmp/op.out 2>/tmp/op.log &
XOQ_RUNTIME_DIR=/tmp/run-eye xoq-mount "$URL" --token "$WATCHER" --relay-fingerprint "$FP" \
  --link-dir /tmp/dev-eye --first-index 1 >/tmp/eye.out 2>/tmp/eye.log &
wait_for /tmp/op.out 'mounted  can  motors' 60 || { bad "writer mount"; tail -30 /tmp/op.log; exit 1; }
wait_for /tmp/eye.out 'mounted  can  motors' 60 || { bad "watcher mount"; tail -30 /tmp/eye.log; exit 1; }
OP=$(sed -n 's/^mounted  can  motors  ->  \([^ ]*\).*/\1/p' /tmp/op.out)
EYE=$(sed -n 's/^mounted  can  motors  ->  \([^ ]*\).*/\1/p' /tmp/eye.out)
[ -n "$OP" ] && [ -n "$EYE" ] && [ "$OP" != "$EYE" ] && ok "mounted from the relay as $OP and $EYE" ||
  bad "interfaces '$OP' '$EYE'"
can_ready motors /tmp/run-op; can_ready motors /tmp/run-eye

# 1. the watcher's cansend never reaches the bus: motor 2 would answer from 012
dump /tmp/w1 "$EYE,012:7FF"
cansend "$EYE" 002#FFFFFFFFFFFFFFFC; sleep 3; undump $P
[ -z "$(frames /tmp/w1)" ] && ok "a watcher's command moved no motor" || bad "motor 2 answered a watcher: $(frames /tmp/w1)"
XOQ_RUNTIME_DIR=/tmp/run-eye xoq-mount status --json | grep -q '"access":"ro"' &&
  ok "the watcher's bus is read-only" || bad "watcher status: $(XOQ_RUNTIME_DIR=/tmp/run-eye xoq-mount status --json)"

# 2. the writer enables motor 1 (repeated until the relay serves its commands); its answer
#    (from 011) reaches the writer and the watcher; the writer never reads its own command back
dump /tmp/o2 "$OP"; O=$P
dump /tmp/e2 "$EYE,011:7FF"; E=$P
sent=0; while ! frames /tmp/o2 | grep -q '^011#' && [ $sent -lt 30 ]; do
  cansend "$OP" 001#FFFFFFFFFFFFFFFC; sleep 1; sent=$((sent + 1))
done
got /tmp/e2 1; sleep 2; undump $O $E
frames /tmp/o2 | grep -q '^011#1' && ok "motor 1 answered the writer: $(frames /tmp/o2 | grep '^011#' | head -1)" ||
  { bad "no answer on $OP: '$(frames /tmp/o2)'"; tail -30 /tmp/op.log; tail -30 /tmp/server.log; }
frames /tmp/e2 | grep -q '^011#1' && ok "the watcher saw motor 1's answer" || bad "watcher saw '$(frames /tmp/e2)'"
# candump on $OP sees each cansend once, as on any vcan; an echo through the relay is a second
own=$(frames /tmp/o2 | grep -c '^001#')
[ "$own" = "$sent" ] && ok "the writer did not read its own commands back ($sent sent, $own seen)" ||
  bad "the writer read its own commands back: $sent sent, $own seen: $(frames /tmp/o2)"

kill $SERVER 2>/dev/null
exit $fail
