//! Whole sessions between in-memory peers: a router delivers every
//! published message to every other peer (as gossip floods the session's
//! topic), and virtual time jumps to the next deadline when the network is
//! quiet. Disruptors are real [`Session`]s that deviate in what they
//! publish.

use std::{
    collections::{BTreeSet, VecDeque},
    time::{Duration, Instant},
};

use proptest::prelude::*;
use zeroize::Zeroizing;

use super::{disrupt::Disruption, Action, Outcome, OwnSecrets, Session, SessionConfig, Timeouts};
use crate::{
    coin::{CoinKey, Outpoint},
    exclusion::{Exclusion, Phase, Reason},
    pairing::{
        form_session, tests::funded_request, tests::NOW, validate_all, MemoryChain, PairRequest,
        Pairing, RequestId,
    },
};

const DENOMINATION: u64 = 100_000;

struct Peer {
    id: RequestId,
    outpoints: Vec<Outpoint>,
    session: Option<Session>,
    honest: bool,
    outcome: Option<Outcome>,
    excluded: Vec<Exclusion>,
}

struct Net {
    now: Instant,
    peers: Vec<Peer>,
    queue: VecDeque<(usize, Vec<u8>)>,
    /// Exclusions decided at pairing, per honest peer.
    pairing_exclusions: Vec<Exclusion>,
    delivered_bytes: Vec<usize>,
    /// Recipients that get each message from `late_from` only after its
    /// next one (gossip does not promise order).
    late: Option<(usize, BTreeSet<usize>)>,
    held: Vec<Option<Vec<u8>>>,
    /// (run, phase) of every message each peer published.
    published: Vec<BTreeSet<(u32, Phase)>>,
}

fn pairing() -> Pairing {
    Pairing::new(DENOMINATION, 2).unwrap()
}

/// How a peer's request misbehaves at pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestFault {
    LiesAboutAmount,
    Underfunded,
    OutpointInTwoRequests,
}

struct Setup {
    n: usize,
    mixed: Vec<u32>,
    disruptors: Vec<(usize, Disruption)>,
    faulty_request: Option<(usize, RequestFault)>,
    /// (viewer, request it never saw).
    hidden: Option<(usize, usize)>,
}

impl Setup {
    fn clean(n: usize) -> Self {
        Self {
            n,
            mixed: vec![1; n],
            disruptors: Vec::new(),
            faulty_request: None,
            hidden: None,
        }
    }

    fn disrupted(n: usize, disruption: Disruption) -> Self {
        Self {
            disruptors: vec![(n / 2, disruption)],
            ..Self::clean(n)
        }
    }
}

