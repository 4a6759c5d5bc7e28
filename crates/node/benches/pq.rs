//! Prints the cost of the post-quantum layer: envelope signing and
//! verification, sealing and opening, and gossip throughput with envelopes on
//! a small loopback topology.
//!
//! cargo bench -p conclave-node --bench pq

use std::time::{Duration, Instant};

use conclave_node::{
    config::NodeConfig,
    identity::{
        envelope::{Envelope, MessageKind, DEFAULT_WINDOW},
        ml_dsa, pq, sealed, NodeIdentity,
    },
    Keypair, Node, NodeEvent,
};

fn rate(label: &str, n: u32, f: impl FnMut(u32)) {
    let mut f = f;
    let started = Instant::now();
    for i in 0..n {
        f(i);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{label:<44} {:>10.0} /s   ({:.3} ms each)",
        f64::from(n) / secs,
        secs * 1000.0 / f64::from(n)
    );
}

/// Sign/verify and seal/open rates; `scale` divides the iteration counts.
fn crypto(scale: u32) {
    let id = NodeIdentity::generate();
    let payload = vec![7u8; 1024];
    let signed = Envelope::sign(&id, MessageKind::Gossip, "t", &payload).unwrap();
    println!("envelope size for a 1 KiB payload: {} bytes", signed.len());
    rate(
        "envelope sign (Ed25519 + ML-DSA-65, 1 KiB)",
        500 / scale,
        |_| {
            Envelope::sign(&id, MessageKind::Gossip, "t", &payload).unwrap();
        },
    );
    rate(
        "envelope verify (both signatures, 1 KiB)",
        1000 / scale,
        |_| {
            Envelope::verify(&signed, MessageKind::Gossip, "t", None, DEFAULT_WINDOW).unwrap();
        },
    );
    let digest = [9u8; 32];
    rate("ML-DSA-65 sign, ml-dsa (reference)", 500 / scale, |_| {
        id.sign_ml_dsa(&digest, b"").unwrap();
    });
    rate("ML-DSA-65 sign, aws-lc-rs", 500 / scale, |_| {
        id.sign_ml_dsa_message(&digest).unwrap();
    });
    let public = id.record().ml_dsa_public.clone();
    let signature = id.sign_ml_dsa_message(&digest).unwrap();
    rate("ML-DSA-65 verify, ml-dsa (reference)", 1000 / scale, |_| {
        assert!(pq::verify_ml_dsa(&public, &digest, b"", &signature));
    });
    rate(
        "ML-DSA-65 verify, aws-lc-rs (key parsed each time)",
        1000 / scale,
        |_| {
            assert!(ml_dsa::verify(&public, &digest, &signature));
        },
    );
    let parsed = ml_dsa::VerifyingKey::parse(&public).unwrap();
    rate(
        "ML-DSA-65 verify, aws-lc-rs (parsed key cached)",
        1000 / scale,
        |_| {
            assert!(parsed.verify(&digest, &signature));
        },
    );
    let recipients: Vec<NodeIdentity> = (0..5).map(|_| NodeIdentity::generate()).collect();
    let one = [recipients[0].record()];
    let five: Vec<_> = recipients.iter().map(|r| r.record()).collect();
    let sealed_one = sealed::seal(&payload, b"aad", &one).unwrap();
    let sealed_five = sealed::seal(&payload, b"aad", &five).unwrap();
    println!(
        "sealed size, 1 KiB to 1 / 5 recipients: {} / {} bytes",
        sealed_one.len(),
        sealed_five.len()
    );
    rate(
        "seal 1 KiB to 1 recipient (X25519+ML-KEM-768)",
        1000 / scale,
        |_| {
            sealed::seal(&payload, b"aad", &one).unwrap();
        },
    );
    rate("seal 1 KiB to 5 recipients", 300 / scale, |_| {
        sealed::seal(&payload, b"aad", &five).unwrap();
    });
    rate("open 1 KiB (1 recipient)", 1000 / scale, |_| {
        sealed::open(&sealed_one, b"aad", &recipients[0]).unwrap();
    });
    rate("open 1 KiB (5 recipients, last slot)", 1000 / scale, |_| {
        sealed::open(&sealed_five, b"aad", &recipients[4]).unwrap();
    });
}

async fn gossip(nodes: usize, messages: usize, envelopes: bool) {
    let config = NodeConfig {
        envelopes,
        max_messages_per_sec: 1e9,
        max_bytes_per_sec: 1e12,
        ..NodeConfig::loopback()
    };
    let mut handles = Vec::new();
    for _ in 0..nodes {
        handles.push(
            Node::start(config.clone(), Keypair::generate_ed25519())
                .await
                .unwrap(),
        );
    }
    // A line: the publisher at one end, so messages cross every hop.
    for i in 1..nodes {
        let addr = handles[i - 1].listen_addrs().await.unwrap()[0].clone();
        handles[i].connect(addr).await.unwrap();
    }
    for h in &handles {
        h.subscribe("bench").await.unwrap();
    }
    for (i, h) in handles.iter().enumerate() {
        let neighbours = if i == 0 || i == nodes - 1 { 1 } else { 2 };
        h.wait_for_topic_peers("bench", neighbours, Duration::from_secs(20))
            .await
            .unwrap();
    }
    let mut last = handles[nodes - 1].subscribe_events();
    let publisher = handles[0].clone();
    let started = Instant::now();
    let send = tokio::spawn(async move {
        for i in 0..messages {
            let mut payload = vec![0u8; 1024];
            payload[..8].copy_from_slice(&(i as u64).to_le_bytes());
            publisher.broadcast("bench", payload).await.unwrap();
        }
        started.elapsed()
    });
    let mut received = 0;
    while received < messages {
        match tokio::time::timeout(Duration::from_secs(30), last.recv()).await {
            Ok(Some(NodeEvent::Message(_))) => received += 1,
            Ok(Some(NodeEvent::Lagged { missed })) => {
                panic!("benchmark subscriber lagged by {missed}")
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let publish = send.await.unwrap();
    let total = started.elapsed();
    println!(
        "gossip, {nodes} nodes in a line, envelopes {}: published {:.0} msg/s; {received}/{messages} reached the far end at {:.0} msg/s",
        if envelopes { "on " } else { "off" },
        messages as f64 / publish.as_secs_f64(),
        received as f64 / total.as_secs_f64(),
    );
    for h in handles {
        let _ = h.stop().await;
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` also runs this
    // file, in a debug build, where a short smoke run is enough.
    let full = std::env::args().any(|a| a == "--bench");
    let (scale, messages) = if full { (1, 2000) } else { (20, 50) };
    crypto(scale);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for nodes in [2, 5] {
            gossip(nodes, messages, true).await;
            gossip(nodes, messages, false).await;
        }
    });
}
