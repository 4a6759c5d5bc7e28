//! The typed commands the UI calls. Each one only maps onto the node
//! service; the window may call exactly these (see `capabilities/`).

use std::sync::Arc;

use tauri::State;

use crate::{
    error::CommandResult,
    events::NodeStatus,
    identity,
    logs::{LogBuffer, LogLevel, LogLine},
    sandbox::SandboxView,
    service::NodeService,
    settings::{Settings, SettingsView},
    views::{AppInfo, IdentityView, PeerView, StatsView},
};

type Service<'a> = State<'a, Arc<NodeService>>;

/// Most log lines one call returns.
const MAX_LOG_LINES: u32 = 1000;

/// The node's life-cycle state.
#[tauri::command]
#[specta::specta]
pub fn node_status(service: Service<'_>) -> NodeStatus {
    service.status()
}

/// Version and the profile's folders.
#[tauri::command]
#[specta::specta]
pub fn app_info(service: Service<'_>) -> AppInfo {
    let p = service.profile();
    AppInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        profile: p.name().to_string(),
        config_file: p.config_file().display().to_string(),
        data_dir: p.data_dir().display().to_string(),
        log_dir: p.log_dir().display().to_string(),
    }
}

/// Our identity.
#[tauri::command]
#[specta::specta]
pub fn identity(service: Service<'_>) -> IdentityView {
    IdentityView {
        peer_id: service.peer_id().to_string(),
        profile: service.profile().name().to_string(),
        key_storage: identity::key_storage(service.profile()),
        pq: service.pq_fingerprints(),
    }
}

/// A stats snapshot.
#[tauri::command]
#[specta::specta]
pub async fn stats(service: Service<'_>) -> CommandResult<StatsView> {
    service.stats().await
}

/// Connected peers.
#[tauri::command]
#[specta::specta]
pub async fn peers(service: Service<'_>) -> CommandResult<Vec<PeerView>> {
    service.peers().await
}

/// Dials a multiaddr; returns the peer id once connected.
#[tauri::command]
#[specta::specta]
pub async fn connect(service: Service<'_>, addr: String) -> CommandResult<String> {
    service.connect(&addr).await
}

/// Closes every connection to a peer.
#[tauri::command]
#[specta::specta]
pub async fn disconnect(service: Service<'_>, peer_id: String) -> CommandResult<()> {
    service.disconnect(&peer_id).await
}

/// Denies a peer; returns the denied list.
#[tauri::command]
#[specta::specta]
pub async fn block_peer(service: Service<'_>, peer_id: String) -> CommandResult<Vec<String>> {
    service.block(&peer_id).await
}

/// Allows a denied peer again; returns the denied list.
#[tauri::command]
#[specta::specta]
pub async fn unblock_peer(service: Service<'_>, peer_id: String) -> CommandResult<Vec<String>> {
    service.unblock(&peer_id).await
}

/// Denied peers.
#[tauri::command]
#[specta::specta]
pub fn blocked_peers(service: Service<'_>) -> Vec<String> {
    service.blocked()
}

/// The saved settings.
#[tauri::command]
#[specta::specta]
pub fn settings(service: Service<'_>) -> CommandResult<SettingsView> {
    service.settings()
}

/// Saves settings and restarts the node with them.
#[tauri::command]
#[specta::specta]
pub async fn save_settings(
    service: Service<'_>,
    settings: Settings,
) -> CommandResult<SettingsView> {
    service.save_settings(&settings).await
}

/// The newest `limit` log lines at `level` or more severe, oldest first.
#[tauri::command]
#[specta::specta]
pub fn recent_logs(logs: State<'_, LogBuffer>, level: LogLevel, limit: u32) -> Vec<LogLine> {
    logs.recent(level, limit.min(MAX_LOG_LINES) as usize)
}

/// What the sandbox runs.
#[tauri::command]
#[specta::specta]
pub async fn sandbox_status(service: Service<'_>) -> CommandResult<SandboxView> {
    Ok(service.sandbox().lock().await.view())
}

/// Starts `count` local peers on loopback and connects to them.
#[tauri::command]
#[specta::specta]
pub async fn start_sandbox(service: Service<'_>, count: u32) -> CommandResult<SandboxView> {
    let main = service.handle()?;
    service.sandbox().lock().await.start(&main, count).await
}

/// Stops the sandbox peers.
#[tauri::command]
#[specta::specta]
pub async fn stop_sandbox(service: Service<'_>) -> CommandResult<SandboxView> {
    Ok(service.sandbox().lock().await.stop_all().await)
}

/// The UI has rendered its first Network health view with data; returns the
/// milliseconds since launch (the benchmark reads it).
#[tauri::command]
#[specta::specta]
pub fn mark_first_render(service: Service<'_>) -> f64 {
    let ms = service.mark_first_render();
    tracing::info!(ms, "first Network health view rendered");
    ms
}
