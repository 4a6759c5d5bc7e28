//! What the node knows about each connected peer.

use std::{collections::HashMap, time::Duration};

use libp2p::{core::ConnectedPoint, multiaddr::Protocol, swarm::ConnectionId, Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::clock::unix_secs;

/// Transport a connection runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum TransportKind {
    /// QUIC v1 (TLS 1.3).
    Quic,
    /// TCP with Noise and Yamux.
    Tcp,
    /// WebSocket over TCP.
    Websocket,
    /// libp2p's in-memory transport.
    Memory,
    /// A relay circuit whose underlying transport is not known here.
    Relay,
    /// Anything else.
    Other,
}

impl TransportKind {
    /// Classifies an address by its innermost transport (the hop to the relay
    /// for relayed addresses).
    pub fn of(addr: &Multiaddr) -> Self {
        let mut kind = TransportKind::Other;
        for proto in addr.iter() {
            kind = match proto {
                Protocol::QuicV1 => TransportKind::Quic,
                Protocol::Ws(_) | Protocol::Wss(_) => TransportKind::Websocket,
                Protocol::Tcp(_) if kind != TransportKind::Websocket => TransportKind::Tcp,
                Protocol::Memory(_) => TransportKind::Memory,
                Protocol::P2pCircuit => {
                    if kind == TransportKind::Other {
                        kind = TransportKind::Relay;
                    }
                    break;
                }
                _ => kind,
            };
        }
        kind
    }

    /// Lower-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Quic => "quic",
            TransportKind::Tcp => "tcp",
            TransportKind::Websocket => "websocket",
            TransportKind::Memory => "memory",
            TransportKind::Relay => "relay",
            TransportKind::Other => "other",
        }
    }
}

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum Direction {
    /// We dialled.
    Outbound,
    /// They dialled.
    Inbound,
}

/// Whether a connection goes straight to the peer or through a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum PathKind {
    /// A direct connection.
    Direct,
    /// A circuit relay v2 connection.
    Relayed,
}

/// One open connection to a peer.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ConnectionInfo {
    /// The peer's address on this connection.
    #[cfg_attr(feature = "specta", specta(type = String))]
    pub remote_addr: Multiaddr,
    /// Transport.
    pub transport: TransportKind,
    /// Who dialled.
    pub direction: Direction,
    /// Direct or relayed.
    pub path: PathKind,
    /// Channel security: `tls13+X25519MLKEM768` for QUIC (hybrid post-quantum
    /// key exchange, as rustls negotiates between Conclave nodes), `noise`
    /// for TCP, WebSocket and memory (classical; payloads still travel in
    /// signed envelopes).
    pub security: &'static str,
    /// Unix time (seconds) the connection was established.
    #[cfg_attr(feature = "specta", specta(type = f64))]
    pub established_at: u64,
}

impl ConnectionInfo {
    /// How much a connection is preferred, lower first: direct before
    /// relayed (a hole punch's result is the path that matters), then QUIC
    /// before TCP before WebSocket, the way the transports are dialled.
    pub fn rank(&self) -> (u8, u8) {
        let path = match self.path {
            PathKind::Direct => 0,
            PathKind::Relayed => 1,
        };
        let transport = match self.transport {
            TransportKind::Quic => 0,
            TransportKind::Tcp => 1,
            TransportKind::Websocket => 2,
            TransportKind::Memory => 3,
            TransportKind::Relay | TransportKind::Other => 4,
        };
        (path, transport)
    }

    /// Describes a newly established connection.
    pub fn new(endpoint: &ConnectedPoint) -> Self {
        let (mut remote_addr, direction) = match endpoint {
            ConnectedPoint::Dialer { address, .. } => (address.clone(), Direction::Outbound),
            ConnectedPoint::Listener { send_back_addr, .. } => {
                (send_back_addr.clone(), Direction::Inbound)
            }
        };
        // Dialled addresses can end in the peer id twice (ours and libp2p's).
        let mut tail = remote_addr.iter().collect::<Vec<_>>().into_iter().rev();
        if let (Some(Protocol::P2p(a)), Some(Protocol::P2p(b))) = (tail.next(), tail.next()) {
            if a == b {
                remote_addr.pop();
            }
        }
        let path = if endpoint.is_relayed() {
            PathKind::Relayed
        } else {
            PathKind::Direct
        };
        let transport = TransportKind::of(&remote_addr);
        // A relayed connection is secured end to end by Noise over the circuit.
        let security = match (transport, path) {
            (TransportKind::Quic, PathKind::Direct) => "tls13+X25519MLKEM768",
            _ => "noise",
        };
        Self {
            transport,
            security,
            remote_addr,
            direction,
            path,
            established_at: unix_secs(),
        }
    }
}

