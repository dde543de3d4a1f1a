#!/usr/bin/env bash
# Prepares everything the real-kernel VM tests need, under ${XOQ_VM_DIR:-<repo>/target/vm}:
#
#   vmlinux        Debian 12's own kernel (linux-image-amd64), uncompressed, bootable by qemu's
#                  -kernel through its PVH entry point
#   base.cpio.gz   the base initramfs: busybox, /init (guest-init), the kernel modules for CAN,
#                  CUSE and v4l2loopback (built here against the matching headers), tun, veth
#                  and sch_netem, can-utils, v4l2-ctl, iproute2's ip and tc, Debian's udev
#                  (systemd-udevd, udevadm, its rules; not started) and the libraries they load
#
# Usage: tests/vm/prepare.sh [-q|--quiet] [-f|--force]
#   -q  print nothing unless something fails (the log is in $XOQ_VM_DIR/prepare.log)
#   -f  rebuild every stage, even the ones that are up to date
# Environment: XOQ_VM_DIR (cache directory), XOQ_VM_KVER (kernel ABI, e.g. 6.1.0-56-amd64,
# instead of the one linux-image-amd64 currently depends on).
#
# Why it is built like this:
# - The host kernel has no CAN, CUSE or V4L2 and loads no modules, and there is no KVM: tests run
#   under qemu TCG in a VM booted with Debian's kernel. Nothing of it is installed on the host:
#   packages are fetched with `apt-get download` and unpacked here.
# - Three stages, each with a stamp holding the key it was built for (stamps/<stage>): a re-run
#   skips every stage whose key did not change, so it costs well under a second.
#     debs       key: kernel ABI + the candidate version of every package downloaded
#     kernel     key: debs key + this script (vmlinux, modules, v4l2loopback, unpacked tools)
#     initramfs  key: kernel key + guest-init, guest-exit.c, lib.sh and the host's glibc version
# - The kernel ABI (6.1.0-N-amd64) is resolved now, not hard-coded: old ABIs vanish from the
#   mirror after every kernel update.
set -euo pipefail

XOQ_VM_PROG=prepare
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE=$XOQ_VM_LIB_DIR

quiet=0 force=0
for arg in "$@"; do
	case $arg in
	-q | --quiet) quiet=1 ;;
	-f | --force) force=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) vm_die "unknown argument: $arg (see --help)" ;;
	esac
done

mkdir -p "$XOQ_VM_DIR" "$XOQ_VM_STAMPS"
# One prepare at a time per cache directory (test.sh may run in two terminals at once).
exec 9>"$XOQ_VM_DIR/.prepare.lock"
flock 9

LOG=$XOQ_VM_DIR/prepare.log
: >"$LOG"
if [ "$quiet" = 1 ]; then
	# Keep the real stderr on fd 4 for the failure report; everything else goes to the log.
	exec 4>&2 >>"$LOG" 2>&1
	report_failure() {
		local rc=$?
		[ "$rc" = 0 ] || { echo "prepare failed (exit $rc); the end of $LOG:" && tail -n 40 "$LOG"; } >&4
	}
	trap report_failure EXIT
else
	exec > >(tee -a "$LOG") 2>&1
fi

t_start=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# --- stamps ------------------------------------------------------------------------------------
stamp_ok() { [ "$force" = 0 ] && [ -f "$XOQ_VM_STAMPS/$1" ] && [ "$(cat "$XOQ_VM_STAMPS/$1")" = "$2" ]; }
stamp_set() { printf '%s\n' "$2" >"$XOQ_VM_STAMPS/$1"; }
stamp_clear() { rm -f "$XOQ_VM_STAMPS/$1"; }

# --- host packages -----------------------------------------------------------------------------
apt_updated=0
apt_update() {
	[ "$apt_updated" = 1 ] && return 0
	vm_log "apt-get update"
	apt-get update -qq
	apt_updated=1
}

