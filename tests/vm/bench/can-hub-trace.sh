#!/bin/sh
# Profile (not a test): where one CAN frame's one-way time goes, XoQ beside can-hub's QUIC
# datagram tunnel, in the kernel guest (qemu TCG, one emulated CPU). 20 frames sent one at a
# time (`cansend`, 0.2 s apart) through each under `perf trace -a` (the system calls of every
# process, with their times); for each frame, from the end of cansend's write to vcan: until the
# client side's UDP send ended (its wake-up, read of the frame, QUIC packet), and from there
# until the robot side began its write to the bus (wake-up, QUIC receive, delivery). Medians in
# ms of the emulated clock; perf trace's own cost is in both. Needs perf on the host (linux-perf),
# besides what can-hub-compare.sh needs.
#   scripts/build-can-hub.sh CAN_HUB_DIR
#   cargo build --release -p xoq-server -p xoq-mount
#   d=$(mktemp -d) && cp tests/vm/bench/can-hub-trace.sh "$d/" && XOQ_VM_SUITES=$d tests/vm/test.sh
# needs: target/release/xoq-server target/release/xoq-mount target/can-hub/tunnel target/can-hub/cert.pem target/can-hub/key.pem perf
# timeout: 600
# mem: 1024
set -u
export XOQ_LOG=warn
. /payload/suite-lib.sh
can_tunnels
sleep 1

# trace LABEL IFACE CLIENT SERVER: CLIENT and SERVER are the process names of the two ends.
trace() {
  perf trace -a -e 'sendmsg,sendto,recvmsg,recvmmsg,recvfrom,write,read' -o /tmp/t.tr -- \
    sh -c "for i in \$(seq 20); do cansend $2 555#0102030405060708; sleep 0.2; done" >/dev/null 2>&1
  # Complete calls only ("start ( dur ms): comm/pid call(...) = ret"), in time order.
  grep -v 'continued\|\.\.\. *$' /tmp/t.tr | grep '^ *[0-9]' | sort -n -k1,1 |
    awk -v label="$1" -v client="$3" -v server="$4" '
      function median(a, n,  i, j, t) {
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return n ? a[int((n + 1) / 2)] : 0
      }
      {
        # "START ( DUR ms): COMM/PID CALL(ARGS) = RET"
        start = $1 + 0; d = $0; sub(/^[^(]*\( */, "", d); sub(/ ms\).*/, "", d); end = start + d
        comm = $0; sub(/^[^)]*\): */, "", comm); sub(/\/.*/, "", comm)
        call = $0; sub(/^[^)]*\): *[^ ]+ /, "", call); sub(/\(.*/, "", call)
        frame = index($0, "count: 16)") > 0
      }
      comm == "cansend" && call == "write" && frame { a = end; state = 1; next }
      state == 1 && comm == client && (call == "sendmsg" || call == "sendto") { b = end; state = 2; next }
      state == 2 && comm == server && call == "write" && frame {
        n++; up[n] = b - a; down[n] = start - b; total[n] = start - a; state = 0
      }
      END {
        printf "%s: frames=%d client side %.3f ms, robot side %.3f ms, one way %.3f ms (medians)\n",
          label, n, median(up, n), median(down, n), median(total, n)
        if (n < 10) exit 1
      }' || bad "$1: fewer than 10 of 20 frames traced"
}

trace xoq vcan-xoq0 xoq-mount xoq-server
trace can-hub vcan2 tunnel tunnel
stop_can_tunnels
exit $fail
