//! The event loop: the one task that owns the swarm.
//!
//! It `select!`s over replies from handler tasks, commands from
//! [`NodeHandle`](crate::NodeHandle)s, a maintenance timer and swarm events,
//! in that order of preference: local work is finished before more remote
//! work is accepted. This file dispatches; each concern has its handler file
//! (`commands`, `connections`, `discovery`, `nat`, `gossip`, `direct`,
//! `identity`, `dht`), and the state they share lives in sub-machines that
//! do no I/O and never call back into the loop: the [`AddressBook`], the
//! [`GossipGuard`], the [`HandlerRegistry`] and the [`PendingQueries`].

mod address_book;
mod commands;
mod connections;
mod dht;
mod direct;
mod discovery;
mod fair_queue;
mod gossip;
mod gossip_guard;
mod handler_registry;
mod identity;
mod nat;
mod pending;
mod pq_guard;
mod record_policy;

use std::{collections::BTreeSet, collections::HashMap, sync::Arc, time::Duration};

use futures::StreamExt;
use libp2p::{
    core::transport::ListenerId, gossipsub, metrics::Recorder, request_response, swarm::SwarmEvent,
    Multiaddr, PeerId, Swarm,
};
use tokio::sync::{broadcast, mpsc, Semaphore};

use self::{
    address_book::AddressBook,
    gossip_guard::{GossipGuard, MAX_PENDING_VERIFICATIONS},
    handler_registry::HandlerRegistry,
    pending::{Caps, PendingQueries},
    record_policy::{RecordCaps, RecordPolicy},
};
use crate::{
    behaviour::{Behaviour, BehaviourEvent},
    command::Command,
    config::NodeConfig,
    events::NodeEvent,
    identity::envelope::{EnvelopeError, Verified},
    metrics::NodeMetrics,
    nat::NatState,
    peers::{PeerInfo, PeerTable, TransportKind},
    protocol::DirectResponse,
    trust::Trust,
};

/// Inbound direct messages handled concurrently; more are refused as busy.
/// Also the capacity of the channel their replies come back on.
const MAX_INBOUND_HANDLING: usize = 64;
/// Inbound direct messages of one peer handled concurrently: a few noisy
/// peers cannot take every slot.
const MAX_INBOUND_PER_PEER: usize = 8;
/// Look-ups whose candidates are checked at once; more wait their turn.
const MAX_LOOKUP_CHECKS: usize = 4;
/// Replies and commands handled in a row before the swarm gets a turn.
const MAX_LOCAL_IN_A_ROW: usize = 64;
/// How often the loop checks its connection floor and relay reservations.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);
/// Longest wait at shutdown for connections to close cleanly.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Replies from handler tasks back to the event loop.
pub(crate) enum Internal {
    Respond {
        /// The peer whose request this answers (its handling slot frees).
        peer: PeerId,
        channel: request_response::ResponseChannel<DirectResponse>,
        response: DirectResponse,
    },
    /// Boxed: verdicts carry whole payloads and are the rarer variant on
    /// busy request/response nodes.
    GossipVerdict(Box<GossipVerdict>),
    /// A DHT record a peer PUT, checked off the loop.
    RecordChecked(Box<RecordChecked>),
    /// A peer's PQ identity record, verified off the loop.
    PqChecked {
        peer: PeerId,
        verdict: Result<Box<crate::identity::PqIdentityRecord>, crate::identity::pq::IdentityError>,
    },
}

/// The outcome of checking one inbound DHT record off the event loop.
pub(crate) struct RecordChecked {
    pub source: PeerId,
    pub record: libp2p::kad::Record,
    pub verdict: Result<crate::records::RecordMeta, crate::records::RecordError>,
}

