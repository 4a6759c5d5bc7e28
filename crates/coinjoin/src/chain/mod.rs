//! Where the protocol learns about the chain: unspent outputs (to check
//! pair requests), confirmed transactions (to see whether a signed run
//! completed), and broadcasting the finished transaction.
//!
//! [`ChainSource`] is synchronous on purpose. The protocol core validates
//! requests without a runtime, so its tests and the in-memory chain need
//! none; Bitcoin Core's RPC is a short request/response to a node the
//! user runs, a few calls per epoch (gettxout is batched per epoch and per
//! request). The actor, on tokio, calls a chain source from
//! `spawn_blocking` behind a semaphore, as it does for the keychain, and
//! every call is bounded by the client's timeouts. An async trait would
//! also need boxing to stay object-safe and would pull a runtime into the
//! pure core for no gain.
//!
//! - [`bitcoind`]: [`bitcoind::BitcoinCore`], the chain source backed by
//!   Bitcoin Core's JSON-RPC (cookie auth, network checks).
//! - [`MemoryChain`]: an in-memory chain for tests and simulations.

pub mod bitcoind;
mod rpc;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use bitcoin::{Amount, Network, Transaction, TxOut, Txid};

use crate::{coin::Outpoint, tx::verify_consensus};

/// Confirmations a coinbase output needs before it can be spent: Core
/// refuses a spend at height h of a coinbase from height c if
/// h − c < 100, and the next block's h − c is today's confirmations.
pub const COINBASE_MATURITY: u32 = 100;
/// Confirmations any input needs: an unconfirmed parent can be replaced
/// or dropped, which would make the whole CoinJoin invalid.
pub const MIN_CONFIRMATIONS: u32 = 1;

/// An unspent output as the chain reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utxo {
    /// Its amount and script.
    pub txout: TxOut,
    /// Blocks that contain or follow its transaction (0: in the mempool).
    pub confirmations: u32,
    /// Whether a coinbase created it.
    pub coinbase: bool,
}

impl Utxo {
    /// Whether a transaction in the next block may spend it.
    pub fn spendable(&self) -> bool {
        self.confirmations >= MIN_CONFIRMATIONS
            && (!self.coinbase || self.confirmations >= COINBASE_MATURITY)
    }
}

/// A transaction the chain knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTx {
    /// The transaction.
    pub tx: Transaction,
    /// Blocks that contain or follow it (0: in the mempool).
    pub confirmations: u32,
}

/// Whether the chain would take a transaction now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    /// It would be accepted.
    Accepted,
    /// It would be refused.
    Refused {
        /// The node's reason, e.g. `mandatory-script-verify-flag-failed (…)`.
        reason: String,
    },
}

/// Where unspent outputs are looked up and transactions sent.
pub trait ChainSource: Send + Sync {
    /// The unspent outputs at `outpoints`, in order (`None`: spent or
    /// unknown).
    fn unspent_outputs(&self, outpoints: &[Outpoint]) -> Result<Vec<Option<Utxo>>, ChainError>;

    /// The unspent output at `outpoint`, if it exists and is unspent.
    fn unspent_output(&self, outpoint: &Outpoint) -> Result<Option<Utxo>, ChainError> {
        Ok(self
            .unspent_outputs(std::slice::from_ref(outpoint))?
            .pop()
            .flatten())
    }

    /// A transaction by id, if the chain knows it.
    fn transaction(&self, txid: &Txid) -> Result<Option<ChainTx>, ChainError>;

    /// Whether `tx` would be accepted now, without sending it.
    fn test_accept(&self, tx: &Transaction) -> Result<Acceptance, ChainError>;

    /// Sends `tx`; its txid once the chain took it. A transaction already
    /// confirmed counts as sent, so sending again after a restart is safe.
    fn broadcast(&self, tx: &Transaction) -> Result<Txid, ChainError>;
}

