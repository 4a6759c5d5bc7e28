//! Snapshots of the node's state and counters, as `NodeHandle::stats` returns them.

use std::collections::BTreeMap;

use libp2p::{Multiaddr, PeerId};
use serde::Serialize;

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

/// What the node's DHT store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DhtStoreStats {
    /// Records stored (ours and peers').
    pub records: usize,
    /// Their values' bytes.
    pub bytes: usize,
    /// Records peers PUT to us that the record policy stored.
    pub from_peers: usize,
    /// Records peers PUT to us that were stored or refused, since start.
    pub puts_handled: u64,
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
