//! The CoinJoin service on the daemon's control socket: the `coinjoin.*`
//! methods behind `conclavectl coinjoin ...` and `conclavectl wallet
//! address`, and the flags that connect it to Bitcoin Core.
//!
//! The service starts in the background once the node runs (connecting
//! to Bitcoin Core and opening the keychain may take a moment or fail);
//! calls wait for it, and if it cannot run they fail with the reason,
//! while the node itself keeps serving.

use std::{path::PathBuf, time::Duration};

use bitcoin::Network;
use conclave_coinjoin::{
    chain::bitcoind::BitcoindConfig,
    coin::Outpoint,
    service::{supervisor::start_on_chain, CoinJoinConfig, CoinJoinHandle, JoinParams},
    settings::{parse_network, ChainSettings},
};
use conclave_node::{
    control::{
        rpc::{self, params, to_value, RpcError},
        server::ControlExtension,
    },
    store::Database,
    NodeHandle,
};
use futures::{future::BoxFuture, FutureExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;

/// Longest `--wait` of `coinjoin status`, in seconds.
pub const MAX_WAIT_SECS: u64 = 3600;

/// conclaved's CoinJoin flags.
#[derive(clap::Args, Debug, Clone)]
pub struct CoinJoinFlags {
    /// The Bitcoin network CoinJoin rounds mix on (mainnet also needs
    /// --allow-mainnet).
    #[arg(long, value_parser = ["regtest", "signet", "testnet", "mainnet"])]
    pub network: Option<String>,
    /// Mix real bitcoin: required with --network mainnet.
    #[arg(long)]
    pub allow_mainnet: bool,
    /// Bitcoin Core's JSON-RPC endpoint, http://HOST:PORT (CoinJoin is off
    /// without it).
    #[arg(long, value_name = "URL")]
    pub bitcoind_rpc: Option<String>,
    /// Bitcoin Core's cookie file (its .cookie, per network).
    #[arg(long, value_name = "FILE")]
    pub bitcoind_cookie: Option<PathBuf>,
    /// Seconds between CoinJoin epoch ticks (default 600).
    #[arg(long, value_name = "SECS")]
    pub coinjoin_epoch: Option<u64>,
    /// Seconds each CoinJoin phase may take (default 30).
    #[arg(long, value_name = "SECS")]
    pub coinjoin_phase_timeout: Option<u64>,
    /// Test builds only: misbehave in every CoinJoin session.
    #[cfg(feature = "coinjoin-disruptor")]
    #[arg(long, value_name = "HOW", value_parser = [
        "withhold", "equivocate", "dc-garbage", "sr-garbage", "bad-signature", "wrong-amount",
    ])]
    pub coinjoin_disrupt: Option<String>,
}

impl CoinJoinFlags {
    /// The network, if CoinJoin is configured; an error names what is
    /// missing or refused.
    fn network(&self) -> Result<Network, String> {
        let Some(name) = self.network.as_deref() else {
            return Err(
                "no --network was given: pass --network regtest|signet|testnet|mainnet".into(),
            );
        };
        let network = parse_network(name).ok_or_else(|| {
            format!("unknown --network {name:?}: pass regtest, signet, testnet or mainnet")
        })?;
        if network == Network::Bitcoin && !self.allow_mainnet {
            return Err("--network mainnet mixes real bitcoin: add --allow-mainnet to mean it, or pick regtest, signet or testnet".into());
        }
        Ok(network)
    }

    /// Whether CoinJoin was asked for at all.
    pub fn enabled(&self) -> bool {
        self.bitcoind_rpc.is_some() || self.network.is_some()
    }

    fn config(&self) -> CoinJoinConfig {
        let mut config = CoinJoinConfig::default();
        if let Some(epoch) = self.coinjoin_epoch {
            let epoch = Duration::from_secs(epoch.max(1));
            let phase = config.timeouts.phase;
            config = CoinJoinConfig::quick(epoch, phase);
        }
        if let Some(phase) = self.coinjoin_phase_timeout {
            config.timeouts.phase = Duration::from_secs(phase.max(1));
        }
        #[cfg(feature = "coinjoin-disruptor")]
        match self.coinjoin_disrupt.as_deref() {
            Some("wrong-amount") => config.claim_extra_sats = 1_000,
            how => config.disruption = how.map(disruption),
        }
        config
    }

    fn bitcoind(&self, network: Network) -> Result<BitcoindConfig, String> {
        let url = self
            .bitcoind_rpc
            .clone()
            .ok_or("no --bitcoind-rpc was given: pass Bitcoin Core's http://HOST:PORT")?;
        let cookie = self
            .bitcoind_cookie
            .clone()
            .ok_or("no --bitcoind-cookie was given: pass Bitcoin Core's .cookie file")?;
        let mut config = BitcoindConfig::new(url, cookie, network);
        config.allow_mainnet = self.allow_mainnet;
        Ok(config)
    }
}

