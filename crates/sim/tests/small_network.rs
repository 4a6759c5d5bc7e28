//! A small configuration of the simulator as part of the test command: ten
//! real nodes, all on 127.0.0.1 with port 0 (or the memory transport) and
//! mDNS off. Asserts delivery and the shape of the output, never timing.

use std::time::Duration;

use conclave_sim::{Mode, SimConfig, TopologyKind};

/// Generous bound on one run: a failure must not hang the test command.
const LIMIT: Duration = Duration::from_secs(50);

fn small(mode: Mode, byzantine: f64) -> SimConfig {
    SimConfig {
        mode,
        nodes: 10,
        degree: 3,
        topology: TopologyKind::Random,
        messages: 40,
        rate: 40.0,
        size: 256,
        byzantine,
        envelopes: true,
        seed: 11,
        idle_secs: 0,
        drain_secs: 20,
        mesh_timeout_secs: 20,
        settle_timeout_secs: 10,
        connect_samples: 5,
        dht_lookups: 5,
        throughput_messages: 200,
        throughput_nodes: 3,
        max_connections: None,
        conclaved: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_inproc_nodes_over_quic_deliver_every_message_everywhere() {
    // Two of the ten publish malformed and oversized messages as well.
    let config = small(Mode::Inproc, 0.2);
    let report = tokio::time::timeout(LIMIT, conclave_sim::run(config, "test".into()))
        .await
        .expect("the run finishes within its bound")
        .expect("the run succeeds");
    assert_eq!(report.nodes, 10);
    assert_eq!(report.transport, "quic");
    assert_eq!(report.workload.published, 40, "{:?}", report.workload);
    assert_eq!(report.delivered_ratio, 1.0, "{}", report.table());
    assert_eq!(report.complete_messages, 40);
    assert_eq!(report.latency_ms.expect("latencies").count, 40 * 9);
    assert!(report.byzantine.malformed_sent > 0);
    assert_eq!(
        report.byzantine.invalid_received, 0,
        "envelopes keep malformed messages from honest applications"
    );
    assert_eq!(report.byzantine.oversized_received, 0);
    assert_eq!(report.events_lagged, 0);
    assert!(report.envelopes.enabled, "envelopes are on by default");

    let quic = report.connect_ms.quic.expect("QUIC dials timed");
    let tcp = report.connect_ms.tcp.expect("TCP dials timed");
    assert_eq!((quic.count, tcp.count), (5, 5));
    let dht = report.dht.as_ref().expect("DHT measured");
    assert_eq!(dht.failures, 0, "{:?}", dht.first_failure);
    let throughput = report
        .publish_throughput
        .as_ref()
        .expect("throughput measured");
    assert_eq!(throughput.accepted, 200, "{:?}", throughput.first_error);
    assert_eq!(throughput.delivered_ratio, 1.0);
}

#[test]
fn the_binary_runs_memory_mode_and_prints_one_json_object() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_conclave-sim"))
        .args(["--mode", "memory", "--nodes", "10", "--degree", "3"])
        .args(["--messages", "20", "--rate", "40", "--size", "128"])
        .args(["--byzantine", "0.2", "--no-envelopes", "--json"])
        .args([
            "--idle-secs",
            "1",
            "--connect-samples",
            "3",
            "--dht-lookups",
            "3",
        ])
        .args(["--throughput-messages", "50", "--drain-secs", "20"])
        .output()
        .expect("conclave-sim runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert_eq!(report["nodes"], 10);
    assert_eq!(report["transport"], "memory");
    assert_eq!(report["delivered_ratio"], 1.0, "{report:#}");
    assert_eq!(report["byzantine"]["nodes"], 2);
    assert!(report["byzantine"]["malformed_sent"].as_u64().unwrap() > 0);
    assert_eq!(
        report["byzantine"]["oversized_received"], 0,
        "oversized messages never reach an application"
    );
    assert_eq!(report["envelopes"]["enabled"], false);
    assert!(
        report["byzantine"]["invalid_received"].as_u64().unwrap() > 0,
        "without envelopes malformed messages reach honest applications"
    );
    for key in ["p50", "p95", "p99", "max"] {
        assert!(report["latency_ms"][key].is_number(), "latency_ms.{key}");
    }
    for key in ["p50", "p99"] {
        assert!(report["connect_ms"]["memory"][key].is_number());
    }
    for key in [
        "duplicates_per_msg",
        "bytes_per_payload_byte",
        "publish_msgs_per_s",
    ] {
        assert!(report[key].is_number(), "{key}");
    }
    assert!(
        report["rss_mb_per_node"].is_null(),
        "only process mode has per-node RSS"
    );
    assert!(report["connect_ms"]["quic"].is_null());
}
