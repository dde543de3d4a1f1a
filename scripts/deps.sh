#!/usr/bin/env bash
# Installs what building and testing XoQ mount needs on Debian 12 (run as root, or with sudo
# available). Safe to re-run: it only installs what is missing.
set -euo pipefail

# g++, nasm: OpenH264, built from source by the openh264 crate (nasm for its fast paths).
# debootstrap, lintian: the package tests (tests/pkg).
# libpipewire-0.3-dev, libspa-0.2-dev, libclang-dev: the mounter's PipeWire nodes (bindgen).
# libasound2-dev: the server's sound-card backend (ALSA, through cpal).
# cmake: libopus, built from the source the opus crate bundles.
# pipewire, pipewire-bin, wireplumber, dbus, dbus-user-session: the private PipeWire session the
# audio tests start (pw-record, pw-play, pw-cli, pw-dump, pw-loopback; WirePlumber needs a
# session bus); pipewire-alsa: ALSA's `pipewire` device, the sound card of the card-backend test.
# stress-ng: the load scripts/repeat-tests.sh --load puts on both cores.
# iproute2: the network namespaces of the tests over impaired links (tests/host netlab).
# nftables, openssl: the NAT routers and the relay's certificates of the NAT tests (natlab).
# ca-certificates: a CA bundle for moq-relay in the VM (it refuses to start without roots).
# chromium: the browser the viewer's test runs in (headless).
APT_PACKAGES=(chromium pkg-config stress-ng iproute2 nftables openssl ca-certificates libudev-dev socat picocom python3-serial coreutils g++ nasm debootstrap lintian
  libpipewire-0.3-dev libspa-0.2-dev libclang-dev libasound2-dev cmake
  pipewire pipewire-bin pipewire-alsa wireplumber dbus dbus-user-session)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node and npm build the browser viewer (web/). A machine that has Node from elsewhere (its
# own npm) keeps it; otherwise Debian's.
if ! command -v npm >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "deps: installing nodejs npm"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "deps: cargo is missing: install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "deps: installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

# The self-hosted relay of the NAT tests (tests/host natlab): iroh's own `iroh-relay` server, at
# the version of the iroh this workspace uses (Cargo.lock), so the relay protocol matches.
IROH_RELAY_VERSION=1.4.1
if ! iroh-relay --version 2>/dev/null | grep -qx "iroh-relay $IROH_RELAY_VERSION"; then
  echo "deps: building iroh-relay $IROH_RELAY_VERSION (a few minutes, once)"
  cargo install iroh-relay --version "=$IROH_RELAY_VERSION" --features server --locked --quiet
fi

# The MoQ relay of the relay-transport tests (moq/tests): the real `moq-relay`, pinned. Not
# `--locked`: its lock file names crate versions the registry mirror here lacks, so its
# dependencies resolve afresh within their semver ranges. About 22 minutes on 2 cores, once.
MOQ_RELAY_VERSION=0.17.10
if ! moq-relay --version 2>/dev/null | grep -qx "moq-relay $MOQ_RELAY_VERSION"; then
  echo "deps: building moq-relay $MOQ_RELAY_VERSION (about 20 minutes, once)"
  cargo install moq-relay --version "=$MOQ_RELAY_VERSION" --quiet
fi
