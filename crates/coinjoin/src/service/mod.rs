//! The CoinJoin service: runs the session machines of [`crate::proto`]
//! over a running node.
//!
//! [`CoinJoinService::start`] spawns the actor that owns every request,
//! session and exclusion of this node, and returns a cloneable
//! [`CoinJoinHandle`] — what the daemon and the app call. The handle does
//! the slow preparation of a join (chain lookups, keychain reads,
//! signing the ownership proofs) in the caller's task; the actor never
//! waits on the chain or the keychain: those calls run on blocking
//! threads and report back.

mod actor;
pub(crate) mod early;
pub mod quote;
mod seen;
pub mod status;
pub mod store;
pub mod supervisor;
pub mod wire;

use std::{sync::Arc, time::Duration};

use bitcoin::{Address, TxOut};
use conclave_node::{clock::unix_secs, store::Database, NodeError, NodeHandle};
use tokio::sync::{broadcast, mpsc, oneshot};
use zeroize::Zeroizing;

pub use status::{ExcludedOutpoint, OwnOutput, RequestPhase, RequestStatus, TimelineEntry};

use crate::{
    chain::{ChainError, ChainSource},
    coin::{CoinKey, Outpoint},
    pairing::{
        validate_request, PairRequest, Pairing, PairingError, RequestError, RequestId,
        MAX_EXPIRY_SECS, MAX_INPUTS,
    },
    proto::Timeouts,
    wallet::{Wallet, WalletError},
};

/// How the service runs.
#[derive(Debug, Clone)]
pub struct CoinJoinConfig {
    /// Time between epoch ticks (whole seconds; ticks fall on multiples of
    /// it in unix time, so every node ticks at once).
    pub epoch: Duration,
    /// How long before a tick our request must have been announced to
    /// take part in it (so that peers have it too).
    pub settle: Duration,
    /// How often a waiting request is announced again (for peers that
    /// subscribed since).
    pub announce_every: Duration,
    /// Phase timeouts.
    pub timeouts: Timeouts,
    /// How long a request stays valid.
    pub request_ttl: Duration,
    /// Our requests open at once.
    pub max_open_requests: usize,
    /// Capacity of the status event channel.
    pub event_buffer: usize,
    /// How this node misbehaves (the test-only disruptor).
    #[cfg(feature = "disruptor")]
    pub disruption: Option<crate::proto::disrupt::Disruption>,
    /// The test-only disruptor lies about its first input's amount by
    /// this many sats (0: it does not).
    #[cfg(feature = "disruptor")]
    pub claim_extra_sats: u64,
}

impl Default for CoinJoinConfig {
    fn default() -> Self {
        Self {
            epoch: Duration::from_secs(600),
            settle: Duration::from_secs(60),
            announce_every: Duration::from_secs(60),
            timeouts: Timeouts::default(),
            request_ttl: Duration::from_secs(6 * 3600),
            max_open_requests: 16,
            event_buffer: 256,
            #[cfg(feature = "disruptor")]
            disruption: None,
            #[cfg(feature = "disruptor")]
            claim_extra_sats: 0,
        }
    }
}

impl CoinJoinConfig {
    /// Short epochs and timeouts, for tests on one machine.
    pub fn quick(epoch: Duration, phase: Duration) -> Self {
        Self {
            epoch,
            settle: epoch / 2,
            announce_every: (epoch / 8).max(Duration::from_millis(100)),
            timeouts: Timeouts { phase },
            ..Self::default()
        }
    }
}

/// What to mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinParams {
    /// Sats per mixed output.
    pub denomination: u64,
    /// The coins to spend (paid to this wallet).
    pub inputs: Vec<Outpoint>,
    /// Sat/vB (rounded up to the ladder's next step).
    pub fee_rate: u64,
    /// The most fee we pay, sats.
    pub max_fee: Option<u64>,
}

