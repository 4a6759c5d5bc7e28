//! DHT lookup time on the warm network: resources are announced from random
//! nodes, then each is looked up from another random node.
//!
//! A lookup can be answered from the asking node's own store when that node
//! is among the peers the record was replicated to (the 20 closest to its
//! key); such lookups take microseconds and are part of the distribution,
//! as they are for real users. Hop counts are not exposed by the node API;
//! the experiment counts the GetRecord requests the lookups caused instead.

use std::time::Instant;

use rand::Rng;
use serde::Serialize;

use crate::{
    cluster::Cluster,
    error::SimError,
    percentiles::{summarize_us, Summary},
};

/// Resource type the lookups use.
pub const KIND: &str = "simdht";

/// DHT figures.
#[derive(Debug, Clone, Serialize)]
pub struct DhtFigures {
    /// Time of each successful lookup.
    pub lookup: Option<Summary>,
    /// Time of each announcement (put of two records plus a provider
    /// record).
    pub announce: Option<Summary>,
    /// Lookups that failed (not found or error).
    pub failures: usize,
    /// The first failure's message, if any.
    pub first_failure: Option<String>,
}

/// Resources announced for the lookups: `(announcing node, id)`.
pub struct Announced {
    resources: Vec<(usize, String)>,
    announce_us: Vec<u64>,
}

/// Announces `count` resources from random nodes.
pub async fn announce<C: Cluster>(
    cluster: &C,
    count: usize,
    run: u32,
    rng: &mut impl Rng,
) -> Result<Announced, SimError> {
    let n = cluster.len();
    let mut resources = Vec::with_capacity(count);
    let mut announce_us = Vec::with_capacity(count);
    for i in 0..count {
        let node = rng.gen_range(0..n);
        let id = format!("r{run:08x}-{i}");
        let started = Instant::now();
        cluster.announce(node, KIND, &id).await?;
        announce_us.push(started.elapsed().as_micros() as u64);
        resources.push((node, id));
    }
    Ok(Announced {
        resources,
        announce_us,
    })
}

/// Looks every announced resource up from a random node other than its
/// announcer, one at a time.
pub async fn look_up<C: Cluster>(
    cluster: &C,
    mut announced: Announced,
    rng: &mut impl Rng,
) -> DhtFigures {
    let n = cluster.len();
    let mut lookup_us = Vec::with_capacity(announced.resources.len());
    let mut failures = 0;
    let mut first_failure = None;
    for (owner, id) in &announced.resources {
        let mut asker = rng.gen_range(0..n - 1);
        if asker >= *owner {
            asker += 1;
        }
        let started = Instant::now();
        match cluster.lookup(asker, KIND, id).await {
            Ok(()) => lookup_us.push(started.elapsed().as_micros() as u64),
            Err(e) => {
                failures += 1;
                first_failure.get_or_insert(e.to_string());
            }
        }
    }
    DhtFigures {
        lookup: summarize_us(&mut lookup_us),
        announce: summarize_us(&mut announced.announce_us),
        failures,
        first_failure,
    }
}
