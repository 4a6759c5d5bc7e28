#!/usr/bin/env bash
# The NAT test network: real conclaved daemons in network namespaces behind
# nftables NATs, driven through conclavectl from the host (Unix sockets work
# across network namespaces).
#
#   public segment 198.51.100.0/24 (a bridge in its own namespace):
#     relay/bootstrap (--relay-server) .10, public peer .20,
#     the routers' WAN sides .101-.104
#   home A  192.0.2.0/26    router: masquerade (endpoint-independent mapping)
#   home B  192.0.2.64/26   router: masquerade (endpoint-independent mapping)
#   home C  192.0.2.128/26  router: masquerade random,fully-random (address-
#                           and port-dependent mapping: breaks hole punching)
#   home D  192.0.2.192/26  router: masquerade, and drops all forwarded UDP
#   mDNS LAN 203.0.113.0/24 (a bridge, multicast on): two peers
# Each router also drops unsolicited packets to itself, as home routers do.
#
# Only documentation ranges are used, and no namespace has a link to the
# host's network, so nothing leaves. Every namespace carries a per-run prefix
# and is removed on exit. Needs root; without network namespaces it prints
# "skipped: ..." and exits 0. Ends with "N passed, M failed".
#
# Environment: CONCLAVE_BIN (folder with conclaved and conclavectl; default
# $CARGO_TARGET_DIR/debug), NAT_TESTS (space-separated subset of: autonat
# reservation holepunch symmetric tcp mdns restart), NAT_MDNS_TRIES (20),
# NAT_KEEP=1 keeps the work folder (logs, keys) even when all passed,
# NAT_RUST_LOG sets the daemons' RUST_LOG, NAT_MIN_CONNECTIONS their
# P2P_MIN_CONNECTIONS (10: more than the 6 WAN nodes can reach, so every node
# keeps its maintenance running and redials a lost relay by itself).
set -uo pipefail

BIN="${CONCLAVE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/conclave/target}/debug}"
TESTS="${NAT_TESTS:-autonat reservation holepunch symmetric tcp mdns restart}"
MDNS_TRIES="${NAT_MDNS_TRIES:-20}"

skip() {
  echo "nat: skipped: $*"
  exit 0
}

[ "$(id -u)" -eq 0 ] || skip "network namespaces need root (run as root, e.g. through make test in CI)"
command -v ip >/dev/null || { echo "nat: FAIL: ip (iproute2) not found; scripts/setup.sh installs it" >&2; exit 1; }
command -v nft >/dev/null || { echo "nat: FAIL: nft (nftables) not found; scripts/setup.sh installs it" >&2; exit 1; }
command -v jq >/dev/null || { echo "nat: FAIL: jq not found; scripts/setup.sh installs it" >&2; exit 1; }
for b in conclaved conclavectl; do
  [ -x "$BIN/$b" ] || { echo "nat: FAIL: $BIN/$b not built (cargo build -p conclave-daemon --bins)" >&2; exit 1; }
done

RUN="cnat$$x$(printf %04x $((RANDOM)))"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/conclave-nat.XXXXXX")"
NAMESPACES=()
declare -A DIR NSOF PID PEER READY_MS ARGS
PASSED=0
FAILED=0
FIGURES=()

now_ms() {
  local t=${EPOCHREALTIME/[.,]/}
  echo $((t / 1000))
}

log() { echo "nat: $*"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local name pid ns
  for name in "${!PID[@]}"; do
    pid=${PID[$name]}
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
  done
  local deadline=$(($(now_ms) + 5000))
  for name in "${!PID[@]}"; do
    pid=${PID[$name]}
    [ -n "$pid" ] || continue
    while kill -0 "$pid" 2>/dev/null && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  for ns in "${NAMESPACES[@]}"; do
    # Anything still running in a namespace of this run was started by it.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  if [ "$FAILED" -gt 0 ] || [ "${NAT_KEEP:-0}" = 1 ]; then
    echo "nat: logs and data kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pass() {
  echo "PASS $1: $2"
  PASSED=$((PASSED + 1))
}
fail() {
  echo "FAIL $1: $2"
  FAILED=$((FAILED + 1))
}
figure() { FIGURES+=("$1: $2"); }

# ---------------------------------------------------------------- topology

