//! The node service: starts the node from the profile's config, keeps its
//! `NodeHandle`, restarts it when settings change, and turns node events and
//! periodic stats into UI events.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::{Arc, Mutex, OnceLock, RwLock},
    time::{Duration, Instant},
};

use conclave_node::{
    identity::NodeIdentity, profile::Profile, Node, NodeConfig, NodeError, NodeEvent, NodeHandle,
    PeerId,
};

use crate::views::PqFingerprints;
use tokio::task::JoinHandle;

use crate::{
    error::{CommandError, CommandResult, ErrorCode},
    events::{EventSink, NodeState, NodeStatus, PeerChanged, StatsSampled},
    sandbox::Sandbox,
    settings::{self, Settings, SettingsView},
    views::{PeerView, RateSample, StatsView},
};

/// How often the Network health view gets a new sample.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// A running node and the tasks that watch it.
struct Running {
    handle: NodeHandle,
    tasks: Vec<JoinHandle<()>>,
}

/// Owns the node for the app's lifetime.
pub struct NodeService {
    profile: Profile,
    identity: NodeIdentity,
    pq: Option<PqFingerprints>,
    sink: Arc<dyn EventSink>,
    /// Serialises start, stop and restart.
    lifecycle: tokio::sync::Mutex<Option<Running>>,
    /// The handle commands use; `None` while starting or failed.
    current: RwLock<Option<NodeHandle>>,
    status: Mutex<NodeStatus>,
    blocked: Mutex<BTreeSet<PeerId>>,
    sandbox: tokio::sync::Mutex<Sandbox>,
    launched: Instant,
    first_render_ms: OnceLock<f64>,
}

impl NodeService {
    /// A service for `profile` with its keys; the node starts on [`start`](Self::start).
    pub fn new(
        profile: Profile,
        identity: NodeIdentity,
        sink: Arc<dyn EventSink>,
        launched: Instant,
    ) -> Self {
        let pq = crate::identity::pq_fingerprints(&identity);
        let peer_id = identity.peer_id();
        let blocked = load_blocked(&blocked_file(&profile));
        Self {
            profile,
            identity,
            pq,
            sink,
            lifecycle: tokio::sync::Mutex::new(None),
            current: RwLock::new(None),
            status: Mutex::new(NodeStatus {
                state: NodeState::Starting,
                peer_id: peer_id.to_string(),
                error: None,
                hint: None,
            }),
            blocked: Mutex::new(blocked),
            sandbox: tokio::sync::Mutex::new(Sandbox::default()),
            launched,
            first_render_ms: OnceLock::new(),
        }
    }

