"""Bitcoin's consensus serialization of transactions and blocks, and their hashes.

Parsing is strict (no trailing bytes, bounded counts) because the RPC face feeds
it whatever a test or a peer produced; a malformed transaction must be refused
with a decode error, not half-read.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

# Consensus limits used to bound what a parser accepts.
MAX_BLOCK_WEIGHT = 4_000_000
WITNESS_SCALE_FACTOR = 4


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def tagged_hash(tag: str, data: bytes) -> bytes:
    """BIP-340 tagged hash."""
    tag_hash = sha256(tag.encode())
    return sha256(tag_hash + tag_hash + data)


def hash_to_hex(h: bytes) -> str:
    """A txid or block hash as Bitcoin displays it (byte-reversed hex)."""
    return h[::-1].hex()


def hex_to_hash(text: str) -> bytes:
    """The inverse of hash_to_hex; raises ValueError unless 64 hex digits."""
    if len(text) != 64:
        raise ValueError(f"must be of length 64 (not {len(text)}, for '{text}')")
    try:
        return bytes.fromhex(text)[::-1]
    except ValueError:
        raise ValueError(f"must be hexadecimal string (not '{text}')") from None


def compact_size(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + struct.pack("<I", n)
    return b"\xff" + struct.pack("<Q", n)


def ser_bytes(data: bytes) -> bytes:
    return compact_size(len(data)) + data


class Reader:
    """Reads consensus-encoded fields; every short read raises ValueError."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("unexpected end of data")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def i32(self) -> int:
        return struct.unpack("<i", self.take(4))[0]

    def i64(self) -> int:
        return struct.unpack("<q", self.take(8))[0]

    def compact_size(self) -> int:
        first = self.u8()
        if first < 0xFD:
            n = first
        elif first == 0xFD:
            n = struct.unpack("<H", self.take(2))[0]
            if n < 0xFD:
                raise ValueError("non-canonical compact size")
        elif first == 0xFE:
            n = struct.unpack("<I", self.take(4))[0]
            if n <= 0xFFFF:
                raise ValueError("non-canonical compact size")
        else:
            n = struct.unpack("<Q", self.take(8))[0]
            if n <= 0xFFFFFFFF:
                raise ValueError("non-canonical compact size")
        # Nothing in a block can be longer than the block itself.
        if n > MAX_BLOCK_WEIGHT:
            raise ValueError("size too large")
        return n

    def var_bytes(self) -> bytes:
        return self.take(self.compact_size())

    def at_end(self) -> bool:
        return self.pos == len(self.data)


@dataclass
class TxIn:
    prev_txid: bytes  # internal byte order
    prev_vout: int
    script_sig: bytes = b""
    sequence: int = 0xFFFFFFFF
    witness: list[bytes] = field(default_factory=list)

    @property
    def is_coinbase_input(self) -> bool:
        return self.prev_txid == b"\x00" * 32 and self.prev_vout == 0xFFFFFFFF


@dataclass
class TxOut:
    value: int
    script_pubkey: bytes


