#!/usr/bin/env bash
# Entry point of the real-kernel tests: prepares the VM (quietly, cached), boots the self-test,
# then runs every suite script in ${XOQ_VM_SUITES:-tests/vm/suites}, each in its own VM.
#
# Usage: tests/vm/test.sh            (from any directory)
#
# A suite is a busybox-sh script, NAME.sh, run in the guest as /payload/run; it may source
# /payload/suite-lib.sh (tests/vm/suite-lib.sh: PATH, state, ok/bad/wait_for/start_server).
# Its leading comment block may hold:
#   # needs: target/debug/xoq-mount target/debug/some-test   host binaries, relative to the repo
#                                                           root (or absolute), packed into the
#                                                           payload's bin/ with their libraries;
#                                                           a bare name is looked up on PATH
#   # timeout: 600                                          seconds (default $XOQ_VM_TIMEOUT or 300)
#   # mem: 1024                                             guest RAM in MiB (default $XOQ_VM_MEM
#                                                           or 512); the payload unpacks into it
# test.sh does not build anything: build the binaries first (cargo build ...).
#
# Ends with the line "N passed, M failed" (the self-test and each suite count as one test) and
# exits non-zero if anything failed. Environment: XOQ_VM_SUITES (relative paths are relative to
# the repo root), XOQ_VM_DIR, XOQ_VM_TIMEOUT.
set -euo pipefail

XOQ_VM_PROG=test.sh
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE=$XOQ_VM_LIB_DIR

suites=${XOQ_VM_SUITES:-tests/vm/suites}
case $suites in /*) ;; *) suites=$XOQ_VM_REPO/$suites ;; esac

passed=0 failed=0 failures=()
record() { # record NAME EXIT-STATUS
	if [ "$2" = 0 ]; then
		passed=$((passed + 1))
		echo "test.sh: PASS $1"
	else
		failed=$((failed + 1))
		failures+=("$1 (exit $2)")
		echo "test.sh: FAIL $1 (exit $2)"
	fi
}
summary() {
	echo
	[ ${#failures[@]} = 0 ] || printf 'failed: %s\n' "${failures[@]}"
	echo "$passed passed, $failed failed"
}

# header FIELD FILE -> the values of "# FIELD: ..." lines in FILE's leading comment block.
header() { awk -v f="$1" '!/^#/ { exit } { if (sub("^#[[:space:]]*" f ":[[:space:]]*", "")) print }' "$2"; }

echo "== vm: prepare"
if ! "$HERE/prepare.sh" --quiet; then
	record prepare 1
	summary
	exit 1
fi

echo "== vm: selftest"
rc=0
"$HERE/run.sh" || rc=$?
record selftest "$rc"

payload=""
trap '[ -z "$payload" ] || rm -rf "$payload"' EXIT
if [ -d "$suites" ]; then
	shopt -s nullglob
	for suite in "$suites"/*.sh; do
		name=suite:$(basename "$suite" .sh)
		echo "== vm: $name"
		payload=$(mktemp -d "${TMPDIR:-/tmp}/xoq-vm-payload.XXXXXX")
		bins=()
		for bin in $(header needs "$suite"); do
			case $bin in
			/*) bins+=("$bin") ;;
			*/*) bins+=("$XOQ_VM_REPO/$bin") ;;
			# A bare name is a tool installed on the host (scripts/deps.sh), found on PATH.
			*) bins+=("$(command -v "$bin" || echo "$bin: not installed (scripts/deps.sh)")") ;;
			esac
		done
		timeout=$(header timeout "$suite" | tail -n1)
		mem=$(header mem "$suite" | tail -n1)
		# A subshell: vm_pack_bins exits on a missing binary, which fails this suite only.
		if [ ${#bins[@]} -gt 0 ] && ! (vm_pack_bins "$payload" "${bins[@]}"); then
			record "$name" 255
		else
			install -m 755 "$suite" "$payload/run"
			install -m 644 "$HERE/suite-lib.sh" "$payload/suite-lib.sh"
			rc=0
			XOQ_VM_MEM=${mem:-${XOQ_VM_MEM:-512}} \
				"$HERE/run.sh" --payload "$payload" ${timeout:+--timeout "$timeout"} || rc=$?
			record "$name" "$rc"
		fi
		rm -rf "$payload"
		payload=""
	done
fi

summary
[ "$failed" = 0 ]
