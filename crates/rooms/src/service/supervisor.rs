//! The rooms service kept on whichever node a profile runs now, with the
//! tools of its config.toml: what the daemon and the desktop app share.
//!
//! [`RoomsSupervisor::run`] waits on the profile's watch of its node (no
//! polling) and starts the service on each new node, so its card and tools
//! are announced without a first call; [`RoomsSupervisor::handle`] starts
//! it on demand if that has not happened yet.

use std::sync::Arc;

use conclave_node::{store::Database, ProfileNode};
use tokio::sync::Mutex;

use super::{start, RoomsConfig, RoomsError, RoomsHandle};
use crate::exec::ExecConfig;

/// Why a profile's tools could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProfileToolsError {
    /// The profile's config.toml is unusable.
    #[error(transparent)]
    Config(#[from] conclave_node::config::ConfigError),
    /// Its `[[mcp]]` or `[[shell]]` entries are.
    #[error(transparent)]
    Tools(#[from] crate::exec::config::ConfigError),
}

/// The tools of a profile's config.toml (its `[[mcp]]` and `[[shell]]`).
pub fn profile_tools(node: &ProfileNode) -> Result<ExecConfig, ProfileToolsError> {
    let config = node.config()?;
    Ok(ExecConfig::from_tables(&config.mcp, &config.shell)?)
}

/// The service's config for `node`'s profile with the tools of `exec`: the
/// agent is named after the profile and the PeerId.
pub fn profile_config(node: &ProfileNode, exec: ExecConfig) -> RoomsConfig {
    RoomsConfig {
        exec,
        agent_name: format!("{} on {}", node.profile().name(), node.peer_id()),
        ..RoomsConfig::default()
    }
}

type OnStart = Box<dyn Fn(&RoomsHandle) + Send + Sync>;

/// The rooms service of one profile's node.
pub struct RoomsSupervisor {
    node: Arc<ProfileNode>,
    db: Option<Database>,
    config: RoomsConfig,
    running: Mutex<Option<RoomsHandle>>,
    on_start: OnStart,
}

impl RoomsSupervisor {
    /// Serves rooms on `node` with state in `db` (none: in memory) as
    /// `config` says; nothing starts before [`run`](Self::run) or
    /// [`handle`](Self::handle).
    pub fn new(node: Arc<ProfileNode>, db: Option<Database>, config: RoomsConfig) -> Self {
        Self {
            node,
            db,
            config,
            running: Mutex::new(None),
            on_start: Box::new(|_| {}),
        }
    }

    /// Calls `on_start` with each service started (to follow its changes).
    pub fn on_start(mut self, on_start: impl Fn(&RoomsHandle) + Send + Sync + 'static) -> Self {
        self.on_start = Box::new(on_start);
        self
    }

    /// The service on the node that runs now, started if needed.
    pub async fn handle(&self) -> Result<RoomsHandle, RoomsError> {
        let mut running = self.running.lock().await;
        if let Some(handle) = running.as_ref().filter(|h| h.node().is_running()) {
            return Ok(handle.clone());
        }
        let node = self.node.current().ok_or(RoomsError::NodeNotRunning)?;
        let handle = start(node, self.db.clone(), self.config.clone()).await?;
        tracing::info!("rooms service running");
        (self.on_start)(&handle);
        *running = Some(handle.clone());
        Ok(handle)
    }

    /// Starts the service on each new node; returns when the profile's
    /// node is gone for good.
    pub async fn run(self: Arc<Self>) {
        let mut nodes = self.node.watch();
        loop {
            let runs = nodes.borrow_and_update().is_some();
            if runs {
                if let Err(e) = self.handle().await {
                    tracing::warn!(%e, "rooms service unavailable");
                }
            }
            if nodes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stops the service.
    pub async fn shutdown(&self) {
        if let Some(handle) = self.running.lock().await.take() {
            handle.stop();
        }
    }
}
