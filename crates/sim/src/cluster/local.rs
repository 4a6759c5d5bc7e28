//! Nodes in this process: `Node::start` many times, over QUIC and TCP on
//! 127.0.0.1 (port 0) or over libp2p's in-memory transport. mDNS is off and
//! nodes never dial on their own (`min_connections: 0`).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use conclave_node::{
    config::TransportMode, metrics, peers::TransportKind, Keypair, Multiaddr, Node, NodeConfig,
    NodeEvent, NodeHandle,
};
use tokio::task::JoinHandle;

use super::Cluster;
use crate::{delivery::Recorder, error::SimError, procfs, traffic::Totals};

/// Which stack the in-process nodes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalTransport {
    /// QUIC v1 on loopback (TCP listeners too, for connection timing).
    Quic,
    /// TCP + Noise + Yamux on loopback (QUIC listeners too).
    Tcp,
    /// libp2p's in-memory transport.
    Memory,
}

impl LocalTransport {
    fn kind(self) -> TransportKind {
        match self {
            LocalTransport::Quic => TransportKind::Quic,
            LocalTransport::Tcp => TransportKind::Tcp,
            LocalTransport::Memory => TransportKind::Memory,
        }
    }
}

/// Settings for every node of a local cluster.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Transport the nodes dial each other on.
    pub transport: LocalTransport,
    /// Largest payload honest nodes accept.
    pub max_message_size: usize,
    /// Largest payload Byzantine nodes accept (to send oversized ones).
    pub byzantine_max_message_size: usize,
    /// Which nodes are Byzantine.
    pub byzantine: Vec<bool>,
    /// Upper bound of connections per node.
    pub max_connections: u32,
    /// Sign and verify messages as envelopes (`NodeConfig::envelopes`).
    pub envelopes: bool,
    /// Node events buffered per subscriber; a receiver further behind
    /// loses events (counted as lag). Each slot costs memory in every node.
    pub event_buffer: usize,
}

/// Nodes running in this process.
pub struct LocalCluster {
    nodes: Vec<NodeHandle>,
    transport: LocalTransport,
    receivers: Mutex<Vec<JoinHandle<()>>>,
    ticks_per_second: f64,
}

fn node_config(options: &LocalOptions, byzantine: bool) -> NodeConfig {
    let loopback = NodeConfig::loopback();
    let (listen, transport) = match options.transport {
        LocalTransport::Memory => (
            vec!["/memory/0".parse().expect("valid literal")],
            TransportMode::Memory,
        ),
        LocalTransport::Quic | LocalTransport::Tcp => (loopback.listen, TransportMode::Network),
    };
    NodeConfig {
        listen,
        max_connections: options.max_connections,
        max_message_size: if byzantine {
            options.byzantine_max_message_size
        } else {
            options.max_message_size
        },
        transport,
        event_buffer: options.event_buffer,
        envelopes: options.envelopes,
        // The simulator measures capacity: the per-peer abuse limits
        // (100 msg/s per topic, 1 MB/s) would cap what it measures.
        max_messages_per_sec: 1e9,
        max_bytes_per_sec: 1e12,
        max_new_connections_per_sec: 1e6,
        ..loopback
    }
}

impl LocalCluster {
    /// Starts `n` nodes with fresh Ed25519 identities.
    pub async fn start(n: usize, options: &LocalOptions) -> Result<Self, SimError> {
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let byzantine = options.byzantine.get(i).copied().unwrap_or(false);
            let config = node_config(options, byzantine);
            debug_assert!(!config.mdns);
            let node = tokio::time::timeout(
                Duration::from_secs(30),
                Node::start(config, Keypair::generate_ed25519()),
            )
            .await
            .map_err(|_| SimError::Timeout {
                what: format!("starting node {i}"),
                secs: 30,
            })?
            .map_err(|source| SimError::Node { node: i, source })?;
            nodes.push(node);
        }
        Ok(Self {
            nodes,
            transport: options.transport,
            receivers: Mutex::new(Vec::new()),
            ticks_per_second: procfs::clock_ticks_per_second(),
        })
    }

    /// The handle of node `i`.
    pub fn handle(&self, i: usize) -> &NodeHandle {
        &self.nodes[i]
    }

    /// Node `i`'s listen address on `kind`.
    pub async fn addr(&self, i: usize, kind: TransportKind) -> Result<Multiaddr, SimError> {
        let addrs = self.nodes[i]
            .listen_addrs()
            .await
            .map_err(|source| SimError::Node { node: i, source })?;
        addrs
            .into_iter()
            .find(|a| TransportKind::of(a) == kind)
            .ok_or_else(|| SimError::Daemon {
                node: i,
                reason: format!("no {} listen address", kind.as_str()),
            })
    }

    /// Node `from` dials node `to` over `kind`; returns how long `connect`
    /// took (until the dialler's side of the connection is up).
    pub async fn connect_over(
        &self,
        from: usize,
        to: usize,
        kind: TransportKind,
    ) -> Result<Duration, SimError> {
        let addr = self.addr(to, kind).await?;
        let started = Instant::now();
        self.nodes[from]
            .connect(addr)
            .await
            .map_err(|source| SimError::Node { node: from, source })?;
        Ok(started.elapsed())
    }

    fn node_err(node: usize) -> impl FnOnce(conclave_node::NodeError) -> SimError {
        move |source| SimError::Node { node, source }
    }
}

