#!/usr/bin/env bash
# Boots the prepared kernel (tests/vm/prepare.sh) under qemu and runs a test script inside it.
#
# Usage: tests/vm/run.sh [--timeout SECS] [--payload DIR] [--append KERNEL-ARGS] [--] [COMMAND...]
#
#   --payload DIR   DIR's contents appear under /payload in the guest; the guest runs /payload/run.
#                   DIR/bin is put on PATH and DIR/lib on LD_LIBRARY_PATH (see pack.sh).
#                   Without --payload (and without COMMAND) the payload is selftest.sh.
#   COMMAND...      run this in the guest instead of /payload/run (cwd /payload), e.g.
#                   `run.sh -- sh -c 'ip link add vcan0 type vcan && ip -d link show vcan0'`
#   --timeout SECS  kill the VM after SECS seconds (default $XOQ_VM_TIMEOUT or 300) and exit 124
#   --append ARGS   extra kernel command line arguments (also $XOQ_VM_APPEND)
#
# The guest console streams to stdout and into $XOQ_VM_DIR/last-run.log.
# Exit status: the guest script's exit status; 124 on timeout; 255 if the guest never reported
# one (kernel panic, qemu failure, ...).
# Environment: XOQ_VM_DIR, XOQ_VM_TIMEOUT, XOQ_VM_MEM (MiB, default 512), XOQ_VM_APPEND.
set -euo pipefail

XOQ_VM_PROG=run.sh
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

timeout=${XOQ_VM_TIMEOUT:-300}
payload=""
append=${XOQ_VM_APPEND:-}
cmd=()
while [ $# -gt 0 ]; do
	case $1 in
	--timeout)
		[ $# -ge 2 ] || vm_die "--timeout needs a value"
		timeout=$2
		shift 2
		;;
	--timeout=*) timeout=${1#*=} && shift ;;
	--payload)
		[ $# -ge 2 ] || vm_die "--payload needs a directory"
		payload=$2
		shift 2
		;;
	--payload=*) payload=${1#*=} && shift ;;
	--append)
		[ $# -ge 2 ] || vm_die "--append needs a value"
		append="$append $2"
		shift 2
		;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	--)
		shift
		cmd=("$@")
		break
		;;
	-*) vm_die "unknown option: $1 (see --help)" ;;
	*)
		cmd=("$@")
		break
		;;
	esac
done
case $timeout in '' | *[!0-9]* | 0) vm_die "--timeout: a positive number of seconds, not '$timeout'" ;; esac

if [ ! -f "$XOQ_VM_KERNEL" ] || [ ! -f "$XOQ_VM_INITRAMFS" ]; then
	vm_die "the VM is not prepared ($XOQ_VM_DIR): run tests/vm/prepare.sh first"
fi
command -v qemu-system-x86_64 >/dev/null || vm_die "qemu-system-x86_64 is missing: run tests/vm/prepare.sh"
# Packed host binaries bring the host's libc; the guest's loader is the one of the last prepare.
if ! grep -q "libc6=$(vm_libc_version)\$" "$XOQ_VM_STAMPS/initramfs" 2>/dev/null; then
	vm_warn "the host's glibc changed since the last prepare: run tests/vm/prepare.sh"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xoq-vm.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# --- the payload: an uncompressed cpio archive placed before the base initramfs -----------------
# The kernel unpacks concatenated archives in order into the same rootfs. A plain (uncompressed)
# archive costs nothing to build or decompress, but the kernel takes one only at a 4-byte aligned
# offset: after the gzip'd base that holds only if the gzip length happens to be a multiple of 4
# (else "invalid magic at start of compressed archive"); first in line it always is.
mkdir -p "$tmp/stage/xoq"
if [ -n "$payload" ]; then
	[ -d "$payload" ] || vm_die "--payload $payload: not a directory"
	ln -s "$(cd "$payload" && pwd)" "$tmp/stage/payload"
