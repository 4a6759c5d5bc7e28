//! The event loop: the one task that owns the swarm.
//!
//! It `select!`s over swarm events, commands from [`NodeHandle`]s, replies
//! from handler tasks and a maintenance timer. Requests that need the network
//! to answer are parked in `pending_*` maps keyed by connection, request or
//! query id, each bounded.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    num::NonZeroUsize,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use libp2p::{
    core::transport::ListenerId,
    gossipsub::{self, IdentTopic, TopicHash},
    identify, kad, mdns,
    metrics::Recorder,
    multiaddr::Protocol,
    ping, request_response,
    swarm::{
        dial_opts::{DialOpts, PeerCondition},
        ConnectionId, DialError, SwarmEvent,
    },
    Multiaddr, PeerId, StreamProtocol, Swarm,
};
use lru::LruCache;
use tokio::{
    sync::{broadcast, mpsc, Semaphore},
    task::JoinHandle,
};

use crate::{
    behaviour::{Behaviour, BehaviourEvent},
    command::{Command, PolicyChange, Reply},
    config::NodeConfig,
    error::NodeError,
    events::{DiscoverySource, GossipMessage, NodeEvent},
    gate::rate::KeyedLimiter,
    gossip::scoring,
    identity::{envelope::MessageKind, PqIdentityRecord},
    metrics::NodeMetrics,
    nat::{is_relayed, NatState, RELAY_HOP_PROTOCOL},
    peers::{ConnectionInfo, MessageCounters, PeerInfo, PeerTable},
    protocol::{DirectRequest, DirectResponse, PqIdentityMessage, ProtocolHandler},
    stats::{NodeStats, TopicStats},
    trust::Trust,
};

/// Direct messages awaiting a reply, at most.
const MAX_PENDING_REQUESTS: usize = 1024;
/// DHT queries in flight, at most.
const MAX_PENDING_QUERIES: usize = 256;
/// Callers waiting for topic peers, at most.
const MAX_TOPIC_WAITS: usize = 256;
/// Inbound direct messages handled concurrently; more are refused as busy.
const MAX_INBOUND_HANDLING: usize = 64;
/// Gossip envelopes verified concurrently; beyond this they are ignored.
const MAX_PENDING_VERIFICATIONS: usize = 256;
/// Inbound streams handled concurrently per handler.
const MAX_INBOUND_STREAMS: usize = 64;
/// Longest topic name.
const MAX_TOPIC_LEN: usize = 256;
/// How often the loop checks its connection floor.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);
/// Longest wait at shutdown for connections to close cleanly.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// How long a failed address is left alone before it is dialled again: 5 s,
/// doubling with each further failure, at most 5 minutes.
fn dial_backoff(failures: u32) -> Duration {
    Duration::from_secs(5 * 2u64.saturating_pow(failures.saturating_sub(1)).min(60))
}

/// Replies from handler tasks back to the event loop.
pub(crate) enum Internal {
    Respond {
        channel: request_response::ResponseChannel<DirectResponse>,
        response: DirectResponse,
    },
    /// Boxed: verdicts carry whole payloads and are the rarer variant on
    /// busy request/response nodes.
    GossipVerdict(Box<GossipVerdict>),
}

/// The outcome of verifying one gossip message off the event loop.
pub(crate) struct GossipVerdict {
    pub message_id: libp2p::gossipsub::MessageId,
    pub propagation_source: PeerId,
    pub topic: String,
    pub source: Option<PeerId>,
    pub verdict:
        Result<crate::identity::envelope::Verified, crate::identity::envelope::EnvelopeError>,
}

struct RegisteredHandler {
    handler: Arc<dyn ProtocolHandler>,
    stream_task: Option<JoinHandle<()>>,
}

impl Drop for RegisteredHandler {
    fn drop(&mut self) {
        if let Some(task) = self.stream_task.take() {
            task.abort();
        }
    }
}

/// Channels and state handed to the loop at start.
pub(crate) struct LoopParts {
    pub swarm: Swarm<Behaviour>,
    pub commands: mpsc::Receiver<Command>,
    pub events: broadcast::Sender<NodeEvent>,
    pub config: NodeConfig,
    pub metrics: NodeMetrics,
    pub libp2p_metrics: libp2p::metrics::Metrics,
    pub listeners: HashMap<ListenerId, Multiaddr>,
    pub trust: Arc<Trust>,
}

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    internal_tx: mpsc::Sender<Internal>,
    internal_rx: mpsc::Receiver<Internal>,
    events: broadcast::Sender<NodeEvent>,
    config: NodeConfig,
    metrics: NodeMetrics,
    libp2p_metrics: libp2p::metrics::Metrics,
    peers: PeerTable,
    address_book: LruCache<PeerId, Vec<Multiaddr>>,
    /// Addresses whose last dial failed: when, and how many times in a row.
    failed_addrs: LruCache<Multiaddr, (Instant, u32)>,
    nat: NatState,
    handlers: BTreeMap<String, RegisteredHandler>,
    streams: libp2p_stream::Control,
    inbound_permits: Arc<Semaphore>,
    pending_listeners: HashMap<ListenerId, Multiaddr>,
    listen_failure: Option<NodeError>,
    listening_waiters: Vec<Reply<Vec<Multiaddr>>>,
    pending_dials: HashMap<ConnectionId, (Multiaddr, Reply<PeerId>)>,
    pending_disconnects: HashMap<PeerId, Vec<Reply<()>>>,
    pending_requests: HashMap<request_response::OutboundRequestId, (PeerId, Reply<Vec<u8>>)>,
    pending_puts: HashMap<kad::QueryId, Reply<()>>,
    pending_gets: HashMap<kad::QueryId, Reply<kad::Record>>,
    pending_providing: HashMap<kad::QueryId, Reply<()>>,
    pending_providers: HashMap<kad::QueryId, (HashSet<PeerId>, Reply<HashSet<PeerId>>)>,
    topic_waits: Vec<(TopicHash, usize, Reply<()>)>,
    subscribed: BTreeSet<String>,
    trust: Arc<Trust>,
    /// Gossip envelopes being verified off the loop, at most.
    verify_permits: Arc<Semaphore>,
    /// Gossip validation outcomes per forwarding peer (bounded).
    message_counters: LruCache<PeerId, MessageCounters>,
    /// Messages per (peer, topic) per second.
    message_rate: KeyedLimiter<(PeerId, String)>,
    /// Message bytes per peer per second.
    byte_rate: KeyedLimiter<PeerId>,
    /// Rate-limit violations per peer, which lower its application score.
    offences: LruCache<PeerId, u32>,
}