    /// The profile this instance runs.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.identity.peer_id()
    }

    /// Fingerprints of the post-quantum keys, if the node has them.
    pub fn pq_fingerprints(&self) -> Option<PqFingerprints> {
        self.pq.clone()
    }

    /// The node's life-cycle state.
    pub fn status(&self) -> NodeStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_status(&self, state: NodeState, error: Option<String>, hint: Option<String>) {
        let status = {
            let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
            s.state = state;
            s.error = error;
            s.hint = hint;
            s.clone()
        };
        self.sink.status(&status);
    }

    /// The running node's handle, or an error the UI can show.
    pub fn handle(&self) -> CommandResult<NodeHandle> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(CommandError::node_unavailable)
    }

    /// The config the node runs with: the profile's file, then `P2P_*`
    /// environment variables.
    pub fn node_config(&self) -> Result<NodeConfig, CommandError> {
        let mut config = NodeConfig::from_optional_file(&self.profile.config_file())
            .map_err(|e| CommandError::new(ErrorCode::InvalidInput, e.to_string()))?;
        config
            .apply_env()
            .map_err(|e| CommandError::new(ErrorCode::InvalidInput, e.to_string()))?;
        config
            .validate()
            .map_err(|e| CommandError::new(ErrorCode::InvalidInput, e.to_string()))?;
        Ok(config)
    }

    /// Starts the node (stopping a running one first). A failure is also
    /// reported as the `failed` state, so the UI can show it.
    pub async fn start(&self) -> CommandResult<()> {
        let mut lifecycle = self.lifecycle.lock().await;
        self.stop_locked(&mut lifecycle).await;
        self.set_status(NodeState::Starting, None, None);
        match self.start_locked().await {
            Ok(running) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) =
                    Some(running.handle.clone());
                let handle = running.handle.clone();
                *lifecycle = Some(running);
                self.set_status(NodeState::Running, None, None);
                self.sink.peer(PeerChanged::Resync);
                self.sandbox.lock().await.rejoin(&handle).await;
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e.message, "node failed to start");
                self.set_status(
                    NodeState::Failed,
                    Some(e.message.clone()),
                    Some(format!(
                        "fix the setting in Settings (saved to {}), which restarts the node",
                        self.profile.config_file().display()
                    )),
                );
                Err(e)
            }
        }
    }

    async fn start_locked(&self) -> CommandResult<Running> {
        let config = self.node_config()?;
        // The node takes its key set by value; every (re)start gets the same
        // keys rebuilt from their seeds.
        let identity = NodeIdentity::from_seeds(&self.identity.seeds())
            .map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))?;
        let handle = Node::start(config, identity).await?;
        let blocked: Vec<PeerId> = self
            .blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        for peer in blocked {
            handle.block_peer(peer).await?;
        }
        let tasks = vec![
            tokio::spawn(forward_events(handle.clone(), self.sink.clone())),
            tokio::spawn(sample_stats(handle.clone(), self.sink.clone())),
        ];
        Ok(Running { handle, tasks })
    }

    async fn stop_locked(&self, lifecycle: &mut Option<Running>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = None;
        if let Some(running) = lifecycle.take() {
            for task in &running.tasks {
                task.abort();
            }
            if let Err(e) = running.handle.stop().await {
                tracing::debug!(%e, "node already stopped");
            }
        }
    }

    /// Stops the node and the sandbox peers (the app is closing).
    pub async fn shutdown(&self) {
        self.sandbox.lock().await.stop_all().await;
        let mut lifecycle = self.lifecycle.lock().await;
        self.stop_locked(&mut lifecycle).await;
        self.set_status(NodeState::Stopped, None, None);
    }

    /// Saves settings to the profile's config and restarts the node with them.
    pub async fn save_settings(&self, settings: &Settings) -> CommandResult<SettingsView> {
        let path = self.profile.config_file();
        settings::save(&path, settings)?;
        tracing::info!(file = %path.display(), "settings saved; restarting the node");
        self.start().await?;
        settings::load(&path)
    }

    /// The saved settings.
    pub fn settings(&self) -> CommandResult<SettingsView> {
        settings::load(&self.profile.config_file())
    }

    /// Connected peers.
    pub async fn peers(&self) -> CommandResult<Vec<PeerView>> {
        let peers = self.handle()?.peers().await?;
        Ok(peers.iter().map(PeerView::from).collect())
    }

    /// A stats snapshot.
    pub async fn stats(&self) -> CommandResult<StatsView> {
        snapshot(&self.handle()?).await
    }

    /// Dials `addr`; returns the peer's id once connected.
    pub async fn connect(&self, addr: &str) -> CommandResult<String> {
        let addr = NodeError::parse_multiaddr(addr)?;
        let peer = self.handle()?.connect(addr).await?;
        Ok(peer.to_string())
    }

    /// Closes every connection to `peer_id`.
    pub async fn disconnect(&self, peer_id: &str) -> CommandResult<()> {
        let peer = NodeError::parse_peer_id(peer_id)?;
        Ok(self.handle()?.disconnect(peer).await?)
    }

    /// Denies `peer_id`: its connections close and new ones are refused,
    /// across restarts.
    pub async fn block(&self, peer_id: &str) -> CommandResult<Vec<String>> {
        let peer = NodeError::parse_peer_id(peer_id)?;
        if peer == self.peer_id() {
            return Err(CommandError::new(
                ErrorCode::InvalidInput,
                "that is this node's own peer id",
            ));
        }
        self.handle()?.block_peer(peer).await?;
        self.update_blocked(|set| {
            set.insert(peer);
        })
    }

    /// Allows `peer_id` again.
    pub async fn unblock(&self, peer_id: &str) -> CommandResult<Vec<String>> {
        let peer = NodeError::parse_peer_id(peer_id)?;
        self.handle()?.unblock_peer(peer).await?;
        self.update_blocked(|set| {
            set.remove(&peer);
        })
    }

    /// Denied peers.
    pub fn blocked(&self) -> Vec<String> {
        self.blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn update_blocked(
        &self,
        change: impl FnOnce(&mut BTreeSet<PeerId>),
    ) -> CommandResult<Vec<String>> {
        let list = {
            let mut set = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
            change(&mut set);
            set.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        save_blocked(&blocked_file(&self.profile), &list)?;
        Ok(list)
    }

    /// The local sandbox.
    pub fn sandbox(&self) -> &tokio::sync::Mutex<Sandbox> {
        &self.sandbox
    }

    /// Records the first rendered Network health view; returns milliseconds
    /// since launch (the first call's figure sticks).
    pub fn mark_first_render(&self) -> f64 {
        *self
            .first_render_ms
            .get_or_init(|| self.launched.elapsed().as_secs_f64() * 1000.0)
    }
}

/// The node's counters and NAT status, as one view.
async fn snapshot(handle: &NodeHandle) -> CommandResult<StatsView> {
    let stats = handle.stats().await?;
    let nat = handle.nat_status().await?;
    Ok(StatsView::new(&stats, &nat))
}

/// Forwards peer events from the node to the sink until the node stops.
async fn forward_events(handle: NodeHandle, sink: Arc<dyn EventSink>) {
    let mut events = handle.subscribe_events();
    while let Some(event) = events.recv().await {
        match event {
            NodeEvent::PeerConnected(info) => sink.peer(PeerChanged::Connected {
                peer: PeerView::from(&info),
            }),
            NodeEvent::PeerUpdated(info) => sink.peer(PeerChanged::Updated {
                peer: PeerView::from(&info),
            }),
            NodeEvent::PeerDisconnected { peer_id } => sink.peer(PeerChanged::Disconnected {
                peer_id: peer_id.to_string(),
            }),
            NodeEvent::Lagged { missed } => {
                tracing::debug!(missed, "UI event forwarder lagged; asking for a resync");
                sink.peer(PeerChanged::Resync);
            }
            _ => {}
        }
    }
}

/// Sends a stats sample every [`SAMPLE_INTERVAL`] until the node stops.
async fn sample_stats(handle: NodeHandle, sink: Arc<dyn EventSink>) {
    let mut ticker = tokio::time::interval(SAMPLE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut previous: Option<(Instant, StatsView)> = None;
    loop {
        ticker.tick().await;
        let Ok(stats) = snapshot(&handle).await else {
            return;
        };
        let now = Instant::now();
        let at_ms = crate::unix_ms();
        let rate = match &previous {
            Some((then, prev)) => {
                RateSample::between(prev, &stats, now.duration_since(*then).as_secs_f64(), at_ms)
            }
            None => RateSample::between(&stats, &stats, 1.0, at_ms),
        };
        sink.stats(StatsSampled {
            stats: stats.clone(),
            rate,
        });
        previous = Some((now, stats));
    }
}

fn blocked_file(profile: &Profile) -> PathBuf {
    profile.data_dir().join("blocked_peers.json")
}

fn load_blocked(path: &std::path::Path) -> BTreeSet<PeerId> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeSet::new();
    };
    match serde_json::from_str::<Vec<String>>(&text) {
        Ok(list) => list.iter().filter_map(|s| s.parse().ok()).collect(),
        Err(e) => {
            tracing::warn!(file = %path.display(), %e, "ignoring an unreadable blocked-peer list");
            BTreeSet::new()
        }
    }
}

