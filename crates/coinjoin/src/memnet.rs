//! Whole sessions between in-memory peers, for tests and benchmarks
//! (`cfg(test)` or the `test-support` feature; release builds never have
//! it). Every peer validates the announced requests against a
//! [`ChainSource`] (in memory, or Bitcoin Core over RPC) and forms the
//! session on its own; then a router delivers every published message to
//! every other peer, as gossip floods the session's topic, and virtual
//! time jumps to the next deadline when the network is quiet. Disruptors
//! are real [`Session`]s that deviate in what they publish. With
//! [`MemNet::reform`], a peer whose session ends in a re-form starts the
//! re-formed session as the service's actor does, with the actor's buffer
//! of messages for sessions not started yet.

use std::{
    collections::{BTreeSet, VecDeque},
    time::Instant,
};

use bitcoin::{Transaction, Txid};
use zeroize::Zeroizing;

use crate::{
    chain::ChainSource,
    coin::{CoinKey, Outpoint},
    exclusion::{Exclusion, Phase, Reason},
    pairing::{form_session, validate_all, PairRequest, Pairing, RequestId},
    proto::{
        disrupt::Disruption, Action, Outcome, OwnSecrets, RunMessage, Session, SessionConfig,
        Timeouts, MAX_REFORMS,
    },
    service::early::EarlyMessages,
};

/// One simulated peer before the epoch tick.
pub struct PeerSetup {
    /// The request it announces.
    pub request: PairRequest,
    /// The keys of its request's inputs.
    pub coin_keys: Vec<CoinKey>,
    /// How it misbehaves in the session, if it does.
    pub disruption: Option<Disruption>,
    /// Whether it is honest (false for disruptors and faulty requests);
    /// the assertions check honest peers only.
    pub honest: bool,
}

impl PeerSetup {
    /// An honest peer.
    pub fn honest(request: PairRequest, coin_keys: Vec<CoinKey>) -> Self {
        Self {
            request,
            coin_keys,
            disruption: None,
            honest: true,
        }
    }
}

/// An epoch tick: who announced what, and how the peers see it.
pub struct NetSetup<'a> {
    /// What is mixed.
    pub pairing: Pairing,
    /// The epoch (unix seconds of the tick).
    pub epoch: u64,
    /// Unix seconds at which requests are validated.
    pub now: u64,
    /// The peers, each announcing its request.
    pub peers: Vec<PeerSetup>,
    /// Further announcements no peer of ours runs (e.g. a second request
    /// for someone's outpoint).
    pub also_announced: Vec<PairRequest>,
    /// (viewer, peer whose request the viewer never saw).
    pub hidden: Vec<(usize, usize)>,
    /// Where every peer checks the requests.
    pub chain: &'a dyn ChainSource,
    /// Phase timeouts.
    pub timeouts: Timeouts,
    /// The most fee each peer pays.
    pub max_fee: Option<u64>,
}

/// One peer's state during and after the session.
pub struct MemPeer {
    /// Its request's id.
    pub id: RequestId,
    /// Its request's outpoints.
    pub outpoints: Vec<Outpoint>,
    /// Its session, if it is a participant.
    pub session: Option<Session>,
    /// Whether it is honest.
    pub honest: bool,
    /// How its session ended.
    pub outcome: Option<Outcome>,
    /// Exclusions its session decided.
    pub excluded: Vec<Exclusion>,
    /// Exclusions it decided at pairing (validation and conflicts).
    pub pairing_excluded: Vec<Exclusion>,
    /// Sessions it started, in order (re-forms add to them).
    pub sessions_started: Vec<[u8; 32]>,
    /// The valid requests as it saw them at the tick.
    view: Vec<PairRequest>,
    coin_keys: Vec<CoinKey>,
    disruption: Option<Disruption>,
    /// Messages for sessions it has not started (the author is the
    /// sender here: every peer publishes its own).
    early: EarlyMessages<RequestId>,
}

