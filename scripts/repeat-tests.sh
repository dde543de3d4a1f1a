#!/usr/bin/env bash
# Runs the same tests N times in a row and says how many passed: the check that a
# timing-sensitive test does not depend on how the scheduler behaved this time.
#
#   scripts/repeat-tests.sh N 'FILTERSET' [--load]
#   scripts/repeat-tests.sh N vm[:SUITE,SUITE...] [--load]
#
# FILTERSET is a nextest filter expression, e.g. 'binary(audio) | binary(audio_card)'; `vm`
# runs the real-kernel suites instead (tests/vm/test.sh; all, or those named, e.g.
# `vm:cuse,camera-ondemand`).
# --load keeps both cores busy with normal-priority work (two `stress-ng --cpu 1`, or shell busy
# loops where stress-ng is missing) for the whole run, as a busy laptop or robot would.
# Exits non-zero if any run failed; each run's output is kept in target/repeat-tests/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
runs=$1
filter=$2
load=${3:-}

# The host tests run the daemons from target/debug.
cargo build --workspace --bins
cargo nextest run --workspace --no-run >/dev/null
vm_suites=
case $filter in
  vm) ;;
  vm:*)
    vm_suites=$(mktemp -d)
    for s in $(echo "${filter#vm:}" | tr ',' ' '); do
      cp "tests/vm/suites/$s.sh" "$vm_suites/"
    done
    ;;
esac
run_once() {
  case $filter in
    vm) tests/vm/test.sh ;;
    vm:*) XOQ_VM_SUITES=$vm_suites tests/vm/test.sh ;;
    *) cargo nextest run --workspace --no-fail-fast -E "$filter" ;;
  esac
}
loaders=()
stop_load() { [ ${#loaders[@]} -eq 0 ] || kill "${loaders[@]}" 2>/dev/null || true; }
trap stop_load EXIT
if [ "$load" = "--load" ]; then
  for _ in 1 2; do
    if command -v stress-ng >/dev/null; then
      stress-ng --cpu 1 --quiet --timeout 0 &
    else
      sh -c 'while :; do :; done' &
    fi
    loaders+=($!)
  done
  echo "repeat-tests: both cores loaded (pids ${loaders[*]})"
fi

mkdir -p target/repeat-tests
passed=0
for i in $(seq 1 "$runs"); do
  log=target/repeat-tests/run-$i.log
  if run_once >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "run $i/$runs: passed"
  else
    echo "run $i/$runs: FAILED (see $log)"
    grep -E '^\s+(FAIL|SIGSEGV|TIMEOUT)|^FAIL:|test.sh: FAIL' "$log" | sort -u || true
  fi
done
echo "repeat-tests: $passed of $runs runs passed ($filter${load:+, loaded})"
[ "$passed" -eq "$runs" ]
