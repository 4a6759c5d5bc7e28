//! The typed commands the UI calls. Each one only maps onto the node
//! service; the window may call exactly these (see `capabilities/`).

use std::sync::Arc;

use tauri::State;

use conclave_node::{
    config::settings::{Settings, SettingsView},
    logging::buffer::{LogBuffer, LogLevel, LogLine},
    NodeError, PeerInfo, PolicyChange,
};
use zeroize::Zeroizing;

use crate::{
    backup::{BackupPreview, BackupWritten, RestoreDone},
    error::CommandResult,
    events::NodeStatus,
    service::NodeService,
    views::{AppInfo, IdentityView, PolicyView, SandboxView, StatsView},
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
        key_storage: service.node().key_source().to_string(),
        pq: service.pq_fingerprints(),
        min_passphrase_len: crate::backup::MIN_PASSPHRASE_LEN as u32,
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
pub async fn peers(service: Service<'_>) -> CommandResult<Vec<PeerInfo>> {
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

/// Who may connect: allowed and denied peers, private mode.
#[tauri::command]
#[specta::specta]
pub async fn policy(service: Service<'_>) -> CommandResult<PolicyView> {
    service.policy().await
}

/// Puts a peer on the allow list (and off the deny list).
#[tauri::command]
#[specta::specta]
pub async fn allow_peer(service: Service<'_>, peer_id: String) -> CommandResult<PolicyView> {
    let peer = NodeError::parse_peer_id(&peer_id)?;
    service.update_policy(PolicyChange::Allow(peer)).await
}

/// Puts a peer on the deny list (and off the allow list); its connections
/// close.
#[tauri::command]
#[specta::specta]
pub async fn deny_peer(service: Service<'_>, peer_id: String) -> CommandResult<PolicyView> {
    let peer = NodeError::parse_peer_id(&peer_id)?;
    service.update_policy(PolicyChange::Deny(peer)).await
}

/// Takes a peer off both lists (undoes allow or deny).
#[tauri::command]
#[specta::specta]
pub async fn unlist_peer(service: Service<'_>, peer_id: String) -> CommandResult<PolicyView> {
    let peer = NodeError::parse_peer_id(&peer_id)?;
    service.update_policy(PolicyChange::Unlist(peer)).await
}

/// Private mode on (only allowed peers may connect) or off.
#[tauri::command]
#[specta::specta]
pub async fn set_private_mode(service: Service<'_>, enabled: bool) -> CommandResult<PolicyView> {
    service.update_policy(PolicyChange::Private(enabled)).await
}

/// Writes the identity, encrypted under `passphrase`, to a new file at
/// `path`.
#[tauri::command]
#[specta::specta]
pub async fn export_identity(
    service: Service<'_>,
    path: String,
    passphrase: String,
) -> CommandResult<BackupWritten> {
    service
        .export_identity(&path, Zeroizing::new(passphrase))
        .await
}

/// Decrypts a backup and shows which PeerId it holds; nothing changes until
/// `restore_identity` confirms it.
#[tauri::command]
#[specta::specta]
pub async fn inspect_backup(
    service: Service<'_>,
    path: String,
    passphrase: String,
) -> CommandResult<BackupPreview> {
    service
        .inspect_backup(&path, Zeroizing::new(passphrase))
        .await
}

/// Replaces the profile's keys with the inspected backup (whose PeerId the
/// user confirmed) and restarts the node with them.
#[tauri::command]
#[specta::specta]
pub async fn restore_identity(service: Service<'_>, peer_id: String) -> CommandResult<RestoreDone> {
    service.restore_identity(&peer_id).await
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
    Ok(SandboxView::of(&*service.sandbox().lock().await))
}

/// Starts `count` local peers on loopback and connects to them.
#[tauri::command]
#[specta::specta]
pub async fn start_sandbox(service: Service<'_>, count: u32) -> CommandResult<SandboxView> {
    let main = service.handle()?;
    let mut sandbox = service.sandbox().lock().await;
    sandbox.start(&main, count).await?;
    Ok(SandboxView::of(&sandbox))
}

/// Stops the sandbox peers.
#[tauri::command]
#[specta::specta]
pub async fn stop_sandbox(service: Service<'_>) -> CommandResult<SandboxView> {
    let mut sandbox = service.sandbox().lock().await;
    sandbox.stop_all().await;
    Ok(SandboxView::of(&sandbox))
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

/// The window became visible or hidden (minimised, or hidden to the tray):
/// while hidden, the app stops sending it stats samples.
#[tauri::command]
#[specta::specta]
pub fn window_visibility(app: tauri::AppHandle, visible: bool) {
    crate::presence::set_window_visible(&app, visible);
}

/// Hides the window to the tray (its menu shows it again); false when there
/// is no tray, and the window stays.
#[tauri::command]
#[specta::specta]
pub fn hide_window(app: tauri::AppHandle) -> CommandResult<bool> {
    crate::tray::hide_to_tray(&app).map_err(crate::error::CommandError::internal)
}
