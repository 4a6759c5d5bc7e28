//! What one simulation run does: mode, network shape, workload and the
//! focused measurements, with validation. No I/O.

use std::{fmt, path::PathBuf, time::Duration};

use serde::Serialize;

use crate::payload;

/// How the nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Many `Node::start` in this process over QUIC (and TCP) on 127.0.0.1.
    Inproc,
    /// Separate `conclaved` processes, driven through their control sockets.
    Process,
    /// Many nodes in this process over libp2p's in-memory transport.
    Memory,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Inproc => "inproc",
            Mode::Process => "process",
            Mode::Memory => "memory",
        })
    }
}

/// The shape of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TopologyKind {
    /// Each node dials `degree` random others (then components are bridged).
    Random,
    /// Node i dials node i+1: the longest path, a worst case for latency.
    Line,
    /// A line closed into a circle.
    Ring,
}

impl fmt::Display for TopologyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopologyKind::Random => "random",
            TopologyKind::Line => "line",
            TopologyKind::Ring => "ring",
        })
    }
}

/// Errors in a configuration.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// A value is out of its range.
    #[error("--{flag} {reason}")]
    OutOfRange {
        /// The flag's name.
        flag: &'static str,
        /// What is allowed.
        reason: String,
    },
}

/// One run of the simulator.
#[derive(Debug, Clone, Serialize)]
pub struct SimConfig {
    /// How the nodes run.
    pub mode: Mode,
    /// Number of nodes in the main network.
    pub nodes: usize,
    /// Connections each node dials (random topology).
    pub degree: usize,
    /// Network shape.
    pub topology: TopologyKind,
    /// Valid messages published in the workload.
    pub messages: usize,
    /// Valid messages per second, over the whole network.
    pub rate: f64,
    /// Payload size in bytes.
    pub size: usize,
    /// Fraction of nodes that publish invalid messages.
    pub byzantine: f64,
    /// Sign payloads as envelopes (when the node offers them).
    pub envelopes: bool,
    /// Seed of every random choice (topology, publishers, Byzantine nodes).
    pub seed: u64,
    /// Seconds of idle network measured for CPU before the workload.
    pub idle_secs: u64,
    /// Seconds after the last publish that deliveries are waited for.
    pub drain_secs: u64,
    /// Bound on forming the gossip meshes, in seconds.
    pub mesh_timeout_secs: u64,
    /// Bound on waiting for start-up connection churn to end, in seconds
    /// (0 starts the workload at once).
    pub settle_timeout_secs: u64,
    /// Connection set-ups timed per transport (0 skips).
    pub connect_samples: usize,
    /// DHT lookups timed on the warm network (0 skips).
    pub dht_lookups: usize,
    /// Messages one node publishes in the throughput test (0 skips).
    pub throughput_messages: usize,
    /// Nodes in the throughput test (2 to 5).
    pub throughput_nodes: usize,
    /// Connection cap per node (`max_connections`); `None`: the node's
    /// default (50), raised when the topology gives a node more neighbours.
    pub max_connections: Option<u32>,
    /// The `conclaved` binary for process mode (default: next to this
    /// executable, or `$CONCLAVED`).
    pub conclaved: Option<PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Inproc,
            nodes: 10,
            degree: 4,
            topology: TopologyKind::Random,
            messages: 100,
            rate: 10.0,
            size: 1024,
            byzantine: 0.0,
            envelopes: true,
            seed: 1,
            idle_secs: 10,
            drain_secs: 15,
            mesh_timeout_secs: 60,
            settle_timeout_secs: 120,
            connect_samples: 100,
            dht_lookups: 100,
            throughput_messages: 5000,
            throughput_nodes: 3,
            max_connections: None,
            conclaved: None,
        }
    }
}

fn out_of_range(flag: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::OutOfRange {
        flag,
        reason: reason.into(),
    }
}

impl SimConfig {
    /// Largest network the simulator starts.
    pub const MAX_NODES: usize = 5000;
    /// Largest payload, in bytes.
    pub const MAX_SIZE: usize = 512 * 1024;

