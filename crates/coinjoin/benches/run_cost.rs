//! What one clean session costs each peer: compute per phase and the
//! bytes of each message, for 5, 10 and 20 peers (all peers' machines run
//! in this one thread; figures are per peer). Figures, not a timed test:
//! `cargo bench -p conclave-coinjoin --bench run_cost`.

use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

use bitcoin::{Amount, TxOut};
use conclave_coinjoin::{
    chain::MemoryChain,
    coin::{CoinKey, Outpoint},
    exclusion::Phase,
    field::Fe,
    pairing::{form_session, validate_all, PairRequest, Pairing},
    proto::{Action, Outcome, OwnSecrets, RunMessage, Session, SessionConfig, Timeouts},
    solver,
};
use zeroize::Zeroizing;

const NOW: u64 = 1_700_000_000;

struct Figures {
    compute: BTreeMap<Phase, Duration>,
    message_bytes: BTreeMap<Phase, usize>,
    received: Vec<usize>,
    total: Duration,
}

fn run(n: usize) -> Figures {
    let pairing = Pairing::new(100_000, 2).expect("on the ladder");
    let chain = MemoryChain::new();
    let mut requests = Vec::new();
    let mut keys = Vec::new();
    for i in 0..n {
        let key =
            CoinKey::from_secret_bytes(&Zeroizing::new([i as u8 + 1; 32])).expect("valid key");
        let outpoint = Outpoint {
            txid: [i as u8 + 1; 32],
            vout: 0,
        };
        let txout = TxOut {
            value: Amount::from_sat(150_000),
            script_pubkey: key.script_pubkey(),
        };
        chain.add(outpoint, txout.clone());
        let request = PairRequest::new(
            pairing,
            vec![i as u8; 38],
            &[(outpoint, txout)],
            std::slice::from_ref(&key),
            1,
            Some(key.script_pubkey()),
            NOW + 600,
            [i as u8; 16],
        )
        .expect("signed");
        requests.push(request);
        keys.push(key);
    }
    let started = Instant::now();
    let (valid, _) = validate_all(requests.clone(), &pairing, &chain, NOW).expect("in memory");
    let plan = form_session(pairing, NOW, valid).expect("enough peers");
    let now = Instant::now();
    let mut sessions = Vec::new();
    let mut queue = VecDeque::new();
    for (i, key) in keys.into_iter().enumerate() {
        let config = SessionConfig {
            session_id: plan.session_id,
            pairing,
            requests: plan.requests.clone(),
            own: requests[i].id(),
            timeouts: Timeouts::default(),
            max_fee: None,
        };
        let secrets = OwnSecrets {
            coin_keys: vec![key],
            output_seed: Zeroizing::new([0x40 + i as u8; 32]),
            rng_seed: Zeroizing::new([0x80 + i as u8; 32]),
        };
        let (session, actions) = Session::new(config, secrets, now).expect("starts");
        sessions.push(session);
        for a in actions {
            if let Action::Publish(bytes) = a {
                queue.push_back((i, bytes));
            }
        }
    }
    let ids: Vec<_> = requests.iter().map(PairRequest::id).collect();
    let mut figures = Figures {
        compute: BTreeMap::new(),
        message_bytes: BTreeMap::new(),
        received: vec![0; n],
        total: Duration::ZERO,
    };
    let mut done = 0;
    while let Some((from, bytes)) = queue.pop_front() {
        let phase = RunMessage::decode(&bytes).expect("ours").body.phase();
        figures.message_bytes.insert(phase, bytes.len());
        for to in (0..n).filter(|&t| t != from) {
            figures.received[to] += bytes.len();
            let t = Instant::now();
            let actions = sessions[to]
                .handle_message(ids[from], &bytes, now)
                .expect("honest messages are taken");
            *figures.compute.entry(phase).or_default() += t.elapsed();
            for a in actions {
                match a {
                    Action::Publish(bytes) => queue.push_back((to, bytes)),
                    Action::Finished(Outcome::Completed { .. }) => done += 1,
                    Action::Finished(other) => panic!("peer {to}: {other:?}"),
                    _ => {}
                }
            }
        }
    }
    assert_eq!(done, n, "every peer completes");
    figures.total = started.elapsed();
    figures
}

fn main() {
    println!(
        "CoinJoin session, clean run, compute per peer (all peers in one thread) and message sizes"
    );
    for n in [5, 10, 20] {
        let f = run(n);
        println!(
            "\n{n} peers: {:.1} ms for the whole session in one thread ({:.1} ms per peer)",
            ms(f.total),
            ms(f.total) / n as f64
        );
        println!(
            "  {:<18} {:>16} {:>14}",
            "messages of", "compute/peer ms", "bytes each"
        );
        for (phase, d) in &f.compute {
            println!(
                "  {:<18} {:>16.2} {:>14}",
                phase.to_string(),
                ms(*d) / n as f64,
                f.message_bytes.get(phase).copied().unwrap_or(0)
            );
        }
        let most = f.received.iter().max().copied().unwrap_or(0);
        println!(
            "  bytes received per peer: {most} ({:.1} KB)",
            most as f64 / 1000.0
        );
    }
    println!("\nroot finding alone (power sums -> messages), up to the largest session allowed:");
    for count in [20, 64, 256] {
        let messages: Vec<Fe> = (0..count as u64)
            .map(|i| {
                let h = blake3::hash(&i.to_le_bytes());
                Fe::from_uniform_bytes(h.as_bytes()[..16].try_into().expect("16 bytes"))
            })
            .collect();
        let sums = solver::power_sums(&messages, count);
        let t = Instant::now();
        let roots = solver::solve(&sums, &[0; 32]).expect("distinct messages");
        assert_eq!(roots.len(), count);
        println!("  {count:>4} messages: {:.1} ms", ms(t.elapsed()));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
