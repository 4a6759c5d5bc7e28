//! The Conclave desktop app: a thin Tauri shell around `conclave-node`.
//!
//! It builds the node from the profile's config, keeps it in a
//! [`service::NodeService`] in Tauri state, and exposes typed commands and
//! events through tauri-specta; the TypeScript bindings in
//! `ui/src/lib/bindings.ts` are generated from these types.
#![deny(missing_docs)]

pub mod backup;
pub mod cli;
pub mod coinjoin;
pub mod commands;
pub mod error;
pub mod events;
pub mod presence;
pub mod rooms;
pub mod service;
pub mod sessions;
pub mod sink;
pub mod tray;
pub mod views;

use std::{sync::Arc, time::Instant};

use anyhow::Context as _;
use clap::Parser as _;
use conclave_node::{config::ConfigFlags, profile::Profile, ProfileNode};
use tauri::{Manager, RunEvent};
use tauri_specta::{collect_commands, collect_events, Builder};

use crate::{
    coinjoin::CoinJoinChanged,
    events::{NodeStatus, PeerChanged, StatsSampled},
    service::NodeService,
    sessions::SigningChanged,
    sink::TauriSink,
};
use conclave_coinjoin::service::supervisor::CoinJoinSupervisor;
use conclave_signing::supervisor::SigningSupervisor;
use tauri_specta::Event as _;

/// Where the generated TypeScript bindings live, from the repository root.
pub const BINDINGS_PATH: &str = "ui/src/lib/bindings.ts";

/// Every command the UI may call (`command_names.rs`, which `build.rs` also
/// includes). The window's capability lists the same names (a test checks
/// it).
pub const COMMANDS: [&str; 53] = include!("command_names.rs");

/// The commands and events, as tauri-specta sees them.
pub fn specta_builder() -> Builder<tauri::Wry> {
    Builder::<tauri::Wry>::new()
        // One TypeScript type per Rust type: none of ours differs between
        // serialising and deserialising.
        .disable_serde_phases()
        .commands(collect_commands![
            commands::node_status,
            commands::app_info,
            commands::identity,
            commands::stats,
            commands::peers,
            commands::connect,
            commands::disconnect,
            commands::policy,
            commands::allow_peer,
            commands::deny_peer,
            commands::unlist_peer,
            commands::set_private_mode,
            commands::export_identity,
            commands::inspect_backup,
            commands::restore_identity,
            commands::settings,
            commands::save_settings,
            commands::recent_logs,
            commands::sandbox_status,
            commands::start_sandbox,
            commands::stop_sandbox,
            commands::mark_first_render,
            commands::window_visibility,
            commands::hide_window,
            sessions::signing_keys,
            sessions::signing_new_key,
            sessions::signing_create,
            sessions::signing_invitations,
            sessions::signing_join,
            sessions::signing_decline,
            sessions::signing_sessions,
            sessions::signing_export,
            coinjoin::coinjoin_availability,
            coinjoin::coinjoin_address,
            coinjoin::coinjoin_quote,
            coinjoin::coinjoin_join,
            coinjoin::coinjoin_requests,
            coinjoin::coinjoin_cancel,
            rooms::rooms_list,
            rooms::rooms_create,
            rooms::rooms_join,
            rooms::rooms_agents,
            rooms::rooms_propose,
            rooms::rooms_tasks,
            rooms::rooms_task,
            rooms::rooms_cancel,
            rooms::rooms_approvals,
            rooms::rooms_approve,
            rooms::rooms_decline,
            rooms::rooms_own_tools,
            rooms::rooms_invite,
            rooms::rooms_save_invitation,
            rooms::rooms_revoke,
        ])
        .events(collect_events![
            NodeStatus,
            PeerChanged,
            StatsSampled,
            sessions::SigningChanged,
            coinjoin::CoinJoinChanged,
            rooms::RoomsChanged
        ])
}

/// Writes the TypeScript bindings to `path`.
pub fn export_bindings(path: &std::path::Path) -> anyhow::Result<()> {
    specta_builder()
        .export(
            specta_typescript::Typescript::default()
                .header("// Generated from src-tauri by tauri-specta: do not edit.\n// Regenerate: CONCLAVE_WRITE_BINDINGS=1 cargo test -p conclave-app bindings"),
            path,
        )
        .with_context(|| format!("exporting bindings to {}", path.display()))
}