# Tools the host needs; installed only when missing. Debian package for each command:
#   qemu-system-x86_64  the emulator (TCG: no KVM here)
#   cpio                packs the initramfs and run.sh's payload archive
#   xz                  unpacks the xz-compressed kernel inside the bzImage
#   gcc-12, make        build v4l2loopback.ko (Debian 12's kernel is built with gcc-12; its
#                       headers call gcc-12 by name) and the static xoq-vm-exit helper
#   libc6-dev           static glibc for that helper
#   curl                fetches the pinned newer v4l2loopback from Debian's pool
ensure_host_tools() {
	local missing=() pair cmd pkg
	for pair in qemu-system-x86_64:qemu-system-x86 cpio:cpio xz:xz-utils gcc-12:gcc-12 \
		make:make dpkg-deb:dpkg flock:util-linux curl:curl; do
		cmd=${pair%%:*} pkg=${pair#*:}
		command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
	done
	[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(libc6-dev)
	[ ${#missing[@]} = 0 ] && return 0
	vm_log "installing host packages: ${missing[*]}"
	apt_update
	# --no-install-recommends: qemu's recommends pull in a graphics stack we never use.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
ensure_host_tools

# --- resolve the kernel and the package versions -----------------------------------------------
# set_pkgs: the packages to download for kernel ABI $KVER.
set_pkgs() {
	KBASE=${KVER%-amd64}                # 6.1.0-56
	KMAJMIN=$(cut -d. -f1,2 <<<"$KVER") # 6.1 (linux-kbuild-6.1)
	PKGS=(
		"linux-image-$KVER"           # vmlinuz + modules
		"linux-headers-$KVER"         # to build v4l2loopback against this exact kernel
		"linux-headers-$KBASE-common" # the bulk of the headers, included by the one above
		"linux-kbuild-$KMAJMIN"       # kbuild's scripts and host programs (modpost, ...)
		v4l2loopback-dkms             # v4l2loopback source (0.12.7 in Debian 12)
		busybox-static                # the guest's whole userland
		can-utils                     # cansend, candump, cangen, cangw, canbusload
		v4l-utils libv4l-0 libv4lconvert0 # v4l2-ctl and its libraries
		udev libkmod2 libcap2         # systemd-udevd/udevadm, its rules, and the libraries of
		#                               it a minimal host may lack (the others are Essential's)
		iproute2 libbpf1 libelf1 libmnl0 libxtables12 libbsd0 libmd0 # ip (netns) and tc
		#                               (netem), which busybox lacks, and their libraries
	)
}

# Every apt-cache call costs ~0.5 s (it parses all of Debian's package lists), and the answers
# only change with the lists: they are cached in stamps/resolved under a fingerprint of the lists.
RESOLVED=$XOQ_VM_STAMPS/resolved
lists_fingerprint() {
	{
		echo "kver=${XOQ_VM_KVER:-}"
		vm_sha "$HERE/prepare.sh"
		stat -c '%n %s %Y' /var/lib/apt/lists/*_Packages* 2>/dev/null || true
	} | sha256sum | cut -c1-16
}

# resolve_apt -> KVER, PKGS and PKGVERS ("pkg=version" a line: exactly what apt-get download
# fetches) from apt's lists; runs `apt-get update` once if the lists lack something (a fresh
# machine has no lists at all).
resolve_apt() {
	KVER=${XOQ_VM_KVER:-$(apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { sub(/^linux-image-/, "", $2); print $2; exit }')}
	PKGVERS=""
	if [ -n "$KVER" ]; then
		set_pkgs
		PKGVERS=$(apt-cache policy "${PKGS[@]}" | awk '
			/^[^ ].*:$/ { pkg = substr($1, 1, length($1) - 1) }
			$1 == "Candidate:" && $2 != "(none)" { print pkg "=" $2 }')
	fi
	if [ -z "$KVER" ] || [ "$(grep -c . <<<"$PKGVERS")" != ${#PKGS[@]} ]; then
		[ "$apt_updated" = 0 ] ||
			vm_die "apt cannot resolve the kernel (linux-image-amd64 -> '$KVER') or the versions of: ${PKGS[*]:-} (found: $(tr '\n' ' ' <<<"$PKGVERS"))"
		apt_update
		resolve_apt
		return
	fi
	{
		lists_fingerprint
		echo "$KVER"
		echo "$PKGVERS"
	} >"$RESOLVED"
}

# v4l2loopback 0.15 (Debian 13's), built beside Debian 12's 0.12.7 and loaded instead of it by the
# suites that need the control device.
NEW_V4L2LB_DEB=v4l2loopback-dkms_0.15.0-2_all.deb
NEW_V4L2LB_URL=http://deb.debian.org/debian/pool/main/v/v4l2loopback/$NEW_V4L2LB_DEB
NEW_V4L2LB_SHA256=d9b768037e28852070d31af3376d90c8b448f9807de29d664587082bb7784cd4

# The stage keys (see the top of this file).
set_keys() {
	KEY_DEBS="$KVER $(tr '\n' ' ' <<<"$PKGVERS") $NEW_V4L2LB_DEB"
	KEY_KERNEL="$KEY_DEBS script=$(vm_sha "$HERE/prepare.sh")"
	KEY_INITRAMFS="$KEY_KERNEL init=$(vm_sha "$HERE/guest-init" "$HERE/guest-exit.c" "$HERE/lib.sh") libc6=$(vm_libc_version)"
}

if [ "$force" = 0 ] && [ -f "$RESOLVED" ] && [ "$(head -n1 "$RESOLVED")" = "$(lists_fingerprint)" ]; then
	KVER=$(sed -n 2p "$RESOLVED")
	PKGVERS=$(sed -n '3,$p' "$RESOLVED")
	set_pkgs
else
	resolve_apt
fi
set_keys

DEBS=$XOQ_VM_DIR/debs
KDIR=$XOQ_VM_DIR/kernel # the guest's module tree (modroot/) and unpacked tools (tools/)
# deb_of PACKAGE -> the downloaded .deb of PACKAGE (first glob match; the name has a version).
first() { [ -e "$1" ] && printf '%s\n' "$1"; }
deb_of() { first "$DEBS/$1"_*.deb || vm_die "no .deb of $1 in $DEBS"; }

# --- stage 1: download -------------------------------------------------------------------------
stage_debs() {
	local t0 tmp pkgs
	t0=$(date +%s.%N)
	tmp=$XOQ_VM_DIR/debs.new
	rm -rf "$tmp" && mkdir -p "$tmp"
	mapfile -t pkgs <<<"$PKGVERS"
	vm_log "downloading ${#pkgs[@]} packages for kernel $KVER"
	# Sandbox::User=root: apt's _apt user cannot write into a root-owned cache directory (apt
	# would fall back to root anyway, with a warning per package).
	if ! (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "${pkgs[@]}"); then
		# Stale package lists name versions the mirror no longer has: refresh and retry once
		# (the versions, so the keys, may change with the new lists).
		[ "$apt_updated" = 0 ] || vm_die "apt-get download failed"
		vm_warn "download failed; refreshing the package lists and retrying"
		apt_update
		resolve_apt
		set_keys
		mapfile -t pkgs <<<"$PKGVERS"
		(cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "${pkgs[@]}") ||
			vm_die "apt-get download failed"
	fi
	# A newer v4l2loopback (with the /dev/v4l2loopback control device) for the suite that tests
	# adding devices at run time; pinned by checksum (trixie's package, from Debian's pool).
	curl -fsSL --retry 3 -o "$tmp/$NEW_V4L2LB_DEB" "$NEW_V4L2LB_URL" ||
		vm_die "cannot download $NEW_V4L2LB_URL"
	echo "$NEW_V4L2LB_SHA256  $tmp/$NEW_V4L2LB_DEB" | sha256sum -c --quiet - ||
		vm_die "$NEW_V4L2LB_DEB does not have the expected checksum"
	rm -rf "$DEBS" && mv "$tmp" "$DEBS"
	vm_log "download: $(du -sh "$DEBS" | cut -f1) in $(elapsed "$t0") s"
}

# --- stage 2: kernel, modules, tools -----------------------------------------------------------
# The modules the guest loads, by name; the closure over their dependencies goes in the initramfs.
WANT_MODULES="vcan can-raw can-gw can-bcm can-dev cuse fuse v4l2loopback videodev tun veth sch_netem"
# Subtrees (or single modules) of lib/modules/<kver>/kernel unpacked from the image: all of it is
# ~400 MB and takes 15-45 s to write; these few take seconds. A dependency outside them is fetched
# by name below.
MODULE_TREES="net/can drivers/net/can fs/fuse drivers/media/v4l2-core drivers/media/mc
	drivers/net/tun.ko drivers/net/veth.ko net/sched/sch_netem.ko"

modname() { basename "$1" .ko | tr - _; } # the kernel's module names use '_', files either
# depends_of FILE.ko -> the modules FILE depends on, as recorded by modpost in .modinfo.
depends_of() { tr '\0' '\n' <"$1" | sed -n 's/^depends=//p' | tr ',' '\n' | sed '/^$/d'; }

stage_kernel() {
	local t0 work kimg khdr tools img kh src md f off m name missing
	t0=$(date +%s.%N)
	work=$XOQ_VM_DIR/work
	rm -rf "$work" "$KDIR.new"
	mkdir -p "$work" "$KDIR.new"
	kimg=$work/kimg khdr=$work/khdr tools=$KDIR.new/tools
	mkdir -p "$kimg" "$khdr" "$tools"
	img=$(deb_of "linux-image-$KVER")

	vm_log "unpacking the kernel image and the module subtrees we need"
	local pats=("./boot/vmlinuz-$KVER" "./lib/modules/$KVER/modules.builtin"
		"./lib/modules/$KVER/modules.builtin.modinfo" "./lib/modules/$KVER/modules.order")
	for m in $MODULE_TREES; do pats+=("./lib/modules/$KVER/kernel/$m"); done
	dpkg-deb --fsys-tarfile "$img" | tar -x -C "$kimg" "${pats[@]}"
	md=$kimg/lib/modules/$KVER

	vm_log "unpacking headers, kbuild, v4l2loopback source and the guest's tools"
	for f in "linux-headers-$KVER" "linux-headers-$KBASE-common" "linux-kbuild-$KMAJMIN" v4l2loopback-dkms; do
		dpkg -x "$(deb_of "$f")" "$khdr"
	done
	for f in busybox-static can-utils v4l-utils libv4l-0 libv4lconvert0 udev libkmod2 libcap2 \
		iproute2 libbpf1 libelf1 libmnl0 libxtables12 libbsd0 libmd0; do
		dpkg -x "$(deb_of "$f")" "$tools"
	done
	# linux-headers-<abi>/Makefile includes the -common tree by its absolute /usr/src path:
	# point it at our copy (nothing is installed on the host).
	kh=$khdr/usr/src/linux-headers-$KVER
	sed -i "s|/usr/src/linux-headers-$KBASE-common|$khdr/usr/src/linux-headers-$KBASE-common|g" "$kh/Makefile"
	grep -q "$khdr/usr/src/linux-headers-$KBASE-common" "$kh/Makefile" ||
		vm_die "the headers Makefile does not name linux-headers-$KBASE-common: its layout changed"

	# build_v4l2loopback SRC OUT.ko: one v4l2loopback source tree against these headers.
	build_v4l2loopback() {
		local t1 b
		t1=$(date +%s.%N) b=$work/build-$(basename "$1")
		vm_log "building $(basename "$1") against $KVER"
		cp -r "$1" "$b"
		if ! make -s -C "$kh" M="$b" modules >"$b.log" 2>&1; then
			cat "$b.log"
			vm_die "$(basename "$1") build failed"
		fi
		mkdir -p "$(dirname "$2")"
		cp "$b/v4l2loopback.ko" "$2"
		vm_log "$(basename "$1"): v4l2loopback.ko built in $(elapsed "$t1") s"
	}
	src=$(first "$khdr"/usr/src/v4l2loopback-*) || vm_die "no v4l2loopback source in v4l2loopback-dkms"
	build_v4l2loopback "$src" "$md/extra/v4l2loopback.ko"
	# The newer module goes outside the module tree (depmod would see two v4l2loopbacks), at
	# /lib/xoq/v4l2loopback-new.ko in the guest.
	rm -rf "$work/new-v4l2lb" && mkdir -p "$work/new-v4l2lb"
	dpkg -x "$DEBS/$NEW_V4L2LB_DEB" "$work/new-v4l2lb"
	src=$(first "$work"/new-v4l2lb/usr/src/v4l2loopback-*) || vm_die "no source in $NEW_V4L2LB_DEB"
	build_v4l2loopback "$src" "$KDIR.new/modroot/lib/xoq/v4l2loopback-new.ko"

	# Closure of WANT_MODULES over the "depends=" of each .ko. Debian's .deb has no modules.dep
	# (its postinst runs depmod), so the dependencies are read from the modules themselves.
	local -A path_of=() need=()
	index_modules() { while IFS= read -r f; do path_of[$(modname "$f")]=${f#"$md"/}; done < <(find "$md" -name '*.ko'); }
	index_modules
	local queue=() i dep
	for pass in 1 2; do
		read -ra queue <<<"$(tr - _ <<<"$WANT_MODULES")"
		missing="" i=0
		while [ "$i" -lt ${#queue[@]} ]; do
			name=${queue[i]}
			i=$((i + 1))
			[ -z "${need[$name]:-}" ] || continue
			if [ -z "${path_of[$name]:-}" ]; then
				missing="$missing $name"
				continue
			fi
			need[$name]=${path_of[$name]}
			while IFS= read -r dep; do queue+=("$(tr - _ <<<"$dep")"); done < <(depends_of "$md/${path_of[$name]}")
		done
		[ -n "$missing" ] || break
		[ "$pass" = 1 ] || vm_die "kernel modules not found in linux-image-$KVER:$missing"
		# A dependency outside MODULE_TREES: fetch it by file name (either spelling) and retry.
		vm_log "fetching modules outside the usual subtrees:$missing"
		pats=()
		for m in $missing; do pats+=("*/$m.ko" "*/$(tr _ - <<<"$m").ko"); done
		dpkg-deb --fsys-tarfile "$img" | tar -x -C "$kimg" --wildcards "${pats[@]}" 2>/dev/null || true
		need=()
		index_modules
	done

	# The guest's module tree: just the closure, with modules.dep from busybox's depmod (the host
	# has no kmod, and needs none).
	local mr=$KDIR.new/modroot/lib/modules/$KVER
	mkdir -p "$mr"
	for name in "${!need[@]}"; do
		mkdir -p "$mr/$(dirname "${need[$name]}")"
		cp "$md/${need[$name]}" "$mr/${need[$name]}"
	done
	cp "$md"/modules.builtin "$md"/modules.builtin.modinfo "$md"/modules.order "$mr/"
	"$tools/bin/busybox" depmod -b "$KDIR.new/modroot" "$KVER"
	vm_log "modules: $(printf '%s\n' "${!need[@]}" | sort | tr '\n' ' ')"

	# vmlinux: the bzImage carries the kernel as an xz stream. Booting the uncompressed ELF through
	# its PVH entry skips the real-mode setup and the decompression, ~5 s per boot under TCG.
	# Try each xz magic in turn: the first hit could be a false positive.
	vm_log "extracting vmlinux"
	t1=$(date +%s.%N)
	local vmlinuz=$kimg/boot/vmlinuz-$KVER ok=0
	# shellcheck disable=SC2013 # numbers, one a line
	for off in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | cut -d: -f1); do
		# xz complains about the bytes after the stream (the bzImage's trailer): ignored.
		tail -c +$((off + 1)) "$vmlinuz" | xz -dc >"$KDIR.new/vmlinux" 2>/dev/null || true
		if [ "$(head -c 4 "$KDIR.new/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
			ok=1
			break
		fi
	done
	[ "$ok" = 1 ] || vm_die "no xz-compressed ELF kernel found in $vmlinuz"
	printf '%s\n' "$KVER" >"$KDIR.new/kver"
	vm_log "vmlinux: $(du -h "$KDIR.new/vmlinux" | cut -f1) in $(elapsed "$t1") s"

	rm -rf "$KDIR" && mv "$KDIR.new" "$KDIR"
	mv "$KDIR/vmlinux" "$XOQ_VM_KERNEL"
	rm -rf "$work" # ~150 MB of headers; the build is not needed again until the key changes
	vm_log "kernel stage: $(elapsed "$t0") s"
}

# --- stage 3: base initramfs -------------------------------------------------------------------
GUEST_TOOLS="cansend candump cangen cangw canbusload v4l2-ctl"

# guest_udev ROOT TOOLS LIBPATH: Debian's udev as the udev package installs it, for suites that
# check udev rules (tests/vm/suites/udev.sh starts it): /bin/udevadm, /lib/systemd/systemd-udevd
# (a link to it, as in Debian), /lib/udev/rules.d (Debian's rules), the helper programs those
# rules run (v4l_id, ...), /etc/udev/udev.conf, and their libraries. Not the hwdb (10 MB of
# text, only for real hardware).
# copy_libs ROOT TOOLS LIBPATH FILE: the shared libraries FILE loads, into ROOT at the paths the
# guest's loader searches (a library from the unpacked packages under TOOLS at its path there).
copy_libs() {
	local r=$1 tools=$2 libpath=$3 file=$4 lib dest
	while IFS= read -r lib; do
		case $lib in "$tools"/*) dest=${lib#"$tools"} ;; *) dest=$lib ;; esac
		[ -e "$r$dest" ] && continue
		mkdir -p "$r$(dirname "$dest")"
		cp -L "$lib" "$r$dest"
	done < <(vm_ldd_libs "$file" "$libpath")
}

guest_udev() {
	local r=$1 tools=$2 libpath=$3 f lib dest
	[ -x "$tools/bin/udevadm" ] || vm_die "udevadm not found in the udev package"
	mkdir -p "$r/lib/systemd" "$r/lib/udev" "$r/etc/udev"
	cp "$tools/bin/udevadm" "$r/bin/udevadm"
	ln -sf /bin/udevadm "$r/lib/systemd/systemd-udevd"
	cp -r "$tools/lib/udev/rules.d" "$r/lib/udev/"
	cp "$tools/etc/udev/udev.conf" "$r/etc/udev/"
	for f in "$tools"/lib/udev/*; do
		if [ -f "$f" ] && [ -x "$f" ]; then cp "$f" "$r/lib/udev/"; fi
	done
	for f in "$r/bin/udevadm" "$r"/lib/udev/*; do
		[ -f "$f" ] && [ -x "$f" ] || continue
		copy_libs "$r" "$tools" "$libpath" "$f"
	done
}

stage_initramfs() {
	local t0 r tools bb f lib dest tmp
	t0=$(date +%s.%N)
	r=$XOQ_VM_DIR/initramfs.root tools=$KDIR/tools bb=$KDIR/tools/bin/busybox
	rm -rf "$r"
	mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,lib64,etc,proc,sys,dev,run,tmp,root,mnt}

	# busybox and its applet links, each where busybox says it belongs (/sbin/modprobe matters:
	# the kernel runs it to autoload modules, e.g. can-bcm for a CAN_BCM socket).
	cp "$bb" "$r/bin/busybox"
	while IFS= read -r f; do
		[ -e "$r/$f" ] || ln -s /bin/busybox "$r/$f"
	done < <("$bb" --list-full)

	cp -a "$KDIR/modroot/lib" "$r/"

	# Dynamically linked tools, with their libraries at the same paths as on the host (the guest's
	# loader searches the Debian multiarch directories). Libraries from the unpacked packages (libv4l)
	# are found through LD_LIBRARY_PATH and installed under /usr/lib.
	local libpath=$tools/usr/lib/x86_64-linux-gnu:$tools/lib/x86_64-linux-gnu
	for f in $GUEST_TOOLS; do
		if [ ! -x "$tools/usr/bin/$f" ]; then
			[ "$f" = canbusload ] && continue # optional: not in every can-utils
			vm_die "$f not found in the unpacked packages"
		fi
		cp "$tools/usr/bin/$f" "$r/usr/bin/"
		copy_libs "$r" "$tools" "$libpath" "$tools/usr/bin/$f"
	done

	guest_udev "$r" "$tools" "$libpath"

	# iproute2's ip (netns) and tc (netem) in /usr/sbin, as on the host: ahead of busybox's
	# /sbin/ip and /sbin/tc on PATH for programs that exec them (NetLab, link_probe); busybox sh
	# still runs its own applets for a bare `ip` in a script. tc's distribution tables (netem
	# jitter) where it looks for them.
	for f in bin/ip sbin/tc; do
		[ -x "$tools/$f" ] || vm_die "$f not found in the iproute2 package"
		cp "$tools/$f" "$r/usr/sbin/"
		copy_libs "$r" "$tools" "$libpath" "$tools/$f"
	done
	mkdir -p "$r/usr/lib/x86_64-linux-gnu"
	cp -r "$tools/usr/lib/x86_64-linux-gnu/tc" "$r/usr/lib/x86_64-linux-gnu/"

	gcc-12 -Os -static -s -o "$r/sbin/xoq-vm-exit" "$HERE/guest-exit.c"
	install -m 755 "$HERE/guest-init" "$r/init"

	# What glibc-using test binaries look up: localhost, the root user.
	printf '127.0.0.1\tlocalhost xoq-vm\n::1\tlocalhost ip6-localhost\n' >"$r/etc/hosts"
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
	printf 'root:x:0:\ntty:x:5:\ndialout:x:20:\nvideo:x:44:\nnogroup:x:65534:\n' >"$r/etc/group"

	# newc, owned by root, sorted for a stable archive; gzip -1: the guest decompresses it under
	# emulation, where -9 saves little space and costs boot time.
	tmp=$XOQ_VM_INITRAMFS.tmp
	(cd "$r" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$tmp"
	mv "$tmp" "$XOQ_VM_INITRAMFS"
	rm -rf "$r"
	vm_log "initramfs: $(du -h "$XOQ_VM_INITRAMFS" | cut -f1) in $(elapsed "$t0") s"
}

# --- run the stages that are out of date -------------------------------------------------------
did=""
if ! stamp_ok debs "$KEY_DEBS" || [ ! -d "$DEBS" ]; then
	stamp_clear kernel
	stage_debs
	stamp_set debs "$KEY_DEBS"
	did="$did debs"
fi
if ! stamp_ok kernel "$KEY_KERNEL" || [ ! -f "$XOQ_VM_KERNEL" ] || [ ! -d "$KDIR/modroot" ]; then
	stamp_clear initramfs
	stage_kernel
	stamp_set kernel "$KEY_KERNEL"
	did="$did kernel"
fi
if ! stamp_ok initramfs "$KEY_INITRAMFS" || [ ! -f "$XOQ_VM_INITRAMFS" ]; then
	stage_initramfs
	stamp_set initramfs "$KEY_INITRAMFS"
	did="$did initramfs"
fi

if [ -n "$did" ]; then
	vm_log "kernel $KVER ready in $(elapsed "$t_start") s (rebuilt:$did)"
else
	vm_log "kernel $KVER: up to date ($(elapsed "$t_start") s)"
fi
