"""The node's only judge of validity: Bitcoin Core's libbitcoinkernel, through
py-bitcoinkernel (pbk).

Every block goes through `ChainstateManager.process_block`, which runs Core's
CheckBlock, AcceptBlock and, when the block extends the best chain, ConnectBlock
(all scripts, amounts, coinbase maturity, BIP-68/113 locks, sigops, weight,
the witness commitment and BIP-34). `process_block` reports only the first two
through its return value; a block that fails ConnectBlock is stored, marked
invalid and the tip stays where it was. So a block counts as connected exactly
when the active chain's tip is that block afterwards, and the reason for a
refusal is read from the kernel's own log line, which carries Core's reject
reason ("bad-txns-inputs-missingorspent, ...").
"""

from __future__ import annotations

import gc
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Self

import pbk

from .encoding import hash_to_hex

# Kernel log lines that carry the reason a block was refused, most specific first.
_REFUSAL_PATTERNS = [
    re.compile(r"ConnectBlock [0-9a-f]{64} failed, (?P<reason>.+)$"),
    re.compile(r"AcceptBlock FAILED \((?P<reason>.+)\)$"),
    re.compile(r"CheckBlock FAILED \((?P<reason>.+)\)$"),
    re.compile(r"Block validation error: (?P<reason>.+)$"),
]


class BlockRefused(Exception):
    """The kernel did not connect a block; `reason` is Core's reject reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class KernelLog:
    """The kernel's log, which is one per process: written to the node's log
    and, while a block is being processed, kept to find why it was refused."""

    _instance: KernelLog | None = None

    def __init__(self) -> None:
        self._sink: Callable[[str], None] | None = None
        self._captured: list[str] | None = None
        self._quiet = False
        self._guard = threading.Lock()
        pbk.set_log_level_category(pbk.LogCategory.ALL, pbk.LogLevel.INFO)
        self._connection = pbk.LoggingConnection(self._receive)

    @classmethod
    def get(cls) -> KernelLog:
        if cls._instance is None:
            cls._instance = KernelLog()
        return cls._instance

    def set_sink(self, sink: Callable[[str], None] | None) -> None:
        self._sink = sink

    def _receive(self, message: str) -> None:
        message = message.rstrip("\n")
        with self._guard:
            if self._captured is not None:
                self._captured.append(message)
            sink = None if self._quiet else self._sink
        if sink is not None:
            sink(message)

    def capture(self, quiet: bool = False) -> _Capture:
        return _Capture(self, quiet)


class _Capture:
    def __init__(self, log: KernelLog, quiet: bool):
        self._log = log
        self._quiet = quiet
        self.lines: list[str] = []

    def __enter__(self) -> Self:
        with self._log._guard:
            self._log._captured = self.lines
            self._log._quiet = self._quiet
        return self

    def __exit__(self, *exc: object) -> None:
        with self._log._guard:
            self._log._captured = None
            self._log._quiet = False

    def refusal_reason(self) -> str | None:
        for pattern in _REFUSAL_PATTERNS:
            for line in self.lines:
                match = pattern.search(line)
                if match:
                    return match.group("reason").strip()
        return None


class Kernel:
    """One chainstate (blocks and UTXO set) validated by libbitcoinkernel.

    Not thread-safe by itself: the node serialises every call under its lock,
    which also keeps the captured log lines of one block apart from another's.
    """

    def __init__(self, datadir: Path, in_memory: bool = False, quiet: bool = False):
        """`quiet` keeps this chainstate's kernel messages out of the node's log
        (a scratch chainstate's tips are not the node's)."""
        self.log = KernelLog.get()
        self.datadir = datadir
        self.quiet = quiet
        with self.log.capture(quiet=quiet):
            self._context = pbk.make_context(pbk.ChainType.REGTEST)
            options = pbk.ChainstateManagerOptions(
                self._context, str(datadir.absolute()), str((datadir / "blocks").absolute())
            )
            if in_memory:
                options.update_block_tree_db_in_memory(True)
                options.update_chainstate_db_in_memory(True)
            self._chainman: pbk.ChainstateManager | None = pbk.ChainstateManager(options)

    @property
    def chainman(self) -> pbk.ChainstateManager:
        if self._chainman is None:
            raise RuntimeError("the kernel chainstate is closed")
        return self._chainman

    def tip(self) -> tuple[int, bytes]:
        """(height, hash in internal byte order) of the active chain's tip."""
        chain = self.chainman.get_active_chain()
        entry = chain.block_tree_entries[chain.height]
        return entry.height, bytes(entry.block_hash)

    def active_blocks(self, from_height: int = 0) -> Iterator[bytes]:
        """The serialized blocks of the active chain, from `from_height` to the tip."""
        chain = self.chainman.get_active_chain()
        blocks = self.chainman.blocks
        for height in range(from_height, chain.height + 1):
            yield bytes(blocks[chain.block_tree_entries[height]])

    def spent_outputs(self, height: int) -> list[list[tuple[int, bytes, int, bool]]]:
        """The kernel's undo data of the block at `height`: per non-coinbase
        transaction, per input, (value, script, height, is_coinbase) of the coin spent."""
        chain = self.chainman.get_active_chain()
        entry = chain.block_tree_entries[height]
        if height == 0:
            return []
        undo = self.chainman.block_spent_outputs[entry]
        result = []
        for tx_undo in undo.transactions:
            coins = []
            for coin in tx_undo.coins:
                out = coin.output
                coins.append((out.amount, bytes(out.script_pubkey), coin.confirmation_height, coin.is_coinbase))
            result.append(coins)
        return result

    def connect(self, raw_block: bytes, block_hash: bytes) -> None:
        """Hand a block to the kernel; returns once it is the tip, else raises BlockRefused."""
        with self.log.capture(quiet=self.quiet) as capture:
            try:
                self.chainman.process_block(pbk.Block(raw_block))
            except pbk.ProcessBlockException:
                pass  # CheckBlock/AcceptBlock refused it; the log says why.
            except RuntimeError as err:  # the kernel could not even parse it
                raise BlockRefused(f"block decode failed ({err})") from None
        _, tip_hash = self.tip()
        if tip_hash != block_hash:
            reason = capture.refusal_reason() or (
                f"the kernel did not connect block {hash_to_hex(block_hash)} and logged no reason"
            )
            raise BlockRefused(reason)

    def submit(self, raw_block: bytes) -> None:
        """Hand the kernel a block known to be valid, without waiting for it to be the tip."""
        with self.log.capture(quiet=self.quiet):
            self.chainman.process_block(pbk.Block(raw_block))

    def close(self) -> None:
        """Flush the chainstate to disk and release the data directory."""
        with self.log.capture(quiet=self.quiet):
            self._chainman = None
            self._context = None
            gc.collect()


