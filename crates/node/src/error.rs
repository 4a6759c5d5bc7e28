//! Errors of the node's public API.

use libp2p::{Multiaddr, PeerId};

/// What can go wrong when asking the node to do something.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The node has stopped (or is stopping) and takes no more commands.
    #[error("the node is not running")]
    Stopped,
    /// Building the node failed.
    #[error("cannot start the node: {0}")]
    Startup(String),
    /// Configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// Address that failed.
        addr: Multiaddr,
        /// Transport error.
        reason: String,
    },
    /// The text is not a multiaddr.
    #[error("invalid multiaddr {input:?}: {reason}")]
    InvalidMultiaddr {
        /// What was given.
        input: String,
        /// Parser error.
        reason: String,
    },
    /// The text is not a peer id.
    #[error("invalid peer id {0:?}")]
    InvalidPeerId(String),
    /// Dialling failed.
    #[error("cannot connect to {addr}: {reason}")]
    Dial {
        /// Address dialled.
        addr: Multiaddr,
        /// Why it failed.
        reason: String,
    },
    /// Dialling did not finish in time.
    #[error("connecting to {addr} timed out after {secs} s")]
    DialTimeout {
        /// Address dialled.
        addr: Multiaddr,
        /// Seconds waited.
        secs: u64,
    },
    /// The peer is not connected.
    #[error("peer {0} is not connected")]
    NotConnected(PeerId),
    /// A payload is larger than the configured limit.
    #[error("message of {size} bytes is larger than the limit of {max} bytes")]
    MessageTooLarge {
        /// Payload size.
        size: usize,
        /// Configured maximum (`max_message_size`).
        max: usize,
    },
    /// A direct message failed on the way or at the peer.
    #[error("message to {peer} failed: {reason}")]
    SendFailed {
        /// Recipient.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// The remote handler answered with an error.
    #[error("peer {peer} refused the message: {reason}")]
    Remote {
        /// Recipient.
        peer: PeerId,
        /// The handler's error text.
        reason: String,
    },
    /// Gossip publication failed.
    #[error("cannot publish on {topic:?}: {reason}")]
    Publish {
        /// Topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// Topic subscription failed.
    #[error("cannot subscribe to {topic:?}: {reason}")]
    Subscribe {
        /// Topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// A protocol handler with this id is already registered.
    #[error("a handler for protocol {0} is already registered")]
    HandlerExists(String),
    /// No protocol handler with this id.
    #[error("no handler registered for protocol {0}")]
    NoHandler(String),
    /// The protocol id is not valid (must start with '/').
    #[error("invalid protocol id {0:?}: it must start with '/'")]
    InvalidProtocol(String),
    /// A DHT operation failed.
    #[error("DHT {op} failed: {reason}")]
    Dht {
        /// Operation.
        op: &'static str,
        /// Why.
        reason: String,
    },
    /// Nothing was found.
    #[error("{0} not found")]
    NotFound(String),
    /// A resource record is malformed.
    #[error("invalid resource: {0}")]
    InvalidResource(String),
    /// Waiting for a condition timed out.
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// Seconds waited.
        secs: u64,
    },
    /// An envelope failed verification.
    #[error("{0}")]
    Envelope(#[from] crate::identity::envelope::EnvelopeError),
    /// Signing failed.
    #[error(transparent)]
    Identity(#[from] crate::identity::pq::IdentityError),
    /// A stream could not be opened.
    #[error("cannot open stream to {peer}: {reason}")]
    Stream {
        /// Peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
}

impl NodeError {
    /// Parses a multiaddr, naming the input on failure.
    pub fn parse_multiaddr(input: &str) -> Result<Multiaddr, NodeError> {
        input
            .trim()
            .parse()
            .map_err(|e: libp2p::multiaddr::Error| NodeError::InvalidMultiaddr {
                input: input.to_string(),
                reason: e.to_string(),
            })
    }

    /// Parses a peer id, naming the input on failure.
    pub fn parse_peer_id(input: &str) -> Result<PeerId, NodeError> {
        input
            .trim()
            .parse()
            .map_err(|_| NodeError::InvalidPeerId(input.to_string()))
    }
}
