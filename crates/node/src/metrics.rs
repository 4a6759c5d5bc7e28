//! Prometheus metrics: libp2p's own plus the node's counters, and a small
//! HTTP endpoint serving them at `/metrics`.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
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
            "rate_limited",
            "Messages dropped by rate limits",
            m.rate_limited.clone(),
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

/// The registry in Prometheus' classic text format (version 0.0.4), which
/// most scrapers and `promtool check metrics` read; see [`classic_text`].
pub fn render_classic(registry: &Registry) -> String {
    classic_text(&render(registry))
}

/// Rewrites OpenMetrics text (what `prometheus-client` writes) as the
/// classic text format: a counter's HELP and TYPE name the family with its
/// `_total` suffix, an info metric becomes a gauge named `..._info`, UNIT
/// lines, exemplars and the `# EOF` marker go.
pub fn classic_text(openmetrics: &str) -> String {
    // HELP comes before TYPE, so the kinds are read first.
    let kinds: HashMap<&str, &str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
        .collect();
    let classic_name = |name: &str| match kinds.get(name) {
        Some(&"counter") => format!("{name}_total"),
        Some(&"info") => format!("{name}_info"),
        _ => name.to_string(),
    };
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|r| r.split_once(' ')) {
            let kind = match kind {
                "counter" | "gauge" | "histogram" | "summary" => kind,
                "info" => "gauge",
                _ => "untyped",
            };
            out.push_str(&format!("# TYPE {} {kind}\n", classic_name(name)));
        } else if let Some((name, help)) =
            line.strip_prefix("# HELP ").and_then(|r| r.split_once(' '))
        {
            out.push_str(&format!("# HELP {} {help}\n", classic_name(name)));
        } else {
            // A sample; an exemplar after " # " has no place in this format.
            out.push_str(line.split_once(" # ").map_or(line, |(sample, _)| sample));
            out.push('\n');
        }
    }
    out
}

/// Scrapes answered at once; a connection beyond them is closed at once.
const MAX_SCRAPES: usize = 8;
/// How long a scraper may take to send its request or read the answer.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (out of file descriptors, say), so the
/// loop waits for the cause to pass instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `GET /metrics` on `addr` until the task is dropped: OpenMetrics to
/// a scraper whose `Accept` asks for it, the classic text format to
/// everyone else. Returns the bound address (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let scrapes = Arc::new(Semaphore::new(MAX_SCRAPES));
    let task = tokio::spawn(async move {
        loop {
            let mut socket = match listener.accept().await {
                Ok((socket, _)) => socket,
                Err(e) => {
                    tracing::debug!(%e, "metrics: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let Ok(permit) = scrapes.clone().try_acquire_owned() else {
                continue; // dropping the socket closes it
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _ = tokio::time::timeout(SCRAPE_TIMEOUT, answer(&mut socket, &registry)).await;
            });
        }
    });
    Ok((bound, task))
}

async fn answer(socket: &mut TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut buf = [0u8; 2048];
    let n = socket.read(&mut buf).await?;
    let request = String::from_utf8_lossy(&buf[..n]);
    let response = if request.starts_with("GET /metrics ") {
        let wants_openmetrics = request.lines().any(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("accept:") && l.contains("application/openmetrics-text")
        });
        let (content_type, body) = if wants_openmetrics {
            (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                render(registry),
            )
        } else {
            (
                "text/plain; version=0.0.4; charset=utf-8",
                render_classic(registry),
            )
        };
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
    };
    socket.write_all(response.as_bytes()).await?;
    socket.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENMETRICS: &str = "# HELP conclave_gossip_published Gossip messages published.
# TYPE conclave_gossip_published counter
conclave_gossip_published_total 3
# HELP libp2p_bandwidth_bytes Bandwidth usage.
# TYPE libp2p_bandwidth_bytes counter
# UNIT libp2p_bandwidth_bytes bytes
libp2p_bandwidth_bytes_total{direction=\"Inbound\"} 1024 # {trace=\"a\"} 1.0
# HELP libp2p_identify_protocols Protocols.
# TYPE libp2p_identify_protocols info
libp2p_identify_protocols_info{protocol=\"/ipfs/id/1.0.0\"} 1
# HELP conclave_connections Open connections.
# TYPE conclave_connections gauge
conclave_connections 2
# EOF
";

    #[test]
    fn classic_text_names_counters_with_total_and_drops_what_it_lacks() {
        let classic = classic_text(OPENMETRICS);
        let expected = "# HELP conclave_gossip_published_total Gossip messages published.
# TYPE conclave_gossip_published_total counter
conclave_gossip_published_total 3
# HELP libp2p_bandwidth_bytes_total Bandwidth usage.
# TYPE libp2p_bandwidth_bytes_total counter
libp2p_bandwidth_bytes_total{direction=\"Inbound\"} 1024
# HELP libp2p_identify_protocols_info Protocols.
# TYPE libp2p_identify_protocols_info gauge
libp2p_identify_protocols_info{protocol=\"/ipfs/id/1.0.0\"} 1
# HELP conclave_connections Open connections.
# TYPE conclave_connections gauge
conclave_connections 2
";
        assert_eq!(classic, expected);
    }

    async fn scrape(addr: SocketAddr, accept: &str) -> String {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{accept}\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        socket.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn the_endpoint_answers_classic_text_unless_openmetrics_is_asked_for() {
        let mut registry = Registry::default();
        let metrics = NodeMetrics::register(&mut registry);
        metrics.rate_limited.inc();
        let (addr, task) = serve("127.0.0.1:0".parse().unwrap(), Arc::new(registry))
            .await
            .unwrap();

        let classic = scrape(addr, "").await;
        assert!(
            classic.contains("Content-Type: text/plain; version=0.0.4"),
            "{classic}"
        );
        assert!(classic.contains("# TYPE conclave_rate_limited_total counter"));
        assert!(classic.contains("conclave_rate_limited_total 1"));
        assert!(!classic.contains("# EOF"));

        let open = scrape(
            addr,
            "Accept: application/openmetrics-text;version=1.0.0\r\n",
        )
        .await;
        assert!(
            open.contains("Content-Type: application/openmetrics-text"),
            "{open}"
        );
        assert!(open.contains("# TYPE conclave_rate_limited counter"));
        assert!(open.trim_end().ends_with("# EOF"));
        task.abort();
    }

    #[tokio::test]
    async fn idle_scrapers_beyond_the_limit_are_turned_away_at_once() {
        let (addr, task) = serve(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(Registry::default()),
        )
        .await
        .unwrap();
        // Connections that never send a request hold every slot...
        let mut idle = Vec::new();
        for _ in 0..MAX_SCRAPES {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        // ...so the next one is closed without an answer (read sees EOF
        // long before the scrape timeout), rather than served by a new task.
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(SCRAPE_TIMEOUT / 2, extra.read_to_end(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        // A slot freed is usable again.
        drop(idle.pop());
        // (The server notices the close on its own time: ask until then.)
        let deadline = tokio::time::Instant::now() + SCRAPE_TIMEOUT;
        let mut answered = false;
        while !answered && tokio::time::Instant::now() < deadline {
            answered = scrape(addr, "").await.starts_with("HTTP/1.1 200 OK");
        }
        assert!(answered, "a freed slot serves a scrape");
        task.abort();
    }
}
