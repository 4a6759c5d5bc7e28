#!/usr/bin/env bash
# Checks the systemd unit for relay and bootstrap servers
# (packaging/systemd/conclaved.service) and its sample config:
#  - systemd-analyze verify accepts it, with ExecStart pointed at the built
#    conclaved (an operator installs it in /usr/local/bin; this machine has
#    the build), and its offline security exposure stays low;
#  - every flag of its ExecStart is one conclaved --help lists;
#  - its ExecStart, as written, starts a node with the sample config:
#    systemd's directories become scratch folders, the metrics port becomes
#    port 0 and the sample's public listen addresses are replaced by loopback
#    ones (tests bind nothing else). It runs under the part of the unit's
#    sandbox a process can impose on itself (sandboxed.py: the system call
#    filter, address families, no W+X memory, no new privileges), so a
#    system call or socket the node needs and the unit forbids fails here.
# Needs conclaved and conclavectl in $CARGO_TARGET_DIR/debug and systemd's
# tools (make service-test provides them).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$HOME/.cache/conclave/target}"
bin="$target/debug/conclaved"
ctl="$target/debug/conclavectl"
unit="$root/packaging/systemd/conclaved.service"
config="$root/packaging/systemd/config.toml"
installed_bin=/usr/local/bin/conclaved
# Highest acceptable `systemd-analyze security` exposure, in tenths (the
# unit scores 1.1 of 10: it needs the network, nothing else).
max_exposure=15

WORK="$(mktemp -d "${TMPDIR:-/tmp}/conclave-service.XXXXXX")"
# shellcheck source=tests/lib/conclaved.sh
source "$root/tests/lib/conclaved.sh"
trap 'stop_all_conclaved; rm -rf "$WORK"' EXIT

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
for tool in systemd-analyze "$bin" "$ctl"; do
  command -v "$tool" >/dev/null || { echo "service test: $tool is missing; run make service-test" >&2; exit 1; }
done

# --- systemd-analyze ---------------------------------------------------------
check "ExecStart runs $installed_bin" grep -q "^ExecStart=$installed_bin " "$unit"
sed "s#^ExecStart=$installed_bin #ExecStart=$bin #" "$unit" >"$WORK/conclaved.service"
verify_status=0
systemd-analyze verify "$WORK/conclaved.service" >"$WORK/verify.out" 2>&1 || verify_status=$?
cat "$WORK/verify.out"
check "systemd-analyze verify accepts the unit, without a warning" \
  test "$verify_status" = 0 -a ! -s "$WORK/verify.out"
security_status=0
systemd-analyze security --offline=true --threshold="$max_exposure" "$WORK/conclaved.service" \
  >"$WORK/security.out" 2>&1 || security_status=$?
grep -E '^✗|Overall exposure' "$WORK/security.out" || true
check "systemd-analyze security rates its exposure at most $((max_exposure / 10)).$((max_exposure % 10))" \
  test "$security_status" = 0

# --- ExecStart ---------------------------------------------------------------
# The command line, continuation lines joined.
exec_start="$(sed -n '/^ExecStart=/,/[^\\]$/p' "$unit" | sed 's/\\$//; s/^ExecStart=//' | tr '\n' ' ')"
read -r -a argv <<<"$exec_start"
help="$("$bin" --help)"
unknown=()
for word in "${argv[@]}"; do
  if [[ $word == --* ]] && ! grep -qE -- "^ +(-[a-zA-Z], )?${word}( |$)" <<<"$help"; then unknown+=("$word"); fi
done
check "conclaved --help lists every flag of ExecStart${unknown:+ (not: ${unknown[*]})}" test "${#unknown[@]}" = 0

check "conclaved --check-config accepts the sample config" "$bin" --check-config "$config"
printf 'relay_server = true\nmax_conections = 5\n' >"$WORK/typo.toml"
typo_status=0
"$bin" --check-config "$WORK/typo.toml" >/dev/null 2>"$WORK/typo.err" || typo_status=$?
check "conclaved --check-config exits 1 on a misspelt key" test "$typo_status" = 1
check "conclaved --check-config names the misspelt key" grep -q max_conections "$WORK/typo.err"

mkdir -m 700 "$WORK/state" "$WORK/run"
mkdir "$WORK/etc"
cp "$config" "$WORK/etc/config.toml"
sandbox=("$root/tests/package/sandboxed.py" "$unit")
forbidden="$("${sandbox[@]}" /usr/bin/python3 -c '
import mmap, os, socket
for name, attempt in [
    ("AF_PACKET socket", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM)),
    ("chroot (@privileged)", lambda: os.chroot("/")),
    ("W+X memory", lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC)),
]:
    try:
        attempt()
        print(name)
    except OSError:
        pass
')"
check "the sandbox refuses what the unit forbids${forbidden:+ (allowed: $forbidden)}" test -z "$forbidden"
run=("${sandbox[@]}" "$bin")
for word in "${argv[@]:1}"; do
  word="${word//\$\{STATE_DIRECTORY\}/$WORK/state}"
  word="${word//\$\{CONFIGURATION_DIRECTORY\}/$WORK/etc}"
  word="${word//\$\{RUNTIME_DIRECTORY\}/$WORK/run}"
  [[ $word =~ ^127\.0\.0\.1:[0-9]+$ ]] && word=127.0.0.1:0
  run+=("$word")
done
run+=(--listen /ip4/127.0.0.1/udp/0/quic-v1 --listen /ip4/127.0.0.1/tcp/0)
echo "running: ${run[*]}"
check "the unit's ExecStart starts a node with the sample config, sandboxed" start_conclaved relay "${run[@]}"
if [ -n "${READY[relay]:-}" ]; then
  control="$(ready_field relay .control)"
  check "its control socket is in RuntimeDirectory" test "$control" = "$WORK/run/control.sock"
  check "its key file was created 0600 in StateDirectory" \
    test "$(stat -c %a "$WORK/state/identity.key" 2>/dev/null)" = 600
  check "its log files are in StateDirectory" bash -c "ls '$WORK/state/logs/'conclaved* >/dev/null"
  "$ctl" --control "$control" stats --json >"$WORK/stats.json"
  listens_twice() { jq -e '.listen_addrs | length == 2' "$WORK/stats.json" >/dev/null; }
  check "it reports its stats over the control socket" listens_twice
  check "it serves metrics" bash -c "curl -sf '$(ready_field relay .metrics)' | grep -q '^libp2p_relay_events'"
  # The relay server is on (sample config): a second node gets a reservation.
  start_conclaved client "$bin" --data-dir "$WORK/client" --signing-keys none --no-mdns \
    --listen /ip4/127.0.0.1/udp/0/quic-v1 || true
  if [ -n "${READY[client]:-}" ]; then
    "$ctl" --data-dir "$WORK/client" connect "$(ready_field relay '.listen_addrs[0]')" >/dev/null
    reserved=no
    for _ in $(seq 100); do # a reservation has no event to wait on: poll, 10 s at most
      if "$ctl" --data-dir "$WORK/client" nat --json | jq -e '.reservations | length > 0' >/dev/null; then
        reserved=yes
        break
      fi
      sleep 0.1
    done
    check "a client gets a relay reservation from it" test "$reserved" = yes
  fi
  stop_conclaved client
  "$ctl" --control "$control" shutdown >/dev/null
  stop_conclaved relay
  check "it removed its control socket when it stopped" test ! -e "$control"
fi

echo "service test: $passed passed, $failed failed"
[ "$failed" = 0 ]
