//! Shared by the in-process integration tests: node start-up, addresses,
//! connecting and waiting on events with a bound.
//!
//! Tests start their nodes from [`NodeConfig::loopback`] (127.0.0.1, port 0,
//! mDNS off), and [`start`] refuses anything else, so nothing leaves the
//! machine.
#![allow(dead_code)]

use std::{
    future::Future,
    time::{Duration, Instant},
};

use conclave_node::{
    EventSubscription, Keypair, Multiaddr, Node, NodeConfig, NodeEvent, NodeHandle, PeerId,
};
use libp2p::multiaddr::Protocol;

/// Generous bound for anything awaited in a test: a failure must not hang.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Which of a node's listen addresses to dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// QUIC v1.
    Quic,
    /// TCP (Noise, Yamux).
    Tcp,
}

/// Logs to the test output when `RUST_LOG` is set (e.g. `RUST_LOG=debug`).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Starts a node with a fresh Ed25519 identity.
pub async fn start(config: NodeConfig) -> NodeHandle {
    assert!(!config.mdns, "tests must not send multicast");
    for addr in &config.listen {
        let loopback = addr
            .iter()
            .any(|p| p == Protocol::Ip4([127, 0, 0, 1].into()));
        assert!(loopback, "tests listen on 127.0.0.1 only, not {addr}");
    }
    within(
        "node start",
        Node::start(config, Keypair::generate_ed25519()),
    )
    .await
    .expect("node starts")
}

/// Starts `n` nodes with the same config.
pub async fn start_many(n: usize, config: &NodeConfig) -> Vec<NodeHandle> {
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        nodes.push(start(config.clone()).await);
    }
    nodes
}

/// The node's listen address on `transport`, ending in `/p2p/<id>`.
pub async fn addr_of(node: &NodeHandle, transport: Transport) -> Multiaddr {
    let addrs = node.listen_addrs().await.expect("listen addresses");
    addrs
        .iter()
        .find(|a| {
            let quic = a.iter().any(|p| p == Protocol::QuicV1);
            let ws = a
                .iter()
                .any(|p| matches!(p, Protocol::Ws(_) | Protocol::Wss(_)));
            let tcp = a.iter().any(|p| matches!(p, Protocol::Tcp(_)));
            match transport {
                Transport::Quic => quic,
                Transport::Tcp => tcp && !ws,
            }
        })
        .cloned()
        .unwrap_or_else(|| panic!("no {transport:?} listen address among {addrs:?}"))
}

/// `from` dials `to` over `transport` and waits until both sides have the
/// connection (`connect` returns when the dialler's side is up; the listener
/// may still be upgrading). Returns how long the dialler's `connect` took.
pub async fn connect(from: &NodeHandle, to: &NodeHandle, transport: Transport) -> Duration {
    let addr = addr_of(to, transport).await;
    let mut to_events = to.subscribe_events();
    let started = Instant::now();
    let peer = within("connect", from.connect(addr.clone()))
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let took = started.elapsed();
    assert_eq!(peer, to.peer_id(), "connect returns the dialled peer's id");
    let dialler = from.peer_id();
    if to.is_connected(dialler).await.expect("peers") {
        return took;
    }
    wait_event(
        &mut to_events,
        &format!("PeerConnected({dialler}) at the listener"),
        |e| match e {
            NodeEvent::PeerConnected(info) if info.peer_id == dialler => Some(()),
            _ => None,
        },
    )
    .await;
    took
}

/// Awaits `fut` for at most [`LIMIT`], panicking with `what` on timeout.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {LIMIT:?} waiting for {what}"))
}

/// Reads events until `pick` returns `Some`; panics after [`LIMIT`] or if the
/// node stops first.
pub async fn wait_event<T>(
    sub: &mut EventSubscription,
    what: &str,
    mut pick: impl FnMut(&NodeEvent) -> Option<T>,
) -> T {
    within(what, async {
        loop {
            match sub.recv().await {
                Some(event) => {
                    if let Some(found) = pick(&event) {
                        return found;
                    }
                }
                None => panic!("node stopped while waiting for {what}"),
            }
        }
    })
    .await
}

/// Waits for `PeerDisconnected` of `peer`.
pub async fn wait_disconnected(sub: &mut EventSubscription, peer: PeerId) {
    wait_event(sub, &format!("PeerDisconnected({peer})"), |e| match e {
        NodeEvent::PeerDisconnected { peer_id } if *peer_id == peer => Some(()),
        _ => None,
    })
    .await
}

/// The ids of a node's connected peers, sorted.
pub async fn peer_ids(node: &NodeHandle) -> Vec<PeerId> {
    let mut ids: Vec<PeerId> = node
        .peers()
        .await
        .expect("peers")
        .into_iter()
        .map(|p| p.peer_id)
        .collect();
    ids.sort();
    ids
}

/// Milliseconds with one decimal, for the printed figures.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