impl Net {
    fn new(setup: Setup) -> Self {
        let mut chain = MemoryChain::new();
        let mut requests: Vec<PairRequest> = Vec::new();
        let mut keys: Vec<CoinKey> = Vec::new();
        for i in 0..setup.n {
            let mixed = setup.mixed[i];
            let (request, key) = funded_request(
                &mut chain,
                pairing(),
                i as u8 + 1,
                u64::from(mixed) * DENOMINATION + 40_000 + 1_000 * i as u64,
                mixed,
            );
            requests.push(request);
            keys.push(key);
        }
        let mut announced = requests.clone();
        if let Some((i, fault)) = setup.faulty_request {
            let r = &mut announced[i];
            match fault {
                RequestFault::LiesAboutAmount => r.inputs[0].amount += 50_000,
                RequestFault::Underfunded => {
                    // Re-fund the coin with too little and re-sign.
                    let (poor, key) =
                        funded_request(&mut chain, pairing(), i as u8 + 1, DENOMINATION + 100, 1);
                    *r = poor;
                    keys[i] = key;
                }
                RequestFault::OutpointInTwoRequests => {
                    let mut twin = r.clone();
                    twin.nonce = [0xee; 16];
                    let coins = [(
                        twin.inputs[0].outpoint,
                        chain_txout(&chain, &twin.inputs[0].outpoint),
                    )];
                    twin = PairRequest::new(
                        pairing(),
                        twin.author.clone(),
                        &coins,
                        std::slice::from_ref(&keys[i]),
                        1,
                        twin.change_script(),
                        twin.expiry,
                        twin.nonce,
                    )
                    .unwrap();
                    announced.push(twin);
                }
            }
            requests[i] = announced[i].clone();
        }
        // Every peer validates what was announced and forms the session on
        // its own; honest peers agree because they see the same requests.
        let (valid, refused) = validate_all(announced.clone(), &pairing(), &chain, NOW);
        let epoch = NOW - NOW % 600;
        let plan = form_session(pairing(), epoch, valid.clone()).unwrap();
        let mut pairing_exclusions = refused;
        pairing_exclusions.extend(plan.excluded.clone());
        let now = Instant::now();
        let mut net = Net {
            now,
            peers: Vec::new(),
            queue: VecDeque::new(),
            pairing_exclusions,
            delivered_bytes: vec![0; setup.n],
            late: None,
            held: vec![None; setup.n],
            published: vec![BTreeSet::new(); setup.n],
        };
        let mut initial = Vec::new();
        for i in 0..setup.n {
            let id = requests[i].id();
            let outpoints = requests[i].outpoints();
            let disruption = setup
                .disruptors
                .iter()
                .find(|(d, _)| *d == i)
                .map(|(_, d)| *d);
            let faulty = setup.faulty_request.is_some_and(|(f, _)| f == i);
            let plan = match setup.hidden {
                Some((viewer, unseen)) if viewer == i => {
                    let seen: Vec<PairRequest> = valid
                        .iter()
                        .filter(|r| r.id() != requests[unseen].id())
                        .cloned()
                        .collect();
                    form_session(pairing(), epoch, seen).unwrap()
                }
                _ => plan.clone(),
            };
            let in_session = plan.requests.iter().any(|r| r.id() == id);
            let mut peer = Peer {
                id,
                outpoints,
                session: None,
                honest: disruption.is_none() && !faulty,
                outcome: None,
                excluded: Vec::new(),
            };
            if in_session {
                let config = SessionConfig {
                    session_id: plan.session_id,
                    pairing: pairing(),
                    requests: plan.requests.clone(),
                    own: id,
                    timeouts: Timeouts {
                        phase: Duration::from_secs(1),
                    },
                    max_fee: Some(5_000),
                };
                let secrets = OwnSecrets {
                    coin_keys: vec![
                        CoinKey::from_secret_bytes(&Zeroizing::new([i as u8 + 1; 32])).unwrap(),
                    ],
                    output_seed: Zeroizing::new([0x40 + i as u8; 32]),
                    rng_seed: Zeroizing::new([0x80 + i as u8; 32]),
                };
                let (session, actions) = match disruption {
                    Some(d) => Session::new_disruptor(config, secrets, d, now),
                    None => Session::new(config, secrets, now),
                }
                .unwrap();
                peer.session = Some(session);
                initial.push((i, actions));
            }
            net.peers.push(peer);
        }
        for (i, actions) in initial {
            net.apply(i, actions);
        }
        net
    }

