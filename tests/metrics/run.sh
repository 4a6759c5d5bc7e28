#!/usr/bin/env bash
# Metrics people can look at, checked against live daemons on 127.0.0.1:
# a relay and two nodes that connect, reserve a relay slot, dial each other
# through the relay and hole-punch, gossip, send direct messages, use the DHT,
# disconnect and get refused, so the series the dashboard shows have values.
# Then:
#  - promtool check metrics lints each daemon's /metrics;
#  - promtool check config accepts packaging/prometheus/prometheus.yml;
#  - every series each query of packaging/grafana/conclaved.json reads is in
#    the daemons' output;
#  - a Prometheus started from the scrape example (its targets replaced by
#    the daemons) scrapes them, and every query of the dashboard, with
#    Grafana's variables filled in, returns data.
# Needs conclaved and conclavectl in $CARGO_TARGET_DIR/debug and promtool and
# prometheus from scripts/setup.sh (make metrics-test provides them).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$HOME/.cache/conclave/target}"
bin="$target/debug/conclaved"
ctl="$target/debug/conclavectl"
prometheus_root="${CONCLAVE_PROMETHEUS:-$HOME/.cache/conclave/prometheus}"
promtool="$prometheus_root/usr/bin/promtool"
prometheus="$prometheus_root/usr/bin/prometheus"
dashboard="$root/packaging/grafana/conclaved.json"
scrape_example="$root/packaging/prometheus/prometheus.yml"
for tool in "$bin" "$ctl" "$promtool" "$prometheus"; do
  [ -x "$tool" ] || { echo "metrics test: $tool is missing; run make metrics-test" >&2; exit 1; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/conclave-metrics.XXXXXX")"
# shellcheck source=tests/lib/conclaved.sh
source "$root/tests/lib/conclaved.sh"
prometheus_pid=
cleanup() {
  [ -z "$prometheus_pid" ] || { kill "$prometheus_pid" 2>/dev/null; wait "$prometheus_pid" 2>/dev/null; } || true
  stop_all_conclaved
  rm -rf "$WORK"
}
trap cleanup EXIT

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
until_true() { # until_true SECONDS COMMAND...: polls a condition no event reports
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
ctl_of() { local name=$1; shift; "$ctl" --data-dir "$WORK/$name" "$@"; }

# --- Live daemons ------------------------------------------------------------
loopback=(--listen /ip4/127.0.0.1/udp/0/quic-v1 --listen /ip4/127.0.0.1/tcp/0)
common=(--signing-keys none --no-mdns --metrics 127.0.0.1:0)
start_conclaved relay "$bin" --data-dir "$WORK/relay" "${loopback[@]}" "${common[@]}" --relay-server
for name in alice bob; do
  start_conclaved "$name" "$bin" --data-dir "$WORK/$name" "${loopback[@]}" "${common[@]}"
done
relay_addr="$(ready_field relay '.listen_addrs[0]')"
alice="$(ready_field alice .peer_id)"
bob="$(ready_field bob .peer_id)"

ctl_of alice connect "$relay_addr" >/dev/null
ctl_of bob connect "$relay_addr" >/dev/null
has_reservation() { ctl_of "$1" nat --json | jq -e '.reservations | length > 0' >/dev/null; }
check "alice holds a reservation on the relay" until_true 20 has_reservation alice
# bob reaches alice through the relay; DCUtR then upgrades to a direct path.
ctl_of bob connect "$relay_addr/p2p-circuit/p2p/$alice" >/dev/null
hole_punched() { ctl_of bob nat --json | jq -e '.hole_punch.successes + .hole_punch.failures > 0' >/dev/null; }
check "bob's relayed connection to alice tried a hole punch" until_true 20 hole_punched

ctl_of alice subscribe conclave-metrics --count 1 --timeout 30 >"$WORK/received" 2>&1 &
subscriber=$!
ctl_of bob publish conclave-metrics "hello from bob" --wait-peers 1 --timeout 30 >/dev/null
wait "$subscriber"
check "alice received bob's gossip" grep -q "hello from bob" "$WORK/received"
ctl_of bob send "$alice" "a direct hello" >/dev/null
ctl_of bob announce metrics-test bob '{"service":"metrics"}' >/dev/null
check "alice finds bob's DHT record" bash -c "'$ctl' --data-dir '$WORK/alice' discover metrics-test --json | jq -e 'length > 0' >/dev/null"
ctl_of bob disconnect "$alice" >/dev/null
# Refused and failed connections: the relay denies bob, who dials it again
# (the relay closes the connection as soon as it is established), and bob
# dials a loopback port nothing listens on.
ctl_of relay deny "$bob" >/dev/null
ctl_of bob connect "$relay_addr" >/dev/null 2>&1 || true
relay_refused() { curl -sf "$(ready_field relay .metrics)" | grep -q '^libp2p_swarm_connections_incoming_error_total{error="Denied"'; }
check "the relay counts bob's connection as refused once it denies him" until_true 20 relay_refused
if ctl_of bob connect "/ip4/127.0.0.1/tcp/1/p2p/$alice" >/dev/null 2>&1; then dial_failed=no; else dial_failed=yes; fi
check "bob's dial to a closed port fails" test "$dial_failed" = yes

# --- promtool check metrics ----------------------------------------------------
: >"$WORK/series"
for name in relay alice bob; do
  url="$(ready_field "$name" .metrics)"
  curl -sf "$url" >"$WORK/$name.metrics"
  lint_status=0
  "$promtool" check metrics <"$WORK/$name.metrics" >"$WORK/$name.lint" 2>&1 || lint_status=$?
  if [ "$lint_status" != 0 ]; then
    echo "promtool check metrics on $name's $url (exit $lint_status), first problems:" >&2
    head -n 5 "$WORK/$name.lint" >&2
    if grep -q '^# EOF' "$WORK/$name.metrics" && grep -q 'no help text' "$WORK/$name.lint"; then
      echo "cause: /metrics answers in the OpenMetrics format only, where a counter's HELP and TYPE" \
        "name the family without _total; promtool lints the classic text format, which names them" \
        "with it. Fix: answer a request that does not ask for OpenMetrics (Accept) with the classic" \
        "text format (text/plain; version=0.0.4), in crates/node/src/metrics.rs." >&2
    fi
  fi
  check "promtool check metrics accepts $name's /metrics" test "$lint_status" = 0
  grep -v '^#' "$WORK/$name.metrics" | sed 's/[{ ].*//' >>"$WORK/series"
done
sort -u -o "$WORK/series" "$WORK/series"
echo "the daemons export $(wc -l <"$WORK/series") series names"

check "promtool check config accepts the scrape example" "$promtool" check config "$scrape_example"

# --- The dashboard's series ----------------------------------------------------
node "$root/tests/metrics/dashboard-queries.mjs" "$dashboard" >"$WORK/queries"
check "the dashboard has queries" test -s "$WORK/queries"
missing="$(jq -r '.metrics[]' "$WORK/queries" | sort -u | grep -vxF -f "$WORK/series" || true)"
for name in $missing; do
  echo "not exported, read by: $(jq -r --arg m "$name" 'select(.metrics | index($m)) | .panel' "$WORK/queries" | sort -u | paste -sd, -)" \
    "-> $name" >&2
done
check "every series the dashboard reads is exported" test -z "$missing"

# --- The dashboard's queries in a real Prometheus ----------------------------
# The scrape example, scraping the three daemons every second.
targets="$(for name in relay alice bob; do ready_field "$name" .metrics | sed 's#^http://##; s#/metrics$##'; done |
  jq -R . | paste -sd, -)"
sed -e "s#targets: \[.*\]#targets: [$targets]#" -e 's#scrape_interval: .*#scrape_interval: 1s#' \
  "$scrape_example" >"$WORK/prometheus.yml"
"$prometheus" --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address=127.0.0.1:0 >"$WORK/prometheus.log" 2>&1 &
prometheus_pid=$!
prometheus_addr() { sed -n '/msg="Listening on"/ { s/.*address=\([0-9.:]*\).*/\1/p; q }' "$WORK/prometheus.log"; }
prometheus_listening() { [ -n "$(prometheus_addr)" ]; }
check "Prometheus starts on 127.0.0.1" until_true 30 prometheus_listening
api="http://$(prometheus_addr)/api/v1"
query() { curl -sf --data-urlencode "query=$1" "$api/query"; }
all_up() { query 'sum(up{job="conclaved"})' | jq -e '.data.result[0].value[1] == "3"' >/dev/null; }
check "Prometheus scrapes all three daemons" until_true 30 all_up
# Grafana's variables: the scrape job, every node, a rate window of 10 s.
has_data() { query "$1" | jq -e '.status == "success" and (.data.result | length > 0)' >/dev/null; }
empty=0
while IFS= read -r line; do
  expr="$(jq -r .expr <<<"$line" | sed 's/\$job/conclaved/g; s/\$instance/.+/g; s/\$__rate_interval/10s/g')"
  if ! until_true 20 has_data "$expr"; then
    echo "no data: $(jq -r .panel <<<"$line"): $expr -> $(query "$expr" | head -c 300)" >&2
    empty=$((empty + 1))
  fi
done <"$WORK/queries"
check "every dashboard query returns data in Prometheus ($(wc -l <"$WORK/queries") queries)" test "$empty" = 0

echo "metrics test: $passed passed, $failed failed"
[ "$failed" = 0 ]
