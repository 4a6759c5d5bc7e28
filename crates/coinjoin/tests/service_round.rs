//! Five real nodes on 127.0.0.1 run a CoinJoin round through the service:
//! each wallet's keys live in the OS keychain (run under
//! scripts/with-keyring.sh), its coin on the kernel-backed regtest node
//! (tests/chain), requests and run messages travel as signed gossip
//! envelopes, and the transaction every node reports must be the one the
//! regtest node confirmed in a block its libbitcoinkernel connected. A
//! request cancelled before its epoch is withdrawn from the others' views;
//! a withdrawal published by anyone but the request's author changes
//! nothing; requests announced either side of a tick wait for the next
//! one together; an announcement that reached nobody is soon tried again.

mod support;

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use bitcoin::{consensus::encode::deserialize_hex, Address, Network, Transaction};
use conclave_coinjoin::{
    chain::ChainSource,
    coin::Outpoint,
    pairing::{PairRequest, Pairing, RequestId},
    service::{
        wire::TopicMessage, CoinJoinConfig, CoinJoinHandle, CoinJoinService, JoinParams,
        RequestPhase,
    },
    wallet::Wallet,
};
use conclave_node::{NodeEvent, NodeHandle};
use conclave_testkit::{connect, connect_all, loopback_node, Transport};
use support::Regtest;

const DENOMINATION: u64 = 100_000;
const LIMIT: Duration = Duration::from_secs(60);

fn keychain_available(test: &str) -> bool {
    if std::env::var("CONCLAVE_KEYRING_TEST").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipped {test}: run it under scripts/with-keyring.sh (a private Secret Service)");
    false
}

struct Peer {
    node: NodeHandle,
    coinjoin: CoinJoinHandle,
    outpoint: Outpoint,
}

/// `n` nodes on loopback, all connected, each with a CoinJoin service whose
/// wallet is in the keychain (profile `{prefix}-{pid}-{i}`) and one coin of
/// 150,000 sats and a little more per node on the regtest chain.
async fn start_peers(
    n: usize,
    prefix: &str,
    chain: &Regtest,
    config: &CoinJoinConfig,
) -> Vec<Peer> {
    let core: Arc<dyn ChainSource> = Arc::new(chain.core());
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(loopback_node().await);
    }
    connect_all(&nodes).await;
    let mut peers = Vec::new();
    for (i, node) in nodes.into_iter().enumerate() {
        let profile = format!("{prefix}-{}-{i}", std::process::id());
        let wallet = Wallet::open_keychain(&profile, Network::Regtest)
            .await
            .expect("the keychain opens");
        let coinjoin = CoinJoinService::start(node.clone(), wallet, core.clone(), config.clone());
        let address = coinjoin.new_address().await.expect("an address");
        let outpoint = chain.fund(&address.script_pubkey(), 150_000 + 1_000 * i as u64);
        peers.push(Peer {
            node,
            coinjoin,
            outpoint,
        });
    }
    peers
}

/// `peer` asks to mix its coin into one 100,000-sat output; the id.
async fn join(peer: &Peer) -> String {
    peer.coinjoin
        .join(JoinParams {
            denomination: DENOMINATION,
            inputs: vec![peer.outpoint],
            fee_rate: 2,
            max_fee: Some(5_000),
        })
        .await
        .expect("join")
        .to_string()
}

/// Every peer asks to mix its coin into one 100,000-sat output, all
/// right after an epoch tick so that every request has settled by the
/// next one (`config`'s epoch); the ids.
async fn join_all(peers: &[Peer], config: &CoinJoinConfig) -> Vec<String> {
    let epoch_ms = config.epoch.as_millis() as u64;
    until_unix_ms(conclave_node::clock::unix_ms().div_ceil(epoch_ms) * epoch_ms + 20).await;
    let mut ids = Vec::new();
    for peer in peers {
        ids.push(join(peer).await);
    }
    ids
}

