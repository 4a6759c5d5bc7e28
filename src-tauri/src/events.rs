//! Events the app pushes to the UI, and the [`EventSink`] the node service
//! emits them through (`sink::TauriSink` in the app, a recorder in tests).

use serde::{Deserialize, Serialize};
use specta::Type;
use tauri_specta::Event;

use conclave_node::PeerInfo;

use crate::views::{RateSample, StatsView};

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
#[derive(Debug, Clone, Serialize, Type, Event)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PeerChanged {
    /// A peer's first connection was established.
    Connected {
        /// The peer.
        peer: PeerInfo,
    },
    /// A peer's details (RTT, agent, protocols, connections) changed.
    Updated {
        /// The peer.
        peer: PeerInfo,
    },
    /// A peer's last connection closed.
    Disconnected {
        /// Its id.
        peer_id: String,
    },
    /// Events were missed or the node restarted: fetch the full list again.
    Resync,
}

/// A new sample for the Network health view: once a second while a figure
/// changes, otherwise once per [`crate::service::REST_HEARTBEAT`].
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
    /// True once after a window was shown or loaded: the next sample is
    /// sent even if nothing changed, so its charts need not wait.
    fn take_sample_request(&self) -> bool {
        false
    }
    /// False while no window can be seen: the node is sampled less often.
    fn window_visible(&self) -> bool {
        true
    }
}
