//! Prometheus metrics: libp2p's own plus the node's counters, and a small
//! HTTP endpoint serving them at `/metrics`.

use std::{net::SocketAddr, sync::Arc};

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// The node's own counters.
#[derive(Clone, Default)]
pub struct NodeMetrics {
    /// Gossip messages this node published.
    pub gossip_published: Counter,
    /// Gossip messages received and accepted.
    pub gossip_received: Counter,
    /// Gossip messages rejected by validation.
    pub gossip_rejected: Counter,
    /// Direct messages sent.
    pub direct_sent: Counter,
    /// Direct messages received.
    pub direct_received: Counter,
    /// Direct messages refused (no handler, busy, handler error).
    pub direct_refused: Counter,
    /// Messages dropped by rate limits.
    pub rate_limited: Counter,
    /// PQ identity records whose signatures were checked.
    pub pq_verifications: Counter,
    /// Outgoing dial failures.
    pub dial_failures: Counter,
    /// Connected peers.
    pub connected_peers: Gauge,
    /// Open connections.
    pub connections: Gauge,
}

impl NodeMetrics {
    /// Creates the counters and registers them under `conclave_`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("conclave");
        r.register(
            "gossip_published",
            "Gossip messages published",
            m.gossip_published.clone(),
        );
        r.register(
            "gossip_received",
            "Gossip messages accepted",
            m.gossip_received.clone(),
        );
        r.register(
            "gossip_rejected",
            "Gossip messages rejected",
            m.gossip_rejected.clone(),
        );
        r.register("direct_sent", "Direct messages sent", m.direct_sent.clone());
        r.register(
            "direct_received",
            "Direct messages received",
            m.direct_received.clone(),
        );
        r.register(
            "direct_refused",
            "Direct messages refused",
            m.direct_refused.clone(),
        );
        r.register(
            "dial_failures",
            "Outgoing dials that failed",
            m.dial_failures.clone(),
        );
        r.register(
            "connected_peers",
            "Peers with an open connection",
            m.connected_peers.clone(),
        );
        r.register("connections", "Open connections", m.connections.clone());
        r.register(
            "pq_verifications",
            "PQ identity records whose signatures were checked",
            m.pq_verifications.clone(),
        );
        m
    }
}

/// Renders the registry in Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, registry);
    out
}

/// Total bytes received and sent, summed from libp2p's bandwidth counters.
pub fn bandwidth_totals(registry: &Registry) -> (u64, u64) {
    let text = render(registry);
    let (mut inbound, mut outbound) = (0u64, 0u64);
    for line in text
        .lines()
        .filter(|l| l.starts_with("libp2p_bandwidth_bytes_total{"))
    {
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        if line.contains("direction=\"Inbound\"") {
            inbound += value as u64;
        } else if line.contains("direction=\"Outbound\"") {
            outbound += value as u64;
        }
    }
    (inbound, outbound)
}

/// Serves `GET /metrics` on `addr` until the task is dropped. Returns the
/// bound address (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let n = match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    socket.read(&mut buf),
                )
                .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
                let request = String::from_utf8_lossy(&buf[..n]);
                let response = if request.starts_with("GET /metrics ") {
                    let body = render(&registry);
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                };
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok((bound, task))
}