    fn apply(&mut self, from: usize, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Publish(bytes) => {
                    let m = super::RunMessage::decode(&bytes).expect("peers publish run messages");
                    self.published[from].insert((m.run, m.body.phase()));
                    self.queue.push_back((from, bytes));
                }
                Action::Excluded(e) => self.peers[from].excluded.extend(e),
                Action::Finished(outcome) => self.peers[from].outcome = Some(outcome),
                Action::Phase { .. } => {}
            }
        }
    }

    fn run(&mut self) -> &mut Self {
        for _ in 0..10_000 {
            while let Some((from, bytes)) = self.queue.pop_front() {
                let author = self.peers[from].id;
                for to in 0..self.peers.len() {
                    if to == from {
                        continue;
                    }
                    let Some(session) = self.peers[to].session.as_mut() else {
                        continue;
                    };
                    if session.outcome().is_some() {
                        continue;
                    }
                    let mut deliveries = vec![bytes.clone()];
                    if let Some((late_from, recipients)) = &self.late {
                        if *late_from == from && recipients.contains(&to) {
                            match self.held[to].take() {
                                None => {
                                    self.held[to] = Some(bytes.clone());
                                    deliveries.clear();
                                }
                                Some(earlier) => deliveries.push(earlier),
                            }
                        }
                    }
                    for bytes in deliveries {
                        self.delivered_bytes[to] += bytes.len();
                        let Some(session) = self.peers[to].session.as_mut() else {
                            continue;
                        };
                        if let Ok(actions) = session.handle_message(author, &bytes, self.now) {
                            self.apply(to, actions);
                        }
                    }
                }
            }
            if let Some((late_from, _)) = self.late {
                let held: Vec<(usize, Vec<u8>)> = self
                    .held
                    .iter_mut()
                    .enumerate()
                    .filter_map(|(to, h)| h.take().map(|b| (to, b)))
                    .collect();
                if !held.is_empty() {
                    let author = self.peers[late_from].id;
                    for (to, bytes) in held {
                        if let Some(session) = self.peers[to].session.as_mut() {
                            if let Ok(actions) = session.handle_message(author, &bytes, self.now) {
                                self.apply(to, actions);
                            }
                        }
                    }
                    continue;
                }
            }
            let next = self
                .peers
                .iter()
                .filter_map(|p| p.session.as_ref()?.deadline())
                .min();
            let Some(next) = next else { return self };
            self.now = self.now.max(next);
            for i in 0..self.peers.len() {
                let now = self.now;
                let actions = match self.peers[i].session.as_mut() {
                    Some(s) if s.deadline().is_some_and(|d| d <= now) => s.handle_deadline(now),
                    _ => continue,
                };
                self.apply(i, actions);
            }
        }
        panic!("the sessions did not settle");
    }

    fn honest(&self) -> impl Iterator<Item = &Peer> {
        self.peers.iter().filter(|p| p.honest)
    }

    fn honest_outpoints(&self) -> BTreeSet<Outpoint> {
        self.honest().flat_map(|p| p.outpoints.clone()).collect()
    }

    /// Every honest peer completed the same transaction; returns its txid.
    fn assert_all_honest_completed(&self) -> bitcoin::Txid {
        let mut txid = None;
        for p in self.honest() {
            match &p.outcome {
                Some(Outcome::Completed { tx, .. }) => {
                    let id = tx.compute_txid();
                    assert_eq!(
                        *txid.get_or_insert(id),
                        id,
                        "honest peers built different transactions"
                    );
                }
                other => panic!(
                    "honest peer ended with {other:?}; exclusions {:?}",
                    p.excluded
                ),
            }
        }
        txid.expect("some honest peer")
    }

    /// No honest peer ever excluded an honest outpoint.
    /// No honest peer was blamed, and none revealed its seed in a run in
    /// which it had signed.
    fn assert_no_honest_blamed(&self) {
        for (i, p) in self.peers.iter().enumerate().filter(|(_, p)| p.honest) {
            for (run, phase) in &self.published[i] {
                if *phase == Phase::Signatures {
                    assert!(
                        !self.published[i].contains(&(*run, Phase::Blame)),
                        "honest peer {i} revealed after signing in run {run} ({:?})",
                        p.excluded
                    );
                }
            }
        }
        let honest = self.honest_outpoints();
        for p in self.honest() {
            for e in p.excluded.iter().chain(&self.pairing_exclusions) {
                assert!(
                    e.outpoints.iter().all(|o| !honest.contains(o)),
                    "an honest outpoint was excluded: {e:?}"
                );
            }
        }
    }

    /// Exactly the disruptors' outpoints are excluded, on every honest peer.
    fn assert_exactly_excluded(&self, disruptors: &[usize], reason: impl Fn(&Reason) -> bool) {
        self.assert_no_honest_blamed();
        let expected: BTreeSet<Outpoint> = disruptors
            .iter()
            .flat_map(|&d| self.peers[d].outpoints.clone())
            .collect();
        for p in self.honest() {
            let all: Vec<&Exclusion> = p.excluded.iter().chain(&self.pairing_exclusions).collect();
            let got: BTreeSet<Outpoint> = all.iter().flat_map(|e| e.outpoints.clone()).collect();
            assert_eq!(got, expected, "exclusions on an honest peer: {all:?}");
            assert!(
                all.iter().all(|e| reason(&e.reason)),
                "unexpected reasons: {all:?}"
            );
        }
        let txid = self.assert_all_honest_completed();
        for p in self.honest() {
            let Some(Outcome::Completed { tx, .. }) = &p.outcome else {
                unreachable!()
            };
            assert_eq!(tx.compute_txid(), txid);
            let spent: BTreeSet<Outpoint> =
                tx.input.iter().map(|i| i.previous_output.into()).collect();
            assert!(
                expected.is_disjoint(&spent),
                "a disruptor's input is in the transaction"
            );
            assert!(
                self.honest_outpoints().is_subset(&spent),
                "every honest input is"
            );
        }
    }
}

