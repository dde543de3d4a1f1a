# shellcheck shell=bash
# Owns the Debian 12 root the package tests install into (sourced by tests/pkg/test.sh).
#
#   pkg_root_cached         -> prints the cached pristine root, making it with debootstrap first
#                              when the cache is missing or its key changed
#   pkg_root_fresh DIR      -> a throw-away copy of that root at DIR/root (an overlay mount on
#                              the cached root when the kernel allows it, else a plain copy),
#                              with /proc mounted; pkg_root_drop DIR undoes it
#
# The cache lives in ${XOQ_PKG_DIR:-<repo>/target/pkg}/rootfs/<key>/ (target/: never
# committed). The key covers everything the root is made from: suite, variant, extra packages,
# mirror, debootstrap's version and the recipe below, so a warm run reuses it (a second or
# less) and any change makes a new one. A cold one takes about a minute (downloads ~60 MB).

PKG_SUITE=bookworm
PKG_MIRROR=${XOQ_PKG_MIRROR:-http://deb.debian.org/debian}
# minbase + what the tests use: systemd (systemd-analyze, deb-systemd-helper), man-db (man),
# and the packages' own dependencies beyond minbase, since dpkg -i installs none: adduser and
# libasound2 (xoq-server), libpipewire-0.3-0 (xoq-mount).
PKG_INCLUDE=systemd,man-db,adduser,libasound2,libpipewire-0.3-0

pkg_root_key() {
	{
		echo "$PKG_SUITE minbase $PKG_INCLUDE $PKG_MIRROR"
		dpkg-query -W -f='${Version}' debootstrap 2>/dev/null
		declare -f pkg_root_make
	} | sha256sum | cut -c1-16
}

# pkg_root_make DIR: the recipe. No apt lists in the image: nothing in the tests uses apt.
pkg_root_make() {
	debootstrap --variant=minbase --include="$PKG_INCLUDE" "$PKG_SUITE" "$1" "$PKG_MIRROR"
	rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*
}

pkg_root_cached() {
	local cache=$XOQ_PKG_DIR/rootfs key dir
	key=$(pkg_root_key)
	dir=$cache/$key
	mkdir -p "$cache"
	# One builder at a time; a second test run waits for the first one's root.
	exec 8>"$cache/.lock"
	flock 8
	if [ ! -f "$dir/.complete" ]; then
		echo "pkg: making a Debian $PKG_SUITE root with debootstrap (cached as $dir)" >&2
		rm -rf "$dir" "$dir.new"
		if ! pkg_root_make "$dir.new" >"$cache/debootstrap.log" 2>&1; then
			tail -n 30 "$cache/debootstrap.log" >&2
			echo "pkg: debootstrap failed (log: $cache/debootstrap.log)" >&2
			exec 8>&-
			return 1
		fi
		touch "$dir.new/.complete"
		mv "$dir.new" "$dir"
		# Roots of older keys are dead weight (~250 MB each).
		find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key" -exec rm -rf {} +
	fi
	exec 8>&-
	printf '%s\n' "$dir"
}

pkg_root_fresh() {
	local work=$1 lower
	lower=$(pkg_root_cached) || return 1
	mkdir -p "$work/root" "$work/upper" "$work/ovl"
	if ! mount -t overlay overlay -o "lowerdir=$lower,upperdir=$work/upper,workdir=$work/ovl" \
		"$work/root" 2>/dev/null; then
		echo "pkg: no overlayfs here; copying the root instead" >&2
		cp -a "$lower/." "$work/root/"
	fi
	mount -t proc proc "$work/root/proc"
}

pkg_root_drop() {
	local work=$1
	[ -d "$work" ] || return 0
	umount "$work/root/proc" 2>/dev/null || true
	umount "$work/root" 2>/dev/null || true
	rm -rf "$work"
}

# in_root CMD...: run CMD in the fresh root with a clean environment.
in_root() {
	chroot "$PKG_ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
		TERM=dumb "$@"
}
