//! Forming a network: dialling a topology, subscribing every node to the
//! workload topic, and waiting until the gossip meshes are formed.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{
    cluster::{metric_sums, Cluster},
    delivery::Recorder,
    error::SimError,
    topology::Topology,
};

/// Gossipsub's `mesh_n_low` in the node: below it a node grafts more peers.
pub const MESH_N_LOW: usize = 4;
/// How often mesh sizes are polled: gossipsub reports no event when its
/// mesh changes, and grafting happens on its 1 s heartbeat.
const MESH_POLL: Duration = Duration::from_millis(250);

/// libp2p's count of connections established (both directions).
pub const CONNECTIONS: (&str, &str) = ("swarm_connections_established_total", "");
/// Window over which connection churn is judged.
const QUIET_WINDOW: Duration = Duration::from_secs(2);
/// New connections per node per second below which the network is quiet.
const QUIET_RATE: f64 = 0.05;

/// How long the network took to stop opening connections after forming.
#[derive(Debug, Clone, Serialize)]
pub struct QuietOutcome {
    /// Until a window with (almost) no new connections, from the end of
    /// mesh formation.
    pub settled_ms: f64,
    /// Whether it settled within the bound.
    pub settled: bool,
    /// New connections per node per second in the last window.
    pub last_rate: Option<f64>,
}

/// Waits, at most `bound`, until the nodes stop opening connections: after
/// dialling the topology they run DHT bootstrap queries (which dial many
/// peers) and AutoNAT probes. libp2p has no event for this, so the
/// connection counter is read every 2 s.
pub async fn wait_for_quiet<C: Cluster>(
    cluster: &Arc<C>,
    bound: Duration,
) -> Result<QuietOutcome, SimError> {
    let started = Instant::now();
    if bound.is_zero() {
        return Ok(QuietOutcome {
            settled_ms: 0.0,
            settled: false,
            last_rate: None,
        });
    }
    let n = cluster.len() as f64;
    let mut before = metric_sums(cluster.as_ref(), &[CONNECTIONS]).await?[0];
    let mut last_rate = None;
    while started.elapsed() < bound {
        let window = Instant::now();
        tokio::time::sleep(QUIET_WINDOW).await;
        let after = metric_sums(cluster.as_ref(), &[CONNECTIONS]).await?[0];
        let (Some(a), Some(b)) = (before, after) else {
            // The node does not count connections: nothing to wait for.
            break;
        };
        let rate = (b - a) / n / window.elapsed().as_secs_f64();
        last_rate = Some(rate);
        before = after;
        if rate < QUIET_RATE {
            return Ok(QuietOutcome {
                settled_ms: started.elapsed().as_secs_f64() * 1000.0,
                settled: true,
                last_rate,
            });
        }
    }
    Ok(QuietOutcome {
        settled_ms: started.elapsed().as_secs_f64() * 1000.0,
        settled: last_rate.is_none(),
        last_rate,
    })
}

/// How the meshes looked when the workload started.
#[derive(Debug, Clone, Serialize)]
pub struct MeshOutcome {
    /// From the first subscription until every node reached its target.
    pub formed_ms: f64,
    /// Nodes whose mesh stayed below `min(neighbours, mesh_n_low)` when the
    /// bound ran out (0 when the meshes formed).
    pub nodes_below_target: usize,
    /// Smallest mesh seen at the end.
    pub smallest_mesh: usize,
    /// Nodes that did not see enough subscribed peers within the bound.
    pub nodes_short_of_topic_peers: usize,
    /// The first such wait's error.
    pub first_error: Option<String>,
}

/// Times of the topology's dials.
#[derive(Debug, Clone, Default)]
pub struct Dials {
    /// Each successful dial's time in microseconds.
    pub times_us: Vec<u64>,
    /// Dials that failed, with the first failure. A dial can lose a race
    /// with the nodes' own DHT dials to the same peer (and then hit the
    /// per-peer connection limit); the pair is connected either way.
    pub failures: usize,
    /// The first failure's message.
    pub first_failure: Option<String>,
}