/// The in-memory network of one session.
pub struct MemNet {
    /// Virtual time.
    pub now: Instant,
    /// The peers, in setup order.
    pub peers: Vec<MemPeer>,
    /// Published messages not yet delivered: (author's index, bytes).
    pub queue: VecDeque<(usize, Vec<u8>)>,
    /// Bytes delivered to each peer.
    pub delivered_bytes: Vec<usize>,
    /// Recipients that get each message from this author only after its
    /// next one (gossip does not promise order).
    pub late: Option<(usize, BTreeSet<usize>)>,
    /// With `late`: only the author's messages of these phases come after
    /// its next one (every message alternately when `None`).
    pub late_phases: Option<BTreeSet<Phase>>,
    held: Vec<Option<Vec<u8>>>,
    /// (run, phase) of every message each peer published.
    pub published: Vec<BTreeSet<(u32, Phase)>>,
    /// Whether a session that ends in a re-form starts the re-formed one.
    pub reform: bool,
    params: Params,
}

/// What every session of the network shares.
struct Params {
    pairing: Pairing,
    epoch: u64,
    timeouts: Timeouts,
    max_fee: Option<u64>,
}

/// Seeds of peer `index`'s fresh output keys and run secrets (fixed, so
/// every scenario replays exactly).
fn peer_seeds(index: usize, session: usize) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let byte = index as u8;
    let mut rng_seed = [0x80u8.wrapping_add(byte); 32];
    rng_seed[31] ^= session as u8;
    (
        Zeroizing::new([0x40u8.wrapping_add(byte); 32]),
        Zeroizing::new(rng_seed),
    )
}

impl MemPeer {
    /// Starts this peer's (index `i`) session `session_id` of `requests`.
    fn start_session(
        &mut self,
        params: &Params,
        i: usize,
        session_id: [u8; 32],
        requests: Vec<PairRequest>,
        now: Instant,
    ) -> Result<Vec<Action>, crate::proto::SessionError> {
        let config = SessionConfig {
            session_id,
            pairing: params.pairing,
            requests,
            own: self.id,
            timeouts: params.timeouts,
            max_fee: params.max_fee,
        };
        let (output_seed, rng_seed) = peer_seeds(i, self.sessions_started.len());
        let secrets = OwnSecrets {
            coin_keys: self.coin_keys.iter().map(CoinKey::duplicate).collect(),
            output_seed,
            rng_seed,
        };
        let (session, actions) = match self.disruption {
            Some(d) => Session::new_disruptor(config, secrets, d, now),
            None => Session::new(config, secrets, now),
        }?;
        self.session = Some(session);
        self.outcome = None;
        self.sessions_started.push(session_id);
        Ok(actions)
    }
}

impl MemNet {
    /// Every peer validates what was announced (as it saw it) against the
    /// chain and forms the session; participants start run 0. Panics if
    /// the chain source fails or too few requests are valid.
    pub fn new(setup: NetSetup<'_>) -> Self {
        let n = setup.peers.len();
        let mut announced: Vec<PairRequest> =
            setup.peers.iter().map(|p| p.request.clone()).collect();
        announced.extend(setup.also_announced.iter().cloned());
        let now = Instant::now();
        let mut net = MemNet {
            now,
            peers: Vec::with_capacity(n),
            queue: VecDeque::new(),
            delivered_bytes: vec![0; n],
            late: None,
            late_phases: None,
            held: vec![None; n],
            published: vec![BTreeSet::new(); n],
            reform: false,
            params: Params {
                pairing: setup.pairing,
                epoch: setup.epoch,
                timeouts: setup.timeouts,
                max_fee: setup.max_fee,
            },
        };
        let mut initial = Vec::new();
        for (i, peer) in setup.peers.into_iter().enumerate() {
            let id = peer.request.id();
            let unseen: Vec<RequestId> = setup
                .hidden
                .iter()
                .filter(|(viewer, _)| *viewer == i)
                .map(|(_, unseen)| announced[*unseen].id())
                .collect();
            let view: Vec<PairRequest> = announced
                .iter()
                .filter(|r| !unseen.contains(&r.id()))
                .cloned()
                .collect();
            let (valid, mut pairing_excluded) =
                validate_all(view, &setup.pairing, setup.chain, setup.now)
                    .unwrap_or_else(|e| panic!("peer {i} cannot validate the requests: {e}"));
            let plan = form_session(setup.pairing, setup.epoch, valid.clone())
                .unwrap_or_else(|e| panic!("peer {i} forms no session: {e}"));
            pairing_excluded.extend(plan.excluded.iter().cloned());
            let mut state = MemPeer {
                id,
                outpoints: peer.request.outpoints(),
                session: None,
                honest: peer.honest,
                outcome: None,
                excluded: Vec::new(),
                pairing_excluded,
                sessions_started: Vec::new(),
                view: valid,
                coin_keys: peer.coin_keys,
                disruption: peer.disruption,
                // A re-formed session starts within a phase of the
                // messages sent for it.
                early: EarlyMessages::new(setup.timeouts.phase * 2),
            };
            if plan.requests.iter().any(|r| r.id() == id) {
                let actions = state
                    .start_session(&net.params, i, plan.session_id, plan.requests, now)
                    .unwrap_or_else(|e| panic!("peer {i} cannot start its session: {e}"));
                initial.push((i, actions));
            }
            net.peers.push(state);
        }
        for (i, actions) in initial {
            net.apply(i, actions);
        }
        net
    }