fn chain_txout(chain: &MemoryChain, outpoint: &Outpoint) -> bitcoin::TxOut {
    use crate::pairing::ChainSource;
    chain.unspent_output(outpoint).unwrap().unwrap()
}

#[test]
fn clean_sessions_of_5_10_and_20_peers_complete_with_one_transaction() {
    for n in [5, 10, 20] {
        let mut net = Net::new(Setup::clean(n));
        net.run();
        let txid = net.assert_all_honest_completed();
        for p in net.honest() {
            assert!(p.excluded.is_empty(), "{n} peers: {:?}", p.excluded);
            let Some(Outcome::Completed {
                tx,
                our_outputs,
                run,
                our_fee,
            }) = &p.outcome
            else {
                unreachable!()
            };
            assert_eq!(*run, 0);
            assert_eq!(tx.input.len(), n);
            assert_eq!(
                tx.output
                    .iter()
                    .filter(|o| o.value.to_sat() == DENOMINATION)
                    .count(),
                n
            );
            assert_eq!(our_outputs.len(), 1);
            assert!(*our_fee > 0 && *our_fee < 1_000);
            let key = hex::decode(&our_outputs[0].output_key).unwrap();
            assert!(
                tx.output
                    .iter()
                    .any(|o| o.script_pubkey.as_bytes()[2..] == key[..]),
                "our output is there"
            );
        }
        let Some(Outcome::Completed { tx, .. }) = &net.peers[0].outcome else {
            unreachable!()
        };
        assert_eq!(tx.compute_txid(), txid);
    }
}

#[test]
fn several_mixed_outputs_per_peer_complete() {
    let mut net = Net::new(Setup {
        mixed: vec![1, 3, 2, 1, 4],
        ..Setup::clean(5)
    });
    net.run();
    net.assert_all_honest_completed();
    let Some(Outcome::Completed { tx, .. }) = &net.peers[0].outcome else {
        unreachable!()
    };
    assert_eq!(
        tx.output
            .iter()
            .filter(|o| o.value.to_sat() == DENOMINATION)
            .count(),
        11
    );
}

