//! `NodeHandle`: the cloneable client of a running node.
//!
//! Every call becomes a [`Command`] on a bounded channel to the event loop,
//! which owns the swarm, and waits for the loop's reply on a oneshot channel.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use libp2p::{kad, request_response::ResponseChannel, Multiaddr, PeerId, Stream, StreamProtocol};
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{
    config::NodeConfig,
    error::NodeError,
    events::{EventSubscription, NodeEvent},
    gate::Policy,
    identity::{envelope::MessageKind, sealed, NodeIdentity, PqIdentityRecord},
    metrics,
    peers::PeerInfo,
    protocol::{DirectResponse, ProtocolHandler},
    resources::ResourceIndex,
    trust::Trust,
};

/// Capacity of the command channel: callers wait when the loop is this far behind.
pub(crate) const COMMAND_BUFFER: usize = 256;

type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

/// Requests to the event loop.
pub(crate) enum Command {
    WaitListening {
        reply: Reply<Vec<Multiaddr>>,
    },
    ListenAddrs {
        reply: Reply<Vec<Multiaddr>>,
    },
    Connect {
        addr: Multiaddr,
        reply: Reply<PeerId>,
    },
    Disconnect {
        peer: PeerId,
        reply: Reply<()>,
    },
    Peers {
        reply: Reply<Vec<PeerInfo>>,
    },
    SendTo {
        peer: PeerId,
        protocol: String,
        payload: Vec<u8>,
        reply: Reply<Vec<u8>>,
    },
    Broadcast {
        topic: String,
        data: Vec<u8>,
        reply: Reply<String>,
    },
    Subscribe {
        topic: String,
        reply: Reply<bool>,
    },
    Unsubscribe {
        topic: String,
        reply: Reply<bool>,
    },
    WaitTopicPeers {
        topic: String,
        count: usize,
        reply: Reply<()>,
    },
    RegisterHandler {
        handler: Arc<dyn ProtocolHandler>,
        reply: Reply<()>,
    },
    UnregisterHandler {
        protocol: String,
        reply: Reply<()>,
    },
    PutRecord {
        record: kad::Record,
        reply: Reply<()>,
    },
    GetRecord {
        key: kad::RecordKey,
        reply: Reply<kad::Record>,
    },
    StartProviding {
        key: kad::RecordKey,
        reply: Reply<()>,
    },
    GetProviders {
        key: kad::RecordKey,
        reply: Reply<HashSet<PeerId>>,
    },
    UpdatePolicy {
        change: PolicyChange,
        reply: Reply<Policy>,
    },
    Stats {
        reply: Reply<NodeStats>,
    },
    Nat {
        reply: Reply<crate::nat::NatStatus>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A change to the connection policy.
#[derive(Debug, Clone, Copy)]
pub enum PolicyChange {
    /// Put a peer on the allow list (and off the deny list).
    Allow(PeerId),
    /// Put a peer on the deny list (and off the allow list); closes its connections.
    Deny(PeerId),
    /// Take a peer off both lists.
    Unlist(PeerId),
    /// Admit only allow-listed peers, or everyone not denied.
    Private(bool),
    /// No change (read the policy).
    None,
}

/// Replies from handler tasks back to the event loop.
pub(crate) enum Internal {
    Respond {
        channel: ResponseChannel<DirectResponse>,
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

/// Gossip figures for one subscribed topic.
#[derive(Debug, Clone, Serialize)]
pub struct TopicStats {
    /// Topic name.
    pub topic: String,
    /// Peers in our mesh for the topic.
    pub mesh_peers: usize,
    /// Connected peers subscribed to the topic.
    pub subscribed_peers: usize,
}

/// A snapshot of the node's state and counters.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStats {
    /// Our peer id.
    pub peer_id: PeerId,
    /// Connected peers.
    pub peers: usize,
    /// Open connections.
    pub connections: usize,
    /// Open connections by transport name.
    pub connections_by_transport: BTreeMap<String, usize>,
    /// Open connections by path ("direct", "relayed").
    pub connections_by_path: BTreeMap<String, usize>,
    /// Subscribed topics.
    pub topics: Vec<TopicStats>,
    /// Peers in the DHT routing table.
    pub routing_table_size: usize,
    /// Bytes received on all connections.
    pub bytes_in: u64,
    /// Bytes sent on all connections.
    pub bytes_out: u64,
    /// Gossip messages published by this node.
    pub gossip_published: u64,
    /// Gossip messages received.
    pub gossip_received: u64,
    /// Direct messages sent.
    pub direct_sent: u64,
    /// Direct messages received.
    pub direct_received: u64,
    /// Addresses we listen on.
    pub listen_addrs: Vec<Multiaddr>,
    /// Addresses others can reach us at, as confirmed.
    pub external_addrs: Vec<Multiaddr>,
    /// Registered protocol handlers.
    pub handlers: Vec<String>,
    /// Seconds since start.
    pub uptime_secs: u64,
}

pub(crate) struct Shared {
    pub commands: mpsc::Sender<Command>,
    /// Weak, so that the channel closes (and subscriptions end) when the
    /// event loop, which holds the only strong sender, stops.
    pub events: broadcast::WeakSender<NodeEvent>,
    pub peer_id: PeerId,
    pub trust: Arc<Trust>,
    pub config: NodeConfig,
    pub registry: Arc<Registry>,
    pub streams: Mutex<libp2p_stream::Control>,
    pub resources: Mutex<ResourceIndex>,
    pub started: Instant,
}

/// A cloneable handle to a running node. Dropping every handle does not stop
/// the node; call [`NodeHandle::stop`].
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) shared: Arc<Shared>,
}

impl NodeHandle {
    async fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.shared
            .commands
            .send(make(reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.shared.peer_id
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &NodeConfig {
        &self.shared.config
    }

    /// The metrics registry (libp2p and node counters).
    pub fn registry(&self) -> Arc<Registry> {
        self.shared.registry.clone()
    }

    /// Subscribes to node events.
    pub fn subscribe_events(&self) -> EventSubscription {
        let receiver = match self.shared.events.upgrade() {
            Some(sender) => sender.subscribe(),
            // Stopped: a subscription that ends at once.
            None => broadcast::channel(1).1,
        };
        EventSubscription::new(receiver)
    }

    /// Waits until every configured listener has an address; returns them.
    pub(crate) async fn wait_listening(&self) -> Result<Vec<Multiaddr>, NodeError> {
        self.request(|reply| Command::WaitListening { reply }).await
    }

    /// Addresses we listen on, each ending in `/p2p/<our peer id>`.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        self.request(|reply| Command::ListenAddrs { reply }).await
    }

    /// Dials `addr` and waits for the connection; returns the peer's id.
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId, NodeError> {
        let timeout = self.shared.config.dial_timeout();
        let fut = self.request(|reply| Command::Connect {
            addr: addr.clone(),
            reply,
        });
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| NodeError::DialTimeout {
                addr,
                secs: timeout.as_secs(),
            })?
    }

