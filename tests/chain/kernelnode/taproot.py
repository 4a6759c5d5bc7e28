"""Taproot key-path spending (BIP-340/341): the output key of an internal key,
the signature message of an input, and a Schnorr signature over it.

The curve arithmetic is libsecp256k1's, through coincurve; only scalar negation
modulo the group order is done here.
"""

from __future__ import annotations

import struct

from coincurve import PrivateKey, PublicKeyXOnly

from .encoding import Tx, TxOut, ser_bytes, sha256, tagged_hash

# Order of secp256k1's group.
CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

SIGHASH_DEFAULT = 0x00
SIGHASH_ALL = 0x01
SIGHASH_NONE = 0x02
SIGHASH_SINGLE = 0x03
SIGHASH_ANYONECANPAY = 0x80
_VALID_HASH_TYPES = {0x00, 0x01, 0x02, 0x03, 0x81, 0x82, 0x83}


def tap_tweak(internal_xonly: bytes, merkle_root: bytes = b"") -> bytes:
    return tagged_hash("TapTweak", internal_xonly + merkle_root)


def output_key(internal_xonly: bytes) -> bytes:
    """The x-only output key of a key-path-only P2TR output (no script tree)."""
    key = PublicKeyXOnly(internal_xonly)
    key.tweak_add(tap_tweak(internal_xonly))
    return key.format()


def p2tr_script(internal_xonly: bytes) -> bytes:
    return b"\x51\x20" + output_key(internal_xonly)


class KeyPathSigner:
    """Signs taproot key-path inputs for one internal secret key."""

    def __init__(self, secret: bytes):
        internal = PublicKeyXOnly.from_secret(secret)
        self.internal_xonly = internal.format()
        # BIP-341: the internal key is used with even y, so negate an odd one.
        d = int.from_bytes(secret, "big")
        if internal.parity:
            d = CURVE_ORDER - d
        tweak = int.from_bytes(tap_tweak(self.internal_xonly), "big")
        if tweak >= CURVE_ORDER:
            raise ValueError("taproot tweak out of range")
        tweaked = (d + tweak) % CURVE_ORDER
        if tweaked == 0:
            raise ValueError("tweaked key is zero")
        self._tweaked = PrivateKey(tweaked.to_bytes(32, "big"))
        self.output_xonly = PublicKeyXOnly.from_secret(self._tweaked.secret).format()
        assert self.output_xonly == output_key(self.internal_xonly)

    @property
    def script_pubkey(self) -> bytes:
        return b"\x51\x20" + self.output_xonly

    def sign(self, tx: Tx, index: int, spent: list[TxOut], hash_type: int = SIGHASH_DEFAULT) -> bytes:
        """The witness signature of input `index` (64 bytes, +1 hash-type byte unless DEFAULT)."""
        msg = key_path_sighash(tx, index, spent, hash_type)
        sig = self._tweaked.sign_schnorr(msg)
        return sig if hash_type == SIGHASH_DEFAULT else sig + bytes([hash_type])


def key_path_sighash(tx: Tx, index: int, spent: list[TxOut], hash_type: int = SIGHASH_DEFAULT) -> bytes:
    """BIP-341 signature hash of input `index` for a key-path spend without annex."""
    if hash_type not in _VALID_HASH_TYPES:
        raise ValueError(f"hash type 0x{hash_type:02x} is not a taproot hash type")
    if len(spent) != len(tx.inputs):
        raise ValueError("taproot signing needs the output spent by every input")
    output_type = SIGHASH_ALL if hash_type == SIGHASH_DEFAULT else hash_type & 3
    anyone_can_pay = bool(hash_type & SIGHASH_ANYONECANPAY)
    if output_type == SIGHASH_SINGLE and index >= len(tx.outputs):
        raise ValueError("SIGHASH_SINGLE without an output at the input's index")

    msg = bytes([hash_type]) + struct.pack("<iI", tx.version, tx.locktime)
    if not anyone_can_pay:
        msg += sha256(b"".join(i.prev_txid + struct.pack("<I", i.prev_vout) for i in tx.inputs))
        msg += sha256(b"".join(struct.pack("<q", o.value) for o in spent))
        msg += sha256(b"".join(ser_bytes(o.script_pubkey) for o in spent))
        msg += sha256(b"".join(struct.pack("<I", i.sequence) for i in tx.inputs))
    if output_type == SIGHASH_ALL:
        msg += sha256(b"".join(_ser_output(o) for o in tx.outputs))
    msg += b"\x00"  # spend type: key path, no annex
    if anyone_can_pay:
        txin = tx.inputs[index]
        msg += txin.prev_txid + struct.pack("<I", txin.prev_vout)
        msg += struct.pack("<q", spent[index].value) + ser_bytes(spent[index].script_pubkey)
        msg += struct.pack("<I", txin.sequence)
    else:
        msg += struct.pack("<I", index)
    if output_type == SIGHASH_SINGLE:
        msg += sha256(_ser_output(tx.outputs[index]))
    return tagged_hash("TapSighash", b"\x00" + msg)


def _ser_output(out: TxOut) -> bytes:
    return struct.pack("<q", out.value) + ser_bytes(out.script_pubkey)
