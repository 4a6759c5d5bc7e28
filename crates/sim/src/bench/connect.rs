//! Connection set-up time: two fresh in-process nodes, one dialling the
//! other again and again over one transport. Each dial is timed from
//! `connect` until the dialler's side of the connection is up (the full
//! handshake: QUIC's TLS 1.3, or TCP + Noise + Yamux). Before the next dial
//! the connection is established and then closed on both sides.

use std::time::Duration;

use conclave_node::{peers::TransportKind, EventSubscription, NodeEvent, PeerId};

use crate::{
    cluster::{
        local::{LocalCluster, LocalOptions, LocalTransport},
        Cluster,
    },
    error::SimError,
    percentiles::{summarize_us, Summary},
};

/// Bound on each step of a sample.
const STEP_BOUND: Duration = Duration::from_secs(20);

/// Times `samples` dials over each of `kinds` between two nodes of
/// `transport`'s stack. One untimed dial per transport warms it up.
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
    };
    let pair = LocalCluster::start(2, &options).await?;
    let result = time_dials(&pair, kinds, samples).await;
    pair.stop().await;
    result
}

async fn time_dials(
    pair: &LocalCluster,
    kinds: &[TransportKind],
    samples: usize,
) -> Result<Vec<(TransportKind, Option<Summary>)>, SimError> {
    let mut out = Vec::new();
    for &kind in kinds {
        let mut times = Vec::with_capacity(samples);
        for i in 0..=samples {
            let took = dial_and_close(pair, kind).await?;
            if i > 0 {
                times.push(took.as_micros() as u64);
            }
        }
        out.push((kind, summarize_us(&mut times)));
    }
    Ok(out)
}

fn timeout(what: &str) -> SimError {
    SimError::Timeout {
        what: what.to_string(),
        secs: STEP_BOUND.as_secs(),
    }
}

/// Reads `events` until `pick` matches; `false` if the node stopped.
async fn wait_for(events: &mut EventSubscription, pick: impl Fn(&NodeEvent) -> bool) -> bool {
    while let Some(event) = events.recv().await {
        if pick(&event) {
            return true;
        }
    }
    false
}

async fn dial_and_close(pair: &LocalCluster, kind: TransportKind) -> Result<Duration, SimError> {
    let (a, b) = (pair.handle(0), pair.handle(1));
    let (a_id, b_id): (PeerId, PeerId) = (a.peer_id(), b.peer_id());
    let node_err = |node| move |source| SimError::Node { node, source };
    let mut b_events = b.subscribe_events();
    let took = tokio::time::timeout(STEP_BOUND, pair.connect_over(0, 1, kind))
        .await
        .map_err(|_| timeout("a dial"))??;

    // The listener may still be finishing its side: wait for it, so that
    // closing leaves nothing half-open behind.
    if !b.is_connected(a_id).await.map_err(node_err(1))? {
        let up = wait_for(
            &mut b_events,
            |e| matches!(e, NodeEvent::PeerConnected(info) if info.peer_id == a_id),
        );
        tokio::time::timeout(STEP_BOUND, up)
            .await
            .map_err(|_| timeout("the listener's side of the connection"))?;
    }
    a.disconnect(b_id).await.map_err(node_err(0))?;
    if b.is_connected(a_id).await.map_err(node_err(1))? {
        let down = wait_for(
            &mut b_events,
            |e| matches!(e, NodeEvent::PeerDisconnected { peer_id } if *peer_id == a_id),
        );
        tokio::time::timeout(STEP_BOUND, down)
            .await
            .map_err(|_| timeout("the listener's side to close"))?;
    }
    Ok(took)
}