/// A chain source that could not answer, or refused what it was sent.
/// Each message names the method and the node's own words, and ends with
/// what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The settings cannot work; nothing was contacted.
    #[error("invalid bitcoind settings: {0}")]
    Config(String),
    /// Mainnet was asked for without being enabled; nothing was contacted.
    #[error(
        "mainnet is not enabled: Conclave mixes real bitcoin only when mainnet is enabled \
         explicitly; enable it, or choose the regtest, signet or testnet network"
    )]
    MainnetDisabled,
    /// The cookie file cannot be read or is not a cookie.
    #[error("cannot use bitcoind's cookie file {}: {cause}: {hint}", path.display())]
    Cookie {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        cause: String,
        /// What to do.
        hint: String,
    },
    /// No connection (refused, reset, unresolvable).
    #[error("{method}: no answer from bitcoind at {url} ({cause}): is bitcoind running{network_hint}? check --bitcoind-rpc")]
    Unreachable {
        /// The RPC method.
        method: String,
        /// The endpoint.
        url: String,
        /// The socket's error.
        cause: String,
        /// " with -regtest" and the like.
        network_hint: String,
    },
    /// The node did not answer in time.
    #[error(
        "{method}: bitcoind at {url} did not answer within {} s: it may be stuck or \
         overloaded; check its debug.log, then retry",
        after.as_secs_f64()
    )]
    Timeout {
        /// The RPC method.
        method: String,
        /// The endpoint.
        url: String,
        /// The timeout that passed.
        after: Duration,
    },
    /// The node refused the cookie, also after re-reading it.
    #[error(
        "{method}: bitcoind at {url} refused the credentials in {} (HTTP 401), also after \
         re-reading the file: point --bitcoind-cookie at the .cookie in the data directory of \
         the bitcoind that --bitcoind-rpc names",
        cookie_file.display()
    )]
    Unauthorized {
        /// The RPC method.
        method: String,
        /// The endpoint.
        url: String,
        /// The cookie file used.
        cookie_file: PathBuf,
    },
    /// An HTTP status that carries no JSON-RPC reply.
    #[error("{method}: bitcoind at {url} answered HTTP {status}: {hint}")]
    Http {
        /// The RPC method.
        method: String,
        /// The endpoint.
        url: String,
        /// The status code.
        status: u16,
        /// What to do.
        hint: String,
    },
    /// The reply is larger than the method's bound; it was not read.
    #[error(
        "{method}: the reply from {url} exceeds {limit} bytes and was not read: is \
         --bitcoind-rpc the RPC port of bitcoind?"
    )]
    TooLarge {
        /// The RPC method.
        method: String,
        /// The endpoint.
        url: String,
        /// The bound, bytes.
        limit: usize,
    },
    /// The reply is not what bitcoind sends.
    #[error("{method}: the reply from {url} is not bitcoind's ({cause}): is --bitcoind-rpc the RPC port of bitcoind?")]
    BadReply {
        /// The RPC method.
        method: String,
        /// The endpoint.
        url: String,
        /// What is wrong with it.
        cause: String,
    },
    /// Bitcoin Core answered with an error.
    #[error("{method}: bitcoind says \"{message}\" (RPC error {code}): {hint}")]
    Rpc {
        /// The RPC method.
        method: String,
        /// Core's error code.
        code: i64,
        /// Core's message.
        message: String,
        /// What to do.
        hint: String,
    },
    /// The chain refused a transaction; nothing was broadcast.
    #[error("the chain refused transaction {txid} ({method}{}): {reason}; nothing was broadcast and its inputs stay unspent", code.map(|c| format!(", RPC error {c}")).unwrap_or_default())]
    TxRefused {
        /// The method that refused it.
        method: String,
        /// The transaction.
        txid: Txid,
        /// Core's error code (none for the in-memory chain).
        code: Option<i64>,
        /// The node's reason.
        reason: String,
    },
    /// The node follows another chain than the configured network.
    #[error(
        "bitcoind at {url} runs the {actual} chain, not {expected}: point --bitcoind-rpc at a \
         {expected} node, or choose --network {actual}"
    )]
    WrongNetwork {
        /// The endpoint.
        url: String,
        /// The configured network (Core's name for it).
        expected: String,
        /// The node's chain (Core's name for it).
        actual: String,
    },
    /// The node is still in initial block download: its UTXO set is
    /// incomplete, so coins would wrongly look unknown.
    #[error(
        "bitcoind at {url} is still in initial block download (block {blocks} of {headers} \
         known headers): it does not know every unspent coin yet; wait until it has synced \
         (on regtest: mine a block)"
    )]
    Syncing {
        /// The endpoint.
        url: String,
        /// Its validated height.
        blocks: u64,
        /// The best header height it knows.
        headers: u64,
    },
}

/// An in-memory chain (tests and simulations): unspent outputs with their
/// confirmations, and broadcasts that confirm at once in a new block after
/// the checks a node makes (inputs unspent and mature, amounts, every
/// script through libbitcoinconsensus).
#[derive(Debug, Default)]
pub struct MemoryChain {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    height: i64,
    /// Each output with the height it confirmed at (below 0 for outputs
    /// added with more confirmations than there are blocks) and whether
    /// it is a coinbase output.
    utxos: BTreeMap<Outpoint, (TxOut, i64, bool)>,
    confirmed: BTreeMap<Txid, (Transaction, i64)>,
}