/// A connected peer as shown to users and tools.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct PeerInfo {
    /// The peer's id.
    #[cfg_attr(feature = "specta", specta(type = String))]
    pub peer_id: PeerId,
    /// Addresses of its open connections, then the addresses it listens on.
    #[cfg_attr(feature = "specta", specta(type = Vec<String>))]
    pub addrs: Vec<Multiaddr>,
    /// Transport of the preferred connection (see [`ConnectionInfo::rank`]).
    pub transport: TransportKind,
    /// Direction of the preferred connection.
    pub direction: Direction,
    /// Path of the preferred connection: `direct` as soon as one direct
    /// connection is open, even while an older relayed one lingers.
    pub path: PathKind,
    /// Open connections besides the preferred one.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub other_connections: usize,
    /// Last ping round trip, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Agent version from identify.
    pub agent_version: Option<String>,
    /// Protocols the peer supports, from identify.
    pub protocols: Vec<String>,
    /// Security of the preferred connection (see [`ConnectionInfo::security`]).
    pub security: &'static str,
    /// Whether the peer's PQ identity record was received and verified.
    pub pq_identity: bool,
    /// Gossipsub score, where scoring knows the peer.
    pub score: Option<f64>,
    /// Gossip messages this peer forwarded to us, by validation outcome.
    pub messages: MessageCounters,
    /// Every open connection.
    pub connections: Vec<ConnectionInfo>,
}

/// Gossip messages from one peer by validation outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MessageCounters {
    /// Valid and forwarded.
    #[cfg_attr(feature = "specta", specta(type = f64))]
    pub accepted: u64,
    /// Invalid (bad signature, malformed): the peer is penalised.
    #[cfg_attr(feature = "specta", specta(type = f64))]
    pub rejected: u64,
    /// Stale, replayed or over a rate limit: dropped without penalty.
    #[cfg_attr(feature = "specta", specta(type = f64))]
    pub ignored: u64,
}

/// Per-peer state kept by the event loop. Bounded by the connection limits:
/// an entry exists only while the peer has a connection.
#[derive(Debug, Default)]
pub(crate) struct PeerState {
    pub connections: Vec<(ConnectionId, ConnectionInfo)>,
    pub rtt: Option<Duration>,
    pub agent_version: Option<String>,
    pub protocols: Vec<String>,
    pub listen_addrs: Vec<Multiaddr>,
    pub pq_verified: bool,
}

/// Listen addresses kept per peer (identify can report many).
const MAX_LISTEN_ADDRS: usize = 16;
/// Protocols kept per peer.
const MAX_PROTOCOLS: usize = 64;

impl PeerState {
    pub fn set_identify(
        &mut self,
        agent: String,
        protocols: Vec<String>,
        mut listen_addrs: Vec<Multiaddr>,
    ) {
        self.agent_version = Some(agent);
        self.protocols = protocols.into_iter().take(MAX_PROTOCOLS).collect();
        listen_addrs.truncate(MAX_LISTEN_ADDRS);
        self.listen_addrs = listen_addrs;
    }

