//! In-process integration tests: up to five real nodes on 127.0.0.1 (QUIC and
//! TCP, port 0, mDNS off) driven through the public `NodeHandle` API only.
//!
//! Synchronisation is by events (`subscribe_events`, `wait_for_topic_peers`,
//! handler callbacks), each bounded by a timeout; the only sleep waits for a
//! resource's wall-clock expiry. Figures are printed as `figure: ...` lines
//! (run with `--nocapture` to see them).

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use conclave_node::{
    error::{ConnectionError, InputError, ProtocolError},
    resources::ResourceError,
    HandlerError, NodeConfig, NodeError, NodeEvent, NodeHandle, PeerId, PeerInfo, ProtocolHandler,
};
use conclave_testkit::{
    addr_of, connect, init_logging, ms, peer_ids, start, start_many, wait_disconnected, wait_event,
    within, Transport, LIMIT,
};
use futures::{future::BoxFuture, FutureExt};
use tokio::sync::mpsc;

const NAMES: [&str; 5] = ["A", "B", "C", "D", "E"];

/// `from` dials `to` and both wait until identify has run on the new
/// connection (so each has the other in its DHT routing table).
async fn connect_identified(from: &NodeHandle, to: &NodeHandle, transport: Transport) -> Duration {
    let mut from_events = from.subscribe_events();
    let mut to_events = to.subscribe_events();
    let took = connect(from, to, transport).await;
    for (events, peer) in [
        (&mut from_events, to.peer_id()),
        (&mut to_events, from.peer_id()),
    ] {
        wait_event(events, &format!("identify of {peer}"), |e| match e {
            NodeEvent::PeerUpdated(info)
                if info.peer_id == peer && info.agent_version.is_some() =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    }
    took
}

async fn stop_all(nodes: &[NodeHandle]) {
    for node in nodes {
        within("stop", node.stop()).await.expect("stop");
    }
}

// ----- 1. gossip over a line of five -----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_reaches_all_five_nodes_over_a_line() {
    init_logging();
    const TOPIC: &str = "line-5";
    // The ends accept one connection and the middle nodes two, so Kademlia's
    // own lookups cannot add shortcuts: the topology stays A-B-C-D-E.
    let mut nodes = Vec::new();
    for i in 0..5 {
        let max_connections = if i == 0 || i == 4 { 1 } else { 2 };
        nodes.push(
            start(NodeConfig {
                max_connections,
                ..NodeConfig::loopback()
            })
            .await,
        );
    }
    for node in &nodes {
        assert!(
            node.subscribe(TOPIC).await.expect("subscribe"),
            "first subscription is new"
        );
    }
    for i in 0..4 {
        let transport = if i % 2 == 0 {
            Transport::Quic
        } else {
            Transport::Tcp
        };
        let took = connect(&nodes[i], &nodes[i + 1], transport).await;
        println!(
            "figure: line-5 connect {}-{} ({transport:?}) = {}",
            NAMES[i],
            NAMES[i + 1],
            ms(took)
        );
    }
    let neighbours = |i: usize| -> Vec<PeerId> {
        let mut ids = Vec::new();
        if i > 0 {
            ids.push(nodes[i - 1].peer_id());
        }
        if i < 4 {
            ids.push(nodes[i + 1].peer_id());
        }
        ids.sort();
        ids
    };
    for (i, node) in nodes.iter().enumerate() {
        let count = neighbours(i).len();
        node.wait_for_topic_peers(TOPIC, count, LIMIT)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", NAMES[i]));
    }
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(
            peer_ids(node).await,
            neighbours(i),
            "{} is connected to its neighbours only",
            NAMES[i]
        );
    }

    let data = b"hello along the line".to_vec();
    let mut receivers = Vec::new();
    for node in &nodes[1..] {
        let mut events = node.subscribe_events();
        let data = data.clone();
        receivers.push(tokio::spawn(async move {
            wait_event(&mut events, "the gossip message", |e| match e {
                NodeEvent::Message(m) if m.data == data => Some((Instant::now(), m.clone())),
                _ => None,
            })
            .await
        }));
    }
    let published = Instant::now();
    let id = nodes[0]
        .broadcast(TOPIC, data.clone())
        .await
        .expect("broadcast");
    let mut slowest = Duration::ZERO;
    for (k, receiver) in receivers.into_iter().enumerate() {
        let i = k + 1;
        let (at, msg) = receiver.await.expect("receiver task");
        assert_eq!(msg.topic, TOPIC);
        assert_eq!(msg.id, id, "same message id at {}", NAMES[i]);
        assert_eq!(msg.from, Some(nodes[0].peer_id()), "A is the author");
        assert_eq!(
            msg.via,
            nodes[i - 1].peer_id(),
            "{} got the message from its upstream neighbour {}",
            NAMES[i],
            NAMES[i - 1]
        );
        let took = at.saturating_duration_since(published);
        println!(
            "figure: line-5 gossip A->{} ({i} hops) = {}",
            NAMES[i],
            ms(took)
        );
        slowest = slowest.max(took);
    }
    println!("figure: line-5 gossip to all = {}", ms(slowest));

    let stats = nodes[0].stats().await.expect("stats");
    assert_eq!(
        (stats.gossip_published, stats.gossip_received),
        (1, 0),
        "A published once"
    );
    for (i, node) in nodes.iter().enumerate().skip(1) {
        let stats = node.stats().await.expect("stats");
        assert_eq!(
            stats.gossip_received, 1,
            "{} received it exactly once",
            NAMES[i]
        );
        assert_eq!(
            peer_ids(node).await,
            neighbours(i),
            "{} still in the line",
            NAMES[i]
        );
    }
    stop_all(&nodes).await;
}

