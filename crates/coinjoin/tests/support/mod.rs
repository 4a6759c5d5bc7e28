//! The kernel-backed regtest node of tests/chain, driven through its
//! command line (`tests/chain/regtest`), and peers funded on it. Shared by
//! the integration tests and the chain benchmark.

#![allow(dead_code)] // each test binary uses its own part

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

use bitcoin::{Address, Amount, Network, TxOut, Txid};
use conclave_coinjoin::{
    chain::bitcoind::{BitcoinCore, BitcoindConfig},
    coin::{CoinKey, Outpoint},
    pairing::{PairRequest, Pairing},
};
use serde_json::Value;
use zeroize::Zeroizing;

/// The virtualenv `scripts/setup.sh` creates (or `CONCLAVE_VENV`).
pub fn venv() -> PathBuf {
    match std::env::var_os("CONCLAVE_VENV") {
        Some(v) => PathBuf::from(v),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/conclave/venv")
        }
    }
}

fn regtest_cli() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/chain/regtest")
}

/// Milliseconds, for figures.
pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p` quantile (0..=1) of `sorted`, nearest rank.
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A running regtest node in its own temporary directory; stopped when
/// dropped.
pub struct Regtest {
    pub dir: PathBuf,
    pub rpc_url: String,
    pub cookie_file: PathBuf,
    pub port: u16,
    running: bool,
    _temp: tempfile::TempDir,
}

impl Regtest {
    /// Starts a node, or says why it cannot and returns `None` when the
    /// virtualenv is missing (the only reason to skip).
    pub fn start(test: &str) -> Option<Self> {
        let python = venv().join("bin/python");
        if !python.exists() {
            // Straight to stderr, past the test harness's capture: a skip
            // must be seen.
            let _ = writeln!(
                std::io::stderr().lock(),
                "skipped {test}: no regtest virtualenv at {} (the kernel-backed node needs \
                 py-bitcoinkernel); create it with scripts/setup.sh (make test does)",
                venv().display()
            );
            return None;
        }
        let temp = tempfile::tempdir().expect("a temporary directory");
        let dir = temp.path().join("chain");
        let started = cli(&["start", dir.to_str().expect("utf-8 path")]);
        let rpc_url = started["rpc_url"].as_str().expect("rpc_url").to_string();
        let port = rpc_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port in the URL");
        Some(Self {
            cookie_file: PathBuf::from(started["cookie_file"].as_str().expect("cookie_file")),
            rpc_url,
            port,
            dir,
            running: true,
            _temp: temp,
        })
    }

    fn dir_arg(&self) -> &str {
        self.dir.to_str().expect("utf-8 path")
    }

    /// The config of a client for this node.
    pub fn config(&self) -> BitcoindConfig {
        BitcoindConfig::new(&self.rpc_url, &self.cookie_file, Network::Regtest)
    }

    /// A connected client.
    pub fn core(&self) -> BitcoinCore {
        BitcoinCore::connect(self.config()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Pays `sats` to `script` (a P2TR script) in a new block.
    pub fn fund(&self, script: &bitcoin::Script, sats: u64) -> Outpoint {
        let address = Address::from_script(script, Network::Regtest)
            .expect("a standard script")
            .to_string();
        let funded = cli(&["fund", self.dir_arg(), &address, &sats.to_string()]);
        let txid: Txid = funded["txid"]
            .as_str()
            .expect("txid")
            .parse()
            .expect("a txid");
        Outpoint {
            txid: bitcoin::hashes::Hash::to_byte_array(txid),
            vout: funded["vout"].as_u64().expect("vout") as u32,
        }
    }

    /// Mines `n` blocks.
    pub fn mine(&self, n: u32) {
        cli(&["mine", self.dir_arg(), &n.to_string()]);
    }

    /// A confirmed transaction: (confirmations, hex).
    pub fn tx(&self, txid: &Txid) -> (u64, String) {
        let found = cli(&["tx", self.dir_arg(), &txid.to_string()]);
        (
            found["confirmations"].as_u64().expect("confirmations"),
            found["hex"].as_str().expect("hex").to_string(),
        )
    }

    /// Any RPC method, bitcoin-cli style.
    pub fn rpc(&self, method: &str, params: &[&str]) -> Value {
        let mut args = vec!["rpc", self.dir_arg(), method];
        args.extend_from_slice(params);
        cli(&args)
    }

    /// The node process's id.
    pub fn pid(&self) -> u32 {
        let endpoint: Value = serde_json::from_slice(
            &std::fs::read(self.dir.join("rpc.json")).expect("rpc.json while running"),
        )
        .expect("JSON");
        endpoint["pid"].as_u64().expect("pid") as u32
    }

    /// Stops the node.
    pub fn stop(&mut self) {
        cli(&["stop", self.dir_arg()]);
        self.running = false;
    }

    /// Starts it again on the same directory and port (a new cookie).
    pub fn restart(&mut self) {
        let port = self.port.to_string();
        let started = cli(&["start", self.dir_arg(), "--port", &port]);
        assert_eq!(started["rpc_url"].as_str(), Some(self.rpc_url.as_str()));
        self.running = true;
    }
}

impl Drop for Regtest {
    fn drop(&mut self) {
        if self.running {
            let _ = Command::new(regtest_cli())
                .args(["stop", self.dir_arg()])
                .output();
        }
    }
}

/// Runs the node's command line; its one JSON line.
fn cli(args: &[&str]) -> Value {
    let out = Command::new(regtest_cli())
        .args(args)
        .output()
        .expect("tests/chain/regtest runs");
    assert!(
        out.status.success(),
        "regtest {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "regtest {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Peer `index`'s key in the scenario `label` (distinct per scenario, so
/// no script is funded twice).
pub fn peer_key(label: &str, index: usize) -> CoinKey {
    let mut h = blake3::Hasher::new_derive_key("conclave coinjoin regtest test key v1");
    h.update(label.as_bytes());
    h.update(&(index as u64).to_le_bytes());
    CoinKey::from_secret_bytes(&Zeroizing::new(*h.finalize().as_bytes())).expect("a valid key")
}

/// A peer funded on the node with one coin of `sats`, and its signed
/// request for one mixed output (change back to its key), valid for ten
/// minutes from `now`.
pub fn funded_peer(
    node: &Regtest,
    pairing: Pairing,
    label: &str,
    index: usize,
    sats: u64,
    now: u64,
) -> (PairRequest, CoinKey) {
    let key = peer_key(label, index);
    let outpoint = node.fund(&key.script_pubkey(), sats);
    let txout = TxOut {
        value: Amount::from_sat(sats),
        script_pubkey: key.script_pubkey(),
    };
    let request = signed_request(pairing, index, (outpoint, txout), &key, now);
    (request, key)
}

/// A request over `coin` (claimed as given), signed by `key`.
pub fn signed_request(
    pairing: Pairing,
    index: usize,
    coin: (Outpoint, TxOut),
    key: &CoinKey,
    now: u64,
) -> PairRequest {
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&(index as u64).to_le_bytes());
    nonce[8..].copy_from_slice(&coin.0.txid[..8]);
    PairRequest::new(
        pairing,
        vec![index as u8; 38],
        &[coin],
        std::slice::from_ref(key),
        1,
        Some(key.script_pubkey()),
        now + 600,
        nonce,
    )
    .expect("a signed request")
}