impl EventLoop {
    pub fn new(parts: LoopParts) -> Self {
        let LoopParts {
            mut swarm,
            commands,
            events,
            config,
            metrics,
            libp2p_metrics,
            listeners,
            trust,
        } = parts;
        let (internal_tx, internal_rx) = mpsc::channel(MAX_INBOUND_HANDLING);
        let streams = swarm.behaviour_mut().streams.new_control();
        let book_size = NonZeroUsize::new(config.address_book_size).unwrap_or(NonZeroUsize::MIN);
        Self {
            swarm,
            commands,
            internal_tx,
            internal_rx,
            events,
            metrics,
            libp2p_metrics,
            peers: PeerTable::new(),
            address_book: LruCache::new(book_size),
            failed_addrs: LruCache::new(book_size),
            nat: NatState::default(),
            handlers: BTreeMap::new(),
            streams,
            inbound_permits: Arc::new(Semaphore::new(MAX_INBOUND_HANDLING)),
            pending_listeners: listeners,
            listen_failure: None,
            listening_waiters: Vec::new(),
            pending_dials: HashMap::new(),
            pending_disconnects: HashMap::new(),
            pending_requests: HashMap::new(),
            pending_puts: HashMap::new(),
            pending_gets: HashMap::new(),
            pending_providing: HashMap::new(),
            pending_providers: HashMap::new(),
            topic_waits: Vec::new(),
            subscribed: BTreeSet::new(),
            trust,
            verify_permits: Arc::new(Semaphore::new(MAX_PENDING_VERIFICATIONS)),
            message_counters: LruCache::new(book_size),
            message_rate: KeyedLimiter::new(config.max_messages_per_sec, config.address_book_size),
            byte_rate: KeyedLimiter::new(config.max_bytes_per_sec, config.address_book_size),
            offences: LruCache::new(book_size),
            config,
        }
    }

