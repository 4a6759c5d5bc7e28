//! CoinJoin rounds in the app: the service on the running node (on the
//! chain source of the profile's `[coinjoin]` settings), the typed commands
//! of the Sessions view's CoinJoin tab, and the event that keeps it live.
//! The shapes are the coinjoin crate's own.

use std::sync::Arc;

use conclave_coinjoin::{
    coin::Outpoint,
    service::{
        quote::JoinQuote,
        supervisor::{Availability, CoinJoinSupervisor},
        JoinParams, RequestStatus,
    },
    settings::CoinJoinSettings,
};
use conclave_node::{store::Database, ProfileNode};
use serde::{Deserialize, Serialize};
use specta::Type;
use tauri::State;
use tauri_specta::Event;

use crate::error::{CommandError, CommandResult, ErrorCode};

/// Something changed in CoinJoin: the tab updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, Event)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CoinJoinChanged {
    /// A request of ours moved (phase, peers, holdouts, result).
    Request {
        /// Its whole status.
        status: Box<RequestStatus>,
    },
    /// The service started, failed or stopped.
    Availability {
        /// Where it is now.
        availability: Availability,
    },
    /// Events were missed or the service restarted: fetch everything again.
    Resync,
}

/// Where the CoinJoin events go (Tauri in the app).
pub type CoinJoinSink = Arc<dyn Fn(CoinJoinChanged) + Send + Sync>;

/// The profile's CoinJoin service, on the chain source its config names
/// (off, saying what to set, without one), its state in the profile's
/// `database`; changes go to `sink`.
pub fn supervisor(
    node: Arc<ProfileNode>,
    database: Result<Database, String>,
    sink: CoinJoinSink,
) -> Arc<CoinJoinSupervisor> {
    let config_file = node.profile().config_file().display().to_string();
    let settings = node.config().map_err(|e| e.to_string()).and_then(|config| {
        CoinJoinSettings::from_table(config.coinjoin.as_ref(), &config_file)
            .and_then(|s| s.resolve(&config_file))
            .map_err(|e| e.to_string())
    });
    let (settings, database) = match settings {
        Ok(chain) => (Ok(chain), database),
        Err(reason) => (Err(reason), Err(String::new())),
    };
    let forward = sink.clone();
    let supervisor = Arc::new(CoinJoinSupervisor::new(node, settings, database).on_start(
        move |service| {
            let (mut events, forward) = (service.subscribe(), forward.clone());
            tokio::spawn(async move {
                use tokio::sync::broadcast::error::RecvError;
                loop {
                    match events.recv().await {
                        Ok(status) => forward(CoinJoinChanged::Request {
                            status: Box::new(status),
                        }),
                        Err(RecvError::Lagged(_)) => forward(CoinJoinChanged::Resync),
                        Err(RecvError::Closed) => break,
                    }
                }
            });
        },
    ));
    let mut availability = supervisor.availability();
    // Called from the app's set-up, outside the runtime.
    tauri::async_runtime::spawn(async move {
        while availability.changed().await.is_ok() {
            let now = availability.borrow_and_update().clone();
            sink(CoinJoinChanged::Availability { availability: now });
            sink(CoinJoinChanged::Resync);
        }
    });
    supervisor
}

type CoinJoin<'a> = State<'a, Arc<CoinJoinSupervisor>>;

fn outpoints(inputs: &[String]) -> CommandResult<Vec<Outpoint>> {
    inputs
        .iter()
        .map(|i| i.trim().parse::<Outpoint>())
        .collect::<Result<_, _>>()
        .map_err(|e| CommandError::new(ErrorCode::InvalidInput, format!("coin: {e}")))
}

/// Whether CoinJoin can be used, and if not, why and what to configure.
#[tauri::command]
#[specta::specta]
pub async fn coinjoin_availability(coinjoin: CoinJoin<'_>) -> CommandResult<Availability> {
    Ok(coinjoin.availability().borrow().clone())
}

/// A new receive address of this profile's wallet, to fund coins to mix.
#[tauri::command]
#[specta::specta]
pub async fn coinjoin_address(coinjoin: CoinJoin<'_>) -> CommandResult<String> {
    Ok(coinjoin.handle().await?.new_address().await?.to_string())
}

/// What joining with `inputs` (`TXID:VOUT`) would cost: amounts, fee, change.
#[tauri::command]
#[specta::specta]
pub async fn coinjoin_quote(
    coinjoin: CoinJoin<'_>,
    inputs: Vec<String>,
    denomination: u32,
    fee_rate: u32,
) -> CommandResult<JoinQuote> {
    let inputs = outpoints(&inputs)?;
    let handle = coinjoin.handle().await?;
    Ok(handle
        .quote(inputs, denomination.into(), fee_rate.into())
        .await?)
}

/// Joins CoinJoin rounds mixing `inputs` into one `denomination` output;
/// it retries each epoch until done or cancelled. Returns the request id.
#[tauri::command]
#[specta::specta]
pub async fn coinjoin_join(
    coinjoin: CoinJoin<'_>,
    inputs: Vec<String>,
    denomination: u32,
    fee_rate: u32,
    max_fee: Option<u32>,
) -> CommandResult<String> {
    let params = JoinParams {
        inputs: outpoints(&inputs)?,
        denomination: denomination.into(),
        fee_rate: fee_rate.into(),
        max_fee: max_fee.map(u64::from),
    };
    Ok(coinjoin.handle().await?.join(params).await?.to_string())
}

/// Every request of ours, newest first, with its timeline.
#[tauri::command]
#[specta::specta]
pub async fn coinjoin_requests(coinjoin: CoinJoin<'_>) -> CommandResult<Vec<RequestStatus>> {
    let mut list = coinjoin.handle().await?.list().await?;
    list.reverse();
    Ok(list)
}

/// Cancels a request: it joins no further session.
#[tauri::command]
#[specta::specta]
pub async fn coinjoin_cancel(
    coinjoin: CoinJoin<'_>,
    request_id: String,
) -> CommandResult<RequestStatus> {
    Ok(coinjoin.handle().await?.cancel(&request_id).await?)
}
