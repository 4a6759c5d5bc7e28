//! [`BitcoinCore`]: the [`ChainSource`] backed by Bitcoin Core's JSON-RPC
//! (`gettxout`, `getrawtransaction`, `testmempoolaccept`,
//! `sendrawtransaction`, `getblockchaininfo`), the backend self-hosting
//! wallet users already run.
//!
//! [`BitcoinCore::connect`] refuses mainnet unless it is enabled, then
//! checks that the node follows the configured network and has left
//! initial block download (a syncing node's UTXO set is incomplete, and
//! honest coins would look unknown). When Core restarts it writes a new
//! cookie and answers 401 to the old one: the client re-reads the file,
//! checks the chain again, and retries.

use std::{path::PathBuf, time::Duration};

use bitcoin::{
    consensus::encode::{deserialize_hex, serialize_hex},
    hashes::Hash,
    Amount, BlockHash, Network, ScriptBuf, Transaction, TxOut, Txid,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    network_hint,
    rpc::{Answer, Failure, RpcClient},
    Acceptance, ChainError, ChainSource, ChainTx, Utxo,
};
use crate::coin::Outpoint;

/// How long connecting may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole call may take (sendrawtransaction on a busy node can
/// take seconds).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest reply read: a verbose `getrawtransaction` of the largest
/// standard transaction (400 000 weight units) is well below this.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Outpoints per `gettxout` batch.
const GETTXOUT_BATCH: usize = 64;
/// Bound on one `gettxout` reply (the script of an arbitrary output can
/// be 10 000 bytes, shown as hex and asm).
const GETTXOUT_REPLY_BYTES: usize = 64 << 10;
/// Bound on the small replies (chain info, txids, acceptance).
const SMALL_REPLY_BYTES: usize = 64 << 10;

/// How to reach Bitcoin Core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitcoindConfig {
    /// `http://HOST:PORT` of its RPC server (optionally `/wallet/NAME`).
    pub url: String,
    /// Its `.cookie` file (in its data directory, per network).
    pub cookie_file: PathBuf,
    /// The network the node must follow.
    pub network: Network,
    /// Whether mainnet is allowed; without it a mainnet config is refused
    /// before anything is contacted.
    pub allow_mainnet: bool,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long a whole call may take.
    pub request_timeout: Duration,
    /// The largest reply read; each method has its own smaller bound too.
    pub max_response_bytes: usize,
}

impl BitcoindConfig {
    /// A config with the default timeouts and bounds, mainnet not enabled.
    pub fn new(url: impl Into<String>, cookie_file: impl Into<PathBuf>, network: Network) -> Self {
        Self {
            url: url.into(),
            cookie_file: cookie_file.into(),
            network,
            allow_mainnet: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// Core's default RPC URL for `network` on this machine.
    pub fn default_url(network: Network) -> String {
        let port = match network {
            Network::Bitcoin => 8332,
            Network::Testnet => 18332,
            Network::Testnet4 => 48332,
            Network::Signet => 38332,
            Network::Regtest => 18443,
        };
        format!("http://127.0.0.1:{port}")
    }

    fn check(&self) -> Result<(), ChainError> {
        if self.network == Network::Bitcoin && !self.allow_mainnet {
            return Err(ChainError::MainnetDisabled);
        }
        let Some(rest) = self.url.strip_prefix("http://") else {
            let why = if self.url.starts_with("https://") {
                "bitcoind's RPC speaks plain HTTP; use http://HOST:PORT, through an SSH tunnel or a VPN for a remote node"
            } else {
                "use http://HOST:PORT, e.g. http://127.0.0.1:18443"
            };
            return Err(ChainError::Config(format!(
                "--bitcoind-rpc {:?}: {why}",
                self.url
            )));
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(ChainError::Config(format!(
                "--bitcoind-rpc {:?} names no host: use http://HOST:PORT",
                self.url
            )));
        }
        if authority.contains('@') {
            return Err(ChainError::Config(
                "--bitcoind-rpc carries a user and password: Conclave authenticates with the cookie \
                 file; remove USER:PASSWORD@ from the URL and set --bitcoind-cookie"
                    .into(),
            ));
        }
        if self.max_response_bytes == 0 || self.request_timeout.is_zero() {
            return Err(ChainError::Config(
                "the reply bound and the request timeout must be above zero".into(),
            ));
        }
        Ok(())
    }
}

/// What `getblockchaininfo` says.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainInfo {
    /// The chain the node follows.
    pub network: Network,
    /// Its validated height.
    pub blocks: u64,
    /// The best header height it knows.
    pub headers: u64,
    /// Its tip.
    pub best_block_hash: BlockHash,
    /// Whether it is still in initial block download.
    pub initial_block_download: bool,
    /// Its estimate of the share of the chain verified, 0 to 1.
    pub verification_progress: f64,
}

#[derive(Deserialize)]
struct ChainInfoReply {
    chain: String,
    blocks: u64,
    headers: u64,
    bestblockhash: String,
    #[serde(default)]
    initialblockdownload: bool,
    #[serde(default)]
    verificationprogress: f64,
}

#[derive(Deserialize)]
struct TxOutReply {
    confirmations: u32,
    value: f64,
    #[serde(rename = "scriptPubKey")]
    script_pubkey: ScriptReply,
    #[serde(default)]
    coinbase: bool,
}

#[derive(Deserialize)]
struct ScriptReply {
    hex: String,
}

#[derive(Deserialize)]
struct RawTxReply {
    hex: String,
    #[serde(default)]
    confirmations: u32,
}

#[derive(Deserialize)]
struct MempoolAcceptReply {
    txid: String,
    allowed: bool,
    #[serde(rename = "reject-reason", default)]
    reject_reason: Option<String>,
    #[serde(rename = "reject-details", default)]
    reject_details: Option<String>,
}

/// A [`ChainSource`] over Bitcoin Core's JSON-RPC. Every call blocks (up
/// to the request timeout): call it from `spawn_blocking` on a runtime.
pub struct BitcoinCore {
    config: BitcoindConfig,
    rpc: RpcClient,
}

impl std::fmt::Debug for BitcoinCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BitcoinCore")
            .field("url", &self.config.url)
            .field("network", &self.config.network)
            .finish_non_exhaustive()
    }
}

