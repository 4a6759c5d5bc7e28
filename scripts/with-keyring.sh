#!/usr/bin/env bash
# Runs a command inside a private D-Bus session with a fresh gnome-keyring
# (Secret Service) whose login collection is unlocked, and fresh XDG folders,
# so tests use a real keychain without touching the user's own.
#   scripts/with-keyring.sh cargo test ...
set -euo pipefail

if [ -z "${CONCLAVE_KEYRING_SESSION:-}" ]; then
  scratch="$(mktemp -d "${TMPDIR:-/tmp}/conclave-keyring.XXXXXX")"
  trap 'rm -rf "$scratch"' EXIT
  mkdir -p "$scratch/data" "$scratch/cache" "$scratch/run" "$scratch/config"
  chmod 700 "$scratch/run"
  export XDG_DATA_HOME="$scratch/data" XDG_CACHE_HOME="$scratch/cache" \
         XDG_RUNTIME_DIR="$scratch/run" XDG_CONFIG_HOME="$scratch/config"
  export CONCLAVE_KEYRING_SESSION=1
  dbus-run-session -- "$0" "$@"
  exit $?
fi

# Inside the session: create and unlock the login keyring with a throwaway
# password, then serve the Secret Service on this bus.
eval "$(printf 'conclave-test' | gnome-keyring-daemon --unlock --components=secrets)"
eval "$(gnome-keyring-daemon --start --components=secrets)"
export CONCLAVE_KEYRING_TEST=1
exec "$@"
