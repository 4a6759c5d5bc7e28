//! CoinJoin rounds between `conclaved` processes, driven only through
//! `conclavectl wallet address` and `conclavectl coinjoin`, with each
//! wallet's keys in a real Secret Service (run inside
//! scripts/with-keyring.sh, as `make test` does) and every coin on the
//! kernel-backed regtest node of tests/chain, which must confirm the
//! transaction in a block its libbitcoinkernel connects.

mod common;
#[path = "../../coinjoin/tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;

use bitcoin::{consensus::encode::deserialize_hex, Address, Network, Transaction};
use common::Daemon;
use serde_json::Value;
use support::Regtest;

const DENOMINATION: &str = "100000";

fn in_keyring_session(test: &str) -> bool {
    if std::env::var("CONCLAVE_KEYRING_TEST").as_deref() == Ok("1") {
        return true;
    }
    eprintln!(
        "skipped {test}: run through scripts/with-keyring.sh (make test does) for a real keychain"
    );
    false
}

/// The daemons' epoch: a request must be announced half of it before a
/// tick to take part.
const EPOCH_SECS: &str = "3";

/// The flags that put a daemon's CoinJoin service on the regtest node.
fn coinjoin_args(chain: &Regtest) -> Vec<&str> {
    vec![
        "--network",
        "regtest",
        "--bitcoind-rpc",
        &chain.rpc_url,
        "--bitcoind-cookie",
        chain.cookie_file.to_str().unwrap(),
        "--coinjoin-epoch",
        EPOCH_SECS,
        "--coinjoin-phase-timeout",
        "5",
    ]
}

/// Starts `n` daemons on the regtest node, every pair connected.
fn daemons(tmp: &std::path::Path, chain: &Regtest, n: usize, extra: &[Vec<&str>]) -> Vec<Daemon> {
    let mut daemons: Vec<Daemon> = Vec::new();
    for i in 0..n {
        let mut args = coinjoin_args(chain);
        if let Some(more) = extra.get(i) {
            args.extend(more.iter().copied());
        }
        let daemon = Daemon::start_with(&tmp.join(format!("d{i}")), &args);
        for earlier in &daemons {
            let reply = daemon.json(&["connect", &earlier.quic_addr]);
            assert_eq!(reply["peer_id"], earlier.peer_id.as_str());
        }
        daemons.push(daemon);
    }
    daemons
}

/// A fresh wallet address of `daemon`, funded with `sats` on the chain.
fn funded_coin(daemon: &Daemon, chain: &Regtest, sats: u64) -> String {
    let address = daemon.json(&["wallet", "address"]);
    let script = address["address"]
        .as_str()
        .expect("an address")
        .parse::<Address<_>>()
        .expect("an address")
        .require_network(Network::Regtest)
        .expect("a regtest address")
        .script_pubkey();
    chain.fund(&script, sats).to_string()
}

fn join(daemon: &Daemon, coin: &str) -> String {
    let reply = daemon.json(&[
        "coinjoin",
        "join",
        "--denomination",
        DENOMINATION,
        "--inputs",
        coin,
        "--fee-rate",
        "2",
        "--max-fee",
        "5000",
    ]);
    reply["request_id"]
        .as_str()
        .expect("request_id")
        .to_string()
}

/// Every daemon joins with its coin, all at once and right after an epoch
/// tick, so that every request has settled by the next tick (joined one
/// after another on a loaded machine, some could miss it and the others
/// mix without them); the request ids, in order.
fn join_all(daemons: &[Daemon], coins: &[String]) -> Vec<String> {
    let epoch_ms: u64 = EPOCH_SECS.parse::<u64>().unwrap() * 1000;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let next_tick = now_ms.div_ceil(epoch_ms) * epoch_ms;
    std::thread::sleep(std::time::Duration::from_millis(next_tick + 20 - now_ms));
    std::thread::scope(|scope| {
        let joining: Vec<_> = daemons
            .iter()
            .zip(coins)
            .map(|(d, c)| scope.spawn(move || join(d, c)))
            .collect();
        joining.into_iter().map(|j| j.join().unwrap()).collect()
    })
}

