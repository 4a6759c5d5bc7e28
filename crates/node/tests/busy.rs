//! A full table of requests in flight answers `NodeError::Busy` at once,
//! naming the table and its cap, instead of dropping the reply (which the
//! caller would read as "the node is not running").

use std::time::Duration;

use conclave_node::{NodeConfig, NodeError, PeerId};
use conclave_testkit::{start, within};
use futures::{stream::FuturesUnordered, StreamExt};
use libp2p::kad;

/// The cap of DHT queries in flight, and of waits for topic peers.
const CAP: usize = 256;

/// Counts the results: `Busy` ones (checked to name `table` and [`CAP`]),
/// and the rest.
fn count_busy<T: std::fmt::Debug>(results: &[Result<T, NodeError>], table: &str) -> usize {
    results
        .iter()
        .filter(|r| match r {
            Err(NodeError::Busy { table: t, cap }) => {
                assert_eq!((*t, *cap), (table, CAP));
                true
            }
            _ => false,
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_dht_query_table_answers_busy() {
    conclave_testkit::init_logging();
    // A peer that never answers: a UDP socket on loopback that reads
    // nothing. The node's routing table holds it (as a bootstrap peer), so
    // every query waits on a QUIC handshake to it, which takes seconds to
    // fail; the queries stay in flight meanwhile.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let nobody = PeerId::random();
    let config = NodeConfig {
        bootstrap: vec![format!("/ip4/127.0.0.1/udp/{port}/quic-v1/p2p/{nobody}")
            .parse()
            .unwrap()],
        ..NodeConfig::loopback()
    };
    let node = start(config).await;

    let mut calls: FuturesUnordered<_> = (0..=CAP)
        .map(|i| node.get_record(kad::RecordKey::new(&format!("/missing/{i}"))))
        .collect();
    let first = within("the first get_record answer", calls.next())
        .await
        .unwrap();
    match &first {
        Err(e @ NodeError::Busy { table, cap }) => {
            assert_eq!((*table, *cap), ("DHT queries in flight", CAP));
            let text = e.to_string();
            assert!(
                text.contains("DHT queries in flight") && text.contains("256"),
                "{text}"
            );
            assert!(
                text.ends_with("try again when some have finished"),
                "{text}"
            );
        }
        other => panic!("the query over the cap is answered first, with Busy: {other:?}"),
    }
    // Stopping drops the queries in flight: their callers hear that the
    // node stopped, and none of them was refused as busy.
    within("stop", node.stop()).await.unwrap();
    let rest: Vec<_> = within("the other answers", calls.collect::<Vec<_>>()).await;
    assert_eq!(rest.len(), CAP);
    assert_eq!(count_busy(&rest, "DHT queries in flight"), 0);
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_topic_wait_table_answers_busy() {
    conclave_testkit::init_logging();
    let node = start(NodeConfig::loopback()).await;
    // Nobody else subscribes: every wait lasts until its timeout.
    let wait = Duration::from_secs(600);
    let mut waits: FuturesUnordered<_> = (0..=CAP)
        .map(|_| node.wait_for_topic_peers("quiet", 1, wait))
        .collect();
    let first = within("the first topic wait answer", waits.next())
        .await
        .unwrap();
    assert_eq!(count_busy(&[first], "waits for topic peers"), 1);
    within("stop", node.stop()).await.unwrap();
    let rest: Vec<_> = within("the other answers", waits.collect::<Vec<_>>()).await;
    assert_eq!(rest.len(), CAP);
    assert!(
        rest.iter().all(|r| matches!(r, Err(NodeError::Stopped))),
        "the waits in the table end when the node stops: {rest:?}"
    );
}
