#!/usr/bin/env bash
# The regtest chain's own tests (test_regtest.py): a kernel-backed node is
# started, funds a taproot key, confirms and refuses spends, restarts and
# stops. Runs with the virtualenv scripts/setup.sh creates; extra arguments go
# to pytest (e.g. -k restart). Ends with pytest's "N passed" line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${CONCLAVE_VENV:-$HOME/.cache/conclave/venv}"
if [ ! -x "$venv/bin/python" ]; then
  echo "tests/chain: no Python virtualenv at $venv; create it with: scripts/setup.sh" >&2
  exit 1
fi
exec "$venv/bin/python" -m pytest -q "$here" "$@"
