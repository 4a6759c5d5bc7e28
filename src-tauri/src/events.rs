//! Events the app pushes to the UI, and the sink the node service emits
//! them through (Tauri in the app, a channel in tests).

use serde::{Deserialize, Serialize};
use specta::Type;
use tauri::{AppHandle, Runtime};
use tauri_specta::Event;

use crate::views::{PeerView, RateSample, StatsView};

/// Life-cycle state of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Being started (or restarted after a settings change).
    Starting,
    /// Running.
    Running,
    /// Could not start; `error` says why.
    Failed,
    /// Stopped (the app is closing).
    Stopped,
}

/// The node's state changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, Event)]
pub struct NodeStatus {
    /// Current state.
    pub state: NodeState,
    /// Our peer id (known before the node runs: it comes from the key).
    pub peer_id: String,
    /// Why the node failed, if it did.
    pub error: Option<String>,
    /// What to do about it.
    pub hint: Option<String>,
}

/// A peer connected, changed or left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, Event)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PeerChanged {
    /// A peer's first connection was established.
    Connected {
        /// The peer.
        peer: PeerView,
    },
    /// A peer's details (RTT, agent, protocols, connections) changed.
    Updated {
        /// The peer.
        peer: PeerView,
    },
    /// A peer's last connection closed.
    Disconnected {
        /// Its id.
        peer_id: String,
    },
    /// Events were missed or the node restarted: fetch the full list again.
    Resync,
}

/// A new sample for the Network health view, once a second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, Event)]
pub struct StatsSampled {
    /// The node's state now.
    pub stats: StatsView,
    /// Rates since the previous sample.
    pub rate: RateSample,
}

/// Where the node service sends its events.
pub trait EventSink: Send + Sync + 'static {
    /// The node's state changed.
    fn status(&self, status: &NodeStatus);
    /// A peer changed.
    fn peer(&self, change: PeerChanged);
    /// A stats sample is ready.
    fn stats(&self, sample: StatsSampled);
}

/// Emits events to every window of the app.
pub struct TauriSink<R: Runtime>(pub AppHandle<R>);

impl<R: Runtime> EventSink for TauriSink<R> {
    fn status(&self, status: &NodeStatus) {
        crate::tray::show_status(&self.0, status);
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
        crate::tray::show_stats(&self.0, &sample.stats);
        if let Err(e) = sample.emit(&self.0) {
            tracing::debug!(%e, "cannot emit stats");
        }
    }
}