/// Why a CoinJoin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CoinJoinError {
    /// The node refused or failed.
    #[error("node: {0}")]
    Node(#[from] NodeError),
    /// The wallet failed.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The chain source failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// Denomination or fee rate out of range.
    #[error(transparent)]
    Pairing(#[from] PairingError),
    /// The request would be refused by peers.
    #[error("the request would be refused: {0}")]
    Request(#[from] RequestError),
    /// Something the caller passed is wrong.
    #[error("{0}")]
    Invalid(String),
    /// An input is unknown to the chain or already spent.
    #[error("input {0} is not an unspent output on the chain: check the outpoint (TXID:VOUT) and that it is confirmed")]
    UnknownInput(Outpoint),
    /// No such request here.
    #[error("no CoinJoin request {0} on this node: `conclavectl coinjoin list` shows them")]
    UnknownRequest(String),
    /// Too many requests open.
    #[error("{0} CoinJoin requests are open already: cancel one or wait for one to finish")]
    Busy(usize),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The service stopped.
    #[error("the CoinJoin service has stopped")]
    Stopped,
    /// The service is not running here (not configured, or it failed to
    /// start): why, ending with what to do.
    #[error("CoinJoin is unavailable: {0}")]
    Unavailable(String),
}

/// A join, ready for the actor.
pub(crate) struct PreparedJoin {
    pub request: PairRequest,
    pub coin_secrets: Vec<Zeroizing<[u8; 32]>>,
    pub output_seed: Zeroizing<[u8; 32]>,
    pub max_fee: Option<u64>,
    pub inputs: Vec<Outpoint>,
    /// Our outputs' amounts are known only from the transaction; the
    /// change script is ours to recognise it.
    pub change_script: bitcoin::ScriptBuf,
}

/// Requests to the actor.
pub(crate) enum Command {
    Join {
        join: Box<PreparedJoin>,
        reply: oneshot::Sender<Result<RequestId, CoinJoinError>>,
    },
    Status {
        id: RequestId,
        reply: oneshot::Sender<Option<RequestStatus>>,
    },
    List {
        reply: oneshot::Sender<Vec<RequestStatus>>,
    },
    Cancel {
        id: RequestId,
        reply: oneshot::Sender<Result<RequestStatus, CoinJoinError>>,
    },
    Stop {
        reply: oneshot::Sender<()>,
    },
}

pub(crate) struct Shared {
    pub node: NodeHandle,
    pub wallet: Wallet,
    pub chain: Arc<dyn ChainSource>,
    pub config: CoinJoinConfig,
    pub store: Option<store::CoinJoinStore>,
}

/// A request of ours read back from the database, with its secrets
/// derived again from the wallet.
pub(crate) struct Restored {
    pub join: PreparedJoin,
    pub status: RequestStatus,
}

/// The CoinJoin service.
pub struct CoinJoinService;

impl CoinJoinService {
    /// Starts the service on `node`, with keys from `wallet` and coins
    /// checked against `chain`; nothing is kept across restarts.
    pub fn start(
        node: NodeHandle,
        wallet: Wallet,
        chain: Arc<dyn ChainSource>,
        config: CoinJoinConfig,
    ) -> CoinJoinHandle {
        Self::spawn(
            node,
            wallet,
            chain,
            config,
            None,
            store::Loaded::default(),
            Vec::new(),
        )
    }

    /// Like [`Self::start`], keeping requests, exclusions and history in
    /// the profile's database `db`. Requests left open by the last run come
    /// back: one that was in a session goes back to waiting (its inputs are
    /// free again), unless it may have signed, which ends it (nothing is
    /// signed twice); a complete transaction is sent again.
    pub async fn start_with_store(
        node: NodeHandle,
        wallet: Wallet,
        chain: Arc<dyn ChainSource>,
        config: CoinJoinConfig,
        db: Database,
    ) -> Result<CoinJoinHandle, CoinJoinError> {
        let (store, loaded) = tokio::task::spawn_blocking(move || store::CoinJoinStore::open(db))
            .await
            .map_err(|e| CoinJoinError::Invalid(format!("opening the database: {e}")))??;
        wallet.resume_after(loaded.next_receive);
        let mut restored = Vec::new();
        for (stored, status) in &loaded.requests {
            let request = PairRequest::decode(&stored.request)?;
            let mut status = status.clone();
            let mut coin_secrets = Vec::new();
            if !status.phase.is_final() {
                let scripts = request
                    .inputs
                    .iter()
                    .map(|i| bitcoin::ScriptBuf::from_bytes(i.script_pubkey.clone()))
                    .collect();
                coin_secrets = wallet.secrets_for(scripts).await?;
            }
            let keys = wallet.request_keys(request.nonce).await?;
            match status.phase {
                RequestPhase::Signatures => {
                    coin_secrets.clear();
                    status.phase = RequestPhase::Failed;
                    status.last_error = Some(
                        "the node stopped while signing; the request ends so that its inputs are \
                         never signed twice: join again if no transaction confirms"
                            .into(),
                    );
                }
                p if !p.is_final()
                    && p != RequestPhase::Waiting
                    && p != RequestPhase::Broadcasting =>
                {
                    status.phase = RequestPhase::Waiting;
                    status.run = 0;
                    status.last_error =
                        Some("the node stopped during a session; the request waits again".into());
                }
                _ => {}
            }
            restored.push(Restored {
                join: PreparedJoin {
                    inputs: request.outpoints(),
                    request,
                    coin_secrets,
                    output_seed: keys.output_seed,
                    max_fee: stored.max_fee,
                    change_script: keys.change_script,
                },
                status,
            });
        }
        Ok(Self::spawn(
            node,
            wallet,
            chain,
            config,
            Some(store),
            loaded,
            restored,
        ))
    }

    fn spawn(
        node: NodeHandle,
        wallet: Wallet,
        chain: Arc<dyn ChainSource>,
        config: CoinJoinConfig,
        store: Option<store::CoinJoinStore>,
        loaded: store::Loaded,
        restored: Vec<Restored>,
    ) -> CoinJoinHandle {
        let (commands_tx, commands) = mpsc::channel(64);
        let (events, _) = broadcast::channel(config.event_buffer.max(1));
        let shared = Arc::new(Shared {
            node,
            wallet,
            chain,
            config,
            store,
        });
        let handle = CoinJoinHandle {
            commands: commands_tx,
            events: events.downgrade(),
            shared: shared.clone(),
        };
        let actor = actor::Actor::new(shared, events, commands, loaded.strikes, restored);
        tokio::spawn(actor.run());
        handle
    }
}

/// The cloneable client of the service.
#[derive(Clone)]
pub struct CoinJoinHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::WeakSender<RequestStatus>,
    shared: Arc<Shared>,
}

impl CoinJoinHandle {
    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, CoinJoinError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| CoinJoinError::Stopped)?;
        rx.await.map_err(|_| CoinJoinError::Stopped)
    }

    /// The wallet.
    pub fn wallet(&self) -> &Wallet {
        &self.shared.wallet
    }

    /// A new receive address of the wallet.
    pub async fn new_address(&self) -> Result<Address, CoinJoinError> {
        let address = self.shared.wallet.new_address().await?;
        if let Some(store) = &self.shared.store {
            store.save_next_receive(self.shared.wallet.issued());
        }
        Ok(address)
    }

    /// Every status change of our requests (a slow subscriber lags).
    pub fn subscribe(&self) -> broadcast::Receiver<RequestStatus> {
        match self.events.upgrade() {
            Some(sender) => sender.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    async fn chain<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn ChainSource) -> Result<T, ChainError> + Send + 'static,
    ) -> Result<T, CoinJoinError> {
        let chain = self.shared.chain.clone();
        match tokio::task::spawn_blocking(move || op(chain.as_ref())).await {
            Ok(result) => Ok(result?),
            Err(e) => Err(CoinJoinError::Invalid(format!("chain lookup failed: {e}"))),
        }
    }

    /// Joins CoinJoin rounds with `params`: checks the coins on the chain,
    /// finds their keys in the wallet, signs the request's ownership
    /// proofs and announces it. It takes part in every epoch's session
    /// until it completes or is cancelled.
    pub async fn join(&self, params: JoinParams) -> Result<RequestId, CoinJoinError> {
        let step =
            Pairing::ladder_step(params.fee_rate).ok_or(PairingError::FeeRate(params.fee_rate))?;
        let pairing = Pairing::new(params.denomination, step)?;
        let mut inputs = params.inputs.clone();
        inputs.sort();
        inputs.dedup();
        if inputs.is_empty() || inputs.len() > MAX_INPUTS || inputs.len() != params.inputs.len() {
            return Err(CoinJoinError::Invalid(format!(
                "pass 1 to {MAX_INPUTS} distinct inputs as TXID:VOUT[,TXID:VOUT...]"
            )));
        }
        let lookup = params.inputs.clone();
        let utxos = self.chain(move |c| c.unspent_outputs(&lookup)).await?;
        let mut coins = Vec::with_capacity(utxos.len());
        for (outpoint, utxo) in params.inputs.iter().zip(utxos) {
            let utxo = utxo.ok_or(CoinJoinError::UnknownInput(*outpoint))?;
            coins.push((*outpoint, utxo.txout));
        }
        let scripts = coins.iter().map(|(_, t)| t.script_pubkey.clone()).collect();
        let wallet = &self.shared.wallet;
        let coin_secrets = wallet.secrets_for(scripts).await.map_err(|e| match e {
            WalletError::NotOurs(_) => CoinJoinError::Invalid(format!("an input is not ours: {e}")),
            e => e.into(),
        })?;
        let keys = coin_secrets
            .iter()
            .map(|s| CoinKey::from_secret_bytes(s).expect("wallet keys are valid"))
            .collect::<Vec<_>>();
        let mut nonce = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let request_keys = wallet.request_keys(nonce).await?;
        let ttl = self
            .shared
            .config
            .request_ttl
            .as_secs()
            .min(MAX_EXPIRY_SECS);
        let now = unix_secs();
        #[allow(unused_mut)]
        let mut claimed = coins.clone();
        #[cfg(feature = "disruptor")]
        if self.shared.config.claim_extra_sats > 0 {
            claimed[0].1.value += bitcoin::Amount::from_sat(self.shared.config.claim_extra_sats);
        }
        let request = PairRequest::new(
            pairing,
            self.shared.node.peer_id().to_bytes(),
            &claimed,
            &keys,
            1,
            Some(request_keys.change_script.clone()),
            now + ttl,
            nonce,
        )?;
        let check = request.clone();
        #[cfg(feature = "disruptor")]
        let lying = self.shared.config.claim_extra_sats > 0;
        #[cfg(not(feature = "disruptor"))]
        let lying = false;
        if !lying {
            self.chain(move |c| Ok(validate_request(&check, &pairing, c, now)))
                .await??;
        }
        if let Some(max) = params.max_fee {
            let fee = worst_case_fee(&coins, pairing);
            if fee > max {
                return Err(CoinJoinError::Invalid(format!(
                    "the fee of these inputs at {step} sat/vB is up to {fee} sats, over --max-fee {max}: \
                     raise --max-fee or pick a lower fee rate"
                )));
            }
        }
        self.shared.node.subscribe(&pairing.topic()).await?;
        let join = PreparedJoin {
            request,
            coin_secrets,
            output_seed: request_keys.output_seed,
            max_fee: params.max_fee,
            inputs: params.inputs,
            change_script: request_keys.change_script,
        };
        self.request(|reply| Command::Join {
            join: Box::new(join),
            reply,
        })
        .await?
    }

    /// What joining with `inputs` at `denomination` and `fee_rate` would
    /// cost: their amounts as the chain has them, the fee and the change.
    pub async fn quote(
        &self,
        inputs: Vec<Outpoint>,
        denomination: u64,
        fee_rate: u64,
    ) -> Result<quote::JoinQuote, CoinJoinError> {
        let lookup = inputs.clone();
        let utxos = self.chain(move |c| c.unspent_outputs(&lookup)).await?;
        let mut coins = Vec::with_capacity(utxos.len());
        for (outpoint, utxo) in inputs.iter().zip(utxos) {
            let utxo = utxo.ok_or(CoinJoinError::UnknownInput(*outpoint))?;
            coins.push(quote::QuotedCoin {
                outpoint: outpoint.to_string(),
                amount_sats: utxo.txout.value.to_sat(),
            });
        }
        Ok(quote::quote(coins, denomination, fee_rate)?)
    }

    /// The status of request `id` (hex).
    pub async fn status(&self, id: &str) -> Result<RequestStatus, CoinJoinError> {
        let parsed = parse_request_id(id)?;
        self.request(|reply| Command::Status { id: parsed, reply })
            .await?
            .ok_or_else(|| CoinJoinError::UnknownRequest(id.to_string()))
    }

    /// Waits until request `id` is final or `timeout` passed; its status.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<RequestStatus, CoinJoinError> {
        let mut events = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = self.status(id).await?;
            if status.phase.is_final() {
                return Ok(status);
            }
            loop {
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Err(_) => return self.status(id).await,
                    Ok(Ok(s)) if s.request_id == status.request_id => break,
                    Ok(Ok(_)) => continue,
                    // Lagged: read the status again.
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => break,
                    Ok(Err(broadcast::error::RecvError::Closed)) => {
                        return Err(CoinJoinError::Stopped)
                    }
                }
            }
        }
    }

    /// Every request of ours, newest last.
    pub async fn list(&self) -> Result<Vec<RequestStatus>, CoinJoinError> {
        self.request(|reply| Command::List { reply }).await
    }

    /// Cancels request `id`: it takes part in no further session (a
    /// session it is in goes on without it).
    pub async fn cancel(&self, id: &str) -> Result<RequestStatus, CoinJoinError> {
        let parsed = parse_request_id(id)?;
        self.request(|reply| Command::Cancel { id: parsed, reply })
            .await?
    }

    /// Stops the service.
    pub async fn stop(&self) {
        let _ = self.request(|reply| Command::Stop { reply }).await;
    }
}

/// The largest fee a request over `coins` pays in `pairing`.
fn worst_case_fee(coins: &[(Outpoint, TxOut)], pairing: Pairing) -> u64 {
    crate::tx::worst_case_fee(coins.len(), 1, pairing.fee_rate)
}

/// Parses a request id (64 hex characters).
pub fn parse_request_id(text: &str) -> Result<RequestId, CoinJoinError> {
    let bytes = hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            CoinJoinError::Invalid(format!(
                "invalid request id {text:?}: expected the 64 hex characters `coinjoin join` printed"
            ))
        })?;
    Ok(RequestId(bytes))
}
