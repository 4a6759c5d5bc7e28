"""The regtest node: the kernel's chainstate, the index of what it connected and
the node's own key, behind one lock.

There is no mempool. `send` puts a transaction alone in a new block and the
kernel must connect that block, so a transaction is either confirmed by Bitcoin
Core's consensus code or refused with Core's reason and the chain unchanged.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .corejson import Btc
from .encoding import Block, Tx, TxOut, hash_to_hex
from .errors import (
    RPC_INVALID_PARAMETER,
    RPC_VERIFY_ALREADY_IN_UTXO_SET,
    RPC_VERIFY_ERROR,
    RPC_VERIFY_REJECTED,
    RPC_WALLET_INSUFFICIENT_FUNDS,
    RpcError,
)
from .index import ChainIndex, is_unspendable
from .kernel import BlockRefused, Kernel, ScratchChain
from .mining import COINBASE_MATURITY, assemble_block, median_time_past
from .wallet import MAX_MONEY, InsufficientFunds, MinerWallet

# Core's defaults for sendrawtransaction's maxfeerate (BTC/kvB, in sats) and maxburnamount.
DEFAULT_MAX_FEE_RATE_SAT_PER_KVB = 10_000_000
MAX_PACKAGE_COUNT = 25
# Reject reason the kernel gives for a missing or spent input (Core's TX_MISSING_INPUTS).
MISSING_INPUTS_REASON = "bad-txns-inputs-missingorspent"


@dataclass
class _Tip:
    """Where the next block goes: the node's tip, or a candidate on a scratch chain."""

    hash: bytes
    bits: int
    height: int
    times: list[int]  # of the last 11 blocks, for the median time past

    def next_block(self, txs: list[Tx], fees: int, payout_script: bytes) -> Block:
        return assemble_block(self.hash, self.bits, self.height + 1, self.times, txs, fees, payout_script)

    def after(self, block: Block) -> _Tip:
        return _Tip(block.hash, block.header.bits, self.height + 1, (self.times + [block.header.time])[-11:])


