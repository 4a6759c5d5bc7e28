//! The CoinJoin service kept on whichever node a profile runs now, on the
//! chain source its `[coinjoin]` settings name (the desktop app runs one).
//!
//! [`CoinJoinSupervisor::run`] waits on the profile's watch of its node
//! (no polling): when a node runs, the service starts on it — connecting
//! to Bitcoin Core, opening the wallet in the keychain, reading requests
//! and history from the profile's database. A start that fails (Bitcoin
//! Core not up yet, say) is tried again, less and less often, until it
//! works or the node changes. What it is doing is on a watch
//! ([`CoinJoinSupervisor::availability`]) for the UI to show.

use std::{sync::Arc, time::Duration};

use conclave_node::{store::Database, NodeHandle, ProfileNode};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Mutex};

use super::{CoinJoinError, CoinJoinHandle, CoinJoinService};
use crate::{
    chain::{bitcoind::BitcoinCore, ChainSource},
    settings::{network_name, ChainSettings},
    wallet::Wallet,
};

/// First wait before a failed start is tried again; it doubles up to
/// [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between such tries.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Whether CoinJoin can be used now, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum Availability {
    /// Not configured, or configured wrongly: the reason says what to set.
    Off {
        /// Why, ending with what to do.
        reason: String,
    },
    /// Starting (or waiting for the node to run).
    Starting {
        /// The network it mixes on.
        network: String,
    },
    /// Running: joins are taken.
    Running {
        /// The network it mixes on.
        network: String,
    },
    /// The last start failed; it is tried again.
    Failed {
        /// The network it mixes on.
        network: String,
        /// Why, ending with what to do.
        reason: String,
    },
}

type OnStart = Box<dyn Fn(&CoinJoinHandle) + Send + Sync>;

/// The CoinJoin service of one profile's node.
pub struct CoinJoinSupervisor {
    node: Arc<ProfileNode>,
    settings: Result<ChainSettings, String>,
    database: Result<Database, String>,
    running: Mutex<Option<CoinJoinHandle>>,
    availability: watch::Sender<Availability>,
    on_start: OnStart,
}

/// Starts the CoinJoin service on `node` as `chain` says: connects to
/// Bitcoin Core (checking its network), opens the wallet in the keychain
/// under `namespace`, and keeps requests, exclusions and history in `db`.
pub async fn start_on_chain(
    node: NodeHandle,
    namespace: &str,
    db: Database,
    chain: &ChainSettings,
) -> Result<CoinJoinHandle, CoinJoinError> {
    let bitcoind = chain.bitcoind.clone();
    let core = tokio::task::spawn_blocking(move || BitcoinCore::connect(bitcoind))
        .await
        .map_err(|e| CoinJoinError::Invalid(format!("connecting to Bitcoin Core: {e}")))??;
    let source: Arc<dyn ChainSource> = Arc::new(core);
    let wallet = Wallet::open_keychain(namespace, chain.network).await?;
    CoinJoinService::start_with_store(node, wallet, source, chain.service.clone(), db).await
}

impl CoinJoinSupervisor {
    /// The service of `node`'s profile on `settings`, keeping its state in
    /// `database`; nothing starts before [`run`](Self::run). An error in
    /// either (a [`SettingsError`](crate::settings::SettingsError)'s text,
    /// say) keeps CoinJoin off and is what people are shown.
    pub fn new(
        node: Arc<ProfileNode>,
        settings: Result<ChainSettings, String>,
        database: Result<Database, String>,
    ) -> Self {
        let initial = match (&settings, &database) {
            (Err(reason), _) => Availability::Off {
                reason: reason.clone(),
            },
            (Ok(_), Err(reason)) => Availability::Off {
                reason: reason.clone(),
            },
            (Ok(chain), Ok(_)) => Availability::Starting {
                network: network_name(chain.network).into(),
            },
        };
        Self {
            node,
            settings,
            database,
            running: Mutex::new(None),
            availability: watch::channel(initial).0,
            on_start: Box::new(|_| {}),
        }
    }

    /// Calls `on_start` with each service started (to follow its events).
    pub fn on_start(mut self, on_start: impl Fn(&CoinJoinHandle) + Send + Sync + 'static) -> Self {
        self.on_start = Box::new(on_start);
        self
    }

    /// Whether CoinJoin can be used now; changes as the service starts,
    /// fails or its node restarts.
    pub fn availability(&self) -> watch::Receiver<Availability> {
        self.availability.subscribe()
    }

    /// The running service, or why there is none.
    pub async fn handle(&self) -> Result<CoinJoinHandle, CoinJoinError> {
        if let Some(handle) = self.running.lock().await.as_ref() {
            return Ok(handle.clone());
        }
        Err(CoinJoinError::Unavailable(
            match &*self.availability.borrow() {
                Availability::Off { reason } | Availability::Failed { reason, .. } => {
                    reason.clone()
                }
                _ => "it is still starting: try again in a moment".into(),
            },
        ))
    }

    /// Keeps the service on the node that runs now (see the module docs).
    /// Returns at once when CoinJoin is off, else once the profile's node
    /// is gone.
    pub async fn run(self: Arc<Self>) {
        let (Ok(chain), Ok(database)) = (&self.settings, &self.database) else {
            return;
        };
        let network = network_name(chain.network).to_string();
        let mut nodes = self.node.watch();
        let mut retry = FIRST_RETRY;
        loop {
            let node = nodes.borrow_and_update().clone();
            self.stop_running().await;
            let mut failed = false;
            if let Some(node) = node {
                self.availability.send_replace(Availability::Starting {
                    network: network.clone(),
                });
                let namespace = self.node.secrets_namespace();
                match start_on_chain(node, &namespace, database.clone(), chain).await {
                    Ok(handle) => {
                        tracing::info!(%network, "coinjoin service running");
                        (self.on_start)(&handle);
                        *self.running.lock().await = Some(handle);
                        self.availability.send_replace(Availability::Running {
                            network: network.clone(),
                        });
                        retry = FIRST_RETRY;
                    }
                    Err(e) => {
                        tracing::warn!(reason = %e, "coinjoin service not started");
                        self.availability.send_replace(Availability::Failed {
                            network: network.clone(),
                            reason: e.to_string(),
                        });
                        failed = true;
                    }
                }
            }
            tokio::select! {
                changed = nodes.changed() => {
                    if changed.is_err() {
                        self.stop_running().await;
                        return;
                    }
                    retry = FIRST_RETRY;
                }
                () = tokio::time::sleep(retry), if failed => retry = (retry * 2).min(MAX_RETRY),
            }
        }
    }

    async fn stop_running(&self) {
        if let Some(handle) = self.running.lock().await.take() {
            handle.stop().await;
        }
    }

    /// Stops the service (a session in progress goes on without us; our
    /// requests wait again at the next start); call it before the node
    /// stops.
    pub async fn shutdown(&self) {
        self.stop_running().await;
    }
}