else
	mkdir "$tmp/stage/payload"
	if [ ${#cmd[@]} = 0 ]; then
		install -m 755 "$XOQ_VM_LIB_DIR/selftest.sh" "$tmp/stage/payload/run"
	fi
fi
if [ ${#cmd[@]} -gt 0 ]; then
	# The command becomes a script (/xoq/cmd, outside /payload so it clobbers nothing there),
	# each word single-quoted for the guest's sh; xoq.run= points /init at it.
	{
		echo '#!/bin/sh'
		printf 'exec'
		for word in "${cmd[@]}"; do printf " '%s'" "${word//\'/\'\\\'\'}"; done
		echo
	} >"$tmp/stage/xoq/cmd"
	chmod 755 "$tmp/stage/xoq/cmd"
	append="$append xoq.run=/xoq/cmd"
fi
# -L (for find and cpio): follow the payload symlink and store files, not links to host paths.
(cd "$tmp/stage" && find -L . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -L -R 0:0 --quiet) >"$tmp/initrd"
cat "$XOQ_VM_INITRAMFS" >>"$tmp/initrd"

# --- boot ------------------------------------------------------------------------------------
# quiet: the console carries the test's output, not the boot log (drop it with --append loglevel=7
# to debug a boot). panic=-1: a panic reboots, and -no-reboot turns that into a qemu exit.
# cryptomgr.notests, mitigations=off, rodata=off: less boot work under emulation; the VM only runs
# our tests. random.trust_cpu=on: -cpu max has RDRAND, so getrandom() never blocks at boot.
cmdline="console=ttyS0 quiet panic=-1 cryptomgr.notests=1 mitigations=off rodata=off random.trust_cpu=on$append"
# -accel tcg,thread=multi -cpu max -smp 1: no KVM here; -smp 2 measured slower under TCG.
# -kernel vmlinux: PVH entry (no bzImage decompression). -nic none: tests use lo, vcan, etc.
# -serial stdio with stdin from /dev/null: the console goes to our stdout, nothing reads the tty.
# shellcheck disable=SC2054 # the commas are qemu's option syntax
qemu=(qemu-system-x86_64
	-accel tcg,thread=multi -cpu max -m "${XOQ_VM_MEM:-512}" -smp 1
	-display none -monitor none -serial stdio -no-reboot -nic none
	-device isa-debug-exit,iobase=0xf4,iosize=0x04
	-kernel "$XOQ_VM_KERNEL" -initrd "$tmp/initrd" -append "$cmdline")

log=$XOQ_VM_DIR/last-run.log
echo "run.sh: booting $(basename "$(readlink -f "$XOQ_VM_KERNEL")") with ${payload:-${cmd[*]:-selftest.sh}} (timeout ${timeout} s, log $log)" >&2
t0=$(date +%s.%N)
set +e
# --foreground: qemu stays in our process group, so Ctrl-C reaches it; a hung guest gets TERM
# after $timeout seconds and KILL 10 s later. sed -u drops the serial console's CRs, unbuffered.
timeout --foreground --kill-after=10 "$timeout" "${qemu[@]}" </dev/null 2>&1 | sed -u 's/\r$//' | tee "$log"
qrc=${PIPESTATUS[0]}
set -e
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

# The guest's status: its last "XOQ-VM: exit status N" line. The isa-debug-exit code (qemu exits
# with (N<<1)|1, N capped at 127 by the guest) confirms the guest finished; a qemu that failed on
# its own exits 1 too, so the console marker is what tells the two apart.
status=$(sed -n 's/^XOQ-VM: exit status \([0-9][0-9]*\).*/\1/p' "$log" | tail -n1)
if [ -n "$status" ]; then
	if [ $((qrc & 1)) != 1 ] || [ $((qrc >> 1)) != $((status > 127 ? 127 : status)) ]; then
		vm_warn "qemu exit status $qrc does not match the guest's report ($status)"
	fi
	echo "run.sh: guest exit status $status after $secs s" >&2
	exit "$status"
fi
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	echo "run.sh: TIMEOUT: the guest did not finish within $timeout s; qemu was killed (log: $log)" | tee -a "$log" >&2
	exit 124
fi
echo "run.sh: the guest never reported an exit status (qemu exit status $qrc after $secs s; log: $log)" | tee -a "$log" >&2
exit 255
