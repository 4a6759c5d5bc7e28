//! Local MCP servers as tools, through the official Rust SDK (`rmcp`): a
//! client over the server's stdio, started as a child process and started
//! again whenever it exits. Only the configured tools are listed or
//! callable; each is the skill `mcp.<server>.<tool>`.
//!
//! The connection opens in `rmcp`'s automatic lifecycle: it asks
//! `server/discover` at 2026-07-28 first (the stateless era) and falls back
//! to `initialize` at 2025-11-25 when the server answers as a legacy server
//! (or not within ten seconds). [`McpServer::protocol_version`] tells which.
//!
//! A call forwards the server's progress notifications to the caller, and a
//! cancel sends MCP's `notifications/cancelled`. A server that keeps
//! reporting progress for a canceled call after the grace period is killed
//! and started again. A call in flight when the server dies fails with
//! [`McpError::ServerExited`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use rmcp::{
    model::{
        CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotification,
        CancelledNotificationParam, ClientRequest, JsonObject, PingRequest,
        ProgressNotificationParam, ProgressToken, ProtocolVersion, ServerResult,
    },
    service::{
        ClientLifecycleMode, ClientServiceExt, NotificationContext, PeerRequestOptions, RoleClient,
    },
    transport::TokioChildProcess,
    ClientHandler, Peer, ServiceError,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::config::{Approve, McpServerConfig};

/// How long a canceled call's server may go on reporting progress.
pub const CANCEL_GRACE: Duration = Duration::from_secs(2);
/// The longest wait between two restarts of a server that keeps exiting.
pub const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(5);
/// Progress notifications buffered per call (more are dropped).
pub const PROGRESS_BUFFER: usize = 64;

/// Why a tool call or listing failed.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The tool is not in the server's `expose` list.
    #[error("tool {tool:?} of MCP server {server:?} is not exposed; add it to expose = [...] to share it")]
    NotExposed {
        /// The server.
        server: String,
        /// The tool.
        tool: String,
    },
    /// The server is not running (it is being started again).
    #[error("MCP server {0:?} is not running; it is being restarted, try again shortly")]
    NotRunning(String),
    /// The server exited while the call ran.
    #[error("MCP server {0:?} exited during the call; it is being restarted")]
    ServerExited(String),
    /// The server answered with an error.
    #[error("MCP server {server:?} refused the call: {message}")]
    Server {
        /// The server.
        server: String,
        /// Its error.
        message: String,
    },
    /// The call took longer than its timeout (it was canceled).
    #[error("the call to {0} took longer than its timeout and was canceled")]
    Timeout(String),
    /// The caller canceled the call.
    #[error("the call to {0} was canceled")]
    Canceled(String),
    /// The server sent something else than a tool result.
    #[error("MCP server {0:?} sent an unexpected answer")]
    Unexpected(String),
}

/// One progress notification of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Progress so far.
    pub progress: f64,
    /// The total, if known.
    pub total: Option<f64>,
    /// A note.
    pub message: Option<String>,
}

/// An exposed tool, as other peers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExposedTool {
    /// The skill id: `mcp.<server>.<tool>`.
    pub skill: String,
    /// The tool's MCP name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// Its JSON Schema for arguments.
    pub input_schema: JsonObject,
    /// Whether it declares itself idempotent (MCP `idempotentHint`).
    pub idempotent: bool,
    /// Whether a call waits for the owner's approval.
    pub needs_approval: bool,
}

type Routes = Arc<Mutex<HashMap<ProgressToken, mpsc::Sender<Progress>>>>;

/// Routes progress notifications to the call that asked for them.
#[derive(Clone)]
struct ProgressRouter {
    routes: Routes,
}

impl ClientHandler for ProgressRouter {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let route = self
            .routes
            .lock()
            .expect("routes lock")
            .get(&params.progress_token)
            .cloned();
        if let Some(route) = route {
            // Bounded: a flood of progress is dropped, not queued.
            let _ = route.try_send(Progress {
                progress: params.progress,
                total: params.total,
                message: params.message,
            });
        }
    }
}

#[derive(Clone)]
struct Running {
    peer: Peer<RoleClient>,
    pid: Option<u32>,
    protocol: String,
    generation: u64,
}

/// A supervised local MCP server. Cloning shares it.
#[derive(Clone)]
pub struct McpServer {
    config: Arc<McpServerConfig>,
    routes: Routes,
    running: watch::Receiver<Option<Running>>,
    restart: mpsc::Sender<()>,
    stop: CancellationToken,
}

impl Drop for McpServer {
    fn drop(&mut self) {
        // The last handle stops the supervisor (and so the child).
        if Arc::strong_count(&self.config) == 1 {
            self.stop.cancel();
        }
    }
}