impl BitcoinCore {
    /// Checks the config, then that the node at its URL follows its
    /// network and has finished initial block download.
    pub fn connect(config: BitcoindConfig) -> Result<Self, ChainError> {
        config.check()?;
        let rpc = RpcClient::new(
            config.url.clone(),
            config.cookie_file.clone(),
            config.connect_timeout,
            config.request_timeout,
            network_hint(config.network),
        );
        let core = Self { config, rpc };
        core.check_chain()?;
        Ok(core)
    }

    /// The config it was made with.
    pub fn config(&self) -> &BitcoindConfig {
        &self.config
    }

    /// The node's chain, height and sync state.
    pub fn chain_info(&self) -> Result<ChainInfo, ChainError> {
        let method = "getblockchaininfo";
        let reply = self.request(method, json!([]), SMALL_REPLY_BYTES)?;
        let value = reply.map_err(|f| self.core_error(method, f))?;
        self.parse_chain_info(value)
    }

    /// Calls any method with positional or named `params` (tools and
    /// tests); Core's errors come back as [`ChainError::Rpc`].
    pub fn call(&self, method: &str, params: Value) -> Result<Value, ChainError> {
        let reply = self.request(method, params, self.config.max_response_bytes)?;
        reply.map_err(|f| self.core_error(method, f))
    }

    fn limit(&self, method_bound: usize) -> usize {
        method_bound.min(self.config.max_response_bytes)
    }

    /// One call; when Core restarted in between (a new cookie), the chain
    /// is checked again before the call is retried once.
    fn request(
        &self,
        method: &str,
        params: Value,
        bound: usize,
    ) -> Result<Result<Value, Failure>, ChainError> {
        self.renewing(method, || {
            self.rpc.call(method, params.clone(), self.limit(bound))
        })
    }

    fn renewing<T>(
        &self,
        method: &str,
        attempt: impl Fn() -> Result<Answer<T>, ChainError>,
    ) -> Result<T, ChainError> {
        for _ in 0..2 {
            match attempt()? {
                Answer::Done(reply) => return Ok(reply),
                Answer::CookieRenewed => {
                    self.check_chain()?;
                }
            }
        }
        Err(self.unauthorized(method))
    }

    fn unauthorized(&self, method: &str) -> ChainError {
        ChainError::Unauthorized {
            method: method.into(),
            url: self.rpc.url().into(),
            cookie_file: self.rpc.cookie_file().into(),
        }
    }

    fn check_chain(&self) -> Result<ChainInfo, ChainError> {
        let method = "getblockchaininfo";
        for _ in 0..2 {
            match self
                .rpc
                .call(method, json!([]), self.limit(SMALL_REPLY_BYTES))?
            {
                Answer::Done(reply) => {
                    let info =
                        self.parse_chain_info(reply.map_err(|f| self.core_error(method, f))?)?;
                    if info.initial_block_download {
                        return Err(ChainError::Syncing {
                            url: self.config.url.clone(),
                            blocks: info.blocks,
                            headers: info.headers,
                        });
                    }
                    return Ok(info);
                }
                // Restarted during the check itself: read the cookie once more.
                Answer::CookieRenewed => continue,
            }
        }
        Err(self.unauthorized(method))
    }

