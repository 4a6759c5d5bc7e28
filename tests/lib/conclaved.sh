# Starting and stopping conclaved daemons from a test script (sourced).
# The script sets WORK (a scratch folder it removes) before it starts any.
#
#   start_conclaved NAME COMMAND...   runs COMMAND (a conclaved command line),
#                                     waits for its ready line and sets
#                                     READY[NAME] to it; fails if the daemon
#                                     exits first or is not ready in 60 s
#   ready_field NAME FIELD            a field of that ready line (jq path)
#   stop_conclaved NAME               SIGTERM, then waits for it to exit
#   stop_all_conclaved                stops every daemon still running

declare -A READY=() DAEMON_PID=() DAEMON_FD=()

start_conclaved() {
  local name=$1 fd line
  shift
  # Its stdout is a FIFO, so its ready line is read the moment it is written;
  # the reading end stays open until the daemon stops (no SIGPIPE later).
  mkfifo "$WORK/$name.stdout"
  "$@" >"$WORK/$name.stdout" 2>"$WORK/$name.stderr" &
  DAEMON_PID[$name]=$!
  exec {fd}<"$WORK/$name.stdout"
  DAEMON_FD[$name]=$fd
  if ! IFS= read -r -t 60 line <&"$fd" || ! jq -e '.event == "ready"' >/dev/null 2>&1 <<<"$line"; then
    echo "$name did not become ready: ${line:-no ready line}; its last log lines:" >&2
    tail -n 5 "$WORK/$name.stderr" >&2
    return 1
  fi
  READY[$name]=$line
}

ready_field() { jq -r "$2" <<<"${READY[$1]}"; }

stop_conclaved() {
  local name=$1 pid=${DAEMON_PID[$1]:-}
  [ -n "$pid" ] || return 0
  local fd=${DAEMON_FD[$name]}
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  exec {fd}<&-
  unset "DAEMON_PID[$name]"
}

stop_all_conclaved() {
  local name
  for name in "${!DAEMON_PID[@]}"; do stop_conclaved "$name"; done
}
