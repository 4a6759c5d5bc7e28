//! The sink that carries the node service's events to the app's windows and
//! its tray icon (stats samples only while the window can be seen).

use tauri::{AppHandle, Runtime};
use tauri_specta::Event as _;

use crate::{
    events::{EventSink, NodeStatus, PeerChanged, StatsSampled},
    presence, tray,
};

/// Emits events to every window of the app, and shows them in the tray.
pub struct TauriSink<R: Runtime>(pub AppHandle<R>);

impl<R: Runtime> EventSink for TauriSink<R> {
    fn status(&self, status: &NodeStatus) {
        tray::show_status(&self.0, status);
        if let Err(e) = status.emit(&self.0) {
            tracing::debug!(%e, "cannot emit node status");
        }
    }

    fn peer(&self, change: PeerChanged) {
        if let Err(e) = change.emit(&self.0) {
            tracing::debug!(%e, "cannot emit peer change");
        }
    }

    fn stats(&self, sample: StatsSampled) {
        tray::show_stats(&self.0, &sample.stats);
        // Nobody sees a hidden window's charts: it fetches a snapshot when
        // it is shown again.
        if !presence::window_visible(&self.0) {
            return;
        }
        if let Err(e) = sample.emit(&self.0) {
            tracing::debug!(%e, "cannot emit stats");
        }
    }

    fn take_sample_request(&self) -> bool {
        presence::take_sample_request(&self.0)
    }

    fn window_visible(&self) -> bool {
        presence::window_visible(&self.0)
    }
}
