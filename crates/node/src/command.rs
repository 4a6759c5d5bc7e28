//! What a [`NodeHandle`](crate::NodeHandle) asks of the event loop: one
//! [`Command`] per operation, each answered on its own oneshot [`Reply`].

use std::{collections::HashSet, sync::Arc};

use libp2p::{kad, Multiaddr, PeerId};
use tokio::sync::oneshot;

use crate::{
    error::NodeError,
    gate::Policy,
    nat::NatStatus,
    peers::PeerInfo,
    protocol::ProtocolHandler,
    stats::{DhtStoreStats, NodeStats},
};

/// Capacity of the command channel: callers wait when the loop is this far behind.
pub(crate) const COMMAND_BUFFER: usize = 256;

/// The event loop's answer to one command.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

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
    DhtStore {
        reply: Reply<DhtStoreStats>,
    },
    Nat {
        reply: Reply<NatStatus>,
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
