//! The Bitcoin Core chain source against the kernel-backed regtest node
//! (tests/chain), which speaks Core's JSON-RPC with cookie auth: network
//! checks, Core's errors as people read them, a node that restarts with a
//! new cookie, a node that stops answering, and bounds on replies.

mod support;

use std::{
    net::TcpListener,
    process::Command,
    time::{Duration, Instant},
};

use bitcoin::{
    absolute::LockTime, hashes::Hash, transaction::Version, Amount, Network, ScriptBuf, Sequence,
    Transaction, TxIn, TxOut, Txid, Witness,
};
use conclave_coinjoin::{
    chain::{
        bitcoind::{BitcoinCore, BitcoindConfig},
        Acceptance, ChainError, ChainSource,
    },
    coin::Outpoint,
    pairing::{validate_all, Pairing},
};
use support::{funded_peer, unix_now, Regtest};

fn pairing() -> Pairing {
    Pairing::new(100_000, 2).expect("on the ladder")
}

fn connect_err(config: BitcoindConfig) -> ChainError {
    BitcoinCore::connect(config).expect_err("the connection is refused")
}

#[test]
fn connecting_checks_the_chain_and_reports_what_is_wrong() {
    let Some(node) = Regtest::start("connecting_checks_the_chain_and_reports_what_is_wrong") else {
        return;
    };
    let core = node.core();
    let info = core.chain_info().unwrap();
    assert_eq!(info.network, Network::Regtest);
    assert!(info.blocks >= 101, "a new chain has a mature coinbase");
    assert!(!info.initial_block_download);

    // Another network than the node's.
    let mut signet = node.config();
    signet.network = Network::Signet;
    let e = connect_err(signet);
    assert_eq!(
        e.to_string(),
        format!(
            "bitcoind at {} runs the regtest chain, not signet: point --bitcoind-rpc at a signet \
             node, or choose --network regtest",
            node.rpc_url
        )
    );
    // Mainnet: refused unless enabled; once enabled, the chain still decides.
    let mut main = node.config();
    main.network = Network::Bitcoin;
    assert_eq!(connect_err(main.clone()), ChainError::MainnetDisabled);
    main.allow_mainnet = true;
    assert!(matches!(
        connect_err(main),
        ChainError::WrongNetwork { expected, actual, .. } if expected == "main" && actual == "regtest"
    ));

    // Credentials: a cookie the node does not know, and no cookie at all.
    let temp = tempfile::tempdir().unwrap();
    let wrong = temp.path().join(".cookie");
    std::fs::write(&wrong, format!("__cookie__:{}", "0".repeat(64))).unwrap();
    let mut config = node.config();
    config.cookie_file = wrong.clone();
    let e = connect_err(config);
    assert!(matches!(e, ChainError::Unauthorized { .. }), "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "getblockchaininfo: bitcoind at {} refused the credentials in {} (HTTP 401)",
            node.rpc_url,
            wrong.display()
        )),
        "{e}"
    );
    let mut config = node.config();
    config.cookie_file = temp.path().join("missing");
    let e = connect_err(config);
    assert!(
        matches!(e, ChainError::Cookie { .. })
            && e.to_string()
                .ends_with("is bitcoind running with -regtest? check --bitcoind-cookie"),
        "{e}"
    );

    // Nobody listening.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut config = node.config();
    config.url = url.clone();
    let e = connect_err(config);
    assert!(matches!(e, ChainError::Unreachable { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "getblockchaininfo: no answer from bitcoind at {url} ("
        )) && text.ends_with("is bitcoind running with -regtest? check --bitcoind-rpc"),
        "{text}"
    );

    // A reply over the bound is not read.
    let mut small = node.config();
    small.max_response_bytes = 200;
    assert!(matches!(
        connect_err(small),
        ChainError::TooLarge { limit: 200, .. }
    ));
}