class RegtestNode:
    def __init__(self, datadir: Path):
        self.datadir = datadir
        self.lock = threading.RLock()
        self.kernel = Kernel(datadir / "kernel")
        self.index = ChainIndex()
        for raw in self.kernel.active_blocks():
            self.index.append(raw, Block.parse(raw))
        self.wallet = MinerWallet(datadir)
        ScratchChain.remove_leftovers(datadir)
        self._scratch: ScratchChain | None = None

    def close(self) -> None:
        with self.lock:
            if self._scratch is not None:
                self._scratch.close()
                self._scratch = None
            self.kernel.close()

    def _scratch_chain(self) -> ScratchChain:
        """The scratch chain, caught up with the node's, started anew when it must be."""
        if self._scratch is not None and not self._scratch.usable_at(self.index.height):
            self._scratch.close()
            self._scratch = None
        if self._scratch is None:
            self._scratch = ScratchChain(self.datadir)
        self._scratch.follow([(r.raw, r.hash) for r in self.index.blocks])
        return self._scratch

    # Mining --------------------------------------------------------------

    def _tip(self) -> _Tip:
        tip = self.index.tip
        return _Tip(tip.hash, tip.block.header.bits, tip.height, self.index.times())

    def _connect(self, txs: list[Tx], payout_script: bytes) -> bytes:
        """Mine a block with `txs` on the tip; the kernel must connect it."""
        block = self._tip().next_block(txs, self._fees(txs), payout_script)
        raw = block.serialize()
        self.kernel.connect(raw, block.hash)
        self.index.append(raw, block)
        return block.hash

    def mine(self, count: int, payout_script: bytes | None = None) -> list[str]:
        script = self.wallet.script_pubkey if payout_script is None else payout_script
        with self.lock:
            hashes = []
            for _ in range(count):
                try:
                    hashes.append(hash_to_hex(self._connect([], script)))
                except BlockRefused as refused:
                    raise RpcError(RPC_VERIFY_REJECTED, f"the kernel refused a mined block: {refused.reason}")
            return hashes

    def ensure_mature_coinbase(self) -> None:
        """A fresh chain gets COINBASE_MATURITY + 1 blocks, so one coinbase is spendable."""
        with self.lock:
            missing = COINBASE_MATURITY + 1 - self.index.height
            if missing > 0:
                self.mine(missing)

    # Fees ----------------------------------------------------------------

    def _input_value(self, txid: bytes, vout: int, created: dict[tuple[bytes, int], TxOut]) -> int | None:
        coin = self.index.utxos.get((txid, vout))
        if coin is not None:
            return coin.value
        out = created.get((txid, vout))
        return None if out is None else out.value

    def _fee(self, tx: Tx, created: dict[tuple[bytes, int], TxOut] | None = None) -> int | None:
        """Inputs minus outputs, or None while an input is unknown (the kernel will say why)."""
        created = created or {}
        total = 0
        for txin in tx.inputs:
            value = self._input_value(txin.prev_txid, txin.prev_vout, created)
            if value is None:
                return None
            total += value
        return total - sum(out.value for out in tx.outputs)

    def _fees(self, txs: list[Tx]) -> int:
        """What the coinbase may claim: only fees that are known and not negative;
        an overclaim would make the kernel refuse the block for the wrong reason."""
        created: dict[tuple[bytes, int], TxOut] = {}
        total = 0
        for tx in txs:
            fee = self._fee(tx, created)
            if fee is not None and fee > 0:
                total += fee
            for n, out in enumerate(tx.outputs):
                created[(tx.txid, n)] = out
        return total

    def _already_confirmed(self, tx: Tx) -> bool:
        txid = tx.txid
        return any((txid, n) in self.index.utxos for n in range(len(tx.outputs)))

    # Transactions ----------------------------------------------------------

    def send(self, tx: Tx, max_fee_rate: int = DEFAULT_MAX_FEE_RATE_SAT_PER_KVB, max_burn: int = 0) -> str:
        """sendrawtransaction: confirm `tx` in a new block or refuse it, chain unchanged."""
        with self.lock:
            if self._already_confirmed(tx):
                raise RpcError(RPC_VERIFY_ALREADY_IN_UTXO_SET, "Transaction outputs already in utxo set")
            for out in tx.outputs:
                if is_unspendable(out.script_pubkey) and out.value > max_burn:
                    raise RpcError(
                        RPC_VERIFY_ERROR, "Unspendable output exceeds maximum configured by user (maxburnamount)"
                    )
            fee = self._fee(tx)
            if fee is not None and max_fee_rate > 0 and fee > _fee_at_rate(max_fee_rate, tx.vsize):
                raise RpcError(RPC_VERIFY_ERROR, "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)")
            try:
                self._connect([tx], self.wallet.script_pubkey)
            except BlockRefused as refused:
                code = RPC_VERIFY_ERROR if refused.reason.startswith(MISSING_INPUTS_REASON) else RPC_VERIFY_REJECTED
                raise RpcError(code, refused.reason) from None
            return hash_to_hex(tx.txid)

    def test(self, txs: list[Tx], max_fee_rate: int = DEFAULT_MAX_FEE_RATE_SAT_PER_KVB) -> list[dict[str, Any]]:
        """testmempoolaccept: each transaction in its own candidate block, in order,
        on a scratch chain that follows the node's, so the kernel judges exactly
        what sendrawtransaction of each in turn would do; the node keeps nothing."""
        if not 1 <= len(txs) <= MAX_PACKAGE_COUNT:
            raise RpcError(RPC_INVALID_PARAMETER, f"Array must contain between 1 and {MAX_PACKAGE_COUNT} transactions.")
        with self.lock:
            scratch = self._scratch_chain()
            tip = self._tip()
            results: list[dict[str, Any]] = []
            created: dict[tuple[bytes, int], TxOut] = {}
            failed = False
            for tx in txs:
                result: dict[str, Any] = {"txid": hash_to_hex(tx.txid), "wtxid": hash_to_hex(tx.wtxid)}
                results.append(result)
                if failed:
                    continue  # as Core: validation of the rest is unfinished
                reason = self._pre_check(tx, created, max_fee_rate)
                if reason is None:
                    fee = self._fee(tx, created) or 0
                    block = tip.next_block([tx], max(fee, 0), self.wallet.script_pubkey)
                    try:
                        scratch.kernel.connect(block.serialize(), block.hash)
                    except BlockRefused as refused:
                        reason = refused.reason
                if reason is not None:
                    failed = True
                    code = reason.split(",", 1)[0].strip()
                    result["allowed"] = False
                    result["reject-reason"] = "missing-inputs" if code == MISSING_INPUTS_REASON else code
                    result["reject-details"] = reason
                    continue
                fee = self._fee(tx, created) or 0
                result.update(
                    allowed=True,
                    vsize=tx.vsize,
                    fees={
                        "base": Btc(fee),
                        "effective-feerate": Btc(fee * 1000 // tx.vsize),
                        "effective-includes": [result["wtxid"]],
                    },
                )
                for n, out in enumerate(tx.outputs):
                    created[(tx.txid, n)] = out
                tip = tip.after(block)
            return results

    def _pre_check(self, tx: Tx, created: dict, max_fee_rate: int) -> str | None:
        """The refusals Core's testmempoolaccept makes before consensus checks."""
        txid = tx.txid
        if self._already_confirmed(tx) or any((txid, n) in created for n in range(len(tx.outputs))):
            return "txn-already-known"
        fee = self._fee(tx, created)
        if fee is not None and max_fee_rate > 0 and fee > _fee_at_rate(max_fee_rate, tx.vsize):
            return "max-fee-exceeded"
        return None

    # Funding ---------------------------------------------------------------

    def fund(self, script_pubkey: bytes, sats: int) -> tuple[str, int]:
        """Pay `sats` from the node's key to `script_pubkey`, confirmed in a new block."""
        if not 1 <= sats <= MAX_MONEY:
            raise RpcError(
                RPC_INVALID_PARAMETER, f"Invalid amount {sats}: give a whole number of sats from 1 to {MAX_MONEY}"
            )
        with self.lock:
            while True:
                try:
                    tx = self.wallet.pay(self.index, script_pubkey, sats)
                    break
                except InsufficientFunds as short:
                    # Immature coinbases all mature within COINBASE_MATURITY blocks;
                    # mine only if they would cover the payment, else change nothing.
                    immature = self._immature_balance()
                    if short.available + immature < short.needed:
                        raise RpcError(
                            RPC_WALLET_INSUFFICIENT_FUNDS,
                            f"Insufficient funds: the node's key holds {short.available} sats in spendable "
                            f"outputs and {immature} in immature coinbases, and {short.needed} are needed "
                            f"(amount and fee); ask for less, or mine more blocks first (regtest mine DIR N).",
                        ) from None
                    self.mine(1)
            try:
                self._connect([tx], self.wallet.script_pubkey)
            except BlockRefused as refused:
                raise RpcError(
                    RPC_VERIFY_REJECTED, f"the kernel refused the funding transaction: {refused.reason}"
                ) from None
            return hash_to_hex(tx.txid), 0

    def _immature_balance(self) -> int:
        spendable = {outpoint for outpoint, _ in self.wallet.spendable(self.index)}
        return sum(
            coin.value
            for outpoint, coin in self.index.utxos.items()
            if coin.script_pubkey == self.wallet.script_pubkey and outpoint not in spendable
        )

    # Queries ---------------------------------------------------------------

    def median_time(self) -> int:
        return median_time_past(self.index.times())


def _fee_at_rate(sat_per_kvb: int, vsize: int) -> int:
    """Core's CFeeRate::GetFee, rounded up."""
    return -(-sat_per_kvb * vsize // 1000)