/// The outcome of verifying one gossip message off the event loop.
pub(crate) struct GossipVerdict {
    pub message_id: gossipsub::MessageId,
    pub propagation_source: PeerId,
    pub topic: String,
    pub source: Option<PeerId>,
    pub verdict: Result<Verified, EnvelopeError>,
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
    trust: Arc<Trust>,
    /// Connected peers.
    peers: PeerTable,
    book: AddressBook,
    nat: NatState,
    handlers: HandlerRegistry,
    streams: libp2p_stream::Control,
    /// Inbound direct messages being handled, at most.
    inbound_permits: Arc<Semaphore>,
    /// Inbound direct messages being handled, per peer (at most
    /// [`MAX_INBOUND_HANDLING`] peers, as each holds a permit).
    inbound_per_peer: HashMap<PeerId, usize>,
    pending: PendingQueries,
    guard: GossipGuard,
    /// What PQ identity records cost us.
    pq_guard: pq_guard::PqGuard,
    /// What peers may store in our DHT store.
    records: RecordPolicy,
    /// Look-ups whose candidate records are being checked, at most.
    lookup_checks: Arc<Semaphore>,
    /// Topics we subscribed to.
    subscribed: BTreeSet<String>,
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
        Self {
            swarm,
            commands,
            internal_tx,
            internal_rx,
            events,
            metrics,
            libp2p_metrics,
            trust,
            peers: PeerTable::new(),
            book: AddressBook::new(config.address_book_size),
            nat: NatState::default(),
            handlers: HandlerRegistry::default(),
            streams,
            inbound_permits: Arc::new(Semaphore::new(MAX_INBOUND_HANDLING)),
            inbound_per_peer: HashMap::new(),
            pending: PendingQueries::new(listeners, Caps::default()),
            guard: GossipGuard::new(
                config.max_messages_per_sec,
                config.max_bytes_per_sec,
                config.max_message_size + crate::gossip::FRAME_OVERHEAD,
                config.address_book_size,
                MAX_PENDING_VERIFICATIONS,
            ),
            pq_guard: pq_guard::PqGuard::default(),
            records: RecordPolicy::new(RecordCaps::default()),
            lookup_checks: Arc::new(Semaphore::new(MAX_LOOKUP_CHECKS)),
            subscribed: BTreeSet::new(),
            config,
        }
    }

    /// Runs until a `Shutdown` command arrives or every handle is gone.
    ///
    /// `biased`: the branches are polled in order, so replies of handler
    /// tasks and callers' commands are taken before new swarm events (local
    /// work first, as rust-libp2p advises), and the maintenance tick, cheap
    /// and due every few seconds, is never starved by either. After
    /// [`MAX_LOCAL_IN_A_ROW`] local items the swarm gets one turn, so a
    /// steady stream of commands cannot stall the network either.
    pub async fn run(mut self) {
        let mut maintenance = tokio::time::interval(MAINTENANCE_INTERVAL);
        maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut local_in_a_row = 0;
        let shutdown_reply = loop {
            let swarm_turn = local_in_a_row >= MAX_LOCAL_IN_A_ROW;
            tokio::select! {
                biased;
                _ = maintenance.tick() => {
                    self.maintain();
                    self.prune_records();
                }
                Some(internal) = self.internal_rx.recv(), if !swarm_turn => {
                    local_in_a_row += 1;
                    self.on_internal(internal);
                }
                command = self.commands.recv(), if !swarm_turn => {
                    local_in_a_row += 1;
                    match command {
                        Some(Command::Shutdown { reply }) => break Some(reply),
                        Some(command) => self.on_command(command),
                        None => break None,
                    }
                }
                event = self.swarm.select_next_some() => {
                    local_in_a_row = 0;
                    self.on_swarm_event(event);
                }
                // The swarm's turn, and it had nothing ready: back to local work.
                () = std::future::ready(()), if swarm_turn => local_in_a_row = 0,
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
        let counters = self.guard.counters(peer);
        self.peers.get(peer)?.info(*peer, score, counters)
    }

    /// Tells the handlers and subscribers what changed about a peer.
    fn peer_updated(&self, peer: PeerInfo) {
        self.handlers.peer_updated(&peer);
        self.emit(NodeEvent::PeerUpdated(peer));
    }

    /// Tells the handlers and subscribers about `peer`, if it is connected.
    fn peer_changed(&self, peer: &PeerId) {
        if let Some(info) = self.peer_info(peer) {
            self.peer_updated(info);
        }
    }

    fn local_listen_addrs(&self) -> Vec<Multiaddr> {
        let me = *self.swarm.local_peer_id();
        let mut addrs: Vec<Multiaddr> = self
            .swarm
            .listeners()
            .map(|a| a.clone().with_p2p(me).unwrap_or_else(|a| a))
            .collect();
        // QUIC first: it is the transport dialled first.
        addrs.sort_by_key(|a| TransportKind::of(a) != TransportKind::Quic);
        addrs
    }

    fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::Respond {
                peer,
                channel,
                response,
            } => {
                self.inbound_done(peer);
                self.respond(channel, response);
            }
            Internal::GossipVerdict(verdict) => self.on_gossip_verdict(*verdict),
            Internal::RecordChecked(checked) => self.on_record_checked(*checked),
            Internal::PqChecked { peer, verdict } => self.on_pq_checked(peer, verdict),
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.libp2p_metrics.record(&event);
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => self.on_new_listen_addr(listener_id, address),
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.emit(NodeEvent::ListenAddrRemoved { addr: address });
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                self.on_relay_listener_closed(listener_id);
                let error = reason
                    .err()
                    .unwrap_or_else(|| std::io::Error::other("the listener closed"));
                self.on_listener_failed(listener_id, error);
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                tracing::warn!(%error, "listener error");
                self.on_listener_failed(listener_id, error);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => self.on_connection_established(
                peer_id,
                connection_id,
                &endpoint,
                num_established.get(),
            ),
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                tracing::debug!(%peer_id, ?cause, "connection closed");
                self.on_connection_closed(peer_id, connection_id, num_established);
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => self.on_dial_error(connection_id, peer_id, &error),
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                tracing::debug!(%send_back_addr, %error, "incoming connection refused");
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "external address confirmed");
                self.on_external_addr(address, true);
            }
            SwarmEvent::ExternalAddrExpired { address } => self.on_external_addr(address, false),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(event) => {
                self.libp2p_metrics.record(&event);
                self.on_identify_event(event);
            }
            BehaviourEvent::Ping(event) => {
                self.libp2p_metrics.record(&event);
                self.on_ping_event(event);
            }
            BehaviourEvent::Kad(event) => {
                self.libp2p_metrics.record(&event);
                self.on_kad_event(event);
            }
            BehaviourEvent::Gossipsub(event) => {
                self.libp2p_metrics.record(&event);
                self.on_gossip_event(event);
            }
            BehaviourEvent::Mdns(event) => self.on_mdns_event(event),
            BehaviourEvent::Direct(event) => self.on_direct_event(event),
            BehaviourEvent::PqIdentity(event) => self.on_pq_identity_event(event),
            BehaviourEvent::RelayClient(event) => tracing::debug!(?event, "relay client"),
            BehaviourEvent::RelayServer(event) => {
                self.libp2p_metrics.record(&event);
                tracing::debug!(?event, "relay server");
            }
            BehaviourEvent::AutonatClient(event) => self.on_autonat_probe(event),
            BehaviourEvent::AutonatServer(event) => {
                tracing::debug!(client = %event.client, ok = event.result.is_ok(), "autonat dial-back");
            }
            BehaviourEvent::Dcutr(event) => {
                self.libp2p_metrics.record(&event);
                self.on_hole_punch(event);
            }
            BehaviourEvent::Gate(never) | BehaviourEvent::Limits(never) => match never {},
            BehaviourEvent::MemoryLimits(never) => match never {},
            BehaviourEvent::Streams(()) => {}
        }
    }
}
