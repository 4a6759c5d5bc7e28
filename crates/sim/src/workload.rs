//! Publishing a planned workload on time: each slot's payload is built (and
//! its timestamp taken) just before it is handed to its publisher, whose
//! node signs it, at most
//! [`MAX_IN_FLIGHT`] publishes at once so that one slow node cannot hold up
//! the schedule.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rand::{rngs::StdRng, SeedableRng};
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{
    clock::Clock,
    cluster::Cluster,
    error::SimError,
    payload::{self, Header},
    schedule::{Slot, SlotKind},
};

/// Publishes in flight at once, at most.
pub const MAX_IN_FLIGHT: usize = 64;

/// What happened to one planned publish.
#[derive(Debug, Clone)]
pub struct Published {
    /// The slot.
    pub slot: Slot,
    /// `None` if the node accepted it, else why not.
    pub error: Option<String>,
    /// When the publish call returned, from the start of the workload.
    pub done_at: Duration,
}

/// Sizes of the workload's messages.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Valid and malformed payloads.
    pub payload: usize,
    /// Oversized payloads.
    pub oversized: usize,
}

/// How a workload's messages are made.
#[derive(Clone)]
pub struct Spec {
    /// Gossip topic.
    pub topic: String,
    /// Run id written into every payload.
    pub run: u32,
    /// Clock of the publish timestamps.
    pub clock: Clock,
    /// Message sizes.
    pub sizes: Sizes,
    /// Seed of the malformed payloads' bytes.
    pub seed: u64,
}

/// Publishes `slots` as `spec` says, each at its time; returns every outcome
/// (sorted by sequence number) and how long publishing took.
pub async fn publish_all<C: Cluster>(
    cluster: &Arc<C>,
    slots: &[Slot],
    spec: &Spec,
) -> Result<(Vec<Published>, Duration), SimError> {
    let Spec {
        topic,
        run,
        clock,
        sizes,
        seed,
    } = spec;
    let (run, clock, sizes) = (*run, *clock, *sizes);
    let mut rng = StdRng::seed_from_u64(*seed);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    let start_tokio = tokio::time::Instant::from_std(start);
    for &slot in slots {
        tokio::time::sleep_until(start_tokio + slot.at).await;
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let data = match slot.kind {
            SlotKind::Valid => {
                let header = Header {
                    run,
                    seq: slot.seq,
                    publisher: slot.publisher as u32,
                    sent_us: clock.now_us(),
                };
                payload::encode(&header, sizes.payload)?
            }
            SlotKind::Malformed => payload::malformed(sizes.payload, &mut rng),
            SlotKind::Oversized => payload::oversized(sizes.oversized),
        };
        let cluster = cluster.clone();
        let topic = topic.clone();
        tasks.spawn(async move {
            // Valid messages go through the node's own signing (when
            // envelopes are on); Byzantine ones bypass it.
            let result = match slot.kind {
                SlotKind::Valid => cluster.publish(slot.publisher, &topic, data).await,
                SlotKind::Malformed | SlotKind::Oversized => {
                    cluster.publish_raw(slot.publisher, &topic, data).await
                }
            };
            drop(permit);
            Published {
                slot,
                error: result.err().map(|e| e.to_string()),
                done_at: start.elapsed(),
            }
        });
    }
    let mut outcomes = Vec::with_capacity(slots.len());
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.expect("publish task does not panic"));
    }
    outcomes.sort_by_key(|p| p.slot.seq);
    Ok((outcomes, start.elapsed()))
}
