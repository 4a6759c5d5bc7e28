//! A set of running nodes the experiment can drive, whatever runs them.
//!
//! [`local::LocalCluster`] holds `NodeHandle`s in this process (QUIC and TCP
//! on loopback, or the memory transport); [`process::ProcessCluster`] holds
//! `conclaved` children reached through their control sockets.

pub mod local;
pub mod process;

use std::{future::Future, sync::Arc, time::Duration};

use crate::{delivery::Recorder, error::SimError, traffic::Totals};

/// Operations the experiment needs from a set of nodes, by node index.
pub trait Cluster: Send + Sync + 'static {
    /// Number of nodes.
    fn len(&self) -> usize;

    /// Whether the cluster has no nodes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Name of the transport the nodes dial each other on.
    fn transport(&self) -> &'static str;

    /// How many dials the experiment may run at once.
    fn dial_concurrency(&self) -> usize;

    /// Node `from` dials node `to` on the cluster's transport; returns how
    /// long the dial took.
    fn connect(
        &self,
        from: usize,
        to: usize,
    ) -> impl Future<Output = Result<Duration, SimError>> + Send;

    /// Subscribes node `node` to `topic` and records every message it
    /// receives on it into `recorder`, for at most `bound`. Returns once the
    /// subscription is in place.
    fn subscribe(
        &self,
        node: usize,
        topic: &str,
        recorder: Arc<Recorder>,
        bound: Duration,
    ) -> impl Future<Output = Result<(), SimError>> + Send;

    /// Waits until `count` connected peers of `node` are subscribed to `topic`.
    fn wait_topic_peers(
        &self,
        node: usize,
        topic: &str,
        count: usize,
        bound: Duration,
    ) -> impl Future<Output = Result<(), SimError>> + Send;

    /// Peers in `node`'s gossip mesh for `topic`.
    fn mesh_peers(
        &self,
        node: usize,
        topic: &str,
    ) -> impl Future<Output = Result<usize, SimError>> + Send;

    /// Node `node` publishes `bytes` on `topic` exactly as given, without
    /// the envelope its node would add (Byzantine messages).
    fn publish_raw(
        &self,
        node: usize,
        topic: &str,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), SimError>> + Send;

    /// Whether [`Cluster::publish_raw`] really bypasses envelopes (the
    /// daemon's control socket can only publish through them).
    fn raw_publish_supported(&self) -> bool;

    /// Peers node `node` is connected to (topology dials plus any the node
    /// made on its own, e.g. for DHT queries).
    fn peers(&self, node: usize) -> impl Future<Output = Result<usize, SimError>> + Send;

    /// Node `node` publishes `data` on `topic`.
    fn publish(
        &self,
        node: usize,
        topic: &str,
        data: Vec<u8>,
    ) -> impl Future<Output = Result<(), SimError>> + Send;

    /// Bytes node `node` has received and sent on all connections.
    fn traffic(&self, node: usize) -> impl Future<Output = Result<Totals, SimError>> + Send;

    /// Node `node`'s metrics in Prometheus text.
    fn metrics_text(&self, node: usize) -> impl Future<Output = Result<String, SimError>> + Send;

    /// Node `node` announces a DHT resource `kind`/`id`.
    fn announce(
        &self,
        node: usize,
        kind: &str,
        id: &str,
    ) -> impl Future<Output = Result<(), SimError>> + Send;

    /// Node `node` looks resource `kind`/`id` up in the DHT.
    fn lookup(
        &self,
        node: usize,
        kind: &str,
        id: &str,
    ) -> impl Future<Output = Result<(), SimError>> + Send;

    /// CPU seconds used so far by all nodes together.
    fn cpu_seconds(&self) -> Result<f64, SimError>;

    /// Whether [`Cluster::cpu_seconds`] counts the nodes alone (separate
    /// processes) rather than this whole process.
    fn cpu_is_per_process(&self) -> bool;

    /// Resident memory of each node, when nodes are processes.
    fn resident(&self) -> Result<Option<Vec<crate::procfs::Resident>>, SimError>;

    /// Stops every node.
    fn stop(&self) -> impl Future<Output = ()> + Send;
}

/// Sums, over all nodes, each `(sample name, label)` metric of their
/// registries. A node without a sample counts 0 (labelled families only
/// show label sets that were used); `None` when no node has it at all.
pub async fn metric_sums<C: Cluster>(
    cluster: &C,
    metrics: &[(&str, &str)],
) -> Result<Vec<Option<f64>>, SimError> {
    let mut sums: Vec<Option<f64>> = vec![None; metrics.len()];
    for node in 0..cluster.len() {
        let text = cluster.metrics_text(node).await?;
        for (sum, (name, label)) in sums.iter_mut().zip(metrics) {
            if let Some(v) = crate::prometheus_text::sum_samples_labelled(&text, name, label) {
                *sum = Some(sum.unwrap_or(0.0) + v);
            }
        }
    }
    Ok(sums)
}

/// Runs `ask` for every node, up to 32 at once (a busy node answers
/// slowly; asking a thousand of them one after another takes minutes), and
/// returns the answers in node order.
pub async fn ask_every_node<C, T, F, Fut>(cluster: &Arc<C>, ask: F) -> Result<Vec<T>, SimError>
where
    C: Cluster,
    T: Send + 'static,
    F: Fn(Arc<C>, usize) -> Fut,
    Fut: Future<Output = Result<T, SimError>> + Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for node in 0..cluster.len() {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let answer = ask(cluster.clone(), node);
        tasks.spawn(async move {
            let r = answer.await;
            drop(permit);
            r.map(|v| (node, v))
        });
    }
    let mut answers: Vec<Option<T>> = (0..cluster.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (node, v) = joined.expect("node task does not panic")?;
        answers[node] = Some(v);
    }
    Ok(answers.into_iter().flatten().collect())
}

/// Sums traffic over all nodes.
pub async fn total_traffic<C: Cluster>(cluster: &C) -> Result<Totals, SimError> {
    let mut totals = Totals::default();
    for node in 0..cluster.len() {
        let t = cluster.traffic(node).await?;
        totals.add(t.bytes_in, t.bytes_out);
    }
    Ok(totals)
}