netns() {
  local ns="$RUN-$1"
  ip netns add "$ns" || return 1
  NAMESPACES+=("$ns")
  ip -n "$ns" link set lo up
}
nsx() {
  local ns="$RUN-$1"
  shift
  ip netns exec "$ns" "$@"
}

# A host on a bridge: veth from the bridge's namespace to the host's eth0.
# Both ends are created inside their namespaces, never in the host's.
plug() { # bridge-ns port-name host-ns host-if addr/len
  ip link add "$2" netns "$RUN-$1" type veth peer name "$4" netns "$RUN-$3" || return 1
  ip -n "$RUN-$1" link set "$2" master br0 up
  ip -n "$RUN-$3" addr add "$5" dev "$4"
  ip -n "$RUN-$3" link set "$4" up
}

# A home network: router namespace rX (wan on the public bridge, lan to the
# home host hX), NAT rules in the router, host's default route via the router.
home() { # letter wan-addr lan-router-addr/len host-addr/len nat-rules
  local x=$1
  netns "r$x" && netns "h$x" || return 1
  plug pub "p-r$x" "r$x" wan "$2/24" || return 1
  ip link add lan netns "$RUN-r$x" type veth peer name eth0 netns "$RUN-h$x" || return 1
  ip -n "$RUN-r$x" addr add "$3" dev lan
  ip -n "$RUN-r$x" link set lan up
  ip -n "$RUN-h$x" addr add "$4" dev eth0
  ip -n "$RUN-h$x" link set eth0 up
  ip -n "$RUN-h$x" route add default via "${3%/*}"
  nsx "r$x" sysctl -qw net.ipv4.ip_forward=1
  nsx "r$x" nft -f - <<<"$5" || return 1
}

# Every router is a home router: source NAT on its WAN side, and a firewall
# that drops unsolicited packets to the router itself. (The drop matters for
# hole punching: a peer's punch packet that arrives first would otherwise
# leave a conntrack entry that clashes with the NAT mapping of our own
# outgoing punch, and masquerade would pick another port.)
FIREWALL='table inet filter {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state new drop
  }
}'
# Endpoint-independent mapping: masquerade keeps the source port when free.
MASQ='table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade
  }
}'"
$FIREWALL"
# Address- and port-dependent mapping: every new flow gets a random port.
SYMMETRIC='table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade random,fully-random
  }
}'"
$FIREWALL"
# Endpoint-independent mapping, and no UDP through the router at all.
DROP_UDP="$MASQ"'
table inet udpblock {
  chain forward {
    type filter hook forward priority filter; policy accept;
    meta l4proto udp counter drop
  }
}'

build_network() {
  netns pub || return 1
  ip -n "$RUN-pub" link add br0 type bridge || return 1
  ip -n "$RUN-pub" link set br0 up
  netns relay && plug pub p-relay relay eth0 198.51.100.10/24 || return 1
  netns public && plug pub p-public public eth0 198.51.100.20/24 || return 1
  home A 198.51.100.101 192.0.2.1/26 192.0.2.2/26 "$MASQ" || return 1
  home B 198.51.100.102 192.0.2.65/26 192.0.2.66/26 "$MASQ" || return 1
  home C 198.51.100.103 192.0.2.129/26 192.0.2.130/26 "$SYMMETRIC" || return 1
  home D 198.51.100.104 192.0.2.193/26 192.0.2.194/26 "$DROP_UDP" || return 1
  # The mDNS LAN: a bridge that floods multicast (no snooping), and a route
  # for the multicast range on each peer (there is no default route).
  netns lan || return 1
  ip -n "$RUN-lan" link add br0 type bridge mcast_snooping 0 || return 1
  ip -n "$RUN-lan" link set br0 up
  local i
  for i in 1 2; do
    netns "l$i" && plug lan "p-l$i" "l$i" eth0 "203.0.113.1$i/24" || return 1
    ip -n "$RUN-l$i" link set eth0 multicast on
    ip -n "$RUN-l$i" route add 224.0.0.0/4 dev eth0
  done
}

# ---------------------------------------------------------------- daemons