    pub fn info(
        &self,
        peer_id: PeerId,
        score: Option<f64>,
        messages: MessageCounters,
    ) -> Option<PeerInfo> {
        // Among equally preferred connections the oldest (first) stays.
        let preferred = &self.connections.iter().min_by_key(|(_, c)| c.rank())?.1;
        let mut addrs: Vec<Multiaddr> = self
            .connections
            .iter()
            .map(|(_, c)| c.remote_addr.clone())
            .collect();
        for a in &self.listen_addrs {
            if !addrs.contains(a) {
                addrs.push(a.clone());
            }
        }
        Some(PeerInfo {
            peer_id,
            addrs,
            transport: preferred.transport,
            direction: preferred.direction,
            path: preferred.path,
            other_connections: self.connections.len() - 1,
            security: preferred.security,
            pq_identity: self.pq_verified,
            messages,
            rtt_ms: self.rtt.map(|d| d.as_secs_f64() * 1000.0),
            agent_version: self.agent_version.clone(),
            protocols: self.protocols.clone(),
            score,
            connections: self.connections.iter().map(|(_, c)| c.clone()).collect(),
        })
    }
}

/// The table of connected peers.
pub(crate) type PeerTable = HashMap<PeerId, PeerState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_are_classified() {
        let of = |s: &str| TransportKind::of(&s.parse().unwrap());
        assert_eq!(of("/ip4/127.0.0.1/udp/1/quic-v1"), TransportKind::Quic);
        assert_eq!(of("/ip4/127.0.0.1/tcp/1"), TransportKind::Tcp);
        assert_eq!(of("/ip4/127.0.0.1/tcp/1/ws"), TransportKind::Websocket);
        assert_eq!(of("/memory/5"), TransportKind::Memory);
        assert_eq!(
            of("/ip4/1.2.3.4/udp/1/quic-v1/p2p/12D3KooWGBfK8wqydXUoqdmdB5vUuVuj6hsuFFDcW1jfsZqTmF3k/p2p-circuit"),
            TransportKind::Quic
        );
    }

    fn connection(addr: &str, relayed: bool) -> ConnectionInfo {
        let address: Multiaddr = addr.parse().unwrap();
        let endpoint = ConnectedPoint::Dialer {
            address,
            role_override: libp2p::core::Endpoint::Dialer,
            port_use: libp2p::core::transport::PortUse::Reuse,
        };
        let mut info = ConnectionInfo::new(&endpoint);
        if relayed {
            info.path = PathKind::Relayed;
        }
        info
    }

    fn peer_with(connections: Vec<ConnectionInfo>) -> PeerInfo {
        let state = PeerState {
            connections: connections
                .into_iter()
                .enumerate()
                .map(|(i, c)| (ConnectionId::new_unchecked(i), c))
                .collect(),
            ..PeerState::default()
        };
        state
            .info(PeerId::random(), None, MessageCounters::default())
            .expect("a peer with connections")
    }

    #[test]
    fn a_direct_connection_is_shown_over_an_older_relayed_one() {
        let relayed = "/ip4/10.0.0.1/udp/1/quic-v1/p2p/12D3KooWGBfK8wqydXUoqdmdB5vUuVuj6hsuFFDcW1jfsZqTmF3k/p2p-circuit";
        let peer = peer_with(vec![
            connection(relayed, true),
            connection("/ip4/192.0.2.7/tcp/4001", false),
        ]);
        assert_eq!(peer.path, PathKind::Direct);
        assert_eq!(peer.transport, TransportKind::Tcp);
        assert_eq!(peer.security, "noise");
        assert_eq!(peer.other_connections, 1);
        assert_eq!(
            peer.connections.len(),
            2,
            "every connection is still listed"
        );
    }

    #[test]
    fn quic_is_shown_over_tcp_and_the_oldest_among_equals() {
        let peer = peer_with(vec![
            connection("/ip4/192.0.2.7/tcp/4001", false),
            connection("/ip4/192.0.2.7/udp/4001/quic-v1", false),
            connection("/ip4/192.0.2.8/udp/4001/quic-v1", false),
        ]);
        assert_eq!(peer.transport, TransportKind::Quic);
        assert_eq!(peer.security, "tls13+X25519MLKEM768");
        assert_eq!(peer.addrs[1].to_string(), "/ip4/192.0.2.7/udp/4001/quic-v1");
        assert_eq!(peer.other_connections, 2);
        let only = peer_with(vec![connection("/ip4/192.0.2.7/tcp/4001", false)]);
        assert_eq!(only.other_connections, 0);
    }
}
