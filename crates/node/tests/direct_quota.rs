//! Direct messages under a flood: three noisy peers keep as many requests
//! in progress as they can at a slow handler, and an honest peer's request
//! to the same node is still answered.

use std::sync::Arc;

use conclave_node::{HandlerError, NodeConfig, NodeError, PeerId, ProtocolHandler};
use conclave_testkit::{connect, init_logging, start_many, within, Transport};
use futures::{future::BoxFuture, FutureExt};
use tokio::sync::Semaphore;

const PROTOCOL: &str = "/test/session/1";

/// Answers `fast` at once; `slow` only once the test releases it.
struct SessionHandler {
    release: Arc<Semaphore>,
}

impl ProtocolHandler for SessionHandler {
    fn name(&self) -> &str {
        "session"
    }

    fn protocol_id(&self) -> &str {
        PROTOCOL
    }

    fn handle_message(
        &self,
        _from: PeerId,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, HandlerError>> {
        let release = self.release.clone();
        async move {
            if payload == b"slow" {
                let _ = release.acquire().await;
            }
            Ok(payload)
        }
        .boxed()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_session_message_is_answered_while_noisy_peers_flood() {
    init_logging();
    let nodes = start_many(5, &NodeConfig::loopback()).await;
    let (target, honest, noisy) = (&nodes[0], &nodes[1], &nodes[2..]);
    let release = Arc::new(Semaphore::new(0));
    target
        .register_handler(Arc::new(SessionHandler {
            release: release.clone(),
        }))
        .await
        .unwrap();
    for node in &nodes[1..] {
        connect(node, target, Transport::Quic).await;
    }

    // Each noisy peer keeps 30 slow requests in progress: 90, more than
    // the node handles at once.
    let mut flood = Vec::new();
    for node in noisy {
        for _ in 0..30 {
            let node = node.clone();
            let to = target.peer_id();
            flood.push(tokio::spawn(async move {
                node.send_to(to, PROTOCOL, b"slow".to_vec()).await
            }));
        }
    }
    // Wait until the flood is refused somewhere: the target is saturated
    // for the noisy peers.
    let (first_refusal, _, flood) = within(
        "a noisy request refused",
        futures::future::select_all(flood),
    )
    .await;
    let first_refusal = first_refusal.unwrap();
    assert!(
        matches!(first_refusal, Err(NodeError::Protocol(_))),
        "{first_refusal:?}"
    );

    let reply = within(
        "the honest request",
        honest.send_to(target.peer_id(), PROTOCOL, b"fast".to_vec()),
    )
    .await
    .expect("the honest peer's message is handled");
    assert_eq!(reply, b"fast");

    release.add_permits(1000);
    for task in flood {
        let _ = within("flood ends", task).await;
    }
    for node in &nodes {
        within("stop", node.stop()).await.unwrap();
    }
}
