//! The tray icon: show or hide the window, the node's connections and
//! reachability at a glance (and whether the window's updates are paused
//! because it is hidden), quit.
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
    presence::set_window_visible,
    views::StatsView,
};

const MENU_TOGGLE: &str = "toggle-window";
const MENU_QUIT: &str = "quit";

/// What the tray says: the node's summary and whether the window is paused.
#[derive(Default)]
struct TrayText {
    summary: String,
    paused: bool,
    /// The text shown now, so a tick that changes nothing costs nothing.
    shown: String,
}

/// The tray and the menu line that shows the node's state.
pub struct Tray<R: Runtime> {
    icon: TrayIcon<R>,
    summary: MenuItem<R>,
    text: Mutex<TrayText>,
}

impl<R: Runtime> Tray<R> {
    fn update(&self, change: impl FnOnce(&mut TrayText)) {
        let mut text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut text);
        let line = tray_line(&text.summary, text.paused);
        if text.shown == line {
            return;
        }
        if let Err(e) = self.summary.set_text(&line) {
            tracing::debug!(%e, "cannot update the tray menu");
        }
        if let Err(e) = self.icon.set_tooltip(Some(format!("Conclave: {line}"))) {
            tracing::debug!(%e, "cannot update the tray tooltip");
        }
        text.shown = line;
    }
}

/// The tray's line: the summary, and while the window is hidden, that its
/// charts and figures are paused (the node itself runs on).
fn tray_line(summary: &str, paused: bool) -> String {
    if paused {
        format!("{summary} · window paused")
    } else {
        summary.to_string()
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
        let text = summary(stats);
        tray.update(|t| t.summary = text);
    }
}

/// Shows the node's state in the tray while it is not running.
pub fn show_status<R: Runtime>(app: &AppHandle<R>, status: &NodeStatus) {
    if let (Some(tray), Some(text)) = (app.try_state::<Tray<R>>(), status_summary(status)) {
        tray.update(|t| t.summary = text.to_string());
    }
}

/// Says in the tray whether the window's updates are paused.
pub fn show_paused<R: Runtime>(app: &AppHandle<R>, paused: bool) {
    if let Some(tray) = app.try_state::<Tray<R>>() {
        tray.update(|t| t.paused = paused);
    }
}

/// Hides the window to the tray; false (and the window stays) when there is
/// no tray to bring it back from.
pub fn hide_to_tray<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<bool> {
    let (Some(window), Some(_)) = (app.get_webview_window("main"), app.try_state::<Tray<R>>())
    else {
        return Ok(false);
    };
    window.hide()?;
    set_window_visible(app, false);
    Ok(true)
}

fn toggle_window<R: Runtime>(app: &AppHandle<R>) {
    let Some(window) = app.get_webview_window("main") else {
        return;
    };
    let hide = window.is_visible().unwrap_or(false);
    let result = if hide {
        window.hide()
    } else {
        window
            .show()
            .and_then(|()| window.unminimize())
            .and_then(|()| window.set_focus())
    };
    match result {
        Ok(()) => set_window_visible(app, !hide),
        Err(e) => {
            tracing::warn!(%e, "cannot show or hide the window")
        }
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
        text: Mutex::new(TrayText::default()),
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
    fn tray_line_says_when_the_window_is_paused() {
        let summary = "0 peers, 0 connections · reachable";
        assert_eq!(tray_line(summary, false), summary);
        assert_eq!(
            tray_line(summary, true),
            "0 peers, 0 connections · reachable · window paused"
        );
    }

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
