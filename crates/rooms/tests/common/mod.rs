//! Shared by the rooms' in-process tests: real nodes on 127.0.0.1 (port
//! 0), the real MCP servers from tests/mcp, and bounded waits on the
//! service's change watch.
#![allow(dead_code)]

use std::future::Future;

use conclave_node::NodeHandle;
use conclave_rooms::{
    exec::{Approve, ExecConfig, McpServerConfig},
    service::{self, RoomsConfig, RoomsHandle},
};
use conclave_testkit::Transport;
pub use conclave_testkit::{init_logging, loopback_node, mcp_server_bin, within};

/// `from` dials `to`; both sides have the connection when this returns.
pub async fn connect(from: &NodeHandle, to: &NodeHandle) {
    conclave_testkit::connect(from, to, Transport::Quic).await;
}

/// The everything server exposing `expose`.
pub fn everything(expose: &[&str]) -> ExecConfig {
    ExecConfig {
        mcp: vec![McpServerConfig {
            name: "everything".into(),
            command: mcp_server_bin("mcp-server-everything"),
            args: vec!["stdio".into()],
            expose: expose.iter().map(|s| s.to_string()).collect(),
            approve: Approve::Destructive,
        }],
        shell: vec![],
    }
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