impl McpServer {
    /// Starts supervising the server (needs a Tokio runtime).
    pub fn start(config: McpServerConfig) -> Self {
        let config = Arc::new(config);
        let routes: Routes = Arc::default();
        let (tx, running) = watch::channel(None);
        let (restart, restart_rx) = mpsc::channel(4);
        let stop = CancellationToken::new();
        tokio::spawn(supervise(
            config.clone(),
            routes.clone(),
            tx,
            restart_rx,
            stop.clone(),
        ));
        Self {
            config,
            routes,
            running,
            restart,
            stop,
        }
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Waits until the server runs (or `timeout` passes).
    pub async fn ready(&self, timeout: Duration) -> Result<(), McpError> {
        self.current(timeout).await.map(|_| ())
    }

    async fn current(&self, timeout: Duration) -> Result<Running, McpError> {
        let mut rx = self.running.clone();
        let found = tokio::time::timeout(timeout, async {
            rx.wait_for(|r| r.as_ref().is_some_and(|r| !r.peer.is_transport_closed()))
                .await
                .ok()
                .and_then(|r| r.clone())
        })
        .await;
        found
            .ok()
            .flatten()
            .ok_or_else(|| McpError::NotRunning(self.config.name.clone()))
    }

    /// The process id of the running server (diagnostics and tests).
    pub fn pid(&self) -> Option<u32> {
        self.running.borrow().as_ref().and_then(|r| r.pid)
    }

    /// How many times the server was started (1 after the first start).
    pub fn generation(&self) -> u64 {
        self.running.borrow().as_ref().map_or(0, |r| r.generation)
    }

    /// The MCP protocol version of the current connection.
    pub fn protocol_version(&self) -> Option<String> {
        self.running.borrow().as_ref().map(|r| r.protocol.clone())
    }

    fn exposed(&self, tool: &str) -> bool {
        self.config.expose.iter().any(|t| t == tool)
    }

    /// The exposed tools the server lists (`tools/list`, filtered).
    pub async fn list_tools(&self, timeout: Duration) -> Result<Vec<ExposedTool>, McpError> {
        let running = self.current(timeout).await?;
        let tools = tokio::time::timeout(timeout, running.peer.list_all_tools())
            .await
            .map_err(|_| McpError::Timeout(format!("tools/list of {}", self.config.name)))?
            .map_err(|e| self.service_error(e))?;
        Ok(tools
            .into_iter()
            .filter(|t| self.exposed(&t.name))
            .map(|t| {
                let a = t.annotations.clone().unwrap_or_default();
                // MCP's defaults: not read-only, destructive, not idempotent.
                let destructive =
                    !a.read_only_hint.unwrap_or(false) && a.destructive_hint.unwrap_or(true);
                ExposedTool {
                    skill: format!("mcp.{}.{}", self.config.name, t.name),
                    name: t.name.to_string(),
                    description: t.description.as_ref().map(|d| d.to_string()),
                    input_schema: (*t.input_schema).clone(),
                    idempotent: a.idempotent_hint.unwrap_or(false),
                    needs_approval: self.config.approve == Approve::Destructive && destructive,
                }
            })
            .collect())
    }

    fn service_error(&self, e: ServiceError) -> McpError {
        let server = self.config.name.clone();
        match e {
            ServiceError::McpError(data) => McpError::Server {
                server,
                message: data.message.to_string(),
            },
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                McpError::ServerExited(server)
            }
            ServiceError::Timeout { .. } => McpError::Timeout(server),
            _ => McpError::Unexpected(server),
        }
    }

    /// Calls an exposed tool (`tools/call`), forwarding progress to
    /// `progress`, until it answers, `cancel` fires or `timeout` passes.
    pub async fn call_tool(
        &self,
        tool: &str,
        arguments: Option<JsonObject>,
        progress: Option<mpsc::Sender<Progress>>,
        cancel: CancellationToken,
        timeout: Duration,
    ) -> Result<CallToolResult, McpError> {
        if !self.exposed(tool) {
            return Err(McpError::NotExposed {
                server: self.config.name.clone(),
                tool: tool.to_string(),
            });
        }
        let label = format!("mcp.{}.{tool}", self.config.name);
        let running = self.current(Duration::from_secs(10).min(timeout)).await?;
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = arguments;
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let handle = running
            .peer
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await
            .map_err(|e| self.service_error(e))?;
        let token = handle.progress_token.clone();
        let id = handle.id.clone();
        if let Some(progress) = progress {
            self.routes
                .lock()
                .expect("routes lock")
                .insert(token.clone(), progress);
        }
        let outcome = tokio::select! {
            answer = handle.rx => Some(answer),
            _ = cancel.cancelled() => None,
            _ = tokio::time::sleep(timeout) => {
                self.abandon(&running, id.clone(), token.clone(), "timeout").await;
                return Err(McpError::Timeout(label));
            }
        };
        let Some(answer) = outcome else {
            self.abandon(&running, id, token, "canceled by the caller")
                .await;
            return Err(McpError::Canceled(label));
        };
        self.routes.lock().expect("routes lock").remove(&token);
        match answer {
            Err(_) => Err(McpError::ServerExited(self.config.name.clone())),
            Ok(Err(e)) => Err(self.service_error(e)),
            Ok(Ok(ServerResult::CallToolResult(result))) => Ok(result),
            Ok(Ok(_)) => Err(McpError::Unexpected(self.config.name.clone())),
        }
    }