    /// Checks that the values make a runnable experiment.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(2..=Self::MAX_NODES).contains(&self.nodes) {
            return Err(out_of_range(
                "nodes",
                format!("must be between 2 and {}", Self::MAX_NODES),
            ));
        }
        if self.degree == 0 && self.topology == TopologyKind::Random {
            return Err(out_of_range("degree", "must be at least 1"));
        }
        if self.messages == 0 {
            return Err(out_of_range("messages", "must be at least 1"));
        }
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1_000_000.0) {
            return Err(out_of_range("rate", "must be above 0 and at most 1000000"));
        }
        if !(payload::MIN_SIZE..=Self::MAX_SIZE).contains(&self.size) {
            return Err(out_of_range(
                "size",
                format!(
                    "must be between {} and {} bytes (the header carries sequence and timestamp)",
                    payload::MIN_SIZE,
                    Self::MAX_SIZE
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.byzantine) {
            return Err(out_of_range("byzantine", "must be in [0, 1)"));
        }
        if self.byzantine_nodes() + 2 > self.nodes {
            return Err(out_of_range(
                "byzantine",
                "leaves fewer than two honest nodes",
            ));
        }
        if !(2..=5).contains(&self.throughput_nodes) {
            return Err(out_of_range("throughput-nodes", "must be between 2 and 5"));
        }
        if self.max_connections == Some(0) {
            return Err(out_of_range("max-connections", "must be at least 1"));
        }
        if self.mesh_timeout_secs == 0 || self.drain_secs == 0 {
            return Err(out_of_range(
                "mesh-timeout/drain",
                "must be at least one second",
            ));
        }
        Ok(())
    }

    /// Number of Byzantine nodes: the fraction of the network, rounded.
    pub fn byzantine_nodes(&self) -> usize {
        (self.byzantine * self.nodes as f64).round() as usize
    }

    /// How long the valid workload lasts at the configured rate.
    pub fn workload_duration(&self) -> Duration {
        Duration::from_secs_f64(self.messages as f64 / self.rate)
    }

    /// Largest payload honest nodes accept. Raised above the default only
    /// when needed; lowered when Byzantine nodes run so that their oversized
    /// messages stay small enough to send quickly.
    pub fn honest_max_message_size(&self) -> usize {
        if self.byzantine > 0.0 {
            (self.size * 2).max(64 * 1024)
        } else {
            (self.size * 2).max(conclave_node::NodeConfig::default().max_message_size)
        }
    }

    /// Received messages longer than this are counted as oversized: twice
    /// the payload plus room for any envelope.
    pub fn oversized_threshold(&self) -> usize {
        self.size * 2 + 64 * 1024
    }

    /// Size of an oversized Byzantine message: above what honest nodes'
    /// gossip accepts on the wire (their limit plus the 64 KiB frame
    /// allowance), so receivers must drop it.
    pub fn oversized_size(&self) -> usize {
        self.honest_max_message_size() + 96 * 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        SimConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_flag() {
        let cases = [
            SimConfig {
                nodes: 1,
                ..SimConfig::default()
            },
            SimConfig {
                size: 8,
                ..SimConfig::default()
            },
            SimConfig {
                rate: 0.0,
                ..SimConfig::default()
            },
            SimConfig {
                byzantine: 0.9,
                ..SimConfig::default()
            },
        ];
        let flags = ["--nodes", "--size", "--rate", "--byzantine"];
        for (cfg, flag) in cases.iter().zip(flags) {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.starts_with(flag), "{err}");
        }
    }

    #[test]
    fn byzantine_count_rounds_and_oversize_exceeds_the_wire_limit() {
        let cfg = SimConfig {
            nodes: 100,
            byzantine: 0.1,
            size: 1024,
            ..SimConfig::default()
        };
        assert_eq!(cfg.byzantine_nodes(), 10);
        assert_eq!(cfg.honest_max_message_size(), 64 * 1024);
        assert!(cfg.oversized_size() > cfg.honest_max_message_size() + 64 * 1024);
        assert!(cfg.oversized_size() > cfg.oversized_threshold());
    }

    #[test]
    fn workload_duration_follows_rate() {
        let cfg = SimConfig {
            messages: 300,
            rate: 10.0,
            ..SimConfig::default()
        };
        assert_eq!(cfg.workload_duration(), Duration::from_secs(30));
    }
}
