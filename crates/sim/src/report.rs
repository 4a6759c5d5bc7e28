//! The result of a run: one serialisable object (the `--json` output) and
//! its human-readable table. Pure.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    bench::{dht::DhtFigures, envelope::EnvelopeCost, throughput::ThroughputFigures},
    config::{Mode, TopologyKind},
    formation::{MeshOutcome, QuietOutcome},
    machine::Machine,
    percentiles::Summary,
    traffic::DuplicateMethod,
};

/// The network that was measured.
#[derive(Debug, Clone, Serialize)]
pub struct TopologyReport {
    /// Shape.
    pub kind: TopologyKind,
    /// Dials per node asked for.
    pub degree: usize,
    /// Dials made.
    pub edges: usize,
    /// Dials added to join components.
    pub bridges: usize,
    /// Longest shortest path, in hops.
    pub diameter: usize,
    /// Connection cap of every node.
    pub max_connections: u32,
}

/// The workload as run.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadReport {
    /// Valid messages planned.
    pub messages: usize,
    /// Planned rate, messages per second.
    pub rate: f64,
    /// Payload size in bytes.
    pub size: usize,
    /// Valid messages the publishers accepted.
    pub published: usize,
    /// Valid publishes refused by the node.
    pub publish_failures: usize,
    /// First refusal, if any.
    pub first_publish_error: Option<String>,
    /// Valid messages per second actually published.
    pub achieved_rate: f64,
    /// Clock of the latency figures.
    pub clock: &'static str,
}

/// Signed envelopes in this run.
#[derive(Debug, Clone, Serialize)]
pub struct EnvelopeReport {
    /// Whether every node signed and verified envelopes
    /// (`NodeConfig::envelopes`; off with `--no-envelopes`).
    pub enabled: bool,
    /// Explanation.
    pub note: &'static str,
    /// How Byzantine messages got past the publisher's own signing.
    pub byzantine_path: &'static str,
    /// What one envelope costs (measured whether or not the run used them).
    pub cost: EnvelopeCost,
}

/// Byzantine behaviour in this run.
#[derive(Debug, Clone, Serialize)]
pub struct ByzantineReport {
    /// Fraction asked for.
    pub fraction: f64,
    /// Byzantine nodes.
    pub nodes: usize,
    /// Malformed messages the Byzantine nodes got out.
    pub malformed_sent: usize,
    /// Oversized messages the Byzantine nodes got out.
    pub oversized_sent: usize,
    /// Malformed messages the honest nodes handed to their applications
    /// (the node has no validation hook, so it accepts and forwards them).
    pub invalid_received: u64,
    /// Oversized messages the honest nodes handed to their applications.
    pub oversized_received: u64,
    /// `invalid_received` per honest node.
    pub invalid_received_per_node: f64,
}

/// CPU use.
#[derive(Debug, Clone, Serialize)]
pub struct CpuReport {
    /// What was measured: each `conclaved`, or this whole process divided
    /// by the number of nodes.
    pub scope: &'static str,
    /// CPU seconds per node per minute with the formed network idle
    /// (measured after it settled, before the workload).
    pub idle_s_per_node_per_min: Option<f64>,
    /// CPU seconds per node per minute during the workload.
    pub load_s_per_node_per_min: Option<f64>,
    /// Idle use as a percentage of one core.
    pub idle_percent_of_core: Option<f64>,
    /// Cores other processes on the machine (builds, other users) kept
    /// busy on average during the workload: contention the figures suffered.
    pub other_processes_cores: Option<f64>,
    /// Seconds of idle measured.
    pub idle_window_s: f64,
    /// Seconds of load measured (publishing plus delivery).
    pub load_window_s: f64,
}

/// Connection set-up times.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConnectReport {
    /// QUIC v1 on loopback.
    pub quic: Option<Summary>,
    /// TCP + Noise + Yamux on loopback.
    pub tcp: Option<Summary>,
    /// libp2p memory transport + Noise + Yamux.
    pub memory: Option<Summary>,
    /// How they were measured.
    pub method: String,
}

