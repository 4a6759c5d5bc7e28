"""Transactions, blocks and scripts in the JSON shapes of Bitcoin Core's RPC
(TxToUniv, blockToJSON, ScriptPubKeyToUniv), amounts in BTC with 8 decimals."""

from __future__ import annotations

import json
import re
from typing import Any

from .address import script_to_address, script_type
from .encoding import Block, Tx, bits_to_target, hash_to_hex
from .index import BlockRecord, ChainIndex
from .mining import median_time_past

# A spent coin as the kernel's undo data gives it: (value, script, height, is_coinbase).
SpentCoin = tuple[int, bytes, int, bool]


class Btc:
    """An amount in sats that JSON prints as Core does: BTC with 8 decimals."""

    __slots__ = ("sats",)

    def __init__(self, sats: int):
        self.sats = sats


_AMOUNT_TOKEN = re.compile(r'"\\u0000BTC(-?\d+)\\u0000"')


def _amount_text(sats: int) -> str:
    sign = "-" if sats < 0 else ""
    whole, frac = divmod(abs(sats), 100_000_000)
    return f"{sign}{whole}.{frac:08d}"


def dumps(value: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, Btc):
            return f"\x00BTC{obj.sats}\x00"
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")

    text = json.dumps(value, default=default, separators=(",", ":"))
    return _AMOUNT_TOKEN.sub(lambda m: _amount_text(int(m.group(1))), text)


_OP_NAMES = {0x00: "0", 0x4F: "-1", 0x50: "OP_RESERVED"}
_OP_NAMES.update({0x50 + n: str(n) for n in range(1, 17)})
for _code, _name in enumerate(
    (
        "NOP VER IF NOTIF VERIF VERNOTIF ELSE ENDIF VERIFY RETURN TOALTSTACK FROMALTSTACK 2DROP "
        "2DUP 3DUP 2OVER 2ROT 2SWAP IFDUP DEPTH DROP DUP NIP OVER PICK ROLL ROT SWAP TUCK CAT "
        "SUBSTR LEFT RIGHT SIZE INVERT AND OR XOR EQUAL EQUALVERIFY RESERVED1 RESERVED2 1ADD "
        "1SUB 2MUL 2DIV NEGATE ABS NOT 0NOTEQUAL ADD SUB MUL DIV MOD LSHIFT RSHIFT BOOLAND "
        "BOOLOR NUMEQUAL NUMEQUALVERIFY NUMNOTEQUAL LESSTHAN GREATERTHAN LESSTHANOREQUAL "
        "GREATERTHANOREQUAL MIN MAX WITHIN RIPEMD160 SHA1 SHA256 HASH160 HASH256 CODESEPARATOR "
        "CHECKSIG CHECKSIGVERIFY CHECKMULTISIG CHECKMULTISIGVERIFY NOP1 CHECKLOCKTIMEVERIFY "
        "CHECKSEQUENCEVERIFY NOP4 NOP5 NOP6 NOP7 NOP8 NOP9 NOP10 CHECKSIGADD"
    ).split(),
    start=0x61,
):
    _OP_NAMES[_code] = "OP_" + _name
_OP_NAMES[0xFF] = "OP_INVALIDOPCODE"


def script_asm(script: bytes) -> str:
    """Core's ScriptToAsmStr (without signature-hash decoding)."""
    parts = []
    i = 0
    while i < len(script):
        op = script[i]
        i += 1
        if 0x01 <= op <= 0x4E:
            if op < 0x4C:
                size = op
            else:
                width = {0x4C: 1, 0x4D: 2, 0x4E: 4}[op]
                if i + width > len(script):
                    parts.append("[error]")
                    break
                size = int.from_bytes(script[i : i + width], "little")
                i += width
            if i + size > len(script):
                parts.append("[error]")
                break
            data = script[i : i + size]
            i += size
            parts.append(str(_script_num_value(data)) if size <= 4 else data.hex())
        else:
            parts.append(_OP_NAMES.get(op, "OP_UNKNOWN"))
    return " ".join(parts)


def _script_num_value(data: bytes) -> int:
    if not data:
        return 0
    value = int.from_bytes(data, "little")
    if data[-1] & 0x80:
        return -(value & ~(0x80 << (8 * (len(data) - 1))))
    return value


def script_pubkey_json(script: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"asm": script_asm(script), "hex": script.hex()}
    address = script_to_address(script)
    if address is not None:
        out["address"] = address
    out["type"] = script_type(script)
    return out


