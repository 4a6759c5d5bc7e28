#!/usr/bin/env bash
# Installs the Debian package `make package` built into this machine, checks
# what it installed, launches the installed /usr/bin/conclave under
# tauri-driver (tests/ui's machinery: Xvfb, a private D-Bus session with
# gnome-keyring, fresh XDG folders) and checks it shows its PeerId, then
# purges the package and checks that none of it is left.
#
# Needs root (dpkg), the .deb in $CARGO_TARGET_DIR/debug/bundle/deb/, and
# what tests/ui/run.sh needs (make package-test provides all of it).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$HOME/.cache/conclave/target}"
version="$(jq -r .version "$root/src-tauri/tauri.conf.json")"
deb="${CONCLAVE_DEB:-$target/debug/bundle/deb/Conclave_${version}_$(dpkg --print-architecture).deb}"
package=conclave

passed=0
failed=0
check() { # check DESCRIPTION COMMAND...: runs COMMAND, counts and reports it.
  local what="$1"
  shift
  if "$@"; then
    echo "ok: $what"
    passed=$((passed + 1))
  else
    echo "FAILED: $what" >&2
    failed=$((failed + 1))
  fi
}

if [ "$(id -u)" -ne 0 ]; then
  echo "package test: dpkg needs root; run it as root (CI does)" >&2
  exit 1
fi
if [ ! -f "$deb" ]; then
  echo "package test: $deb is missing; run make package first" >&2
  exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/conclave-package.XXXXXX")"
