//! Shared by the rooms' in-process tests: real nodes on 127.0.0.1 (port
//! 0), the real MCP servers from tests/mcp, and bounded waits on the
//! service's change watch.
#![allow(dead_code)]

use std::{future::Future, path::PathBuf, time::Duration};

use conclave_node::{Keypair, Multiaddr, Node, NodeConfig, NodeEvent, NodeHandle};
use conclave_rooms::{
    exec::{Approve, ExecConfig, McpServerConfig},
    service::{self, RoomsConfig, RoomsHandle},
};

/// Bound on anything a test waits for: a failure must not hang.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The path of an npm-installed MCP server binary.
pub fn server_bin(name: &str) -> String {
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
    bin.to_string_lossy().into_owned()
}

/// The everything server exposing `expose`.
pub fn everything(expose: &[&str]) -> ExecConfig {
    ExecConfig {
        mcp: vec![McpServerConfig {
            name: "everything".into(),
            command: server_bin("mcp-server-everything"),
            args: vec!["stdio".into()],
            expose: expose.iter().map(|s| s.to_string()).collect(),
            approve: Approve::Destructive,
        }],
        shell: vec![],
    }
}

/// Awaits `fut` for at most [`LIMIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {LIMIT:?} waiting for {what}"))
}

/// A loopback node.
pub async fn node() -> NodeHandle {
    within(
        "node start",
        Node::start(NodeConfig::loopback(), Keypair::generate_ed25519()),
    )
    .await
    .expect("node starts")
}

/// A node's QUIC address.
pub async fn addr_of(node: &NodeHandle) -> Multiaddr {
    node.listen_addrs()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.to_string().contains("quic-v1"))
        .expect("a QUIC address")
}

/// `from` dials `to`; both sides have the connection when this returns.
pub async fn connect(from: &NodeHandle, to: &NodeHandle) {
    let mut events = to.subscribe_events();
    let addr = addr_of(to).await;
    within("connect", from.connect(addr))
        .await
        .expect("connects");
    if to.is_connected(from.peer_id()).await.unwrap() {
        return;
    }
    let dialler = from.peer_id();
    within("the listener's side of the connection", async {
        loop {
            match events.recv().await {
                Some(NodeEvent::PeerConnected(info)) if info.peer_id == dialler => return,
                Some(_) => {}
                None => panic!("node stopped"),
            }
        }
    })
    .await
}

/// The rooms service on `node` with `exec`'s tools, state in memory.
pub async fn rooms(node: &NodeHandle, exec: ExecConfig) -> RoomsHandle {
    let config = RoomsConfig {
        exec,
        agent_name: format!("agent {}", node.peer_id()),
        ..RoomsConfig::default()
    };
    service::start(node.clone(), None, config)
        .await
        .expect("rooms start")
}

/// The rooms service on `node` with its state in `db`.
pub async fn rooms_in(
    node: &NodeHandle,
    exec: ExecConfig,
    db: conclave_node::store::Database,
) -> RoomsHandle {
    let config = RoomsConfig {
        exec,
        agent_name: format!("agent {}", node.peer_id()),
        ..RoomsConfig::default()
    };
    service::start(node.clone(), Some(db), config)
        .await
        .expect("rooms start")
}

/// Waits until `check` holds, re-checking whenever the service changes.
pub async fn until<F, Fut>(rooms: &RoomsHandle, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let mut changes = rooms.changes();
    within(what, async {
        loop {
            changes.borrow_and_update();
            if check().await {
                return;
            }
            changes.changed().await.expect("service running");
        }
    })
    .await
}