# start_node NAME NAMESPACE [conclaved args...]: starts a daemon with its
# own data dir and key file; wait_ready NAME then reads its ready line.
start_node() {
  local name=$1 ns=$2
  shift 2
  local dir="$WORK/$name"
  mkdir -p "$dir"
  DIR[$name]=$dir
  NSOF[$name]=$ns
  ARGS[$name]="$*"
  : >"$dir/out"
  ip netns exec "$RUN-$ns" env P2P_MIN_CONNECTIONS="${NAT_MIN_CONNECTIONS:-10}" \
    ${NAT_RUST_LOG:+RUST_LOG="$NAT_RUST_LOG"} "$BIN/conclaved" --key-file "$dir/identity.key" --data-dir "$dir" "$@" \
    >"$dir/out" 2>>"$dir/err" &
  PID[$name]=$!
}

wait_ready() { # NAME [timeout-s]
  local name=$1 deadline=$(($(now_ms) + ${2:-20} * 1000)) line
  while :; do
    line=$(grep -m1 '"event":"ready"' "${DIR[$name]}/out" 2>/dev/null)
    if [ -n "$line" ]; then
      PEER[$name]=$(jq -r .peer_id <<<"$line")
      READY_MS[$name]=$(now_ms)
      return 0
    fi
    if ! kill -0 "${PID[$name]}" 2>/dev/null; then
      log "$name exited before it was ready: $(tail -n 3 "${DIR[$name]}/err")"
      return 1
    fi
    [ "$(now_ms)" -lt "$deadline" ] || { log "$name not ready in time"; return 1; }
    sleep 0.02
  done
}

stop_node() { # NAME: SIGTERM, then SIGKILL after 10 s
  local name=$1 pid=${PID[$1]} deadline=$(($(now_ms) + 10000))
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  PID[$name]=
}

# ctl NAME ARGS...: conclavectl --json against NAME's daemon (bounded).
ctl() {
  local name=$1
  shift
  timeout 40 "$BIN/conclavectl" --data-dir "${DIR[$name]}" "$@" --json 2>>"${DIR[$name]}/ctl.err"
}
last_ctl_error() { tail -n 1 "${DIR[$1]}/ctl.err" 2>/dev/null; }

