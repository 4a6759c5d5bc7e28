//! What the integration tests and benchmarks of every crate share: nodes
//! that stay on 127.0.0.1, connecting them, waits that are bounded (a
//! failure must not hang; nothing sleeps), logging to the test output and
//! the npm-installed MCP servers of `tests/mcp`.
//!
//! A dev-dependency only.

use std::{
    future::Future,
    path::PathBuf,
    time::{Duration, Instant},
};

use conclave_node::{
    EventSubscription, Keypair, Multiaddr, Node, NodeConfig, NodeEvent, NodeHandle, PeerId,
};
use libp2p::multiaddr::Protocol;

/// The bound on anything a test awaits.
pub const LIMIT: Duration = Duration::from_secs(60);

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

/// Awaits `fut` for at most [`LIMIT`], panicking with `what` on timeout.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {LIMIT:?} waiting for {what}"))
}

/// Starts a node on `config` with a fresh Ed25519 identity; refuses a
/// config that would send multicast or listen beyond 127.0.0.1.
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

/// A node on [`NodeConfig::loopback`].
pub async fn loopback_node() -> NodeHandle {
    start(NodeConfig::loopback()).await
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

/// Every node dials every later one over QUIC (a full mesh).
pub async fn connect_all(nodes: &[NodeHandle]) {
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            connect(a, b, Transport::Quic).await;
        }
    }
}

/// `from` dials `to` and waits until both sides hold each other's PQ
/// identity records (sealing to a peer needs its record).
pub async fn connect_sealed(from: &NodeHandle, to: &NodeHandle) {
    let mut ours = from.subscribe_events();
    let mut theirs = to.subscribe_events();
    connect(from, to, Transport::Quic).await;
    let (a, b) = (from.peer_id(), to.peer_id());
    within("PQ identity records on both sides", async {
        // Each record arrives with a PeerUpdated event on its side.
        while from.pq_record(&b).is_none() || to.pq_record(&a).is_none() {
            tokio::select! {
                e = ours.recv() => assert!(e.is_some(), "node stopped"),
                e = theirs.recv() => assert!(e.is_some(), "node stopped"),
            }
        }
    })
    .await;
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

/// The absolute path of an npm-installed MCP server binary of `tests/mcp`.
pub fn mcp_server_bin(name: &str) -> String {
    let bin: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "..",
        "tests",
        "mcp",
        "node_modules",
        ".bin",
        name,
    ]
    .iter()
    .collect();
    assert!(
        bin.exists(),
        "{} is missing: run scripts/setup.sh (npm ci in tests/mcp)",
        bin.display()
    );
    bin.canonicalize()
        .expect("an existing path")
        .to_string_lossy()
        .into_owned()
}