class ScratchChain:
    """A throwaway in-memory chainstate following the node's chain, on which
    the kernel judges candidate blocks without touching the node's own chain.

    A candidate it connects stays its tip until the node's chain overtakes it:
    a later candidate on the node's tip then has more work and the kernel
    reorganises onto it, validating it against exactly the node's UTXO set.
    Only while an earlier candidate is higher than the node's tip would a new
    one tie on work (and lose, first seen); `usable_at` tells the node to start
    a fresh one then.
    """

    def __init__(self, datadir: Path):
        self._dir = Path(tempfile.mkdtemp(prefix="scratch-", dir=datadir))
        self.kernel = Kernel(self._dir, in_memory=True, quiet=True)
        self._fed = 1  # the kernel makes the genesis block itself

    def usable_at(self, node_height: int) -> bool:
        return self.kernel.tip()[0] <= node_height

    def follow(self, blocks: Sequence[tuple[bytes, bytes]]) -> None:
        """Feed the node's blocks (raw, hash) by height, from the first not yet fed."""
        for raw, _ in blocks[self._fed :]:
            # Already connected on the node's chain; here it may tie with a
            # candidate and wait, which is fine: the next candidate builds on it.
            self.kernel.submit(raw)
        self._fed = max(self._fed, len(blocks))

    def close(self) -> None:
        self.kernel.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    @staticmethod
    def remove_leftovers(datadir: Path) -> None:
        """Scratch directories a node that did not stop cleanly left behind."""
        for leftover in datadir.glob("scratch-*"):
            shutil.rmtree(leftover, ignore_errors=True)
