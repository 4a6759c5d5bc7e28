"""What the RPC answers from: the blocks of the active chain, where each
transaction sits, and the unspent outputs.

The kernel's C API exposes neither a UTXO lookup nor a transaction index, so
this index is derived, block by block, from exactly the blocks the kernel
connected (and rebuilt from the kernel's block files on start). It never
decides validity; it only remembers what the kernel accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

from .encoding import Block, Tx, block_work

# Core's MAX_SCRIPT_SIZE: longer output scripts are unspendable and never enter the UTXO set.
MAX_SCRIPT_SIZE = 10_000


@dataclass(frozen=True)
class Coin:
    value: int
    script_pubkey: bytes
    height: int
    is_coinbase: bool


@dataclass
class BlockRecord:
    height: int
    hash: bytes
    raw: bytes
    block: Block
    chainwork: int


def is_unspendable(script: bytes) -> bool:
    return (len(script) > 0 and script[0] == 0x6A) or len(script) > MAX_SCRIPT_SIZE


class ChainIndex:
    def __init__(self) -> None:
        self.blocks: list[BlockRecord] = []
        self.heights: dict[bytes, int] = {}
        self.tx_location: dict[bytes, tuple[int, int]] = {}
        self.utxos: dict[tuple[bytes, int], Coin] = {}

    @property
    def tip(self) -> BlockRecord:
        return self.blocks[-1]

    @property
    def height(self) -> int:
        return len(self.blocks) - 1

    def append(self, raw: bytes, block: Block) -> BlockRecord:
        """Record a block the kernel has just connected on top of the tip."""
        height = len(self.blocks)
        if height and block.header.prev_hash != self.tip.hash:
            raise RuntimeError("index out of step with the kernel: block does not extend the tip")
        work = block_work(block.header.bits) + (self.tip.chainwork if height else 0)
        record = BlockRecord(height, block.hash, raw, block, work)
        self.blocks.append(record)
        self.heights[record.hash] = height
        if height == 0:
            return record  # the genesis coinbase is not spendable and not indexed, as in Core
        for position, tx in enumerate(block.txs):
            txid = tx.txid
            self.tx_location[txid] = (height, position)
            if not tx.is_coinbase:
                for txin in tx.inputs:
                    self.utxos.pop((txin.prev_txid, txin.prev_vout), None)
            for vout, out in enumerate(tx.outputs):
                if not is_unspendable(out.script_pubkey):
                    self.utxos[(txid, vout)] = Coin(out.value, out.script_pubkey, height, tx.is_coinbase)
        return record

    def transaction(self, txid: bytes) -> tuple[Tx, BlockRecord, int] | None:
        """(transaction, its block, its position) for a confirmed txid."""
        location = self.tx_location.get(txid)
        if location is None:
            return None
        height, position = location
        record = self.blocks[height]
        return record.block.txs[position], record, position

    def block_by_hash(self, block_hash: bytes) -> BlockRecord | None:
        height = self.heights.get(block_hash)
        return None if height is None else self.blocks[height]

    def times(self, count: int = 11) -> list[int]:
        return [record.block.header.time for record in self.blocks[-count:]]