cleanup() {
  # Never leave the package installed, whatever failed.
  if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "installed"; then
    dpkg -P "$package" >/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# --- The package itself ----------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
depends="$(field Depends)"
recommends="$(field Recommends)"
echo "package: $(field Package) $(field Version), Depends: $depends; Recommends: $recommends"
check "it is the package named $package" test "$(field Package)" = "$package"
for needed in libwebkit2gtk-4.1-0 libgtk-3-0 libayatana-appindicator3-1; do
  check "it depends on $needed" grep -qw -- "$needed" <<<"$depends"
done
check "it recommends a Secret Service provider (gnome-keyring)" grep -qw gnome-keyring <<<"$recommends"
# Every name it depends on or recommends is a real Debian package.
for name in $(tr ',|' '\n\n' <<<"$depends, $recommends" | sed 's/(.*)//; s/ //g' | grep .); do
  check "$name is a package apt knows" bash -c "apt-cache policy '$name' | grep -q 'Candidate: [0-9]'"
done
# No maintainer scripts: removing the package can only remove its own files.
scripts="$(dpkg-deb --ctrl-tarfile "$deb" | tar -t | sed 's#^\./##' | grep -E '^(pre|post)(inst|rm)$' || true)"
check "it has no maintainer scripts" test -z "$scripts"

# Its files and folders, and a listing of its folders taken before it is
# installed: after the purge they must list the same again. Busy shared
# folders (/usr/bin, ...) are left out of the listing, where other packages
# may come and go meanwhile; its files there are checked one by one.
dpkg-deb -c "$deb" | awk '{ print substr($1, 1, 1), $6 }' | sed 's# \./# #; s# \([^/]\)# /\1#; s#/$##' >"$work/contents"
awk '$1 != "d" { print $2 }' "$work/contents" >"$work/files"
awk '$1 == "d" { print $2 }' "$work/contents" |
  grep -v -x -e / -e /usr -e /usr/bin -e /usr/share -e /usr/share/icons >"$work/dirs"
snapshot() { while read -r dir; do find "$dir" -maxdepth 1 2>/dev/null || true; done <"$work/dirs" | sort; }

if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q installed; then
  echo "package test: $package was installed already; purging it first"
  dpkg -P "$package" >/dev/null
fi
snapshot >"$work/before"

# --- Installed ---------------------------------------------------------------
dpkg -i "$deb" >"$work/dpkg-install.log" 2>&1 || { cat "$work/dpkg-install.log" >&2; exit 1; }
check "dpkg installed it" bash -c "dpkg-query -W -f='\${Status}' $package | grep -qx 'install ok installed'"
missing_files=0
while read -r f; do [ -e "$f" ] || { echo "missing after install: $f" >&2; missing_files=1; }; done <"$work/files"
check "every file it ships is in place" test "$missing_files" = 0
check "/usr/bin/conclave is executable" test -x /usr/bin/conclave
check "/usr/bin/conclave answers --help" bash -c "/usr/bin/conclave --help | grep -q -- --profile"

desktop=/usr/share/applications/Conclave.desktop
check "the desktop entry starts the installed binary with its icon" \
  bash -c "grep -qx 'Exec=conclave' $desktop && grep -qx 'Icon=conclave' $desktop"
if command -v desktop-file-validate >/dev/null; then
  check "desktop-file-validate accepts the desktop entry" desktop-file-validate "$desktop"
else
  echo "skipped: desktop-file-validate is not installed (desktop-file-utils)"
fi
for size in 32 64 128 256 512; do
  icon="/usr/share/icons/hicolor/${size}x${size}/apps/conclave.png"
  check "icon ${size}x${size} is a ${size}x${size} PNG" bash -c "file '$icon' | grep -q 'PNG image data, $size x $size'"
done
check "the scalable icon is an SVG" bash -c "file /usr/share/icons/hicolor/scalable/apps/conclave.svg | grep -q SVG"

# Each library the binary links resolves and comes from a package that the
# package's Depends pull in; so does the tray library, loaded at run time.
owner_of() { # the package that installed a library (dpkg knows one of its names)
  local path
  for path in "$1" "$(readlink -f "$1")" "${1#/usr}" "/usr${1#/usr}"; do
    # awk reads all of its input: an early exit would kill dpkg with SIGPIPE.
    dpkg -S "$path" 2>/dev/null | awk -F: 'NR == 1 { print $1 }' && return
  done
}
ldd /usr/bin/conclave >"$work/ldd"
check "every library /usr/bin/conclave links resolves" bash -c "! grep -q 'not found' '$work/ldd'"
apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances "$package" | grep -v '^ ' | tr -d '<>' | sort -u >"$work/closure"
uncovered=()
for lib in $(awk '/=> \// { print $3 }' "$work/ldd"); do
  owner="$(owner_of "$lib")"
  grep -qx -- "${owner:-none}" "$work/closure" || uncovered+=("$lib (${owner:-no package})")
done
check "every linked library comes from what it depends on${uncovered:+ (not: ${uncovered[*]})}" \
  test "${#uncovered[@]}" = 0
tray="$(ldconfig -p | awk '/libayatana-appindicator3\.so\.1 / && !found { print $NF; found = 1 }')"
tray_owner="$(if [ -n "$tray" ]; then owner_of "$tray"; fi)"
check "the tray library ${tray:-libayatana-appindicator3.so.1} comes from a package it depends on (${tray_owner:-none})" \
  grep -qw -- "${tray_owner:-none}" <<<"$depends"

# --- Launched ----------------------------------------------------------------
# Its default profile in run.sh's fresh XDG folders, listening on loopback
# only (run.sh turns mDNS off).
ui_status=0
P2P_LISTEN="/ip4/127.0.0.1/udp/0/quic-v1,/ip4/127.0.0.1/tcp/0" \
  CONCLAVE_APP=/usr/bin/conclave CONCLAVE_APP_ARGS='[]' \
  SCREENSHOT_DIR="${SCREENSHOT_DIR:-$root/tests/package/screenshots}" \
  UI_SPEC=../package/installed-app.spec.mjs \
  "$root/tests/ui/run.sh" test || ui_status=$?
check "the installed app starts under tauri-driver and shows its PeerId" test "$ui_status" = 0

# --- Purged ------------------------------------------------------------------
dpkg -P "$package" >"$work/dpkg-purge.log" 2>&1 || { cat "$work/dpkg-purge.log" >&2; exit 1; }
check "dpkg purged it" bash -c "! dpkg-query -W -f='\${Status}' $package 2>/dev/null | grep -q installed"
left=0
while read -r f; do [ ! -e "$f" ] || { echo "left after purge: $f" >&2; left=1; }; done <"$work/files"
check "none of its files is left" test "$left" = 0
snapshot >"$work/after"
check "its folders list what they listed before it was installed" diff -u "$work/before" "$work/after"

echo "package test: $passed passed, $failed failed"
[ "$failed" = 0 ]
