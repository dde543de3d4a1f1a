#!/bin/sh
# Benchmark (not a test): the userspace impairment (xoq_impair's TunLink, the `wan` profile:
# 20 ms and 1 % random loss each way) cross-checked against the kernel's netem with the same
# figures on a veth pair, measured the same way by link_probe: 200 UDP probes/s for 30 s from
# one network namespace to an echo in another, round trips and loss each way. One JSON line per
# carrier. The host kernel has no netem, so this runs in the kernel guest (qemu TCG, one
# emulated CPU): sub-millisecond overheads are the emulator's, the 40 ms and the 1 % carry over.
#   cargo build --release -p xoq-tests-host --bin link_probe
#   d=$(mktemp -d) && cp tests/vm/bench/netem-crosscheck.sh "$d/" && XOQ_VM_SUITES=$d tests/vm/test.sh
#   (or every benchmark: XOQ_VM_SUITES=tests/vm/bench tests/vm/test.sh)
# needs: target/release/link_probe
# timeout: 300
set -u
. /payload/suite-lib.sh
for via in impair netem; do
  link_probe --via "$via" --profile wan --seconds 30 --rate 200 --seed 1 || bad "link_probe --via $via"
done
exit $fail
