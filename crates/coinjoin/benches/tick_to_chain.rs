//! Epoch tick → transaction accepted by the kernel-backed regtest node
//! (tests/chain), for 5, 10 and 20 in-memory peers: every peer validates
//! every request through the Bitcoin Core chain source (JSON-RPC), forms
//! the session and runs it (all peers in this one thread, messages
//! delivered in memory), then the transaction goes to sendrawtransaction,
//! which returns once libbitcoinkernel connected the block holding it. No
//! network yet: the figure over the node's network comes with the actor.
//! Figures, not a timed test:
//! `cargo bench -p conclave-coinjoin --bench tick_to_chain`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use bitcoin::{Transaction, Txid};
use conclave_coinjoin::{
    chain::{bitcoind::BitcoinCore, Acceptance, ChainError, ChainSource, ChainTx, Utxo},
    coin::Outpoint,
    memnet::{MemNet, NetSetup, PeerSetup},
    pairing::Pairing,
    proto::{disrupt::Disruption, Timeouts},
};
use support::{funded_peer, ms, percentile, unix_now, Regtest};

/// Counts the time spent in chain lookups.
struct Timed<'a> {
    core: &'a BitcoinCore,
    lookups: Mutex<(Duration, usize)>,
}

impl ChainSource for Timed<'_> {
    fn unspent_outputs(&self, outpoints: &[Outpoint]) -> Result<Vec<Option<Utxo>>, ChainError> {
        let started = Instant::now();
        let result = self.core.unspent_outputs(outpoints);
        let mut lookups = self.lookups.lock().expect("not poisoned");
        lookups.0 += started.elapsed();
        lookups.1 += 1;
        result
    }
    fn transaction(&self, txid: &Txid) -> Result<Option<ChainTx>, ChainError> {
        self.core.transaction(txid)
    }
    fn test_accept(&self, tx: &Transaction) -> Result<Acceptance, ChainError> {
        self.core.test_accept(tx)
    }
    fn broadcast(&self, tx: &Transaction) -> Result<Txid, ChainError> {
        self.core.broadcast(tx)
    }
}

struct Sample {
    total: Duration,
    lookups: Duration,
    lookup_calls: usize,
    pairing: Duration,
    protocol: Duration,
    broadcast: Duration,
}

fn one_session(
    node: &Regtest,
    core: &BitcoinCore,
    n: usize,
    round: usize,
    disruptor: Option<Disruption>,
) -> Sample {
    let pairing = Pairing::new(100_000, 2).expect("on the ladder");
    let now = unix_now();
    let label = format!("bench {n} {round} {disruptor:?}");
    let peers: Vec<PeerSetup> = (0..n)
        .map(|i| {
            let (request, key) = funded_peer(node, pairing, &label, i, 150_000, now);
            let mut peer = PeerSetup::honest(request, vec![key]);
            if i == n / 2 {
                if let Some(d) = disruptor {
                    peer.disruption = Some(d);
                    peer.honest = false;
                }
            }
            peer
        })
        .collect();
    let timed = Timed {
        core,
        lookups: Mutex::new((Duration::ZERO, 0)),
    };
    let tick = Instant::now();
    let mut net = MemNet::new(NetSetup {
        pairing,
        epoch: now - now % 600,
        now,
        peers,
        also_announced: Vec::new(),
        hidden: Vec::new(),
        chain: &timed,
        timeouts: Timeouts::default(),
        max_fee: None,
    });
    let paired = Instant::now();
    net.run();
    let tx = net.agreed_transaction().clone();
    let ran = Instant::now();
    let txid = core.broadcast(&tx).unwrap_or_else(|e| panic!("{e}"));
    let done = Instant::now();
    assert_eq!(txid, tx.compute_txid());
    let (lookups, lookup_calls) = *timed.lookups.lock().expect("not poisoned");
    Sample {
        total: done - tick,
        lookups,
        lookup_calls,
        pairing: paired - tick,
        protocol: ran - paired,
        broadcast: done - ran,
    }
}

fn report(what: &str, n: usize, samples: &[Sample]) {
    let mut totals: Vec<Duration> = samples.iter().map(|s| s.total).collect();
    totals.sort();
    let mean = |f: fn(&Sample) -> Duration| {
        ms(samples.iter().map(f).sum::<Duration>()) / samples.len() as f64
    };
    let calls = samples.iter().map(|s| s.lookup_calls).sum::<usize>() / samples.len();
    println!(
        "  {what:<22} {n:>2} peers: p50 {:>7.1} ms  p95 {:>7.1} ms  max {:>7.1} ms  | mean: pairing {:>6.1} \
         (of which {calls} gettxout batches {:>5.1}), run {:>6.1}, sendrawtransaction {:>5.1}",
        ms(percentile(&totals, 0.5)),
        ms(percentile(&totals, 0.95)),
        ms(totals[totals.len() - 1]),
        mean(|s| s.pairing),
        mean(|s| s.lookups),
        mean(|s| s.protocol),
        mean(|s| s.broadcast),
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary too, and there one small round shows it still works.
    let full = std::env::args().any(|a| a == "--bench");
    let Some(node) = Regtest::start("the tick_to_chain benchmark") else {
        return;
    };
    let core = node.core();
    println!(
        "CoinJoin epoch tick -> transaction accepted by the kernel-backed regtest node \
         (all peers' compute in one thread, in-memory delivery, JSON-RPC to the node){}:",
        if full {
            ""
        } else {
            ", one round as a check (cargo bench for the figures)"
        }
    );
    let plan: &[(&str, Option<Disruption>, usize, &[usize])] = if full {
        &[
            ("clean", None, 20, &[5, 10, 20]),
            (
                "one DC-net disruptor",
                Some(Disruption::DcGarbage),
                10,
                &[5, 10, 20],
            ),
        ]
    } else {
        &[("clean", None, 1, &[5])]
    };
    for &(what, disruptor, rounds, sizes) in plan {
        for &n in sizes {
            let samples: Vec<Sample> = (0..rounds)
                .map(|round| one_session(&node, &core, n, round, disruptor))
                .collect();
            report(what, n, &samples);
        }
    }
    println!(
        "\n  pairing: every peer validates every request (one gettxout batch each) and starts run 0;\n  \
         run: every peer's machine, serially; on a real network each peer computes its share in parallel."
    );
}