@dataclass
class Tx:
    version: int
    inputs: list[TxIn]
    outputs: list[TxOut]
    locktime: int = 0

    @property
    def has_witness(self) -> bool:
        return any(txin.witness for txin in self.inputs)

    @property
    def is_coinbase(self) -> bool:
        return len(self.inputs) == 1 and self.inputs[0].is_coinbase_input

    def serialize(self, with_witness: bool = True) -> bytes:
        with_witness = with_witness and self.has_witness
        out = struct.pack("<i", self.version)
        if with_witness:
            out += b"\x00\x01"
        out += compact_size(len(self.inputs))
        for txin in self.inputs:
            out += txin.prev_txid + struct.pack("<I", txin.prev_vout)
            out += ser_bytes(txin.script_sig) + struct.pack("<I", txin.sequence)
        out += compact_size(len(self.outputs))
        for txout in self.outputs:
            out += struct.pack("<q", txout.value) + ser_bytes(txout.script_pubkey)
        if with_witness:
            for txin in self.inputs:
                out += compact_size(len(txin.witness))
                for item in txin.witness:
                    out += ser_bytes(item)
        out += struct.pack("<I", self.locktime)
        return out

    @property
    def txid(self) -> bytes:
        return sha256d(self.serialize(with_witness=False))

    @property
    def wtxid(self) -> bytes:
        return sha256d(self.serialize(with_witness=True))

    @property
    def weight(self) -> int:
        stripped = len(self.serialize(with_witness=False))
        return stripped * (WITNESS_SCALE_FACTOR - 1) + len(self.serialize())

    @property
    def vsize(self) -> int:
        return (self.weight + WITNESS_SCALE_FACTOR - 1) // WITNESS_SCALE_FACTOR

    @staticmethod
    def read(reader: Reader) -> Tx:
        version = reader.i32()
        count = reader.compact_size()
        segwit = False
        if count == 0:
            # The segwit marker (0x00) followed by the flag (0x01).
            flag = reader.u8()
            if flag != 1:
                raise ValueError("unknown transaction serialization flag")
            segwit = True
            count = reader.compact_size()
        inputs = []
        for _ in range(count):
            prev_txid = reader.take(32)
            prev_vout = reader.u32()
            script_sig = reader.var_bytes()
            sequence = reader.u32()
            inputs.append(TxIn(prev_txid, prev_vout, script_sig, sequence))
        outputs = []
        for _ in range(reader.compact_size()):
            value = reader.i64()
            outputs.append(TxOut(value, reader.var_bytes()))
        if segwit:
            for txin in inputs:
                txin.witness = [reader.var_bytes() for _ in range(reader.compact_size())]
            if not any(txin.witness for txin in inputs):
                raise ValueError("superfluous witness record")
        locktime = reader.u32()
        return Tx(version, inputs, outputs, locktime)

    @staticmethod
    def parse(data: bytes) -> Tx:
        reader = Reader(data)
        tx = Tx.read(reader)
        if not reader.at_end():
            raise ValueError("trailing bytes after the transaction")
        if not tx.inputs:
            raise ValueError("no inputs")
        return tx


@dataclass
class BlockHeader:
    version: int
    prev_hash: bytes
    merkle_root: bytes
    time: int
    bits: int
    nonce: int

    def serialize(self) -> bytes:
        return (
            struct.pack("<i", self.version)
            + self.prev_hash
            + self.merkle_root
            + struct.pack("<III", self.time, self.bits, self.nonce)
        )

    @property
    def hash(self) -> bytes:
        return sha256d(self.serialize())

    @staticmethod
    def read(reader: Reader) -> BlockHeader:
        version = reader.i32()
        prev_hash = reader.take(32)
        merkle_root = reader.take(32)
        time, bits, nonce = struct.unpack("<III", reader.take(12))
        return BlockHeader(version, prev_hash, merkle_root, time, bits, nonce)


@dataclass
class Block:
    header: BlockHeader
    txs: list[Tx]

    def serialize(self, with_witness: bool = True) -> bytes:
        out = self.header.serialize() + compact_size(len(self.txs))
        for tx in self.txs:
            out += tx.serialize(with_witness)
        return out

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @staticmethod
    def parse(data: bytes) -> Block:
        reader = Reader(data)
        header = BlockHeader.read(reader)
        txs = [Tx.read(reader) for _ in range(reader.compact_size())]
        if not reader.at_end():
            raise ValueError("trailing bytes after the block")
        return Block(header, txs)


def merkle_root(hashes: list[bytes]) -> bytes:
    """Bitcoin's merkle root (odd levels duplicate their last hash)."""
    if not hashes:
        return b"\x00" * 32
    level = list(hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def bits_to_target(bits: int) -> int:
    exponent = bits >> 24
    mantissa = bits & 0x007FFFFF
    if exponent <= 3:
        return mantissa >> (8 * (3 - exponent))
    return mantissa << (8 * (exponent - 3))


def block_work(bits: int) -> int:
    """Expected hashes to find a block at this target (Core's GetBlockProof)."""
    target = bits_to_target(bits)
    return (1 << 256) // (target + 1)
