//! Whole CoinJoin sessions between in-memory peers whose coins live on the
//! kernel-backed regtest node (tests/chain): every request is checked
//! through the Bitcoin Core chain source (gettxout over JSON-RPC), the
//! transaction is checked by libbitcoinconsensus with the outputs the node
//! says it spends, and the node's libbitcoinkernel must connect the block
//! that confirms it. Tampered copies are refused by both and change
//! nothing.

mod support;

use std::time::Duration;

use bitcoin::{
    consensus::encode::serialize_hex, hashes::Hash, Amount, Transaction, TxOut, Witness,
};
use conclave_coinjoin::{
    chain::{bitcoind::BitcoinCore, Acceptance, ChainError, ChainSource},
    coin::Outpoint,
    exclusion::Reason,
    memnet::{MemNet, NetSetup, PeerSetup},
    pairing::{validate_request, PairRequest, Pairing, RequestError},
    proto::{disrupt::Disruption, Timeouts},
    tx::{verify_consensus, TxError},
};
use support::{funded_peer, peer_key, signed_request, unix_now, Regtest};

const DENOMINATION: u64 = 100_000;

fn pairing() -> Pairing {
    Pairing::new(DENOMINATION, 2).expect("on the ladder")
}

/// Funds `n` peers on the node and runs their session in memory, every
/// peer validating through `core`. Returns the network and the requests.
fn session(
    node: &Regtest,
    core: &BitcoinCore,
    label: &str,
    n: usize,
    disruptor: Option<(usize, Disruption)>,
) -> (MemNet, Vec<PairRequest>) {
    let now = unix_now();
    let mut peers = Vec::new();
    for i in 0..n {
        let (request, key) =
            funded_peer(node, pairing(), label, i, 150_000 + 1_000 * i as u64, now);
        let mut peer = PeerSetup::honest(request, vec![key]);
        if let Some((d, disruption)) = disruptor {
            if d == i {
                peer.disruption = Some(disruption);
                peer.honest = false;
            }
        }
        peers.push(peer);
    }
    let requests: Vec<PairRequest> = peers.iter().map(|p| p.request.clone()).collect();
    let mut net = MemNet::new(NetSetup {
        pairing: pairing(),
        epoch: now - now % 600,
        now,
        peers,
        also_announced: Vec::new(),
        hidden: Vec::new(),
        chain: core,
        timeouts: Timeouts {
            phase: Duration::from_secs(1),
        },
        max_fee: Some(5_000),
    });
    net.run();
    (net, requests)
}

/// The outputs `tx` spends, as the node reports them (all unspent).
fn spent_outputs(core: &BitcoinCore, tx: &Transaction) -> Vec<TxOut> {
    let outpoints: Vec<Outpoint> = tx.input.iter().map(|i| i.previous_output.into()).collect();
    core.unspent_outputs(&outpoints)
        .unwrap()
        .into_iter()
        .map(|u| {
            u.expect("every input is unspent before the broadcast")
                .txout
        })
        .collect()
}

/// `tx` is refused by libbitcoinconsensus, by testmempoolaccept and by
/// sendrawtransaction, and the chain and the inputs are as they were.
fn assert_refused_everywhere(core: &BitcoinCore, tx: &Transaction, prevouts: &[TxOut], what: &str) {
    assert!(
        matches!(
            verify_consensus(tx, prevouts),
            Err(TxError::Consensus { .. })
        ),
        "{what}: libbitcoinconsensus takes it"
    );
    let before = core.chain_info().unwrap();
    match core.test_accept(tx).unwrap() {
        Acceptance::Refused { reason } => assert!(
            reason.contains("Invalid Schnorr signature"),
            "{what}: {reason}"
        ),
        Acceptance::Accepted => panic!("{what}: testmempoolaccept takes it"),
    }
    match core.broadcast(tx) {
        Err(ChainError::TxRefused {
            code: Some(-26),
            reason,
            ..
        }) => assert!(
            reason.contains("Invalid Schnorr signature"),
            "{what}: {reason}"
        ),
        other => panic!("{what}: sendrawtransaction gave {other:?}"),
    }
    let after = core.chain_info().unwrap();
    assert_eq!(
        (after.blocks, after.best_block_hash),
        (before.blocks, before.best_block_hash),
        "{what}: the chain moved"
    );
    assert_eq!(spent_outputs(core, tx), prevouts, "{what}: an input moved");
}

