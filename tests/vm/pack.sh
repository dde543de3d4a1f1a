#!/usr/bin/env bash
# Copies host binaries into a VM payload directory, with the shared libraries they load.
#
# Usage: tests/vm/pack.sh DIR FILE...
#   FILE... go to DIR/bin, their libraries (ldd) to DIR/lib. In the guest, DIR is /payload,
#   /payload/bin is on PATH and /payload/lib on LD_LIBRARY_PATH. Add DIR/run (the test script,
#   busybox sh) and boot it with `tests/vm/run.sh --payload DIR`.
#
# Why this works: the guest userland is the host's (both Debian 12): its dynamic loader and the
# libraries of its tools were copied from this host by prepare.sh, so host-built binaries (cargo
# build output included) run there unchanged.
set -euo pipefail

XOQ_VM_PROG=pack.sh
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case ${1:-} in
-h | --help | '')
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	[ $# -gt 0 ] || exit 2
	exit 0
	;;
esac
dir=$1
shift
vm_pack_bins "$dir" "$@"