fn save_blocked(path: &std::path::Path, list: &[String]) -> CommandResult<()> {
    let storage = |e: std::io::Error| {
        CommandError::new(
            ErrorCode::Storage,
            format!("cannot save {}: {e}", path.display()),
        )
    };
    let text = serde_json::to_string_pretty(list)
        .map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(storage)?;
    std::fs::rename(&tmp, path).map_err(storage)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what the service emits.
    #[derive(Default)]
    struct RecordingSink {
        states: Mutex<Vec<NodeState>>,
    }

    impl EventSink for RecordingSink {
        fn status(&self, status: &NodeStatus) {
            self.states.lock().unwrap().push(status.state);
        }
        fn peer(&self, _change: PeerChanged) {}
        fn stats(&self, _sample: StatsSampled) {}
    }

    async fn peer_count(service: &NodeService, want: usize) -> bool {
        for _ in 0..100 {
            if service.peers().await.unwrap().len() == want {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn starts_connects_denies_and_restarts_with_saved_settings() {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::resolve("test", Some(dir.path())).unwrap();
        profile.create_dirs().unwrap();
        std::fs::write(
            profile.config_file(),
            "listen = [\"/ip4/127.0.0.1/udp/0/quic-v1\"]\nmdns = false\nmin_connections = 0\n",
        )
        .unwrap();
        let sink = Arc::new(RecordingSink::default());
        let identity = NodeIdentity::generate();
        let service = NodeService::new(profile, identity, sink.clone(), Instant::now());
        service.start().await.unwrap();
        assert_eq!(service.status().state, NodeState::Running);

        let main = service.handle().unwrap();
        let view = service
            .sandbox()
            .lock()
            .await
            .start(&main, 2)
            .await
            .unwrap();
        assert_eq!(view.running, 2);
        assert!(peer_count(&service, 2).await, "sandbox peers connected");

        let err = service.connect("not a multiaddr").await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidInput);

        // Saving restarts the node with the new values; the sandbox rejoins.
        let mut settings = service.settings().unwrap().saved;
        settings.max_connections = 9;
        service.save_settings(&settings).await.unwrap();
        assert_eq!(service.node_config().unwrap().max_connections, 9);
        assert!(
            peer_count(&service, 2).await,
            "sandbox rejoined after restart"
        );

        // Deny closes the peer's connections and is remembered.
        let denied = view.peer_ids[0].clone();
        assert_eq!(service.block(&denied).await.unwrap(), vec![denied.clone()]);
        assert!(peer_count(&service, 1).await, "denied peer disconnected");
        assert_eq!(service.blocked(), vec![denied.clone()]);
        assert!(service.unblock(&denied).await.unwrap().is_empty());

        service.shutdown().await;
        assert_eq!(service.status().state, NodeState::Stopped);
        let states = sink.states.lock().unwrap().clone();
        assert_eq!(
            states,
            [
                NodeState::Starting,
                NodeState::Running,
                NodeState::Starting,
                NodeState::Running,
                NodeState::Stopped
            ]
        );
    }
}