/// Broadcasts `tx`; it must be in a block of the node's chain.
fn assert_confirms(node: &Regtest, core: &BitcoinCore, tx: &Transaction) {
    let txid = core.broadcast(tx).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(txid, tx.compute_txid());
    let (confirmations, hex) = node.tx(&txid);
    assert!(confirmations >= 1);
    assert_eq!(
        hex,
        serialize_hex(tx),
        "the node holds exactly our transaction"
    );
    let outpoints: Vec<Outpoint> = tx.input.iter().map(|i| i.previous_output.into()).collect();
    assert!(
        core.unspent_outputs(&outpoints)
            .unwrap()
            .iter()
            .all(Option::is_none),
        "every input is spent"
    );
    let created: Vec<Outpoint> = (0..tx.output.len() as u32)
        .map(|vout| Outpoint {
            txid: txid.to_byte_array(),
            vout,
        })
        .collect();
    for (utxo, txout) in core
        .unspent_outputs(&created)
        .unwrap()
        .iter()
        .zip(&tx.output)
    {
        let utxo = utxo.as_ref().expect("every output is unspent");
        assert_eq!(&utxo.txout, txout);
        assert!(utxo.confirmations >= 1);
    }
    assert_eq!(
        core.broadcast(tx).unwrap(),
        txid,
        "sending a confirmed transaction again is no error"
    );
}

#[test]
fn sessions_of_5_10_and_20_peers_confirm_on_the_kernel_node() {
    let Some(node) = Regtest::start("sessions_of_5_10_and_20_peers_confirm_on_the_kernel_node")
    else {
        return;
    };
    let core = node.core();
    for n in [5, 10, 20] {
        let (net, requests) = session(&node, &core, &format!("clean {n}"), n, None);
        for p in net.honest() {
            assert!(p.excluded.is_empty() && p.pairing_excluded.is_empty());
        }
        let tx = net.agreed_transaction().clone();
        assert_eq!(tx.input.len(), n);
        assert_eq!(
            tx.output
                .iter()
                .filter(|o| o.value == Amount::from_sat(DENOMINATION))
                .count(),
            n
        );
        let prevouts = spent_outputs(&core, &tx);
        verify_consensus(&tx, &prevouts).unwrap_or_else(|e| panic!("{n} peers: {e}"));
        assert_eq!(core.test_accept(&tx).unwrap(), Acceptance::Accepted);

        // One byte of one signature.
        let mut bad_signature = tx.clone();
        let k = n / 2;
        let mut sig = bad_signature.input[k].witness.to_vec().remove(0);
        sig[10] ^= 0x01;
        bad_signature.input[k].witness = Witness::from_slice(&[sig]);
        assert_refused_everywhere(&core, &bad_signature, &prevouts, "a flipped signature byte");
        assert!(matches!(
            verify_consensus(&bad_signature, &prevouts),
            Err(TxError::Consensus { input, .. }) if input == k
        ));
        // One sat less to one output: every signature commits to it.
        let mut bad_amount = tx.clone();
        bad_amount.output[0].value -= Amount::from_sat(1);
        assert_refused_everywhere(&core, &bad_amount, &prevouts, "an output one sat lighter");

        assert_confirms(&node, &core, &tx);
        // The coins are gone now: their requests no longer validate.
        let spent = requests[0].inputs[0].outpoint;
        assert_eq!(
            validate_request(&requests[0], &pairing(), &core, unix_now()),
            Err(RequestError::Spent(spent))
        );
    }
}

