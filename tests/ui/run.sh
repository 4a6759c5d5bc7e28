#!/usr/bin/env bash
# Runs the desktop UI tests (or, with "bench", the UI benchmarks) headless:
# an Xvfb display, a private D-Bus session with an unlocked gnome-keyring
# (the keychain the app will use), and fresh XDG folders so nothing of the
# user's own profile is touched. Screenshots land in tests/ui/screenshots/.
#
# The screen is the size of the app window (no window manager places it
# elsewhere), so an X11 screenshot shows just the app.
#
# Needs: the built app, conclaved and conclavectl in $CARGO_TARGET_DIR/debug,
# tauri-driver, and npm packages in tests/ui (make test does all of that).
set -euo pipefail
cd "$(dirname "$0")"

mode="${1:-test}"
case "$mode" in
  # UI_SPEC=specs/NAME.spec.mjs runs one spec file.
  test) spec_args=(${UI_SPEC:+--spec "$UI_SPEC"}) ;;
  bench) spec_args=(--spec bench/bench.spec.mjs); export UI_TEST_TIMEOUT_MS="${UI_TEST_TIMEOUT_MS:-600000}" ;;
  *) echo "usage: $0 [test|bench]" >&2; exit 2 ;;
esac

work="$(mktemp -d "${TMPDIR:-/tmp}/conclave-ui.XXXXXX")"
cleanup() {
  # GTK may start the document portal, which mounts a FUSE folder here.
  if mountpoint -q "$work/runtime/doc" 2>/dev/null; then
    fusermount3 -u "$work/runtime/doc" 2>/dev/null || fusermount -u "$work/runtime/doc" 2>/dev/null || umount -l "$work/runtime/doc" 2>/dev/null || true
  fi
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

export XDG_DATA_HOME="$work/data" XDG_CACHE_HOME="$work/cache" XDG_CONFIG_HOME="$work/config"
export XDG_RUNTIME_DIR="$work/runtime"
mkdir -p "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$XDG_CONFIG_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
export CONCLAVE_UI_WORK="$work/ui"
mkdir -p "$CONCLAVE_UI_WORK"
# Nothing may leave the machine: no multicast discovery, loopback only (the
# app's test profile listens on 127.0.0.1, see wdio.conf.mjs).
export P2P_MDNS=0
# No GPU under Xvfb: software rendering without DMA-BUF.
export WEBKIT_DISABLE_DMABUF_RENDERER=1 WEBKIT_DISABLE_COMPOSITING_MODE=1 LIBGL_ALWAYS_SOFTWARE=1
export NO_AT_BRIDGE=1

# The bench measures a bare web view first: the engine's memory floor.
if [ "$mode" = bench ]; then
  export CONCLAVE_WEBVIEW_FLOOR="$work/webview-floor" CONCLAVE_MEMORY_FLOOR="$work/memory-floor.json"
  # shellcheck disable=SC2046 # pkg-config prints several flags
  cc -O2 -o "$CONCLAVE_WEBVIEW_FLOOR" bench/webview-floor.c $(pkg-config --cflags --libs webkit2gtk-4.1 gtk+-3.0)
fi

inner='
  set -euo pipefail
  eval "$(printf conclave-test | gnome-keyring-daemon --unlock --components=secrets)"
  eval "$(gnome-keyring-daemon --start --components=secrets)"
  export GNOME_KEYRING_CONTROL SSH_AUTH_SOCK
  if [ -n "${CONCLAVE_WEBVIEW_FLOOR:-}" ]; then
    node bench/floor.mjs "$CONCLAVE_WEBVIEW_FLOOR" "$CONCLAVE_MEMORY_FLOOR"
  fi
  exec npx --no-install wdio run wdio.conf.mjs "$@"
'
status=0
xvfb-run --auto-servernum --server-args="-screen 0 1280x820x24" \
  dbus-run-session -- bash -c "$inner" wdio "${spec_args[@]}" || status=$?
exit "$status"