fn finished(daemon: &Daemon, id: &str) -> Value {
    daemon.json(&["coinjoin", "status", id, "--wait", "120"])
}

#[test]
fn three_daemons_mix_their_coins_into_one_confirmed_transaction() {
    let test = "three_daemons_mix_their_coins_into_one_confirmed_transaction";
    if !in_keyring_session(test) {
        return;
    }
    let Some(chain) = Regtest::start(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let daemons = daemons(tmp.path(), &chain, 3, &[]);
    let coins: Vec<String> = daemons
        .iter()
        .enumerate()
        .map(|(i, d)| funded_coin(d, &chain, 150_000 + 1_000 * i as u64))
        .collect();
    let ids = join_all(&daemons, &coins);
    let statuses: Vec<Value> = daemons
        .iter()
        .zip(&ids)
        .map(|(d, id)| finished(d, id))
        .collect();
    for s in &statuses {
        assert_eq!(s["phase"], "done", "{s}");
        assert_eq!(s["excluded"], Value::Array(Vec::new()), "{s}");
    }
    let txid = statuses[0]["txid"].as_str().expect("txid").to_string();
    assert!(
        statuses.iter().all(|s| s["txid"] == txid.as_str()),
        "every daemon reports the same txid"
    );
    let (confirmations, hex) = chain.tx(&txid.parse().unwrap());
    assert!(confirmations >= 1, "the transaction is in a regtest block");
    let tx: Transaction = deserialize_hex(&hex).unwrap();
    let spent: BTreeSet<String> = tx
        .input
        .iter()
        .map(|i| i.previous_output.to_string())
        .collect();
    assert_eq!(
        spent,
        coins.iter().cloned().collect(),
        "exactly the three coins"
    );

    // --tx-out writes the transaction; list shows the request.
    let out = tmp.path().join("tx.hex");
    let status = daemons[1].json(&[
        "coinjoin",
        "status",
        &ids[1],
        "--tx-out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        status["tx_hex"].as_str().unwrap()
    );
    let list = daemons[2].json(&["coinjoin", "list"]);
    assert_eq!(list[0]["request_id"], ids[2].as_str());

    // Bad input is refused with its reason, and changes nothing.
    let refused = daemons[0]
        .ctl()
        .args([
            "coinjoin",
            "join",
            "--denomination",
            DENOMINATION,
            "--inputs",
            "nonsense",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("TXID:VOUT"));
    let spent_again = daemons[0]
        .ctl()
        .args([
            "coinjoin",
            "join",
            "--denomination",
            DENOMINATION,
            "--inputs",
            &coins[0],
        ])
        .output()
        .unwrap();
    assert!(!spent_again.status.success(), "a spent coin cannot join");
    assert!(
        String::from_utf8_lossy(&spent_again.stderr).contains("not an unspent output"),
        "{}",
        String::from_utf8_lossy(&spent_again.stderr)
    );
    assert_eq!(
        daemons[0]
            .json(&["coinjoin", "list"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The history survives a restart (in the profile's database).
    let mut daemons = daemons;
    let dir = daemons[0].dir.clone();
    drop(daemons.remove(0));
    let restarted = Daemon::start_with(&dir, &coinjoin_args(&chain));
    let list = restarted.json(&["coinjoin", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["request_id"], ids[0].as_str());
    assert_eq!(list[0]["phase"], "done");
    assert_eq!(list[0]["txid"], txid.as_str());
}

/// Four daemons, the last one built to disrupt as `how` says: the three
/// honest ones complete a transaction without it and name the same
/// excluded outpoint, the disruptor's.
#[cfg_attr(not(feature = "coinjoin-disruptor"), allow(dead_code))]
fn one_disruptor(test: &str, how: &str) {
    one_disruptor_then(test, how, true);
}

/// [`one_disruptor`]; `absent`: whether the disruptor's coin must be
/// missing from the transaction (a participant that withholds its valid
/// signature can still complete the run its peers signed before
/// excluding it, and that transaction may confirm first).
#[cfg_attr(not(feature = "coinjoin-disruptor"), allow(dead_code))]
fn one_disruptor_then(test: &str, how: &str, absent: bool) {
    if !in_keyring_session(test) {
        return;
    }
    let Some(chain) = Regtest::start(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let disrupt = vec!["--coinjoin-disrupt", how];
    let daemons = daemons(tmp.path(), &chain, 4, &[vec![], vec![], vec![], disrupt]);
    let coins: Vec<String> = daemons
        .iter()
        .enumerate()
        .map(|(i, d)| funded_coin(d, &chain, 150_000 + 1_000 * i as u64))
        .collect();
    let ids = join_all(&daemons, &coins);
    let honest: Vec<Value> = daemons[..3]
        .iter()
        .zip(&ids)
        .map(|(d, id)| finished(d, id))
        .collect();
    let txid = honest[0]["txid"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", honest[0]));
    for s in &honest {
        assert_eq!(s["phase"], "done", "{s}");
        assert_eq!(s["txid"], txid, "every honest daemon reports the same txid");
        let excluded: BTreeSet<&str> = s["excluded"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["outpoint"].as_str().unwrap())
            .collect();
        assert_eq!(
            excluded,
            BTreeSet::from([coins[3].as_str()]),
            "exactly the disruptor's coin is excluded: {s}"
        );
        assert!(s["excluded"][0]["until_ms"].as_u64().unwrap() > s["created_ms"].as_u64().unwrap());
    }
    let (confirmations, hex) = chain.tx(&txid.parse().unwrap());
    assert!(confirmations >= 1, "the transaction is in a regtest block");
    let tx: Transaction = deserialize_hex(&hex).unwrap();
    let spent: BTreeSet<String> = tx
        .input
        .iter()
        .map(|i| i.previous_output.to_string())
        .collect();
    let honest_coins: BTreeSet<String> = coins[..3].iter().cloned().collect();
    if absent {
        assert_eq!(
            spent, honest_coins,
            "the honest coins, and not the disruptor's"
        );
    } else {
        assert!(
            spent.is_superset(&honest_coins),
            "every honest coin is mixed"
        );
    }
}

#[cfg(feature = "coinjoin-disruptor")]
#[test]
fn a_dc_net_disruptor_daemon_is_excluded_by_every_honest_daemon() {
    one_disruptor(
        "a_dc_net_disruptor_daemon_is_excluded_by_every_honest_daemon",
        "dc-garbage",
    );
}

#[cfg(feature = "coinjoin-disruptor")]
#[test]
fn a_withholding_daemon_is_excluded_by_every_honest_daemon() {
    one_disruptor(
        "a_withholding_daemon_is_excluded_by_every_honest_daemon",
        "withhold",
    );
}

#[cfg(feature = "coinjoin-disruptor")]
#[test]
fn an_equivocating_daemon_is_excluded_by_every_honest_daemon() {
    one_disruptor(
        "an_equivocating_daemon_is_excluded_by_every_honest_daemon",
        "equivocate",
    );
}

#[cfg(feature = "coinjoin-disruptor")]
#[test]
fn a_slot_reservation_disruptor_daemon_is_excluded_by_every_honest_daemon() {
    one_disruptor(
        "a_slot_reservation_disruptor_daemon_is_excluded_by_every_honest_daemon",
        "sr-garbage",
    );
}

#[cfg(feature = "coinjoin-disruptor")]
#[test]
fn a_daemon_signing_badly_is_excluded_by_every_honest_daemon() {
    one_disruptor_then(
        "a_daemon_signing_badly_is_excluded_by_every_honest_daemon",
        "bad-signature",
        false,
    );
}

#[cfg(feature = "coinjoin-disruptor")]
#[test]
fn a_daemon_lying_about_an_amount_is_excluded_by_every_honest_daemon() {
    one_disruptor(
        "a_daemon_lying_about_an_amount_is_excluded_by_every_honest_daemon",
        "wrong-amount",
    );
}