    /// Peer `i` re-forms on `requests` as the actor does (at most
    /// [`MAX_REFORMS`] times, never onto a session it already ran), and
    /// replays what arrived early for the new session; false if it cannot.
    fn reform(&mut self, i: usize, requests: &[RequestId]) -> bool {
        let params = &self.params;
        let peer = &mut self.peers[i];
        let known: Vec<PairRequest> = peer
            .view
            .iter()
            .filter(|r| requests.contains(&r.id()))
            .cloned()
            .collect();
        let started = match form_session(params.pairing, params.epoch, known) {
            Ok(plan)
                if peer.sessions_started.len() <= MAX_REFORMS as usize
                    && plan.requests.iter().any(|r| r.id() == peer.id)
                    && !peer.sessions_started.contains(&plan.session_id) =>
            {
                peer.start_session(params, i, plan.session_id, plan.requests, self.now)
                    .ok()
                    .map(|actions| (plan.session_id, actions))
            }
            _ => None,
        };
        let Some((session_id, actions)) = started else {
            return false;
        };
        self.apply(i, actions);
        let participants = self.peers[i]
            .session
            .as_ref()
            .map(|s| s.participants().to_vec())
            .unwrap_or_default();
        let replay =
            self.peers[i]
                .early
                .take_for(session_id, self.params.pairing, &participants, self.now);
        for (author, bytes) in replay {
            self.deliver(i, author, &bytes);
        }
        true
    }

