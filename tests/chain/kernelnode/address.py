"""Regtest addresses: bech32/bech32m (BIP-173/350) and base58check, and the
output scripts they stand for, named as Bitcoin Core names their types."""

from __future__ import annotations

from .encoding import sha256d

REGTEST_HRP = "bcrt"
# Base58 version bytes of regtest (and testnet) P2PKH and P2SH addresses.
P2PKH_VERSION = 111
P2SH_VERSION = 196

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_CONST = 1
_BECH32M_CONST = 0x2BC830A3
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class AddressError(ValueError):
    """An address that is not a valid regtest segwit address."""


def _polymod(values: list[int]) -> int:
    generator = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= generator[i] if ((top >> i) & 1) else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: list[int], from_bits: int, to_bits: int, pad: bool) -> list[int] | None:
    acc = 0
    bits = 0
    out = []
    maxv = (1 << to_bits) - 1
    for value in data:
        if value < 0 or value >> from_bits:
            return None
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & maxv)
    elif bits >= from_bits or ((acc << (to_bits - bits)) & maxv):
        return None
    return out


def encode_segwit(version: int, program: bytes, hrp: str = REGTEST_HRP) -> str:
    const = _BECH32_CONST if version == 0 else _BECH32M_CONST
    data = [version] + _convert_bits(list(program), 8, 5, True)
    polymod = _polymod(_hrp_expand(hrp) + data + [0] * 6) ^ const
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in data + checksum)


def decode_segwit(address: str, hrp: str = REGTEST_HRP) -> tuple[int, bytes]:
    """(witness version, program) of a segwit address; AddressError names what is wrong."""
    if any(ord(c) < 33 or ord(c) > 126 for c in address):
        raise AddressError("it contains characters outside printable ASCII")
    if address.lower() != address and address.upper() != address:
        raise AddressError("it mixes upper and lower case")
    address = address.lower()
    pos = address.rfind("1")
    if pos < 1 or pos + 7 > len(address) or len(address) > 90:
        raise AddressError("it is not bech32 (no separator, or the wrong length)")
    if address[:pos] != hrp:
        raise AddressError(f"its prefix is '{address[:pos]}', not regtest's '{hrp}'")
    try:
        data = [_CHARSET.index(c) for c in address[pos + 1 :]]
    except ValueError:
        raise AddressError("it contains a character outside the bech32 alphabet") from None
    const = _polymod(_hrp_expand(hrp) + data)
    if const not in (_BECH32_CONST, _BECH32M_CONST):
        raise AddressError("its checksum is wrong")
    version = data[0]
    program = _convert_bits(data[1:-6], 5, 8, False)
    if program is None or not 2 <= len(program) <= 40 or version > 16:
        raise AddressError("its witness program is malformed")
    if version == 0 and len(program) not in (20, 32):
        raise AddressError("a version 0 witness program must be 20 or 32 bytes")
    if (version == 0) != (const == _BECH32_CONST):
        raise AddressError("version 0 needs bech32 and later versions bech32m (BIP-350)")
    return version, bytes(program)


def segwit_script(version: int, program: bytes) -> bytes:
    opcode = 0 if version == 0 else 0x50 + version
    return bytes([opcode, len(program)]) + program


def address_to_script(address: str) -> bytes:
    """The output script paying a regtest segwit address (P2WPKH, P2WSH, P2TR, ...)."""
    version, program = decode_segwit(address)
    return segwit_script(version, program)


def _base58check(version: int, payload: bytes) -> str:
    data = bytes([version]) + payload
    data += sha256d(data)[:4]
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, rem = divmod(n, 58)
        out = _BASE58[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\x00"))) + out


def script_type(script: bytes) -> str:
    """Bitcoin Core's name for an output script's type (TxoutType)."""
    n = len(script)
    if n == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac":
        return "pubkeyhash"
    if n == 23 and script[:2] == b"\xa9\x14" and script[22] == 0x87:
        return "scripthash"
    if n in (35, 67) and script[0] == n - 2 and script[-1] == 0xAC:
        return "pubkey"
    if n >= 1 and script[0] == 0x6A:
        return "nulldata"
    if script == b"\x51\x02\x4e\x73":
        return "anchor"
    if 4 <= n <= 42 and script[1] == n - 2 and (script[0] == 0 or 0x51 <= script[0] <= 0x60):
        if script[0] == 0 and n == 22:
            return "witness_v0_keyhash"
        if script[0] == 0 and n == 34:
            return "witness_v0_scripthash"
        if script[0] == 0x51 and n == 34:
            return "witness_v1_taproot"
        if script[0] != 0:
            return "witness_unknown"
    return "nonstandard"


def script_to_address(script: bytes) -> str | None:
    """The regtest address of an output script, or None if it has none."""
    kind = script_type(script)
    if kind == "pubkeyhash":
        return _base58check(P2PKH_VERSION, script[3:23])
    if kind == "scripthash":
        return _base58check(P2SH_VERSION, script[2:22])
    if kind.startswith("witness_") or kind == "anchor":
        version = 0 if script[0] == 0 else script[0] - 0x50
        return encode_segwit(version, script[2:])
    return None