#[test]
fn a_dc_net_disruptor_is_left_out_and_the_rest_confirms() {
    let Some(node) = Regtest::start("a_dc_net_disruptor_is_left_out_and_the_rest_confirms") else {
        return;
    };
    let core = node.core();
    let (net, requests) = session(
        &node,
        &core,
        "dc garbage",
        6,
        Some((3, Disruption::DcGarbage)),
    );
    net.assert_exactly_excluded(&[3], |r| {
        *r == Reason::Deviated(conclave_coinjoin::exclusion::Phase::DcNet)
    });
    let tx = net.agreed_transaction().clone();
    assert_eq!(tx.input.len(), 5);
    let prevouts = spent_outputs(&core, &tx);
    verify_consensus(&tx, &prevouts).unwrap();
    assert_confirms(&node, &core, &tx);
    let disruptor_coin = requests[3].inputs[0].outpoint;
    assert!(
        core.unspent_output(&disruptor_coin).unwrap().is_some(),
        "the disruptor's coin did not move"
    );
}

#[test]
fn requests_are_checked_against_the_kernel_nodes_chain() {
    let Some(node) = Regtest::start("requests_are_checked_against_the_kernel_nodes_chain") else {
        return;
    };
    let core = node.core();
    let now = unix_now();
    let (request, key) = funded_peer(&node, pairing(), "checks", 0, 150_000, now);
    validate_request(&request, &pairing(), &core, now).unwrap();
    let coin = request.inputs[0].outpoint;
    let real = TxOut {
        value: Amount::from_sat(150_000),
        script_pubkey: key.script_pubkey(),
    };

    // Lies the proof cannot catch (the owner signed them): only the chain can.
    let mut more = real.clone();
    more.value += Amount::from_sat(1);
    let lie = signed_request(pairing(), 0, (coin, more), &key, now);
    assert_eq!(
        validate_request(&lie, &pairing(), &core, now),
        Err(RequestError::Mismatch(coin))
    );
    let other = peer_key("checks", 1);
    let other_script = TxOut {
        value: real.value,
        script_pubkey: other.script_pubkey(),
    };
    let lie = signed_request(pairing(), 0, (coin, other_script), &other, now);
    assert_eq!(
        validate_request(&lie, &pairing(), &core, now),
        Err(RequestError::Mismatch(coin))
    );

    // An output already spent: the one the node's funding transaction spent.
    let funding = core
        .transaction(&bitcoin::Txid::from_byte_array(coin.txid))
        .unwrap()
        .expect("confirmed");
    let spent = Outpoint::from(funding.tx.input[0].previous_output);
    let claim = signed_request(pairing(), 0, (spent, real.clone()), &key, now);
    assert_eq!(
        validate_request(&claim, &pairing(), &core, now),
        Err(RequestError::Spent(spent))
    );

    // A coinbase paying us: not before 100 confirmations, as Core rules.
    let address = bitcoin::Address::from_script(&key.script_pubkey(), bitcoin::Network::Regtest)
        .unwrap()
        .to_string();
    let block = node.rpc("generatetoaddress", &["1", &address]);
    let block = block[0].as_str().unwrap();
    let coinbase = node.rpc("getblock", &[block, "1"])["tx"][0]
        .as_str()
        .unwrap()
        .parse::<bitcoin::Txid>()
        .unwrap();
    let reward = Outpoint {
        txid: coinbase.to_byte_array(),
        vout: 0,
    };
    let utxo = core.unspent_output(&reward).unwrap().expect("the reward");
    assert!(utxo.coinbase);
    assert_eq!(utxo.txout.script_pubkey, key.script_pubkey());
    let claim = signed_request(pairing(), 0, (reward, utxo.txout), &key, now);
    let immature = |confirmations| {
        Err(RequestError::NotSpendable {
            outpoint: reward,
            confirmations,
            needed: 100,
            coinbase: true,
        })
    };
    assert_eq!(
        validate_request(&claim, &pairing(), &core, now),
        immature(1)
    );
    node.mine(98);
    assert_eq!(
        validate_request(&claim, &pairing(), &core, now),
        immature(99)
    );
    node.mine(1);
    validate_request(&claim, &pairing(), &core, now).unwrap();
}
