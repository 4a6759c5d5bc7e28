//! The PQ identity exchange costs a reconnecting peer's record one
//! verification, not one per connection.

use conclave_node::{metrics, NodeConfig, NodeEvent, NodeHandle};
use conclave_testkit::{
    connect, init_logging, start_many, wait_disconnected, wait_event, within, Transport,
};

/// PQ identity records whose signatures `node` checked.
fn verifications(node: &NodeHandle) -> u64 {
    metrics::render(&node.registry())
        .lines()
        .find_map(|l| l.strip_prefix("conclave_pq_verifications_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_record_presented_again_is_not_verified_again() {
    init_logging();
    let nodes = start_many(2, &NodeConfig::loopback()).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let rounds = 5;
    for round in 0..rounds {
        let mut events = a.subscribe_events();
        connect(b, a, Transport::Quic).await;
        let peer = b.peer_id();
        let verified = a
            .peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.peer_id == peer && p.pq_identity);
        if !verified {
            wait_event(&mut events, "B's PQ identity at A", |e| match e {
                NodeEvent::PeerUpdated(info) if info.peer_id == peer && info.pq_identity => {
                    Some(())
                }
                _ => None,
            })
            .await;
        }
        assert!(a.pq_record(&peer).is_some(), "round {round}");
        let mut events = a.subscribe_events();
        within("disconnect", b.disconnect(a.peer_id()))
            .await
            .unwrap();
        if a.is_connected(peer).await.unwrap() {
            wait_disconnected(&mut events, peer).await;
        }
    }
    let checked = verifications(a);
    println!("figure: PQ records verified at A over {rounds} connections of B = {checked}");
    // The first connection brings B's record twice (its request and its
    // answer), which may both be checked; later ones none.
    assert!((1..=2).contains(&checked), "{checked} verifications");
    for node in &nodes {
        within("stop", node.stop()).await.unwrap();
    }
}