/// Connected peers per node when the workload started.
#[derive(Debug, Clone, Serialize)]
pub struct PeersReport {
    /// Mean.
    pub mean: f64,
    /// Largest.
    pub max: usize,
    /// Mean neighbours in the dialled topology (the rest the nodes dialled
    /// on their own, mostly for DHT queries).
    pub topology_mean: f64,
}

/// New connections per node per minute (libp2p's
/// `swarm_connections_established` counter, both directions).
#[derive(Debug, Clone, Serialize)]
pub struct ChurnReport {
    /// During the workload.
    pub load: Option<f64>,
    /// With the network idle.
    pub idle: Option<f64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The command line that produced this report.
    pub command: String,
    /// How the nodes ran.
    pub mode: Mode,
    /// Transport between the nodes.
    pub transport: &'static str,
    /// Nodes in the main network.
    pub nodes: usize,
    /// The network.
    pub topology: TopologyReport,
    /// Mesh formation before the workload.
    pub mesh: MeshOutcome,
    /// The wait for start-up connection churn to end before the workload.
    pub settle: QuietOutcome,
    /// The workload.
    pub workload: WorkloadReport,
    /// Signed envelopes.
    pub envelopes: EnvelopeReport,
    /// Byzantine nodes.
    pub byzantine: ByzantineReport,
    /// Distinct deliveries / (valid messages x other nodes).
    pub delivered_ratio: f64,
    /// Valid messages that reached every other node.
    pub complete_messages: usize,
    /// Publish-to-receipt latency over every delivery.
    pub latency_ms: Option<Summary>,
    /// Extra copies received per delivered message per node.
    pub duplicates_per_msg: Option<f64>,
    /// How `duplicates_per_msg` was obtained.
    pub duplicates_method: DuplicateMethod,
    /// Bytes sent (libp2p stream level, all nodes) per payload byte
    /// delivered, during the workload.
    pub bytes_per_payload_byte: Option<f64>,
    /// Loopback interface bytes (IP/UDP/QUIC or TCP headers included) per
    /// payload byte delivered, during the workload.
    pub loopback_bytes_per_payload_byte: Option<f64>,
    /// Mean resident memory per `conclaved` (process mode).
    pub rss_mb_per_node: Option<f64>,
    /// Largest resident memory of a `conclaved` (process mode).
    pub rss_mb_max: Option<f64>,
    /// Mean private (anonymous) resident memory per `conclaved`: RSS less
    /// the executable's file-backed pages, which daemons share.
    pub anon_rss_mb_per_node: Option<f64>,
    /// Mean proportional set size per `conclaved` (`Pss`): private memory
    /// plus its share of the pages daemons share.
    pub pss_mb_per_node: Option<f64>,
    /// This process's resident memory divided by the nodes (in-process
    /// modes; includes the simulator's own state).
    pub process_rss_mb_per_node: Option<f64>,
    /// CPU use.
    pub cpu: CpuReport,
    /// Connection set-up times.
    pub connect_ms: ConnectReport,
    /// Dials of the topology, as made (concurrently in-process, one at a
    /// time through the control socket in process mode).
    pub topology_dial_ms: Option<Summary>,
    /// Time each node took to answer the subscribe command.
    pub subscribe_ms: Option<Summary>,
    /// Connected peers per node at the start of the workload.
    pub peers_per_node: PeersReport,
    /// Connection churn.
    pub connections_opened_per_node_per_min: ChurnReport,
    /// DHT lookup times.
    pub dht_lookup_ms: Option<Summary>,
    /// GetRecord requests the nodes served during the lookups, per lookup
    /// (libp2p's `kad_inbound_requests{request="GetRecord"}`): a proxy for
    /// hops, as the node does not expose them.
    pub dht_requests_per_lookup: Option<f64>,
    /// DHT details (announce times, failures).
    pub dht: Option<DhtFigures>,
    /// DHT lookup hops (not exposed by the node API: always null).
    pub dht_hops: Option<f64>,
    /// Messages per second one node accepted in the throughput test.
    pub publish_msgs_per_s: Option<f64>,
    /// Throughput test details.
    pub publish_throughput: Option<ThroughputFigures>,
    /// Node events receivers missed because they fell behind.
    pub events_lagged: u64,
    /// Valid messages the node delivered twice to the application.
    pub repeated_deliveries: u64,
    /// The machine.
    pub machine: Machine,
    /// Things the reader should know about this run.
    pub warnings: Vec<String>,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.digits$}"))
}

