"""Block assembly as Bitcoin Core's miner does it on regtest: the coinbase with
its BIP-34 height and (for blocks with witness data) the BIP-141 witness
commitment, a timestamp past the median time, and real proof of work at the
previous block's target (regtest never retargets)."""

from __future__ import annotations

import os
import struct
import time

from .encoding import (
    Block,
    BlockHeader,
    Tx,
    TxIn,
    TxOut,
    bits_to_target,
    merkle_root,
    sha256d,
)

COIN = 100_000_000
# Regtest halves the subsidy every 150 blocks (mainnet: 210 000).
REGTEST_HALVING_INTERVAL = 150
COINBASE_MATURITY = 100
# Version bits top bits, as Core's miner sets them (BIP-9).
BLOCK_VERSION = 0x20000000
WITNESS_COMMITMENT_HEADER = b"\xaa\x21\xa9\xed"
# Proof of work at regtest's target takes two tries on average; a bound keeps a
# wrong target from spinning forever.
MAX_NONCE_TRIES = 1 << 24


def block_subsidy(height: int) -> int:
    halvings = height // REGTEST_HALVING_INTERVAL
    return 0 if halvings >= 64 else (50 * COIN) >> halvings


def script_num(n: int) -> bytes:
    """CScriptNum serialization (minimal little-endian, sign bit)."""
    if n == 0:
        return b""
    negative = n < 0
    n = abs(n)
    out = bytearray()
    while n:
        out.append(n & 0xFF)
        n >>= 8
    if out[-1] & 0x80:
        out.append(0x80 if negative else 0)
    elif negative:
        out[-1] |= 0x80
    return bytes(out)


def push_int(n: int) -> bytes:
    """`CScript() << n`: OP_0, OP_1..OP_16 or a minimal push (what BIP-34 compares against)."""
    if n == 0:
        return b"\x00"
    if 1 <= n <= 16:
        return bytes([0x50 + n])
    data = script_num(n)
    return bytes([len(data)]) + data


def median_time_past(times: list[int]) -> int:
    """Median of the last 11 block times (Core's GetMedianTimePast)."""
    last = sorted(times[-11:])
    return last[len(last) // 2]


def witness_commitment_script(txs: list[Tx]) -> bytes:
    """The coinbase output committing to every transaction's wtxid (BIP-141)."""
    wtxids = [b"\x00" * 32] + [tx.wtxid for tx in txs[1:]]
    commitment = sha256d(merkle_root(wtxids) + b"\x00" * 32)
    return b"\x6a\x24" + WITNESS_COMMITMENT_HEADER + commitment


def assemble_block(
    prev_hash: bytes,
    prev_bits: int,
    height: int,
    recent_times: list[int],
    txs: list[Tx],
    fees: int,
    payout_script: bytes,
    now: int | None = None,
) -> Block:
    """A block on `prev_hash` holding `txs`, paying subsidy plus `fees` to `payout_script`."""
    # BIP-34 height, then an extra nonce: no two blocks are alike, so a block
    # refused once never comes back as the kernel's cached "duplicate-invalid"
    # in place of its reason (and the scriptSig has the two bytes consensus needs).
    extra_nonce = os.urandom(4)
    coinbase_in = TxIn(b"\x00" * 32, 0xFFFFFFFF, push_int(height) + bytes([4]) + extra_nonce, 0xFFFFFFFF)
    coinbase = Tx(2, [coinbase_in], [TxOut(block_subsidy(height) + fees, payout_script)], 0)
    all_txs = [coinbase] + list(txs)
    if any(tx.has_witness for tx in txs):
        coinbase.outputs.append(TxOut(0, witness_commitment_script(all_txs)))
        # The witness reserved value the commitment hashes with.
        coinbase_in.witness = [b"\x00" * 32]
    now = int(time.time()) if now is None else now
    header = BlockHeader(
        version=BLOCK_VERSION,
        prev_hash=prev_hash,
        merkle_root=merkle_root([tx.txid for tx in all_txs]),
        time=max(now, median_time_past(recent_times) + 1),
        bits=prev_bits,
        nonce=0,
    )
    solve(header)
    return Block(header, all_txs)


def solve(header: BlockHeader) -> None:
    """Grind the nonce until the header's hash meets its target."""
    target = bits_to_target(header.bits)
    prefix = header.serialize()[:76]
    for nonce in range(MAX_NONCE_TRIES):
        if int.from_bytes(sha256d(prefix + struct.pack("<I", nonce)), "little") <= target:
            header.nonce = nonce
            return
    raise RuntimeError(f"no nonce meets target bits 0x{header.bits:08x}")
