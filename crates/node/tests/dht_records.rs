//! DHT records under a hostile peer: real nodes on 127.0.0.1, one of them
//! (M) PUTting garbage, older signed copies and floods of records to the
//! others. Honest nodes keep and return the newest valid record, and what M
//! stores with them stays within its share.
//!
//! M uses the public API only (`put_record` stores any bytes under any key
//! and replicates them): that is all a hostile peer needs.

use std::time::{Duration, Instant};

use conclave_node::{
    clock::unix_secs,
    identity::envelope::{Envelope, MessageKind},
    NodeConfig, NodeEvent, NodeHandle, NodeIdentity, ResourceRecord,
};
use conclave_testkit::{connect, init_logging, start_many, wait_event, within, Transport};
use libp2p::kad;

/// Connects every pair and waits until identify ran both ways (so each has
/// the other in its routing table).
async fn mesh(nodes: &[NodeHandle]) {
    for (i, from) in nodes.iter().enumerate() {
        for to in &nodes[i + 1..] {
            let mut from_events = from.subscribe_events();
            let mut to_events = to.subscribe_events();
            connect(from, to, Transport::Quic).await;
            for (events, peer) in [
                (&mut from_events, to.peer_id()),
                (&mut to_events, from.peer_id()),
            ] {
                if peer_identified(from, to, peer).await {
                    continue;
                }
                wait_event(events, &format!("identify of {peer}"), |e| match e {
                    NodeEvent::PeerUpdated(info)
                        if info.peer_id == peer && info.agent_version.is_some() =>
                    {
                        Some(())
                    }
                    _ => None,
                })
                .await;
            }
        }
    }
}

/// Whether the side of `from`/`to` that is not `peer` knows `peer`'s agent.
async fn peer_identified(from: &NodeHandle, to: &NodeHandle, peer: libp2p::PeerId) -> bool {
    let observer = if peer == to.peer_id() { from } else { to };
    observer
        .peers()
        .await
        .expect("peers")
        .iter()
        .any(|p| p.peer_id == peer && p.agent_version.is_some())
}

