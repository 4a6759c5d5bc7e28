//! Building the swarm: transports, bandwidth metrics and the behaviour.

use libp2p::{
    core::{muxing::StreamMuxerBox, transport::MemoryTransport, upgrade::Version},
    identity::Keypair,
    noise, tcp, yamux, Swarm, SwarmBuilder, Transport,
};
use prometheus_client::registry::Registry;

use crate::{
    behaviour::Behaviour,
    config::{NodeConfig, TransportMode},
    error::{NodeError, StartError},
};

/// Longest connection set-up (transport and security handshake). Under the
/// AutoNAT server's 10 s dial-back limit, so an unreachable address is
/// reported as a failed probe rather than a time-out nobody counts.
const CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);

fn startup<E>(layer: &'static str) -> impl Fn(E) -> NodeError
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    move |e| {
        StartError::Transport {
            layer,
            source: e.into(),
        }
        .into()
    }
}

/// Builds the swarm with the configured transport stack.
///
/// Network mode: QUIC v1 (tried first when both are known), TCP with Noise and
/// Yamux, DNS resolution, WebSocket, and relay circuits on top of all of them.
/// Memory mode: libp2p's in-memory transport with Noise and Yamux, plus relay
/// circuits, for simulations with many nodes.
pub async fn build_swarm(
    keypair: Keypair,
    config: &NodeConfig,
    registry: &mut Registry,
) -> Result<Swarm<Behaviour>, NodeError> {
    let idle = config.idle_timeout();
    match config.transport {
        TransportMode::Network => Ok(SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(startup("tcp transport"))?
            .with_quic()
            .with_dns()
            .map_err(startup("dns resolver"))?
            .with_websocket(noise::Config::new, yamux::Config::default)
            .await
            .map_err(startup("websocket transport"))?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(startup("relay client"))?
            .with_bandwidth_metrics(registry)
            .with_behaviour(|key, relay| Behaviour::new(key, relay, config))
            .map_err(startup("behaviour"))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .with_connection_timeout(CONNECTION_TIMEOUT)
            .build()),
        TransportMode::Memory => Ok(SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_other_transport(|key| {
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                    MemoryTransport::default()
                        .upgrade(Version::V1)
                        .authenticate(noise::Config::new(key)?)
                        .multiplex(yamux::Config::default())
                        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer))),
                )
            })
            .map_err(startup("memory transport"))?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(startup("relay client"))?
            .with_bandwidth_metrics(registry)
            .with_behaviour(|key, relay| Behaviour::new(key, relay, config))
            .map_err(startup("behaviour"))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .with_connection_timeout(CONNECTION_TIMEOUT)
            .build()),
    }
}
