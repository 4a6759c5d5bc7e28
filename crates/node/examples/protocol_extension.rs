//! A protocol of one's own on the node: a request/response protocol that
//! answers text in capitals, registered while the node runs, with the peer
//! callbacks a handler gets.
//!
//! Start the side that answers (it prints its address):
//!
//! ```sh
//! cargo run -p conclave-node --example protocol_extension
//! ```
//!
//! and ask it from a second terminal:
//!
//! ```sh
//! cargo run -p conclave-node --example protocol_extension -- /ip4/127.0.0.1/udp/…/p2p/12D3Koo… "hello there"
//! ```
//!
//! Requests and replies travel as direct messages in signed envelopes: the
//! handler learns who asked (`from`) and the asker checks who answered.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use conclave_node::{
    HandlerError, Keypair, Node, NodeConfig, NodeHandle, PeerId, PeerInfo, ProtocolHandler,
};
use futures::future::BoxFuture;

/// Protocol ids are paths with a version, so a changed protocol gets a new one.
const PROTOCOL: &str = "/conclave-example/uppercase/1.0.0";
/// The longest request the handler reads; anything a stranger sends must be
/// bounded (the node itself caps direct messages at its message size).
const MAX_REQUEST: usize = 4096;

/// Answers text in capitals and keeps count of the peers it was told about.
#[derive(Default)]
struct Uppercase {
    connected: AtomicUsize,
}

impl ProtocolHandler for Uppercase {
    fn name(&self) -> &str {
        "uppercase example"
    }

    fn protocol_id(&self) -> &str {
        PROTOCOL
    }

    fn handle_message(
        &self,
        from: PeerId,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, HandlerError>> {
        // The future must not borrow `self`: the node runs it on its own task.
        Box::pin(async move {
            if payload.len() > MAX_REQUEST {
                return Err(HandlerError(format!(
                    "requests are at most {MAX_REQUEST} bytes; send a shorter text"
                )));
            }
            let text = String::from_utf8(payload)
                .map_err(|_| HandlerError("the request is not UTF-8 text; send text".into()))?;
            println!("request from {from}: {text}");
            Ok(text.to_uppercase().into_bytes())
        })
    }

    // Callbacks run on the node's event loop: keep them short, never block.
    fn on_peer_connected(&self, peer: &PeerInfo) {
        let now = self.connected.fetch_add(1, Ordering::Relaxed) + 1;
        println!("peer connected {} ({now} connected)", peer.peer_id);
    }

    fn on_peer_updated(&self, peer: &PeerInfo) {
        if let Some(agent) = &peer.agent_version {
            println!("peer updated {}: {agent}", peer.peer_id);
        }
    }

    fn on_peer_disconnected(&self, peer: PeerId) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
        println!("peer disconnected {peer}");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let node = Node::start(NodeConfig::loopback(), Keypair::generate_ed25519()).await?;
    let mut args = std::env::args().skip(1);
    match args.next() {
        None => serve(&node).await,
        Some(addr) => {
            let text = args.next().unwrap_or_else(|| "hello".into());
            ask(&node, addr.parse()?, text).await
        }
    }
}

/// Registers the handler on the running node and answers until Ctrl-C.
async fn serve(node: &NodeHandle) -> Result<(), Box<dyn std::error::Error>> {
    node.register_handler(Arc::new(Uppercase::default()))
        .await?;
    for addr in node.listen_addrs().await? {
        println!("listening on {addr}");
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = node.wait_stopped() => {}
    }
    node.stop().await?;
    Ok(())
}

/// Connects to the serving node and asks it once.
async fn ask(
    node: &NodeHandle,
    addr: conclave_node::Multiaddr,
    text: String,
) -> Result<(), Box<dyn std::error::Error>> {
    let peer = node.connect(addr).await?;
    // A peer without the handler answers with an error naming the protocol.
    let reply = node.send_to(peer, PROTOCOL, text.into_bytes()).await?;
    println!("reply from {peer}: {}", String::from_utf8_lossy(&reply));
    node.stop().await?;
    Ok(())
}
