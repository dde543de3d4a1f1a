#!/usr/bin/env bash
# Tests the Debian packages xoq-server and xoq-mount in a real install. Owns the scenario:
#
#   1. builds both packages with packaging/build-debs.sh (the debug build by default: the test
#      command has built it already; XOQ_PKG_PROFILE=release packages the release build), plus
#      the same packages as version 0.1.0-2 for the upgrade,
#   2. lintian: no error, every warning justified in packaging/README.md (tests/pkg/lintian.sh),
#   3. in a fresh Debian 12 root made by debootstrap (cached: tests/pkg/root.sh), with dpkg in a
#      chroot: install -> files, owners, modes, conffiles, the xoq user and its groups, units
#      (systemd-analyze verify), --help, man, completions; reinstall and upgrade change nothing
#      they should keep; remove keeps keys and config; purge deletes them and leaves the file
#      system as it was before the install.
#
# Usage: tests/pkg/test.sh        (as root; from any directory)
# Ends with "N passed, M failed". Environment: XOQ_PKG_PROFILE (dev|release), XOQ_PKG_DIR
# (cache and scratch, default <repo>/target/pkg), XOQ_PKG_MIRROR (debootstrap's mirror).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/tests/pkg
: "${XOQ_PKG_DIR:=$REPO/target/pkg}"
PROFILE=${XOQ_PKG_PROFILE:-dev}
# shellcheck source=root.sh
. "$HERE/root.sh"
# shellcheck source=assert.sh
. "$HERE/assert.sh"
cd "$REPO"

[ "$(id -u)" = 0 ] || {
	echo "pkg: run as root (debootstrap, chroot, mount)" >&2
	exit 1
}
missing=()
for pair in debootstrap:debootstrap lintian:lintian; do
	command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "pkg: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 1. build ---------------------------------------------------------------------------------