    /// Carries out what peer `from`'s machine asked for.
    pub fn apply(&mut self, from: usize, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Publish(bytes) => {
                    let m = RunMessage::decode(&bytes).expect("peers publish run messages");
                    self.published[from].insert((m.run, m.body.phase()));
                    self.queue.push_back((from, bytes));
                }
                Action::Excluded(e) => self.peers[from].excluded.extend(e),
                Action::Finished(Outcome::Reform { requests })
                    if self.reform && self.reform(from, &requests) => {}
                Action::Finished(outcome) => self.peers[from].outcome = Some(outcome),
                Action::Phase { .. } => {}
            }
        }
    }

    fn deliver(&mut self, to: usize, author: RequestId, bytes: &[u8]) {
        self.delivered_bytes[to] += bytes.len();
        let now = self.now;
        let pairing = self.params.pairing;
        let peer = &mut self.peers[to];
        if self.reform {
            // As the actor: a message of a session not started here is
            // kept for it (and still offered to ours, as another view).
            if let Ok(m) = RunMessage::decode(bytes) {
                if !peer.sessions_started.contains(&m.session_id) {
                    peer.early
                        .keep(pairing, m.session_id, author, author, bytes.to_vec(), now);
                }
            }
        }
        let Some(session) = peer.session.as_mut() else {
            return;
        };
        if let Ok(actions) = session.handle_message(author, bytes, now) {
            self.apply(to, actions);
        }
    }

    /// Delivers messages and passes deadlines until every session ended.
    pub fn run(&mut self) -> &mut Self {
        for _ in 0..10_000 {
            while let Some((from, bytes)) = self.queue.pop_front() {
                let author = self.peers[from].id;
                for to in 0..self.peers.len() {
                    let open = self.peers[to]
                        .session
                        .as_ref()
                        .is_some_and(|s| s.outcome().is_none());
                    if to == from || !open {
                        continue;
                    }
                    let mut deliveries = vec![bytes.clone()];
                    if let Some((late_from, recipients)) = &self.late {
                        let holdable = self.late_phases.as_ref().is_none_or(|phases| {
                            RunMessage::decode(&bytes)
                                .is_ok_and(|m| phases.contains(&m.body.phase()))
                        });
                        if *late_from == from && recipients.contains(&to) {
                            match self.held[to].take() {
                                None if !holdable => {}
                                None => {
                                    self.held[to] = Some(bytes.clone());
                                    deliveries.clear();
                                }
                                Some(earlier) => deliveries.push(earlier),
                            }
                        }
                    }
                    for bytes in deliveries {
                        self.deliver(to, author, &bytes);
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
                        self.deliver(to, author, &bytes);
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

    /// The honest peers.
    pub fn honest(&self) -> impl Iterator<Item = &MemPeer> {
        self.peers.iter().filter(|p| p.honest)
    }

    /// Every honest peer's outpoints.
    pub fn honest_outpoints(&self) -> BTreeSet<Outpoint> {
        self.honest().flat_map(|p| p.outpoints.clone()).collect()
    }

    /// The transaction every honest peer completed (panics if one did not,
    /// or if they differ).
    pub fn agreed_transaction(&self) -> &Transaction {
        let mut agreed: Option<&Transaction> = None;
        for p in self.honest() {
            match &p.outcome {
                Some(Outcome::Completed { tx, .. }) => {
                    let first = *agreed.get_or_insert(tx);
                    assert_eq!(
                        first.compute_txid(),
                        tx.compute_txid(),
                        "honest peers built different transactions"
                    );
                }
                other => panic!(
                    "honest peer ended with {other:?}; exclusions {:?}",
                    p.excluded
                ),
            }
        }
        agreed.expect("some honest peer")
    }

    /// Every honest peer completed the same transaction; its txid.
    pub fn assert_all_honest_completed(&self) -> Txid {
        self.agreed_transaction().compute_txid()
    }

    /// No honest peer was blamed, and none revealed its seed in a run in
    /// which it had signed.
    pub fn assert_no_honest_blamed(&self) {
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
            for e in p.excluded.iter().chain(&p.pairing_excluded) {
                assert!(
                    e.outpoints.iter().all(|o| !honest.contains(o)),
                    "an honest outpoint was excluded: {e:?}"
                );
            }
        }
    }

    /// Exactly the listed peers' outpoints are excluded, on every honest
    /// peer, for reasons `reason` accepts; the honest peers completed one
    /// transaction with all of their inputs and none of the excluded.
    pub fn assert_exactly_excluded(&self, disruptors: &[usize], reason: impl Fn(&Reason) -> bool) {
        self.assert_no_honest_blamed();
        let expected: BTreeSet<Outpoint> = disruptors
            .iter()
            .flat_map(|&d| self.peers[d].outpoints.clone())
            .collect();
        for p in self.honest() {
            let all: Vec<&Exclusion> = p.excluded.iter().chain(&p.pairing_excluded).collect();
            let got: BTreeSet<Outpoint> = all.iter().flat_map(|e| e.outpoints.clone()).collect();
            assert_eq!(got, expected, "exclusions on an honest peer: {all:?}");
            assert!(
                all.iter().all(|e| reason(&e.reason)),
                "unexpected reasons: {all:?}"
            );
        }
        let tx = self.agreed_transaction();
        let spent: BTreeSet<Outpoint> = tx.input.iter().map(|i| i.previous_output.into()).collect();
        assert!(
            expected.is_disjoint(&spent),
            "an excluded input is in the transaction"
        );
        assert!(
            self.honest_outpoints().is_subset(&spent),
            "every honest input is"
        );
    }
}