impl MemoryState {
    /// Confirmations of what confirmed at `at` (0 above the tip).
    fn confirmations(&self, at: i64) -> u32 {
        (self.height - at + 1).clamp(0, i64::from(u32::MAX)) as u32
    }
}

impl MemoryChain {
    /// An empty chain at height 1.
    pub fn new() -> Self {
        let chain = Self::default();
        chain.lock().height = 1;
        chain
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        // A panic elsewhere cannot leave the map half-written: every
        // mutation below is a single insert or remove.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an unspent output confirmed in the current block.
    pub fn add(&self, outpoint: Outpoint, txout: TxOut) {
        self.add_utxo(
            outpoint,
            Utxo {
                txout,
                confirmations: 1,
                coinbase: false,
            },
        );
    }

    /// Adds an unspent output with the given confirmations (0: in the
    /// mempool).
    pub fn add_utxo(&self, outpoint: Outpoint, utxo: Utxo) {
        let mut state = self.lock();
        // confirmations = height − at + 1, so at = height + 1 − confirmations
        // (above the tip for 0: in the mempool).
        let at = state.height + 1 - i64::from(utxo.confirmations);
        state
            .utxos
            .insert(outpoint, (utxo.txout, at, utxo.coinbase));
    }

    /// Marks an output spent.
    pub fn spend(&self, outpoint: &Outpoint) {
        self.lock().utxos.remove(outpoint);
    }

    /// Adds `blocks` empty blocks.
    pub fn mine(&self, blocks: u32) {
        self.lock().height += i64::from(blocks);
    }

    /// The height of the tip.
    pub fn height(&self) -> u32 {
        self.lock().height as u32
    }

    fn check(state: &MemoryState, tx: &Transaction) -> Acceptance {
        let refuse = |reason: String| Acceptance::Refused { reason };
        if state.confirmed.contains_key(&tx.compute_txid()) {
            return refuse("txn-already-known".into());
        }
        let mut prevouts = Vec::with_capacity(tx.input.len());
        for input in &tx.input {
            let outpoint = Outpoint::from(input.previous_output);
            let Some((txout, at, coinbase)) = state.utxos.get(&outpoint) else {
                return refuse(format!("missing-inputs: {outpoint} is spent or unknown"));
            };
            let confirmations = state.confirmations(*at);
            if *coinbase && confirmations < COINBASE_MATURITY {
                return refuse(format!(
                    "bad-txns-premature-spend-of-coinbase: {outpoint} has {confirmations} confirmations"
                ));
            }
            prevouts.push(txout.clone());
        }
        let inputs: Amount = prevouts.iter().map(|o| o.value).sum();
        let outputs: Amount = tx.output.iter().map(|o| o.value).sum();
        if outputs > inputs {
            return refuse("bad-txns-in-belowout".into());
        }
        match verify_consensus(tx, &prevouts) {
            Ok(()) => Acceptance::Accepted,
            Err(e) => refuse(format!("mandatory-script-verify-flag-failed ({e})")),
        }
    }
}

impl ChainSource for MemoryChain {
    fn unspent_outputs(&self, outpoints: &[Outpoint]) -> Result<Vec<Option<Utxo>>, ChainError> {
        let state = self.lock();
        Ok(outpoints
            .iter()
            .map(|o| {
                state.utxos.get(o).map(|(txout, at, coinbase)| Utxo {
                    txout: txout.clone(),
                    confirmations: state.confirmations(*at),
                    coinbase: *coinbase,
                })
            })
            .collect())
    }

    fn transaction(&self, txid: &Txid) -> Result<Option<ChainTx>, ChainError> {
        let state = self.lock();
        Ok(state.confirmed.get(txid).map(|(tx, at)| ChainTx {
            tx: tx.clone(),
            confirmations: state.confirmations(*at),
        }))
    }

    fn test_accept(&self, tx: &Transaction) -> Result<Acceptance, ChainError> {
        Ok(Self::check(&self.lock(), tx))
    }

