//! One run from start to report: start the nodes of the chosen mode, dial
//! the topology, subscribe and wait for the meshes and for connection churn
//! to settle, measure the idle network, run the workload, look things up in
//! the DHT, then run the connection and throughput tests on fresh nodes.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use conclave_node::peers::TransportKind;
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::{
    bench::{self, dht::DhtFigures, envelope::EnvelopeCost, throughput::ThroughputFigures},
    clock::Clock,
    cluster::{
        ask_every_node,
        local::{LocalCluster, LocalOptions, LocalTransport},
        metric_sums,
        process::{find_conclaved, ProcessCluster, ProcessOptions},
        total_traffic, Cluster,
    },
    config::{Mode, SimConfig},
    delivery::{delivery_stats, DeliveryStats, RecordedTotals, Recorder},
    envelope::EnvelopeStatus,
    error::SimError,
    formation::{self, MeshOutcome, QuietOutcome, CONNECTIONS},
    machine::Machine,
    percentiles::summarize_us,
    procfs,
    report::{
        ByzantineReport, ChurnReport, ConnectReport, CpuReport, EnvelopeReport, PeersReport,
        Report, TopologyReport, WorkloadReport,
    },
    schedule::{self, Slot, SlotKind},
    topology::Topology,
    traffic::{self, DuplicateMethod, Totals},
    workload::{self, Published, Sizes, Spec},
};

/// Gossipsub's count of messages received before de-duplication.
const RECV_UNFILTERED: (&str, &str) = ("topic_msg_recv_counts_unfiltered_total", "");
/// Gossipsub's count of messages received after de-duplication.
const RECV_FILTERED: (&str, &str) = ("topic_msg_recv_counts_total", "");
/// DHT GetRecord requests served, all nodes together: during the lookups,
/// the requests the lookups sent.
const KAD_GET_SERVED: (&str, &str) = ("kad_inbound_requests_total", "request=\"GetRecord\"");

/// Everything measured on the main network.
struct NetworkFigures {
    dial_us: Vec<u64>,
    subscribe_us: Vec<u64>,
    peers: Vec<usize>,
    load_connections: Option<f64>,
    idle_connections: Option<f64>,
    dht_requests_per_lookup: Option<f64>,
    quiet: QuietOutcome,
    mesh: MeshOutcome,
    published: Vec<Published>,
    publishing: Duration,
    recorded: RecordedTotals,
    delivery: DeliveryStats,
    traffic: Totals,
    gossip_counts: Option<(f64, f64)>,
    loopback_bytes: Option<u64>,
    idle_cpu_s: Option<f64>,
    idle_traffic: Option<Totals>,
    idle_window: Duration,
    load_cpu_s: f64,
    other_cpu_s: Option<f64>,
    load_window: Duration,
    dht: Option<DhtFigures>,
    rss: Option<Vec<procfs::Resident>>,
    process_rss: Option<u64>,
    raw_publish_supported: bool,
    notes: Vec<String>,
}

/// Progress lines on stderr, so that a long run shows where it is (stdout
/// stays the report).
struct Progress {
    started: Instant,
}

impl Progress {
    fn start() -> Self {
        Self {
            started: Instant::now(),
        }
    }

