//! The signing service kept on whichever node a profile runs now, with its
//! keys in the OS keychain: `conclaved` and the desktop app both run one.
//!
//! [`SigningSupervisor::run`] waits on the profile's watch of its node (no
//! polling): when a new node runs, the service starts on it, so this node's
//! keys are advertised and invitations arrive without anyone asking first.
//! A start that fails (a locked keychain, say) is tried again, less and
//! less often, until it works or the node changes; calls in between try
//! once more themselves and say why it failed. A service that ends while
//! its node still runs (it failed) is started again, and the log says so.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use conclave_node::{NodeError, ProfileNode};

use crate::service::{SigningConfig, SigningError, SigningHandle, SigningService};

/// First wait before a failed start is tried again; it doubles up to
/// [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between such tries.
const MAX_RETRY: Duration = Duration::from_secs(60);

type OnStart = Box<dyn Fn(&SigningHandle) + Send + Sync>;

/// The signing service of one profile's node.
pub struct SigningSupervisor {
    node: Arc<ProfileNode>,
    config: SigningConfig,
    running: tokio::sync::Mutex<Option<SigningHandle>>,
    on_start: OnStart,
    /// Set by [`shutdown`](SigningSupervisor::shutdown): nothing restarts.
    shut_down: AtomicBool,
}

impl SigningSupervisor {
    /// The service of `node`'s profile, run with `config`; nothing starts
    /// before [`run`](Self::run) or [`handle`](Self::handle).
    pub fn new(node: Arc<ProfileNode>, config: SigningConfig) -> Self {
        Self {
            node,
            config,
            running: tokio::sync::Mutex::new(None),
            on_start: Box::new(|_| {}),
            shut_down: AtomicBool::new(false),
        }
    }

    /// Calls `on_start` with each service started (to follow its events).
    pub fn on_start(mut self, on_start: impl Fn(&SigningHandle) + Send + Sync + 'static) -> Self {
        self.on_start = Box::new(on_start);
        self
    }

    /// The service on the node that runs now, started if that node is new.
    pub async fn handle(&self) -> Result<SigningHandle, SigningError> {
        let mut running = self.running.lock().await;
        if self.shut_down.load(Ordering::Acquire) {
            return Err(SigningError::Stopped);
        }
        if let Some(handle) = running.as_ref().filter(|h| h.node().is_running()) {
            if handle.is_running() {
                return Ok(handle.clone());
            }
            tracing::warn!(
                "the signing service ended unexpectedly; starting it again \
                 (sessions it had in progress are aborted)"
            );
        }
        let node = self.node.current().ok_or(NodeError::Stopped)?;
        let namespace = self.node.secrets_namespace();
        let handle =
            SigningService::start_with_keychain(node, &namespace, self.config.clone()).await?;
        tracing::info!(node = %handle.node().peer_id(), "signing service running");
        (self.on_start)(&handle);
        *running = Some(handle.clone());
        Ok(handle)
    }

    /// Keeps the service on the node that runs now (see the module docs).
    /// Returns once the profile's node is gone.
    pub async fn run(self: Arc<Self>) {
        let mut nodes = self.node.watch();
        let mut retry = FIRST_RETRY;
        let mut last_error = None;
        while !self.shut_down.load(Ordering::Acquire) {
            // Read (and release) the watch before awaiting anything.
            let node_runs = nodes.borrow_and_update().is_some();
            let mut service = None;
            if node_runs {
                match self.handle().await {
                    Ok(handle) => {
                        (last_error, retry) = (None, FIRST_RETRY);
                        service = Some(handle);
                    }
                    Err(e) => {
                        let reason = e.to_string();
                        if last_error.as_ref() != Some(&reason) {
                            tracing::warn!(%reason, "signing service unavailable");
                            last_error = Some(reason);
                        }
                    }
                }
            }
            let failed = node_runs && service.is_none();
            let ended = async {
                match &service {
                    Some(handle) => handle.ended().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = nodes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    retry = FIRST_RETRY;
                }
                // Its node stopping ends it too; the watch then says so.
                () = ended => {}
                () = tokio::time::sleep(retry), if failed => retry = (retry * 2).min(MAX_RETRY),
            }
        }
    }

    /// Stops the service (aborting sessions in progress, telling their
    /// peers); call it before the node stops.
    pub async fn shutdown(&self) {
        let mut running = self.running.lock().await;
        self.shut_down.store(true, Ordering::Release);
        if let Some(handle) = running.take() {
            if let Err(e) = handle.stop().await {
                tracing::debug!(%e, "signing service already stopped");
            }
        }
    }
}