#[test]
fn withholding_in_each_phase_excludes_the_holdout_without_revealing() {
    for phase in [
        Phase::KeyExchange,
        Phase::Ciphertexts,
        Phase::SlotReservation,
        Phase::DcNet,
        Phase::Acceptance,
        Phase::Signatures,
    ] {
        let mut net = Net::new(Setup::disrupted(5, Disruption::Withhold(phase)));
        net.run();
        net.assert_exactly_excluded(&[2], |r| *r == Reason::Holdout(phase));
        for p in net.honest() {
            let Some(Outcome::Completed { run, .. }) = &p.outcome else {
                unreachable!()
            };
            assert_eq!(*run, 1, "{phase}: one re-run, no blame phase");
            let Some(Outcome::Completed { tx, .. }) = &p.outcome else {
                unreachable!()
            };
            let signed = p.session.as_ref().unwrap().signed_txids();
            assert_eq!(signed.last(), Some(&tx.compute_txid()));
            let expected = if phase == Phase::Signatures { 2 } else { 1 };
            assert_eq!(
                signed.len(),
                expected,
                "{phase}: the runs we signed are known"
            );
        }
    }
}

#[test]
fn withholding_the_reveal_in_blame_excludes_the_holdout() {
    let mut net = Net::new(Setup {
        disruptors: vec![
            (1, Disruption::SlotGarbage),
            (3, Disruption::Withhold(Phase::Blame)),
        ],
        ..Setup::clean(6)
    });
    net.run();
    net.assert_exactly_excluded(&[1, 3], |r| {
        matches!(
            r,
            Reason::Holdout(Phase::Blame) | Reason::Deviated(Phase::SlotReservation)
        )
    });
}

#[test]
fn a_reveal_that_breaks_its_commitment_is_a_deviation() {
    let mut net = Net::new(Setup {
        disruptors: vec![(1, Disruption::DcGarbage), (3, Disruption::BadReveal)],
        ..Setup::clean(6)
    });
    net.run();
    net.assert_exactly_excluded(&[1, 3], |r| {
        matches!(
            r,
            Reason::Deviated(Phase::KeyExchange) | Reason::Deviated(Phase::DcNet)
        )
    });
}

#[test]
fn equivocation_is_its_own_proof() {
    for phase in [
        Phase::KeyExchange,
        Phase::SlotReservation,
        Phase::Acceptance,
    ] {
        let mut net = Net::new(Setup::disrupted(5, Disruption::Equivocate(phase)));
        net.run();
        net.assert_exactly_excluded(&[2], |r| *r == Reason::Equivocation(phase));
    }
}

#[test]
fn a_bad_slot_reservation_is_found_by_replay() {
    let mut net = Net::new(Setup::disrupted(5, Disruption::SlotGarbage));
    net.run();
    net.assert_exactly_excluded(&[2], |r| *r == Reason::Deviated(Phase::SlotReservation));
}

#[test]
fn a_bad_dc_net_vector_is_found_by_replay() {
    let mut net = Net::new(Setup::disrupted(10, Disruption::DcGarbage));
    net.run();
    net.assert_exactly_excluded(&[5], |r| *r == Reason::Deviated(Phase::DcNet));
}

#[test]
fn a_dc_net_vector_of_the_wrong_length_is_refused_publicly() {
    let mut net = Net::new(Setup::disrupted(5, Disruption::ShortDcNet));
    net.run();
    net.assert_exactly_excluded(&[2], |r| {
        matches!(r, Reason::InvalidMessage(Phase::DcNet, _))
    });
    for p in net.honest() {
        assert!(
            net.published
                .iter()
                .all(|ph| !ph.contains(&(0, Phase::Blame))),
            "nothing revealed"
        );
        let Some(Outcome::Completed { run, .. }) = &p.outcome else {
            unreachable!()
        };
        assert_eq!(*run, 1);
    }
}

#[test]
fn a_bad_ciphertext_is_found_by_replay() {
    let mut net = Net::new(Setup::disrupted(5, Disruption::BadCiphertext));
    net.run();
    net.assert_exactly_excluded(&[2], |r| *r == Reason::Deviated(Phase::Ciphertexts));
}

#[test]
fn a_bad_signature_excludes_its_owner_without_revealing() {
    let mut net = Net::new(Setup::disrupted(5, Disruption::BadSignature));
    net.run();
    net.assert_exactly_excluded(&[2], |r| matches!(r, Reason::BadSignature(_)));
}

