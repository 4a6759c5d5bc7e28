//! `conclave-node`: the Conclave peer as a library.
//!
//! [`Node::start`] builds a libp2p swarm (QUIC, TCP, WebSocket, relay;
//! identify, ping, Kademlia, gossipsub with peer scoring, mDNS, direct
//! messages, AutoNAT, DCUtR, connection limits) owned by one event-loop task,
//! and returns a cloneable [`NodeHandle`] for everything else. Nothing here
//! depends on a GUI.
#![deny(missing_docs)]

// The derive generates an event enum whose variants cannot carry docs.
#[allow(missing_docs)]
pub mod behaviour;
pub mod clock;
mod command;
pub mod config;
pub mod control;
pub mod error;
mod event_loop;
pub mod events;
pub mod gate;
pub mod gossip;
mod handle;
pub mod identity;
pub mod inbox;
pub mod logging;
pub mod metrics;
pub mod nat;
mod node;
pub mod peers;
pub mod profile;
pub mod profile_node;
pub mod protocol;
pub mod records;
pub mod resources;
pub mod state_file;
mod stats;
pub mod store;
pub mod transport;
mod trust;

pub use command::PolicyChange;
pub use config::NodeConfig;
pub use error::NodeError;
pub use events::{EventSubscription, GossipMessage, NodeEvent};
pub use handle::NodeHandle;
pub use identity::{NodeIdentity, PqIdentityRecord};
pub use libp2p::{identity::Keypair, Multiaddr, PeerId};
pub use node::Node;
pub use peers::PeerInfo;
pub use profile_node::ProfileNode;
pub use protocol::{HandlerError, ProtocolHandler};
pub use resources::ResourceRecord;
pub use stats::{DhtStoreStats, NodeStats, TopicStats};
