# shellcheck shell=bash disable=SC2034 # its variables are used by the scripts sourcing it
# Shared helpers of the real-kernel VM harness (tests/vm/*.sh source this file).
#
# Paths:
#   XOQ_VM_REPO  the repository root (derived from this file's location, so every script works
#                from any working directory)
#   XOQ_VM_DIR   the cache: downloads, the extracted kernel, the base initramfs, run logs.
#                Defaults to <repo>/target/vm: target/ is ignored by git, so nothing here is
#                ever committed, and `cargo clean` also clears it.

XOQ_VM_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
XOQ_VM_REPO=$(cd "$XOQ_VM_LIB_DIR/../.." && pwd)
: "${XOQ_VM_DIR:=$XOQ_VM_REPO/target/vm}"
export XOQ_VM_DIR

# What prepare.sh produces, and run.sh consumes.
XOQ_VM_KERNEL=$XOQ_VM_DIR/vmlinux             # uncompressed ELF, booted through its PVH entry
XOQ_VM_INITRAMFS=$XOQ_VM_DIR/base.cpio.gz     # busybox + modules + tools + /init
XOQ_VM_STAMPS=$XOQ_VM_DIR/stamps              # one file per prepare stage: the key it was built for

vm_log() { printf '%s\n' "${XOQ_VM_PROG:-vm}: $*"; }
vm_warn() { printf '%s\n' "${XOQ_VM_PROG:-vm}: warning: $*" >&2; }
vm_die() {
	printf '%s\n' "${XOQ_VM_PROG:-vm}: error: $*" >&2
	exit 1
}

# vm_sha FILE... -> one short digest of the files' contents (the "version" of scripts that
# feed a prepare stage: editing one of them invalidates that stage and nothing earlier).
vm_sha() { cat "$@" | sha256sum | cut -c1-16; }

# vm_libc_version -> the host's glibc package version. The guest runs host-built binaries with
# the host's libraries, and the guest's dynamic loader comes from the base initramfs: both must be
# the same glibc build, so this version is part of the initramfs stage key (prepare.sh) and run.sh
# warns when the host's glibc moved on since the last prepare.
vm_libc_version() { dpkg-query -W -f='${Version}' libc6 2>/dev/null || echo unknown; }

# vm_ldd_libs FILE [LIBPATH] -> the shared libraries FILE loads, one resolved host path a line,
# the dynamic loader included. Prints nothing for a static binary. Fails, naming the library, if
# one cannot be found (a payload that would only fail inside the guest with a less clear error).
vm_ldd_libs() {
	local file=$1 libpath=${2:-} out
	# glibc's ldd exits 1 and says "not a dynamic executable" (or "statically linked") for static
	# files: that is not an error here.
	if ! out=$(LD_LIBRARY_PATH=$libpath ldd "$file" 2>&1); then
		case $out in
		*"not a dynamic executable"* | *"statically linked"*) return 0 ;;
		*)
			printf '%s\n' "$out" >&2
			return 1
			;;
		esac
	fi
	case $out in *"statically linked"*) return 0 ;; esac
	if grep -q 'not found' <<<"$out"; then
		printf '%s: missing libraries:\n%s\n' "$file" "$(grep 'not found' <<<"$out")" >&2
		return 1
	fi
	# "libx.so.1 => /path (0x...)" and the loader line "/lib64/ld-linux-x86-64.so.2 (0x...)";
	# linux-vdso has no file and is skipped.
	awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}

# vm_pack_bins DIR FILE... -> copies each FILE into DIR/bin and the shared libraries it needs into
# DIR/lib (the guest's /init puts /payload/bin on PATH and /payload/lib on LD_LIBRARY_PATH).
# The dynamic loader itself is not copied: a binary names it by absolute path
# (/lib64/ld-linux-x86-64.so.2) and the base initramfs provides it, from the same host glibc.
vm_pack_bins() {
	local dir=$1 f lib
	shift
	[ $# -gt 0 ] || vm_die "pack: no files given"
	mkdir -p "$dir/bin" "$dir/lib"
	for f in "$@"; do
		[ -f "$f" ] || vm_die "pack: $f: no such file (not built yet?)"
		local out
		out=$dir/bin/$(basename "$f")
		cp -L "$f" "$out"
		chmod +x "$out"
		# Debug info goes: a cargo debug build is ~250 MB, ~25 MB without it, and the payload is
		# unpacked into the guest's RAM (512 MB). The symbol table stays, so backtraces still name
		# functions. XOQ_VM_PACK_STRIP=0 keeps everything (then raise XOQ_VM_MEM).
		if [ "${XOQ_VM_PACK_STRIP:-1}" != 0 ] && command -v strip >/dev/null &&
			[ "$(head -c 4 "$out" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
			strip --strip-debug "$out"
		fi
		local libs
		libs=$(vm_ldd_libs "$f") || vm_die "pack: cannot resolve the libraries of $f"
		while IFS= read -r lib; do
			[ -n "$lib" ] || continue
			case $(basename "$lib") in ld-linux*.so*) continue ;; esac
			# -L: copy the library file behind libfoo.so.N symlinks under the soname ldd printed
			[ -e "$dir/lib/$(basename "$lib")" ] || cp -L "$lib" "$dir/lib/"
		done <<<"$libs"
	done
}
