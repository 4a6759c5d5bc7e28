"""Tests of the kernel-backed regtest node, driven as other tooling drives it:
through tests/chain/regtest's command line and its JSON-RPC over HTTP.

Every acceptance and refusal asserted here is the kernel's (Bitcoin Core's
consensus code); the node only builds the blocks.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from kernelnode.address import encode_segwit
from kernelnode.client import NodeUnavailable, RpcClient
from kernelnode.encoding import Tx, TxIn, TxOut, hex_to_hash
from kernelnode.errors import RpcError
from kernelnode.taproot import SIGHASH_ALL, KeyPathSigner

REGTEST = HERE / "regtest"


def cli(*args: object, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(REGTEST), *map(str, args)],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env={**os.environ, "CONCLAVE_VENV": sys.prefix},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"regtest {args} failed ({proc.returncode}): {proc.stderr}")
    return proc


def cli_json(*args: object):
    proc = cli(*args)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f"expected one JSON line, got {proc.stdout!r}"
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def datadir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("regtest") / "node"
    started = cli_json("start", path)
    assert set(started) == {"rpc_url", "cookie_file"}
    yield path
    if (path / "regtest.pid").exists():
        cli("stop", path)


@pytest.fixture
def own_datadir(tmp_path) -> Path:
    """A data directory for a test's own node, stopped afterwards if still running."""
    path = tmp_path / "node"
    yield path
    if (path / "regtest.pid").exists():
        cli("stop", path, check=False)


@pytest.fixture(scope="module")
def rpc(datadir) -> RpcClient:
    return RpcClient.for_datadir(datadir)


def sats(btc: float) -> int:
    return round(btc * 100_000_000)


class Wallet:
    """A test key with a P2TR key-path address."""

    def __init__(self) -> None:
        self.signer = KeyPathSigner(os.urandom(32))
        self.address = encode_segwit(1, self.signer.output_xonly)
        self.script = self.signer.script_pubkey

    def spend(self, txid: str, vout: int, value: int, fee: int = 500, hash_type: int = 0) -> Tx:
        tx = Tx(2, [TxIn(hex_to_hash(txid), vout)], [TxOut(value - fee, self.script)])
        tx.inputs[0].witness = [self.signer.sign(tx, 0, [TxOut(value, self.script)], hash_type)]
        return tx


def chain_state(rpc: RpcClient) -> tuple[int, str]:
    return rpc.call("getblockcount"), rpc.call("getbestblockhash")


def assert_refused(rpc: RpcClient, tx: Tx, code: int, reason: str) -> None:
    """sendrawtransaction refuses `tx` with Core's code and the kernel's reason, chain unchanged."""
    before = chain_state(rpc)
    with pytest.raises(RpcError) as refused:
        rpc.call("sendrawtransaction", tx.serialize().hex())
    assert refused.value.code == code
    assert reason in refused.value.message
    assert chain_state(rpc) == before


def fund(datadir: Path, wallet: Wallet, amount: int) -> tuple[str, int]:
    funded = cli_json("fund", datadir, wallet.address, amount)
    assert set(funded) == {"txid", "vout"}
    return funded["txid"], funded["vout"]