# build PROFILE OUT [ENV...] -> the built .debs (the lines after "== built:"), log in OUT.log.
build() {
	local out=$1
	shift
	rm -rf "$out"
	if ! env PROFILE="$PROFILE" DEB_OUT="$out" "$@" packaging/build-debs.sh >"$out.log" 2>&1; then
		tail -n 40 "$out.log" >&2
		echo "pkg: packaging/build-debs.sh failed (log: $out.log)" >&2
		exit 1
	fi
	sed -n '/^== built:/,$p' "$out.log" | sed 1d
}
mkdir -p "$XOQ_PKG_DIR"
echo "== pkg: build ($PROFILE profile)"
mapfile -t debs < <(build "$XOQ_PKG_DIR/debs")
mapfile -t next < <(build "$XOQ_PKG_DIR/debs-next" NO_BUILD=1 DEB_REVISION=2 FAST=1)
printf '  %s\n' "${debs[@]}" "${next[@]}"
if [ ${#debs[@]} != 2 ] || [ ${#next[@]} != 2 ]; then
	echo "pkg: expected two packages per build" >&2
	exit 1
fi
VERSION=$(dpkg-deb -f "${debs[0]}" Version)

# --- 2. lintian -------------------------------------------------------------------------------
echo "== pkg: lintian"
# Its report is printed either way (the tags that stay are part of the result).
if lint=$("$HERE/lintian.sh" "${debs[@]}" 2>&1); then
	printf '%s\n' "$lint" | sed 's/^/       /'
	pkg_pass "lintian: no errors, warnings justified"
else
	pkg_fail "lintian: no errors, warnings justified" "$lint"
fi

# --- 3. a real install ------------------------------------------------------------------------
echo "== pkg: Debian 12 root"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/xoq-pkg.XXXXXX")
trap 'pkg_root_drop "$WORK"' EXIT
pkg_root_fresh "$WORK"
PKG_ROOT=$WORK/root
mkdir -p "$PKG_ROOT/tmp/debs" "$PKG_ROOT/tmp/next"
cp "${debs[@]}" "$PKG_ROOT/tmp/debs/"
cp "${next[@]}" "$PKG_ROOT/tmp/next/"

# Every path of the root's own file system, except what package management itself keeps
# (dpkg's database, logs), man's page cache (filled by the test's own `man` calls), /run (a
# tmpfs on a booted system) and /tmp (the test's packages).
snapshot() {
	in_root find / -xdev \( -path /proc -o -path /tmp -o -path /run -o -path /var/lib/dpkg \
		-o -path /var/cache/man -o -path /var/log \) -prune -o -print | LC_ALL=C sort
}
before=$(snapshot)

dpkg_ok() { in_root dpkg "$@" >>"$WORK/dpkg.log" 2>&1 || { tail -n 30 "$WORK/dpkg.log" && return 1; }; }
mode() { in_root stat -c '%U:%G %a' "$1" 2>&1; }
status() { in_root dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>&1; }
sum() { in_root sha256sum "$1" 2>&1 | cut -d' ' -f1; }
server() { in_root xoq-server --key /var/lib/xoq/server.key --authorized /etc/xoq/authorized_clients.toml "$@"; }

echo "== pkg: install $VERSION"
check "dpkg -i xoq-server xoq-mount" dpkg_ok -i /tmp/debs/xoq-server_"$VERSION"_amd64.deb /tmp/debs/xoq-mount_"$VERSION"_amd64.deb
check_eq "xoq-server status" "$(status xoq-server)" "install ok installed $VERSION"
check_eq "xoq-mount status" "$(status xoq-mount)" "install ok installed $VERSION"
check_eq "dpkg --verify (sums computed at install)" "$(in_root dpkg --verify xoq-server xoq-mount 2>&1)" ""
check "dpkg has those sums" test -s "$PKG_ROOT/var/lib/dpkg/info/xoq-server.md5sums"

# path, owner:group mode, owning package ("-": made by a maintainer script)
while read -r path owner perm pkg; do
	check_eq "$path is $owner $perm" "$(mode "$path")" "$owner $perm"
	if [ "$pkg" != - ]; then
		check_eq "$path belongs to $pkg" "$(in_root dpkg -S "$path" 2>&1)" "$pkg: $path"
	fi
done <<'EOF'
/usr/bin/xoq-server                                 root:root 755 xoq-server
/usr/libexec/xoq/xoq-server-fix-perms               root:root 755 xoq-server
/etc/xoq/server.toml                                root:root 644 xoq-server
/usr/lib/systemd/system/xoq-server.service          root:root 644 xoq-server
/usr/lib/systemd/system/xoq-server-authorized.path  root:root 644 xoq-server
/usr/lib/systemd/system/xoq-server-authorized.service root:root 644 xoq-server
/usr/share/man/man1/xoq-server.1.gz                 root:root 644 xoq-server
/usr/share/man/man1/xoq-server-authorize.1.gz       root:root 644 xoq-server
/usr/share/bash-completion/completions/xoq-server   root:root 644 xoq-server
/usr/share/zsh/vendor-completions/_xoq-server       root:root 644 xoq-server
/usr/share/fish/vendor_completions.d/xoq-server.fish root:root 644 xoq-server
/usr/share/doc/xoq-server/copyright                 root:root 644 xoq-server
/usr/share/doc/xoq-server/changelog.Debian.gz       root:root 644 xoq-server
/usr/bin/xoq-mount                                  root:root 755 xoq-mount
/usr/lib/systemd/system/xoq-mount@.service          root:root 644 xoq-mount
/lib/udev/rules.d/60-xoq.rules                      root:root 644 xoq-mount
/usr/lib/modules-load.d/xoq.conf                    root:root 644 xoq-mount
/lib/modprobe.d/xoq.conf                            root:root 644 xoq-mount
/usr/share/man/man1/xoq-mount.1.gz                  root:root 644 xoq-mount
/usr/share/man/man1/xoq-mount-status.1.gz           root:root 644 xoq-mount
/usr/share/bash-completion/completions/xoq-mount    root:root 644 xoq-mount
/usr/share/zsh/vendor-completions/_xoq-mount        root:root 644 xoq-mount
/usr/share/fish/vendor_completions.d/xoq-mount.fish root:root 644 xoq-mount
/usr/share/doc/xoq-mount/copyright                  root:root 644 xoq-mount
/usr/share/doc/xoq-mount/changelog.Debian.gz        root:root 644 xoq-mount
/usr/share/doc/xoq-mount/mounts.example.env         root:root 644 xoq-mount
/var/lib/xoq                                        xoq:xoq 700 -
/var/lib/xoq/server.key                             xoq:xoq 600 -
/etc/xoq/authorized_clients.toml                    root:xoq 640 -
/etc/xoq/mounts                                     root:root 755 -
EOF

# The shipped files are the repository's (the VM udev suite tests the repository's copies).
for pair in packaging/server.toml:/etc/xoq/server.toml udev/60-xoq.rules:/lib/udev/rules.d/60-xoq.rules \
	kernel-helpers/modprobe.d/xoq.conf:/lib/modprobe.d/xoq.conf \
	kernel-helpers/modules-load.d/xoq.conf:/usr/lib/modules-load.d/xoq.conf \
	packaging/copyright:/usr/share/doc/xoq-server/copyright \
	packaging/copyright:/usr/share/doc/xoq-mount/copyright; do
	check "${pair#*:} is ${pair%%:*}" cmp "${pair%%:*}" "$PKG_ROOT${pair#*:}"
done
check_has "copyright is machine-readable" "$(head -n1 "$PKG_ROOT/usr/share/doc/xoq-server/copyright")" \
	"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
check_eq "xoq-server conffiles" "$(in_root dpkg-query -W -f='${Conffiles}' xoq-server | awk '{ print $1 }')" \
	"/etc/xoq/server.toml"
check_eq "xoq-mount conffiles" "$(in_root dpkg-query -W -f='${Conffiles}' xoq-mount)" ""
check_eq "Recommends of xoq-mount" "$(dpkg-deb -f "${debs[1]}" Recommends)" "v4l2loopback-dkms"
check_eq "Suggests of xoq-mount" "$(dpkg-deb -f "${debs[1]}" Suggests)" "can-utils"
check_has "Depends of xoq-server" "$(dpkg-deb -f "${debs[0]}" Depends)" "adduser"

# The user: a system user with no login, home /var/lib/xoq, in the device groups.
IFS=: read -r _ _ uid _ _ home shell <<<"$(in_root getent passwd xoq)"
check "xoq is a system user (uid $uid < 1000)" test "${uid:-1000}" -lt 1000
check_eq "xoq's home" "$home" /var/lib/xoq
check_eq "xoq's shell" "$shell" /usr/sbin/nologin
groups_of_xoq() { in_root id -nG xoq | tr ' ' '\n' | LC_ALL=C sort | tr '\n' ' '; }
check_eq "xoq's groups" "$(groups_of_xoq)" "audio dialout plugdev video xoq "

# Units: enabled as packaged, valid for systemd, hardened as documented.
check "xoq-server.service enabled" test -L "$PKG_ROOT/etc/systemd/system/multi-user.target.wants/xoq-server.service"
check_eq "no xoq-mount@ instance enabled" "$(in_root find /etc/systemd -name 'xoq-mount@*')" ""
verify() { in_root sh -c "cd /usr/lib/systemd/system && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=yes $* 2>&1"; }
check_eq "systemd-analyze verify: no complaints" \
	"$(verify xoq-server.service xoq-server-authorized.path xoq-server-authorized.service xoq-mount@robot1.service)" ""
# ... and it does complain about a broken unit (the check above can fail).
sed -e 's#^ExecStart=/usr/bin/xoq-server#ExecStart=/usr/bin/xoq-missing#' -e 's#^NoNewPrivileges=#NoNewPrivilege=#' \
	"$PKG_ROOT/usr/lib/systemd/system/xoq-server.service" >"$PKG_ROOT/tmp/broken.service"
check_has "systemd-analyze verify sees a broken unit" "$(verify /tmp/broken.service)" "xoq-missing"
unit=$(cat "$PKG_ROOT/usr/lib/systemd/system/xoq-server.service")
for line in User=xoq SupplementaryGroups="dialout video audio" NoNewPrivileges=yes ProtectSystem=strict \
	StateDirectory=xoq StateDirectoryMode=0700 Restart=on-failure CapabilityBoundingSet= ; do
	check_has "xoq-server.service: $line" "$unit" $'\n'"$line"$'\n'
done
check_eq "xoq-server.service: no ambient capability" "$(grep '^AmbientCapabilities=' <<<"$unit")" "AmbientCapabilities="
exposure=$(in_root systemd-analyze security --offline=true /usr/lib/systemd/system/xoq-server.service 2>&1 |
	sed -n 's/.*Overall exposure level for xoq-server.service: \([0-9.]*\).*/\1/p')
check "systemd-analyze security: exposure ${exposure:-?} <= 3.0" awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 3.0) }'

