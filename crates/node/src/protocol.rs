//! Application protocols on top of the node.
//!
//! A feature (signing, CoinJoin, agent rooms) implements [`ProtocolHandler`]
//! and registers it on the [`NodeHandle`](crate::NodeHandle) at run time.
//! Direct messages to the handler's protocol id arrive in `handle_message`
//! (whose answer goes back to the sender); raw streams, if the handler wants
//! them, in `handle_stream`; peer lifecycle in the `on_peer_*` callbacks.

use futures::future::BoxFuture;
use libp2p::{Multiaddr, PeerId, Stream};
use serde::{Deserialize, Serialize};

use crate::peers::PeerInfo;

/// Protocol id of the direct-message request/response protocol.
pub const DIRECT_PROTOCOL: &str = "/conclave/direct/1.0.0";
/// Protocol id of the PQ identity record exchange.
pub const PQ_IDENTITY_PROTOCOL: &str = "/conclave/pq-id/1.0.0";

/// A PQ identity record on the wire (both request and response).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PqIdentityMessage {
    /// [`PqIdentityRecord::to_bytes`](crate::identity::PqIdentityRecord::to_bytes).
    #[serde(with = "serde_bytes")]
    pub record: Vec<u8>,
}

/// A handler's refusal of a message; its text goes back to the sender.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

/// An application protocol served by the node.
///
/// The `on_peer_*` callbacks run on the node's event loop: keep them short
/// (update state, send on a bounded channel) and never block.
pub trait ProtocolHandler: Send + Sync + 'static {
    /// Human-readable name, for logs and the UI.
    fn name(&self) -> &str;

    /// Protocol id, such as `/conclave/musig2/1.0.0`. Must start with '/'.
    fn protocol_id(&self) -> &str;

    /// Handles a direct message from `from`; the returned bytes are the reply.
    fn handle_message(
        &self,
        from: PeerId,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, HandlerError>>;

    /// Whether the handler accepts raw streams on its protocol id.
    fn accepts_streams(&self) -> bool {
        false
    }

    /// Handles an inbound raw stream (only if `accepts_streams`).
    fn handle_stream(&self, from: PeerId, stream: Stream) -> BoxFuture<'static, ()> {
        let _ = (from, stream);
        Box::pin(async {})
    }

    /// A peer was found (mDNS, DHT or identify) but may not be connected.
    fn on_peer_discovered(&self, peer: PeerId, addrs: &[Multiaddr]) {
        let _ = (peer, addrs);
    }

    /// A peer's first connection was established.
    fn on_peer_connected(&self, peer: &PeerInfo) {
        let _ = peer;
    }

    /// A peer's last connection closed.
    fn on_peer_disconnected(&self, peer: PeerId) {
        let _ = peer;
    }

    /// What we know of a connected peer changed (identify, RTT, new connection).
    fn on_peer_updated(&self, peer: &PeerInfo) {
        let _ = peer;
    }
}

/// A direct message on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectRequest {
    /// Protocol id of the handler it is for.
    pub protocol: String,
    /// Application payload.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// The answer to a direct message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DirectResponse {
    /// The handler's reply.
    Ok(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The handler (or the node) refused the message.
    Err(String),
}
