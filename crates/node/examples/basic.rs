//! The node library in one page: start a node, connect to another,
//! broadcast on a gossip topic, announce a resource in the DHT and discover
//! the ones others announced, printing peer events as they happen.
//!
//! In one terminal start a node that waits for others:
//!
//! ```sh
//! cargo run -p conclave-node --example basic
//! ```
//!
//! It prints its address. In a second terminal give that address to another
//! run, which connects, says hello and looks for resources:
//!
//! ```sh
//! cargo run -p conclave-node --example basic -- /ip4/127.0.0.1/udp/…/quic-v1/p2p/12D3Koo…
//! ```
//!
//! Both use [`NodeConfig::loopback`] (127.0.0.1 only, no mDNS) so nothing
//! leaves the machine; a real peer starts from `NodeConfig::default()` and
//! its bootstrap list.

use std::time::Duration;

use conclave_node::{Keypair, Multiaddr, Node, NodeConfig, NodeEvent, NodeHandle};

/// The gossip topic both runs use.
const TOPIC: &str = "conclave-example";
/// The kind of resource each run announces in the DHT.
const KIND: &str = "example-greeter";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A fresh identity each run; an application keeps its keys (see
    // `ProfileNode`, which stores them in the OS keychain).
    let node = Node::start(NodeConfig::loopback(), Keypair::generate_ed25519()).await?;
    println!("peer id {}", node.peer_id());
    node.subscribe(TOPIC).await?;
    // Our own resource: any JSON, signed by this node, for ten minutes.
    let data = serde_json::json!({ "greeting": "hello from the basic example" });
    node.announce_resource(KIND, "greeter", data, Duration::from_secs(600))
        .await?;

    match std::env::args().nth(1) {
        None => wait_for_others(&node).await,
        Some(addr) => greet(&node, addr.parse()?).await,
    }
}

/// Prints our address, then every event, until Ctrl-C.
async fn wait_for_others(node: &NodeHandle) -> Result<(), Box<dyn std::error::Error>> {
    // Subscribe before printing the address, so no event is missed.
    let mut events = node.subscribe_events();
    for addr in node.listen_addrs().await? {
        println!("listening on {addr}");
    }
    println!("in another terminal: cargo run -p conclave-node --example basic -- ADDRESS");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = events.recv() => match event {
                Some(event) => print_event(&event),
                None => break, // the node stopped
            },
        }
    }
    node.stop().await?;
    Ok(())
}

/// Connects to `addr`, says hello on the topic, finds resources, and stops.
async fn greet(node: &NodeHandle, addr: Multiaddr) -> Result<(), Box<dyn std::error::Error>> {
    let peer = node.connect(addr).await?;
    println!("connected to {peer}");
    // Gossip reaches only peers subscribed to the topic: wait for one.
    node.wait_for_topic_peers(TOPIC, 1, Duration::from_secs(10))
        .await?;
    let id = node.broadcast(TOPIC, b"hello".to_vec()).await?;
    println!("broadcast message {id}");

    // The other node's resource reaches us through the DHT. It was
    // announced before we connected, so our own copy now goes to it and its
    // copy is found by asking it; retry briefly while the DHT settles.
    for _ in 0..50 {
        let found = node.discover_resources(KIND).await?;
        if found.iter().any(|r| r.provider == peer) {
            for r in &found {
                println!(
                    "resource {}/{} from {}: {}",
                    r.kind, r.id, r.provider, r.data
                );
            }
            node.stop().await?;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("{peer} announced no {KIND} resource that we could find").into())
}

fn print_event(event: &NodeEvent) {
    match event {
        NodeEvent::PeerConnected(peer) => {
            println!("peer connected {} over {:?}", peer.peer_id, peer.transport)
        }
        NodeEvent::PeerDisconnected { peer_id, .. } => println!("peer disconnected {peer_id}"),
        NodeEvent::Message(message) => println!(
            "message on {} from {}: {}",
            message.topic,
            message.from.map(|p| p.to_string()).unwrap_or_default(),
            String::from_utf8_lossy(&message.data)
        ),
        // A slow reader loses events rather than slowing the node down.
        NodeEvent::Lagged { missed } => println!("missed {missed} events"),
        _ => {}
    }
}
