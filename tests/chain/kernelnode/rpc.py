"""The node's JSON-RPC face: Bitcoin Core's method names, parameters, result
shapes, error codes and HTTP behaviour (cookie Basic auth, JSON-RPC 1.0-style
replies with HTTP error statuses, JSON-RPC 2.0 replies, batches)."""

from __future__ import annotations

import base64
import hmac
import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import corejson
from .address import AddressError, address_to_script
from .corejson import Btc
from .encoding import Tx, bits_to_target, hash_to_hex, hex_to_hash
from .errors import (
    RPC_DESERIALIZATION_ERROR,
    RPC_INTERNAL_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_INVALID_REQUEST,
    RPC_METHOD_NOT_FOUND,
    RPC_MISC_ERROR,
    RPC_PARSE_ERROR,
    RPC_TYPE_ERROR,
    RpcError,
)
from .node import DEFAULT_MAX_FEE_RATE_SAT_PER_KVB, RegtestNode
from .wallet import MAX_MONEY

log = logging.getLogger("regtest.rpc")

# Core's limit on an HTTP request body (MAX_SIZE) and on blocks mined per call.
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_BLOCKS_PER_CALL = 1000
MAX_CONNECTIONS = 64
IDLE_TIMEOUT_SECONDS = 30

_REQUIRED = object()


@dataclass
class Param:
    name: str
    kind: str  # "str", "int", "bool", "verbosity", "array", "amount"
    default: Any = _REQUIRED


@dataclass
class Method:
    usage: str
    params: list[Param]
    run: Callable[..., Any]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_EXPECTED = {
    "str": "string",
    "int": "number",
    "bool": "bool",
    "verbosity": "number",
    "array": "array",
    "amount": "number",
}


def _check_type(position: int, param: Param, value: Any) -> Any:
    kind = param.kind
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "verbosity": isinstance(value, (int, bool)),
        "array": isinstance(value, list),
        "amount": isinstance(value, (int, float, str)) and not isinstance(value, bool),
    }[kind]
    if not ok:
        raise RpcError(
            RPC_TYPE_ERROR,
            f"Wrong type passed: position {position} ({param.name}): JSON value of type "
            f"{_json_type(value)} is not of expected type {_EXPECTED[kind]}",
        )
    if kind == "verbosity":
        return int(value)
    return value


def _bind(method_name: str, method: Method, params: Any) -> dict[str, Any]:
    usage = f"{method_name} {method.usage}".strip()
    if params is None:
        params = []
    values: dict[str, Any] = {}
    if isinstance(params, list):
        if len(params) > len(method.params):
            raise RpcError(RPC_MISC_ERROR, f"too many parameters; usage: {usage}")
        given = dict(zip((p.name for p in method.params), params))
    elif isinstance(params, dict):
        names = {p.name for p in method.params}
        for name in params:
            if name not in names:
                raise RpcError(RPC_INVALID_PARAMETER, f"Unknown named parameter {name}; usage: {usage}")
        given = params
    else:
        raise RpcError(RPC_INVALID_REQUEST, "Params must be an array or object")
    for position, param in enumerate(method.params, start=1):
        value = given.get(param.name)
        if value is None:
            if param.default is _REQUIRED:
                raise RpcError(RPC_MISC_ERROR, f"missing parameter {param.name}; usage: {usage}")
            values[param.name] = param.default
        else:
            values[param.name] = _check_type(position, param, value)
    return values


def _parse_txid(value: str, name: str = "txid") -> bytes:
    try:
        return hex_to_hash(value)
    except ValueError as err:
        raise RpcError(RPC_INVALID_PARAMETER, f"{name} {err}") from None


def _parse_tx(hex_text: str) -> Tx:
    try:
        return Tx.parse(bytes.fromhex(hex_text))
    except ValueError as err:
        raise RpcError(
            RPC_DESERIALIZATION_ERROR, f"TX decode failed ({err}). Make sure the tx has at least one input."
        ) from None