// ----- 2. DHT resources across hops ------------------------------------------

/// Sleeps until the wall clock has passed `expires_at` (Unix seconds). This
/// waits for time itself, not for another task.
async fn sleep_past_unix(expires_at: u64) {
    let deadline = UNIX_EPOCH + Duration::from_secs(expires_at) + Duration::from_millis(50);
    let wait = deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    assert!(
        wait <= Duration::from_secs(3),
        "a 2 s TTL expires within 3 s, not {wait:?}"
    );
    tokio::time::sleep(wait).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dht_resources_are_found_across_the_line_and_expire() {
    init_logging();
    let nodes = start_many(5, &NodeConfig::loopback()).await;
    for i in 0..4 {
        let took = connect_identified(&nodes[i], &nodes[i + 1], Transport::Quic).await;
        println!(
            "figure: dht line connect {}-{} = {}",
            NAMES[i],
            NAMES[i + 1],
            ms(took)
        );
    }
    let (a, e) = (&nodes[0], &nodes[4]);
    let kind = "signer";

    let started = Instant::now();
    let long = within(
        "announce",
        e.announce_resource(
            kind,
            "e-1",
            serde_json::json!({"key": "e"}),
            Duration::from_secs(300),
        ),
    )
    .await
    .expect("announce");
    println!("figure: dht announce at E = {}", ms(started.elapsed()));
    assert_eq!(long.provider, e.peer_id());

    let started = Instant::now();
    let found = within("get_resource", a.get_resource(kind, "e-1"))
        .await
        .expect("A finds E's resource");
    println!("figure: dht get_resource at A = {}", ms(started.elapsed()));
    assert_eq!(found, long);

    let started = Instant::now();
    let listed = within("discover", a.discover_resources(kind))
        .await
        .expect("discover");
    println!(
        "figure: dht discover_resources at A = {}",
        ms(started.elapsed())
    );
    assert_eq!(listed, vec![long.clone()]);

    let missing = within("get_resource", a.get_resource(kind, "nobody")).await;
    assert!(
        matches!(
            missing,
            Err(NodeError::Resource(ResourceError::NotFound { .. }))
        ),
        "{missing:?}"
    );

    // A short-lived resource: present at first, gone once its time is up.
    let short = within(
        "announce",
        e.announce_resource(
            kind,
            "e-short",
            serde_json::json!(1),
            Duration::from_secs(2),
        ),
    )
    .await
    .expect("announce short");
    let found = within("get_resource", a.get_resource(kind, "e-short"))
        .await
        .expect("short one live");
    assert_eq!(found, short);
    let listed = within("discover", a.discover_resources(kind))
        .await
        .expect("discover");
    let ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["e-1", "e-short"]);

    sleep_past_unix(short.expires_at).await;
    for (name, node) in [("A", a), ("E", e)] {
        let gone = within("get_resource", node.get_resource(kind, "e-short")).await;
        assert!(
            matches!(
                gone,
                Err(NodeError::Resource(ResourceError::NotFound { .. }))
            ),
            "{name} after expiry: {gone:?}"
        );
    }
    let listed = within("discover", a.discover_resources(kind))
        .await
        .expect("discover");
    assert_eq!(listed, vec![long], "only the long-lived resource remains");
    stop_all(&nodes).await;
}