/// Sleeps until the wall clock reads unix ms `at`: the test places joins
/// on either side of an epoch tick, which follows the wall clock.
async fn until_unix_ms(at: u64) {
    let now = conclave_node::clock::unix_ms();
    tokio::time::sleep(Duration::from_millis(at.saturating_sub(now))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_complete_a_round_the_regtest_node_confirms() {
    if !keychain_available("five_nodes_complete_a_round_the_regtest_node_confirms") {
        return;
    }
    let Some(chain) = Regtest::start("five_nodes_complete_a_round_the_regtest_node_confirms")
    else {
        return;
    };
    let config = CoinJoinConfig::quick(Duration::from_secs(4), Duration::from_secs(5));
    let peers = start_peers(5, "coinjoin-round", &chain, &config).await;
    let again = peers[0].coinjoin.new_address().await.expect("an address");
    let another = peers[0]
        .coinjoin
        .new_address()
        .await
        .expect("another address");
    assert_ne!(again, another, "every address is fresh");
    let ids = join_all(&peers, &config).await;
    let mut statuses = Vec::new();
    for (peer, id) in peers.iter().zip(&ids) {
        let status = peer.coinjoin.wait(id, LIMIT).await.expect("status");
        assert_eq!(
            status.phase,
            RequestPhase::Done,
            "node {} ended in {:?}: {:?}",
            peer.node.peer_id(),
            status.phase,
            status.last_error
        );
        statuses.push(status);
    }
    let txid = statuses[0].txid.clone().expect("a txid");
    assert!(
        statuses
            .iter()
            .all(|s| s.txid.as_deref() == Some(txid.as_str())),
        "every node reports the same transaction"
    );
    assert!(
        statuses.iter().all(|s| s.excluded.is_empty()),
        "nobody excluded"
    );
    let (confirmations, hex) = chain.tx(&txid.parse().expect("a txid"));
    assert!(confirmations >= 1, "the transaction is in a block");
    assert_eq!(Some(&hex), statuses[0].tx_hex.as_ref());
    let tx: Transaction = deserialize_hex(&hex).expect("a transaction");
    let spent: BTreeSet<Outpoint> = tx.input.iter().map(|i| i.previous_output.into()).collect();
    let funded: BTreeSet<Outpoint> = peers.iter().map(|p| p.outpoint).collect();
    assert_eq!(spent, funded, "every node's coin and nothing else is spent");
    let mut mixed = BTreeSet::new();
    for status in &statuses {
        let ours: Vec<_> = status.our_outputs.iter().filter(|o| o.mixed).collect();
        assert_eq!(ours.len(), 1, "one mixed output each");
        assert_eq!(ours[0].amount_sats, DENOMINATION);
        let script = ours[0]
            .address
            .parse::<Address<_>>()
            .expect("an address")
            .require_network(Network::Regtest)
            .expect("regtest")
            .script_pubkey();
        assert!(tx.output.iter().any(|o| o.script_pubkey == script));
        mixed.insert(script);
        assert!(
            status
                .our_outputs
                .iter()
                .any(|o| !o.mixed && o.amount_sats > 0),
            "change comes back, labelled unmixed"
        );
        let phases: Vec<RequestPhase> = status.timeline.iter().map(|t| t.phase).collect();
        for phase in [
            RequestPhase::Waiting,
            RequestPhase::KeyExchange,
            RequestPhase::DcNet,
            RequestPhase::Signatures,
            RequestPhase::Done,
        ] {
            assert!(
                phases.contains(&phase),
                "{phase:?} in the timeline {phases:?}"
            );
        }
        assert!(status.fee_sats.is_some_and(|f| f > 0 && f <= 5_000));
    }
    assert_eq!(mixed.len(), 5, "five distinct mixed outputs");
    // How long the round took on each node (a figure, not a bound).
    let took: Vec<u64> = statuses
        .iter()
        .map(|s| {
            let at = |p: RequestPhase| s.timeline.iter().find(|t| t.phase == p).map(|t| t.at_ms);
            at(RequestPhase::Done).unwrap() - at(RequestPhase::KeyExchange).unwrap()
        })
        .collect();
    println!(
        "figure: 5 nodes on loopback, session start to transaction confirmed = {} ms (slowest node)",
        took.iter().max().unwrap()
    );
    for peer in &peers {
        peer.coinjoin.stop().await;
        peer.node.stop().await.expect("stop");
    }
}

/// Waits until our request `id` counts `peers` requests to mix with (its
/// own included), as the node's status events say.
async fn wait_for_peer_count(coinjoin: &CoinJoinHandle, id: &str, peers: usize) {
    let mut events = coinjoin.subscribe();
    let reached = async {
        loop {
            let now = coinjoin.status(id).await.expect("status");
            if now.peers == peers {
                return;
            }
            // The next change of any request; a lagging reader looks again.
            let _ = events.recv().await;
        }
    };
    tokio::time::timeout(LIMIT, reached)
        .await
        .unwrap_or_else(|_| panic!("request {id} never counted {peers} peers"));
}

/// Waits until each of `peers` finished its request (`ids`, in order) in
/// one transaction that excludes nobody; the outpoints it spends, as the
/// regtest node confirmed it.
async fn spent_by_the_one_transaction(
    chain: &Regtest,
    peers: &[Peer],
    ids: &[String],
) -> BTreeSet<Outpoint> {
    let mut txids = BTreeSet::new();
    for (peer, id) in peers.iter().zip(ids) {
        let status = peer.coinjoin.wait(id, LIMIT).await.expect("status");
        assert_eq!(
            status.phase,
            RequestPhase::Done,
            "{:?}: {:?}",
            status.phase,
            status.last_error
        );
        assert!(
            status.excluded.is_empty(),
            "nobody is excluded: {:?}",
            status.excluded
        );
        txids.insert(status.txid.expect("a txid"));
    }
    assert_eq!(txids.len(), 1, "one transaction");
    let txid = txids.pop_first().expect("a txid");
    let (_, hex) = chain.tx(&txid.parse().expect("a txid"));
    let tx: Transaction = deserialize_hex(&hex).expect("a transaction");
    tx.input.iter().map(|i| i.previous_output.into()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cancelled_before_the_epoch_is_left_out_and_nobody_is_excluded() {
    let test = "a_request_cancelled_before_the_epoch_is_left_out_and_nobody_is_excluded";
    if !keychain_available(test) {
        return;
    }
    let Some(chain) = Regtest::start(test) else {
        return;
    };
    // A long epoch: the cancel comes after everyone saw the request and
    // before the tick that would form a session with it.
    let config = CoinJoinConfig::quick(Duration::from_secs(8), Duration::from_secs(5));
    let peers = start_peers(4, "coinjoin-cancel", &chain, &config).await;
    let ids = join_all(&peers, &config).await;
    for (peer, id) in peers.iter().zip(&ids) {
        wait_for_peer_count(&peer.coinjoin, id, 4).await;
    }
    let (leaving, staying) = peers.split_last().expect("four peers");
    let cancelled = leaving
        .coinjoin
        .cancel(ids.last().expect("an id"))
        .await
        .expect("cancel");
    assert_eq!(cancelled.phase, RequestPhase::Cancelled);
    // The withdrawal reaches the others: they count three again.
    for (peer, id) in staying.iter().zip(&ids) {
        wait_for_peer_count(&peer.coinjoin, id, 3).await;
    }
    // Nobody is excluded for a request its author withdrew.
    let spent = spent_by_the_one_transaction(&chain, staying, &ids).await;
    assert!(
        !spent.contains(&leaving.outpoint),
        "the withdrawn coin stays where it was"
    );
    assert_eq!(spent.len(), 3);
    for peer in &peers {
        peer.coinjoin.stop().await;
        peer.node.stop().await.expect("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_forged_by_another_peer_changes_nothing() {
    let test = "a_withdrawal_forged_by_another_peer_changes_nothing";
    if !keychain_available(test) {
        return;
    }
    let Some(chain) = Regtest::start(test) else {
        return;
    };
    // A long epoch: the forgery arrives after everyone saw the request and
    // before the tick that forms the session.
    let config = CoinJoinConfig::quick(Duration::from_secs(20), Duration::from_secs(5));
    let peers = start_peers(4, "coinjoin-forged-withdraw", &chain, &config).await;
    // The forger runs a node and nothing else: it needs no coins to speak
    // on the pairing's topic.
    let forger = loopback_node().await;
    for peer in &peers {
        connect(&forger, &peer.node, Transport::Quic).await;
    }
    let topic = Pairing::new(DENOMINATION, 2).expect("a pairing").topic();
    forger.subscribe(&topic).await.expect("subscribe");
    let ids = join_all(&peers, &config).await;
    for (peer, id) in peers.iter().zip(&ids) {
        wait_for_peer_count(&peer.coinjoin, id, 4).await;
    }
    forger
        .wait_for_topic_peers(&topic, peers.len(), LIMIT)
        .await
        .expect("every peer on the topic");
    let victim = RequestId(
        hex::decode(&ids[0])
            .expect("a hex id")
            .try_into()
            .expect("32 bytes"),
    );
    let forged = TopicMessage::Withdraw(victim).encode();
    let mut watchers: Vec<_> = peers.iter().map(|p| p.node.subscribe_events()).collect();
    // The victim announces its request again every few seconds; the
    // forger answers every announcement with another forgery, as a
    // hostile peer would, until the round is over.
    let mut heard = forger.subscribe_events();
    let forging = {
        let (forger, topic, forged) = (forger.clone(), topic.clone(), forged.clone());
        tokio::spawn(async move {
            loop {
                forger
                    .broadcast(&topic, forged.clone())
                    .await
                    .expect("the forgery is published");
                loop {
                    match heard.recv().await {
                        Some(NodeEvent::Message(m)) if m.topic == topic => {
                            if let Ok(TopicMessage::Request(bytes)) = TopicMessage::decode(&m.data)
                            {
                                if PairRequest::decode(&bytes).is_ok_and(|r| r.id() == victim) {
                                    break;
                                }
                            }
                        }
                        Some(_) => {}
                        None => return,
                    }
                }
            }
        })
    };
    for (i, watcher) in watchers.iter_mut().enumerate().skip(1) {
        let arrived = async {
            while let Some(event) = watcher.recv().await {
                if let NodeEvent::Message(m) = event {
                    if m.from == Some(forger.peer_id()) && m.data == forged {
                        return;
                    }
                }
            }
            panic!("peer {i}'s node stopped");
        };
        tokio::time::timeout(LIMIT, arrived)
            .await
            .unwrap_or_else(|_| panic!("the forgery never reached peer {i}"));
    }
    for (peer, id) in peers.iter().zip(&ids).skip(1) {
        let status = peer.coinjoin.status(id).await.expect("status");
        assert_eq!(
            status.phase,
            RequestPhase::Waiting,
            "the epoch ticked before the forgery arrived, so this run proves nothing"
        );
    }
    let spent = spent_by_the_one_transaction(&chain, &peers, &ids).await;
    assert!(
        spent.contains(&peers[0].outpoint),
        "the request whose withdrawal was forged is mixed"
    );
    assert_eq!(spent.len(), 4);
    forging.abort();
    for peer in &peers {
        peer.coinjoin.stop().await;
        peer.node.stop().await.expect("stop");
    }
    forger.stop().await.expect("stop");
}

/// A request announced in time for a tick and two announced just too late
/// for it: the two do not tick then, so the early one must not form a
/// session with them (it would wait for their key exchanges and exclude
/// them as holdouts). All three mix at the next tick, nobody excluded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_announced_either_side_of_a_tick_mix_at_the_next_one_and_nobody_is_excluded() {
    let test =
        "requests_announced_either_side_of_a_tick_mix_at_the_next_one_and_nobody_is_excluded";
    if !keychain_available(test) {
        return;
    }
    let Some(chain) = Regtest::start(test) else {
        return;
    };
    // Epoch 4 s, so requests must be announced 2 s (settle) before a tick.
    let epoch_ms = 4_000;
    let config = CoinJoinConfig::quick(Duration::from_millis(epoch_ms), Duration::from_secs(5));
    let settle_ms = config.settle.as_millis() as u64;
    let peers = start_peers(3, "coinjoin-either-side", &chain, &config).await;
    // A tick far enough ahead to place the joins before it.
    let now = conclave_node::clock::unix_ms();
    let tick = (now + settle_ms + 1_500).div_ceil(epoch_ms) * epoch_ms;
    until_unix_ms(tick - settle_ms - 600).await;
    let mut ids = vec![join(&peers[0]).await];
    until_unix_ms(tick - settle_ms + 300).await;
    for peer in &peers[1..] {
        ids.push(join(peer).await);
    }
    let spent = spent_by_the_one_transaction(&chain, &peers, &ids).await;
    assert_eq!(spent.len(), 3, "every coin is mixed");
    for (peer, id) in peers.iter().zip(&ids) {
        let status = peer.coinjoin.status(id).await.expect("status");
        assert_eq!(
            status.sessions, 1,
            "one session, at the next tick: {status:?}"
        );
        let started = status
            .timeline
            .iter()
            .find(|t| t.phase == RequestPhase::KeyExchange)
            .expect("a key exchange");
        assert!(
            started.at_ms >= tick + epoch_ms,
            "not at the tick the late ones missed"
        );
    }
    for peer in &peers {
        peer.coinjoin.stop().await;
        peer.node.stop().await.expect("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_that_reached_nobody_is_tried_again_soon() {
    let test = "an_announcement_that_reached_nobody_is_tried_again_soon";
    if !keychain_available(test) {
        return;
    }
    let Some(chain) = Regtest::start(test) else {
        return;
    };
    // No tick during the test, and announcements a minute apart.
    let mut config = CoinJoinConfig::quick(Duration::from_secs(600), Duration::from_secs(5));
    config.announce_every = Duration::from_secs(60);
    let peers = start_peers(2, "coinjoin-unheard", &chain, &config).await;
    // The first request is announced while no other peer is on its topic:
    // that announcement reaches nobody.
    let first = join(&peers[0]).await;
    let second = join(&peers[1]).await;
    // The second request reaches the first peer at once; the first is
    // tried again within a second or two, not a minute later.
    let soon = Duration::from_secs(15);
    tokio::time::timeout(soon, wait_for_peer_count(&peers[0].coinjoin, &first, 2))
        .await
        .expect("the first peer sees the second request");
    tokio::time::timeout(soon, wait_for_peer_count(&peers[1].coinjoin, &second, 2))
        .await
        .expect("the second peer sees the first request well before its next announcement");
    for peer in &peers {
        peer.coinjoin.stop().await;
        peer.node.stop().await.expect("stop");
    }
}