    /// Closes every connection to `peer`; returns once they are closed.
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), NodeError> {
        self.request(|reply| Command::Disconnect { peer, reply })
            .await
    }

    /// Connected peers with their details.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NodeError> {
        self.request(|reply| Command::Peers { reply }).await
    }

    /// Whether `peer` has an open connection.
    pub async fn is_connected(&self, peer: PeerId) -> Result<bool, NodeError> {
        Ok(self.peers().await?.iter().any(|p| p.peer_id == peer))
    }

    fn check_size(&self, size: usize) -> Result<(), NodeError> {
        let max = self.shared.config.max_message_size;
        if size > max {
            return Err(NodeError::MessageTooLarge { size, max });
        }
        Ok(())
    }

    /// Sends a direct message to the handler of `protocol` on `peer` and
    /// returns its reply. Both travel in signed envelopes (unless disabled),
    /// and the reply must be signed by `peer`.
    pub async fn send_to(
        &self,
        peer: PeerId,
        protocol: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, NodeError> {
        self.check_size(payload.len())?;
        let payload = self.wrap(MessageKind::Direct, protocol, payload).await?;
        let protocol = protocol.to_string();
        let reply = self
            .request(|reply| Command::SendTo {
                peer,
                protocol: protocol.clone(),
                payload,
                reply,
            })
            .await?;
        let opened = self.unwrap(&reply, MessageKind::DirectReply, &protocol, Some(peer))?;
        Ok(opened.1)
    }

    /// Signs `payload` into an envelope on a blocking thread: an ML-DSA-65
    /// signature takes about a millisecond, too long to hold a runtime worker
    /// that also drives event loops and (in the app) IPC; concurrent callers
    /// sign in parallel.
    pub(crate) async fn wrap(
        &self,
        kind: MessageKind,
        context: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, NodeError> {
        let trust = self.shared.trust.clone();
        let context = context.to_string();
        match tokio::task::spawn_blocking(move || trust.wrap(kind, &context, payload)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: the runtime is shutting down.
            Err(_) => Err(NodeError::Stopped),
        }
    }

    pub(crate) fn unwrap(
        &self,
        bytes: &[u8],
        kind: MessageKind,
        context: &str,
        expected: Option<PeerId>,
    ) -> Result<(Option<PeerId>, Vec<u8>), NodeError> {
        self.shared.trust.unwrap(bytes, kind, context, expected)
    }

    /// Our key set (for signing in protocol handlers).
    pub fn identity(&self) -> Arc<NodeIdentity> {
        self.shared.trust.identity().clone()
    }

    /// The verified PQ identity record of `peer` (ours for our own id), if
    /// it was exchanged.
    pub fn pq_record(&self, peer: &PeerId) -> Option<PqIdentityRecord> {
        self.shared.trust.record_of(peer)
    }

    /// Seals `plaintext` to the given peers' verified PQ identity records.
    pub fn seal_to(
        &self,
        peers: &[PeerId],
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, NodeError> {
        self.shared.trust.seal_to(peers, plaintext, aad)
    }

    /// Opens a payload sealed to us.
    pub fn open_sealed(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, sealed::SealError> {
        self.shared.trust.open_sealed(sealed, aad)
    }

    /// Publishes `data` on `topic` in a signed envelope; returns the message id.
    pub async fn broadcast(&self, topic: &str, data: Vec<u8>) -> Result<String, NodeError> {
        self.check_size(data.len())?;
        let data = self.wrap(MessageKind::Gossip, topic, data).await?;
        self.broadcast_raw(topic, data).await
    }

    /// Publishes `bytes` on `topic` exactly as given, without an envelope.
    /// For simulations and tests (receivers that expect envelopes reject
    /// such messages and penalise the sender).
    pub async fn broadcast_raw(&self, topic: &str, bytes: Vec<u8>) -> Result<String, NodeError> {
        let topic = topic.to_string();
        self.request(|reply| Command::Broadcast {
            topic,
            data: bytes,
            reply,
        })
        .await
    }

    /// Subscribes to `topic`; `false` if already subscribed.
    pub async fn subscribe(&self, topic: &str) -> Result<bool, NodeError> {
        let topic = topic.to_string();
        self.request(|reply| Command::Subscribe { topic, reply })
            .await
    }

    /// Unsubscribes from `topic`; `false` if not subscribed.
    pub async fn unsubscribe(&self, topic: &str) -> Result<bool, NodeError> {
        let topic = topic.to_string();
        self.request(|reply| Command::Unsubscribe { topic, reply })
            .await
    }

    /// Waits until at least `count` connected peers are subscribed to `topic`.
    pub async fn wait_for_topic_peers(
        &self,
        topic: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<(), NodeError> {
        let topic_name = topic.to_string();
        let fut = self.request(|reply| Command::WaitTopicPeers {
            topic: topic_name,
            count,
            reply,
        });
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| NodeError::Timeout {
                what: format!("{count} peers on topic {topic:?}"),
                secs: timeout.as_secs(),
            })?
    }

    /// Registers a protocol handler.
    pub async fn register_handler(
        &self,
        handler: Arc<dyn ProtocolHandler>,
    ) -> Result<(), NodeError> {
        if !handler.protocol_id().starts_with('/') {
            return Err(NodeError::InvalidProtocol(
                handler.protocol_id().to_string(),
            ));
        }
        self.request(|reply| Command::RegisterHandler { handler, reply })
            .await
    }

    /// Removes the handler of `protocol`.
    pub async fn unregister_handler(&self, protocol: &str) -> Result<(), NodeError> {
        let protocol = protocol.to_string();
        self.request(|reply| Command::UnregisterHandler { protocol, reply })
            .await
    }

    /// Opens a raw stream to `peer` on `protocol` (the peer's handler must
    /// accept streams).
    pub async fn open_stream(&self, peer: PeerId, protocol: &str) -> Result<Stream, NodeError> {
        let proto = StreamProtocol::try_from_owned(protocol.to_string())
            .map_err(|_| NodeError::InvalidProtocol(protocol.to_string()))?;
        let mut control = self
            .shared
            .streams
            .lock()
            .expect("stream control lock")
            .clone();
        control
            .open_stream(peer, proto)
            .await
            .map_err(|e| NodeError::Stream {
                peer,
                reason: e.to_string(),
            })
    }

    /// Stores a record in the DHT.
    pub async fn put_record(&self, record: kad::Record) -> Result<(), NodeError> {
        self.request(|reply| Command::PutRecord { record, reply })
            .await
    }

    /// Fetches a record from the DHT (the local store included).
    pub async fn get_record(&self, key: kad::RecordKey) -> Result<kad::Record, NodeError> {
        self.request(|reply| Command::GetRecord { key, reply })
            .await
    }

    /// Announces that we provide `key`.
    pub async fn start_providing(&self, key: kad::RecordKey) -> Result<(), NodeError> {
        self.request(|reply| Command::StartProviding { key, reply })
            .await
    }

    /// Finds the providers of `key`.
    pub async fn get_providers(&self, key: kad::RecordKey) -> Result<HashSet<PeerId>, NodeError> {
        self.request(|reply| Command::GetProviders { key, reply })
            .await
    }

    /// Changes the connection policy (saved to the policy file) and returns it.
    pub async fn update_policy(&self, change: PolicyChange) -> Result<Policy, NodeError> {
        self.request(|reply| Command::UpdatePolicy { change, reply })
            .await
    }

    /// The connection policy.
    pub async fn policy(&self) -> Result<Policy, NodeError> {
        self.update_policy(PolicyChange::None).await
    }

    /// Denies `peer`: closes its connections and refuses new ones.
    pub async fn block_peer(&self, peer: PeerId) -> Result<(), NodeError> {
        self.update_policy(PolicyChange::Deny(peer)).await.map(drop)
    }

    /// Takes `peer` off the deny (and allow) list.
    pub async fn unblock_peer(&self, peer: PeerId) -> Result<(), NodeError> {
        self.update_policy(PolicyChange::Unlist(peer))
            .await
            .map(drop)
    }

    /// A snapshot of counters and state.
    pub async fn stats(&self) -> Result<NodeStats, NodeError> {
        let mut stats = self.request(|reply| Command::Stats { reply }).await?;
        (stats.bytes_in, stats.bytes_out) = metrics::bandwidth_totals(&self.shared.registry);
        stats.uptime_secs = self.shared.started.elapsed().as_secs();
        Ok(stats)
    }

    /// Reachability, relay reservations and hole-punch counts.
    pub async fn nat_status(&self) -> Result<crate::nat::NatStatus, NodeError> {
        self.request(|reply| Command::Nat { reply }).await
    }

    /// Stops the node: closes connections and ends the event loop.
    pub async fn stop(&self) -> Result<(), NodeError> {
        let (reply, rx) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Shutdown { reply })
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Resolves once the event loop has ended (stopped by any handle).
    pub async fn wait_stopped(&self) {
        self.shared.commands.closed().await
    }

    /// Whether the event loop still runs.
    pub fn is_running(&self) -> bool {
        !self.shared.commands.is_closed()
    }
}
