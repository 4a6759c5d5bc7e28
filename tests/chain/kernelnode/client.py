"""A JSON-RPC client for the node, authenticating with its cookie file as
bitcoin-cli does, and the files by which a data directory names its node."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RpcError

# Files a running node keeps in its data directory.
PID_FILE = "regtest.pid"
LOG_FILE = "regtest.log"
COOKIE_FILE = ".cookie"
ENDPOINT_FILE = "rpc.json"  # {"rpc_url", "cookie_file", "pid"}, written once serving


class NodeUnavailable(Exception):
    """No node answers for a data directory; the message says what to do."""


@dataclass
class Endpoint:
    rpc_url: str
    cookie_file: str
    pid: int

    @staticmethod
    def of(datadir: Path) -> Endpoint:
        path = datadir / ENDPOINT_FILE
        try:
            data = json.loads(path.read_text())
            return Endpoint(data["rpc_url"], data["cookie_file"], int(data["pid"]))
        except FileNotFoundError:
            raise NodeUnavailable(
                f"no regtest node is running in {datadir} (no {path.name} there); "
                f"start one with: tests/chain/regtest start {datadir}"
            ) from None
        except (ValueError, KeyError) as err:
            raise NodeUnavailable(f"{path} is unreadable ({err}); stop the node and start it again") from None


class RpcClient:
    def __init__(self, rpc_url: str, cookie_file: str | Path, timeout: float = 60.0):
        self.rpc_url = rpc_url
        self.cookie_file = Path(cookie_file)
        self.timeout = timeout
        self._next_id = 0

    @staticmethod
    def for_datadir(datadir: Path) -> RpcClient:
        endpoint = Endpoint.of(datadir)
        return RpcClient(endpoint.rpc_url, endpoint.cookie_file)

    def call(self, method: str, *params: Any) -> Any:
        """The method's result; raises RpcError with Core's code and message."""
        self._next_id += 1
        body = json.dumps({"jsonrpc": "1.0", "id": self._next_id, "method": method, "params": list(params)})
        try:
            cookie = self.cookie_file.read_bytes().strip()
        except FileNotFoundError:
            raise NodeUnavailable(
                f"the cookie file {self.cookie_file} is missing, so the node is stopped; start it again"
            ) from None
        request = urllib.request.Request(
            self.rpc_url,
            data=body.encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": "Basic " + base64.b64encode(cookie).decode(),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.loads(response.read())
        except urllib.error.HTTPError as err:
            # Core answers errors with HTTP 404/500 and the JSON reply in the body.
            payload = err.read()
            try:
                reply = json.loads(payload)
            except ValueError:
                raise RpcError(err.code, f"HTTP {err.code} {err.reason} from {self.rpc_url}") from None
        except (urllib.error.URLError, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            raise NodeUnavailable(
                f"the node at {self.rpc_url} does not answer ({reason}); it may have stopped: "
                f"see its {LOG_FILE}, then start it again"
            ) from None
        if reply.get("error"):
            raise RpcError(reply["error"]["code"], reply["error"]["message"])
        return reply["result"]
