//! Connection set-up time between nodes that never met: for every sample
//! and transport a fresh pair of in-process nodes, the first dialling the
//! second once (transports alternate). Each dial is timed from `connect`
//! until the dialler's side of the connection is up: the full handshake
//! (QUIC's TLS 1.3, or TCP + Noise + Yamux). Fresh pairs avoid measuring
//! reconnections, which the DHT may race with dials of its own.

use std::time::Duration;

use conclave_node::peers::TransportKind;

use crate::{
    cluster::{
        local::{LocalCluster, LocalOptions, LocalTransport},
        Cluster,
    },
    error::SimError,
    percentiles::{summarize_us, Summary},
};

/// Bound on each dial.
const DIAL_BOUND: Duration = Duration::from_secs(20);

/// Times `samples` first dials over each of `kinds` between fresh nodes of
/// `transport`'s stack. One extra untimed pair warms the process up.
pub async fn connect_times(
    transport: LocalTransport,
    kinds: &[TransportKind],
    samples: usize,
) -> Result<Vec<(TransportKind, Option<Summary>)>, SimError> {
    let size = conclave_node::NodeConfig::default().max_message_size;
    let options = LocalOptions {
        transport,
        max_message_size: size,
        byzantine_max_message_size: size,
        byzantine: vec![false, false],
        max_connections: 8,
        event_buffer: 64,
        envelopes: true,
    };
    let mut times: Vec<Vec<u64>> = vec![Vec::with_capacity(samples); kinds.len()];
    for sample in 0..=samples {
        for (k, &kind) in kinds.iter().enumerate() {
            let pair = LocalCluster::start(2, &options).await?;
            let result = tokio::time::timeout(DIAL_BOUND, pair.connect_over(0, 1, kind)).await;
            pair.stop().await;
            let took = result.map_err(|_| SimError::Timeout {
                what: format!("a {} dial", kind.as_str()),
                secs: DIAL_BOUND.as_secs(),
            })??;
            if sample > 0 {
                times[k].push(took.as_micros() as u64);
            }
        }
    }
    Ok(kinds
        .iter()
        .zip(times.iter_mut())
        .map(|(&kind, t)| (kind, summarize_us(t)))
        .collect())
}