#[test]
fn an_off_curve_output_key_is_found_by_replay() {
    let mut net = Net::new(Setup::disrupted(5, Disruption::OffCurveOutputKey));
    net.run();
    net.assert_exactly_excluded(&[2], |r| *r == Reason::InvalidOutputKey);
}

#[test]
fn a_small_order_x25519_key_is_refused_publicly() {
    let mut net = Net::new(Setup::disrupted(5, Disruption::SmallOrderKey));
    net.run();
    net.assert_exactly_excluded(&[2], |r| matches!(r, Reason::InvalidKey(_)));
}

#[test]
fn a_false_accusation_blames_the_accuser() {
    let mut net = Net::new(Setup::disrupted(5, Disruption::FalseAccusation));
    net.run();
    net.assert_exactly_excluded(&[2], |r| *r == Reason::FalseAccusation);
}

#[test]
fn accepting_then_accusing_is_a_contradiction_even_out_of_order() {
    for reorder in [false, true] {
        let mut net = Net::new(Setup::disrupted(6, Disruption::AcceptThenAccuse));
        if reorder {
            // Half the peers get the accusation before the accept: they
            // reveal while the others have signed.
            net.late = Some((3, [0, 2, 4].into_iter().collect()));
        }
        net.run();
        net.assert_exactly_excluded(&[3], |r| *r == Reason::Equivocation(Phase::Acceptance));
    }
}

#[test]
fn request_faults_are_excluded_at_pairing_by_every_honest_peer() {
    for fault in [
        RequestFault::LiesAboutAmount,
        RequestFault::Underfunded,
        RequestFault::OutpointInTwoRequests,
    ] {
        let mut net = Net::new(Setup {
            faulty_request: Some((2, fault)),
            ..Setup::clean(5)
        });
        net.run();
        net.assert_exactly_excluded(&[2], |r| match fault {
            RequestFault::OutpointInTwoRequests => matches!(r, Reason::OutpointInTwoRequests(_)),
            _ => matches!(r, Reason::InvalidRequest(_)),
        });
    }
}

#[test]
fn an_input_spent_mid_session_excludes_its_owner() {
    let mut net = Net::new(Setup::clean(5));
    let spent = net.peers[4].outpoints[0];
    // The coin moves while the key exchanges are still in flight.
    let now = net.now;
    for i in 0..4 {
        let actions = net.peers[i]
            .session
            .as_mut()
            .unwrap()
            .handle_input_spent(spent, now);
        net.apply(i, actions);
    }
    net.peers[4].honest = false;
    net.run();
    net.assert_exactly_excluded(&[4], |r| *r == Reason::InputSpent(spent));
}

#[test]
fn messages_from_strangers_or_for_other_sessions_change_nothing() {
    let mut net = Net::new(Setup::clean(5));
    let peer1 = net.peers[1].id;
    let session = net.peers[0].session.as_mut().unwrap();
    let before = (session.phase(), session.holdouts());
    let stranger = RequestId([0xaa; 32]);
    let (_, bytes) = net.queue[1].clone();
    assert!(session.handle_message(stranger, &bytes, net.now).is_err());
    assert!(session.handle_message(peer1, b"garbage", net.now).is_err());
    assert!(session
        .handle_message(peer1, &vec![0u8; 200_000], net.now)
        .is_err());
    // A key exchange padded with a long participant list decodes, but is
    // larger than any key exchange of this run can be: refused, not stored.
    let (_, ke) = net.queue.iter().find(|(f, _)| *f == 1).unwrap().clone();
    let mut padded = super::RunMessage::decode(&ke).unwrap();
    if let super::Body::KeyExchange { participants, .. } = &mut padded.body {
        participants.extend((0..60).map(|i| RequestId([i; 32])));
    }
    let session = net.peers[0].session.as_mut().unwrap();
    let refusal = session
        .handle_message(peer1, &padded.encode(), net.now)
        .unwrap_err();
    assert!(refusal.0.contains("larger than"), "{refusal}");
    let session = net.peers[0].session.as_ref().unwrap();
    assert_eq!((session.phase(), session.holdouts()), before);
    net.run();
    net.assert_all_honest_completed();
}