def _parse_fee_rate(value: Any) -> int:
    """A BTC amount (here BTC/kvB or BTC) as sats, as Core's AmountFromValue reads it."""
    try:
        sats = Decimal(value if isinstance(value, str) else repr(value)) * 100_000_000
    except InvalidOperation:
        raise RpcError(RPC_TYPE_ERROR, "Invalid amount") from None
    if not sats.is_finite() or sats != sats.to_integral_value():
        raise RpcError(RPC_TYPE_ERROR, "Invalid amount")
    if not 0 <= sats <= MAX_MONEY:
        raise RpcError(RPC_TYPE_ERROR, "Amount out of range")
    return int(sats)


def _address_script(address: str) -> bytes:
    try:
        return address_to_script(address)
    except AddressError as err:
        raise RpcError(
            RPC_INVALID_ADDRESS_OR_KEY,
            f"Invalid address '{address}': {err}. Give a regtest segwit address (bcrt1q... or bcrt1p...).",
        ) from None


def _check_block_count(nblocks: int) -> None:
    if not 0 <= nblocks <= MAX_BLOCKS_PER_CALL:
        raise RpcError(RPC_INVALID_PARAMETER, f"nblocks must be between 0 and {MAX_BLOCKS_PER_CALL} (got {nblocks})")


