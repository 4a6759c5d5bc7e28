//! Events the node publishes to its subscribers.

use libp2p::{Multiaddr, PeerId};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::peers::PeerInfo;

/// A gossip message received on a subscribed topic.
#[derive(Debug, Clone, Serialize)]
pub struct GossipMessage {
    /// Topic name.
    pub topic: String,
    /// The peer that published it (the signed author).
    pub from: Option<PeerId>,
    /// The peer that forwarded it to us.
    pub via: PeerId,
    /// Payload.
    #[serde(skip)]
    pub data: Vec<u8>,
    /// Message id (BLAKE3 of the data, hex).
    pub id: String,
}

/// How a peer was discovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoverySource {
    /// Multicast DNS on the local network.
    Mdns,
    /// The Kademlia DHT.
    Kad,
    /// A peer's identify report.
    Identify,
}

/// Something that happened in the node.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeEvent {
    /// The node listens on a new address.
    ListenAddrAdded {
        /// The address.
        addr: Multiaddr,
    },
    /// The node no longer listens on an address.
    ListenAddrRemoved {
        /// The address.
        addr: Multiaddr,
    },
    /// A peer's first connection was established.
    PeerConnected(PeerInfo),
    /// A peer's details changed.
    PeerUpdated(PeerInfo),
    /// A peer's last connection closed.
    PeerDisconnected {
        /// The peer.
        peer_id: PeerId,
    },
    /// A peer was discovered.
    PeerDiscovered {
        /// The peer.
        peer_id: PeerId,
        /// Addresses it was found at.
        addrs: Vec<Multiaddr>,
        /// How.
        source: DiscoverySource,
    },
    /// A gossip message arrived.
    Message(GossipMessage),
    /// A dial to a known peer failed.
    DialFailed {
        /// The peer, if known.
        peer_id: Option<PeerId>,
        /// Why.
        error: String,
    },
    /// Our reachability changed (AutoNAT).
    ReachabilityChanged {
        /// The new reachability.
        reachability: crate::nat::Reachability,
    },
    /// A relay reservation became active or was lost.
    RelayReservation {
        /// The relay.
        relay: PeerId,
        /// Whether we now hold a reservation on it.
        active: bool,
    },
    /// A hole punch (relayed to direct upgrade) finished.
    HolePunch {
        /// The peer.
        peer_id: PeerId,
        /// Whether a direct connection resulted.
        success: bool,
    },
    /// This subscriber fell behind and missed `missed` events.
    Lagged {
        /// Number of events dropped for this subscriber.
        missed: u64,
    },
}

/// A subscription to node events. A subscriber that falls behind gets a
/// [`NodeEvent::Lagged`] and continues with the newest events.
pub struct EventSubscription {
    receiver: broadcast::Receiver<NodeEvent>,
}

impl EventSubscription {
    pub(crate) fn new(receiver: broadcast::Receiver<NodeEvent>) -> Self {
        Self { receiver }
    }

    /// The next event; `None` once the node has stopped.
    pub async fn recv(&mut self) -> Option<NodeEvent> {
        match self.receiver.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(NodeEvent::Lagged { missed }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lagging_subscriber_gets_lagged_then_newest() {
        let (tx, rx) = broadcast::channel(2);
        let mut sub = EventSubscription::new(rx);
        for i in 0..5u16 {
            tx.send(NodeEvent::ListenAddrAdded {
                addr: format!("/memory/{i}").parse().unwrap(),
            })
            .unwrap();
        }
        assert!(matches!(
            sub.recv().await,
            Some(NodeEvent::Lagged { missed: 3 })
        ));
        match sub.recv().await {
            Some(NodeEvent::ListenAddrAdded { addr }) => assert_eq!(addr.to_string(), "/memory/3"),
            other => panic!("unexpected {other:?}"),
        }
        drop(tx);
        assert!(sub.recv().await.is_some());
        assert!(sub.recv().await.is_none());
    }
}