# wait_for TIMEOUT-S CMD...: polls CMD every 100 ms until it succeeds.
wait_for() {
  local deadline=$(($(now_ms) + $1 * 1000))
  shift
  while :; do
    "$@" && return 0
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# Paths ("direct"/"relayed") of NAME's connections to PEER, one per line.
paths_to() { ctl "$1" peers | jq -r --arg p "$2" '.[] | select(.peer_id == $p) | (.connections // [{path: .path}])[] | .path'; }
# Transports of NAME's direct (not relayed) connections to PEER.
transports_to() { ctl "$1" peers | jq -r --arg p "$2" '.[] | select(.peer_id == $p) | (.connections // [{transport: .transport, path: .path}])[] | select(.path != "relayed") | .transport'; }
is_connected() { ctl "$1" peers | jq -e --arg p "$2" 'any(.[]; .peer_id == $p)' >/dev/null; }
not_connected() { ! is_connected "$@"; }
has_path() { paths_to "$1" "$2" | grep -qx "$3"; }
# How NAME shows PEER: its top-level path and "+N" other connections, which
# must match the connections it lists (e.g. "direct +1").
shown_path() { ctl "$1" peers | jq -r --arg p "$2" '.[] | select(.peer_id == $p) | "\(.path) +\(.other_connections)" + (if (.connections | length) == .other_connections + 1 then "" else " (but \(.connections | length) listed)" end)'; }
nat_field() { ctl "$1" nat | jq -r "$2"; }
reachability_is() { [ "$(nat_field "$1" .reachability)" = "$2" ]; }
has_reservation() { ctl "$1" nat | jq -e --arg r "${PEER[relay]}" '(.relays // []) | index($r) != null' >/dev/null; }
# Whether NAME holds a reservation on the relay that became active at or after
# epoch second SINCE (one made with a restarted relay, not a stale one).
reserved_since() { # NAME SINCE
  ctl "$1" nat | jq -e --arg r "${PEER[relay]}" --argjson t "$2" \
    'any(.reservations[]?; .relay == $r and .active_since_ms >= $t * 1000)' >/dev/null
}
hole_punch() { ctl "$1" nat | jq -r ".hole_punch.$2 // 0" 2>/dev/null || echo 0; }
circuit_to() { echo "/ip4/198.51.100.10/udp/4001/quic-v1/p2p/${PEER[relay]}/p2p-circuit/p2p/${PEER[$1]}"; }

# message_flows FROM TO TOPIC TEXT: TO subscribes, FROM publishes once TO's
# subscription reached it; true when TO printed that message from FROM.
message_flows() {
  local from=$1 to=$2 topic=$3 text=$4 out="$WORK/msg.$RANDOM" sub
  ctl "$to" subscribe "$topic" --count 1 --timeout 25 >"$out" &
  sub=$!
  ctl "$from" publish "$topic" "$text" --wait-peers 1 --timeout 20 >/dev/null
  local published=$?
  wait "$sub"
  [ "$published" -eq 0 ] && jq -e --arg t "$text" --arg f "${PEER[$from]}" \
    'select(.data == $t and .from == $f)' "$out" >/dev/null 2>&1
}

# Direct (request-response) messages, where conclavectl can send them:
# `conclavectl send PEER TEXT` must succeed and the receiver's
# stats.direct_received must grow.
has_send_command() { "$BIN/conclavectl" --help 2>/dev/null | grep -qE '^ +send +'; }
direct_message_flows() { # FROM TO TEXT
  local before after
  before=$(ctl "$2" stats | jq -r '.direct_received // 0')
  ctl "$1" send "${PEER[$2]}" "$3" >/dev/null || return 1
  direct_received_grew() { after=$(ctl "$2" stats | jq -r '.direct_received // 0'); [ "$after" -gt "$before" ]; }
  wait_for 10 direct_received_grew "$@"
}

# ---------------------------------------------------------------- tests

want() { [[ " $TESTS " == *" $1 "* ]]; }

RELAY_ARGS=(--no-mdns --relay-server
  --listen /ip4/198.51.100.10/udp/4001/quic-v1 --listen /ip4/198.51.100.10/tcp/4001)
HOME_LISTEN=(--listen /ip4/0.0.0.0/udp/4001/quic-v1 --listen /ip4/0.0.0.0/tcp/4001)

start_wan() {
  start_node relay relay "${RELAY_ARGS[@]}"
  wait_ready relay || return 1
  local r=${PEER[relay]}
  BOOT_QUIC=/ip4/198.51.100.10/udp/4001/quic-v1/p2p/$r
  BOOT_TCP=/ip4/198.51.100.10/tcp/4001/p2p/$r
  start_node public public --no-mdns --bootstrap "$BOOT_QUIC" \
    --listen /ip4/198.51.100.20/udp/4001/quic-v1 --listen /ip4/198.51.100.20/tcp/4001
  local x
  for x in A B C; do
    start_node "$x" "h$x" --no-mdns --bootstrap "$BOOT_QUIC" "${HOME_LISTEN[@]}"
  done
  # D's router drops UDP: it knows both of the relay's addresses.
  start_node D hD --no-mdns --bootstrap "$BOOT_QUIC" --bootstrap "$BOOT_TCP" "${HOME_LISTEN[@]}"
  for x in public A B C D; do wait_ready "$x" || return 1; done
}

# Polls every daemon's `nat` from the start, recording when each home peer
# holds a reservation and when each peer reports its expected reachability
# (both measured from that daemon's ready line), for at most 30 s.
declare -A EXPECT_REACH=([public]=public [A]=private [B]=private [C]=private [D]=private)
declare -A REACH_MS=() RESERVE_MS=()
watch_startup() {
  local deadline=$(($(now_ms) + 30000)) name nat wanted
  wanted=$((${#EXPECT_REACH[@]} + 4))
  while :; do
    for name in public A B C D; do
      [ -n "${REACH_MS[$name]:-}" ] && { [ "$name" = public ] || [ -n "${RESERVE_MS[$name]:-}" ]; } && continue
      nat=$(ctl "$name" nat) || continue
      if [ -z "${REACH_MS[$name]:-}" ] && [ "$(jq -r .reachability <<<"$nat")" = "${EXPECT_REACH[$name]}" ]; then
        REACH_MS[$name]=$(($(now_ms) - READY_MS[$name]))
      fi
      if [ "$name" != public ] && [ -z "${RESERVE_MS[$name]:-}" ] &&
        jq -e --arg r "${PEER[relay]}" '(.relays // []) | index($r) != null' <<<"$nat" >/dev/null; then
        RESERVE_MS[$name]=$(($(now_ms) - READY_MS[$name]))
      fi
    done
    [ $((${#REACH_MS[@]} + ${#RESERVE_MS[@]})) -ge "$wanted" ] && return
    [ "$(now_ms)" -lt "$deadline" ] || return
    sleep 0.2
  done
}

test_autonat() {
  local summary="" missing="" name r
  for name in public A B C D; do
    if [ -n "${REACH_MS[$name]:-}" ]; then
      summary+=" $name ${EXPECT_REACH[$name]} in ${REACH_MS[$name]} ms;"
      figure "time to reachability ($name ${EXPECT_REACH[$name]})" "${REACH_MS[$name]} ms"
    else
      r=$(nat_field "$name" .reachability 2>/dev/null)
      [ -n "$r" ] || r="? ($(last_ctl_error "$name"))"
      missing+=" $name reports $r, not ${EXPECT_REACH[$name]} (autonat $(nat_field "$name" '.autonat|tostring' 2>/dev/null));"
    fi
  done
  if [ -z "$missing" ]; then
    pass autonat "public peer public, home peers private within 30 s:$summary"
  else
    fail autonat "after 30 s:$missing reached:${summary:- none}"
  fi
}

test_reservation() {
  local summary="" missing="" x
  for x in A B C D; do
    if [ -n "${RESERVE_MS[$x]:-}" ]; then
      summary+=" $x in ${RESERVE_MS[$x]} ms;"
      figure "relay reservation ($x)" "${RESERVE_MS[$x]} ms after start"
    else
      missing+=" $x (nat: $(ctl "$x" nat | jq -c '{relays, relayed_addrs}' 2>/dev/null || last_ctl_error "$x"));"
    fi
  done
  if [ -z "$missing" ]; then
    pass reservation "home peers hold a relay reservation:$summary"
  else
    fail reservation "no reservation within 30 s:$missing"
  fi
}

test_holepunch() {
  local t=holepunch
  wait_for 30 has_reservation B || { fail $t "B holds no relay reservation"; return; }
  if is_connected A "${PEER[B]}"; then
    log "A and B were already connected ($(paths_to A "${PEER[B]}" | tr '\n' ' ')); disconnecting first"
    ctl A disconnect "${PEER[B]}" >/dev/null
    wait_for 5 not_connected A "${PEER[B]}"
  fi
  local before=$(($(hole_punch A successes) + $(hole_punch B successes)))
  local t0 t1 t2 seen_relayed=no
  t0=$(now_ms)
  if ! ctl A connect "$(circuit_to B)" >/dev/null; then
    fail $t "A could not dial B through the relay: $(last_ctl_error A)"
    return
  fi
  t1=$(now_ms)
  figure "relay connect (A to B through the relay)" "$((t1 - t0)) ms"
  local deadline=$((t1 + 20000)) paths
  while :; do
    paths=$(paths_to A "${PEER[B]}")
    grep -qx relayed <<<"$paths" && seen_relayed=yes
    grep -qx direct <<<"$paths" && break
    if [ "$(now_ms)" -ge "$deadline" ]; then
      fail $t "relayed connection in $((t1 - t0)) ms but no direct connection within 20 s (paths: $(tr '\n' ' ' <<<"$paths"); hole_punch A: $(ctl A nat | jq -c .hole_punch 2>/dev/null))"
      return
    fi
    sleep 0.1
  done
  t2=$(now_ms)
  local after=$(($(hole_punch A successes) + $(hole_punch B successes)))
  local topic="hp-$RUN" problems=""
  message_flows A B "$topic" "gossip A to B after the upgrade" || problems+=" gossip A->B failed;"
  message_flows B A "$topic.r" "gossip B to A after the upgrade" || problems+=" gossip B->A failed;"
  has_path A "${PEER[B]}" direct || problems+=" direct connection gone after the messages;"
  local shown_a shown_b
  shown_a=$(shown_path A "${PEER[B]}") shown_b=$(shown_path B "${PEER[A]}")
  [[ $shown_a == "direct +"[0-9]* && $shown_a != *listed* ]] || problems+=" A shows B as '$shown_a' (want direct, other connections counted);"
  [[ $shown_b == "direct +"[0-9]* && $shown_b != *listed* ]] || problems+=" B shows A as '$shown_b' (want direct, other connections counted);"
  [ "$after" -gt "$before" ] || problems+=" no hole-punch success counted (nat.hole_punch);"
  local dm="direct messages not checked: conclavectl has no send command"
  if has_send_command; then
    if direct_message_flows A B "direct A to B after the upgrade" && direct_message_flows B A "direct B to A after the upgrade"; then
      dm="direct messages both ways"
    else
      problems+=" direct message failed ($(last_ctl_error A));"
      dm=""
    fi
  fi
  figure "hole-punch upgrade (relayed to direct)" "$((t2 - t1)) ms"
  if [ -z "$problems" ]; then
    pass $t "relayed in $((t1 - t0)) ms, direct after $((t2 - t1)) ms more (relayed seen by polling: $seen_relayed); shown as '$shown_a' by A, '$shown_b' by B; gossip both ways over the upgraded connection; $dm"
  else
    fail $t "direct after $((t2 - t1)) ms, but:$problems"
  fi
}

test_symmetric() {
  local t=symmetric
  wait_for 30 has_reservation A || { fail $t "A holds no relay reservation"; return; }
  local before_fail=$(($(hole_punch C failures) + $(hole_punch A failures)))
  local t0 t1 already=no
  # Maintenance may have connected them already (then the hole punch was
  # tried and failed before, and connect answers at once).
  is_connected C "${PEER[A]}" && already=yes
  t0=$(now_ms)
  if ! ctl C connect "$(circuit_to A)" >/dev/null; then
    fail $t "C (behind the symmetric NAT) could not dial A through the relay: $(last_ctl_error C)"
    return
  fi
  t1=$(now_ms)
  figure "relay connect (C to A, symmetric NAT)" "$((t1 - t0)) ms"
  # Wait for the hole punch to be tried and given up (bounded).
  hp_failed() { [ $(($(hole_punch C failures) + $(hole_punch A failures))) -gt "$before_fail" ] || has_path C "${PEER[A]}" direct; }
  local outcome="hole-punch failure counted"
  if [ "$already" = yes ]; then
    outcome="were connected by themselves already, $before_fail hole-punch failures counted"
  else
    wait_for 30 hp_failed || outcome="no hole-punch failure counted within 30 s"
  fi
  local problems=""
  message_flows C A "sym-$RUN" "gossip C to A over the relay" || problems+=" gossip C->A failed;"
  message_flows A C "sym-$RUN.r" "gossip A to C over the relay" || problems+=" gossip A->C failed;"
  local pc pa
  pc=$(paths_to C "${PEER[A]}" | sort -u | tr '\n' ' ')
  pa=$(paths_to A "${PEER[C]}" | sort -u | tr '\n' ' ')
  [ "$pc" = "relayed " ] || problems+=" C's connections to A: '$pc' (want only relayed);"
  [ "$pa" = "relayed " ] || problems+=" A's connections to C: '$pa' (want only relayed);"
  if [ -z "$problems" ]; then
    pass $t "C reached A over the relay in $((t1 - t0)) ms, stays relayed ($outcome), gossip both ways"
  else
    fail $t "$outcome;$problems"
  fi
}

test_tcp() {
  local t=tcp-fallback problems=""
  # D's router drops UDP; D was given the relay's QUIC and TCP addresses.
  wait_for 20 is_connected D "${PEER[relay]}" || { fail $t "D never connected to the relay: $(last_ctl_error D)"; return; }
  local tr
  tr=$(transports_to D "${PEER[relay]}" | sort -u | tr '\n' ' ')
  [ "$tr" = "tcp " ] || problems+=" D-relay direct connections' transports '$tr' (want tcp);"
  # D asks for the public peer by id only: the node must pick an address
  # that works (QUIC is blocked) by itself. A relayed connection does not
  # count: drop it first, or connect would answer at once.
  local t0 t1 how="by peer id"
  direct_to_public() { [ -n "$(transports_to D "${PEER[public]}")" ]; }
  if direct_to_public; then
    how="not needed: D had a direct connection to it already"
  else
    if is_connected D "${PEER[public]}"; then
      ctl D disconnect "${PEER[public]}" >/dev/null
      wait_for 5 not_connected D "${PEER[public]}"
    fi
    t0=$(now_ms)
    if ! ctl D connect "/p2p/${PEER[public]}" >/dev/null; then
      echo "NOTE $t: conclavectl connect /p2p/PEER_ID (dial the addresses the node knows) failed: $(last_ctl_error D | tr -s ' ')"
      how="by its TCP address (by peer id failed)"
      ctl D connect "/ip4/198.51.100.20/tcp/4001/p2p/${PEER[public]}" >/dev/null ||
        { fail $t "D cannot reach the public peer: $(last_ctl_error D)"; return; }
    fi
    t1=$(now_ms)
    wait_for 10 direct_to_public || problems+=" no direct D-public connection after connect ($how), paths: $(paths_to D "${PEER[public]}" | tr '\n' ' ');"
    figure "connect with UDP blocked (D to public peer $how)" "$((t1 - t0)) ms"
    how+=" in $((t1 - t0)) ms"
  fi
  tr=$(transports_to D "${PEER[public]}" | sort -u | tr '\n' ' ')
  [ -z "$tr" ] || [ "$tr" = "tcp " ] || problems+=" D-public direct connections' transports '$tr' (want tcp);"
  message_flows D public "tcp-$RUN" "gossip D to public over TCP" || problems+=" gossip D->public failed;"
  local drops
  drops=$(nsx rD nft list chain inet udpblock forward | grep -o 'packets [0-9]*' | head -n1)
  if [ -z "$problems" ]; then
    pass $t "UDP dropped by D's router ($drops); D reached relay and public peer over tcp (connect $how), gossip flows"
  else
    fail $t "connect $how;$problems"
  fi
}

percentile() { # P values...: nearest-rank percentile
  local p=$1
  shift
  local sorted n k
  sorted=($(printf '%s\n' "$@" | sort -n))
  n=${#sorted[@]}
  k=$(((p * n + 99) / 100))
  [ "$k" -lt 1 ] && k=1
  echo "${sorted[$((k - 1))]}"
}

test_mdns() {
  local t=mdns times=() failures=0 i a b t0 d
  sees_each_other() { is_connected "$a" "${PEER[$b]}" && is_connected "$b" "${PEER[$a]}"; }
  for ((i = 1; i <= MDNS_TRIES; i++)); do
    a="lan1-$i" b="lan2-$i"
    start_node "$a" l1
    start_node "$b" l2
    if ! wait_ready "$a" || ! wait_ready "$b"; then
      failures=$((failures + 1))
      stop_node "$a"; stop_node "$b"
      continue
    fi
    t0=$(now_ms)
    d=""
    while :; do
      if sees_each_other; then d=$(($(now_ms) - t0)); break; fi
      [ $(($(now_ms) - t0)) -lt 10000 ] || break
      sleep 0.05
    done
    if [ -n "$d" ]; then times+=("$d"); else failures=$((failures + 1)); fi
    stop_node "$a"
    stop_node "$b"
  done
  if [ "${#times[@]}" -eq 0 ]; then
    fail $t "the LAN peers never found each other in $MDNS_TRIES tries"
    return
  fi
  local p50 p95 max
  p50=$(percentile 50 "${times[@]}")
  p95=$(percentile 95 "${times[@]}")
  max=$(percentile 100 "${times[@]}")
  figure "mDNS discovery" "p50 $p50 ms, p95 $p95 ms, max $max ms over ${#times[@]} tries"
  if [ "$failures" -eq 0 ] && [ "$p95" -lt 1000 ]; then
    pass $t "LAN peers found each other in all $MDNS_TRIES tries: p50 $p50 ms, p95 $p95 ms (target < 1000), max $max ms"
  else
    fail $t "$failures of $MDNS_TRIES tries failed; found: p50 $p50 ms, p95 $p95 ms (target < 1000), max $max ms"
  fi
}

# Whether NAME has a connection to PEER established at or after epoch second
# SINCE (with path PATH, if given): tells new connections from old ones.
conn_since() { # NAME PEER SINCE [PATH]
  ctl "$1" peers | jq -e --arg p "$2" --argjson t "$3" --arg path "${4:-}" \
    'any(.[] | select(.peer_id == $p) | .connections[]?; .established_at >= $t and ($path == "" or .path == $path))' >/dev/null
}
conn_before() { # NAME PEER BEFORE [PATH]
  ctl "$1" peers | jq -e --arg p "$2" --argjson t "$3" --arg path "${4:-}" \
    'any(.[] | select(.peer_id == $p) | .connections[]?; .established_at < $t and ($path == "" or .path == $path))' >/dev/null
}

test_restart() {
  local t=relay-restart
  stop_node relay
  # Connection times are whole seconds: start the new relay in a later second
  # than any connection to the old one, so new connections can be told apart.
  local since=$(($(now_ms) / 1000 + 1))
  while [ $(($(now_ms) / 1000)) -lt "$since" ]; do sleep 0.05; done
  start_node relay relay "${RELAY_ARGS[@]}"
  if ! wait_ready relay; then
    fail $t "the relay did not come back"
    return
  fi
  local t0=${READY_MS[relay]} x
  local -A took=()
  # A new connection to the new relay process, and a reservation on it.
  regained() { is_connected relay "${PEER[$1]}" && conn_since "$1" "${PEER[relay]}" "$since" && reserved_since "$1" "$since"; }
  local deadline=$((t0 + 45000))
  while :; do
    for x in A B; do
      [ -n "${took[$x]:-}" ] && continue
      regained "$x" && took[$x]=$(($(now_ms) - t0))
    done
    [ "${#took[@]}" -eq 2 ] && break
    [ "$(now_ms)" -lt "$deadline" ] || break
    sleep 0.2
  done
  local summary="" problems=""
  for x in A B; do
    if [ -n "${took[$x]:-}" ]; then
      summary+=" $x in ${took[$x]} ms;"
      figure "reservation regained after relay restart ($x)" "${took[$x]} ms"
    else
      problems+=" $x: relay sees it: $(is_connected relay "${PEER[$x]}" && echo yes || echo no), new connection: $(conn_since "$x" "${PEER[relay]}" "$since" && echo yes || echo no), nat $(ctl "$x" nat | jq -c '{reservations, relayed_addrs}' 2>/dev/null || last_ctl_error "$x");"
    fi
  done
  # The regained reservation works: C reaches A through the new relay (once
  # its circuit through the old relay is gone, or by itself).
  if [ -z "$problems" ]; then
    new_circuit() { conn_since C "${PEER[A]}" "$since" relayed; }
    old_circuit_gone() { new_circuit || ! conn_before C "${PEER[A]}" "$since" relayed; }
    wait_for 30 old_circuit_gone || problems+=" C's circuit to A through the old relay still listed after 30 s;"
    new_circuit || ctl C connect "$(circuit_to A)" >/dev/null ||
      problems+=" C cannot dial A through the restarted relay: $(last_ctl_error C);"
    wait_for 5 new_circuit || problems+=" no new relayed C-A connection;"
  fi
  if [ -z "$problems" ]; then
    pass $t "after the relay restarted, home peers reconnected and re-reserved by themselves:$summary a new circuit to A works"
  else
    fail $t "within 45 s of the relay's restart:$problems${summary:+ (regained:$summary)}"
  fi
}

# ---------------------------------------------------------------- main

if ! ip netns add "$RUN-probe" 2>/dev/null; then
  skip "network namespaces are unavailable here (ip netns add failed)"
fi
NAMESPACES+=("$RUN-probe")
if ! ip netns exec "$RUN-probe" nft -f - <<<"$SYMMETRIC" 2>/dev/null; then
  skip "the kernel has no nftables NAT in network namespaces"
fi

log "run $RUN, binaries from $BIN, work folder $WORK"
T_START=$(now_ms)
if ! build_network; then
  fail network "could not build the test network"
elif ! start_wan; then
  fail daemons "the daemons did not start (see $WORK)"
else
  log "network and daemons up in $(($(now_ms) - T_START)) ms: relay ${PEER[relay]}"
  { want autonat || want reservation; } && watch_startup
  want autonat && test_autonat
  want reservation && test_reservation
  want holepunch && test_holepunch
  want symmetric && test_symmetric
  want tcp && test_tcp
  want mdns && test_mdns
  want restart && test_restart
fi

[ $((PASSED + FAILED)) -gt 0 ] || fail suite "no test ran (NAT_TESTS=$TESTS)"
echo "nat: figures (suite took $((($(now_ms) - T_START) / 1000)) s):"
for f in "${FIGURES[@]}"; do echo "  $f"; done
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
