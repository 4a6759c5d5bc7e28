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
packages=(build-essential pkg-config curl ca-certificates git)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  need_root apt-get update -qq
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
