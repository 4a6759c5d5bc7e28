//! `NodeHandle`: the cloneable client of a running node.
//!
//! Every call becomes a [`Command`] on a bounded channel to the event loop,
//! which owns the swarm, and waits for the loop's reply on a oneshot channel.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use libp2p::{kad, Multiaddr, PeerId, Stream, StreamProtocol};
use prometheus_client::registry::Registry;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{
    clock::unix_secs,
    command::{Command, PolicyChange, Reply},
    config::NodeConfig,
    error::{ConnectionError, DhtError, GossipError, InputError, NodeError, ProtocolError},
    events::{EventSubscription, NodeEvent},
    gate::Policy,
    identity::{envelope::MessageKind, sealed, NodeIdentity, PqIdentityRecord},
    metrics,
    nat::NatStatus,
    peers::PeerInfo,
    protocol::ProtocolHandler,
    resources::{self, ResourceIndex, ResourceRecord},
    stats::{DhtStoreStats, NodeStats},
    trust::Trust,
};

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
            .map_err(|_| ConnectionError::DialTimeout {
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
            return Err(InputError::MessageTooLarge { size, max }.into());
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
    async fn wrap(
        &self,
        kind: MessageKind,
        context: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, NodeError> {
        let trust = self.shared.trust.clone();
        let context = context.to_string();
        match tokio::task::spawn_blocking(move || trust.wrap(kind, &context, payload)).await {
            Ok(result) => Ok(result?),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: the runtime is shutting down.
            Err(_) => Err(NodeError::Stopped),
        }
    }

    fn unwrap(
        &self,
        bytes: &[u8],
        kind: MessageKind,
        context: &str,
        expected: Option<PeerId>,
    ) -> Result<(Option<PeerId>, Vec<u8>), NodeError> {
        Ok(self.shared.trust.unwrap(bytes, kind, context, expected)?)
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
            .map_err(|_| GossipError::TopicPeersTimeout {
                topic: topic.to_string(),
                count,
                secs: timeout.as_secs(),
            })?
    }

    /// Registers a protocol handler.
    pub async fn register_handler(
        &self,
        handler: Arc<dyn ProtocolHandler>,
    ) -> Result<(), NodeError> {
        if !handler.protocol_id().starts_with('/') {
            return Err(ProtocolError::InvalidId(handler.protocol_id().to_string()).into());
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
            .map_err(|_| ProtocolError::InvalidId(protocol.to_string()))?;
        let mut control = self
            .shared
            .streams
            .lock()
            .expect("stream control lock")
            .clone();
        control
            .open_stream(peer, proto)
            .await
            .map_err(|source| ConnectionError::Stream { peer, source }.into())
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

    /// Announces a resource for `ttl`. Stored locally at once and replicated
    /// to the peers closest to its key when there are any.
    pub async fn announce_resource(
        &self,
        kind: &str,
        id: &str,
        data: serde_json::Value,
        ttl: Duration,
    ) -> Result<ResourceRecord, NodeError> {
        let (record, value) = ResourceRecord::announce(kind, id, data, self.peer_id(), ttl)?;
        let live = self
            .shared
            .resources
            .lock()
            .expect("resource index lock")
            .insert(record.clone())?;
        let index_expiry = live
            .iter()
            .map(|r| r.expires_at)
            .max()
            .unwrap_or(record.expires_at);

        // Records are signed envelopes bound to their key: nobody else can
        // publish under our name, nor move a record to another key.
        let key = resources::record_key(kind, id);
        let mut dht_record = kad::Record::new(
            kad::RecordKey::new(&key),
            self.wrap(MessageKind::Resource, &key, value).await?,
        );
        dht_record.expires = Some(resources::expiry_instant(record.expires_at));
        let index_name = resources::index_key(kind, &self.peer_id());
        let index_value = resources::index_value(kind, &live)?;
        let mut index = kad::Record::new(
            kad::RecordKey::new(&index_name),
            self.wrap(MessageKind::Resource, &index_name, index_value)
                .await?,
        );
        index.expires = Some(resources::expiry_instant(index_expiry));

        // Replication failures (e.g. no peers yet) leave the local copy in
        // place, served to anyone who asks us; they are not fatal.
        for r in [dht_record, index] {
            if let Err(e) = self.put_record(r).await {
                tracing::warn!(%e, kind, id, "resource stored locally only");
            }
        }
        if let Err(e) = self.start_providing(resources::type_key(kind)).await {
            tracing::warn!(%e, kind, "provider record stored locally only");
        }
        Ok(record)
    }

    /// Finds live resources of `kind` from every provider.
    pub async fn discover_resources(&self, kind: &str) -> Result<Vec<ResourceRecord>, NodeError> {
        resources::check_name("type", kind)?;
        let providers = self.get_providers(resources::type_key(kind)).await?;
        let now = unix_secs();
        let mut found = Vec::new();
        for provider in providers {
            let index_name = resources::index_key(kind, &provider);
            let record = match self.get_record(kad::RecordKey::new(&index_name)).await {
                Ok(r) => r,
                Err(NodeError::Dht(DhtError::NotFound)) => continue,
                Err(e) => {
                    tracing::debug!(%e, %provider, "resource index unavailable");
                    continue;
                }
            };
            let value = match self.unwrap(
                &record.value,
                MessageKind::Resource,
                &index_name,
                Some(provider),
            ) {
                Ok((_, value)) => value,
                Err(e) => {
                    tracing::debug!(%e, %provider, "resource index refused");
                    continue;
                }
            };
            match resources::parse_index(&value, kind, provider, now) {
                Some(list) => found.extend(list),
                None => tracing::debug!(%provider, "malformed resource index ignored"),
            }
        }
        found.sort_by(|a, b| (&a.id, a.provider).cmp(&(&b.id, b.provider)));
        Ok(found)
    }

    /// Fetches one resource; [`ResourceError::NotFound`](crate::resources::ResourceError::NotFound)
    /// if it does not exist or has expired.
    pub async fn get_resource(&self, kind: &str, id: &str) -> Result<ResourceRecord, NodeError> {
        resources::check_name("type", kind)?;
        resources::check_name("id", id)?;
        let key = resources::record_key(kind, id);
        let record = match self.get_record(kad::RecordKey::new(&key)).await {
            Ok(r) => r,
            Err(NodeError::Dht(DhtError::NotFound)) => {
                return Err(resources::not_found(kind, id).into())
            }
            Err(e) => return Err(e),
        };
        let (signer, value) = self.unwrap(&record.value, MessageKind::Resource, &key, None)?;
        Ok(ResourceRecord::fetched(&value, kind, id, signer)?)
    }

    /// What the DHT store holds.
    pub async fn dht_store(&self) -> Result<DhtStoreStats, NodeError> {
        self.request(|reply| Command::DhtStore { reply }).await
    }

    /// A snapshot of counters and state.
    pub async fn stats(&self) -> Result<NodeStats, NodeError> {
        let mut stats = self.request(|reply| Command::Stats { reply }).await?;
        (stats.bytes_in, stats.bytes_out) = metrics::bandwidth_totals(&self.shared.registry);
        stats.uptime_secs = self.shared.started.elapsed().as_secs();
        Ok(stats)
    }

    /// Reachability, relay reservations and hole-punch counts.
    pub async fn nat_status(&self) -> Result<NatStatus, NodeError> {
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
