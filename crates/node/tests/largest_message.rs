//! A message of the largest size the sender accepts reaches the receiver
//! with the default config, as gossip and as a direct message, and its
//! sender is not penalised for it.

use conclave_node::{HandlerError, NodeConfig, NodeEvent, PeerId, ProtocolHandler};
use conclave_testkit::{connect, init_logging, start_many, wait_event, within, Transport};
use futures::{future::BoxFuture, FutureExt};

const TOPIC: &str = "big";
const PROTOCOL: &str = "/test/size/1";

/// Answers with the size of what it received.
struct SizeHandler;

impl ProtocolHandler for SizeHandler {
    fn name(&self) -> &str {
        "size"
    }

    fn protocol_id(&self) -> &str {
        PROTOCOL
    }

    fn handle_message(
        &self,
        _from: PeerId,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, HandlerError>> {
        async move { Ok((payload.len() as u64).to_le_bytes().to_vec()) }.boxed()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_of_the_largest_size_is_delivered_with_the_default_config() {
    init_logging();
    let config = NodeConfig::loopback();
    let max = config.max_message_size;
    let nodes = start_many(2, &config).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    connect(a, b, Transport::Quic).await;
    b.register_handler(std::sync::Arc::new(SizeHandler))
        .await
        .unwrap();

    let reply = within("direct", a.send_to(b.peer_id(), PROTOCOL, vec![7; max]))
        .await
        .expect("the largest direct message is accepted");
    assert_eq!(reply, (max as u64).to_le_bytes());
    assert_not_penalised(b, a.peer_id()).await;
    for node in &nodes {
        within("stop", node.stop()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gossip_message_of_the_largest_size_is_delivered_with_the_default_config() {
    init_logging();
    let config = NodeConfig::loopback();
    let max = config.max_message_size;
    let nodes = start_many(2, &config).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    connect(a, b, Transport::Quic).await;
    for node in [a, b] {
        node.subscribe(TOPIC).await.unwrap();
    }
    within(
        "topic peers",
        a.wait_for_topic_peers(TOPIC, 1, conclave_testkit::LIMIT),
    )
    .await
    .unwrap();
    let mut events = b.subscribe_events();
    within("publish", a.broadcast(TOPIC, vec![9; max]))
        .await
        .expect("publish");
    let got = wait_event(&mut events, "the largest gossip message", |e| match e {
        NodeEvent::Message(m) if m.topic == TOPIC => Some(m.data.len()),
        _ => None,
    })
    .await;
    assert_eq!(got, max);

    assert_not_penalised(b, a.peer_id()).await;
    for node in &nodes {
        within("stop", node.stop()).await.unwrap();
    }
}

/// `sender`'s gossipsub score at `observer` is not negative (each
/// rate-limit offence would cost it 5).
async fn assert_not_penalised(observer: &conclave_node::NodeHandle, sender: PeerId) {
    let info = observer
        .peers()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.peer_id == sender)
        .expect("sender connected");
    assert!(
        info.score.unwrap_or(0.0) >= 0.0,
        "the sender is not penalised: {info:?}"
    );
}