def test_start_gives_a_cookie_protected_endpoint_on_loopback(datadir, rpc):
    endpoint = json.loads((datadir / "rpc.json").read_text())
    assert endpoint["rpc_url"].startswith("http://127.0.0.1:")
    cookie_file = Path(endpoint["cookie_file"])
    cookie = cookie_file.read_text()
    assert cookie.startswith("__cookie__:") and len(cookie) > len("__cookie__:") + 32
    assert stat.S_IMODE(cookie_file.stat().st_mode) == 0o600

    info = rpc.call("getblockchaininfo")
    assert info["chain"] == "regtest"
    # A fresh chain gets 101 blocks so that one coinbase is mature.
    assert info["blocks"] >= 101
    assert info["bestblockhash"] == rpc.call("getbestblockhash")

    wrong = urllib.request.Request(
        endpoint["rpc_url"],
        data=b'{"method":"getblockcount","params":[],"id":1}',
        headers={"Authorization": "Basic " + base64.b64encode(b"__cookie__:wrong").decode()},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(wrong, timeout=10)
    assert refused.value.code == 401


def test_mined_blocks_carry_bip34_height_and_proof_of_work(datadir, rpc):
    hashes = cli_json("mine", datadir, 2)
    assert len(hashes) == 2 and hashes[-1] == rpc.call("getbestblockhash")
    block = rpc.call("getblock", hashes[-1], 2)
    height = block["height"]
    coinbase = block["tx"][0]["vin"][0]["coinbase"]
    push = height.to_bytes((height.bit_length() + 8) // 8, "little")
    assert coinbase.startswith((bytes([len(push)]) + push).hex())
    assert int(block["hash"], 16) <= int(block["target"], 16)
    assert block["previousblockhash"] == hashes[0]


def test_fund_p2tr_and_spend_it_by_key_path(datadir, rpc):
    wallet = Wallet()
    txid, vout = fund(datadir, wallet, 150_000)
    out = rpc.call("gettxout", txid, vout)
    assert out["confirmations"] == 1 and sats(out["value"]) == 150_000
    assert out["scriptPubKey"]["hex"] == wallet.script.hex()
    assert out["scriptPubKey"]["address"] == wallet.address
    assert out["scriptPubKey"]["type"] == "witness_v1_taproot"

    spend = wallet.spend(txid, vout, 150_000)
    spend_txid = rpc.call("sendrawtransaction", spend.serialize().hex())
    assert spend_txid == spend.txid[::-1].hex()

    confirmed = cli_json("tx", datadir, spend_txid)
    assert confirmed == {"confirmations": 1, "hex": spend.serialize().hex()}
    assert rpc.call("getrawtransaction", spend_txid, 1)["blockhash"] == rpc.call("getbestblockhash")
    assert rpc.call("gettxout", txid, vout) is None
    assert sats(rpc.call("gettxout", spend_txid, 0)["value"]) == 149_500


def test_fund_p2wpkh_address(datadir, rpc):
    program = os.urandom(20)
    address = encode_segwit(0, program)
    funded = cli_json("fund", datadir, address, 42_000)
    out = rpc.call("gettxout", funded["txid"], funded["vout"])
    assert out["scriptPubKey"]["hex"] == "0014" + program.hex()
    assert out["scriptPubKey"]["type"] == "witness_v0_keyhash"
    assert sats(out["value"]) == 42_000


def test_tampered_signature_is_refused_and_changes_nothing(datadir, rpc):
    wallet = Wallet()
    txid, vout = fund(datadir, wallet, 80_000)
    good = wallet.spend(txid, vout, 80_000)
    tampered = Tx.parse(good.serialize())
    signature = bytearray(tampered.inputs[0].witness[0])
    signature[10] ^= 0x01
    tampered.inputs[0].witness[0] = bytes(signature)
    before = chain_state(rpc)

    [verdict] = rpc.call("testmempoolaccept", [tampered.serialize().hex()])
    assert verdict["allowed"] is False
    assert "Invalid Schnorr signature" in verdict["reject-reason"]
    assert chain_state(rpc) == before

    assert_refused(rpc, tampered, -26, "Invalid Schnorr signature")
    assert rpc.call("gettxout", txid, vout) is not None

    # The untampered transaction is valid, so the signature was the only fault.
    rpc.call("sendrawtransaction", good.serialize().hex())
    assert rpc.call("gettxout", txid, vout) is None


def test_signature_with_explicit_sighash_all_is_valid(datadir, rpc):
    wallet = Wallet()
    txid, vout = fund(datadir, wallet, 60_000)
    spend = wallet.spend(txid, vout, 60_000, hash_type=SIGHASH_ALL)
    assert len(spend.inputs[0].witness[0]) == 65
    rpc.call("sendrawtransaction", spend.serialize().hex())
    assert rpc.call("getrawtransaction", spend.txid[::-1].hex(), 1)["confirmations"] == 1


def test_double_spend_is_refused_and_changes_nothing(datadir, rpc):
    wallet = Wallet()
    txid, vout = fund(datadir, wallet, 70_000)
    first = wallet.spend(txid, vout, 70_000, fee=400)
    second = wallet.spend(txid, vout, 70_000, fee=900)
    rpc.call("sendrawtransaction", first.serialize().hex())

    assert_refused(rpc, second, -25, "bad-txns-inputs-missingorspent")
    [verdict] = rpc.call("testmempoolaccept", [second.serialize().hex()])
    assert verdict["allowed"] is False and verdict["reject-reason"] == "missing-inputs"

    # Sending the confirmed one again is Core's "already in utxo set".
    assert_refused(rpc, first, -27, "Transaction outputs already in utxo set")


def test_immature_coinbase_spend_is_refused_until_100_deep(datadir, rpc):
    wallet = Wallet()
    [block_hash] = rpc.call("generatetoaddress", 1, wallet.address)
    coinbase_txid = rpc.call("getblock", block_hash, 1)["tx"][0]
    coin = rpc.call("gettxout", coinbase_txid, 0)
    assert coin["coinbase"] is True
    spend = wallet.spend(coinbase_txid, 0, sats(coin["value"]), fee=1_000)

    assert_refused(rpc, spend, -26, "bad-txns-premature-spend-of-coinbase")

    # 99 more blocks put the coinbase 100 deep for the next block: now it may be spent.
    cli_json("mine", datadir, 98)
    [verdict] = rpc.call("testmempoolaccept", [spend.serialize().hex()])
    assert verdict["reject-reason"] == "bad-txns-premature-spend-of-coinbase"
    cli_json("mine", datadir, 1)
    rpc.call("sendrawtransaction", spend.serialize().hex())
    assert rpc.call("gettxout", coinbase_txid, 0) is None


def test_testmempoolaccept_validates_without_keeping(datadir, rpc):
    wallet = Wallet()
    txid, vout = fund(datadir, wallet, 90_000)
    parent = wallet.spend(txid, vout, 90_000, fee=700)
    child = wallet.spend(parent.txid[::-1].hex(), 0, 89_300, fee=300)
    before = chain_state(rpc)

    verdicts = rpc.call("testmempoolaccept", [parent.serialize().hex(), child.serialize().hex()])
    assert [v["allowed"] for v in verdicts] == [True, True]
    assert sats(verdicts[0]["fees"]["base"]) == 700 and verdicts[0]["vsize"] == parent.vsize
    assert sats(verdicts[1]["fees"]["base"]) == 300
    assert chain_state(rpc) == before
    assert rpc.call("gettxout", txid, vout) is not None

    # The child alone lacks its parent.
    [alone] = rpc.call("testmempoolaccept", [child.serialize().hex()])
    assert alone["allowed"] is False and alone["reject-reason"] == "missing-inputs"


def test_testmempoolaccept_follows_the_chain_between_calls(datadir, rpc):
    wallet = Wallet()
    txid, vout = fund(datadir, wallet, 95_000)
    parent = wallet.spend(txid, vout, 95_000, fee=500)
    child = wallet.spend(parent.txid[::-1].hex(), 0, 94_500, fee=500)

    # Judged, then confirmed: the next verdict must see the confirmed parent.
    assert rpc.call("testmempoolaccept", [parent.serialize().hex()])[0]["allowed"] is True
    rpc.call("sendrawtransaction", parent.serialize().hex())
    assert rpc.call("testmempoolaccept", [child.serialize().hex()])[0]["allowed"] is True
    # The same verdict twice in a row, with no block between them.
    assert rpc.call("testmempoolaccept", [child.serialize().hex()])[0]["allowed"] is True
    # A spent parent output, once the child is confirmed.
    rpc.call("sendrawtransaction", child.serialize().hex())
    [verdict] = rpc.call(
        "testmempoolaccept", [wallet.spend(parent.txid[::-1].hex(), 0, 94_500, fee=900).serialize().hex()]
    )
    assert verdict["reject-reason"] == "missing-inputs"


def test_bad_input_gets_cores_errors(datadir, rpc):
    before = chain_state(rpc)
    with pytest.raises(RpcError) as undecodable:
        rpc.call("sendrawtransaction", "0200")
    assert undecodable.value.code == -22
    with pytest.raises(RpcError) as unknown:
        rpc.call("getrawtransaction", "00" * 32)
    assert unknown.value.code == -5
    with pytest.raises(RpcError) as no_method:
        rpc.call("importprivkey", "x")
    assert no_method.value.code == -32601
    with pytest.raises(RpcError) as wrong_type:
        rpc.call("gettxout", "00" * 32, "zero")
    assert wrong_type.value.code == -3

    refused = cli("fund", datadir, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", 1000, check=False)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "regtest's 'bcrt'" in refused.stderr
    too_much = cli("fund", datadir, Wallet().address, 20_999_999 * 100_000_000, check=False)
    assert too_much.returncode == 1 and "Insufficient funds" in too_much.stderr
    assert chain_state(rpc) == before


def test_a_refusal_repeated_keeps_its_reason(datadir, rpc):
    wallet = Wallet()
    txid, vout = fund(datadir, wallet, 40_000)
    tampered = wallet.spend(txid, vout, 40_000)
    tampered.inputs[0].witness[0] = bytes(64)
    for _ in range(2):
        assert_refused(rpc, tampered, -26, "Invalid Schnorr signature")
        [verdict] = rpc.call("testmempoolaccept", [tampered.serialize().hex()])
        assert "Invalid Schnorr signature" in verdict["reject-reason"]


def test_restart_keeps_the_chain_and_the_key(own_datadir):
    # Its own node: stopping the shared one would leave later tests without it.
    datadir = own_datadir
    cli_json("start", datadir)
    rpc = RpcClient.for_datadir(datadir)
    wallet = Wallet()
    txid, vout = fund(datadir, wallet, 55_000)
    before = chain_state(rpc)
    assert cli_json("stop", datadir) == {"stopped": True}
    assert not (datadir / ".cookie").exists() and not (datadir / "regtest.pid").exists()
    with pytest.raises(NodeUnavailable):
        rpc.call("getblockcount")

    cli_json("start", datadir)
    restarted = RpcClient.for_datadir(datadir)
    assert chain_state(restarted) == before
    assert sats(restarted.call("gettxout", txid, vout)["value"]) == 55_000
    assert cli_json("tx", datadir, txid)["confirmations"] == 1
    # The node's own key survived too: it can still pay.
    fund(datadir, Wallet(), 10_000)

    again = cli("start", datadir, check=False)
    assert again.returncode == 1 and "already running" in again.stderr
    assert cli_json("stop", datadir) == {"stopped": True}
    stopped = cli("stop", datadir, check=False)
    assert stopped.returncode == 1 and "no regtest node is running" in stopped.stderr
