//! Publish throughput of one node: a small fully connected network (2 to 5
//! nodes), node 0 publishes as fast as the node accepts (up to
//! [`MAX_IN_FLIGHT`](crate::workload::MAX_IN_FLIGHT) publishes outstanding),
//! and the others count what arrives.

use std::{sync::Arc, time::Duration};

use serde::Serialize;

use crate::{
    cluster::Cluster,
    config::TopologyKind,
    delivery::{delivery_stats, Recorder},
    error::SimError,
    formation,
    schedule::{Slot, SlotKind},
    topology::Topology,
    workload::{self, Spec},
};

/// Throughput figures.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputFigures {
    /// Nodes in the test network.
    pub nodes: usize,
    /// Messages node 0 was asked to publish.
    pub messages: usize,
    /// Messages the node accepted.
    pub accepted: usize,
    /// Messages per second the node accepted (signed and queued to peers).
    pub publish_msgs_per_s: f64,
    /// Share of the accepted messages that reached every other node.
    pub delivered_ratio: f64,
    /// Messages per second until the last one arrived everywhere.
    pub end_to_end_msgs_per_s: f64,
    /// The first publish error, if any.
    pub first_error: Option<String>,
}

/// Runs the test on `cluster` (fresh, not yet connected) with payloads as
/// `spec` says; waits at most `drain` for deliveries after publishing.
pub async fn publish_throughput<C: Cluster>(
    cluster: &Arc<C>,
    messages: usize,
    spec: &Spec,
    drain: Duration,
) -> Result<ThroughputFigures, SimError> {
    let n = cluster.len();
    // Degree n-1: every node dials every node it is not yet connected to.
    let mut rng = rand::rngs::mock::StepRng::new(0, 1);
    let topology = Topology::generate(TopologyKind::Random, n, n - 1, &mut rng);
    formation::dial_topology(cluster, &topology).await;
    let recorder = Arc::new(Recorder::new(
        spec.run,
        spec.clock,
        spec.sizes.payload * 2 + 64 * 1024,
    ));
    let bound = drain * 4 + Duration::from_secs(120);
    formation::subscribe_all(cluster, &spec.topic, &recorder, bound).await?;
    formation::wait_for_meshes(cluster, &spec.topic, &topology.neighbours(), drain).await?;

    let slots: Vec<Slot> = (0..messages)
        .map(|i| Slot {
            seq: i as u32,
            at: Duration::ZERO,
            publisher: 0,
            kind: SlotKind::Valid,
        })
        .collect();
    let started = std::time::Instant::now();
    let (outcomes, publishing) = workload::publish_all(cluster, &slots, spec).await?;
    let accepted: Vec<(u32, usize)> = outcomes
        .iter()
        .filter(|p| p.error.is_none())
        .map(|p| (p.slot.seq, 0))
        .collect();
    let expected = (accepted.len() * (n - 1)) as u64;
    recorder.wait_for(expected, drain).await;
    let until_delivered = started.elapsed();
    let stats = delivery_stats(&accepted, &recorder.snapshot().deliveries, n);
    Ok(ThroughputFigures {
        nodes: n,
        messages,
        accepted: accepted.len(),
        publish_msgs_per_s: accepted.len() as f64 / publishing.as_secs_f64(),
        delivered_ratio: stats.ratio,
        end_to_end_msgs_per_s: stats.complete_messages as f64 / until_delivered.as_secs_f64(),
        first_error: outcomes.iter().find_map(|p| p.error.clone()),
    })
}