// ----- 3. direct messages and protocol handlers ------------------------------

const ECHO: &str = "/conclave-test/echo/1.0.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Connected(PeerId),
    Disconnected(PeerId),
}

/// Replies with `prefix` + payload, refuses empty payloads, and reports peer
/// lifecycle callbacks on a bounded channel (never blocking the event loop).
struct EchoHandler {
    prefix: Vec<u8>,
    seen: mpsc::Sender<Seen>,
}

impl ProtocolHandler for EchoHandler {
    fn name(&self) -> &str {
        "echo"
    }

    fn protocol_id(&self) -> &str {
        ECHO
    }

    fn handle_message(
        &self,
        _from: PeerId,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, HandlerError>> {
        let mut reply = self.prefix.clone();
        reply.extend_from_slice(&payload);
        async move {
            if payload.is_empty() {
                return Err(HandlerError("empty message".into()));
            }
            Ok(reply)
        }
        .boxed()
    }

    fn on_peer_connected(&self, peer: &PeerInfo) {
        let _ = self.seen.try_send(Seen::Connected(peer.peer_id));
    }

    fn on_peer_disconnected(&self, peer: PeerId) {
        let _ = self.seen.try_send(Seen::Disconnected(peer));
    }
}

async fn wait_seen(seen: &mut mpsc::Receiver<Seen>, want: Seen) {
    within(&format!("handler callback {want:?}"), async {
        loop {
            match seen.recv().await {
                Some(s) if s == want => return,
                Some(_) => continue,
                None => panic!("handler dropped while waiting for {want:?}"),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_reach_a_handler_registered_at_run_time() {
    init_logging();
    let nodes = start_many(2, &NodeConfig::loopback()).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let took = connect(a, b, Transport::Quic).await;
    println!("figure: direct connect A-B = {}", ms(took));

    // No handler yet: a clear remote refusal.
    match a.send_to(b.peer_id(), ECHO, b"hi".to_vec()).await {
        Err(NodeError::Protocol(ProtocolError::Remote { peer, reason })) => {
            assert_eq!(peer, b.peer_id());
            assert!(
                reason.contains("no handler") && reason.contains(ECHO),
                "{reason}"
            );
        }
        other => panic!("expected a Remote error, got {other:?}"),
    }

    // Registered after A connected.
    let (tx, mut seen) = mpsc::channel(16);
    let handler = Arc::new(EchoHandler {
        prefix: b"echo: ".to_vec(),
        seen: tx,
    });
    b.register_handler(handler.clone()).await.expect("register");
    assert!(
        matches!(b.register_handler(handler).await, Err(NodeError::Protocol(ProtocolError::HandlerExists(p))) if p == ECHO),
        "a second handler for the same protocol is refused"
    );
    assert_eq!(
        b.stats().await.expect("stats").handlers,
        vec![ECHO.to_string()]
    );

    let started = Instant::now();
    let reply = a
        .send_to(b.peer_id(), ECHO, b"hello".to_vec())
        .await
        .expect("echo reply");
    println!(
        "figure: direct send_to round trip = {}",
        ms(started.elapsed())
    );
    assert_eq!(reply, b"echo: hello");
    match a.send_to(b.peer_id(), ECHO, Vec::new()).await {
        Err(NodeError::Protocol(ProtocolError::Remote { reason, .. })) => {
            assert_eq!(reason, "empty message")
        }
        other => panic!("the handler's refusal reaches the sender, got {other:?}"),
    }
    match a
        .send_to(b.peer_id(), "/conclave-test/nothing/1.0.0", b"x".to_vec())
        .await
    {
        Err(NodeError::Protocol(ProtocolError::Remote { peer, reason })) => {
            assert_eq!(peer, b.peer_id());
            assert_eq!(
                reason,
                "no handler for protocol /conclave-test/nothing/1.0.0"
            );
        }
        other => panic!("expected a Remote error, got {other:?}"),
    }

    // Lifecycle callbacks reach the late-registered handler.
    let mut b_events = b.subscribe_events();
    within("disconnect", a.disconnect(b.peer_id()))
        .await
        .expect("disconnect");
    wait_seen(&mut seen, Seen::Disconnected(a.peer_id())).await;
    wait_disconnected(&mut b_events, a.peer_id()).await;
    connect(a, b, Transport::Tcp).await;
    wait_seen(&mut seen, Seen::Connected(a.peer_id())).await;
    assert_eq!(
        a.send_to(b.peer_id(), ECHO, b"again".to_vec())
            .await
            .expect("echo"),
        b"echo: again"
    );

    // Unregistered: the same send is refused, and unregistering twice fails.
    b.unregister_handler(ECHO).await.expect("unregister");
    match a.send_to(b.peer_id(), ECHO, b"hello".to_vec()).await {
        Err(NodeError::Protocol(ProtocolError::Remote { reason, .. })) => {
            assert_eq!(reason, format!("no handler for protocol {ECHO}"))
        }
        other => panic!("expected a Remote error after unregistering, got {other:?}"),
    }
    assert!(
        matches!(b.unregister_handler(ECHO).await, Err(NodeError::Protocol(ProtocolError::NoHandler(p))) if p == ECHO)
    );
    assert!(b.stats().await.expect("stats").handlers.is_empty());
    stop_all(&nodes).await;
}

// ----- 4. connection limits ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_max_two_connections_refuses_the_third_and_fourth() {
    init_logging();
    let limited = start(NodeConfig {
        max_connections: 2,
        ..NodeConfig::loopback()
    })
    .await;
    let others = start_many(4, &NodeConfig::loopback()).await;
    let mut limited_events = limited.subscribe_events();

    connect(&others[0], &limited, Transport::Quic).await;
    connect(&others[1], &limited, Transport::Tcp).await;
    assert_eq!(limited.peers().await.expect("peers").len(), 2);

    // The third dialler: either the dial fails, or the connection it got is
    // closed by the limited node.
    let third = &others[2];
    let mut third_events = third.subscribe_events();
    let addr = addr_of(&limited, Transport::Quic).await;
    match within("third connect", third.connect(addr)).await {
        Ok(peer) => {
            assert_eq!(peer, limited.peer_id());
            wait_disconnected(&mut third_events, limited.peer_id()).await;
            println!("third dialler: connected, then closed by the limited node");
        }
        Err(e) => {
            println!("third dialler: {e}");
            assert!(
                matches!(e, NodeError::Connection(ConnectionError::Dial { .. })),
                "third dialler: {e}"
            );
        }
    }
    assert!(!third.is_connected(limited.peer_id()).await.expect("peers"));
    assert!(!limited.is_connected(third.peer_id()).await.expect("peers"));

    // The limited node dialling out a fourth time is refused locally.
    let fourth = addr_of(&others[3], Transport::Tcp).await;
    match within("fourth connect", limited.connect(fourth.clone())).await {
        Err(NodeError::Connection(ConnectionError::Dial { addr, reason })) => {
            assert_eq!(addr, fourth);
            println!("limited node dialling out at its limit: {reason}");
            assert!(reason.contains("refused locally"), "{reason}");
            assert!(
                reason.contains("at most 2 established"),
                "the reason names the limit: {reason}"
            );
        }
        other => panic!("expected a Dial error, got {other:?}"),
    }

    // From the limited node's view there were never more than two peers.
    let mut connected = 0usize;
    let mut most = 0usize;
    while let Some(Some(event)) = tokio::task::unconstrained(limited_events.recv()).now_or_never() {
        match event {
            NodeEvent::PeerConnected(_) => connected += 1,
            NodeEvent::PeerDisconnected { .. } => connected = connected.saturating_sub(1),
            NodeEvent::Lagged { missed } => panic!("missed {missed} events"),
            _ => {}
        }
        most = most.max(connected);
    }
    assert_eq!(most, 2, "at most two peers at any time");
    let mut expected = vec![others[0].peer_id(), others[1].peer_id()];
    expected.sort();
    assert_eq!(peer_ids(&limited).await, expected);
    stop_all(&others).await;
    stop_all(&[limited]).await;
}

// ----- 5. bad input -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_changes_nothing() {
    init_logging();
    match NodeError::parse_multiaddr("not-a-multiaddr") {
        Err(e @ NodeError::Input(InputError::Multiaddr { .. })) => {
            let NodeError::Input(InputError::Multiaddr { input, .. }) = &e else {
                unreachable!()
            };
            assert_eq!(input, "not-a-multiaddr");
            assert!(e.to_string().contains("\"not-a-multiaddr\""), "{e}");
        }
        other => panic!("expected InvalidMultiaddr, got {other:?}"),
    }

    const MAX: usize = 1024;
    const TOPIC: &str = "bad-input";
    let config = NodeConfig {
        max_message_size: MAX,
        ..NodeConfig::loopback()
    };
    let nodes = start_many(2, &config).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    for node in &nodes {
        node.subscribe(TOPIC).await.expect("subscribe");
    }
    connect(a, b, Transport::Quic).await;
    a.wait_for_topic_peers(TOPIC, 1, LIMIT)
        .await
        .expect("B on the topic");

    let before_a = a.stats().await.expect("stats");
    let before_b = b.stats().await.expect("stats");
    let too_big = vec![7u8; MAX + 1];
    match a.broadcast(TOPIC, too_big.clone()).await {
        Err(NodeError::Input(InputError::MessageTooLarge { size, max })) => {
            assert_eq!((size, max), (MAX + 1, MAX))
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    match a
        .send_to(b.peer_id(), "/conclave-test/any/1.0.0", too_big)
        .await
    {
        Err(NodeError::Input(InputError::MessageTooLarge { size, max })) => {
            assert_eq!((size, max), (MAX + 1, MAX))
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    assert!(
        a.is_connected(b.peer_id()).await.expect("peers"),
        "still connected"
    );
    let after_a = a.stats().await.expect("stats");
    let after_b = b.stats().await.expect("stats");
    let counters = |s: &conclave_node::NodeStats| {
        (
            s.peers,
            s.gossip_published,
            s.gossip_received,
            s.direct_sent,
            s.direct_received,
        )
    };
    assert_eq!(counters(&after_a), counters(&before_a), "A unchanged");
    assert_eq!(counters(&after_b), counters(&before_b), "B unchanged");
    assert_eq!(counters(&after_a).0, 1);

    // Exactly the limit passes the size check (and reaches B, which has no handler).
    match a
        .send_to(b.peer_id(), "/conclave-test/any/1.0.0", vec![7u8; MAX])
        .await
    {
        Err(NodeError::Protocol(ProtocolError::Remote { .. })) => {}
        other => panic!("a payload of exactly max_message_size is sent, got {other:?}"),
    }
    assert_eq!(
        a.stats().await.expect("stats").direct_sent,
        before_a.direct_sent + 1
    );

    // Nobody listens on a port we bound and released.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("local addr").port()
    };
    let dead: conclave_node::Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}")
        .parse()
        .expect("valid multiaddr");
    match within("dial a closed port", a.connect(dead.clone())).await {
        Err(NodeError::Connection(ConnectionError::Dial { addr, reason })) => {
            assert_eq!(addr, dead);
            assert!(reason.to_lowercase().contains("refused"), "{reason}");
            println!("dial to closed port: {reason:?}");
        }
        other => panic!("expected a Dial error, got {other:?}"),
    }
    assert!(
        a.is_connected(b.peer_id()).await.expect("peers"),
        "still connected"
    );
    stop_all(&nodes).await;
}

// ----- 6. a lagging event subscriber -------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_gets_lagged() {
    init_logging();
    const TOPIC: &str = "lag";
    const MESSAGES: usize = 20;
    const BUFFER: usize = 4;
    let a = start(NodeConfig::loopback()).await;
    let b = start(NodeConfig {
        event_buffer: BUFFER,
        ..NodeConfig::loopback()
    })
    .await;
    for node in [&a, &b] {
        node.subscribe(TOPIC).await.expect("subscribe");
    }
    // B dials: the helper then waits on A's events, not on B's tiny buffer.
    connect(&b, &a, Transport::Quic).await;
    a.wait_for_topic_peers(TOPIC, 1, LIMIT)
        .await
        .expect("B on the topic");

    // `slow` never reads until the end; `reader` keeps up, one message at a time.
    let mut slow = b.subscribe_events();
    let mut reader = b.subscribe_events();
    for i in 0..MESSAGES {
        let data = format!("message {i}").into_bytes();
        a.broadcast(TOPIC, data.clone()).await.expect("broadcast");
        wait_event(&mut reader, &format!("message {i}"), |e| match e {
            NodeEvent::Message(m) if m.data == data => Some(()),
            _ => None,
        })
        .await;
    }

    match within("lagged", slow.recv()).await {
        Some(NodeEvent::Lagged { missed }) => {
            assert!(missed >= (MESSAGES - BUFFER) as u64, "missed {missed}");
        }
        other => panic!("expected Lagged, got {other:?}"),
    }
    // Then it continues with the newest events, the last message among them.
    let last = format!("message {}", MESSAGES - 1).into_bytes();
    let mut kept = 0;
    loop {
        match within("newest events", slow.recv()).await {
            Some(NodeEvent::Lagged { .. }) => panic!("lagged twice without new events"),
            Some(NodeEvent::Message(m)) => {
                kept += 1;
                if m.data == last {
                    break;
                }
            }
            Some(_) => kept += 1,
            None => panic!("node stopped"),
        }
        assert!(kept <= BUFFER, "at most {BUFFER} events kept");
    }
    stop_all(&[a, b]).await;
}

// ----- 7. stop -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_makes_later_calls_fail_with_stopped() {
    init_logging();
    let nodes = start_many(2, &NodeConfig::loopback()).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    connect(a, b, Transport::Tcp).await;
    let mut a_events = a.subscribe_events();
    let mut b_events = b.subscribe_events();
    let b_addr = addr_of(b, Transport::Quic).await;
    assert!(a.is_running());

    within("stop", a.stop()).await.expect("first stop succeeds");
    assert!(!a.is_running());
    wait_disconnected(&mut b_events, a.peer_id()).await;

    assert!(matches!(a.peers().await, Err(NodeError::Stopped)));
    assert!(matches!(a.stats().await, Err(NodeError::Stopped)));
    assert!(matches!(a.connect(b_addr).await, Err(NodeError::Stopped)));
    assert!(matches!(
        a.broadcast("t", b"x".to_vec()).await,
        Err(NodeError::Stopped)
    ));
    assert!(matches!(
        a.send_to(b.peer_id(), ECHO, b"x".to_vec()).await,
        Err(NodeError::Stopped)
    ));
    assert!(matches!(a.subscribe("t").await, Err(NodeError::Stopped)));
    assert!(matches!(
        a.get_resource("signer", "x").await,
        Err(NodeError::Stopped)
    ));
    assert!(matches!(a.stop().await, Err(NodeError::Stopped)));

    // An event subscription ends (`None`) once the node has stopped, and one
    // taken afterwards ends at once.
    within("the end of A's events", async {
        while a_events.recv().await.is_some() {}
    })
    .await;
    assert!(within("late subscription", a.subscribe_events().recv())
        .await
        .is_none());
    assert!(b.is_running(), "B is unaffected");
    stop_all(&nodes[1..]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_closes_quic_connections_so_peers_learn_at_once() {
    init_logging();
    let nodes = start_many(2, &NodeConfig::loopback()).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    connect(a, b, Transport::Quic).await;
    let mut b_events = b.subscribe_events();
    let stopped = Instant::now();
    within("stop", a.stop()).await.expect("stop succeeds");
    // A QUIC connection that was only dropped stays up at its peer until it
    // idles out (10 s and more); a closed one ends at once. The bound is
    // below that idle timeout but leaves room for a machine busy with the
    // other tests of this file (3 s was missed once under that load).
    tokio::time::timeout(
        Duration::from_secs(8),
        wait_disconnected(&mut b_events, a.peer_id()),
    )
    .await
    .expect("B learns of A's stop before any idle timeout could tell it");
    println!(
        "B saw A leave {} after A's stop began",
        ms(stopped.elapsed())
    );
    assert!(!b.is_connected(a.peer_id()).await.unwrap());
    stop_all(&nodes[1..]).await;
}