impl Cluster for LocalCluster {
    fn len(&self) -> usize {
        self.nodes.len()
    }

    fn transport(&self) -> &'static str {
        self.transport.kind().as_str()
    }

    fn dial_concurrency(&self) -> usize {
        32
    }

    async fn connect(&self, from: usize, to: usize) -> Result<Duration, SimError> {
        self.connect_over(from, to, self.transport.kind()).await
    }

    async fn subscribe(
        &self,
        node: usize,
        topic: &str,
        recorder: Arc<Recorder>,
        bound: Duration,
    ) -> Result<(), SimError> {
        let handle = self.nodes[node].clone();
        // Listen before subscribing so that no early message is missed.
        let mut events = handle.subscribe_events();
        handle
            .subscribe(topic)
            .await
            .map_err(Self::node_err(node))?;
        let topic = topic.to_string();
        let task = tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + bound;
            loop {
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Ok(Some(NodeEvent::Message(m))) if m.topic == topic => {
                        recorder.record(node, &m.data)
                    }
                    Ok(Some(NodeEvent::Lagged { missed })) => recorder.lagged(missed),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => return,
                }
            }
        });
        self.receivers.lock().expect("receivers lock").push(task);
        Ok(())
    }

    async fn wait_topic_peers(
        &self,
        node: usize,
        topic: &str,
        count: usize,
        bound: Duration,
    ) -> Result<(), SimError> {
        self.nodes[node]
            .wait_for_topic_peers(topic, count, bound)
            .await
            .map_err(Self::node_err(node))
    }

    async fn mesh_peers(&self, node: usize, topic: &str) -> Result<usize, SimError> {
        let stats = self.nodes[node]
            .stats()
            .await
            .map_err(Self::node_err(node))?;
        Ok(stats
            .topics
            .iter()
            .find(|t| t.topic == topic)
            .map_or(0, |t| t.mesh_peers))
    }

    async fn publish_raw(&self, node: usize, topic: &str, bytes: Vec<u8>) -> Result<(), SimError> {
        self.nodes[node]
            .broadcast_raw(topic, bytes)
            .await
            .map(|_| ())
            .map_err(Self::node_err(node))
    }

    fn raw_publish_supported(&self) -> bool {
        true
    }

    async fn peers(&self, node: usize) -> Result<usize, SimError> {
        self.nodes[node]
            .peers()
            .await
            .map(|p| p.len())
            .map_err(Self::node_err(node))
    }

    async fn publish(&self, node: usize, topic: &str, data: Vec<u8>) -> Result<(), SimError> {
        self.nodes[node]
            .broadcast(topic, data)
            .await
            .map(|_| ())
            .map_err(Self::node_err(node))
    }

    async fn traffic(&self, node: usize) -> Result<Totals, SimError> {
        let (bytes_in, bytes_out) = metrics::bandwidth_totals(&self.nodes[node].registry());
        Ok(Totals {
            bytes_in,
            bytes_out,
        })
    }

    async fn metrics_text(&self, node: usize) -> Result<String, SimError> {
        Ok(metrics::render(&self.nodes[node].registry()))
    }

    async fn announce(&self, node: usize, kind: &str, id: &str) -> Result<(), SimError> {
        self.nodes[node]
            .announce_resource(
                kind,
                id,
                serde_json::json!({ "sim": true }),
                Duration::from_secs(600),
            )
            .await
            .map(|_| ())
            .map_err(Self::node_err(node))
    }

    async fn lookup(&self, node: usize, kind: &str, id: &str) -> Result<(), SimError> {
        self.nodes[node]
            .get_resource(kind, id)
            .await
            .map(|_| ())
            .map_err(Self::node_err(node))
    }

    fn cpu_seconds(&self) -> Result<f64, SimError> {
        procfs::cpu_seconds(None, self.ticks_per_second)
            .map_err(SimError::io("reading /proc/self/stat"))
    }

    fn cpu_is_per_process(&self) -> bool {
        false
    }

    fn resident(&self) -> Result<Option<Vec<procfs::Resident>>, SimError> {
        Ok(None)
    }

    async fn stop(&self) {
        for task in self.receivers.lock().expect("receivers lock").drain(..) {
            task.abort();
        }
        // All at once: one by one, each stop waits while the rest of the
        // still-running network reacts to the lost connections, and
        // hundreds of nodes took minutes to stop.
        let mut stops = tokio::task::JoinSet::new();
        for node in &self.nodes {
            let node = node.clone();
            stops.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), node.stop()).await;
            });
        }
        while stops.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_switch_reaches_node_config() {
        for envelopes in [true, false] {
            let options = LocalOptions {
                transport: LocalTransport::Memory,
                max_message_size: 64 * 1024,
                byzantine_max_message_size: 256 * 1024,
                byzantine: Vec::new(),
                max_connections: 50,
                envelopes,
                event_buffer: 16,
            };
            assert_eq!(node_config(&options, false).envelopes, envelopes);
            assert_eq!(node_config(&options, true).envelopes, envelopes);
        }
    }
}
