//! The tray icon: show or hide the window, the node's connections and
//! reachability at a glance, quit.
//!
//! A desktop without a tray host (or without libayatana-appindicator3 on
//! Linux) must not stop the app: [`install`] logs why there is no tray and
//! the app runs on without one.

use std::sync::Mutex;

use tauri::{
    menu::{Menu, MenuItem, PredefinedMenuItem},
    tray::{TrayIcon, TrayIconBuilder},
    AppHandle, Manager, Runtime,
};

use conclave_node::nat::Reachability;

use crate::{
    events::{NodeState, NodeStatus},
    views::StatsView,
};

const MENU_TOGGLE: &str = "toggle-window";
const MENU_QUIT: &str = "quit";

/// The tray and the menu line that shows the node's state.
pub struct Tray<R: Runtime> {
    icon: TrayIcon<R>,
    summary: MenuItem<R>,
    /// The text shown now, so a tick that changes nothing costs nothing.
    shown: Mutex<String>,
}

impl<R: Runtime> Tray<R> {
    fn show(&self, text: String) {
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        if *shown == text {
            return;
        }
        if let Err(e) = self.summary.set_text(&text) {
            tracing::debug!(%e, "cannot update the tray menu");
        }
        if let Err(e) = self.icon.set_tooltip(Some(format!("Conclave: {text}"))) {
            tracing::debug!(%e, "cannot update the tray tooltip");
        }
        *shown = text;
    }
}

/// The tray's summary line for a stats sample, such as
/// "3 peers, 4 connections · reachable".
pub fn summary(stats: &StatsView) -> String {
    let plural = |n: u32, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let reachability = match stats.reachability {
        Reachability::Public => "reachable",
        Reachability::Private => "behind NAT",
        Reachability::Unknown => "reachability unknown",
    };
    format!(
        "{}, {} · {reachability}",
        plural(stats.peers, "peer", "peers"),
        plural(stats.connections, "connection", "connections"),
    )
}

/// The tray's summary line while the node is not running.
fn status_summary(status: &NodeStatus) -> Option<&'static str> {
    match status.state {
        NodeState::Starting => Some("Node starting…"),
        NodeState::Failed => Some("Node failed: see the app"),
        NodeState::Stopped => Some("Node stopped"),
        NodeState::Running => None,
    }
}

/// Shows a new stats sample in the tray, if there is one.
pub fn show_stats<R: Runtime>(app: &AppHandle<R>, stats: &StatsView) {
    if let Some(tray) = app.try_state::<Tray<R>>() {
        tray.show(summary(stats));
    }
}

/// Shows the node's state in the tray while it is not running.
pub fn show_status<R: Runtime>(app: &AppHandle<R>, status: &NodeStatus) {
    if let (Some(tray), Some(text)) = (app.try_state::<Tray<R>>(), status_summary(status)) {
        tray.show(text.to_string());
    }
}

fn toggle_window<R: Runtime>(app: &AppHandle<R>) {
    let Some(window) = app.get_webview_window("main") else {
        return;
    };
    let result = if window.is_visible().unwrap_or(false) {
        window.hide()
    } else {
        window
            .show()
            .and_then(|()| window.unminimize())
            .and_then(|()| window.set_focus())
    };
    if let Err(e) = result {
        tracing::warn!(%e, "cannot show or hide the window");
    }
}

fn build<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<Tray<R>> {
    let summary = MenuItem::with_id(app, "summary", "Node starting…", false, None::<&str>)?;
    let toggle = MenuItem::with_id(app, MENU_TOGGLE, "Show / hide window", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, MENU_QUIT, "Quit Conclave", true, None::<&str>)?;
    let menu = Menu::with_items(
        app,
        &[
            &summary,
            &PredefinedMenuItem::separator(app)?,
            &toggle,
            &quit,
        ],
    )?;
    let mut builder = TrayIconBuilder::with_id("main")
        .tooltip("Conclave")
        .menu(&menu)
        .on_menu_event(|app, event| match event.id.as_ref() {
            MENU_TOGGLE => toggle_window(app),
            // Exiting runs the app's exit handler, which stops the node.
            MENU_QUIT => app.exit(0),
            _ => {}
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    let icon = builder.build(app)?;
    Ok(Tray {
        icon,
        summary,
        shown: Mutex::new(String::new()),
    })
}

/// Adds the tray icon and keeps it in the app's state. Without a tray the
/// app still runs: the reason is logged.
pub fn install<R: Runtime>(app: &AppHandle<R>) {
    // On Linux the tray library loads libayatana-appindicator3 at run time
    // and panics when it is missing; that must not take the app down.
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| build(app)));
    match built {
        Ok(Ok(tray)) => {
            app.manage(tray);
            tracing::debug!("tray icon added");
        }
        Ok(Err(e)) => tracing::warn!(%e, "no tray icon; the app runs without one"),
        Err(_) => tracing::warn!(
            "no tray icon: the tray library is missing (on Linux: libayatana-appindicator3-1); the app runs without one"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_peers_connections_and_reachability() {
        let mut stats: StatsView = serde_json::from_value(serde_json::json!({
            "peers": 1, "connections": 3, "connections_by_transport": [],
            "connections_by_path": [], "topics": [], "routing_table_size": 0,
            "bytes_in": 0.0, "bytes_out": 0.0, "messages": 0.0, "listen_addrs": [],
            "external_addrs": [], "relays": [], "relay_addrs": [], "reachability": "public",
            "autonat_confirmed": 0.0, "autonat_failed": 0.0, "hole_punch_attempts": 0.0,
            "hole_punch_successes": 0.0, "uptime_secs": 0.0
        }))
        .unwrap();
        assert_eq!(summary(&stats), "1 peer, 3 connections · reachable");
        stats.peers = 0;
        stats.connections = 0;
        stats.reachability = Reachability::Unknown;
        assert_eq!(
            summary(&stats),
            "0 peers, 0 connections · reachability unknown"
        );
    }
}
