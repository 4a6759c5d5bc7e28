//! Generates the app's context and one `allow-<command>` permission per
//! command, so the window's capability can grant exactly these.

const COMMANDS: &[&str] = &[
    "node_status",
    "app_info",
    "identity",
    "stats",
    "peers",
    "connect",
    "disconnect",
    "policy",
    "allow_peer",
    "deny_peer",
    "unlist_peer",
    "set_private_mode",
    "export_identity",
    "inspect_backup",
    "restore_identity",
    "settings",
    "save_settings",
    "recent_logs",
    "sandbox_status",
    "start_sandbox",
    "stop_sandbox",
    "mark_first_render",
    "signing_keys",
    "signing_new_key",
    "signing_create",
    "signing_invitations",
    "signing_join",
    "signing_decline",
    "signing_sessions",
    "signing_export",
];

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri build script");
}
