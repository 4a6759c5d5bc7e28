//! Circuit relay v2 and hole punching on loopback: B reserves a slot on relay
//! R by itself, A reaches B through R (a relayed connection), and DCUtR then
//! upgrades it to a direct connection.

use conclave_node::{config::NodeConfig, peers::PathKind, NodeEvent};
use conclave_testkit::{addr_of, connect, start, wait_event, Transport};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_connection_then_hole_punched_to_direct() {
    conclave_testkit::init_logging();
    let relay = start(NodeConfig {
        relay_server: true,
        ..NodeConfig::loopback()
    })
    .await;
    let a = start(NodeConfig::loopback()).await;
    let b = start(NodeConfig::loopback()).await;

    let mut b_events = b.subscribe_events();
    connect(&b, &relay, Transport::Quic).await;
    let reserved_on = wait_event(&mut b_events, "B's relay reservation", |e| match e {
        NodeEvent::RelayReservation {
            relay,
            active: true,
        } => Some(*relay),
        _ => None,
    })
    .await;
    assert_eq!(reserved_on, relay.peer_id());
    let nat = b.nat_status().await.unwrap();
    assert_eq!(nat.relays, vec![relay.peer_id()]);
    assert!(nat
        .relayed_addrs
        .iter()
        .all(|a| a.to_string().contains("/p2p-circuit")));

    connect(&a, &relay, Transport::Quic).await;
    let circuit = addr_of(&relay, Transport::Quic)
        .await
        .with(libp2p::multiaddr::Protocol::P2pCircuit)
        .with(libp2p::multiaddr::Protocol::P2p(b.peer_id()));
    let mut a_events = a.subscribe_events();
    assert_eq!(a.connect(circuit).await.unwrap(), b.peer_id());
    let first = a
        .peers()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.peer_id == b.peer_id())
        .unwrap();
    assert_eq!(
        first.path,
        PathKind::Relayed,
        "the first connection goes through the relay"
    );

    // DCUtR upgrades it (it retries a failed attempt): a direct connection
    // to B appears.
    wait_event(&mut a_events, "a successful hole punch", |e| match e {
        NodeEvent::HolePunch {
            peer_id,
            success: true,
        } if *peer_id == b.peer_id() => Some(()),
        _ => None,
    })
    .await;
    let counted = a.nat_status().await.unwrap().hole_punch;
    assert!(
        counted.attempts >= 1 && counted.successes >= 1,
        "{counted:?}"
    );
    let peer = a
        .peers()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.peer_id == b.peer_id())
        .unwrap();
    assert!(
        peer.connections.iter().any(|c| c.path == PathKind::Direct),
        "a direct connection after the upgrade: {:?}",
        peer.connections
    );

    // Messages flow after the upgrade.
    for n in [&a, &b] {
        n.subscribe("after-upgrade").await.unwrap();
    }
    a.wait_for_topic_peers("after-upgrade", 1, conclave_testkit::LIMIT)
        .await
        .unwrap();
    let mut b_msgs = b.subscribe_events();
    a.broadcast("after-upgrade", b"hi".to_vec()).await.unwrap();
    wait_event(&mut b_msgs, "gossip after the upgrade", |e| match e {
        NodeEvent::Message(m) if m.data == b"hi" => Some(()),
        _ => None,
    })
    .await;
}