    fn say(&self, what: &str) {
        eprintln!(
            "conclave-sim [{:7.1} s] {what}",
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// What the main network runs.
struct Plan {
    topology: Topology,
    max_connections: u32,
    byzantine: Vec<bool>,
    slots: Vec<Slot>,
    spec: Spec,
}

/// Runs `config`; `command` is recorded in the report.
pub async fn run(config: SimConfig, command: String) -> Result<Report, SimError> {
    config.validate()?;
    let mut rng = StdRng::seed_from_u64(config.seed);
    // Fresh every run (not from the seed): message ids and DHT keys never
    // repeat between runs.
    let run_id: u32 = rand::random();
    let topology = Topology::generate(config.topology, config.nodes, config.degree, &mut rng);
    let byzantine = schedule::byzantine_nodes(config.nodes, config.byzantine_nodes(), &mut rng);
    let slots = schedule::plan(config.messages, config.rate, &byzantine, &mut rng);
    let envelope_status = EnvelopeStatus::choose(config.envelopes);
    let clock = match config.mode {
        Mode::Process => Clock::Wall,
        Mode::Inproc | Mode::Memory => Clock::monotonic(),
    };
    let spec = Spec {
        topic: format!("conclave-sim/{run_id:08x}"),
        run: run_id,
        clock,
        sizes: Sizes {
            payload: config.size,
            oversized: config.oversized_size(),
        },
        seed: rng.gen(),
    };
    let neighbours = topology.neighbours();
    let most_neighbours = neighbours.iter().map(Vec::len).max().unwrap_or(0);
    let max_connections = config.max_connections.unwrap_or(
        (most_neighbours as u32 + 16).max(conclave_node::config::DEFAULT_MAX_CONNECTIONS),
    );
    let plan = Plan {
        topology,
        max_connections,
        byzantine,
        slots,
        spec,
    };
    let mut warnings = Vec::new();
    let throughput_spec = Spec {
        topic: format!("conclave-sim/{run_id:08x}/throughput"),
        ..plan.spec.clone()
    };

    let progress = Progress::start();
    // Measured first, on an idle runtime: the bytes one envelope adds also
    // size one message copy for the duplicate estimate.
    let envelope_cost = bench::envelope::measure(config.size, &plan.spec.topic, 200).await?;
    let (figures, transport, connect_ms, throughput) = match config.mode {
        Mode::Inproc | Mode::Memory => {
            let transport = if config.mode == Mode::Memory {
                LocalTransport::Memory
            } else {
                LocalTransport::Quic
            };
            let options = LocalOptions {
                transport,
                max_message_size: config.honest_max_message_size(),
                byzantine_max_message_size: config.oversized_size(),
                byzantine: plan.byzantine.clone(),
                max_connections,
                // Workload receivers keep up at these rates; a bigger buffer
                // would cost memory in every one of up to thousands of nodes.
                event_buffer: 2048,
                envelopes: config.envelopes,
            };
            progress.say(&format!("starting {} nodes", config.nodes));
            let cluster = Arc::new(LocalCluster::start(config.nodes, &options).await?);
            let transport_name = cluster.transport();
            let figures = measure(&cluster, &config, &plan, &mut rng, &progress).await;
            progress.say("stopping the nodes");
            cluster.stop().await;
            drop(cluster);
            let figures = figures?;

            progress.say("timing connection set-up on fresh pairs");
            let connect_ms = local_connect_times(transport, config.connect_samples)
                .await
                .unwrap_or_else(|e| {
                    warnings.push(format!("connection timing failed: {e}"));
                    ConnectReport::default()
                });
            let throughput = if config.throughput_messages > 0 {
                progress.say("publish throughput test");
                let tp_options = LocalOptions {
                    byzantine: Vec::new(),
                    // Bursts of thousands of messages to a few nodes.
                    event_buffer: 16384,
                    ..options
                };
                let tp = Arc::new(LocalCluster::start(config.throughput_nodes, &tp_options).await?);
                let result = bench::throughput::publish_throughput(
                    &tp,
                    config.throughput_messages,
                    &throughput_spec,
                    Duration::from_secs(config.drain_secs),
                )
                .await;
                tp.stop().await;
                result
                    .map_err(|e| warnings.push(format!("throughput test failed: {e}")))
                    .ok()
            } else {
                None
            };
            (figures, transport_name, connect_ms, throughput)
        }
        Mode::Process => {
            let binary = find_conclaved(config.conclaved.as_deref())?;
            progress.say(&format!(
                "starting {} daemons ({})",
                config.nodes,
                binary.display()
            ));
            let options = ProcessOptions {
                binary,
                max_message_size: config.honest_max_message_size(),
                byzantine_max_message_size: config.oversized_size(),
                byzantine: plan.byzantine.clone(),
                max_connections,
                envelopes: config.envelopes,
            };
            let cluster = Arc::new(ProcessCluster::start(config.nodes, &options).await?);
            let figures = measure(&cluster, &config, &plan, &mut rng, &progress).await;
            progress.say("stopping the daemons");
            cluster.stop().await;
            drop(cluster);
            let figures = figures?;
            let connect_ms = ConnectReport {
                method: "process mode: the topology's QUIC dials, one at a time, each timed around the daemon's `connect` control request (includes a JSON-RPC round trip); TCP not timed".into(),
                quic: summarize_us(&mut figures.dial_us.clone()),
                ..ConnectReport::default()
            };
            warnings.push("process mode: latencies include the control-socket hops at both ends (publish request, message notification)".into());
            let throughput = if config.throughput_messages > 0 {
                progress.say("publish throughput test");
                let tp_options = ProcessOptions {
                    byzantine: Vec::new(),
                    ..options
                };
                let tp =
                    Arc::new(ProcessCluster::start(config.throughput_nodes, &tp_options).await?);
                let result = bench::throughput::publish_throughput(
                    &tp,
                    config.throughput_messages,
                    &throughput_spec,
                    Duration::from_secs(config.drain_secs),
                )
                .await;
                tp.stop().await;
                warnings.push("process mode: publish throughput is limited by one control request per message (4 connections)".into());
                result
                    .map_err(|e| warnings.push(format!("throughput test failed: {e}")))
                    .ok()
            } else {
                None
            };
            (figures, "quic", connect_ms, throughput)
        }
    };
    progress.say("done");
    warnings.extend(figures.notes.iter().cloned());
    let envelope_overhead = if config.envelopes {
        envelope_cost.overhead_bytes
    } else {
        0
    };

    Ok(assemble(
        &config,
        command,
        &plan,
        figures,
        transport,
        connect_ms,
        throughput,
        envelope_status,
        (envelope_cost, envelope_overhead),
        warnings,
    ))
}

/// Connection set-up times on two fresh nodes of the mode's stack.
async fn local_connect_times(
    transport: LocalTransport,
    samples: usize,
) -> Result<ConnectReport, SimError> {
    let mut report = ConnectReport {
        method: format!(
            "two fresh in-process nodes; {samples} sequential dials per transport (after one warm-up), each from `connect` until the dialler's connection is up, closed on both sides between dials"
        ),
        ..ConnectReport::default()
    };
    if samples == 0 {
        return Ok(report);
    }
    let kinds: &[TransportKind] = match transport {
        LocalTransport::Memory => &[TransportKind::Memory],
        LocalTransport::Quic | LocalTransport::Tcp => &[TransportKind::Quic, TransportKind::Tcp],
    };
    for (kind, summary) in bench::connect::connect_times(transport, kinds, samples).await? {
        match kind {
            TransportKind::Quic => report.quic = summary,
            TransportKind::Tcp => report.tcp = summary,
            _ => report.memory = summary,
        }
    }
    Ok(report)
}

/// Growth of a metric sum; a metric that appears only later started at 0.
fn delta(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    after.map(|b| b - before.unwrap_or(0.0))
}

async fn measure<C: Cluster>(
    cluster: &Arc<C>,
    config: &SimConfig,
    plan: &Plan,
    rng: &mut StdRng,
    progress: &Progress,
) -> Result<NetworkFigures, SimError> {
    let n = cluster.len();
    let topic = plan.spec.topic.as_str();
    let mut notes = Vec::new();
    progress.say(&format!("dialling {} edges", plan.topology.edges.len()));
    let dials = formation::dial_topology(cluster, &plan.topology).await;
    if let Some(e) = &dials.first_failure {
        notes.push(format!(
            "{} of {} topology dials failed (first: {e})",
            dials.failures,
            plan.topology.edges.len()
        ));
        if dials.failures == plan.topology.edges.len() {
            return Err(SimError::Topology {
                failed: dials.failures,
                total: plan.topology.edges.len(),
                first: e.clone(),
            });
        }
    }
    let dial_us = dials.times_us;
    progress.say("subscribing");

    let recorder = Arc::new(Recorder::new(
        plan.spec.run,
        plan.spec.clock,
        config.oversized_threshold(),
    ));
    let receive_bound = Duration::from_secs(
        config.mesh_timeout_secs
            + config.settle_timeout_secs
            + config.idle_secs
            + config.drain_secs * 2
            + 600,
    ) + config.workload_duration() * 2;
    let subscribe_us = formation::subscribe_all(cluster, topic, &recorder, receive_bound).await?;
    progress.say("waiting for the gossip meshes");
    let mesh = formation::wait_for_meshes(
        cluster,
        topic,
        &plan.topology.neighbours(),
        Duration::from_secs(config.mesh_timeout_secs),
    )
    .await?;

    progress.say("waiting for the network to stop opening connections");
    let quiet =
        formation::wait_for_quiet(cluster, Duration::from_secs(config.settle_timeout_secs)).await?;
    if config.settle_timeout_secs == 0 {
        notes.push("no wait for start-up connection churn to end (--settle-timeout-secs 0)".into());
    } else if !quiet.settled {
        notes.push(format!(
            "the network was still opening {:.2} connections per node per second when the workload started (bound {} s)",
            quiet.last_rate.unwrap_or(0.0),
            config.settle_timeout_secs
        ));
    }
    // Idle once the network has settled and before the workload: the steady
    // state of a formed network, with no message backlog still draining.
    let idle_window = Duration::from_secs(config.idle_secs);
    let (idle_cpu_s, idle_traffic, idle_connections) = if config.idle_secs > 0 {
        progress.say(&format!("measuring {} s of idle network", config.idle_secs));
        let traffic_before = total_traffic(cluster.as_ref()).await?;
        let connections_before = metric_sums(cluster.as_ref(), &[CONNECTIONS]).await?[0];
        let before = cluster.cpu_seconds()?;
        tokio::time::sleep(idle_window).await;
        let cpu = cluster.cpu_seconds()? - before;
        let traffic = total_traffic(cluster.as_ref()).await?.since(traffic_before);
        let connections_after = metric_sums(cluster.as_ref(), &[CONNECTIONS]).await?[0];
        (
            Some(cpu),
            Some(traffic),
            delta(connections_before, connections_after),
        )
    } else {
        (None, None, None)
    };
    let peers = ask_every_node(cluster, |c, node| async move { c.peers(node).await }).await?;
    let workload_metrics = [RECV_UNFILTERED, RECV_FILTERED, CONNECTIONS];
    let traffic_before = total_traffic(cluster.as_ref()).await?;
    let metrics_before = metric_sums(cluster.as_ref(), &workload_metrics).await?;
    let loopback_before = procfs::loopback_rx_bytes().ok();
    let ticks = procfs::clock_ticks_per_second();
    let own_cpu = || -> f64 {
        // In process mode the simulator is not among the nodes.
        if cluster.cpu_is_per_process() {
            procfs::cpu_seconds(None, ticks).unwrap_or(0.0)
        } else {
            0.0
        }
    };
    let machine_before = procfs::machine_busy_seconds(ticks).ok();
    let sim_before = own_cpu();
    let cpu_before = cluster.cpu_seconds()?;
    let load_started = Instant::now();

    progress.say(&format!(
        "publishing {} messages ({} valid) over {:.0} s",
        plan.slots.len(),
        config.messages,
        config.workload_duration().as_secs_f64()
    ));
    let (published, publishing) = workload::publish_all(cluster, &plan.slots, &plan.spec).await?;
    let accepted: Vec<(u32, usize)> = published
        .iter()
        .filter(|p| p.slot.kind == SlotKind::Valid && p.error.is_none())
        .map(|p| (p.slot.seq, p.slot.publisher))
        .collect();
    let expected = (accepted.len() * (n - 1)) as u64;
    progress.say("waiting for the last deliveries");
    recorder
        .wait_for(expected, Duration::from_secs(config.drain_secs))
        .await;

    let load_window = load_started.elapsed();
    let load_cpu_s = cluster.cpu_seconds()? - cpu_before;
    let other_cpu_s = match (machine_before, procfs::machine_busy_seconds(ticks).ok()) {
        (Some(a), Some(b)) => Some((b - a - load_cpu_s - (own_cpu() - sim_before)).max(0.0)),
        _ => None,
    };
    let loopback_bytes = match (loopback_before, procfs::loopback_rx_bytes().ok()) {
        (Some(a), Some(b)) if config.mode != Mode::Memory => Some(b.saturating_sub(a)),
        _ => None,
    };
    let traffic = total_traffic(cluster.as_ref()).await?.since(traffic_before);
    let metrics_after = metric_sums(cluster.as_ref(), &workload_metrics).await?;
    let gossip_counts =
        delta(metrics_before[0], metrics_after[0]).zip(delta(metrics_before[1], metrics_after[1]));
    let load_connections = delta(metrics_before[2], metrics_after[2]);
    let recorded = recorder.snapshot();
    let delivery = delivery_stats(&accepted, &recorded.deliveries, n);

    let (dht, dht_requests_per_lookup) = if config.dht_lookups > 0 {
        progress.say(&format!(
            "{} DHT announcements and lookups",
            config.dht_lookups
        ));
        match bench::dht::announce(cluster.as_ref(), config.dht_lookups, plan.spec.run, rng).await {
            Ok(announced) => {
                let before = metric_sums(cluster.as_ref(), &[KAD_GET_SERVED]).await?[0];
                let dht = bench::dht::look_up(cluster.as_ref(), announced, rng).await;
                let after = metric_sums(cluster.as_ref(), &[KAD_GET_SERVED]).await?[0];
                // No sample at all: no node served a GetRecord request.
                let requests = delta(before, after).unwrap_or(0.0);
                let per_lookup = Some(requests / config.dht_lookups as f64);
                (Some(dht), per_lookup)
            }
            Err(e) => {
                notes.push(format!("DHT announcements failed: {e}"));
                (None, None)
            }
        }
    } else {
        (None, None)
    };
    let rss = cluster.resident()?;
    let process_rss = if cluster.cpu_is_per_process() {
        None
    } else {
        procfs::resident(None).ok().map(|r| r.total)
    };
    Ok(NetworkFigures {
        dial_us,
        subscribe_us,
        peers,
        load_connections,
        idle_connections,
        dht_requests_per_lookup,
        quiet,
        mesh,
        published,
        publishing,
        recorded,
        delivery,
        traffic,
        gossip_counts,
        loopback_bytes,
        idle_cpu_s,
        idle_traffic,
        idle_window,
        load_cpu_s,
        other_cpu_s,
        load_window,
        dht,
        rss,
        process_rss,
        raw_publish_supported: cluster.raw_publish_supported(),
        notes,
    })
}

fn per_node_per_minute(cpu_s: f64, nodes: usize, window: Duration) -> Option<f64> {
    let minutes = window.as_secs_f64() / 60.0;
    (minutes > 0.0).then(|| cpu_s / nodes as f64 / minutes)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    config: &SimConfig,
    command: String,
    plan: &Plan,
    f: NetworkFigures,
    transport: &'static str,
    connect_ms: ConnectReport,
    throughput: Option<ThroughputFigures>,
    envelope_status: EnvelopeStatus,
    (envelope_cost, envelope_overhead): (EnvelopeCost, usize),
    mut warnings: Vec<String>,
) -> Report {
    let n = config.nodes;
    let byzantine_path = match (envelope_status.enabled(), f.raw_publish_supported) {
        (_, true) => "broadcast_raw: invalid messages bypass the publisher's envelope",
        (true, false) => {
            "the daemon's publish request wraps everything: Byzantine garbage travels in valid envelopes"
        }
        (false, false) => "plain publish",
    };
    let valid: Vec<&Published> = f
        .published
        .iter()
        .filter(|p| p.slot.kind == SlotKind::Valid)
        .collect();
    let failures: Vec<&&Published> = valid.iter().filter(|p| p.error.is_some()).collect();
    let sent = |kind| {
        f.published
            .iter()
            .filter(|p| p.slot.kind == kind && p.error.is_none())
            .count()
    };
    let first_valid = valid.iter().map(|p| p.slot.at).min().unwrap_or_default();
    let last_valid = valid
        .iter()
        .map(|p| p.done_at)
        .max()
        .unwrap_or(f.publishing);
    let span = last_valid.saturating_sub(first_valid).as_secs_f64();
    let achieved_rate = if span > 0.0 {
        (valid.len() - failures.len()) as f64 / span
    } else {
        0.0
    };

    let (duplicates_per_msg, duplicates_method) = match f.gossip_counts {
        Some((unfiltered, filtered)) => (
            traffic::duplicates_from_counters(unfiltered, filtered),
            DuplicateMethod::GossipsubCounters,
        ),
        None => {
            // Take away the background traffic of an idle network (pings,
            // identify, DHT, heartbeats) over the same time, when measured.
            let background = f.idle_traffic.map_or(0, |t| {
                (t.bytes_in as f64 * f.load_window.as_secs_f64()
                    / f.idle_window.as_secs_f64().max(f64::MIN_POSITIVE)) as u64
            });
            (
                traffic::duplicates_from_bytes(
                    f.traffic.bytes_in.saturating_sub(background),
                    f.delivery.delivered,
                    config.size + envelope_overhead,
                ),
                DuplicateMethod::WireBytesEstimate,
            )
        }
    };

    if let Some(e) = &f.mesh.first_error {
        warnings.push(format!(
            "{} nodes saw fewer than min(neighbours, {}) subscribed peers within {} s; first: {e}",
            f.mesh.nodes_short_of_topic_peers,
            formation::MESH_N_LOW,
            config.mesh_timeout_secs
        ));
    }
    if f.mesh.nodes_below_target > 0 {
        warnings.push(format!(
            "{} nodes had meshes below min(neighbours, {}) when the workload started (bound {} s)",
            f.mesh.nodes_below_target,
            formation::MESH_N_LOW,
            config.mesh_timeout_secs
        ));
    }
    if f.recorded.lagged_events > 0 {
        warnings.push(format!(
            "receivers missed {} node events (deliveries may be under-counted)",
            f.recorded.lagged_events
        ));
    }
    if let Some(p) = failures.first() {
        warnings.push(format!(
            "{} valid publishes refused; first: {}",
            failures.len(),
            p.error.as_deref().unwrap_or_default()
        ));
    }
    let honest_receivers = n - plan.byzantine.iter().filter(|b| **b).count();
    let at_honest = |receivers: &[u32]| {
        receivers
            .iter()
            .filter(|&&r| !plan.byzantine[r as usize])
            .count() as u64
    };
    let invalid_received = at_honest(&f.recorded.invalid);
    let oversized_received = at_honest(&f.recorded.oversized);
    let rss_mb: Option<Vec<f64>> = f
        .rss
        .as_ref()
        .map(|v| v.iter().map(|r| mb(r.total)).collect());
    let anon_mb: Option<Vec<f64>> = f
        .rss
        .as_ref()
        .map(|v| v.iter().map(|r| mb(r.anonymous)).collect());
    let pss_mb: Option<Vec<f64>> = f
        .rss
        .as_ref()
        .and_then(|v| v.iter().map(|r| r.proportional.map(mb)).collect());

    Report {
        command,
        mode: config.mode,
        transport,
        nodes: n,
        topology: TopologyReport {
            kind: config.topology,
            degree: config.degree,
            edges: plan.topology.edges.len(),
            bridges: plan.topology.bridges,
            diameter: plan.topology.diameter(),
            max_connections: plan.max_connections,
        },
        mesh: f.mesh,
        settle: f.quiet,
        workload: WorkloadReport {
            messages: config.messages,
            rate: config.rate,
            size: config.size,
            published: valid.len() - failures.len(),
            publish_failures: failures.len(),
            first_publish_error: failures.first().and_then(|p| p.error.clone()),
            achieved_rate,
            clock: plan.spec.clock.name(),
        },
        envelopes: EnvelopeReport {
            enabled: envelope_status.enabled(),
            note: envelope_status.note(),
            byzantine_path,
            cost: envelope_cost,
        },
        byzantine: ByzantineReport {
            fraction: config.byzantine,
            nodes: plan.byzantine.iter().filter(|b| **b).count(),
            malformed_sent: sent(SlotKind::Malformed),
            oversized_sent: sent(SlotKind::Oversized),
            invalid_received,
            oversized_received,
            invalid_received_per_node: invalid_received as f64 / honest_receivers as f64,
        },
        delivered_ratio: f.delivery.ratio,
        complete_messages: f.delivery.complete_messages,
        latency_ms: f.delivery.latency,
        duplicates_per_msg,
        duplicates_method,
        bytes_per_payload_byte: traffic::bytes_per_payload_byte(
            f.traffic.bytes_out,
            f.delivery.delivered,
            config.size,
        ),
        loopback_bytes_per_payload_byte: f
            .loopback_bytes
            .and_then(|b| traffic::bytes_per_payload_byte(b, f.delivery.delivered, config.size)),
        rss_mb_per_node: rss_mb
            .as_ref()
            .map(|v| v.iter().sum::<f64>() / v.len().max(1) as f64),
        rss_mb_max: rss_mb
            .as_ref()
            .and_then(|v| v.iter().copied().reduce(f64::max)),
        anon_rss_mb_per_node: anon_mb
            .as_ref()
            .map(|v| v.iter().sum::<f64>() / v.len().max(1) as f64),
        pss_mb_per_node: pss_mb
            .as_ref()
            .map(|v| v.iter().sum::<f64>() / v.len().max(1) as f64),
        process_rss_mb_per_node: f.process_rss.map(|b| mb(b) / n as f64),
        cpu: {
            let idle = f
                .idle_cpu_s
                .and_then(|c| per_node_per_minute(c, n, f.idle_window));
            CpuReport {
                scope: if config.mode == Mode::Process {
                    "each conclaved process (/proc/PID/stat)"
                } else {
                    "this whole process (/proc/self/stat) divided by the nodes"
                },
                idle_s_per_node_per_min: idle,
                load_s_per_node_per_min: per_node_per_minute(f.load_cpu_s, n, f.load_window),
                idle_percent_of_core: idle.map(|s| s / 60.0 * 100.0),
                other_processes_cores: f
                    .other_cpu_s
                    .map(|c| c / f.load_window.as_secs_f64().max(f64::MIN_POSITIVE)),
                idle_window_s: f.idle_window.as_secs_f64(),
                load_window_s: f.load_window.as_secs_f64(),
            }
        },
        connect_ms,
        topology_dial_ms: summarize_us(&mut f.dial_us.clone()),
        subscribe_ms: summarize_us(&mut f.subscribe_us.clone()),
        peers_per_node: PeersReport {
            mean: f.peers.iter().sum::<usize>() as f64 / n as f64,
            max: f.peers.iter().copied().max().unwrap_or(0),
            topology_mean: 2.0 * plan.topology.edges.len() as f64 / n as f64,
        },
        connections_opened_per_node_per_min: ChurnReport {
            load: f
                .load_connections
                .and_then(|c| per_node_per_minute(c, n, f.load_window)),
            idle: f
                .idle_connections
                .and_then(|c| per_node_per_minute(c, n, f.idle_window)),
        },
        dht_requests_per_lookup: f.dht_requests_per_lookup,
        dht_lookup_ms: f.dht.as_ref().and_then(|d| d.lookup),
        dht: f.dht,
        dht_hops: None,
        publish_msgs_per_s: throughput.as_ref().map(|t| t.publish_msgs_per_s),
        publish_throughput: throughput,
        events_lagged: f.recorded.lagged_events,
        repeated_deliveries: f.recorded.repeated,
        machine: Machine::detect(),
        warnings,
    }
}
