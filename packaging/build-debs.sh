#!/bin/sh
# Builds the Debian packages xoq-server and xoq-mount, then checks them: first the man pages
# and shell completions (`BIN generate-docs`, into target/<profile>/xoq-docs/), then `cargo deb`.
#
#   packaging/build-debs.sh                  # release build, then package into target/debian/
#   NO_BUILD=1 packaging/build-debs.sh       # package the existing target/release binaries
#   PROFILE=dev NO_BUILD=1 DEB_OUT=target/pkg/debs packaging/build-debs.sh
#                                            # package the debug build (what the tests do)
#   DEB_REVISION=2 FAST=1 ...                # version 0.1.0-2 (tests/pkg: an upgrade),
#                                            # fast compression
#
# Needs cargo-deb (installed here if missing, via `cargo install --locked`) and dpkg-deb.
# Prints the built .deb paths last, one a line, after "== built:".
set -eu

cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-release}
OUT=${DEB_OUT:-target/debian}
case $PROFILE in
    dev) pdir=debug ;;
    *) pdir=$PROFILE ;;
esac
bindir=${CARGO_TARGET_DIR:-target}/$pdir

if ! cargo deb --version >/dev/null 2>&1; then
    echo "== installing cargo-deb"
    cargo install cargo-deb --locked
fi

if [ "${NO_BUILD:-0}" != 1 ]; then
    echo "== cargo build --profile $PROFILE -p xoq-server -p xoq-mount"
    cargo build --profile "$PROFILE" -p xoq-server -p xoq-mount
fi

# The browser viewer the server package ships (web/dist), from the lock file.
if [ ! -f web/dist/viewer.js ] || [ "${NO_BUILD:-0}" != 1 ]; then
    echo "== web viewer (npm ci, npm run build)"
    (cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
fi

# Man pages (gzip -n: no name or time stamp, so the same input gives the same package) and
# completions, where the assets of [package.metadata.deb] expect them.
for bin in xoq-server xoq-mount; do
    [ -x "$bindir/$bin" ] || { echo "ERROR: $bindir/$bin is missing (build it first)"; exit 1; }
    docs=$bindir/xoq-docs/$bin
    rm -rf "$docs"
    "$bindir/$bin" generate-docs "$docs" >/dev/null
    gzip -9n "$docs"/man/*.1
done

extra=""
[ -z "${DEB_REVISION:-}" ] || extra="$extra --deb-revision $DEB_REVISION"
[ "${FAST:-0}" != 1 ] || extra="$extra --fast"
debs=""
for pkg in xoq-server xoq-mount; do
    echo "== cargo deb -p $pkg --no-build --strip --profile $PROFILE -o $OUT$extra"
    # --strip: the release profile keeps debug info (debug = 1); packaged binaries drop it
    # (110 MB -> 15 MB). cargo-deb strips a copy, target/release is left alone.
    # cargo-deb prints the path of the .deb last (a failure stops the script here).
    mkdir -p "$OUT"
    # shellcheck disable=SC2086 # $extra: zero or more words
    out=$(cargo deb -p "$pkg" --no-build --strip --profile "$PROFILE" -o "$OUT" $extra)
    deb=$(printf '%s\n' "$out" | tail -n 1)
    debs="$debs $deb"
done

fail=0
for deb in $debs; do
    echo "== $deb"
    dpkg-deb -I "$deb"
    dpkg-deb -c "$deb"
    tmp=$(mktemp -d)
    dpkg-deb -e "$deb" "$tmp"
    for s in preinst postinst prerm postrm; do
        [ -f "$tmp/$s" ] || continue
        if grep -q '#DEBHELPER#' "$tmp/$s"; then
            echo "ERROR: $s still contains #DEBHELPER#"; fail=1
        fi
        if sh -n "$tmp/$s"; then echo "ok: sh -n $s"; else fail=1; fi
    done
    rm -rf "$tmp"
done

if command -v systemd-analyze >/dev/null 2>&1; then
    echo "== systemd-analyze verify (units as packaged)"
    tmp=$(mktemp -d)
    for deb in $debs; do dpkg-deb -x "$deb" "$tmp"; done
    # Checks syntax; it also complains about /usr/bin/xoq-* missing on this host, so point
    # ExecStart at the extracted binaries.
    for u in "$tmp"/usr/lib/systemd/system/*; do
        sed -i "s#/usr/bin/xoq-#$tmp/usr/bin/xoq-#g; s#/usr/libexec/xoq/#$tmp/usr/libexec/xoq/#g" "$u"
    done
    # It prints (but exits 0 for) unknown keys and bad values: any output is a failure.
    out=$(cd "$tmp/usr/lib/systemd/system" && SYSTEMD_LOG_LEVEL=warning \
        systemd-analyze verify --man=no ./xoq-server.service ./xoq-server-authorized.path \
        ./xoq-server-authorized.service ./xoq-mount@example.service 2>&1) || fail=1
    if [ -n "$out" ]; then echo "$out"; fail=1; else echo "ok: units"; fi
    rm -rf "$tmp"
fi

[ "$fail" = 0 ] || { echo "FAILED"; exit 1; }
echo "== built:"
# shellcheck disable=SC2086 # one path a word
printf '%s\n' $debs
