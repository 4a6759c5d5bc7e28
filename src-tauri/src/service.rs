//! The node service: runs the profile's node (a [`ProfileNode`]), restarts
//! it when settings or keys change, and turns its life cycle, its events and
//! periodic stats into UI events.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use conclave_node::{
    config::settings::{self, Settings, SettingsView},
    gate::Policy,
    identity::{backup_file, NodeIdentity},
    profile::Profile,
    NodeError, NodeEvent, NodeHandle, PeerId, PeerInfo, PolicyChange, ProfileNode,
};
use conclave_sim::sandbox::Sandbox;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::{
    backup::{self, BackupPreview, BackupWritten, RestoreDone},
    error::{CommandError, CommandResult, ErrorCode},
    events::{EventSink, NodeState, NodeStatus, PeerChanged, StatsSampled},
    views::{PolicyView, PqFingerprints, RateSample, StatsView},
};

/// How often the node is sampled for the Network health view.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// How often the node is sampled while the window is hidden: only the tray's
/// summary uses the samples then.
pub const HIDDEN_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// Longest the window goes without a sample while no figure changes (only
/// the clock moves): the charts' time axis and the uptime move on at least
/// this often, and an idle app redraws nothing in between.
pub const REST_HEARTBEAT: Duration = Duration::from_secs(30);

/// A decrypted backup waiting for the user to confirm the restore.
struct PendingRestore {
    path: PathBuf,
    identity: Arc<NodeIdentity>,
}

/// Owns the node for the app's lifetime.
pub struct NodeService {
    node: Arc<ProfileNode>,
    sink: Arc<dyn EventSink>,
    /// The tasks that watch the running node; held while it (re)starts, so
    /// starts and stops do not interleave.
    watchers: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
    status: Mutex<NodeStatus>,
    pending_restore: Mutex<Option<PendingRestore>>,
    sandbox: tokio::sync::Mutex<Sandbox>,
    launched: Instant,
    first_render_ms: OnceLock<f64>,
}

impl NodeService {
    /// A service for the profile's `node`; it starts on [`start`](Self::start).
    pub fn new(node: Arc<ProfileNode>, sink: Arc<dyn EventSink>, launched: Instant) -> Self {
        let peer_id = node.peer_id().to_string();
        Self {
            node,
            sink,
            watchers: tokio::sync::Mutex::new(Vec::new()),
            status: Mutex::new(NodeStatus {
                state: NodeState::Starting,
                peer_id,
                error: None,
                hint: None,
            }),
            pending_restore: Mutex::new(None),
            sandbox: tokio::sync::Mutex::new(Sandbox::default()),
            launched,
            first_render_ms: OnceLock::new(),
        }
    }

    /// The profile's node: its keys, config and the watch of what runs.
    pub fn node(&self) -> &Arc<ProfileNode> {
        &self.node
    }