    fn parse_chain_info(&self, value: Value) -> Result<ChainInfo, ChainError> {
        let method = "getblockchaininfo";
        let reply: ChainInfoReply = self.parse(method, value)?;
        let expected = self.config.network.to_core_arg();
        if reply.chain != expected {
            return Err(ChainError::WrongNetwork {
                url: self.config.url.clone(),
                expected: expected.into(),
                actual: reply.chain,
            });
        }
        Ok(ChainInfo {
            network: self.config.network,
            blocks: reply.blocks,
            headers: reply.headers,
            best_block_hash: reply
                .bestblockhash
                .parse()
                .map_err(|e| self.bad_reply(method, format!("bestblockhash: {e}")))?,
            initial_block_download: reply.initialblockdownload,
            verification_progress: reply.verificationprogress,
        })
    }

    fn parse<T: for<'de> Deserialize<'de>>(
        &self,
        method: &str,
        value: Value,
    ) -> Result<T, ChainError> {
        serde_json::from_value(value).map_err(|e| self.bad_reply(method, e.to_string()))
    }

    fn bad_reply(&self, method: &str, cause: String) -> ChainError {
        ChainError::BadReply {
            method: method.into(),
            url: self.config.url.clone(),
            cause,
        }
    }

    /// Core's error as a person reads it: the method, Core's words, and
    /// what to do.
    fn core_error(&self, method: &str, failure: Failure) -> ChainError {
        let hint = match failure.code {
            // RPC_IN_WARMUP
            -28 => "bitcoind is still starting: retry once it has loaded".to_string(),
            // RPC_METHOD_NOT_FOUND
            -32601 => format!("this bitcoind does not offer {method}: upgrade Bitcoin Core"),
            -5 if failure.message.contains("-txindex") => {
                "restart bitcoind with -txindex=1, so that confirmed transactions can be looked up"
                    .to_string()
            }
            _ => "see bitcoind's debug.log".to_string(),
        };
        ChainError::Rpc {
            method: method.into(),
            code: failure.code,
            message: failure.message,
            hint,
        }
    }

    fn gettxout_batch(&self, outpoints: &[Outpoint]) -> Result<Vec<Option<Utxo>>, ChainError> {
        let method = "gettxout";
        let params: Vec<Value> = outpoints
            .iter()
            .map(|o| json!([Txid::from_byte_array(o.txid).to_string(), o.vout, true]))
            .collect();
        let bound = self.limit(GETTXOUT_REPLY_BYTES.saturating_mul(outpoints.len()));
        let replies = self.renewing(method, || self.rpc.batch(method, params.clone(), bound))?;
        replies
            .into_iter()
            .map(|reply| {
                let value = reply.map_err(|f| self.core_error(method, f))?;
                if value.is_null() {
                    return Ok(None);
                }
                let out: TxOutReply = self.parse(method, value)?;
                let value = Amount::from_btc(out.value)
                    .map_err(|e| self.bad_reply(method, format!("value {}: {e}", out.value)))?;
                let script_pubkey = ScriptBuf::from_hex(&out.script_pubkey.hex)
                    .map_err(|e| self.bad_reply(method, format!("scriptPubKey: {e}")))?;
                Ok(Some(Utxo {
                    txout: TxOut {
                        value,
                        script_pubkey,
                    },
                    confirmations: out.confirmations,
                    coinbase: out.coinbase,
                }))
            })
            .collect()
    }
}

impl ChainSource for BitcoinCore {
    fn unspent_outputs(&self, outpoints: &[Outpoint]) -> Result<Vec<Option<Utxo>>, ChainError> {
        let mut all = Vec::with_capacity(outpoints.len());
        for chunk in outpoints.chunks(GETTXOUT_BATCH) {
            all.extend(self.gettxout_batch(chunk)?);
        }
        Ok(all)
    }

    fn transaction(&self, txid: &Txid) -> Result<Option<ChainTx>, ChainError> {
        let method = "getrawtransaction";
        let reply = self.request(
            method,
            json!([txid.to_string(), 1]),
            self.config.max_response_bytes,
        )?;
        let value = match reply {
            Ok(v) => v,
            // RPC_INVALID_ADDRESS_OR_KEY: not found, unless Core says it
            // cannot look (no -txindex).
            Err(f) if f.code == -5 && !f.message.contains("-txindex") => return Ok(None),
            Err(f) => return Err(self.core_error(method, f)),
        };
        let raw: RawTxReply = self.parse(method, value)?;
        let tx: Transaction =
            deserialize_hex(&raw.hex).map_err(|e| self.bad_reply(method, format!("hex: {e}")))?;
        if tx.compute_txid() != *txid {
            return Err(self.bad_reply(
                method,
                format!("asked for {txid}, got {}", tx.compute_txid()),
            ));
        }
        Ok(Some(ChainTx {
            tx,
            confirmations: raw.confirmations,
        }))
    }

