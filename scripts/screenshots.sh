#!/usr/bin/env bash
# Rewrites the README's pictures (assets/*.png) from a run of the desktop UI
# tests, so they always show the app as it is. Each picture is the UI
# tests' screenshot of one view, named below; a screenshot the tests no
# longer take fails this script instead of leaving a stale picture.
# Needs what `make ui-test` needs (make screenshots provides it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

# assets/NAME.png  <-  the UI tests' screenshot
pictures=(
  "network-health:04-network-health"
  "peers:02-peers-connected"
  "topology:03-topology"
  "who-may-connect:11-peer-denied"
  "sessions:21-session-signed"
  "invitation:22-invitation"
  "coinjoin:32-coinjoin-mixed"
  "identity:01-identity"
  "settings:07-settings-after-restart"
  "logs:14-logs"
)

shots="$(mktemp -d "${TMPDIR:-/tmp}/conclave-screenshots.XXXXXX")"
trap 'rm -rf "$shots"' EXIT
SCREENSHOT_DIR="$shots" "$root/tests/ui/run.sh" test

missing=()
for entry in "${pictures[@]}"; do
  name="${entry%%:*}" shot="${entry#*:}"
  if [ -f "$shots/$shot.png" ]; then
    cp "$shots/$shot.png" "$root/assets/$name.png"
  else
    missing+=("$shot")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "screenshots: the UI tests took no ${missing[*]}; update scripts/screenshots.sh" >&2
  exit 1
fi
# Every picture the README shows is one of these.
for used in $(grep -o 'assets/[a-z-]*\.png' "$root/README.md" | sort -u); do
  [ -f "$root/$used" ] || { echo "screenshots: README shows $used, which nothing makes" >&2; exit 1; }
done
echo "screenshots: ${#pictures[@]} pictures in assets/"
