#!/usr/bin/env bash
# Builds the baseline of the side-by-side CAN benchmark (tests/vm/bench/can-hub-compare.sh): can-hub's QUIC
# datagram tunnel (spike/e0-quic-datagram/tunnel.c, the program behind its published 91 us p99
# one-way at 5000 frames/s) into target/can-hub/, with what it needs:
# - ngtcp2 1.11.0 with its GnuTLS crypto helper, built from Debian's source package (trixie's
#   pool; checked against the sha256 of its Sources index). Debian 12 ships 0.12, which can-hub
#   found to wedge datagram-only connections (its RESULTS.md); its figures are from 1.23.
# - GnuTLS from Debian 12 (libgnutls28-dev; installed if missing).
# - A self-signed certificate for the tunnel's server (target/can-hub/cert.pem, key.pem).
# can-hub's source is not part of this repository: give a checkout or a bare git directory.
#
# Usage: scripts/build-can-hub.sh CAN_HUB_DIR
#   e.g. scripts/build-can-hub.sh /work/.mirror/can-hub-io+can-hub/repo
set -euo pipefail
src=${1:?usage: build-can-hub.sh CAN_HUB_DIR (a can-hub checkout or bare git directory)}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$root/target/can-hub
NGTCP2=1.11.0
NGTCP2_SHA256=382c15bf66b630f26021631b25b7eb1feac42c67c1d6826189d61091dfaa4d09
NGTCP2_URL=http://deb.debian.org/debian/pool/main/n/ngtcp2/ngtcp2_$NGTCP2.orig.tar.xz
mkdir -p "$out"

if ! dpkg-query -W -f='${Status}' libgnutls28-dev 2>/dev/null | grep -q "install ok installed"; then
  echo "build-can-hub: installing libgnutls28-dev"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libgnutls28-dev >/dev/null
fi

# tunnel.c from the checkout, or from the bare repository's HEAD.
spike=spike/e0-quic-datagram/tunnel.c
if [ -f "$src/$spike" ]; then
  cp "$src/$spike" "$out/tunnel.c"
elif git --git-dir="$src" cat-file -e "HEAD:$spike" 2>/dev/null; then
  git --git-dir="$src" show "HEAD:$spike" >"$out/tunnel.c"
else
  echo "build-can-hub: no $spike in $src" >&2
  exit 1
fi

if [ ! -f "$out/ngtcp2/lib/libngtcp2_crypto_gnutls.a" ]; then
  tarball=$out/ngtcp2_$NGTCP2.orig.tar.xz
  [ -f "$tarball" ] || curl -fsSL -o "$tarball" "$NGTCP2_URL"
  echo "$NGTCP2_SHA256  $tarball" | sha256sum -c --quiet
  rm -rf "$out/ngtcp2-src" && mkdir -p "$out/ngtcp2-src"
  tar -xJf "$tarball" -C "$out/ngtcp2-src" --strip-components=1
  (
    cd "$out/ngtcp2-src"
    ./configure -q --prefix="$out/ngtcp2" --enable-lib-only --with-gnutls \
      --disable-shared --enable-static >/dev/null
    make -s -j"$(nproc)" >/dev/null
    make -s install >/dev/null
  )
fi

# shellcheck disable=SC2046 # pkg-config's flags are meant to split
gcc -O2 -g -Wall -I"$out/ngtcp2/include" -o "$out/tunnel" "$out/tunnel.c" \
  "$out/ngtcp2/lib/libngtcp2_crypto_gnutls.a" "$out/ngtcp2/lib/libngtcp2.a" \
  $(pkg-config --libs gnutls)

[ -f "$out/cert.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout "$out/key.pem" \
  -out "$out/cert.pem" -days 3650 -subj "/CN=localhost" 2>/dev/null
echo "build-can-hub: $out/tunnel (ngtcp2 $NGTCP2, GnuTLS $(pkg-config --modversion gnutls))"
