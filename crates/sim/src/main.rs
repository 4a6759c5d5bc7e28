//! `conclave-sim`: runs many real Conclave nodes on this machine and prints
//! what they cost and how fast they are.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, ValueEnum};
use conclave_sim::{Mode, SimConfig, TopologyKind};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    /// Nodes in this process over QUIC (and TCP) on 127.0.0.1.
    Inproc,
    /// Separate `conclaved` processes driven through their control sockets.
    Process,
    /// Nodes in this process over libp2p's in-memory transport.
    Memory,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TopologyArg {
    /// Each node dials DEGREE random others.
    Random,
    /// Node i dials node i+1.
    Line,
    /// A line whose last node dials the first.
    Ring,
}

/// Starts N real nodes, forms a gossip network, publishes a workload and
/// reports latency, delivery, duplicates, wire cost, memory, CPU,
/// connection set-up, DHT lookups and publish throughput.
#[derive(Debug, Parser)]
#[command(name = "conclave-sim", version, about)]
struct Args {
    /// How the nodes run.
    #[arg(long, value_enum, default_value = "inproc")]
    mode: ModeArg,
    /// Nodes in the network.
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    /// Random others each node dials (random topology).
    #[arg(long, default_value_t = 4)]
    degree: usize,
    /// Network shape.
    #[arg(long, value_enum, default_value = "random")]
    topology: TopologyArg,
    /// Valid messages to publish.
    #[arg(long, default_value_t = 100)]
    messages: usize,
    /// Messages per second over the whole network.
    #[arg(long, value_name = "PER_SECOND", default_value_t = 10.0)]
    rate: f64,
    /// Payload size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    size: usize,
    /// Fraction of nodes that publish invalid (malformed, oversized) messages.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    byzantine: f64,
    /// Publish plain payloads instead of signed envelopes.
    #[arg(long)]
    no_envelopes: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Seed of the topology, publishers and Byzantine nodes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds of idle network measured for CPU (0 skips).
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
    /// Seconds to wait for deliveries after the last publish.
    #[arg(long, default_value_t = 15)]
    drain_secs: u64,
    /// Bound on forming the gossip meshes, in seconds.
    #[arg(long, default_value_t = 60)]
    mesh_timeout_secs: u64,
    /// Bound on waiting for start-up connection churn (DHT bootstrap,
    /// AutoNAT) to end before the workload, in seconds (0: no wait).
    #[arg(long, default_value_t = 120)]
    settle_timeout_secs: u64,
    /// Connection set-ups timed per transport (0 skips).
    #[arg(long, default_value_t = 100)]
    connect_samples: usize,
    /// DHT lookups timed on the warm network (0 skips).
    #[arg(long, default_value_t = 100)]
    dht_lookups: usize,
    /// Messages one node publishes in the throughput test (0 skips).
    #[arg(long, default_value_t = 5000)]
    throughput_messages: usize,
    /// Nodes in the throughput test (2 to 5).
    #[arg(long, default_value_t = 3)]
    throughput_nodes: usize,
    /// Connection cap per node (default: the node's 50, raised when the
    /// topology gives a node more neighbours).
    #[arg(long, value_name = "N")]
    max_connections: Option<u32>,
    /// The conclaved binary (process mode).
    #[arg(long, env = "CONCLAVED", value_name = "PATH")]
    conclaved: Option<PathBuf>,
}

impl Args {
    fn config(&self) -> SimConfig {
        SimConfig {
            mode: match self.mode {
                ModeArg::Inproc => Mode::Inproc,
                ModeArg::Process => Mode::Process,
                ModeArg::Memory => Mode::Memory,
            },
            nodes: self.nodes,
            degree: self.degree,
            topology: match self.topology {
                TopologyArg::Random => TopologyKind::Random,
                TopologyArg::Line => TopologyKind::Line,
                TopologyArg::Ring => TopologyKind::Ring,
            },
            messages: self.messages,
            rate: self.rate,
            size: self.size,
            byzantine: self.byzantine,
            envelopes: !self.no_envelopes,
            seed: self.seed,
            idle_secs: self.idle_secs,
            drain_secs: self.drain_secs,
            mesh_timeout_secs: self.mesh_timeout_secs,
            settle_timeout_secs: self.settle_timeout_secs,
            connect_samples: self.connect_samples,
            dht_lookups: self.dht_lookups,
            throughput_messages: self.throughput_messages,
            throughput_nodes: self.throughput_nodes,
            max_connections: self.max_connections,
            conclaved: self.conclaved.clone(),
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let config = args.config();
    config.validate()?;
    let command = std::iter::once("conclave-sim".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let report = conclave_sim::run(config, command).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