/// Runs the app until its window closes. `launched` is taken first thing in
/// `main`.
pub fn run(launched: Instant) -> anyhow::Result<()> {
    let args = cli::Args::parse();
    let profile = Profile::resolve(&args.profile, args.data_dir.as_deref())?;
    profile.create_dirs()?;
    let (log_buffer, _log_guard) =
        conclave_node::logging::buffer::init(profile.log_dir(), "conclave")?;
    let name = profile.name().to_string();
    let open = ProfileNode::open(profile, args.key_file.as_deref(), ConfigFlags::default());
    let (node, _) = tauri::async_runtime::block_on(open)
        .with_context(|| format!("loading the keys of profile {name:?}"))?;
    let keys = node.key_source();
    tracing::info!(profile = name, peer_id = %node.peer_id(), %keys, "conclave starting");

    let builder = specta_builder();
    let app = tauri::Builder::default()
        .invoke_handler(builder.invoke_handler())
        .manage(log_buffer)
        .setup(move |app| {
            builder.mount_events(app);
            app.manage(presence::WindowPresence::default());
            tray::install(app.handle());
            let sink = Arc::new(TauriSink(app.handle().clone()));
            let events = app.handle().clone();
            let node = Arc::new(node);
            let signing = Arc::new(sessions::supervisor(
                node.clone(),
                Arc::new(move |change: SigningChanged| {
                    if let Err(e) = change.emit(&events) {
                        tracing::debug!(%e, "cannot emit signing change");
                    }
                }),
            ));
            // One database per profile and process (it locks its file),
            // shared by the features.
            let database = conclave_node::store::Database::open_profile(node.profile())
                .map_err(|e| e.to_string());
            let events = app.handle().clone();
            let coinjoin = coinjoin::supervisor(
                node.clone(),
                database.clone(),
                Arc::new(move |change: CoinJoinChanged| {
                    if let Err(e) = change.emit(&events) {
                        tracing::debug!(%e, "cannot emit coinjoin change");
                    }
                }),
            );
            let events = app.handle().clone();
            let rooms = Arc::new(rooms::supervisor(
                node.clone(),
                database,
                Arc::new(move |change: rooms::RoomsChanged| {
                    if let Err(e) = change.emit(&events) {
                        tracing::debug!(%e, "cannot emit rooms change");
                    }
                }),
            ));
            let service = Arc::new(NodeService::new(node, sink, launched));
            app.manage(service.clone());
            app.manage(signing.clone());
            app.manage(coinjoin.clone());
            app.manage(rooms.clone());
            // Signing, CoinJoin and rooms run on the node and follow it
            // through restarts.
            tauri::async_runtime::spawn(signing.run());
            tauri::async_runtime::spawn(coinjoin.run());
            tauri::async_runtime::spawn(rooms.run());
            tauri::async_runtime::spawn(async move {
                // A failure is shown in the UI through the node's status.
                let _ = service.start().await;
            });
            Ok(())
        })
        .build(tauri::generate_context!())
        .context("building the app window")?;
    app.run(|handle, event| {
        if let RunEvent::Exit = event {
            // Sessions in progress are aborted (and their peers told) first.
            if let Some(signing) = handle.try_state::<Arc<SigningSupervisor>>() {
                let signing = signing.inner().clone();
                tauri::async_runtime::block_on(signing.shutdown());
            }
            if let Some(coinjoin) = handle.try_state::<Arc<CoinJoinSupervisor>>() {
                let coinjoin = coinjoin.inner().clone();
                tauri::async_runtime::block_on(coinjoin.shutdown());
            }
            if let Some(rooms) = handle.try_state::<Arc<rooms::Rooms>>() {
                let rooms = rooms.inner().clone();
                tauri::async_runtime::block_on(rooms.shutdown());
            }
            if let Some(service) = handle.try_state::<Arc<NodeService>>() {
                let service = service.inner().clone();
                tauri::async_runtime::block_on(service.shutdown());
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_root() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("src-tauri has a parent")
            .to_path_buf()
    }

    /// The committed bindings must match the Rust types. Set
    /// CONCLAVE_WRITE_BINDINGS=1 to regenerate them.
    #[test]
    fn bindings_are_fresh() {
        let committed = repo_root().join(BINDINGS_PATH);
        if std::env::var_os("CONCLAVE_WRITE_BINDINGS").is_some() {
            export_bindings(&committed).unwrap();
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("bindings.ts");
        export_bindings(&fresh).unwrap();
        let fresh = std::fs::read_to_string(fresh).unwrap();
        let old = std::fs::read_to_string(&committed).unwrap_or_default();
        assert!(
            fresh == old,
            "{} is stale: run CONCLAVE_WRITE_BINDINGS=1 cargo test -p conclave-app bindings",
            committed.display()
        );
    }

    /// build.rs, the capability file and the bindings name the same commands.
    #[test]
    fn capability_grants_exactly_the_commands() {
        let root = repo_root();
        let build_rs = std::fs::read_to_string(root.join("src-tauri/build.rs")).unwrap();
        let capability: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("src-tauri/capabilities/main-window.json")).unwrap(),
        )
        .unwrap();
        let granted: std::collections::BTreeSet<String> = capability["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p.as_str())
            .filter_map(|p| p.strip_prefix("allow-"))
            .map(|p| p.replace('-', "_"))
            .collect();
        let expected: std::collections::BTreeSet<String> =
            COMMANDS.iter().map(|c| c.to_string()).collect();
        assert_eq!(granted, expected);
        assert!(
            build_rs.contains("include!(\"src/command_names.rs\")"),
            "build.rs generates permissions from another list than COMMANDS"
        );
        let bindings = std::fs::read_to_string(root.join(BINDINGS_PATH)).unwrap();
        for command in COMMANDS {
            assert!(
                bindings.contains(&format!("\"{command}\"")),
                "bindings lack {command}"
            );
        }
    }
}