/// Waits until `node` has decided on `count` more inbound records than
/// `before` (it stored or refused them).
async fn wait_puts_handled(node: &NodeHandle, before: u64, count: u64) {
    within("inbound records handled", async {
        loop {
            let handled = node.dht_store().await.expect("store stats").puts_handled;
            if handled >= before + count {
                return;
            }
            // No event reports a refused record: poll the counter.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

async fn handled(node: &NodeHandle) -> u64 {
    node.dht_store().await.expect("store stats").puts_handled
}

fn key(kind: &str, id: &str) -> kad::RecordKey {
    kad::RecordKey::new(&format!("/conclave/res/{kind}/{id}"))
}

/// A valid resource record `(kind, id)` signed by `signer`.
fn signed_resource(signer: &NodeIdentity, kind: &str, id: &str) -> kad::Record {
    let record = ResourceRecord {
        kind: kind.into(),
        id: id.into(),
        data: serde_json::json!({"n": id}),
        provider: signer.peer_id(),
        expires_at: unix_secs() + 600,
    };
    let context = format!("/conclave/res/{kind}/{id}");
    let value = Envelope::sign(
        signer,
        MessageKind::Resource,
        &context,
        &serde_json::to_vec(&record).unwrap(),
    )
    .unwrap();
    kad::Record::new(key(kind, id), value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_an_older_signed_copy_do_not_replace_the_newest_record() {
    init_logging();
    // E publishes, A and B are honest, M is hostile.
    let nodes = start_many(4, &NodeConfig::loopback()).await;
    mesh(&nodes).await;
    let (e, a, b, m) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    let ttl = Duration::from_secs(600);

    let first = within(
        "announce v1",
        e.announce_resource("t", "x", serde_json::json!("v1"), ttl),
    )
    .await
    .expect("announce v1");
    // M keeps the signed copy of v1 it can fetch like anyone.
    let old_copy = within("M fetches v1", m.get_record(key("t", "x")))
        .await
        .expect("v1 found");
    let newest = within(
        "announce v2",
        e.announce_resource("t", "x", serde_json::json!("v2"), ttl),
    )
    .await
    .expect("announce v2");
    assert_ne!(first, newest);
    // A and B have each decided on E's four PUTs (record and index, twice).
    for node in [a, b] {
        wait_puts_handled(node, 0, 4).await;
    }
    for node in [a, b] {
        let found = within("get v2", node.get_resource("t", "x")).await;
        assert_eq!(found.expect("v2 found"), newest, "before the attack");
    }

    // Garbage, then the older signed copy, PUT (and replicated) by M to the
    // others, E included.
    for (what, value) in [
        ("garbage", b"garbage".to_vec()),
        ("the older signed copy", old_copy.value.clone()),
    ] {
        let before = [handled(e).await, handled(a).await, handled(b).await];
        within(what, m.put_record(kad::Record::new(key("t", "x"), value)))
            .await
            .unwrap_or_else(|err| panic!("M puts {what}: {err}"));
        for (node, before) in [e, a, b].into_iter().zip(before) {
            wait_puts_handled(node, before, 1).await;
        }
        for (name, node) in [("E", e), ("A", a), ("B", b)] {
            let found = within("get after the attack", node.get_resource("t", "x")).await;
            assert_eq!(
                found.unwrap_or_else(|err| panic!("{name} after {what}: {err}")),
                newest,
                "{name} after {what}"
            );
        }
    }
    // M's own store holds the older copy; a look-up from M still finds the
    // newest, from the honest nodes.
    let found = within("get at M", m.get_resource("t", "x")).await;
    assert_eq!(found.expect("found at M"), newest);

    for node in &nodes {
        within("stop", node.stop()).await.expect("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_puts_stays_within_its_share_and_leaves_honest_records() {
    init_logging();
    let nodes = start_many(3, &NodeConfig::loopback()).await;
    mesh(&nodes).await;
    let (e, a, m) = (&nodes[0], &nodes[1], &nodes[2]);
    let honest = within(
        "announce",
        e.announce_resource(
            "t",
            "honest",
            serde_json::json!(1),
            Duration::from_secs(600),
        ),
    )
    .await
    .expect("announce");
    wait_puts_handled(a, 0, 2).await;
    let stored_before = a.dht_store().await.unwrap();
    assert!(stored_before.records >= 2, "{stored_before:?}");

    // M signs every record validly, as itself and as many identities it
    // made up, and PUTs them as fast as it can.
    let me = m.identity();
    let strangers: Vec<NodeIdentity> = (0..8).map(|_| NodeIdentity::generate()).collect();
    let mut signers = vec![me.as_ref()];
    signers.extend(strangers.iter());
    let flood = 400;
    let before = handled(a).await;
    let started = Instant::now();
    for i in 0..flood {
        let signer = signers[i % signers.len()];
        let record = signed_resource(signer, "flood", &format!("r{i}"));
        within("flood put", m.put_record(record))
            .await
            .expect("M's put");
    }
    let elapsed = started.elapsed();
    wait_puts_handled(a, before, flood as u64).await;
    let store = a.dht_store().await.unwrap();
    println!(
        "figure: {flood} PUTs from one peer in {elapsed:?}: A stored {} of them",
        store.records - stored_before.records
    );
    // One peer gets its PUT rate's worth in, whoever signed the records.
    let rate_share = 16.0 * (1.0 + elapsed.as_secs_f64()) + 1.0;
    assert!(
        ((store.records - stored_before.records) as f64) <= rate_share,
        "{store:?} after {elapsed:?}"
    );
    assert!(store.records <= conclave_node::records::MAX_STORED_RECORDS);
    assert!(store.bytes <= store.records * conclave_node::records::MAX_RECORD_BYTES);

    // The honest record is still there and honest PUTs still land.
    let found = within("honest get", a.get_resource("t", "honest")).await;
    assert_eq!(found.expect("honest record"), honest);
    let before = handled(a).await;
    let later = within(
        "announce",
        e.announce_resource("t", "later", serde_json::json!(2), Duration::from_secs(600)),
    )
    .await
    .expect("announce");
    wait_puts_handled(a, before, 2).await;
    assert_eq!(
        a.dht_store().await.unwrap().records,
        store.records + 1,
        "A stored E's new record (and replaced E's index)"
    );
    let found = within("honest get", a.get_resource("t", "later")).await;
    assert_eq!(found.expect("later record"), later);

    for node in &nodes {
        within("stop", node.stop()).await.expect("stop");
    }
}