class Methods:
    """The RPC methods, each answering from the node under its lock."""

    def __init__(self, node: RegtestNode):
        self.node = node
        # Set by `stop`; the server acts on it once the reply is written.
        self.stop_pending = False
        self.table: dict[str, Method] = {
            "getblockchaininfo": Method("", [], self.getblockchaininfo),
            "getblockcount": Method("", [], self.getblockcount),
            "getbestblockhash": Method("", [], self.getbestblockhash),
            "getblockhash": Method("height", [Param("height", "int")], self.getblockhash),
            "getblock": Method(
                '"blockhash" ( verbosity )',
                [Param("blockhash", "str"), Param("verbosity", "verbosity", 1)],
                self.getblock,
            ),
            "gettxout": Method(
                '"txid" n ( include_mempool )',
                [Param("txid", "str"), Param("n", "int"), Param("include_mempool", "bool", True)],
                self.gettxout,
            ),
            "getrawtransaction": Method(
                '"txid" ( verbosity "blockhash" )',
                [Param("txid", "str"), Param("verbosity", "verbosity", 0), Param("blockhash", "str", None)],
                self.getrawtransaction,
            ),
            "sendrawtransaction": Method(
                '"hexstring" ( maxfeerate maxburnamount )',
                [
                    Param("hexstring", "str"),
                    Param("maxfeerate", "amount", None),
                    Param("maxburnamount", "amount", None),
                ],
                self.sendrawtransaction,
            ),
            "testmempoolaccept": Method(
                '["rawtx",...] ( maxfeerate )',
                [Param("rawtxs", "array"), Param("maxfeerate", "amount", None)],
                self.testmempoolaccept,
            ),
            "generatetoaddress": Method(
                'nblocks "address" ( maxtries )',
                [Param("nblocks", "int"), Param("address", "str"), Param("maxtries", "int", None)],
                self.generatetoaddress,
            ),
            "generate": Method("nblocks", [Param("nblocks", "int")], self.generate),
            "fundaddress": Method('"address" sats', [Param("address", "str"), Param("sats", "int")], self.fundaddress),
            "getminingaddress": Method("", [], self.getminingaddress),
            "help": Method("", [], self.help),
            "stop": Method("", [], self.stop),
        }

    def call(self, name: str, params: Any) -> Any:
        method = self.table.get(name)
        if method is None:
            raise RpcError(RPC_METHOD_NOT_FOUND, "Method not found")
        return method.run(**_bind(name, method, params))

    # Chain -------------------------------------------------------------------

    def getblockchaininfo(self) -> dict[str, Any]:
        node = self.node
        with node.lock:
            index = node.index
            tip = index.tip
            header = tip.block.header
            return {
                "chain": "regtest",
                "blocks": index.height,
                "headers": index.height,
                "bestblockhash": hash_to_hex(tip.hash),
                "bits": f"{header.bits:08x}",
                "target": f"{bits_to_target(header.bits):064x}",
                "difficulty": corejson.difficulty(header.bits),
                "time": header.time,
                "mediantime": node.median_time(),
                "verificationprogress": 1,
                "initialblockdownload": False,
                "chainwork": f"{tip.chainwork:064x}",
                "size_on_disk": sum(len(r.raw) for r in index.blocks),
                "pruned": False,
                "warnings": [],
            }

    def getblockcount(self) -> int:
        with self.node.lock:
            return self.node.index.height

    def getbestblockhash(self) -> str:
        with self.node.lock:
            return hash_to_hex(self.node.index.tip.hash)

    def getblockhash(self, height: int) -> str:
        with self.node.lock:
            index = self.node.index
            if not 0 <= height <= index.height:
                raise RpcError(RPC_INVALID_PARAMETER, "Block height out of range")
            return hash_to_hex(index.blocks[height].hash)

    def getblock(self, blockhash: str, verbosity: int) -> Any:
        block_hash = _parse_txid(blockhash, "blockhash")
        with self.node.lock:
            record = self.node.index.block_by_hash(block_hash)
            if record is None:
                raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
            if verbosity <= 0:
                return record.raw.hex()
            undo = self.node.kernel.spent_outputs(record.height) if verbosity >= 2 else None
            return corejson.block_json(self.node.index, record, verbosity, undo)

    def gettxout(self, txid: str, n: int, include_mempool: bool) -> Any:
        prev_txid = _parse_txid(txid)
        with self.node.lock:
            index = self.node.index
            coin = index.utxos.get((prev_txid, n))
            if coin is None:
                return None
            return {
                "bestblock": hash_to_hex(index.tip.hash),
                "confirmations": index.height - coin.height + 1,
                "value": Btc(coin.value),
                "scriptPubKey": corejson.script_pubkey_json(coin.script_pubkey),
                "coinbase": coin.is_coinbase,
            }

    def getrawtransaction(self, txid: str, verbosity: int, blockhash: str | None) -> Any:
        wanted = _parse_txid(txid)
        in_block = _parse_txid(blockhash, "blockhash") if blockhash is not None else None
        with self.node.lock:
            index = self.node.index
            if in_block is not None and index.block_by_hash(in_block) is None:
                raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Block hash not found")
            found = index.transaction(wanted)
            if found is None or (in_block is not None and found[1].hash != in_block):
                if in_block is not None:
                    raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "No such transaction found in the provided block.")
                raise RpcError(
                    RPC_INVALID_ADDRESS_OR_KEY,
                    "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.",
                )
            tx, record, position = found
            if verbosity <= 0:
                return tx.serialize().hex()
            spent = None
            if verbosity >= 2 and position > 0:
                spent = self.node.kernel.spent_outputs(record.height)[position - 1]
            entry = corejson.tx_json(tx, include_hex=True, spent=spent, show_prevout=verbosity >= 2)
            if in_block is not None:
                entry["in_active_chain"] = True
            entry["blockhash"] = hash_to_hex(record.hash)
            entry["confirmations"] = index.height - record.height + 1
            entry["time"] = record.block.header.time
            entry["blocktime"] = record.block.header.time
            return entry

    # Transactions ----------------------------------------------------------

    def sendrawtransaction(self, hexstring: str, maxfeerate: Any, maxburnamount: Any) -> str:
        tx = _parse_tx(hexstring)
        max_fee_rate = DEFAULT_MAX_FEE_RATE_SAT_PER_KVB if maxfeerate is None else _parse_fee_rate(maxfeerate)
        max_burn = 0 if maxburnamount is None else _parse_fee_rate(maxburnamount)
        return self.node.send(tx, max_fee_rate, max_burn)

    def testmempoolaccept(self, rawtxs: list, maxfeerate: Any) -> list[dict[str, Any]]:
        for i, raw in enumerate(rawtxs):
            if not isinstance(raw, str):
                raise RpcError(
                    RPC_TYPE_ERROR, f"rawtxs[{i}]: JSON value of type {_json_type(raw)} is not of expected type string"
                )
        txs = [_parse_tx(raw) for raw in rawtxs]
        max_fee_rate = DEFAULT_MAX_FEE_RATE_SAT_PER_KVB if maxfeerate is None else _parse_fee_rate(maxfeerate)
        return self.node.test(txs, max_fee_rate)

    # Tests' methods ----------------------------------------------------------

    def generatetoaddress(self, nblocks: int, address: str, maxtries: int | None) -> list[str]:
        _check_block_count(nblocks)
        return self.node.mine(nblocks, _address_script(address))

    def generate(self, nblocks: int) -> list[str]:
        """Not in Core (removed there): mine to the node's own key."""
        _check_block_count(nblocks)
        return self.node.mine(nblocks)

    def fundaddress(self, address: str, sats: int) -> dict[str, Any]:
        """Not in Core: pay `sats` to `address` from the node's key, confirmed."""
        txid, vout = self.node.fund(_address_script(address), sats)
        return {"txid": txid, "vout": vout}

    def getminingaddress(self) -> str:
        """Not in Core: the P2TR address of the node's own key."""
        return self.node.wallet.address

    def help(self) -> str:
        return "\n".join(f"{name} {m.usage}".strip() for name, m in sorted(self.table.items()))

    def stop(self) -> str:
        self.stop_pending = True
        return "regtest node stopping"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RpcServer
    timeout = IDLE_TIMEOUT_SECONDS

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:].strip(), validate=True)
        except ValueError:
            return False
        return hmac.compare_digest(given, self.server.credentials)

    def do_GET(self) -> None:
        self._reply(405, headers={"Allow": "POST"})

    def do_POST(self) -> None:
        if not self._authorized():
            self._reply(401, headers={"WWW-Authenticate": 'Basic realm="jsonrpc"'})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._reply(411)
            return
        if not 0 <= length <= MAX_BODY_BYTES:
            self._reply(413)
            self.close_connection = True
            return
        body = self.rfile.read(length)
        status, reply = self.server.answer(body)
        self._reply(status, b"" if reply is None else corejson.dumps(reply).encode() + b"\n")
        if self.server.methods.stop_pending:
            self.close_connection = True
            self.server.on_stop()


class RpcServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, credentials: bytes, methods: Methods, on_stop: Callable[[], None]):
        self.credentials = credentials
        self.methods = methods
        self.on_stop = on_stop
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        # One thread per connection, at most MAX_CONNECTIONS at once.
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def answer(self, body: bytes) -> tuple[int, Any]:
        """(HTTP status, reply) for a request body, as Core's HTTP RPC server answers."""
        try:
            request = json.loads(body)
        except ValueError:
            return 500, _legacy_reply(None, None, RpcError(RPC_PARSE_ERROR, "Parse error"))
        if isinstance(request, list):
            replies = [r for r in (self._answer_one(item)[1] for item in request) if r is not None]
            return 200, replies
        if isinstance(request, dict):
            status, reply = self._answer_one(request)
            return (204, None) if reply is None else (status, reply)
        return 500, _legacy_reply(None, None, RpcError(RPC_PARSE_ERROR, "Top-level object parse error"))

    def _answer_one(self, request: Any) -> tuple[int, Any]:
        if not isinstance(request, dict):
            return 400, _legacy_reply(None, None, RpcError(RPC_INVALID_REQUEST, "Invalid Request object"))
        request_id = request.get("id")
        version = request.get("jsonrpc")
        v2 = version == "2.0"
        try:
            if version is not None and not v2 and version != "1.0":
                raise RpcError(RPC_INVALID_REQUEST, "JSON-RPC version not supported")
            method = request.get("method")
            if not isinstance(method, str):
                raise RpcError(RPC_INVALID_REQUEST, "Method must be a string")
            result = self.methods.call(method, request.get("params"))
            error = None
        except RpcError as err:
            result, error = None, err
        except Exception as err:  # a bug: say so rather than drop the connection
            log.exception("RPC %s failed", request.get("method"))
            result, error = None, RpcError(RPC_INTERNAL_ERROR, f"internal error: {err}")
        if v2:
            if "id" not in request:
                return 204, None  # a notification gets no reply
            reply: dict[str, Any] = {"jsonrpc": "2.0"}
            if error is None:
                reply["result"] = result
            else:
                reply["error"] = error.to_json()
            reply["id"] = request_id
            return 200, reply
        return _legacy_status(error), _legacy_reply(result, request_id, error)


def _legacy_status(error: RpcError | None) -> int:
    if error is None:
        return 200
    if error.code == RPC_INVALID_REQUEST:
        return 400
    if error.code == RPC_METHOD_NOT_FOUND:
        return 404
    return 500


def _legacy_reply(result: Any, request_id: Any, error: RpcError | None) -> dict[str, Any]:
    return {"result": result, "error": None if error is None else error.to_json(), "id": request_id}
