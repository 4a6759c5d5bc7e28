//! The node's composed libp2p behaviour.

use std::time::Duration;

use libp2p::{
    autonat, connection_limits, dcutr, gossipsub, identify,
    identity::Keypair,
    kad, mdns, memory_connection_limits, ping, relay,
    request_response::{self, ProtocolSupport},
    swarm::{behaviour::toggle::Toggle, NetworkBehaviour},
    StreamProtocol,
};

use crate::{
    config::{KadMode, NodeConfig},
    gossip,
    protocol::{
        DirectRequest, DirectResponse, PqIdentityMessage, DIRECT_PROTOCOL, PQ_IDENTITY_PROTOCOL,
    },
};

/// PQ identity exchange: each side sends its record, the other answers with its own.
pub type PqIdentityBehaviour =
    request_response::cbor::Behaviour<PqIdentityMessage, PqIdentityMessage>;

/// Largest DHT record value we store or serve.
pub const KAD_MAX_VALUE: usize = crate::records::MAX_RECORD_BYTES;
/// Largest DHT message (a record plus closer peers).
const KAD_MAX_PACKET: usize = KAD_MAX_VALUE + 64 * 1024;

/// Identify protocol version; peers with another major version are foreign.
pub const IDENTIFY_PROTOCOL: &str = "/conclave/1.0.0";

/// Direct-message codec: CBOR with size limits derived from the config.
pub type DirectBehaviour = request_response::cbor::Behaviour<DirectRequest, DirectResponse>;

/// Every protocol the node speaks. Gates come first so that a refused
/// connection never reaches the others.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Allow/deny lists, private mode, connection rate per peer.
    pub gate: crate::gate::Behaviour,
    /// Connection count limits.
    pub limits: connection_limits::Behaviour,
    /// Refuse connections when the machine is short of memory.
    pub memory_limits: memory_connection_limits::Behaviour,
    /// Peer agent, protocols and addresses.
    pub identify: identify::Behaviour,
    /// Liveness and round-trip time.
    pub ping: ping::Behaviour,
    /// The DHT.
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    /// Publish/subscribe.
    pub gossipsub: gossipsub::Behaviour,
    /// Local-network discovery (off when configured so).
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Direct messages to protocol handlers.
    pub direct: DirectBehaviour,
    /// PQ identity record exchange.
    pub pq_identity: PqIdentityBehaviour,
    /// Reservations and circuits on relays.
    pub relay_client: relay::client::Behaviour,
    /// Relay service for others (only with `relay_server`).
    pub relay_server: Toggle<relay::Behaviour>,
    /// Learns which of our addresses are publicly reachable.
    pub autonat_client: autonat::v2::client::Behaviour,
    /// Tests other peers' addresses for them.
    pub autonat_server: autonat::v2::server::Behaviour,
    /// Hole punching over relayed connections.
    pub dcutr: dcutr::Behaviour,
    /// Raw streams for protocol handlers that want them.
    pub streams: libp2p_stream::Behaviour,
}

impl Behaviour {
    /// Builds the behaviour for `keypair` under `config`.
    pub fn new(
        keypair: &Keypair,
        relay_client: relay::client::Behaviour,
        config: &NodeConfig,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let policy = match &config.policy_file {
            Some(file) => crate::gate::Policy::load(file)?,
            None => crate::gate::Policy::default(),
        };
        let peer_id = keypair.public().to_peer_id();

        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_per_peer(Some(config.max_connections_per_peer))
            .with_max_pending_incoming(Some(config.max_pending_connections))
            .with_max_pending_outgoing(Some(config.max_pending_connections));

        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.to_string(), keypair.public())
                .with_agent_version(format!("conclave/{}", env!("CARGO_PKG_VERSION")))
                .with_push_listen_addr_updates(true),
        );

        let kad_protocol = StreamProtocol::try_from_owned(config.kad_protocol.clone())?;
        let mut kad_config = kad::Config::new(kad_protocol);
        kad_config.set_query_timeout(Duration::from_secs(30));
        // Records are signed envelopes (about 5.5 KiB each) and provider
        // indexes list several records.
        kad_config.set_max_packet_size(KAD_MAX_PACKET);
        // Inbound records and provider records come to the event loop, which
        // stores only those that pass the record policy.
        kad_config.set_record_filtering(kad::StoreInserts::FilterBoth);
        let store = kad::store::MemoryStore::with_config(
            peer_id,
            kad::store::MemoryStoreConfig {
                max_records: crate::records::MAX_STORED_RECORDS,
                max_value_bytes: KAD_MAX_VALUE,
                ..Default::default()
            },
        );
        let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
        kad.set_mode(match config.kad_mode {
            KadMode::Server => Some(kad::Mode::Server),
            KadMode::Client => Some(kad::Mode::Client),
            KadMode::Auto => None,
        });

        let gossipsub = gossip::behaviour(
            keypair,
            Duration::from_millis(config.gossip_heartbeat_ms),
            config.max_message_size,
            config.envelopes,
        )?;

        let mdns = if config.mdns {
            Some(mdns::tokio::Behaviour::new(
                mdns::Config::default(),
                peer_id,
            )?)
        } else {
            None
        };

        // Room for the envelope (about 5.4 KiB of keys and signatures) and the
        // CBOR framing around the payload.
        let frame_limit = (config.max_message_size + 64 * 1024) as u64;
        let codec = request_response::cbor::codec::Codec::default()
            .set_request_size_maximum(frame_limit)
            .set_response_size_maximum(frame_limit);
        let direct = request_response::Behaviour::with_codec(
            codec,
            [(StreamProtocol::new(DIRECT_PROTOCOL), ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(Duration::from_secs(30))
                .with_max_concurrent_streams(128),
        );

        let pq_codec = request_response::cbor::codec::Codec::default()
            .set_request_size_maximum(16 * 1024)
            .set_response_size_maximum(16 * 1024);
        let pq_identity = request_response::Behaviour::with_codec(
            pq_codec,
            [(
                StreamProtocol::new(PQ_IDENTITY_PROTOCOL),
                ProtocolSupport::Full,
            )],
            request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
        );

        let relay_server = config.relay_server.then(|| {
            let limits = relay::Config {
                max_reservations: config.relay_max_reservations,
                max_reservations_per_peer: config.relay_max_reservations_per_peer,
                max_circuits: config.relay_max_circuits,
                max_circuits_per_peer: config.relay_max_circuits_per_peer,
                max_circuit_duration: Duration::from_secs(config.relay_circuit_secs),
                max_circuit_bytes: config.relay_circuit_bytes,
                ..relay::Config::default()
            };
            relay::Behaviour::new(peer_id, limits)
        });

        Ok(Self {
            gate: crate::gate::Behaviour::new(
                policy,
                config.policy_file.clone(),
                config.max_new_connections_per_sec,
            ),
            limits: connection_limits::Behaviour::new(limits),
            memory_limits: memory_connection_limits::Behaviour::with_max_percentage(
                config.max_memory_fraction,
            ),
            identify,
            ping: ping::Behaviour::new(ping::Config::new()),
            kad,
            gossipsub,
            mdns: mdns.into(),
            direct,
            pq_identity,
            relay_client,
            relay_server: relay_server.into(),
            autonat_client: autonat::v2::client::Behaviour::default(),
            autonat_server: autonat::v2::server::Behaviour::default(),
            dcutr: dcutr::Behaviour::new(peer_id),
            streams: libp2p_stream::Behaviour::new(),
        })
    }
}