# The binaries, man pages and completions work.
check_has "xoq-server --help" "$(in_root xoq-server --help 2>&1)" "Serve this robot's hardware"
check_has "xoq-mount --help" "$(in_root xoq-mount --help 2>&1)" "Mount a remote robot's hardware"
man_page() { in_root env MANPAGER=cat MANWIDTH=100 man "$@" 2>&1; }
check_has "man xoq-mount" "$(man_page xoq-mount)" "xoq-mount - Mount a remote robot's hardware"
check_has "man xoq-server" "$(man_page xoq-server)" "xoq-server-authorize(1)"
check_has "man xoq-server-authorize" "$(man_page xoq-server-authorize)" "--read-only"
check_has "whatis xoq-server (man-db indexed it)" "$(in_root whatis xoq-server 2>&1)" "xoq-server (1)"
complete_word() { # complete_word BIN WORD -> bash completion's candidates for `BIN WORD<TAB>`
	in_root bash -c '. /usr/share/bash-completion/completions/$0
		fn=$(complete -p "$0" | sed -n "s/.* -F \([^ ]*\) .*/\1/p")
		COMP_WORDS=("$0" "$1"); COMP_CWORD=1; COMP_LINE="$0 $1"; COMP_POINT=${#COMP_LINE}
		"$fn" "$0" "$1" "$0"; echo "${COMPREPLY[*]}"' "$1" "$2" 2>&1
}
check_eq "bash completes 'xoq-server auth'" "$(complete_word xoq-server auth)" "authorize"
check_eq "bash completes 'xoq-mount um'" "$(complete_word xoq-mount um)" "umount"
check_eq "zsh completion header" "$(head -n1 "$PKG_ROOT/usr/share/zsh/vendor-completions/_xoq-server")" "#compdef xoq-server"
check "fish completion" grep -q '^complete -c xoq-mount ' "$PKG_ROOT/usr/share/fish/vendor_completions.d/xoq-mount.fish"

# The service user can use what the package set up: config, key, client list.
as_service() { # the service's own command line, as user xoq, with another subcommand
	in_root runuser -u xoq -- xoq-server --config /etc/xoq/server.toml --key /var/lib/xoq/server.key \
		--authorized /etc/xoq/authorized_clients.toml "$@"
}
id0=$(server id 2>/dev/null)
check "xoq-server id: the key made at install ($id0)" grep -qxE '[0-9a-f]{64}' <<<"$id0"
check_eq "the service user reads config and key: same id" "$(as_service id 2>&1)" "$id0"
check "the service user reads the client list" as_service clients
cid=$(in_root xoq-mount id 2>/dev/null)
check "xoq-mount id ($cid)" grep -qxE '[0-9a-f]{64}' <<<"$cid"
check_eq "xoq-mount id (root) made /var/lib/xoq-mount/client.key" "$(mode /var/lib/xoq-mount/client.key)" "root:root 600"
check_eq "/var/lib/xoq-mount is root's alone" "$(mode /var/lib/xoq-mount)" "root:root 700"
check_not "no client key in the service user's /var/lib/xoq" test -e "$PKG_ROOT/var/lib/xoq/client.key"
check_has "authorize a client" "$(server authorize "$cid" --comment pkg-test 2>&1)" "authorized"
check "fix-perms gives the client list back to xoq" in_root /usr/libexec/xoq/xoq-server-fix-perms
check_eq "client list after authorize + fix-perms" "$(mode /etc/xoq/authorized_clients.toml)" "root:xoq 640"

keep_sums() { for f in /var/lib/xoq/server.key /var/lib/xoq-mount/client.key /etc/xoq/authorized_clients.toml; do sum "$f"; done; }
sums0=$(keep_sums)
passwd0=$(in_root getent passwd xoq)

echo "== pkg: reinstall $VERSION"
check "dpkg -i again" dpkg_ok -i /tmp/debs/xoq-server_"$VERSION"_amd64.deb /tmp/debs/xoq-mount_"$VERSION"_amd64.deb
check_eq "keys and client list unchanged" "$(keep_sums)" "$sums0"
check_eq "same user" "$(in_root getent passwd xoq)" "$passwd0"
check_eq "one xoq user, one xoq group" "$(grep -c '^xoq:' "$PKG_ROOT/etc/passwd") $(grep -c '^xoq:' "$PKG_ROOT/etc/group")" "1 1"
check_eq "same groups" "$(groups_of_xoq)" "audio dialout plugdev video xoq "
check_eq "/var/lib/xoq still xoq 700" "$(mode /var/lib/xoq)" "xoq:xoq 700"

echo "== pkg: upgrade to ${VERSION%-*}-2 with a local config edit"
echo "# local edit (pkg test)" >>"$PKG_ROOT/etc/xoq/server.toml"
# As a version before the key moved left it: the client key in /var/lib/xoq.
mv "$PKG_ROOT/var/lib/xoq-mount/client.key" "$PKG_ROOT/var/lib/xoq/client.key"
conf0=$(sum /etc/xoq/server.toml)
check "dpkg -i 0.1.0-2" dpkg_ok -i /tmp/next/xoq-server_"${VERSION%-*}"-2_amd64.deb /tmp/next/xoq-mount_"${VERSION%-*}"-2_amd64.deb
check_eq "xoq-server upgraded" "$(status xoq-server)" "install ok installed ${VERSION%-*}-2"
check_eq "xoq-mount upgraded" "$(status xoq-mount)" "install ok installed ${VERSION%-*}-2"
check_eq "local config edit kept" "$(sum /etc/xoq/server.toml)" "$conf0"
check_eq "keys and client list kept (the client key moved to /var/lib/xoq-mount)" "$(keep_sums)" "$sums0"
check_not "no client key left in /var/lib/xoq" test -e "$PKG_ROOT/var/lib/xoq/client.key"
check_eq "same client id after the move" "$(in_root xoq-mount id 2>/dev/null)" "$cid"
check_eq "same server id" "$(server id 2>/dev/null)" "$id0"
check_has "client still authorized" "$(server clients 2>&1)" "$cid"
check "still enabled" test -L "$PKG_ROOT/etc/systemd/system/multi-user.target.wants/xoq-server.service"
check_eq "same groups after upgrade" "$(groups_of_xoq)" "audio dialout plugdev video xoq "

echo "== pkg: remove"
check "dpkg -r xoq-mount xoq-server" dpkg_ok -r xoq-mount xoq-server
check_eq "xoq-server config-files only" "$(status xoq-server)" "deinstall ok config-files ${VERSION%-*}-2"
check_eq "xoq-mount config-files only" "$(status xoq-mount)" "deinstall ok config-files ${VERSION%-*}-2"
for f in /usr/bin/xoq-server /usr/bin/xoq-mount /usr/lib/systemd/system/xoq-server.service \
	/lib/udev/rules.d/60-xoq.rules /lib/modprobe.d/xoq.conf /usr/share/man/man1/xoq-mount.1.gz; do
	check_not "$f removed" test -e "$PKG_ROOT$f"
done
check_eq "config kept, with the local edit" "$(sum /etc/xoq/server.toml)" "$conf0"
check_eq "keys and client list kept" "$(keep_sums)" "$sums0"
check "user kept" in_root getent passwd xoq

echo "== pkg: reinstall after remove"
check "dpkg -i 0.1.0-2" dpkg_ok -i /tmp/next/xoq-server_"${VERSION%-*}"-2_amd64.deb /tmp/next/xoq-mount_"${VERSION%-*}"-2_amd64.deb
check_eq "the robot keeps its id" "$(server id 2>/dev/null)" "$id0"
check_eq "local config edit still there" "$(sum /etc/xoq/server.toml)" "$conf0"
check "enabled again" test -L "$PKG_ROOT/etc/systemd/system/multi-user.target.wants/xoq-server.service"

echo "== pkg: purge"
check "dpkg -P xoq-mount" dpkg_ok -P xoq-mount
check_not "client key deleted" test -e "$PKG_ROOT/var/lib/xoq-mount/client.key"
check "server key kept while xoq-server is installed" test -f "$PKG_ROOT/var/lib/xoq/server.key"
check "dpkg -P xoq-server" dpkg_ok -P xoq-server
check_not "dpkg knows xoq-server no more" in_root dpkg-query -W xoq-server
check_not "dpkg knows xoq-mount no more" in_root dpkg-query -W xoq-mount
for f in /etc/xoq /var/lib/xoq /etc/systemd/system/multi-user.target.wants/xoq-server.service; do
	check_not "$f deleted" test -e "$PKG_ROOT$f"
done
check_eq "no file named *xoq* left" \
	"$(in_root find / -xdev \( -path /tmp -o -path /var/cache/man \) -prune -o -name '*xoq*' -print)" ""
check_eq "file system as before the install" "$(diff <(echo "$before") <(snapshot) || true)" ""
check "the xoq user stays (Debian policy)" in_root getent passwd xoq

pkg_summary
