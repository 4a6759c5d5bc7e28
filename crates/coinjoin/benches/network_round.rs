//! Epoch tick → transaction accepted, over the real network: 5, 10 and 20
//! in-process nodes on 127.0.0.1 (QUIC, every message a signed envelope
//! on gossip), each running the CoinJoin service with its own wallet,
//! every request checked against the kernel-backed regtest node
//! (tests/chain) over JSON-RPC, and every peer sending the transaction,
//! which the regtest node puts in a block its libbitcoinkernel connected.
//! Also the bytes each peer received per run (everything on its
//! connections from the epoch tick that formed the session to the last
//! peer's done, and from its join for comparison), a round with
//! a withholding and one with a DC-net garbage disruptor, and with
//! `--sessions N` the success rate of N rounds with one disruptor.
//!
//! Figures, not a timed test:
//! `cargo bench -p conclave-coinjoin --bench network_round`
//! (`-- --sessions 100` for the success rate, `-- --peers N --rounds R`
//! for clean rounds of one size). The wallets' seeds are held
//! in memory (`MemorySeed`): the keychain is tested in service_round.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use conclave_coinjoin::{
    chain::ChainSource,
    exclusion::Phase,
    proto::disrupt::Disruption,
    service::{
        CoinJoinConfig, CoinJoinHandle, CoinJoinService, JoinParams, RequestPhase, RequestStatus,
    },
    wallet::{MemorySeed, Wallet},
};
use conclave_node::{clock::unix_ms, NodeConfig, NodeHandle};
use conclave_testkit::{connect_all, start_many};
use support::{ms, percentile, Regtest};
use zeroize::Zeroizing;

const DENOMINATION: u64 = 100_000;
/// Epochs and phase timeouts short enough for many rounds, long enough
/// for 20 peers' phases on two cores.
const EPOCH: Duration = Duration::from_secs(3);
const PHASE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a round may take before it counts as failed.
const ROUND_LIMIT: Duration = Duration::from_secs(90);
/// How often the bytes received are sampled during a round: the run's
/// bytes count from the last sample before the tick.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

struct Peer {
    node: NodeHandle,
    coinjoin: CoinJoinHandle,
}

/// What one round measured.
struct Round {
    /// The epoch tick that formed the first session → the last honest
    /// peer's transaction accepted by the regtest node.
    tick_to_chain: Duration,
    /// Bytes each honest peer received from the tick to the last done.
    bytes_in: Vec<u64>,
    /// The same from its join (announcements while waiting included).
    bytes_from_join: Vec<u64>,
    /// Runs the session took (1 when nobody was excluded).
    runs: u32,
    /// Sessions the honest requests took part in (1 unless a session failed).
    sessions: u32,
    /// Honest outpoints some honest peer excluded (must be 0).
    honest_blamed: usize,
    /// Whether the disruptor's coin was left out of the transaction.
    disruptor_excluded: bool,
}

/// `n` connected nodes (every node dials every later one), each with a
/// CoinJoin service; node `disruptor` misbehaves as `disruption` says.
async fn network(
    n: usize,
    chain: Arc<dyn ChainSource>,
    disruptor: Option<(usize, Disruption)>,
) -> Vec<Peer> {
    let nodes = start_many(n, &NodeConfig::loopback()).await;
    connect_all(&nodes).await;
    nodes
        .into_iter()
        .enumerate()
        .map(|(i, node)| {
            let mut config = CoinJoinConfig::quick(EPOCH, PHASE_TIMEOUT);
            if let Some((index, disruption)) = disruptor {
                if index == i {
                    config.disruption = Some(disruption);
                }
            }
            let seed = Zeroizing::new(*blake3::hash(&rand::random::<[u8; 32]>()).as_bytes());
            let wallet = Wallet::new(Arc::new(MemorySeed(seed)), bitcoin::Network::Regtest);
            let coinjoin = CoinJoinService::start(node.clone(), wallet, chain.clone(), config);
            Peer { node, coinjoin }
        })
        .collect()
}