    fn test_accept(&self, tx: &Transaction) -> Result<Acceptance, ChainError> {
        let method = "testmempoolaccept";
        let reply = self.request(method, json!([[serialize_hex(tx)]]), SMALL_REPLY_BYTES)?;
        let value = reply.map_err(|f| self.core_error(method, f))?;
        let mut results: Vec<MempoolAcceptReply> = self.parse(method, value)?;
        let result = match (results.pop(), results.is_empty()) {
            (Some(r), true) => r,
            _ => return Err(self.bad_reply(method, "not one result for one transaction".into())),
        };
        if result.txid != tx.compute_txid().to_string() {
            return Err(self.bad_reply(
                method,
                format!("a result for {}, not {}", result.txid, tx.compute_txid()),
            ));
        }
        if result.allowed {
            return Ok(Acceptance::Accepted);
        }
        // Core gives the reason's short code and, since v29, its details.
        let reason = match (result.reject_reason, result.reject_details) {
            (Some(code), Some(details)) if details.starts_with(&code) => details,
            (Some(code), Some(details)) => format!("{code}: {details}"),
            (code, details) => code
                .or(details)
                .unwrap_or_else(|| "refused without a reason".into()),
        };
        Ok(Acceptance::Refused { reason })
    }

    fn broadcast(&self, tx: &Transaction) -> Result<Txid, ChainError> {
        let method = "sendrawtransaction";
        let txid = tx.compute_txid();
        let reply = self.request(method, json!([serialize_hex(tx)]), SMALL_REPLY_BYTES)?;
        match reply {
            Ok(value) => {
                let sent: String = self.parse(method, value)?;
                if sent != txid.to_string() {
                    return Err(self.bad_reply(method, format!("sent {txid}, Core named {sent}")));
                }
                Ok(txid)
            }
            // RPC_VERIFY_ALREADY_IN_CHAIN: it is confirmed already.
            Err(f) if f.code == -27 => Ok(txid),
            // RPC_DESERIALIZATION_ERROR, RPC_VERIFY_ERROR, RPC_VERIFY_REJECTED.
            Err(f) if matches!(f.code, -22 | -25 | -26) => Err(ChainError::TxRefused {
                method: method.into(),
                txid,
                code: Some(f.code),
                reason: f.message,
            }),
            Err(f) => Err(self.core_error(method, f)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, network: Network) -> BitcoindConfig {
        BitcoindConfig::new(url, "/nonexistent/.cookie", network)
    }

    #[test]
    fn settings_that_cannot_work_are_refused_before_any_contact() {
        assert_eq!(
            BitcoinCore::connect(config("http://127.0.0.1:8332", Network::Bitcoin)).err(),
            Some(ChainError::MainnetDisabled)
        );
        for (url, says) in [
            ("https://node:8332", "plain HTTP"),
            ("127.0.0.1:18443", "use http://HOST:PORT"),
            ("http://", "names no host"),
            (
                "http://alice:secret@127.0.0.1:18443",
                "remove USER:PASSWORD@",
            ),
        ] {
            let e = BitcoinCore::connect(config(url, Network::Regtest)).unwrap_err();
            assert!(
                matches!(&e, ChainError::Config(m) if m.contains(says)),
                "{url}: {e}"
            );
        }
        // With mainnet enabled the config passes, and the missing cookie is
        // what stops it.
        let mut main = config("http://127.0.0.1:8332", Network::Bitcoin);
        main.allow_mainnet = true;
        let e = BitcoinCore::connect(main).unwrap_err();
        assert!(matches!(e, ChainError::Cookie { .. }), "{e}");
        assert!(e.to_string().contains("(on mainnet)"), "{e}");
    }

    #[test]
    fn default_urls_are_cores_ports() {
        assert_eq!(
            BitcoindConfig::default_url(Network::Regtest),
            "http://127.0.0.1:18443"
        );
        assert_eq!(
            BitcoindConfig::default_url(Network::Signet),
            "http://127.0.0.1:38332"
        );
        assert_eq!(network_hint(Network::Testnet), " with -testnet");
        assert_eq!(network_hint(Network::Testnet4), " with -testnet4");
    }
}