#[test]
fn cores_answers_and_errors_come_through_the_chain_source() {
    let Some(node) = Regtest::start("cores_answers_and_errors_come_through_the_chain_source")
    else {
        return;
    };
    let core = node.core();
    let unknown = Outpoint {
        txid: [0x5a; 32],
        vout: 3,
    };
    assert_eq!(core.unspent_output(&unknown).unwrap(), None);
    assert_eq!(
        core.transaction(&Txid::from_byte_array([0x5a; 32]))
            .unwrap(),
        None
    );

    // A funded coin: amount, script and confirmations as the node has them.
    let script = support::peer_key("answers", 0).script_pubkey();
    let coin = node.fund(&script, 123_456);
    let utxos = core.unspent_outputs(&[coin, unknown, coin]).unwrap();
    let utxo = utxos[0].clone().expect("unspent");
    assert_eq!(utxo.txout.value, Amount::from_sat(123_456));
    assert_eq!(utxo.txout.script_pubkey, script);
    assert_eq!(utxo.confirmations, 1);
    assert!(!utxo.coinbase);
    assert_eq!(utxos[1], None);
    assert_eq!(utxos[2].as_ref(), Some(&utxo), "a batch answers in order");
    node.mine(2);
    assert_eq!(
        core.unspent_output(&coin).unwrap().unwrap().confirmations,
        3
    );
    let funding = core
        .transaction(&Txid::from_byte_array(coin.txid))
        .unwrap()
        .expect("confirmed");
    assert_eq!(funding.confirmations, 3);
    assert_eq!(funding.tx.output[coin.vout as usize].script_pubkey, script);

    // A transaction spending nothing that exists: refused by both calls,
    // with Core's reason and code, and the chain does not move.
    let before = core.chain_info().unwrap();
    let orphan = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: unknown.into(),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[[1u8; 64]]),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(1_000),
            script_pubkey: script.clone(),
        }],
    };
    assert!(matches!(
        core.test_accept(&orphan).unwrap(),
        Acceptance::Refused { reason } if reason.starts_with("missing-inputs")
    ));
    let e = core.broadcast(&orphan).unwrap_err();
    assert!(
        matches!(&e, ChainError::TxRefused { code: Some(-25), reason, .. }
            if reason.starts_with("bad-txns-inputs-missingorspent")),
        "{e}"
    );
    assert!(
        e.to_string()
            .ends_with("nothing was broadcast and its inputs stay unspent"),
        "{e}"
    );
    let after = core.chain_info().unwrap();
    assert_eq!(
        (after.blocks, after.best_block_hash),
        (before.blocks, before.best_block_hash)
    );

    // Core's own errors name the method, Core's words and what to do.
    let e = core
        .call("nosuchmethod", serde_json::json!([]))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "nosuchmethod: bitcoind says \"Method not found\" (RPC error -32601): this bitcoind does \
         not offer nosuchmethod: upgrade Bitcoin Core"
    );
    let e = core
        .call("getblockhash", serde_json::json!([1_000_000]))
        .unwrap_err();
    assert!(
        matches!(&e, ChainError::Rpc { code: -8, message, .. } if message == "Block height out of range"),
        "{e}"
    );
}

#[test]
fn a_restarted_node_is_followed_through_its_new_cookie() {
    let Some(mut node) = Regtest::start("a_restarted_node_is_followed_through_its_new_cookie")
    else {
        return;
    };
    let core = node.core();
    let now = unix_now();
    let requests: Vec<_> = (0..3)
        .map(|i| funded_peer(&node, pairing(), "restart", i, 150_000, now).0)
        .collect();
    let (valid, refused) = validate_all(requests.clone(), &pairing(), &core, now).unwrap();
    assert_eq!((valid.len(), refused.len()), (3, 0));
    let old_cookie = std::fs::read_to_string(&node.cookie_file).unwrap();

    node.stop();
    // While it is down nothing is decided, and nobody is excluded.
    let e = validate_all(requests.clone(), &pairing(), &core, now).unwrap_err();
    assert!(matches!(e, ChainError::Unreachable { .. }), "{e}");

    node.restart();
    let new_cookie = std::fs::read_to_string(&node.cookie_file).unwrap();
    assert_ne!(
        old_cookie, new_cookie,
        "a restarted node writes a new cookie"
    );
    // The same client: 401 with the old cookie, the file read again, the
    // chain checked again, the call retried.
    let (valid, refused) = validate_all(requests, &pairing(), &core, now).unwrap();
    assert_eq!((valid.len(), refused.len()), (3, 0));
    assert_eq!(core.chain_info().unwrap().network, Network::Regtest);
}

/// Continues a stopped process when dropped, so a failing assertion
/// cannot leave the node frozen.
struct Frozen(u32);

impl Frozen {
    fn freeze(pid: u32) -> Self {
        signal(pid, "-STOP");
        Self(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

fn signal(pid: u32, which: &str) {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {which} {pid}");
}

#[test]
fn a_node_that_stops_answering_times_out() {
    let Some(node) = Regtest::start("a_node_that_stops_answering_times_out") else {
        return;
    };
    let mut config = node.config();
    config.request_timeout = Duration::from_secs(1);
    let core = BitcoinCore::connect(config).unwrap();
    {
        // The kernel still accepts the connection; the node never answers.
        let _frozen = Frozen::freeze(node.pid());
        let started = Instant::now();
        let e = core.chain_info().unwrap_err();
        let waited = started.elapsed();
        assert!(matches!(e, ChainError::Timeout { .. }), "{e}");
        assert!(
            e.to_string().starts_with(&format!(
                "getblockchaininfo: bitcoind at {} did not answer within 1 s",
                node.rpc_url
            )),
            "{e}"
        );
        assert!(
            waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
            "waited {waited:?}"
        );
    }
    assert_eq!(core.chain_info().unwrap().network, Network::Regtest);
}
