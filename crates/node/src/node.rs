//! Starting a node.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use libp2p::multiaddr::Protocol;
use prometheus_client::registry::Registry;
use tokio::sync::{broadcast, mpsc};

use crate::{
    command::COMMAND_BUFFER,
    config::NodeConfig,
    error::NodeError,
    event_loop::{EventLoop, LoopParts},
    handle::{NodeHandle, Shared},
    identity::NodeIdentity,
    metrics::NodeMetrics,
    resources::ResourceIndex,
    transport::build_swarm,
    trust::Trust,
};

/// Entry point of the node library.
pub struct Node;

impl Node {
    /// Builds the swarm, starts listening and spawns the event loop.
    ///
    /// Returns once every listen address is bound (so `listen_addrs` is
    /// complete) and the bootstrap peers are being dialled. A listen address
    /// that cannot be bound is an error.
    pub async fn start(
        config: NodeConfig,
        identity: impl Into<NodeIdentity>,
    ) -> Result<NodeHandle, NodeError> {
        config.validate()?;
        let identity: NodeIdentity = identity.into();
        let peer_id = identity.peer_id();
        let keypair = identity.keypair().clone();
        let trust = Arc::new(Trust::new(identity, config.envelopes));
        let mut registry = Registry::default();
        let metrics = NodeMetrics::register(&mut registry);
        let libp2p_metrics = libp2p::metrics::Metrics::new(&mut registry);
        let mut swarm = build_swarm(keypair, &config, &mut registry).await?;

        let mut listeners = HashMap::new();
        for addr in &config.listen {
            let id = swarm
                .listen_on(addr.clone())
                .map_err(|e| NodeError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
            listeners.insert(id, addr.clone());
        }
        for addr in &config.external_addrs {
            swarm.add_external_address(addr.clone());
        }
        for addr in &config.bootstrap {
            if let Some(Protocol::P2p(peer)) = addr.iter().last() {
                swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            }
        }

        let streams = swarm.behaviour_mut().streams.new_control();
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_BUFFER);
        let (events, _) = broadcast::channel(config.event_buffer);
        let shared = Arc::new(Shared {
            commands: commands_tx,
            events: events.downgrade(),
            peer_id,
            trust: trust.clone(),
            config: config.clone(),
            registry: Arc::new(registry),
            streams: Mutex::new(streams),
            resources: Mutex::new(ResourceIndex::default()),
            started: Instant::now(),
        });
        let event_loop = EventLoop::new(LoopParts {
            swarm,
            commands: commands_rx,
            events,
            config: config.clone(),
            metrics,
            libp2p_metrics,
            listeners,
            trust,
        });
        tokio::spawn(event_loop.run());

        let handle = NodeHandle { shared };
        if let Err(e) = handle.wait_listening().await {
            let _ = handle.stop().await;
            return Err(e);
        }
        tracing::info!(%peer_id, "node started");
        for addr in config.bootstrap {
            let handle = handle.clone();
            tokio::spawn(async move {
                if let Err(e) = handle.connect(addr.clone()).await {
                    tracing::warn!(%addr, %e, "bootstrap peer unreachable");
                }
            });
        }
        Ok(handle)
    }
}