    /// The profile this instance runs.
    pub fn profile(&self) -> &Profile {
        self.node.profile()
    }

    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.node.peer_id()
    }

    /// Fingerprints of the post-quantum keys, if the node has them.
    pub fn pq_fingerprints(&self) -> Option<PqFingerprints> {
        PqFingerprints::of(&self.node.identity())
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
            s.peer_id = self.node.peer_id().to_string();
            s.error = error;
            s.hint = hint;
            s.clone()
        };
        self.sink.status(&status);
    }

    /// The running node's handle, or an error the UI can show.
    pub fn handle(&self) -> CommandResult<NodeHandle> {
        self.node
            .current()
            .ok_or_else(CommandError::node_unavailable)
    }

    /// Starts the node (stopping a running one first). A failure is also
    /// reported as the `failed` state, so the UI can show it.
    pub async fn start(&self) -> CommandResult<()> {
        let mut watchers = self.watchers.lock().await;
        watchers.drain(..).for_each(|task| task.abort());
        self.set_status(NodeState::Starting, None, None);
        match self.node.start().await {
            Ok(handle) => {
                self.migrate_blocked_list(&handle).await;
                watchers.push(tokio::spawn(forward_events(
                    handle.clone(),
                    self.sink.clone(),
                )));
                watchers.push(tokio::spawn(sample_stats(
                    handle.clone(),
                    self.sink.clone(),
                )));
                self.set_status(NodeState::Running, None, None);
                self.sink.peer(PeerChanged::Resync);
                self.sandbox.lock().await.rejoin(&handle).await;
                Ok(())
            }
            Err(e) => {
                let e = CommandError::from(e);
                tracing::error!(error = %e.message, "node failed to start");
                self.set_status(
                    NodeState::Failed,
                    Some(e.message.clone()),
                    Some(format!(
                        "fix the setting in Settings (saved to {}), which restarts the node",
                        self.profile().config_file().display()
                    )),
                );
                Err(e)
            }
        }
    }

    /// Stops the node and the sandbox peers (the app is closing).
    pub async fn shutdown(&self) {
        self.sandbox.lock().await.stop_all().await;
        let mut watchers = self.watchers.lock().await;
        watchers.drain(..).for_each(|task| task.abort());
        self.node.stop().await;
        self.set_status(NodeState::Stopped, None, None);
    }

    /// Saves settings to the profile's config and restarts the node with them.
    pub async fn save_settings(&self, settings: &Settings) -> CommandResult<SettingsView> {
        let path = self.profile().config_file();
        settings::save(&path, settings)?;
        tracing::info!(file = %path.display(), "settings saved; restarting the node");
        self.start().await?;
        Ok(settings::load(&path)?)
    }

    /// The saved settings.
    pub fn settings(&self) -> CommandResult<SettingsView> {
        Ok(settings::load(&self.profile().config_file())?)
    }

    /// Connected peers.
    pub async fn peers(&self) -> CommandResult<Vec<PeerInfo>> {
        Ok(self.handle()?.peers().await?)
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

    /// Who may connect. Read from the file while the node is not running.
    pub async fn policy(&self) -> CommandResult<PolicyView> {
        let file = self.node.policy_file();
        let policy = match self.handle() {
            Ok(handle) => handle.policy().await?,
            Err(_) => Policy::load(&file)
                .map_err(|e| CommandError::new(ErrorCode::Storage, e.to_string()))?,
        };
        Ok(PolicyView::new(&policy, &file))
    }

    /// Changes who may connect (the node saves it and closes connections it
    /// now refuses) and returns the new policy.
    pub async fn update_policy(&self, change: PolicyChange) -> CommandResult<PolicyView> {
        let peer = match change {
            PolicyChange::Allow(p) | PolicyChange::Deny(p) | PolicyChange::Unlist(p) => Some(p),
            PolicyChange::Private(_) | PolicyChange::None => None,
        };
        if peer == Some(self.peer_id()) {
            return Err(CommandError::new(
                ErrorCode::InvalidInput,
                "that is this node's own peer id",
            ));
        }
        let policy = self.handle()?.update_policy(change).await?;
        tracing::info!(change = %describe_change(change), "connection policy changed");
        Ok(PolicyView::new(&policy, &self.node.policy_file()))
    }

    /// Moves the deny list of earlier versions (`blocked_peers.json`) into
    /// the node's policy, once.
    async fn migrate_blocked_list(&self, handle: &NodeHandle) {
        let legacy = self.profile().data_dir().join("blocked_peers.json");
        let Ok(text) = std::fs::read_to_string(&legacy) else {
            return;
        };
        let peers: Vec<String> = match serde_json::from_str(&text) {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(file = %legacy.display(), %e, "ignoring an unreadable old deny list");
                return;
            }
        };
        for peer in peers.iter().filter_map(|p| p.parse::<PeerId>().ok()) {
            if let Err(e) = handle.update_policy(PolicyChange::Deny(peer)).await {
                tracing::warn!(%e, "could not move the old deny list into the policy");
                return;
            }
        }
        match std::fs::remove_file(&legacy) {
            Ok(()) => tracing::info!(peers = peers.len(), "old deny list moved into the policy"),
            Err(e) => {
                tracing::warn!(file = %legacy.display(), %e, "cannot remove the old deny list")
            }
        }
    }

    /// Encrypts the identity under `passphrase` into a new file at `path`.
    pub async fn export_identity(
        &self,
        path: &str,
        passphrase: Zeroizing<String>,
    ) -> CommandResult<BackupWritten> {
        let path = backup::user_path(path)?;
        let identity = self.node.identity();
        let peer_id = identity.peer_id().to_string();
        let file = path.clone();
        blocking(move || backup_file::write(&file, &identity, &passphrase)).await?;
        tracing::info!(file = %path.display(), "identity backed up");
        Ok(BackupWritten {
            path: path.display().to_string(),
            peer_id,
        })
    }

    /// Decrypts the backup at `path` and keeps it until
    /// [`restore_identity`](Self::restore_identity) confirms it.
    pub async fn inspect_backup(
        &self,
        path: &str,
        passphrase: Zeroizing<String>,
    ) -> CommandResult<BackupPreview> {
        let path = backup::user_path(path)?;
        self.pending().take();
        let read_from = path.clone();
        let identity = blocking(move || backup_file::read(&read_from, &passphrase)).await?;
        let preview = backup::preview(&path, &identity, &self.node.identity());
        let identity = Arc::new(identity);
        *self.pending() = Some(PendingRestore { path, identity });
        Ok(preview)
    }

    /// Replaces the profile's keys with the inspected backup, whose PeerId
    /// the user confirmed, and restarts the node with them.
    pub async fn restore_identity(&self, confirmed_peer_id: &str) -> CommandResult<RestoreDone> {
        let pending = self.pending().take().ok_or_else(|| {
            CommandError::new(
                ErrorCode::InvalidInput,
                "no backup is waiting to be restored",
            )
            .with_hint("open the backup file with its passphrase first")
        })?;
        let peer_id = pending.identity.peer_id().to_string();
        if peer_id != confirmed_peer_id {
            return Err(CommandError::new(
                ErrorCode::InvalidInput,
                "the confirmed PeerId is not the backup's",
            )
            .with_hint("open the backup file again"));
        }
        let previous_peer_id = self.peer_id().to_string();
        // A failure here leaves the previous keys where they were.
        self.node.replace_identity(pending.identity).await?;
        tracing::info!(
            file = %pending.path.display(),
            %previous_peer_id,
            %peer_id,
            "identity restored from a backup; restarting the node"
        );
        // The keys are saved; a node that fails to start shows that in its status.
        let _ = self.start().await;
        Ok(RestoreDone {
            peer_id,
            previous_peer_id,
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Option<PendingRestore>> {
        self.pending_restore
            .lock()
            .unwrap_or_else(|e| e.into_inner())
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
            NodeEvent::PeerConnected(peer) => sink.peer(PeerChanged::Connected { peer }),
            NodeEvent::PeerUpdated(peer) => sink.peer(PeerChanged::Updated { peer }),
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

/// Which samples reach the sink: every one that changes a figure, and
/// otherwise one per [`REST_HEARTBEAT`]. A skipped sample equals the last
/// one sent but for its clock, so the window can fill it in.
#[derive(Default)]
struct RestFilter {
    last_sent: Option<(Instant, StatsSampled)>,
}

impl RestFilter {
    /// The next sample goes out whatever it holds.
    fn forget(&mut self) {
        self.last_sent = None;
    }

    fn admit(&mut self, now: Instant, sample: &StatsSampled) -> bool {
        let send = match &self.last_sent {
            None => true,
            Some((at, last)) => {
                now.duration_since(*at) >= REST_HEARTBEAT || !same_but_the_clock(last, sample)
            }
        };
        if send {
            self.last_sent = Some((now, sample.clone()));
        }
        send
    }
}

/// True when two samples differ only in when they were taken.
fn same_but_the_clock(a: &StatsSampled, b: &StatsSampled) -> bool {
    let mut b = b.clone();
    b.stats.uptime_secs = a.stats.uptime_secs;
    b.rate.at_ms = a.rate.at_ms;
    *a == b
}

/// Samples the node every [`SAMPLE_INTERVAL`] (every
/// [`HIDDEN_SAMPLE_INTERVAL`] while the window is hidden) until it stops, and
/// sends the samples [`RestFilter`] admits.
async fn sample_stats(handle: NodeHandle, sink: Arc<dyn EventSink>) {
    let mut ticker = tokio::time::interval(SAMPLE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut filter = RestFilter::default();
    let mut previous: Option<(Instant, StatsView)> = None;
    loop {
        ticker.tick().await;
        let hidden_and_recent = !sink.window_visible()
            && previous
                .as_ref()
                .is_some_and(|(at, _)| at.elapsed() < HIDDEN_SAMPLE_INTERVAL);
        if hidden_and_recent {
            continue;
        }
        let Ok(stats) = snapshot(&handle).await else {
            return;
        };
        let now = Instant::now();
        let at_ms = conclave_node::clock::unix_ms() as f64;
        let rate = match &previous {
            Some((then, prev)) => {
                RateSample::between(prev, &stats, now.duration_since(*then).as_secs_f64(), at_ms)
            }
            None => RateSample::between(&stats, &stats, 1.0, at_ms),
        };
        let sample = StatsSampled {
            stats: stats.clone(),
            rate,
        };
        if sink.take_sample_request() {
            filter.forget();
        }
        if filter.admit(now, &sample) {
            sink.stats(sample);
        }
        previous = Some((now, stats));
    }
}

/// A policy change in words, for the log.
fn describe_change(change: PolicyChange) -> String {
    match change {
        PolicyChange::Allow(peer) => format!("allow {peer}"),
        PolicyChange::Deny(peer) => format!("deny {peer}"),
        PolicyChange::Unlist(peer) => format!("unlist {peer}"),
        PolicyChange::Private(true) => "private mode on".to_string(),
        PolicyChange::Private(false) => "private mode off".to_string(),
        PolicyChange::None => "none".to_string(),
    }
}

/// Runs slow, blocking work (Argon2id, file I/O) off the async runtime.
async fn blocking<T: Send + 'static, E: Into<CommandError> + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> CommandResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(CommandError::internal)?
        .map_err(Into::into)
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

    fn sample(uptime_secs: f64, at_ms: f64, bytes_in_per_sec: f64) -> StatsSampled {
        let stats: StatsView = serde_json::from_value(serde_json::json!({
            "peers": 0, "connections": 0, "connections_by_transport": [],
            "connections_by_path": [], "topics": [], "routing_table_size": 0,
            "bytes_in": 0.0, "bytes_out": 0.0, "messages": 0.0, "listen_addrs": [],
            "external_addrs": [], "relays": [], "relay_addrs": [], "reachability": "unknown",
            "autonat_confirmed": 0.0, "autonat_failed": 0.0, "hole_punch_attempts": 0.0,
            "hole_punch_successes": 0.0, "uptime_secs": uptime_secs
        }))
        .unwrap();
        StatsSampled {
            stats,
            rate: RateSample {
                at_ms,
                bytes_in_per_sec,
                bytes_out_per_sec: 0.0,
                messages_per_sec: 0.0,
            },
        }
    }

    #[test]
    fn rest_filter_sends_changes_at_once_and_a_quiet_node_once_per_heartbeat() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let quiet = |secs: u64| sample(secs as f64, secs as f64 * 1000.0, 0.0);
        let busy = |secs: u64| sample(secs as f64, secs as f64 * 1000.0, 512.0);
        let beat = REST_HEARTBEAT.as_secs();
        let mut filter = RestFilter::default();
        assert!(filter.admit(at(0), &quiet(0)), "the first sample");
        for secs in 1..beat {
            assert!(
                !filter.admit(at(secs), &quiet(secs)),
                "only the clock moved at {secs}s"
            );
        }
        assert!(filter.admit(at(beat), &quiet(beat)), "the heartbeat");
        assert!(!filter.admit(at(beat + 1), &quiet(beat + 1)));
        assert!(filter.admit(at(beat + 2), &busy(beat + 2)), "traffic");
        assert!(
            !filter.admit(at(beat + 3), &busy(beat + 3)),
            "steady traffic"
        );
        assert!(
            filter.admit(at(beat + 4), &quiet(beat + 4)),
            "traffic stopped"
        );
        filter.forget();
        assert!(filter.admit(at(beat + 5), &quiet(beat + 5)), "asked for");
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
        // The deny list of earlier versions moves into the node's policy.
        let old_denied = NodeIdentity::generate().peer_id();
        let legacy = profile.data_dir().join("blocked_peers.json");
        std::fs::write(&legacy, format!("[\"{old_denied}\"]")).unwrap();
        let sink = Arc::new(RecordingSink::default());
        let flags = conclave_node::config::ConfigFlags::default();
        let (node, _) = ProfileNode::open(profile, None, flags).await.unwrap();
        let service = NodeService::new(Arc::new(node), sink.clone(), Instant::now());
        service.start().await.unwrap();
        assert_eq!(service.status().state, NodeState::Running);
        assert_eq!(
            service.policy().await.unwrap().denied,
            vec![old_denied.to_string()]
        );
        assert!(!legacy.exists(), "old deny list removed once moved");
        service
            .update_policy(PolicyChange::Unlist(old_denied))
            .await
            .unwrap();

        let main = service.handle().unwrap();
        let mut sandbox = service.sandbox().lock().await;
        sandbox.start(&main, 2).await.unwrap();
        let sandbox_peers = sandbox.peer_ids();
        assert_eq!(sandbox_peers.len(), 2);
        drop(sandbox);
        assert!(peer_count(&service, 2).await, "sandbox peers connected");

        let err = service.connect("not a multiaddr").await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidInput);

        // Saving restarts the node with the new values; the sandbox rejoins.
        let mut settings = service.settings().unwrap().saved;
        settings.max_connections = 9;
        service.save_settings(&settings).await.unwrap();
        assert_eq!(service.node().config().unwrap().max_connections, 9);
        assert!(
            peer_count(&service, 2).await,
            "sandbox rejoined after restart"
        );

        // Deny closes the peer's connections and is saved in the profile's
        // policy file; allowing moves it to the other list.
        let denied = sandbox_peers[0].clone();
        let peer: PeerId = denied.parse().unwrap();
        let policy = service
            .update_policy(PolicyChange::Deny(peer))
            .await
            .unwrap();
        assert_eq!(policy.denied, vec![denied.clone()]);
        assert!(peer_count(&service, 1).await, "denied peer disconnected");
        let saved = Policy::load(&service.profile().policy_file()).unwrap();
        assert!(saved.deny.contains(&peer));
        let policy = service
            .update_policy(PolicyChange::Allow(peer))
            .await
            .unwrap();
        assert!(policy.denied.is_empty());
        assert_eq!(policy.allowed, vec![denied.clone()]);
        let own = service.update_policy(PolicyChange::Deny(service.peer_id()));
        assert_eq!(own.await.unwrap_err().code, ErrorCode::InvalidInput);
        let policy = service.update_policy(PolicyChange::Unlist(peer)).await;
        assert!(policy.unwrap().allowed.is_empty());

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