#[cfg(feature = "coinjoin-disruptor")]
fn disruption(name: &str) -> conclave_coinjoin::proto::disrupt::Disruption {
    use conclave_coinjoin::{exclusion::Phase, proto::disrupt::Disruption};
    match name {
        "withhold" => Disruption::Withhold(Phase::DcNet),
        "equivocate" => Disruption::Equivocate(Phase::SlotReservation),
        "dc-garbage" => Disruption::DcGarbage,
        "sr-garbage" => Disruption::SlotGarbage,
        _ => Disruption::BadSignature,
    }
}

/// Starts the CoinJoin service on `node` as `flags` say: connects to
/// Bitcoin Core (checking its network), opens the wallet in the keychain
/// under `namespace`, and keeps requests, exclusions and history in
/// `profile`'s database.
pub async fn start(
    node: NodeHandle,
    namespace: &str,
    db: Database,
    flags: &CoinJoinFlags,
) -> Result<CoinJoinHandle, String> {
    let network = flags.network()?;
    let chain = ChainSettings {
        network,
        bitcoind: flags.bitcoind(network)?,
        service: flags.config(),
    };
    start_on_chain(node, namespace, db, &chain)
        .await
        .map_err(|e| e.to_string())
}

/// Serves the CoinJoin methods of a service that is starting, running, or
/// could not start.
pub struct CoinJoinControl {
    service: watch::Receiver<Option<Result<CoinJoinHandle, String>>>,
}

impl CoinJoinControl {
    /// Serves the service that `starting` resolves to (started in the
    /// background here).
    pub fn spawn(
        starting: impl std::future::Future<Output = Result<CoinJoinHandle, String>> + Send + 'static,
    ) -> Self {
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let result = starting.await;
            if let Err(reason) = &result {
                tracing::warn!(%reason, "coinjoin service not started");
            }
            let _ = tx.send(Some(result));
        });
        Self { service: rx }
    }

    /// Answers every CoinJoin call with `reason` (CoinJoin is off).
    pub fn disabled(reason: &str) -> Self {
        let (_, rx) = watch::channel(Some(Err(reason.to_string())));
        Self { service: rx }
    }
}

async fn service_of(
    mut service: watch::Receiver<Option<Result<CoinJoinHandle, String>>>,
) -> Result<CoinJoinHandle, String> {
    let ready = service
        .wait_for(Option::is_some)
        .await
        .map_err(|_| "the CoinJoin service is gone".to_string())?;
    ready.clone().expect("waited for it")
}

impl ControlExtension for CoinJoinControl {
    fn call(
        &self,
        method: &str,
        params: Value,
    ) -> Option<BoxFuture<'static, Result<Value, RpcError>>> {
        if !method.starts_with("coinjoin.") {
            return None;
        }
        let service = self.service.clone();
        let method = method.to_string();
        Some(
            async move {
                let handle = service_of(service).await.map_err(|reason| {
                    RpcError::node(format!("CoinJoin is unavailable on this daemon: {reason}"))
                })?;
                dispatch(&handle, &method, params).await
            }
            .boxed(),
        )
    }
}

#[derive(Deserialize)]
struct JoinRequest {
    denomination: u64,
    inputs: Vec<String>,
    #[serde(default = "default_fee_rate")]
    fee_rate: u64,
    max_fee: Option<u64>,
}

fn default_fee_rate() -> u64 {
    1
}

#[derive(Deserialize)]
struct RequestParams {
    request_id: String,
    #[serde(default)]
    wait_secs: u64,
}

async fn dispatch(handle: &CoinJoinHandle, method: &str, raw: Value) -> Result<Value, RpcError> {
    let fail = |e: conclave_coinjoin::service::CoinJoinError| RpcError::node(e.to_string());
    match method {
        "coinjoin.address" => {
            let address = handle.new_address().await.map_err(fail)?;
            Ok(json!({ "address": address.to_string() }))
        }
        "coinjoin.join" => {
            let p: JoinRequest = params(raw)?;
            let inputs = p
                .inputs
                .iter()
                .map(|i| i.parse::<Outpoint>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| RpcError::invalid_params(e.to_string()))?;
            let id = handle
                .join(JoinParams {
                    denomination: p.denomination,
                    inputs,
                    fee_rate: p.fee_rate,
                    max_fee: p.max_fee,
                })
                .await
                .map_err(fail)?;
            Ok(json!({ "request_id": id.to_string() }))
        }
        "coinjoin.status" => {
            let p: RequestParams = params(raw)?;
            let status = if p.wait_secs > 0 {
                let wait = Duration::from_secs(p.wait_secs.min(MAX_WAIT_SECS));
                handle.wait(&p.request_id, wait).await
            } else {
                handle.status(&p.request_id).await
            };
            to_value(status.map_err(fail)?)
        }
        "coinjoin.list" => to_value(handle.list().await.map_err(fail)?),
        "coinjoin.cancel" => {
            let p: RequestParams = params(raw)?;
            to_value(handle.cancel(&p.request_id).await.map_err(fail)?)
        }
        other => Err(RpcError::new(
            rpc::METHOD_NOT_FOUND,
            format!("unknown method {other:?}"),
        )),
    }
}