/// Dials every edge of `topology`, at most `cluster.dial_concurrency()` at
/// once.
pub async fn dial_topology<C: Cluster>(cluster: &Arc<C>, topology: &Topology) -> Dials {
    let permits = Arc::new(Semaphore::new(cluster.dial_concurrency().max(1)));
    let mut dials = JoinSet::new();
    for &(from, to) in &topology.edges {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let cluster = cluster.clone();
        dials.spawn(async move {
            let took = cluster.connect(from, to).await;
            drop(permit);
            took
        });
    }
    let mut out = Dials::default();
    while let Some(joined) = dials.join_next().await {
        match joined.expect("dial task does not panic") {
            Ok(took) => out.times_us.push(took.as_micros() as u64),
            Err(e) => {
                out.failures += 1;
                out.first_failure.get_or_insert(e.to_string());
            }
        }
    }
    out
}

/// Subscribes every node to `topic` (up to 32 at once), recording into
/// `recorder` for `bound`; returns each subscription's time in
/// microseconds (a node's answer to a command: how busy its event loop is).
pub async fn subscribe_all<C: Cluster>(
    cluster: &Arc<C>,
    topic: &str,
    recorder: &Arc<Recorder>,
    bound: Duration,
) -> Result<Vec<u64>, SimError> {
    let permits = Arc::new(Semaphore::new(32));
    let mut subscriptions = JoinSet::new();
    for node in 0..cluster.len() {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let (cluster, topic, recorder) = (cluster.clone(), topic.to_string(), recorder.clone());
        subscriptions.spawn(async move {
            let started = Instant::now();
            let result = cluster.subscribe(node, &topic, recorder, bound).await;
            drop(permit);
            result.map(|()| started.elapsed().as_micros() as u64)
        });
    }
    let mut times = Vec::with_capacity(cluster.len());
    while let Some(joined) = subscriptions.join_next().await {
        times.push(joined.expect("subscription task does not panic")?);
    }
    Ok(times)
}

/// Waits until every node sees `min(neighbours, mesh_n_low)` connected
/// peers subscribed to `topic`, then until every mesh holds that many, all
/// within `bound`. Nodes still short at the bound are reported, not an
/// error: a dial can fail when a node is already full of connections it
/// made on its own, so the topology is a floor, not an exact graph.
pub async fn wait_for_meshes<C: Cluster>(
    cluster: &Arc<C>,
    topic: &str,
    neighbours: &[Vec<usize>],
    bound: Duration,
) -> Result<MeshOutcome, SimError> {
    let started = Instant::now();
    let deadline = started + bound;
    let targets: Vec<usize> = neighbours.iter().map(|n| n.len().min(MESH_N_LOW)).collect();
    let permits = Arc::new(Semaphore::new(64));
    let mut waits = JoinSet::new();
    for (node, &count) in targets.iter().enumerate() {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let cluster = cluster.clone();
        let topic = topic.to_string();
        waits.spawn(async move {
            let r = cluster.wait_topic_peers(node, &topic, count, bound).await;
            drop(permit);
            r
        });
    }
    let mut short_of_topic_peers = 0;
    let mut first_error = None;
    while let Some(joined) = waits.join_next().await {
        if let Err(e) = joined.expect("wait task does not panic") {
            short_of_topic_peers += 1;
            first_error.get_or_insert(e.to_string());
        }
    }

    let mut pending: Vec<usize> = (0..cluster.len()).collect();
    let mut sizes = vec![0usize; cluster.len()];
    loop {
        let mut polls = JoinSet::new();
        for &node in &pending {
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore never closed");
            let (cluster, topic) = (cluster.clone(), topic.to_string());
            polls.spawn(async move {
                let size = cluster.mesh_peers(node, &topic).await;
                drop(permit);
                size.map(|s| (node, s))
            });
        }
        let mut still = Vec::new();
        while let Some(joined) = polls.join_next().await {
            let (node, size) = joined.expect("poll task does not panic")?;
            sizes[node] = size;
            if size < targets[node] {
                still.push(node);
            }
        }
        pending = still;
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(MESH_POLL).await;
    }
    Ok(MeshOutcome {
        formed_ms: started.elapsed().as_secs_f64() * 1000.0,
        nodes_below_target: pending.len(),
        smallest_mesh: sizes.iter().copied().min().unwrap_or(0),
        nodes_short_of_topic_peers: short_of_topic_peers,
        first_error,
    })
}