def tx_json(
    tx: Tx,
    include_hex: bool = True,
    spent: list[SpentCoin] | None = None,
    show_prevout: bool = False,
) -> dict[str, Any]:
    """TxToUniv: `spent` (undo data) adds the fee, and with `show_prevout` each input's prevout."""
    entry: dict[str, Any] = {
        "txid": hash_to_hex(tx.txid),
        "hash": hash_to_hex(tx.wtxid),
        "version": tx.version,
        "size": len(tx.serialize()),
        "vsize": tx.vsize,
        "weight": tx.weight,
        "locktime": tx.locktime,
    }
    vin = []
    for i, txin in enumerate(tx.inputs):
        item: dict[str, Any]
        if tx.is_coinbase:
            item = {"coinbase": txin.script_sig.hex()}
        else:
            item = {
                "txid": hash_to_hex(txin.prev_txid),
                "vout": txin.prev_vout,
                "scriptSig": {"asm": script_asm(txin.script_sig), "hex": txin.script_sig.hex()},
            }
        if txin.witness:
            item["txinwitness"] = [w.hex() for w in txin.witness]
        if spent is not None and show_prevout and not tx.is_coinbase:
            value, script, height, is_coinbase = spent[i]
            item["prevout"] = {
                "generated": is_coinbase,
                "height": height,
                "value": Btc(value),
                "scriptPubKey": script_pubkey_json(script),
            }
        item["sequence"] = txin.sequence
        vin.append(item)
    entry["vin"] = vin
    entry["vout"] = [
        {"value": Btc(out.value), "n": n, "scriptPubKey": script_pubkey_json(out.script_pubkey)}
        for n, out in enumerate(tx.outputs)
    ]
    if spent is not None and not tx.is_coinbase:
        entry["fee"] = Btc(sum(coin[0] for coin in spent) - sum(o.value for o in tx.outputs))
    if include_hex:
        entry["hex"] = tx.serialize().hex()
    return entry


def difficulty(bits: int) -> float:
    """Core's GetDifficulty: the target relative to difficulty 1."""
    shift = (bits >> 24) & 0xFF
    diff = 0x0000FFFF / (bits & 0x00FFFFFF)
    while shift < 29:
        diff *= 256.0
        shift += 1
    while shift > 29:
        diff /= 256.0
        shift -= 1
    return diff


def block_median_time(index: ChainIndex, height: int) -> int:
    return median_time_past([r.block.header.time for r in index.blocks[max(0, height - 10) : height + 1]])


def block_header_json(index: ChainIndex, record: BlockRecord) -> dict[str, Any]:
    header = record.block.header
    out: dict[str, Any] = {
        "hash": hash_to_hex(record.hash),
        "confirmations": index.height - record.height + 1,
        "height": record.height,
        "version": header.version,
        "versionHex": f"{header.version & 0xFFFFFFFF:08x}",
        "merkleroot": hash_to_hex(header.merkle_root),
        "time": header.time,
        "mediantime": block_median_time(index, record.height),
        "nonce": header.nonce,
        "bits": f"{header.bits:08x}",
        "target": f"{bits_to_target(header.bits):064x}",
        "difficulty": difficulty(header.bits),
        "chainwork": f"{record.chainwork:064x}",
        "nTx": len(record.block.txs),
    }
    if record.height > 0:
        out["previousblockhash"] = hash_to_hex(header.prev_hash)
    if record.height < index.height:
        out["nextblockhash"] = hash_to_hex(index.blocks[record.height + 1].hash)
    return out


def block_json(
    index: ChainIndex,
    record: BlockRecord,
    verbosity: int,
    undo: list[list[SpentCoin]] | None = None,
) -> dict[str, Any]:
    """blockToJSON: verbosity 1 lists txids, 2 decodes each transaction with
    its fee, 3 adds each input's prevout (`undo` is the kernel's undo data)."""
    block: Block = record.block
    out = block_header_json(index, record)
    out["strippedsize"] = len(block.serialize(with_witness=False))
    out["size"] = len(record.raw)
    out["weight"] = out["strippedsize"] * 3 + out["size"]
    if verbosity <= 1:
        out["tx"] = [hash_to_hex(tx.txid) for tx in block.txs]
    else:
        txs = []
        for position, tx in enumerate(block.txs):
            spent = undo[position - 1] if (undo is not None and position > 0) else None
            txs.append(tx_json(tx, include_hex=True, spent=spent, show_prevout=verbosity >= 3))
        out["tx"] = txs
    return out