    /// Sends MCP's cancellation for a call and watches the server: if it
    /// still reports progress for the call after it has read the
    /// cancellation, within the grace period, it ignored the cancellation
    /// and is started again.
    async fn abandon(
        &self,
        running: &Running,
        id: rmcp::model::RequestId,
        token: ProgressToken,
        why: &str,
    ) {
        let notification = CancelledNotification::new(CancelledNotificationParam::new(
            Some(id),
            Some(why.to_string()),
        ));
        let _ = running.peer.send_notification(notification.into()).await;
        let (watch_tx, mut watch_rx) = mpsc::channel(PROGRESS_BUFFER);
        self.routes
            .lock()
            .expect("routes lock")
            .insert(token.clone(), watch_tx);
        let routes = self.routes.clone();
        let restart = self.restart.clone();
        let generation = running.generation;
        let current = self.running.clone();
        let peer = running.peer.clone();
        tokio::spawn(async move {
            // The server reads its input in order: once it answers a ping sent
            // after the cancellation, it has read the cancellation too, and
            // progress it wrote before that answer is already here. (A fixed
            // pause instead raced the tool's own progress period.)
            let ping = ClientRequest::PingRequest(PingRequest {
                method: Default::default(),
                extensions: Default::default(),
            });
            let _ = tokio::time::timeout(CANCEL_GRACE, peer.send_request(ping)).await;
            while watch_rx.try_recv().is_ok() {}
            let ignored = tokio::time::timeout(CANCEL_GRACE, watch_rx.recv())
                .await
                .is_ok_and(|p| p.is_some());
            routes.lock().expect("routes lock").remove(&token);
            let same_server = current
                .borrow()
                .as_ref()
                .is_some_and(|r| r.generation == generation);
            if ignored && same_server {
                tracing::warn!("an MCP server ignored a cancellation; restarting it");
                let _ = restart.try_send(());
            }
        });
    }
}

async fn supervise(
    config: Arc<McpServerConfig>,
    routes: Routes,
    running: watch::Sender<Option<Running>>,
    mut restart: mpsc::Receiver<()>,
    stop: CancellationToken,
) {
    let mut generation = 0u64;
    let mut backoff = Duration::from_millis(100);
    while !stop.is_cancelled() {
        let mut command = tokio::process::Command::new(&config.command);
        command.args(&config.args);
        let transport = match TokioChildProcess::builder(command)
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok((transport, _)) => transport,
            Err(e) => {
                tracing::warn!(server = %config.name, "cannot start MCP server: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => break,
                }
                backoff = (backoff * 2).min(MAX_RESTART_BACKOFF);
                continue;
            }
        };
        let pid = transport.id();
        let lifecycle = ClientLifecycleMode::Auto {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            legacy_version: Some(ProtocolVersion::V_2025_11_25),
        };
        let handler = ProgressRouter {
            routes: routes.clone(),
        };
        let service = tokio::select! {
            s = handler.serve_with_lifecycle(transport, lifecycle) => s,
            _ = stop.cancelled() => break,
        };
        let service = match service {
            Ok(service) => service,
            Err(e) => {
                tracing::warn!(server = %config.name, "MCP server did not start: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => break,
                }
                backoff = (backoff * 2).min(MAX_RESTART_BACKOFF);
                continue;
            }
        };
        generation += 1;
        backoff = Duration::from_millis(100);
        let peer = service.peer().clone();
        let protocol = peer
            .peer_info()
            .map(|i| i.protocol_version.to_string())
            .unwrap_or_default();
        tracing::info!(server = %config.name, %protocol, generation, "MCP server running");
        let _ = running.send(Some(Running {
            peer,
            pid,
            protocol,
            generation,
        }));
        let token = service.cancellation_token();
        let waiting = service.waiting();
        tokio::pin!(waiting);
        tokio::select! {
            _ = &mut waiting => {
                tracing::warn!(server = %config.name, "MCP server exited; starting it again");
            }
            Some(()) = restart.recv() => {
                token.cancel();
                let _ = waiting.await;
            }
            _ = stop.cancelled() => {
                token.cancel();
                let _ = waiting.await;
            }
        }
        let _ = running.send(None);
    }
}