/// Every node's bytes received, sampled every [`SAMPLE_EVERY`] until
/// `stop`: (unix ms, one figure per node).
fn sample_bytes(
    nodes: Vec<NodeHandle>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(u64, Vec<u64>)>> {
    tokio::spawn(async move {
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let at = unix_ms();
            let mut row = Vec::with_capacity(nodes.len());
            for node in &nodes {
                row.push(node.stats().await.map_or(0, |s| s.bytes_in));
            }
            samples.push((at, row));
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
        samples
    })
}

fn entered(status: &RequestStatus, phase: RequestPhase) -> Option<u64> {
    status
        .timeline
        .iter()
        .find(|t| t.phase == phase)
        .map(|t| t.at_ms)
}

/// One round: every peer funds a fresh coin, joins, and the honest ones
/// wait for the transaction. `Err` says why the round failed.
async fn round(
    peers: &[Peer],
    chain: &Regtest,
    disruptor: Option<usize>,
    sats: u64,
) -> Result<Round, String> {
    let mut outpoints = Vec::new();
    for peer in peers {
        let address = peer.coinjoin.new_address().await.expect("an address");
        let outpoint = tokio::task::block_in_place(|| chain.fund(&address.script_pubkey(), sats));
        outpoints.push(outpoint);
    }
    let mut before = Vec::new();
    for peer in peers {
        before.push(peer.node.stats().await.expect("stats").bytes_in);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_bytes(peers.iter().map(|p| p.node.clone()).collect(), stop.clone());
    let mut ids = Vec::new();
    for (peer, outpoint) in peers.iter().zip(&outpoints) {
        let id = peer
            .coinjoin
            .join(JoinParams {
                denomination: DENOMINATION,
                inputs: vec![*outpoint],
                fee_rate: 2,
                max_fee: Some(5_000),
            })
            .await
            .map_err(|e| format!("join: {e}"))?;
        ids.push(id.to_string());
    }
    let honest: Vec<usize> = (0..peers.len()).filter(|&i| Some(i) != disruptor).collect();
    let mut statuses = Vec::new();
    for &i in &honest {
        let status = peers[i]
            .coinjoin
            .wait(&ids[i], ROUND_LIMIT)
            .await
            .map_err(|e| format!("peer {i}: {e}"))?;
        statuses.push(status);
    }
    if let Some(d) = disruptor {
        let _ = peers[d].coinjoin.cancel(&ids[d]).await;
    }
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await.expect("the sampler");
    let mut after = Vec::new();
    for &i in &honest {
        after.push(peers[i].node.stats().await.expect("stats").bytes_in);
    }
    for (status, &i) in statuses.iter().zip(&honest) {
        if status.phase != RequestPhase::Done {
            return Err(format!(
                "peer {i} ended in {:?}: {}",
                status.phase,
                status.last_error.as_deref().unwrap_or("no error given")
            ));
        }
    }
    let txids: BTreeSet<_> = statuses.iter().map(|s| s.txid.clone()).collect();
    if txids.len() != 1 {
        return Err(format!("honest peers report {} transactions", txids.len()));
    }
    let honest_outpoints: BTreeSet<String> =
        honest.iter().map(|&i| outpoints[i].to_string()).collect();
    let honest_blamed = statuses
        .iter()
        .flat_map(|s| &s.excluded)
        .filter(|e| honest_outpoints.contains(&e.outpoint))
        .map(|e| e.outpoint.clone())
        .collect::<BTreeSet<_>>()
        .len();
    let disruptor_excluded = disruptor.is_none_or(|d| {
        let theirs = outpoints[d].to_string();
        statuses
            .iter()
            .all(|s| s.excluded.iter().any(|e| e.outpoint == theirs))
    });
    let epoch_ms = EPOCH.as_millis() as u64;
    let tick_ms = statuses
        .iter()
        .filter_map(|s| entered(s, RequestPhase::KeyExchange))
        .min()
        .ok_or("no session started")?
        / epoch_ms
        * epoch_ms;
    let done_ms = statuses
        .iter()
        .filter_map(|s| entered(s, RequestPhase::Done))
        .max()
        .ok_or("no peer done")?;
    let at_tick = samples
        .iter()
        .rev()
        .find(|(at, _)| *at <= tick_ms)
        .or(samples.first())
        .map(|(_, row)| row.clone())
        .ok_or("no byte sample")?;
    let bytes_in = honest
        .iter()
        .zip(&after)
        .map(|(&i, a)| a.saturating_sub(at_tick[i]))
        .collect();
    let bytes_from_join = honest
        .iter()
        .zip(&after)
        .map(|(&i, a)| a - before[i])
        .collect();
    Ok(Round {
        tick_to_chain: Duration::from_millis(done_ms.saturating_sub(tick_ms)),
        bytes_in,
        bytes_from_join,
        runs: statuses.iter().map(|s| s.run + 1).max().unwrap_or(1),
        sessions: statuses.iter().map(|s| s.sessions).max().unwrap_or(1),
        honest_blamed,
        disruptor_excluded,
    })
}

fn report(what: &str, n: usize, rounds: &[Round], failed: &[String]) {
    if rounds.is_empty() {
        println!("  {what:<24} {n:>2} peers: every round failed: {failed:?}");
        return;
    }
    let mut totals: Vec<Duration> = rounds.iter().map(|r| r.tick_to_chain).collect();
    totals.sort();
    let mut bytes: Vec<u64> = rounds.iter().flat_map(|r| r.bytes_in.clone()).collect();
    bytes.sort();
    let mut from_join: Vec<u64> = rounds
        .iter()
        .flat_map(|r| r.bytes_from_join.clone())
        .collect();
    from_join.sort();
    let kb = |b: u64| b as f64 / 1000.0;
    println!(
        "  {what:<24} {n:>2} peers, {:>3} rounds: p50 {:>6.0} ms  p95 {:>6.0} ms  max {:>6.0} ms | \
         received per peer per run (from the tick): p50 {:>6.1} KB  max {:>6.1} KB, from its join p50 {:>6.1} KB | runs max {} | \
         rounds needing a 2nd session {} | honest outpoints blamed {} | disruptor left out {}/{} | failed {}",
        rounds.len(),
        ms(percentile(&totals, 0.5)),
        ms(percentile(&totals, 0.95)),
        ms(totals[totals.len() - 1]),
        kb(bytes[bytes.len() / 2]),
        kb(bytes[bytes.len() - 1]),
        kb(from_join[from_join.len() / 2]),
        rounds.iter().map(|r| r.runs).max().unwrap_or(0),
        rounds.iter().filter(|r| r.sessions > 1).count(),
        rounds.iter().map(|r| r.honest_blamed).sum::<usize>(),
        rounds.iter().filter(|r| r.disruptor_excluded).count(),
        rounds.len(),
        failed.len(),
    );
    for why in failed {
        println!("      failed: {why}");
    }
}

async fn scenario(
    chain: &Regtest,
    what: &str,
    n: usize,
    rounds: usize,
    disruption: Option<Disruption>,
) -> usize {
    let core: Arc<dyn ChainSource> = Arc::new(chain.core());
    let disruptor = disruption.map(|d| (n / 2, d));
    let peers = network(n, core, disruptor).await;
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for _ in 0..rounds {
        match round(&peers, chain, disruptor.map(|(i, _)| i), 150_000).await {
            Ok(result) => {
                eprintln!(
                    "    {what}, {n} peers: a round in {:.0} ms",
                    ms(result.tick_to_chain)
                );
                done.push(result);
            }
            Err(why) => {
                eprintln!("    {what}, {n} peers: a round failed: {why}");
                failed.push(why);
            }
        }
    }
    report(what, n, &done, &failed);
    for peer in peers {
        peer.coinjoin.stop().await;
        let _ = peer.node.stop().await;
    }
    failed.len()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary too, and there one small round shows it still works.
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let sessions = args
        .iter()
        .position(|a| a == "--sessions")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.parse::<usize>().expect("--sessions N"));
    let Some(chain) = Regtest::start("the network_round benchmark") else {
        return;
    };
    println!(
        "CoinJoin over the network: epoch tick -> every honest peer's transaction accepted by the \
         kernel-backed regtest node (in-process nodes on 127.0.0.1, QUIC, signed envelopes; epoch \
         {} s, phase timeout {} s){}:",
        EPOCH.as_secs(),
        PHASE_TIMEOUT.as_secs(),
        if full {
            ""
        } else {
            ", one round as a check (cargo bench for the figures)"
        }
    );
    let number = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|s| s.parse::<usize>().unwrap_or_else(|_| panic!("{flag} N")))
    };
    if let (Some(n), Some(rounds)) = (number("--peers"), number("--rounds")) {
        scenario(&chain, "clean", n, rounds, None).await;
        return;
    }
    if let Some(count) = sessions {
        scenario(
            &chain,
            "one DC-net disruptor",
            5,
            count,
            Some(Disruption::DcGarbage),
        )
        .await;
        return;
    }
    if !full {
        let failed = scenario(&chain, "clean", 3, 1, None).await;
        assert_eq!(failed, 0, "the check round completes");
        return;
    }
    // Clean rounds at every size first, then the disruptors.
    for n in [5, 10, 20] {
        scenario(&chain, "clean", n, 20, None).await;
    }
    for (what, disruption) in [
        (
            "one withholding disruptor",
            Disruption::Withhold(Phase::DcNet),
        ),
        ("one DC-net disruptor", Disruption::DcGarbage),
    ] {
        for n in [5, 10, 20] {
            scenario(&chain, what, n, 5, Some(disruption)).await;
        }
    }
}
