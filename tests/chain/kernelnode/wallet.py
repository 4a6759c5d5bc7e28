"""The node's own key: it receives the coinbase of every block the node mines
for itself and pays for `fund`, from taproot key-path outputs.

The key is a regtest test key of no value, kept in the data directory (mode
0600) so that a restarted node can still spend what it mined.
"""

from __future__ import annotations

import os
from pathlib import Path

from .address import encode_segwit
from .encoding import Tx, TxIn, TxOut
from .index import ChainIndex, Coin
from .mining import COINBASE_MATURITY
from .taproot import CURVE_ORDER, KeyPathSigner

# What funding transactions pay, in sat/vB: above Core's default minimum relay fee.
FUNDING_FEE_RATE = 2
# Core's dust threshold for a P2TR output; smaller change goes to the fee.
P2TR_DUST = 330
MAX_MONEY = 21_000_000 * 100_000_000


class InsufficientFunds(Exception):
    def __init__(self, available: int, needed: int):
        super().__init__(f"{available} sats spendable, {needed} needed")
        self.available = available
        self.needed = needed


class MinerWallet:
    def __init__(self, datadir: Path):
        path = datadir / "miner.key"
        if path.exists():
            secret = bytes.fromhex(path.read_text().strip())
        else:
            secret = _new_secret()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secret.hex() + "\n")
        self.signer = KeyPathSigner(secret)

    @property
    def script_pubkey(self) -> bytes:
        return self.signer.script_pubkey

    @property
    def address(self) -> str:
        return encode_segwit(1, self.signer.output_xonly)

    def spendable(self, index: ChainIndex) -> list[tuple[tuple[bytes, int], Coin]]:
        """The key's coins a transaction in the next block may spend (mature coinbases)."""
        next_height = index.height + 1
        coins = [
            (outpoint, coin)
            for outpoint, coin in index.utxos.items()
            if coin.script_pubkey == self.script_pubkey
            and (not coin.is_coinbase or next_height - coin.height >= COINBASE_MATURITY)
        ]
        coins.sort(key=lambda item: (-item[1].value, item[0]))
        return coins

    def pay(self, index: ChainIndex, script_pubkey: bytes, sats: int) -> Tx:
        """A signed transaction paying `sats` to `script_pubkey` as output 0, change to the key."""
        coins = self.spendable(index)
        chosen: list[tuple[tuple[bytes, int], Coin]] = []
        total = 0
        for outpoint, coin in coins:
            chosen.append((outpoint, coin))
            total += coin.value
            fee = FUNDING_FEE_RATE * _estimate_vsize(len(chosen), script_pubkey)
            if total >= sats + fee:
                break
        else:
            fee = FUNDING_FEE_RATE * _estimate_vsize(max(1, len(chosen)), script_pubkey)
            raise InsufficientFunds(total, sats + fee)

        tx = Tx(
            version=2,
            inputs=[TxIn(txid, vout, b"", 0xFFFFFFFD) for (txid, vout), _ in chosen],
            outputs=[TxOut(sats, script_pubkey)],
            locktime=0,
        )
        change = total - sats - fee
        if change >= P2TR_DUST:
            tx.outputs.append(TxOut(change, self.script_pubkey))
        spent = [TxOut(coin.value, coin.script_pubkey) for _, coin in chosen]
        for i, txin in enumerate(tx.inputs):
            txin.witness = [self.signer.sign(tx, i, spent)]
        return tx


def _estimate_vsize(n_inputs: int, recipient_script: bytes) -> int:
    """vsize of a funding transaction: exact for key-path inputs (64-byte
    signatures), rounded up for the recipient script's length."""
    # version, locktime, counts; segwit marker and flag count a quarter each.
    base = 4 + 4 + 1 + 1 + 1
    inputs = n_inputs * (32 + 4 + 1 + 4)
    outputs = (8 + 1 + len(recipient_script)) + (8 + 1 + 34)
    witness = 2 + n_inputs * (1 + 1 + 64)
    weight = (base + inputs + outputs) * 4 + witness
    return (weight + 3) // 4


def _new_secret() -> bytes:
    while True:
        secret = os.urandom(32)
        if 0 < int.from_bytes(secret, "big") < CURVE_ORDER:
            return secret