fn dist(s: &Option<Summary>) -> String {
    match s {
        Some(s) => format!(
            "p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}  (n={})",
            s.p50, s.p95, s.p99, s.max, s.count
        ),
        None => "n/a".to_string(),
    }
}

impl Report {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut rows: Vec<(&str, String)> = vec![
            ("command", self.command.clone()),
            (
                "machine",
                format!(
                    "{}, {} cores, {} MiB",
                    self.machine.cpu_model, self.machine.cores, self.machine.memory_mib
                ),
            ),
            (
                "network",
                format!(
                    "{} nodes, {} over {}, {} topology (degree {}, {} dials, diameter {}), at most {} connections per node",
                    self.nodes,
                    self.mode,
                    self.transport,
                    self.topology.kind,
                    self.topology.degree,
                    self.topology.edges,
                    self.topology.diameter,
                    self.topology.max_connections
                ),
            ),
            (
                "mesh",
                format!(
                    "formed in {:.0} ms, {} nodes below target, smallest {}",
                    self.mesh.formed_ms, self.mesh.nodes_below_target, self.mesh.smallest_mesh
                ),
            ),
            (
                "settled",
                format!(
                    "{} after {:.0} ms (last {} new connections/node/s)",
                    if self.settle.settled { "yes" } else { "NO" },
                    self.settle.settled_ms,
                    opt(self.settle.last_rate, 3)
                ),
            ),
            (
                "workload",
                format!(
                    "{} x {} B at {} msg/s planned, {} published ({:.2} msg/s), {} refused",
                    self.workload.messages,
                    self.workload.size,
                    self.workload.rate,
                    self.workload.published,
                    self.workload.achieved_rate,
                    self.workload.publish_failures
                ),
            ),
            (
                "envelopes",
                format!(
                    "{}; one adds {} B, signs in {:.0} us, verifies in {:.0} us",
                    self.envelopes.note,
                    self.envelopes.cost.overhead_bytes,
                    self.envelopes.cost.sign_us,
                    self.envelopes.cost.verify_us
                ),
            ),
            (
                "byzantine",
                format!(
                    "{} nodes ({:.0} %), sent {} malformed + {} oversized; handed to honest apps: {} malformed, {} oversized",
                    self.byzantine.nodes,
                    self.byzantine.fraction * 100.0,
                    self.byzantine.malformed_sent,
                    self.byzantine.oversized_sent,
                    self.byzantine.invalid_received,
                    self.byzantine.oversized_received
                ),
            ),
            (
                "delivered",
                format!(
                    "{:.4} ({} of {} messages everywhere)",
                    self.delivered_ratio, self.complete_messages, self.workload.published
                ),
            ),
            ("latency ms", dist(&self.latency_ms)),
            (
                "duplicates/msg/node",
                format!(
                    "{} ({})",
                    opt(self.duplicates_per_msg, 2),
                    self.duplicates_method.note()
                ),
            ),
            (
                "wire B / payload B",
                format!(
                    "{} (libp2p streams); {} (loopback interface)",
                    opt(self.bytes_per_payload_byte, 2),
                    opt(self.loopback_bytes_per_payload_byte, 2)
                ),
            ),
            (
                "RSS MB / node",
                format!(
                    "mean {} max {} private {} proportional {} (conclaved); {} (this process / nodes)",
                    opt(self.rss_mb_per_node, 1),
                    opt(self.rss_mb_max, 1),
                    opt(self.anon_rss_mb_per_node, 1),
                    opt(self.pss_mb_per_node, 1),
                    opt(self.process_rss_mb_per_node, 1)
                ),
            ),
            (
                "CPU s/node/min",
                format!(
                    "idle {} ({} % of a core), load {} [{}]",
                    opt(self.cpu.idle_s_per_node_per_min, 3),
                    opt(self.cpu.idle_percent_of_core, 2),
                    opt(self.cpu.load_s_per_node_per_min, 3),
                    self.cpu.scope
                ),
            ),
            (
                "other load",
                format!(
                    "{} cores busy with other processes during the workload",
                    opt(self.cpu.other_processes_cores, 2)
                ),
            ),
            ("connect QUIC ms", dist(&self.connect_ms.quic)),
            ("connect TCP ms", dist(&self.connect_ms.tcp)),
            ("connect memory ms", dist(&self.connect_ms.memory)),
            ("topology dials ms", dist(&self.topology_dial_ms)),
            ("subscribe ms", dist(&self.subscribe_ms)),
            (
                "peers per node",
                format!(
                    "mean {:.1} max {} at workload start (topology gives {:.1})",
                    self.peers_per_node.mean,
                    self.peers_per_node.max,
                    self.peers_per_node.topology_mean
                ),
            ),
            (
                "new conns/node/min",
                format!(
                    "load {} idle {}",
                    opt(self.connections_opened_per_node_per_min.load, 2),
                    opt(self.connections_opened_per_node_per_min.idle, 2)
                ),
            ),
            (
                "DHT lookup ms",
                format!(
                    "{}{}",
                    dist(&self.dht_lookup_ms),
                    self.dht
                        .as_ref()
                        .map(|d| format!(
                            ", {} failed, {} requests/lookup",
                            d.failures,
                            opt(self.dht_requests_per_lookup, 1)
                        ))
                        .unwrap_or_default()
                ),
            ),
            (
                "publish msg/s",
                match &self.publish_throughput {
                    Some(t) => format!(
                        "{:.0} accepted by one node ({} nodes, {} msgs, delivered {:.4}, end to end {:.0} msg/s)",
                        t.publish_msgs_per_s,
                        t.nodes,
                        t.messages,
                        t.delivered_ratio,
                        t.end_to_end_msgs_per_s
                    ),
                    None => "n/a".into(),
                },
            ),
            (
                "receiver lag",
                format!(
                    "{} events missed, {} repeated deliveries",
                    self.events_lagged, self.repeated_deliveries
                ),
            ),
        ];
        for w in &self.warnings {
            rows.push(("WARNING", w.clone()));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            let _ = writeln!(out, "{k:<width$}  {v}");
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::formation::{MeshOutcome, QuietOutcome};

    pub(crate) fn sample() -> Report {
        let s = Summary {
            count: 10,
            p50: 1.0,
            p95: 2.0,
            p99: 3.0,
            max: 4.0,
            mean: 1.5,
        };
        Report {
            command: "conclave-sim --nodes 3".into(),
            mode: Mode::Inproc,
            transport: "quic",
            nodes: 3,
            topology: TopologyReport {
                kind: TopologyKind::Random,
                degree: 2,
                edges: 3,
                bridges: 0,
                diameter: 1,
                max_connections: 50,
            },
            mesh: MeshOutcome {
                formed_ms: 1000.0,
                nodes_below_target: 0,
                smallest_mesh: 2,
                nodes_short_of_topic_peers: 0,
                first_error: None,
            },
            settle: QuietOutcome {
                settled_ms: 2000.0,
                settled: true,
                last_rate: Some(0.0),
            },
            workload: WorkloadReport {
                messages: 10,
                rate: 10.0,
                size: 1024,
                published: 10,
                publish_failures: 0,
                first_publish_error: None,
                achieved_rate: 10.0,
                clock: "monotonic",
            },
            envelopes: EnvelopeReport {
                enabled: true,
                note: "on",
                byzantine_path: "broadcast_raw",
                cost: EnvelopeCost {
                    overhead_bytes: 5400,
                    sign_us: 900.0,
                    verify_us: 300.0,
                    samples: 10,
                },
            },
            byzantine: ByzantineReport {
                fraction: 0.0,
                nodes: 0,
                malformed_sent: 0,
                oversized_sent: 0,
                invalid_received: 0,
                oversized_received: 0,
                invalid_received_per_node: 0.0,
            },
            delivered_ratio: 1.0,
            complete_messages: 10,
            latency_ms: Some(s),
            duplicates_per_msg: Some(1.5),
            duplicates_method: DuplicateMethod::GossipsubCounters,
            bytes_per_payload_byte: Some(3.0),
            loopback_bytes_per_payload_byte: None,
            rss_mb_per_node: None,
            rss_mb_max: None,
            anon_rss_mb_per_node: None,
            pss_mb_per_node: None,
            process_rss_mb_per_node: Some(5.0),
            cpu: CpuReport {
                scope: "this process / nodes",
                idle_s_per_node_per_min: Some(0.1),
                load_s_per_node_per_min: Some(0.2),
                idle_percent_of_core: Some(0.17),
                other_processes_cores: Some(0.1),
                idle_window_s: 10.0,
                load_window_s: 1.0,
            },
            connect_ms: ConnectReport {
                quic: Some(s),
                tcp: Some(s),
                memory: None,
                method: "pair".into(),
            },
            topology_dial_ms: Some(s),
            subscribe_ms: Some(s),
            peers_per_node: PeersReport {
                mean: 2.0,
                max: 2,
                topology_mean: 2.0,
            },
            connections_opened_per_node_per_min: ChurnReport {
                load: Some(0.0),
                idle: Some(0.0),
            },
            dht_lookup_ms: Some(s),
            dht_requests_per_lookup: Some(3.0),
            dht: None,
            dht_hops: None,
            publish_msgs_per_s: Some(1234.0),
            publish_throughput: None,
            events_lagged: 0,
            repeated_deliveries: 0,
            machine: Machine {
                cpu_model: "cpu".into(),
                cores: 2,
                memory_mib: 1024,
            },
            warnings: vec!["careful".into()],
        }
    }

    #[test]
    fn json_has_the_names_other_tooling_relies_on() {
        let v = serde_json::to_value(sample()).unwrap();
        for key in [
            "nodes",
            "delivered_ratio",
            "duplicates_per_msg",
            "bytes_per_payload_byte",
            "rss_mb_per_node",
            "publish_msgs_per_s",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        for key in ["p50", "p95", "p99", "max"] {
            assert!(v["latency_ms"][key].is_number(), "latency_ms.{key}");
        }
        for t in ["quic", "tcp"] {
            for key in ["p50", "p99"] {
                assert!(v["connect_ms"][t][key].is_number(), "connect_ms.{t}.{key}");
            }
        }
        for key in ["p50", "p95"] {
            assert!(v["dht_lookup_ms"][key].is_number(), "dht_lookup_ms.{key}");
        }
    }

    #[test]
    fn table_names_every_figure_and_warning() {
        let t = sample().table();
        for needle in [
            "latency ms",
            "p99 3.00",
            "connect QUIC ms",
            "DHT lookup ms",
            "envelopes",
            "WARNING",
        ] {
            assert!(t.contains(needle), "{needle} missing in\n{t}");
        }
    }
}