#[test]
fn differing_views_of_the_requests_reform_on_the_intersection() {
    // Peer 4 never saw peer 3's request: it forms another session.
    let mut net = Net::new(Setup {
        hidden: Some((4, 3)),
        ..Setup::clean(5)
    });
    net.run();
    let ids: Vec<RequestId> = net.peers.iter().map(|p| p.id).collect();
    let mut without_3 = vec![ids[0], ids[1], ids[2], ids[4]];
    without_3.sort();
    let mut all = ids.clone();
    all.sort();
    for (i, p) in net.peers.iter().enumerate() {
        let expected = if i == 3 { &all } else { &without_3 };
        match &p.outcome {
            Some(Outcome::Reform { requests }) => assert_eq!(requests, expected, "peer {i}"),
            other => panic!("peer {i}: expected a re-form, got {other:?}"),
        }
        assert!(
            p.excluded.is_empty(),
            "re-forming blames nobody: {:?}",
            p.excluded
        );
    }
}

#[test]
fn bytes_received_per_peer_stay_small() {
    let mut net = Net::new(Setup::clean(10));
    net.run();
    net.assert_all_honest_completed();
    let most = *net.delivered_bytes.iter().max().unwrap();
    // Dominated by the ciphertext phase: n − 1 messages of n ML-KEM ciphertexts.
    assert!(most < 150_000, "{most} bytes received by one peer");
}

fn disruption_strategy() -> impl Strategy<Value = Disruption> {
    prop_oneof![
        prop::sample::select(vec![
            Phase::KeyExchange,
            Phase::Ciphertexts,
            Phase::SlotReservation,
            Phase::DcNet,
            Phase::Acceptance,
            Phase::Signatures,
            Phase::Blame
        ])
        .prop_map(Disruption::Withhold),
        prop::sample::select(vec![
            Phase::KeyExchange,
            Phase::Ciphertexts,
            Phase::SlotReservation,
            Phase::DcNet
        ])
        .prop_map(Disruption::Equivocate),
        Just(Disruption::SlotGarbage),
        Just(Disruption::DcGarbage),
        Just(Disruption::BadCiphertext),
        Just(Disruption::BadSignature),
        Just(Disruption::OffCurveOutputKey),
        Just(Disruption::SmallOrderKey),
        Just(Disruption::FalseAccusation),
        Just(Disruption::AcceptThenAccuse),
        Just(Disruption::BadReveal),
        Just(Disruption::ShortDcNet),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn no_honest_peer_is_ever_blamed(
        n in 5usize..9,
        schedule in prop::collection::vec((0usize..9, disruption_strategy()), 0..4),
    ) {
        let mut disruptors: Vec<(usize, Disruption)> = Vec::new();
        for (i, d) in schedule {
            let i = i % n;
            if !disruptors.iter().any(|(j, _)| *j == i) {
                disruptors.push((i, d));
            }
        }
        let mut net = Net::new(Setup { disruptors: disruptors.clone(), ..Setup::clean(n) });
        net.run();
        net.assert_no_honest_blamed();
        // Honest peers agree: the same transaction, or all failed together
        // (when too few participants remain).
        let txids: BTreeSet<Option<bitcoin::Txid>> = net
            .honest()
            .map(|p| match &p.outcome {
                Some(Outcome::Completed { tx, .. }) => Some(tx.compute_txid()),
                _ => None,
            })
            .collect();
        prop_assert_eq!(txids.len(), 1, "honest peers disagree: {:?}", disruptors);
        if n - disruptors.len() >= 3 {
            prop_assert!(txids.iter().all(Option::is_some), "enough honest peers remain: they complete ({:?})", disruptors);
        }
    }
}
