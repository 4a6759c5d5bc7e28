//! Ten nodes on loopback; two of them publish gossip whose ML-DSA-65
//! signatures are invalid. Honest nodes must reject every such message, the
//! attackers' scores must fall below the gossip threshold within 10 s and end
//! below the graylist threshold, and honest gossip must keep flowing.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use conclave_node::{
    gossip::scoring::{GOSSIP_THRESHOLD, GRAYLIST_THRESHOLD},
    identity::envelope::{Envelope, MessageKind},
    NodeConfig, NodeEvent, NodeHandle, PeerId,
};
use conclave_testkit::{connect, ms, start_many, wait_event, Transport};

const TOPIC: &str = "market";
const HONEST: usize = 8;

/// A correctly framed envelope whose Ed25519 signature is valid but whose
/// ML-DSA-65 signature is not.
fn forged(node: &NodeHandle, n: u32) -> Vec<u8> {
    let bytes = Envelope::sign(
        &node.identity(),
        MessageKind::Gossip,
        TOPIC,
        format!("forged {n}").as_bytes(),
    )
    .unwrap();
    let mut envelope: Envelope = postcard::from_bytes(&bytes).unwrap();
    envelope.ml_dsa_signature[7] ^= 0x5a;
    postcard::to_stdvec(&envelope).unwrap()
}

async fn score_of(observer: &NodeHandle, peer: PeerId) -> Option<f64> {
    observer
        .peers()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.peer_id == peer)
        .and_then(|p| p.score)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_signatures_are_rejected_and_their_senders_graylisted() {
    let nodes = start_many(10, &NodeConfig::loopback()).await;
    let mut setup: Vec<_> = nodes.iter().map(|n| n.subscribe_events()).collect();
    // A ring with chords: every node has four neighbours.
    for i in 0..nodes.len() {
        for step in [1, 2] {
            let j = (i + step) % nodes.len();
            connect(&nodes[i], &nodes[j], Transport::Quic).await;
        }
    }
    for node in &nodes {
        node.subscribe(TOPIC).await.unwrap();
    }
    for node in &nodes {
        node.wait_for_topic_peers(TOPIC, 4, Duration::from_secs(20))
            .await
            .unwrap();
    }
    // Each node verifies its neighbours' PQ identity records. The exchange
    // runs beside the subscriptions, so a node may still be verifying one.
    for (node, events) in nodes.iter().zip(&mut setup) {
        while !node.peers().await.unwrap().iter().all(|p| p.pq_identity) {
            wait_event(events, "PQ records exchanged", |e| match e {
                NodeEvent::PeerUpdated(p) if p.pq_identity => Some(()),
                _ => None,
            })
            .await;
        }
    }
    drop(setup);

    let (honest, attackers) = nodes.split_at(HONEST);
    let attacker_ids: HashSet<PeerId> = attackers.iter().map(|n| n.peer_id()).collect();
    let mut subs: Vec<_> = honest.iter().map(|n| n.subscribe_events()).collect();

    // Attack: each attacker sends forged messages until every honest
    // neighbour scores it below the gossip threshold, each pair within 10 s
    // of being seen connected (discovery may connect a pair mid-attack).
    let attack_start = Instant::now();
    let mut sent = 0u32;
    let observers: Vec<(&NodeHandle, PeerId)> = honest
        .iter()
        .flat_map(|h| attackers.iter().map(move |a| (h, a.peer_id())))
        .collect();
    let mut below_gossip: HashMap<(PeerId, PeerId), Duration> = HashMap::new();
    let mut first_seen: HashMap<(PeerId, PeerId), Instant> = HashMap::new();
    loop {
        for attacker in attackers {
            // Publishing can fail once nobody will take our messages: that is the point.
            let _ = attacker.broadcast_raw(TOPIC, forged(attacker, sent)).await;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(100)).await; // the attack's pace, not synchronisation
        let mut neighbours = 0;
        let mut pending = 0;
        let mut overdue = None;
        for (observer, attacker) in &observers {
            let pair = (observer.peer_id(), *attacker);
            if !observer.is_connected(*attacker).await.unwrap() {
                continue;
            }
            neighbours += 1;
            let seen = *first_seen.entry(pair).or_insert_with(Instant::now);
            let score = score_of(observer, *attacker).await;
            if score.is_some_and(|s| s < GOSSIP_THRESHOLD) {
                below_gossip.entry(pair).or_insert(attack_start.elapsed());
            } else if !below_gossip.contains_key(&pair) {
                pending += 1;
                if seen.elapsed() > Duration::from_secs(10) {
                    overdue = Some(score);
                }
            }
        }
        assert!(
            overdue.is_none(),
            "every honest neighbour scores every attacker below {GOSSIP_THRESHOLD} within 10 s ({overdue:?})"
        );
        if neighbours >= 4 && pending == 0 {
            break;
        }
        assert!(
            attack_start.elapsed() < Duration::from_secs(30),
            "attackers have at least four honest neighbours ({neighbours})"
        );
    }
    let slowest = below_gossip.values().max().unwrap();
    println!("figure: attackers below the gossip threshold ({GOSSIP_THRESHOLD}) at every honest neighbour after {} ({} forged messages each)", ms(*slowest), sent);

    // Keep attacking a little: the attackers end up graylisted.
    let graylist_deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for attacker in attackers {
            let _ = attacker.broadcast_raw(TOPIC, forged(attacker, sent)).await;
        }
        sent += 1;
        let mut all_graylisted = true;
        for (observer, attacker) in &observers {
            if let Some(score) = score_of(observer, *attacker).await {
                all_graylisted &= score < GRAYLIST_THRESHOLD;
            }
        }
        if all_graylisted {
            break;
        }
        assert!(
            Instant::now() < graylist_deadline,
            "attackers graylisted within 10 s more"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Honest traffic still reaches every honest node.
    let mut expected: HashSet<Vec<u8>> = HashSet::new();
    for (i, node) in honest.iter().enumerate() {
        let text = format!("honest {i}").into_bytes();
        node.broadcast(TOPIC, text.clone()).await.unwrap();
        expected.insert(text);
    }
    for (i, sub) in subs.iter_mut().enumerate() {
        let own = format!("honest {i}").into_bytes();
        let mut missing: HashSet<Vec<u8>> =
            expected.iter().filter(|t| **t != own).cloned().collect();
        while !missing.is_empty() {
            let (from, data) = wait_event(sub, "honest gossip", |e| match e {
                NodeEvent::Message(m) if m.topic == TOPIC => Some((m.from, m.data.clone())),
                _ => None,
            })
            .await;
            let from = from.expect("messages carry their verified author");
            assert!(
                !attacker_ids.contains(&from),
                "an honest node delivered a forged message"
            );
            missing.remove(&data);
        }
    }

    // No honest node accepted anything from an attacker; neighbours rejected.
    let mut rejected = 0;
    for node in honest {
        for peer in node.peers().await.unwrap() {
            if attacker_ids.contains(&peer.peer_id) {
                assert_eq!(peer.messages.accepted, 0, "a forged message was accepted");
                assert!(peer.messages.rejected > 0);
                rejected += peer.messages.rejected;
            }
        }
    }
    println!("figure: {sent} forged messages per attacker; {rejected} rejections at honest neighbours; all attackers graylisted");
}