    fn broadcast(&self, tx: &Transaction) -> Result<Txid, ChainError> {
        let mut state = self.lock();
        let txid = tx.compute_txid();
        if state.confirmed.contains_key(&txid) {
            return Ok(txid);
        }
        if let Acceptance::Refused { reason } = Self::check(&state, tx) {
            return Err(ChainError::TxRefused {
                method: "broadcast".into(),
                txid,
                code: None,
                reason,
            });
        }
        state.height += 1;
        let height = state.height;
        for input in &tx.input {
            state.utxos.remove(&Outpoint::from(input.previous_output));
        }
        for (vout, txout) in tx.output.iter().enumerate() {
            let outpoint = Outpoint {
                txid: bitcoin::hashes::Hash::to_byte_array(txid),
                vout: vout as u32,
            };
            state.utxos.insert(outpoint, (txout.clone(), height, false));
        }
        state.confirmed.insert(txid, (tx.clone(), height));
        Ok(txid)
    }
}

/// How Core is started on `network`, for hints: " with -regtest".
pub(crate) fn network_hint(network: Network) -> String {
    match network {
        Network::Bitcoin => " (on mainnet)".into(),
        Network::Testnet => " with -testnet".into(),
        other => format!(" with -{}", other.to_core_arg()),
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::{absolute::LockTime, transaction::Version, ScriptBuf, Sequence, TxIn, Witness};

    use super::*;

    fn txout(sats: u64) -> TxOut {
        TxOut {
            value: Amount::from_sat(sats),
            script_pubkey: ScriptBuf::new_op_return([1, 2, 3]),
        }
    }

    fn spend(outpoint: Outpoint, sats: u64) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: outpoint.into(),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![txout(sats)],
        }
    }

    #[test]
    fn confirmations_grow_and_maturity_follows_cores_rule() {
        let chain = MemoryChain::new();
        let coin = Outpoint {
            txid: [1; 32],
            vout: 0,
        };
        chain.add_utxo(
            coin,
            Utxo {
                txout: txout(5_000),
                confirmations: 99,
                coinbase: true,
            },
        );
        let utxo = chain.unspent_output(&coin).unwrap().unwrap();
        assert_eq!(utxo.confirmations, 99);
        assert!(!utxo.spendable(), "a coinbase at 99 confirmations");
        assert!(matches!(
            chain.test_accept(&spend(coin, 1_000)).unwrap(),
            Acceptance::Refused { reason } if reason.starts_with("bad-txns-premature-spend-of-coinbase")
        ));
        chain.mine(1);
        let utxo = chain.unspent_output(&coin).unwrap().unwrap();
        assert_eq!(utxo.confirmations, 100);
        assert!(utxo.spendable());

        let unconfirmed = Outpoint {
            txid: [2; 32],
            vout: 1,
        };
        chain.add_utxo(
            unconfirmed,
            Utxo {
                txout: txout(5_000),
                confirmations: 0,
                coinbase: false,
            },
        );
        let utxo = chain.unspent_output(&unconfirmed).unwrap().unwrap();
        assert_eq!(utxo.confirmations, 0);
        assert!(!utxo.spendable());
        chain.mine(1);
        assert_eq!(
            chain
                .unspent_output(&unconfirmed)
                .unwrap()
                .unwrap()
                .confirmations,
            1
        );
    }

    #[test]
    fn broadcasts_confirm_once_and_spend_their_inputs() {
        let chain = MemoryChain::new();
        let coin = Outpoint {
            txid: [3; 32],
            vout: 0,
        };
        // OP_TRUE: spendable with an empty script and witness.
        chain.add(
            coin,
            TxOut {
                value: Amount::from_sat(10_000),
                script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
            },
        );
        let too_much = spend(coin, 10_001);
        assert_eq!(
            chain.test_accept(&too_much).unwrap(),
            Acceptance::Refused {
                reason: "bad-txns-in-belowout".into()
            }
        );
        assert!(matches!(
            chain.broadcast(&too_much),
            Err(ChainError::TxRefused { code: None, .. })
        ));
        assert!(chain.unspent_output(&coin).unwrap().is_some(), "unchanged");
        let height = chain.height();

        let tx = spend(coin, 9_000);
        assert_eq!(chain.test_accept(&tx).unwrap(), Acceptance::Accepted);
        let txid = chain.broadcast(&tx).unwrap();
        assert_eq!(chain.height(), height + 1);
        assert_eq!(chain.unspent_output(&coin).unwrap(), None);
        assert_eq!(chain.transaction(&txid).unwrap().unwrap().confirmations, 1);
        assert_eq!(chain.broadcast(&tx).unwrap(), txid, "sending again is safe");
        assert_eq!(chain.height(), height + 1);
        assert!(matches!(
            chain.test_accept(&spend(coin, 1)).unwrap(),
            Acceptance::Refused { reason } if reason.starts_with("missing-inputs")
        ));
    }
}