    /// Runs until a `Shutdown` command arrives or every handle is gone.
    pub async fn run(mut self) {
        let mut maintenance = tokio::time::interval(MAINTENANCE_INTERVAL);
        maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shutdown_reply = loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown { reply }) => break Some(reply),
                    Some(command) => self.on_command(command),
                    None => break None,
                },
                Some(internal) = self.internal_rx.recv() => self.on_internal(internal),
                _ = maintenance.tick() => self.maintain(),
            }
        };
        tracing::info!("node stopping");
        // Refuse further commands and end event subscriptions before `stop`
        // returns, so that `is_running` is false and `recv` yields `None` then.
        self.commands.close();
        self.handlers.clear();
        self.close_connections().await;
        drop(self.swarm);
        drop(self.events);
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    /// Closes every connection and drives the swarm until they are closed (or
    /// [`SHUTDOWN_GRACE`] passed), so peers learn at once that we left: a
    /// QUIC connection merely dropped looks alive to them until it idles out,
    /// and a relay's clients would keep a dead reservation that long.
    async fn close_connections(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        let grace = tokio::time::sleep(SHUTDOWN_GRACE);
        tokio::pin!(grace);
        while self.swarm.connected_peers().next().is_some() {
            tokio::select! {
                _ = &mut grace => break,
                // Nobody listens any more: the events only need polling.
                _ = self.swarm.select_next_some() => {}
            }
        }
    }

    fn emit(&self, event: NodeEvent) {
        // An error only means nobody listens right now.
        let _ = self.events.send(event);
    }

    fn peer_info(&self, peer: &PeerId) -> Option<PeerInfo> {
        let score = self.swarm.behaviour().gossipsub.peer_score(peer);
        let counters = self
            .message_counters
            .peek(peer)
            .copied()
            .unwrap_or_default();
        self.peers.get(peer)?.info(*peer, score, counters)
    }

    fn local_listen_addrs(&self) -> Vec<Multiaddr> {
        let me = *self.swarm.local_peer_id();
        let mut addrs: Vec<Multiaddr> = self
            .swarm
            .listeners()
            .map(|a| a.clone().with_p2p(me).unwrap_or_else(|a| a))
            .collect();
        // QUIC first: it is the transport dialled first.
        addrs.sort_by_key(|a| {
            crate::peers::TransportKind::of(a) != crate::peers::TransportKind::Quic
        });
        addrs
    }

    // ----- commands -------------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::WaitListening { reply } => {
                self.listening_waiters.push(reply);
                self.answer_listening_waiters();
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(Ok(self.local_listen_addrs()));
            }
            Command::Connect { addr, reply } => self.connect(addr, reply),
            Command::Disconnect { peer, reply } => {
                if !self.swarm.is_connected(&peer) {
                    let _ = reply.send(Err(NodeError::NotConnected(peer)));
                    return;
                }
                let _ = self.swarm.disconnect_peer_id(peer);
                self.pending_disconnects
                    .entry(peer)
                    .or_default()
                    .push(reply);
            }
            Command::Peers { reply } => {
                let mut peers: Vec<PeerInfo> = self
                    .peers
                    .keys()
                    .filter_map(|p| self.peer_info(p))
                    .collect();
                peers.sort_by_key(|p| p.peer_id.to_string());
                let _ = reply.send(Ok(peers));
            }
            Command::SendTo {
                peer,
                protocol,
                payload,
                reply,
            } => self.send_direct(peer, protocol, payload, reply),
            Command::Broadcast { topic, data, reply } => {
                let _ = reply.send(self.publish(&topic, data));
            }
            Command::Subscribe { topic, reply } => {
                let _ = reply.send(self.subscribe(&topic));
            }
            Command::Unsubscribe { topic, reply } => {
                let removed = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .unsubscribe(&IdentTopic::new(&topic));
                self.subscribed.remove(&topic);
                let _ = reply.send(Ok(removed));
            }
            Command::WaitTopicPeers {
                topic,
                count,
                reply,
            } => {
                let hash = IdentTopic::new(topic).hash();
                if self.topic_peer_count(&hash) >= count {
                    let _ = reply.send(Ok(()));
                } else if self.topic_waits.len() >= MAX_TOPIC_WAITS {
                    let _ = reply.send(Err(NodeError::Timeout {
                        what: "a free slot for topic waits".into(),
                        secs: 0,
                    }));
                } else {
                    self.topic_waits.push((hash, count, reply));
                }
            }
            Command::RegisterHandler { handler, reply } => {
                let _ = reply.send(self.register_handler(handler));
            }
            Command::UnregisterHandler { protocol, reply } => {
                let result = match self.handlers.remove(&protocol) {
                    Some(_) => Ok(()),
                    None => Err(NodeError::NoHandler(protocol)),
                };
                let _ = reply.send(result);
            }
            Command::PutRecord { record, reply } => {
                if self.queries_full(&reply) {
                    return;
                }
                match self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .put_record(record, kad::Quorum::One)
                {
                    Ok(id) => {
                        self.pending_puts.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NodeError::Dht {
                            op: "put",
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::GetRecord { key, reply } => {
                if self.queries_full(&reply) {
                    return;
                }
                let id = self.swarm.behaviour_mut().kad.get_record(key);
                self.pending_gets.insert(id, reply);
            }
            Command::StartProviding { key, reply } => {
                if self.queries_full(&reply) {
                    return;
                }
                match self.swarm.behaviour_mut().kad.start_providing(key) {
                    Ok(id) => {
                        self.pending_providing.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NodeError::Dht {
                            op: "start providing",
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::GetProviders { key, reply } => {
                if self.queries_full(&reply) {
                    return;
                }
                let id = self.swarm.behaviour_mut().kad.get_providers(key);
                self.pending_providers.insert(id, (HashSet::new(), reply));
            }
            Command::UpdatePolicy { change, reply } => {
                let connected: Vec<PeerId> = self.peers.keys().copied().collect();
                let gate = &mut self.swarm.behaviour_mut().gate;
                let result = gate
                    .update(
                        |policy| match change {
                            PolicyChange::Allow(peer) => {
                                policy.deny.remove(&peer);
                                policy.allow.insert(peer);
                            }
                            PolicyChange::Deny(peer) => {
                                policy.allow.remove(&peer);
                                policy.deny.insert(peer);
                            }
                            PolicyChange::Unlist(peer) => {
                                policy.allow.remove(&peer);
                                policy.deny.remove(&peer);
                            }
                            PolicyChange::Private(private) => policy.private = private,
                            PolicyChange::None => {}
                        },
                        connected.into_iter(),
                    )
                    .map(|()| gate.policy().clone())
                    .map_err(|e| NodeError::Startup(e.to_string()));
                let _ = reply.send(result);
            }
            Command::Stats { reply } => {
                let _ = reply.send(Ok(self.stats()));
            }
            Command::Nat { reply } => {
                let _ = reply.send(Ok(self.nat.status()));
            }
            Command::Shutdown { .. } => unreachable!("handled in run"),
        }
    }

    fn queries_full<T>(&self, reply: &Reply<T>) -> bool {
        let in_flight = self.pending_puts.len()
            + self.pending_gets.len()
            + self.pending_providing.len()
            + self.pending_providers.len();
        let _ = reply;
        in_flight >= MAX_PENDING_QUERIES
    }

    fn connect(&mut self, addr: Multiaddr, reply: Reply<PeerId>) {
        let peer = match addr.iter().last() {
            Some(Protocol::P2p(peer)) => Some(peer),
            _ => None,
        };
        if peer == Some(*self.swarm.local_peer_id()) {
            let _ = reply.send(Err(NodeError::Dial {
                addr,
                reason: "that is this node's own address".into(),
            }));
            return;
        }
        // Connected already: done, unless only through relays and a direct
        // address was asked for.
        let only_relayed = |state: &crate::peers::PeerState| {
            state
                .connections
                .iter()
                .all(|(_, c)| c.path == crate::peers::PathKind::Relayed)
        };
        if let Some(peer) = peer.filter(|p| self.swarm.is_connected(p)) {
            let wants_direct =
                !is_relayed(&addr) && self.peers.get(&peer).is_some_and(only_relayed);
            if !wants_direct {
                let _ = reply.send(Ok(peer));
                return;
            }
        }
        // A bare /p2p/ID: dial the addresses we know for the peer.
        let bare = addr.iter().count() == 1 && peer.is_some();
        let opts = match peer {
            Some(peer) if bare => {
                let known = self.address_book.peek(&peer).cloned().unwrap_or_default();
                DialOpts::peer_id(peer)
                    .addresses(known)
                    .extend_addresses_through_behaviour()
                    .condition(PeerCondition::Always)
                    .build()
            }
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::Always)
                .build(),
            None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
        };
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.pending_dials.insert(id, (addr, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(NodeError::Dial {
                    addr,
                    reason: dial_error_text(&e),
                }));
            }
        }
    }

    fn send_direct(
        &mut self,
        peer: PeerId,
        protocol: String,
        payload: Vec<u8>,
        reply: Reply<Vec<u8>>,
    ) {
        if !self.swarm.is_connected(&peer) {
            let _ = reply.send(Err(NodeError::NotConnected(peer)));
            return;
        }
        if self.pending_requests.len() >= MAX_PENDING_REQUESTS {
            let _ = reply.send(Err(NodeError::SendFailed {
                peer,
                reason: format!("{MAX_PENDING_REQUESTS} messages already awaiting replies"),
            }));
            return;
        }
        let id = self
            .swarm
            .behaviour_mut()
            .direct
            .send_request(&peer, DirectRequest { protocol, payload });
        self.metrics.direct_sent.inc();
        self.pending_requests.insert(id, (peer, reply));
    }

    fn check_topic(topic: &str) -> Result<(), String> {
        if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
            return Err(format!("topic names are 1 to {MAX_TOPIC_LEN} bytes"));
        }
        Ok(())
    }

    fn publish(&mut self, topic: &str, data: Vec<u8>) -> Result<String, NodeError> {
        let err = |reason: String| NodeError::Publish {
            topic: topic.to_string(),
            reason,
        };
        Self::check_topic(topic).map_err(err)?;
        match self.swarm.behaviour_mut().gossipsub.publish(IdentTopic::new(topic), data) {
            Ok(id) => {
                self.metrics.gossip_published.inc();
                Ok(id.to_string())
            }
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                Err(err("no connected peer is subscribed to this topic yet".into()))
            }
            Err(gossipsub::PublishError::Duplicate) => Err(err(
                "an identical message was published in the last 120 s (gossip deduplicates by content)"
                    .into(),
            )),
            Err(gossipsub::PublishError::MessageTooLarge) => {
                Err(err("message is larger than the gossip frame limit".into()))
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    fn subscribe(&mut self, topic: &str) -> Result<bool, NodeError> {
        let err = |reason: String| NodeError::Subscribe {
            topic: topic.to_string(),
            reason,
        };
        Self::check_topic(topic).map_err(err)?;
        let ident = IdentTopic::new(topic);
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        let new = gossipsub
            .subscribe(&ident)
            .map_err(|e| err(e.to_string()))?;
        if new {
            gossipsub
                .set_topic_params(ident, scoring::topic_params())
                .map_err(|e| err(e.to_string()))?;
            self.subscribed.insert(topic.to_string());
        }
        Ok(new)
    }

    fn topic_peer_count(&self, topic: &TopicHash) -> usize {
        self.swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&topic))
            .count()
    }

    fn register_handler(&mut self, handler: Arc<dyn ProtocolHandler>) -> Result<(), NodeError> {
        let id = handler.protocol_id().to_string();
        if self.handlers.contains_key(&id) {
            return Err(NodeError::HandlerExists(id));
        }
        let stream_task = if handler.accepts_streams() {
            let protocol = StreamProtocol::try_from_owned(id.clone())
                .map_err(|_| NodeError::InvalidProtocol(id.clone()))?;
            let mut incoming = self
                .streams
                .accept(protocol)
                .map_err(|_| NodeError::HandlerExists(id.clone()))?;
            let handler = handler.clone();
            Some(tokio::spawn(async move {
                let permits = Arc::new(Semaphore::new(MAX_INBOUND_STREAMS));
                while let Some((peer, stream)) = incoming.next().await {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        tracing::debug!(%peer, "inbound stream refused: handler busy");
                        continue;
                    };
                    let work = handler.handle_stream(peer, stream);
                    tokio::spawn(async move {
                        work.await;
                        drop(permit);
                    });
                }
            }))
        } else {
            None
        };
        tracing::info!(protocol = %id, name = handler.name(), "protocol handler registered");
        self.handlers.insert(
            id,
            RegisteredHandler {
                handler,
                stream_task,
            },
        );
        Ok(())
    }

    fn stats(&mut self) -> NodeStats {
        let routing_table_size: usize = self
            .swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .map(|b| b.num_entries())
            .sum();
        let behaviour = self.swarm.behaviour();
        let mut by_transport = BTreeMap::new();
        let mut by_path = BTreeMap::new();
        let mut connections = 0;
        for state in self.peers.values() {
            for (_, c) in &state.connections {
                connections += 1;
                *by_transport
                    .entry(c.transport.as_str().to_string())
                    .or_insert(0) += 1;
                let path = match c.path {
                    crate::peers::PathKind::Direct => "direct",
                    crate::peers::PathKind::Relayed => "relayed",
                };
                *by_path.entry(path.to_string()).or_insert(0) += 1;
            }
        }
        let topics = self
            .subscribed
            .iter()
            .map(|t| {
                let hash = IdentTopic::new(t).hash();
                TopicStats {
                    topic: t.clone(),
                    mesh_peers: behaviour.gossipsub.mesh_peers(&hash).count(),
                    subscribed_peers: self.topic_peer_count(&hash),
                }
            })
            .collect();
        NodeStats {
            peer_id: *self.swarm.local_peer_id(),
            peers: self.peers.len(),
            connections,
            connections_by_transport: by_transport,
            connections_by_path: by_path,
            topics,
            routing_table_size,
            bytes_in: 0,
            bytes_out: 0,
            gossip_published: self.metrics.gossip_published.get(),
            gossip_received: self.metrics.gossip_received.get(),
            direct_sent: self.metrics.direct_sent.get(),
            direct_received: self.metrics.direct_received.get(),
            listen_addrs: self.local_listen_addrs(),
            external_addrs: self.swarm.external_addresses().cloned().collect(),
            handlers: self.handlers.keys().cloned().collect(),
            uptime_secs: 0,
        }
    }

    fn answer_listening_waiters(&mut self) {
        if let Some(err) = self.listen_failure.take() {
            let text = err.to_string();
            for w in self.listening_waiters.drain(..) {
                let _ = w.send(Err(NodeError::Startup(text.clone())));
            }
            self.listen_failure = Some(err);
            return;
        }
        if self.pending_listeners.is_empty() {
            let addrs = self.local_listen_addrs();
            for w in self.listening_waiters.drain(..) {
                let _ = w.send(Ok(addrs.clone()));
            }
        }
    }

    // ----- handler replies ------------------------------------------------

    fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::Respond { channel, response } => {
                if self
                    .swarm
                    .behaviour_mut()
                    .direct
                    .send_response(channel, response)
                    .is_err()
                {
                    tracing::debug!("reply dropped: the requester went away");
                }
            }
            Internal::GossipVerdict(v) => {
                let GossipVerdict {
                    message_id,
                    propagation_source,
                    topic,
                    source,
                    verdict,
                } = *v;
                self.on_gossip_verdict(message_id, propagation_source, topic, source, verdict)
            }
        }
    }

    /// Reports a gossip message's validation to gossipsub (which forwards
    /// accepted messages and penalises the senders of rejected ones) and
    /// delivers accepted messages to subscribers.
    fn on_gossip_verdict(
        &mut self,
        message_id: gossipsub::MessageId,
        propagation_source: PeerId,
        topic: String,
        source: Option<PeerId>,
        verdict: Result<
            crate::identity::envelope::Verified,
            crate::identity::envelope::EnvelopeError,
        >,
    ) {
        use gossipsub::MessageAcceptance::{Accept, Ignore, Reject};
        let verdict = verdict.and_then(|v| {
            if source != Some(v.sender) {
                // A valid envelope republished under another author.
                return Err(crate::identity::envelope::EnvelopeError::Replay(v.sender));
            }
            self.trust.check_replay(&v).map(|()| v)
        });
        let acceptance = match &verdict {
            Ok(_) => Accept,
            Err(e) if e.is_invalid() => Reject,
            Err(_) => Ignore,
        };
        if let Err(e) = &verdict {
            tracing::debug!(%propagation_source, %e, "gossip message not accepted");
        }
        self.count_message(propagation_source, &acceptance);
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message_id, &propagation_source, acceptance);
        if let Ok(verified) = verdict {
            self.deliver(
                topic,
                Some(verified.sender),
                propagation_source,
                verified.payload,
                message_id,
            );
        }
    }

    /// Charges a message to `peer`'s rate limits. Over the limit the message
    /// is dropped and counted, and repeat offenders lose application score.
    fn within_rate(&mut self, peer: PeerId, topic: Option<&str>, bytes: usize) -> bool {
        let now = Instant::now();
        let messages_ok =
            topic.is_none_or(|t| self.message_rate.allow((peer, t.to_string()), 1.0, now));
        let bytes_ok = self.byte_rate.allow(peer, bytes as f64, now);
        if messages_ok && bytes_ok {
            return true;
        }
        self.metrics.rate_limited.inc();
        let offences = self.offences.get_or_insert_mut(peer, || 0);
        *offences = offences.saturating_add(1);
        // Each offence costs 5 points (app-specific weight 1), at most 500.
        let score = -(f64::from(*offences) * 5.0).min(500.0);
        self.swarm
            .behaviour_mut()
            .gossipsub
            .set_application_score(&peer, score);
        false
    }

    fn count_message(&mut self, peer: PeerId, acceptance: &gossipsub::MessageAcceptance) {
        let counters = self
            .message_counters
            .get_or_insert_mut(peer, MessageCounters::default);
        match acceptance {
            gossipsub::MessageAcceptance::Accept => counters.accepted += 1,
            gossipsub::MessageAcceptance::Reject => {
                counters.rejected += 1;
                self.metrics.gossip_rejected.inc();
            }
            gossipsub::MessageAcceptance::Ignore => counters.ignored += 1,
        }
    }

    fn deliver(
        &mut self,
        topic: String,
        from: Option<PeerId>,
        via: PeerId,
        data: Vec<u8>,
        id: gossipsub::MessageId,
    ) {
        self.metrics.gossip_received.inc();
        self.emit(NodeEvent::Message(GossipMessage {
            topic,
            from,
            via,
            data,
            id: id.to_string(),
        }));
    }

    // ----- maintenance ----------------------------------------------------

    /// Keeps the node at or above `min_connections` by dialling known peers
    /// that are not in dial back-off.
    fn maintain(&mut self) {
        self.reserve_relays();
        let connected = self.peers.len();
        let floor = self.config.min_connections as usize;
        if connected >= floor {
            return;
        }
        let now = Instant::now();
        let mut wanted = floor - connected;
        let mut candidates: Vec<(PeerId, Vec<Multiaddr>)> = Vec::new();
        for addr in &self.config.bootstrap {
            if let Some(Protocol::P2p(peer)) = addr.iter().last() {
                candidates.push((peer, vec![addr.clone()]));
            }
        }
        candidates.extend(self.address_book.iter().map(|(p, a)| (*p, a.clone())));
        let mut seen = HashSet::new();
        for (peer, addrs) in candidates {
            if wanted == 0 {
                break;
            }
            if peer == *self.swarm.local_peer_id()
                || self.swarm.is_connected(&peer)
                || !seen.insert(peer)
            {
                continue;
            }
            let usable: Vec<Multiaddr> = addrs
                .into_iter()
                .filter(|a| {
                    self.failed_addrs
                        .peek(a)
                        .is_none_or(|(t, n)| now.duration_since(*t) > dial_backoff(*n))
                })
                .collect();
            if usable.is_empty() {
                continue;
            }
            let opts = DialOpts::peer_id(peer)
                .addresses(usable)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if self.swarm.dial(opts).is_ok() {
                wanted -= 1;
            }
        }
    }

    // ----- swarm events ---------------------------------------------------

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.libp2p_metrics.record(&event);
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                tracing::info!(%address, "listening");
                // A relay server is run to be reached: its own listen addresses
                // are its external addresses (libp2p offers the relay service
                // only on nodes with one).
                if self.config.relay_server && !is_relayed(&address) {
                    self.swarm.add_external_address(address.clone());
                }
                if let Some(relay) = self.nat.listen_addr(listener_id, &address) {
                    tracing::info!(%relay, "relay reservation active");
                    self.emit(NodeEvent::RelayReservation {
                        relay,
                        active: true,
                    });
                }
                self.pending_listeners.remove(&listener_id);
                self.answer_listening_waiters();
                self.emit(NodeEvent::ListenAddrAdded { addr: address });
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.emit(NodeEvent::ListenAddrRemoved { addr: address });
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some(relay) = self.nat.listener_closed(listener_id) {
                    tracing::info!(%relay, "relay reservation lost");
                    self.emit(NodeEvent::RelayReservation {
                        relay,
                        active: false,
                    });
                }
                if let Some(addr) = self.pending_listeners.remove(&listener_id) {
                    let reason = match reason {
                        Ok(()) => "listener closed".to_string(),
                        Err(e) => e.to_string(),
                    };
                    self.listen_failure = Some(NodeError::Listen { addr, reason });
                    self.answer_listening_waiters();
                }
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                tracing::warn!(%error, "listener error");
                if let Some(addr) = self.pending_listeners.remove(&listener_id) {
                    self.listen_failure = Some(NodeError::Listen {
                        addr,
                        reason: error.to_string(),
                    });
                    self.answer_listening_waiters();
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let info = ConnectionInfo::new(&endpoint);
                tracing::debug!(%peer_id, addr = %info.remote_addr, "connection established");
                if endpoint.is_dialer() && !endpoint.is_relayed() {
                    self.remember_address(peer_id, info.remote_addr.clone());
                    self.failed_addrs.pop(&info.remote_addr);
                }
                self.peers
                    .entry(peer_id)
                    .or_default()
                    .connections
                    .push((connection_id, info));
                self.metrics.connections.inc();
                if let Some((_, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                let Some(peer) = self.peer_info(&peer_id) else {
                    return;
                };
                if num_established.get() == 1 {
                    let record = PqIdentityMessage {
                        record: self.trust.identity().record().to_bytes(),
                    };
                    self.swarm
                        .behaviour_mut()
                        .pq_identity
                        .send_request(&peer_id, record);
                    self.metrics.connected_peers.set(self.peers.len() as i64);
                    for h in self.handlers.values() {
                        h.handler.on_peer_connected(&peer);
                    }
                    self.emit(NodeEvent::PeerConnected(peer));
                } else {
                    self.peer_updated(peer);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                tracing::debug!(%peer_id, ?cause, "connection closed");
                self.metrics.connections.dec();
                if let Some(state) = self.peers.get_mut(&peer_id) {
                    state.connections.retain(|(id, _)| *id != connection_id);
                }
                if num_established == 0 {
                    self.peers.remove(&peer_id);
                    self.nat.remove_relay_candidate(&peer_id);
                    // A reservation lives on a connection to its relay. The
                    // relay client keeps the listener open a while after that
                    // connection is gone, which would stop us reserving again
                    // when the relay comes back (e.g. after a restart).
                    for listener in self.nat.listeners_through(&peer_id) {
                        self.swarm.remove_listener(listener);
                    }
                    self.metrics.connected_peers.set(self.peers.len() as i64);
                    for reply in self
                        .pending_disconnects
                        .remove(&peer_id)
                        .unwrap_or_default()
                    {
                        let _ = reply.send(Ok(()));
                    }
                    for h in self.handlers.values() {
                        h.handler.on_peer_disconnected(peer_id);
                    }
                    self.emit(NodeEvent::PeerDisconnected { peer_id });
                } else if let Some(peer) = self.peer_info(&peer_id) {
                    self.peer_updated(peer);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                self.metrics.dial_failures.inc();
                if let DialError::Transport(attempts) = &error {
                    let now = Instant::now();
                    for (addr, _) in attempts {
                        let failures = self.failed_addrs.peek(addr).map_or(0, |(_, n)| *n) + 1;
                        self.failed_addrs.put(addr.clone(), (now, failures));
                    }
                }
                let text = dial_error_text(&error);
                tracing::debug!(?peer_id, error = %text, "dial failed");
                if let Some((addr, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(NodeError::Dial {
                        addr,
                        reason: text.clone(),
                    }));
                }
                self.emit(NodeEvent::DialFailed {
                    peer_id,
                    error: text,
                });
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                tracing::debug!(%send_back_addr, %error, "incoming connection refused");
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "external address confirmed");
                if let Some(reachability) = self.nat.external(address, true) {
                    self.emit(NodeEvent::ReachabilityChanged { reachability });
                }
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                if let Some(reachability) = self.nat.external(address, false) {
                    self.emit(NodeEvent::ReachabilityChanged { reachability });
                }
            }
            _ => {}
        }
    }

    /// An address to reach a relay at: the one we dialled it on, else a
    /// direct address it listens on.
    fn relay_address(&self, relay: &PeerId, listen_addrs: &[Multiaddr]) -> Option<Multiaddr> {
        let dialled = self.peers.get(relay).and_then(|state| {
            state
                .connections
                .iter()
                .find(|(_, c)| {
                    c.direction == crate::peers::Direction::Outbound
                        && c.path == crate::peers::PathKind::Direct
                })
                .map(|(_, c)| c.remote_addr.clone())
        });
        let addr = dialled.or_else(|| listen_addrs.iter().find(|a| !is_relayed(a)).cloned())?;
        // Strip a trailing /p2p: the circuit address appends it.
        let mut addr = addr;
        if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
            addr.pop();
        }
        Some(addr)
    }

    /// Asks relays for reservations while we are not publicly reachable.
    fn reserve_relays(&mut self) {
        for (relay, addr) in self.nat.relays_to_reserve() {
            let circuit = addr.with(Protocol::P2p(relay)).with(Protocol::P2pCircuit);
            match self.swarm.listen_on(circuit.clone()) {
                Ok(listener) => {
                    tracing::info!(%relay, %circuit, "requesting a relay reservation");
                    self.nat.relay_listening(listener, relay);
                }
                Err(e) => tracing::warn!(%relay, %e, "cannot listen through relay"),
            }
        }
    }

    fn peer_updated(&self, peer: PeerInfo) {
        for h in self.handlers.values() {
            h.handler.on_peer_updated(&peer);
        }
        self.emit(NodeEvent::PeerUpdated(peer));
    }

    /// Records a dialable address; `true` if the peer was new to the book.
    fn remember_address(&mut self, peer: PeerId, addr: Multiaddr) -> bool {
        const MAX_ADDRS_PER_PEER: usize = 8;
        match self.address_book.get_mut(&peer) {
            Some(addrs) => {
                if !addrs.contains(&addr) {
                    if addrs.len() >= MAX_ADDRS_PER_PEER {
                        addrs.remove(0);
                    }
                    addrs.push(addr);
                }
                false
            }
            None => {
                self.address_book.put(peer, vec![addr]);
                true
            }
        }
    }

    /// Whether `addr`, reported for `peer`, is worth dialling from here:
    /// not a relay circuit (circuits are dialled on request, never redialled
    /// in bulk), with a transport, and loopback only for a peer we reach over
    /// loopback (a peer's 127.0.0.1 is ourselves elsewhere).
    fn dialable(&self, peer: &PeerId, addr: &Multiaddr) -> bool {
        let loopback = |a: &Multiaddr| {
            a.iter().any(|p| match p {
                Protocol::Ip4(ip) => ip.is_loopback(),
                Protocol::Ip6(ip) => ip.is_loopback(),
                _ => false,
            })
        };
        let has_transport = matches!(
            addr.iter().next(),
            Some(
                Protocol::Ip4(_)
                    | Protocol::Ip6(_)
                    | Protocol::Dns(_)
                    | Protocol::Dns4(_)
                    | Protocol::Dns6(_)
                    | Protocol::Memory(_)
            )
        );
        if is_relayed(addr) || !has_transport {
            return false;
        }
        if !loopback(addr) {
            return true;
        }
        self.peers
            .get(peer)
            .is_some_and(|s| s.connections.iter().any(|(_, c)| loopback(&c.remote_addr)))
    }

    fn discovered(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, source: DiscoverySource) {
        if peer == *self.swarm.local_peer_id() {
            return;
        }
        let addrs: Vec<Multiaddr> = addrs
            .into_iter()
            .filter(|a| self.dialable(&peer, a))
            .collect();
        if addrs.is_empty() {
            return;
        }
        let mut new = false;
        for a in &addrs {
            new |= self.remember_address(peer, a.clone());
        }
        if !new {
            return;
        }
        for h in self.handlers.values() {
            h.handler.on_peer_discovered(peer, &addrs);
        }
        self.emit(NodeEvent::PeerDiscovered {
            peer_id: peer,
            addrs,
            source,
        });
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(event) => {
                self.libp2p_metrics.record(&event);
                if let identify::Event::Received { peer_id, info, .. } = event {
                    let offers_relay = info
                        .protocols
                        .iter()
                        .any(|p| p.as_ref() == RELAY_HOP_PROTOCOL);
                    tracing::debug!(%peer_id, offers_relay, protocols = ?info.protocols, "identified");
                    if offers_relay && self.config.auto_relay && !self.config.relay_server {
                        if let Some(addr) = self.relay_address(&peer_id, &info.listen_addrs) {
                            self.nat.add_relay_candidate(peer_id, addr);
                            self.reserve_relays();
                        }
                    }
                    let kad_protocol = self.config.kad_protocol.as_str();
                    let speaks_kad = info.protocols.iter().any(|p| p.as_ref() == kad_protocol);
                    if speaks_kad {
                        for addr in &info.listen_addrs {
                            if self.dialable(&peer_id, addr) {
                                self.swarm
                                    .behaviour_mut()
                                    .kad
                                    .add_address(&peer_id, addr.clone());
                            }
                        }
                    }
                    self.discovered(
                        peer_id,
                        info.listen_addrs.clone(),
                        DiscoverySource::Identify,
                    );
                    if let Some(state) = self.peers.get_mut(&peer_id) {
                        state.set_identify(
                            info.agent_version,
                            info.protocols.iter().map(|p| p.to_string()).collect(),
                            info.listen_addrs,
                        );
                    }
                    if let Some(peer) = self.peer_info(&peer_id) {
                        self.peer_updated(peer);
                    }
                }
            }
            BehaviourEvent::Ping(event) => {
                self.libp2p_metrics.record(&event);
                if let ping::Event {
                    peer,
                    result: Ok(rtt),
                    ..
                } = event
                {
                    if let Some(state) = self.peers.get_mut(&peer) {
                        state.rtt = Some(rtt);
                    }
                    if let Some(info) = self.peer_info(&peer) {
                        self.peer_updated(info);
                    }
                }
            }
            BehaviourEvent::Kad(event) => {
                self.libp2p_metrics.record(&event);
                self.on_kad_event(event);
            }
            BehaviourEvent::Gossipsub(event) => {
                self.libp2p_metrics.record(&event);
                self.on_gossip_event(event);
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                for (peer, addr) in found {
                    by_peer.entry(peer).or_default().push(addr);
                }
                for (peer, addrs) in by_peer {
                    self.discovered(peer, addrs.clone(), DiscoverySource::Mdns);
                    if !self.swarm.is_connected(&peer)
                        && self.peers.len() < self.config.max_connections as usize
                    {
                        let opts = DialOpts::peer_id(peer)
                            .addresses(addrs)
                            .condition(PeerCondition::DisconnectedAndNotDialing)
                            .build();
                        let _ = self.swarm.dial(opts);
                    }
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Expired(_)) => {}
            BehaviourEvent::Direct(event) => self.on_direct_event(event),
            BehaviourEvent::PqIdentity(event) => self.on_pq_identity_event(event),
            BehaviourEvent::RelayClient(event) => tracing::debug!(?event, "relay client"),
            BehaviourEvent::RelayServer(event) => {
                self.libp2p_metrics.record(&event);
                tracing::debug!(?event, "relay server");
            }
            BehaviourEvent::AutonatClient(event) => {
                tracing::debug!(addr = %event.tested_addr, ok = event.result.is_ok(), "autonat probe");
                let meaningful = !is_relayed(&event.tested_addr)
                    && !matches!(
                        event.tested_addr.iter().next(),
                        Some(Protocol::P2p(_)) | None
                    );
                if !meaningful {
                    return;
                }
                if let Some(reachability) = self.nat.probe_result(event.result.is_ok()) {
                    tracing::info!(?reachability, "reachability changed");
                    self.emit(NodeEvent::ReachabilityChanged { reachability });
                }
            }
            BehaviourEvent::AutonatServer(event) => {
                tracing::debug!(client = %event.client, ok = event.result.is_ok(), "autonat dial-back");
            }
            BehaviourEvent::Dcutr(event) => {
                self.libp2p_metrics.record(&event);
                let success = event.result.is_ok();
                self.nat.hole_punch.attempts += 1;
                if success {
                    self.nat.hole_punch.successes += 1;
                } else {
                    self.nat.hole_punch.failures += 1;
                }
                tracing::info!(peer = %event.remote_peer_id, success, "hole punch");
                self.emit(NodeEvent::HolePunch {
                    peer_id: event.remote_peer_id,
                    success,
                });
            }
            BehaviourEvent::Gate(never) | BehaviourEvent::Limits(never) => match never {},
            BehaviourEvent::MemoryLimits(never) => match never {},
            BehaviourEvent::Streams(()) => {}
        }
    }

    fn on_gossip_event(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let topic = message.topic.into_string();
                if !self.within_rate(propagation_source, Some(&topic), message.data.len()) {
                    let acceptance = gossipsub::MessageAcceptance::Ignore;
                    self.count_message(propagation_source, &acceptance);
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            acceptance,
                        );
                    return;
                }
                if !self.trust.envelopes() {
                    let acceptance = gossipsub::MessageAcceptance::Accept;
                    self.count_message(propagation_source, &acceptance);
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            acceptance,
                        );
                    self.deliver(
                        topic,
                        message.source,
                        propagation_source,
                        message.data,
                        message_id,
                    );
                    return;
                }
                // Verification (two signatures) runs off the loop; the verdict
                // comes back as an internal event. Gossipsub holds the message
                // unforwarded until then.
                let Ok(permit) = self.verify_permits.clone().try_acquire_owned() else {
                    let acceptance = gossipsub::MessageAcceptance::Ignore;
                    self.count_message(propagation_source, &acceptance);
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            acceptance,
                        );
                    return;
                };
                let trust = self.trust.clone();
                let internal = self.internal_tx.clone();
                let source = message.source;
                tokio::task::spawn_blocking(move || {
                    let verdict = trust.verify(&message.data, MessageKind::Gossip, &topic, source);
                    let _ =
                        internal.blocking_send(Internal::GossipVerdict(Box::new(GossipVerdict {
                            message_id,
                            propagation_source,
                            topic,
                            source,
                            verdict,
                        })));
                    drop(permit);
                });
            }
            gossipsub::Event::Subscribed { peer_id, topic, .. } => {
                tracing::debug!(%peer_id, %topic, "peer subscribed");
                let waits = std::mem::take(&mut self.topic_waits);
                for (topic, count, reply) in waits {
                    if reply.is_closed() {
                        continue;
                    }
                    if self.topic_peer_count(&topic) >= count {
                        let _ = reply.send(Ok(()));
                    } else {
                        self.topic_waits.push((topic, count, reply));
                    }
                }
            }
            gossipsub::Event::SlowPeer { peer_id, .. } => {
                tracing::debug!(%peer_id, "slow gossip peer");
            }
            _ => {}
        }
    }

    fn on_direct_event(&mut self, event: request_response::Event<DirectRequest, DirectResponse>) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                self.metrics.direct_received.inc();
                let refuse = |this: &mut Self, channel, reason: String| {
                    this.metrics.direct_refused.inc();
                    let _ = this
                        .swarm
                        .behaviour_mut()
                        .direct
                        .send_response(channel, DirectResponse::Err(reason));
                };
                let Some(handler) = self
                    .handlers
                    .get(&request.protocol)
                    .map(|h| h.handler.clone())
                else {
                    let reason = format!("no handler for protocol {}", request.protocol);
                    refuse(self, channel, reason);
                    return;
                };
                if !self.within_rate(peer, None, request.payload.len()) {
                    refuse(
                        self,
                        channel,
                        "rate limited: too many bytes per second".into(),
                    );
                    return;
                }
                let Ok(permit) = self.inbound_permits.clone().try_acquire_owned() else {
                    refuse(self, channel, "busy: too many messages in progress".into());
                    return;
                };
                let trust = self.trust.clone();
                let internal = self.internal_tx.clone();
                let protocol = request.protocol;
                tokio::spawn(async move {
                    let response = match trust.unwrap(
                        &request.payload,
                        MessageKind::Direct,
                        &protocol,
                        Some(peer),
                    ) {
                        Err(e) => DirectResponse::Err(format!("refused: {e}")),
                        Ok((_, payload)) => match handler.handle_message(peer, payload).await {
                            Ok(bytes) => {
                                match trust.wrap(MessageKind::DirectReply, &protocol, bytes) {
                                    Ok(signed) => DirectResponse::Ok(signed),
                                    Err(e) => {
                                        DirectResponse::Err(format!("cannot sign the reply: {e}"))
                                    }
                                }
                            }
                            Err(e) => DirectResponse::Err(e.0),
                        },
                    };
                    let _ = internal.send(Internal::Respond { channel, response }).await;
                    drop(permit);
                });
            }
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some((peer, reply)) = self.pending_requests.remove(&request_id) {
                    let result = match response {
                        DirectResponse::Ok(bytes) => Ok(bytes),
                        DirectResponse::Err(reason) => Err(NodeError::Remote { peer, reason }),
                    };
                    let _ = reply.send(result);
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some((_, reply)) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Err(NodeError::SendFailed {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound direct message failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    /// Verifies a peer's PQ identity record, pins it and answers with ours.
    fn on_pq_identity_event(
        &mut self,
        event: request_response::Event<PqIdentityMessage, PqIdentityMessage>,
    ) {
        use request_response::{Event, Message};
        let (peer, bytes) = match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let ours = PqIdentityMessage {
                    record: self.trust.identity().record().to_bytes(),
                };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .pq_identity
                    .send_response(channel, ours);
                (peer, request.record)
            }
            Event::Message {
                peer,
                message: Message::Response { response, .. },
                ..
            } => (peer, response.record),
            Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "PQ identity exchange failed");
                return;
            }
            _ => return,
        };
        match PqIdentityRecord::from_bytes_verified(&bytes) {
            Ok(record) if record.peer_id == peer => {
                let pinned = self.trust.pinned_key(&peer);
                if pinned.is_some_and(|k| k != record.ml_dsa_public) {
                    tracing::warn!(%peer, "peer presented a different ML-DSA key than the one pinned; keeping the pinned key");
                    return;
                }
                self.trust.insert_record(record);
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.pq_verified = true;
                }
                if let Some(info) = self.peer_info(&peer) {
                    self.peer_updated(info);
                }
            }
            Ok(record) => {
                tracing::warn!(%peer, claimed = %record.peer_id, "PQ identity record for another peer")
            }
            Err(e) => tracing::warn!(%peer, %e, "invalid PQ identity record"),
        }
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => match result {
                kad::QueryResult::PutRecord(result) => {
                    if let Some(reply) = self.pending_puts.remove(&id) {
                        let _ = reply.send(result.map(|_| ()).map_err(|e| NodeError::Dht {
                            op: "put",
                            reason: e.to_string(),
                        }));
                    }
                }
                kad::QueryResult::GetRecord(result) => {
                    let outcome = match result {
                        Ok(kad::GetRecordOk::FoundRecord(found)) => Some(Ok(found.record)),
                        Ok(kad::GetRecordOk::FinishedWithNoAdditionalRecord { .. }) => {
                            Some(Err(NodeError::NotFound("record".into())))
                        }
                        Err(kad::GetRecordError::NotFound { .. }) => {
                            Some(Err(NodeError::NotFound("record".into())))
                        }
                        Err(e) => Some(Err(NodeError::Dht {
                            op: "get",
                            reason: e.to_string(),
                        })),
                    };
                    if let (Some(outcome), Some(reply)) = (outcome, self.pending_gets.remove(&id)) {
                        let found = outcome.is_ok();
                        let _ = reply.send(outcome);
                        if found {
                            if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                                query.finish();
                            }
                        }
                    }
                }
                kad::QueryResult::StartProviding(result) => {
                    if let Some(reply) = self.pending_providing.remove(&id) {
                        let _ = reply.send(result.map(|_| ()).map_err(|e| NodeError::Dht {
                            op: "start providing",
                            reason: e.to_string(),
                        }));
                    }
                }
                kad::QueryResult::GetProviders(result) => {
                    let done = match result {
                        Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) => {
                            if let Some((found, _)) = self.pending_providers.get_mut(&id) {
                                found.extend(providers);
                            }
                            step.last
                        }
                        Ok(kad::GetProvidersOk::FinishedWithNoAdditionalRecord { .. }) => true,
                        // A timeout still returns what was found so far.
                        Err(e) => {
                            tracing::debug!(%e, "provider lookup ended early");
                            true
                        }
                    };
                    if done || step.last {
                        if let Some((found, reply)) = self.pending_providers.remove(&id) {
                            let _ = reply.send(Ok(found));
                        }
                    }
                }
                _ => {}
            },
            kad::Event::RoutingUpdated {
                peer,
                addresses,
                is_new_peer: true,
                ..
            } => {
                self.discovered(peer, addresses.into_vec(), DiscoverySource::Kad);
            }
            _ => {}
        }
    }
}

/// A dial error in words a user can act on.
fn dial_error_text(error: &DialError) -> String {
    match error {
        DialError::Transport(attempts) => {
            let parts: Vec<String> = attempts
                .iter()
                .map(|(addr, e)| {
                    let mut msg = e.to_string();
                    let mut source = std::error::Error::source(e);
                    while let Some(s) = source {
                        msg = format!("{msg}: {s}");
                        source = s.source();
                    }
                    format!("{addr}: {msg}")
                })
                .collect();
            if parts.is_empty() {
                "no usable address".to_string()
            } else {
                parts.join("; ")
            }
        }
        DialError::NoAddresses => "no address known for the peer".to_string(),
        DialError::LocalPeerId { .. } => "that is this node's own address".to_string(),
        // `ConnectionDenied` only says "connection denied"; the reason (such
        // as the connection limit) is its source.
        DialError::Denied { cause } => match std::error::Error::source(cause) {
            Some(reason) => format!("refused locally: {reason}"),
            None => format!("refused locally: {cause}"),
        },
        DialError::WrongPeerId { obtained, .. } => {
            format!("the peer at that address is {obtained}, not the one in the address")
        }
        other => other.to_string(),
    }
}
