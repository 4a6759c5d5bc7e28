"""Command line of the regtest node (run through tests/chain/regtest).

Each command prints one JSON line on stdout; errors go to stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from .client import NodeUnavailable, RpcClient
from .daemon import DaemonError, serve, start, stop
from .errors import RpcError

MAX_MINE = 1000


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def _block_count(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_MINE:
        raise argparse.ArgumentTypeError(f"{value} blocks is more than {MAX_MINE} at once")
    return value


def _rpc_argument(text: str) -> Any:
    """As bitcoin-cli: JSON where it parses (numbers, true, arrays), else a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regtest", description="A regtest node validated by libbitcoinkernel.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("start", help="start a node in the background; prints {rpc_url, cookie_file}")
    p.add_argument("dir", type=Path)
    p.add_argument("--port", type=int, default=0, help="RPC port on 127.0.0.1 (0: any free port)")
    p = commands.add_parser("fund", help="pay SATS to ADDRESS in a new block; prints {txid, vout}")
    p.add_argument("dir", type=Path)
    p.add_argument("address")
    p.add_argument("sats", type=_positive_int)
    p = commands.add_parser("mine", help="mine N blocks to the node's key; prints their hashes")
    p.add_argument("dir", type=Path)
    p.add_argument("n", type=_block_count)
    p = commands.add_parser("tx", help="a confirmed transaction; prints {confirmations, hex}")
    p.add_argument("dir", type=Path)
    p.add_argument("txid")
    p = commands.add_parser("stop", help="stop the node cleanly")
    p.add_argument("dir", type=Path)
    p = commands.add_parser("rpc", help="call any RPC method; prints its result")
    p.add_argument("dir", type=Path)
    p.add_argument("method")
    p.add_argument("params", nargs="*")
    p = commands.add_parser("serve", help=argparse.SUPPRESS)
    p.add_argument("dir", type=Path)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ready-fd", type=int, default=None)
    return parser


def _missing_packages() -> list[str]:
    return [name for name in ("pbk", "coincurve") if importlib.util.find_spec(name) is None]


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    datadir = args.dir.expanduser().resolve()
    try:
        if args.command == "serve":
            return serve(datadir, args.port, args.ready_fd)
        if args.command == "start":
            missing = _missing_packages()
            if missing:
                raise DaemonError(
                    f"{', '.join(missing)} not installed in {sys.prefix}; install them with: scripts/setup.sh"
                )
            result: Any = start(datadir, args.port)
        elif args.command == "stop":
            result = stop(datadir)
        else:
            client = RpcClient.for_datadir(datadir)
            if args.command == "fund":
                result = client.call("fundaddress", args.address, args.sats)
            elif args.command == "mine":
                result = client.call("generate", args.n)
            elif args.command == "tx":
                found = client.call("getrawtransaction", args.txid, 1)
                result = {"confirmations": found["confirmations"], "hex": found["hex"]}
            else:
                result = client.call(args.method, *(_rpc_argument(p) for p in args.params))
    except (DaemonError, NodeUnavailable) as err:
        print(f"regtest: {err}", file=sys.stderr)
        return 1
    except RpcError as err:
        print(f"regtest: {args.command} failed: {err.message} (RPC error {err.code})", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
