#!/usr/bin/env bash
# Installs what building and testing Conclave needs on a Debian machine.
# Idempotent: anything already present is skipped, so repeated runs are fast.
set -euo pipefail

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo "$@"; else echo "setup: run as root or install sudo" >&2; exit 1; fi
  else
    "$@"
  fi
}

# Debian packages, by the command or file that shows each is installed.
packages=(build-essential pkg-config curl ca-certificates git
  # The desktop app (Tauri 2 on WebKitGTK 4.1).
  libwebkit2gtk-4.1-dev libssl-dev librsvg2-dev libayatana-appindicator3-dev libxdo-dev file
  # Its UI tests: a virtual display and its screenshots, the WebDriver for
  # WebKitGTK, a session bus and a keychain daemon.
  xvfb xauth imagemagick webkit2gtk-driver gnome-keyring dbus dbus-x11
  # Keychain tests (gdbus locks the test keyring) and the test that reads the
  # QUIC handshake off the wire.
  libglib2.0-bin tshark
  # The NAT test network (tests/nat): namespaces, NAT rules, JSON answers.
  iproute2 nftables jq
  # The regtest chain for tests (tests/chain) runs in a Python virtualenv.
  python3 python3-venv
  # The package tests (tests/package): the desktop entry's validator,
  # systemd-analyze for the service unit, and seccomp for Debian's python3
  # to impose the unit's system call filter.
  desktop-file-utils systemd python3-seccomp)
# Node.js and npm build the UI and run its tests; keep an installed one.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  need_root apt-get update -qq
  # tshark asks whether non-root users may capture; answer no, unasked.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | need_root debconf-set-selections
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# The Rust toolchain (rustup from crates' usual installer path if cargo is absent).
if ! command -v cargo >/dev/null; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing the Rust toolchain"
    need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustup || true
    rustup default stable
  fi
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

# JavaScript packages, as locked; install scripts stay off (they would try to
# download browser drivers; esbuild ships its binary as a package). npm ci
# refuses a lock file that lacks other platforms' optional packages (as one
# made through a registry mirror that only carries Linux builds does), so
# fall back to an install that keeps package-lock.json as it is.
root="$(cd "$(dirname "$0")/.." && pwd)"
for dir in ui tests/ui tests/mcp; do
  if [ ! -d "$root/$dir/node_modules" ] || [ "$root/$dir/package-lock.json" -nt "$root/$dir/node_modules/.package-lock.json" ]; then
    echo "setup: npm ci in $dir"
    (cd "$root/$dir" && { npm ci --ignore-scripts --no-audit --no-fund --loglevel=error 2>/dev/null ||
      npm install --no-save --ignore-scripts --no-audit --no-fund --loglevel=error; })
  fi
done

# promtool and prometheus (tests/metrics) from Debian's prometheus package,
# unpacked into a cache rather than installed: installing it would add a
# Prometheus server that systemd starts, listening on every interface.
prometheus_root="$HOME/.cache/conclave/prometheus"
if [ ! -x "$prometheus_root/usr/bin/promtool" ]; then
  echo "setup: unpacking Debian's prometheus package into $prometheus_root"
  download="$(mktemp -d)"
  # apt downloads as its own user (_apt) where that user may write.
  if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$download"; fi
  download_prometheus() { (cd "$download" && apt-get download -qq prometheus); }
  download_prometheus || { need_root apt-get update -qq && download_prometheus; }
  mkdir -p "$prometheus_root"
  dpkg-deb -x "$download"/prometheus_*.deb "$prometheus_root"
  rm -rf "$download"
fi

# tauri-driver (the WebDriver bridge of the UI tests), kept in a cache.
driver_root="${CONCLAVE_TOOLS:-$HOME/.cache/conclave/cargo-bin}"
if [ ! -x "$driver_root/bin/tauri-driver" ]; then
  echo "setup: installing tauri-driver into $driver_root"
  CARGO_TARGET_DIR="$HOME/.cache/conclave/tauri-driver-build" \
    cargo install tauri-driver --locked --version ^2.1 --root "$driver_root"
fi

# cargo-deny (make lint checks licenses, bans and sources), in the same cache.
if [ ! -x "$driver_root/bin/cargo-deny" ]; then
  echo "setup: installing cargo-deny into $driver_root"
  CARGO_TARGET_DIR="$HOME/.cache/conclave/tauri-driver-build" \
    cargo install cargo-deny --locked --version =0.20.2 --root "$driver_root"
fi

# The regtest chain for tests (tests/chain): py-bitcoinkernel (Bitcoin Core's
# libbitcoinkernel) and its other packages, as pinned, in a virtualenv. Wheels
# only: building libbitcoinkernel from source is not what setup should do.
venv="${CONCLAVE_VENV:-$HOME/.cache/conclave/venv}"
chain_requirements="$root/tests/chain/requirements.txt"
if ! "$venv/bin/python" -c "" 2>/dev/null; then
  echo "setup: creating the Python virtualenv $venv"
  python3 -m venv "$venv"
fi
if ! cmp -s "$chain_requirements" "$venv/conclave-requirements.txt" ||
  ! "$venv/bin/python" -c "import pbk, coincurve, pytest" 2>/dev/null; then
  echo "setup: installing tests/chain/requirements.txt into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: -r "$chain_requirements"
  cp "$chain_requirements" "$venv/conclave-requirements.txt"
fi
