//! One participant's side of a session: the runs, their phases, the
//! exclusions between them, and the outcome.
//!
//! The rules that decide exclusions, in the order they apply:
//! - two different messages from one participant for one phase of a run:
//!   it is excluded at once (the two signed messages are the proof);
//! - a message anyone can see is malformed (wrong lengths, invalid keys, a
//!   bad transaction signature): its author is excluded at once;
//! - a phase deadline with messages still owed: the holdouts are excluded
//!   and the next run starts, nothing revealed;
//! - a failed slot reservation, a missing own output or an invalid output
//!   key: every participant reveals its seed, everyone replays every
//!   participant's run ([`super::blame`]) and excludes the deviators, or,
//!   if nobody deviated, whoever claimed the failure;
//! - once every participant accepted the DC-net's result, nothing is ever
//!   revealed again in that run.
//!
//! Every run uses a fresh seed and fresh output keys.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    time::Instant,
};

use zeroize::Zeroizing;

use super::{
    blame::{self, Transcript},
    messages::{hash_encoded, Body, Ciphertext, InputSignature, MessageHash, RunMessage},
    Action, OurOutput, Outcome, Refusal, Timeouts, MAX_RUNS,
};
use crate::{
    coin::{fresh_output_key, is_valid_output_key, CoinKey, Outpoint},
    dcnet::{self, PeerPad, Slot},
    exclusion::{Exclusion, Phase, Reason},
    field::Fe,
    kex::{PadKey, RunContext, RunKeys, RunSeed, ValidPublicKeys, ML_KEM_CIPHERTEXT_LEN},
    pairing::{reform_on_intersection, PairRequest, Pairing, RequestId, MIN_PARTICIPANTS},
    solver,
    tx::{self, CoinJoinTx},
};

/// The phases of a run in order (blame aside).
pub(super) const PHASES: [Phase; 6] = [
    Phase::KeyExchange,
    Phase::Ciphertexts,
    Phase::SlotReservation,
    Phase::DcNet,
    Phase::Acceptance,
    Phase::Signatures,
];

/// What a session is.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// From [`crate::pairing::form_session`].
    pub session_id: [u8; 32],
    /// What is mixed.
    pub pairing: Pairing,
    /// The participants' requests, in run order.
    pub requests: Vec<PairRequest>,
    /// Our request.
    pub own: RequestId,
    /// Phase timeouts.
    pub timeouts: Timeouts,
    /// The most fee we pay, sats.
    pub max_fee: Option<u64>,
}

/// Our secrets: never logged, never published (except each run's seed,
/// in blame).
pub struct OwnSecrets {
    /// The keys of our inputs.
    pub coin_keys: Vec<CoinKey>,
    /// Seeds our fresh output keys (see [`fresh_output_key`]).
    pub output_seed: Zeroizing<[u8; 32]>,
    /// Seeds every run seed and signature nonce of this session.
    pub rng_seed: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for OwnSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnSecrets")
            .field("coin_keys", &self.coin_keys)
            .finish_non_exhaustive()
    }
}

/// Why a session cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Our request is not among the session's.
    #[error("our request {0} is not in the session")]
    NotAParticipant(RequestId),
    /// We hold no key for one of our inputs.
    #[error("no key of ours spends input {0}: pass the keys of every input of the request")]
    MissingKey(Outpoint),
    /// Too few participants.
    #[error("{0} participants; a session needs at least {MIN_PARTICIPANTS}")]
    TooFew(usize),
    /// Two requests with one id.
    #[error("request {0} appears twice")]
    Duplicate(RequestId),
}

struct Stored {
    hash: MessageHash,
    body: Body,
    /// Checked against the previous phase (its `seen` list and contents).
    checked: bool,
}

/// The state of one run.
struct Run {
    number: u32,
    ctx: RunContext,
    participants: Vec<RequestId>,
    counts: Vec<u32>,
    me: usize,
    total: usize,
    seed: RunSeed,
    keys: RunKeys,
    slot_messages: Vec<Fe>,
    output_keys: Vec<Slot>,
    phase: Phase,
    deadline: Instant,
    messages: BTreeMap<Phase, Vec<Option<Stored>>>,
    /// Participants whose message for a phase disagrees with our view of
    /// the previous one.
    mismatched: BTreeMap<Phase, BTreeSet<usize>>,
    /// Other views of the participants (key exchanges listing another
    /// set), by author.
    views: BTreeMap<usize, Vec<RequestId>>,
    /// Participants whose key exchange listed a set that contains ours: an
    /// older view, which they re-form from onto ours at their deadline.
    coming_over: BTreeSet<usize>,
    /// Whether the key exchange's deadline was moved for them (once).
    extended: bool,
    valid_keys: Vec<Option<ValidPublicKeys>>,
    pads: Vec<(u32, PadKey)>,
    coinjoin: Option<CoinJoinTx>,
    signatures: Vec<Option<[u8; 64]>>,
}

impl Run {
    fn index_of(&self, id: &RequestId) -> Option<usize> {
        self.participants.iter().position(|p| p == id)
    }

    fn slot(&self, phase: Phase, index: usize) -> Option<&Stored> {
        self.messages.get(&phase)?.get(index)?.as_ref()
    }

    fn present(&self, phase: Phase, index: usize) -> bool {
        self.slot(phase, index).is_some_and(|s| s.checked)
            && !self
                .mismatched
                .get(&phase)
                .is_some_and(|m| m.contains(&index))
    }

    fn holdouts(&self, phase: Phase) -> Vec<usize> {
        (0..self.participants.len())
            .filter(|&i| !self.present(phase, i))
            .collect()
    }

    fn hashes(&self, phase: Phase) -> Vec<MessageHash> {
        (0..self.participants.len())
            .filter_map(|i| self.slot(phase, i).map(|s| s.hash))
            .collect()
    }

    fn bodies(&self, phase: Phase) -> Option<Vec<&Body>> {
        (0..self.participants.len())
            .map(|i| self.slot(phase, i).map(|s| &s.body))
            .collect()
    }
}

/// This node's part in one CoinJoin session.
pub struct Session {
    config: SessionConfig,
    requests: BTreeMap<RequestId, PairRequest>,
    secrets: OwnSecrets,
    excluded: Vec<Exclusion>,
    run: Run,
    /// Messages for the next run that arrived early, by author and phase.
    early: BTreeMap<(RequestId, Phase), Vec<u8>>,
    outcome: Option<Outcome>,
    /// Transactions we signed in this session's runs (a participant that
    /// withheld its signature may still complete one of them).
    signed: Vec<bitcoin::Txid>,
    disruption: DisruptionOption,
}

#[cfg(any(test, feature = "disruptor"))]
type DisruptionOption = Option<super::disrupt::Disruption>;
/// Without the disruptor, no disruption can exist.
#[cfg(not(any(test, feature = "disruptor")))]
type DisruptionOption = Option<std::convert::Infallible>;

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("session", &hex::encode(self.config.session_id))
            .field("run", &self.run.number)
            .field("phase", &self.run.phase)
            .finish_non_exhaustive()
    }
}

enum Step {
    /// Nothing more to do now.
    Wait,
    /// The run ended; exclude these and start the next.
    Exclude(Vec<(usize, Reason)>),
    /// The session is over.
    Finish(Outcome),
}

impl Session {
    /// Starts the session: checks the config, then run 0's key exchange.
    pub fn new(
        config: SessionConfig,
        secrets: OwnSecrets,
        now: Instant,
    ) -> Result<(Self, Vec<Action>), SessionError> {
        Self::start(config, secrets, None, now)
    }

    /// A session that misbehaves as `disruption` says (tests and the
    /// test-only disruptor).
    #[cfg(any(test, feature = "disruptor"))]
    pub fn new_disruptor(
        config: SessionConfig,
        secrets: OwnSecrets,
        disruption: super::disrupt::Disruption,
        now: Instant,
    ) -> Result<(Self, Vec<Action>), SessionError> {
        Self::start(config, secrets, Some(disruption), now)
    }

    fn start(
        config: SessionConfig,
        secrets: OwnSecrets,
        disruption: DisruptionOption,
        now: Instant,
    ) -> Result<(Self, Vec<Action>), SessionError> {
        let mut requests = BTreeMap::new();
        for r in &config.requests {
            if requests.insert(r.id(), r.clone()).is_some() {
                return Err(SessionError::Duplicate(r.id()));
            }
        }
        let own = requests
            .get(&config.own)
            .ok_or(SessionError::NotAParticipant(config.own))?;
        for input in &own.inputs {
            if !secrets
                .coin_keys
                .iter()
                .any(|k| k.script_pubkey().as_bytes() == input.script_pubkey.as_slice())
            {
                return Err(SessionError::MissingKey(input.outpoint));
            }
        }
        if requests.len() < MIN_PARTICIPANTS {
            return Err(SessionError::TooFew(requests.len()));
        }
        let participants: Vec<RequestId> = config.requests.iter().map(PairRequest::id).collect();
        let run = Self::new_run(
            &config,
            &requests,
            &secrets,
            0,
            participants,
            now,
            disruption,
        );
        let mut session = Self {
            config,
            requests,
            secrets,
            excluded: Vec::new(),
            run,
            early: BTreeMap::new(),
            outcome: None,
            signed: Vec::new(),
            disruption,
        };
        let actions = session.begin_run(now);
        Ok((session, actions))
    }

    fn disruption(&self) -> DisruptionOption {
        self.disruption
    }

    #[allow(clippy::too_many_arguments)]
    fn new_run(
        config: &SessionConfig,
        requests: &BTreeMap<RequestId, PairRequest>,
        secrets: &OwnSecrets,
        number: u32,
        participants: Vec<RequestId>,
        now: Instant,
        #[allow(unused_variables)] disruption: DisruptionOption,
    ) -> Run {
        let ctx = RunContext {
            session_id: config.session_id,
            run: number,
        };
        let mut seed_bytes = Zeroizing::new([0u8; 32]);
        let mut h = blake3::Hasher::new_keyed(&secrets.rng_seed);
        h.update(b"conclave coinjoin run seed v1");
        h.update(&config.session_id);
        h.update(&number.to_le_bytes());
        h.finalize_xof().fill(seed_bytes.as_mut_slice());
        let seed = RunSeed::from_bytes(*seed_bytes);
        let keys = RunKeys::derive(&seed, &ctx);
        let counts: Vec<u32> = participants
            .iter()
            .map(|id| requests[id].mixed_outputs)
            .collect();
        let me = participants
            .iter()
            .position(|p| *p == config.own)
            .expect("we are a participant of every run we start");
        let total = counts.iter().map(|&c| c as usize).sum();
        #[allow(unused_mut)]
        let mut output_keys: Vec<Slot> = (0..counts[me])
            .map(|i| {
                fresh_output_key(&secrets.output_seed, &config.session_id, number, i).output_key()
            })
            .collect();
        #[cfg(any(test, feature = "disruptor"))]
        if disruption == Some(super::disrupt::Disruption::OffCurveOutputKey) {
            output_keys[0] = off_curve_key();
        }
        let slot_messages = seed.slot_messages(&ctx, counts[me] as usize);
        let n = participants.len();
        let valid_keys = (0..n)
            .map(|i| (i == me).then(|| keys.public().validate().ok()).flatten())
            .collect();
        Run {
            number,
            ctx,
            counts,
            me,
            total,
            seed,
            keys,
            slot_messages,
            output_keys,
            phase: Phase::KeyExchange,
            deadline: now + config.timeouts.phase,
            messages: PHASES
                .iter()
                .chain(&[Phase::Blame])
                .map(|p| (*p, (0..n).map(|_| None).collect()))
                .collect(),
            mismatched: BTreeMap::new(),
            views: BTreeMap::new(),
            coming_over: BTreeSet::new(),
            extended: false,
            valid_keys,
            pads: Vec::new(),
            coinjoin: None,
            signatures: Vec::new(),
            participants,
        }
    }

    /// The current run.
    pub fn run(&self) -> u32 {
        self.run.number
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        match &self.outcome {
            Some(Outcome::Completed { .. }) => Phase::Done,
            Some(_) => Phase::Failed,
            None => self.run.phase,
        }
    }

    /// Requests still owing a message in the current phase.
    pub fn holdouts(&self) -> Vec<RequestId> {
        if self.outcome.is_some() {
            return Vec::new();
        }
        self.run
            .holdouts(self.run.phase)
            .into_iter()
            .map(|i| self.run.participants[i])
            .collect()
    }

    /// The participants of the current run.
    pub fn participants(&self) -> &[RequestId] {
        &self.run.participants
    }

    /// When [`Self::handle_deadline`] is due; `None` once over.
    pub fn deadline(&self) -> Option<Instant> {
        self.outcome.is_none().then_some(self.run.deadline)
    }

    /// Everyone excluded so far.
    pub fn excluded(&self) -> &[Exclusion] {
        &self.excluded
    }

    /// The ids of every transaction we signed in this session, one per run
    /// that reached signatures. Only one can ever confirm (they spend the
    /// same inputs); the driver watches for all of them, since a
    /// participant that withheld its signature may complete an earlier one.
    pub fn signed_txids(&self) -> &[bitcoin::Txid] {
        &self.signed
    }

    /// How the session ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    fn phase_action(&self) -> Action {
        Action::Phase {
            run: self.run.number,
            phase: self.phase(),
            holdouts: self.holdouts(),
        }
    }

    /// Publishes run 0's (or the next run's) key exchange and replays any
    /// early messages for it.
    fn begin_run(&mut self, now: Instant) -> Vec<Action> {
        let body = Body::KeyExchange {
            keys: self.run.keys.public().clone(),
            commitment: self
                .run
                .seed
                .commitment(&self.run.ctx, &self.run.output_keys),
            participants: self.run.participants.clone(),
        };
        let mut actions = self.publish(body);
        actions.push(self.phase_action());
        let early = std::mem::take(&mut self.early);
        for ((author, _), bytes) in early {
            if let Ok(more) = self.handle_message(author, &bytes, now) {
                actions.extend(more);
            }
        }
        actions.extend(self.progress(now));
        actions
    }

    /// Stores and publishes our message (with any disruption applied).
    fn publish(&mut self, body: Body) -> Vec<Action> {
        #[allow(unused_mut)]
        let mut body = body;
        #[allow(unused_mut)]
        let mut extra: Option<Body> = None;
        #[cfg(any(test, feature = "disruptor"))]
        if let Some(d) = self.disruption {
            match super::disrupt::apply(d, body) {
                None => return Vec::new(),
                Some((b, e)) => {
                    body = b;
                    extra = e;
                }
            }
        }
        let message = RunMessage {
            session_id: self.config.session_id,
            run: self.run.number,
            body,
        };
        let bytes = message.encode();
        let phase = message.body.phase();
        let me = self.run.me;
        if let Some(slot) = self
            .run
            .messages
            .get_mut(&phase)
            .and_then(|v| v.get_mut(me))
        {
            *slot = Some(Stored {
                hash: hash_encoded(&bytes),
                body: message.body,
                checked: true,
            });
        }
        let mut actions = vec![Action::Publish(bytes)];
        if let Some(body) = extra {
            let second = RunMessage {
                session_id: self.config.session_id,
                run: self.run.number,
                body,
            };
            actions.push(Action::Publish(second.encode()));
        }
        actions
    }

    /// Handles a message published by `from` (the node verified its
    /// envelope and mapped its author to the request).
    pub fn handle_message(
        &mut self,
        from: RequestId,
        bytes: &[u8],
        now: Instant,
    ) -> Result<Vec<Action>, Refusal> {
        if self.outcome.is_some() {
            return Err(Refusal("the session is over here".into()));
        }
        let message = RunMessage::decode(bytes).map_err(|e| Refusal(e.to_string()))?;
        if message.session_id != self.config.session_id {
            return self.other_view(from, message, now);
        }
        if message.run == self.run.number + 1 {
            // Nobody can get past the next run's key exchange without ours,
            // so only key exchanges come early: one per participant, small.
            if !self.run.participants.contains(&from)
                || message.body.phase() != Phase::KeyExchange
                || bytes.len() > self.max_message_bytes(Phase::KeyExchange)
            {
                return Err(Refusal(format!(
                    "an early {} message from {from} for run {} is not kept",
                    message.body.phase(),
                    message.run
                )));
            }
            self.early
                .entry((from, Phase::KeyExchange))
                .or_insert_with(|| bytes.to_vec());
            return Ok(Vec::new());
        }
        if message.run != self.run.number {
            return Err(Refusal(format!(
                "the message is for run {}, this session is in run {}",
                message.run, self.run.number
            )));
        }
        let index = self
            .run
            .index_of(&from)
            .ok_or_else(|| Refusal(format!("{from} is not a participant of this run")))?;
        if index == self.run.me {
            return Ok(Vec::new());
        }
        let phase = message.body.phase();
        if bytes.len() > self.max_message_bytes(phase) {
            return Err(Refusal(format!(
                "a {phase} message of {} bytes is larger than this run's {} can be",
                bytes.len(),
                self.max_message_bytes(phase)
            )));
        }
        if phase == Phase::Blame && self.run.phase == Phase::KeyExchange {
            return Err(Refusal(
                "nothing to reveal before the key exchange is complete".into(),
            ));
        }
        let hash = hash_encoded(bytes);
        let slot = &mut self.run.messages.get_mut(&phase).expect("every phase")[index];
        match slot {
            Some(stored) if stored.hash == hash => return Ok(Vec::new()),
            Some(_) => {
                let step = Step::Exclude(vec![(index, Reason::Equivocation(phase))]);
                return Ok(self.conclude(step, now));
            }
            None => {
                *slot = Some(Stored {
                    hash,
                    body: message.body,
                    checked: false,
                });
            }
        }
        if matches!(phase, Phase::Acceptance | Phase::Blame) {
            let contradictors = self.contradictors(false);
            if !contradictors.is_empty() {
                return Ok(self.conclude(Step::Exclude(contradictors), now));
            }
        }
        let mut actions = Vec::new();
        if phase == Phase::Blame && self.reveal_allowed() && self.run.phase != Phase::Blame {
            actions.extend(self.enter_blame(None));
        }
        actions.extend(self.progress(now));
        Ok(actions)
    }

    /// Participants that accepted the DC-net's result and then started a
    /// blame themselves: the accept and the reveal contradict each other,
    /// and together they are the proof. A reveal claiming a failure counts
    /// at once; one that answers no reveal we hold counts only at a
    /// deadline (the reveal it answers may still be on its way).
    fn contradictors(&self, at_deadline: bool) -> Vec<(usize, Reason)> {
        let reveals: BTreeSet<MessageHash> = self.run.hashes(Phase::Blame).into_iter().collect();
        (0..self.run.participants.len())
            .filter(|&i| self.run.slot(Phase::Acceptance, i).is_some())
            .filter(|&i| match self.run.slot(Phase::Blame, i) {
                Some(Stored {
                    body: Body::Reveal { claim: Some(_), .. },
                    ..
                }) => true,
                Some(Stored {
                    hash,
                    body:
                        Body::Reveal {
                            claim: None, seen, ..
                        },
                    ..
                }) => at_deadline && !seen.iter().any(|h| h != hash && reveals.contains(h)),
                _ => false,
            })
            .map(|i| (i, Reason::Equivocation(Phase::Acceptance)))
            .collect()
    }

    /// The largest honest message of `phase` in this run (with room for
    /// encoding overhead): a participant can make us store no more.
    fn max_message_bytes(&self, phase: Phase) -> usize {
        const FRAME: usize = 128;
        let n = self.run.participants.len();
        let m = self.run.total;
        let seen = 2 + n * 32;
        let inputs: usize = self
            .run
            .participants
            .iter()
            .map(|id| self.requests[id].inputs.len())
            .max()
            .unwrap_or(0);
        FRAME
            + match phase {
                Phase::KeyExchange => 32 + 3 + crate::kex::ML_KEM_PUBLIC_LEN + 32 + seen,
                Phase::Ciphertexts => n * (3 + ML_KEM_CIPHERTEXT_LEN) + seen,
                Phase::SlotReservation => m * 16 + seen,
                Phase::DcNet => m * 32 + seen,
                Phase::Acceptance => seen,
                Phase::Blame => 32 + m * 32 + 2 + seen,
                Phase::Signatures => inputs * (5 + 1 + 65) + seen,
                Phase::Done | Phase::Failed => 0,
            }
    }

    /// A key exchange of run 0 for another session of ours means its
    /// author formed the session from other requests. A set that contains
    /// ours is a view it re-forms from onto ours (views only shrink): it is
    /// coming over. Any other set is noted (once per author), and the
    /// session re-forms on the intersection at the deadline instead of
    /// blaming anyone.
    fn other_view(
        &mut self,
        from: RequestId,
        message: RunMessage,
        now: Instant,
    ) -> Result<Vec<Action>, Refusal> {
        let refuse = || Err(Refusal("the message is for another session".into()));
        let Body::KeyExchange { participants, .. } = message.body else {
            return refuse();
        };
        let Some(index) = self.run.index_of(&from) else {
            return refuse();
        };
        if message.run != 0
            || self.run.number != 0
            || self.run.phase != Phase::KeyExchange
            || self.run.views.contains_key(&index)
            || participants.len() > crate::pairing::MAX_PARTICIPANTS
            || !participants.contains(&from)
        {
            return refuse();
        }
        if self
            .run
            .participants
            .iter()
            .all(|p| participants.contains(p))
        {
            self.run.coming_over.insert(index);
            return Ok(Vec::new());
        }
        self.run.views.insert(index, participants);
        self.run
            .mismatched
            .entry(Phase::KeyExchange)
            .or_default()
            .insert(index);
        Ok(self.progress(now))
    }

    /// Whether we may still reveal: from the ciphertexts until every
    /// participant accepted the DC-net (reveals that arrive later are kept
    /// as evidence, never answered).
    fn reveal_allowed(&self) -> bool {
        matches!(
            self.run.phase,
            Phase::Ciphertexts
                | Phase::SlotReservation
                | Phase::DcNet
                | Phase::Acceptance
                | Phase::Blame
        )
    }

    /// A deadline passed: exclude whoever still owes a message.
    pub fn handle_deadline(&mut self, now: Instant) -> Vec<Action> {
        if self.outcome.is_some() || now < self.run.deadline {
            return Vec::new();
        }
        let phase = self.run.phase;
        let contradictors = self.contradictors(true);
        if !contradictors.is_empty() {
            return self.conclude(Step::Exclude(contradictors), now);
        }
        if phase == Phase::Blame && self.run.holdouts(Phase::Blame).is_empty() {
            // Every reveal is in; what we still waited for did not come.
            let step = self.check_reveals(true);
            return self.conclude(step, now);
        }
        if phase == Phase::KeyExchange && !self.run.views.is_empty() {
            // Views differ: re-form on the intersection rather than blame.
            // It is always smaller than ours (a new session id: re-forming
            // onto ours again would publish a second key exchange for it),
            // unless a participant listed another set for this very session.
            let views: Vec<(RequestId, Vec<RequestId>)> = self
                .run
                .views
                .iter()
                .map(|(i, view)| (self.run.participants[*i], view.clone()))
                .collect();
            let requests = reform_on_intersection(self.config.own, &self.run.participants, &views);
            let mut ours = self.run.participants.clone();
            ours.sort();
            if requests != ours {
                return self.conclude(Step::Finish(Outcome::Reform { requests }), now);
            }
        }
        let holdouts = self.run.holdouts(phase);
        if phase == Phase::KeyExchange
            && !self.run.extended
            && holdouts.iter().any(|i| self.run.coming_over.contains(i))
        {
            // They re-form onto our session at their own deadline, about
            // now: give their key exchange a phase to arrive.
            self.run.extended = true;
            self.run.deadline = now + self.config.timeouts.phase;
            return vec![self.phase_action()];
        }
        let mismatched = self.run.mismatched.get(&phase).cloned().unwrap_or_default();
        let culprits = holdouts
            .into_iter()
            .map(|i| {
                let reason = if mismatched.contains(&i) {
                    Reason::InvalidMessage(
                        phase,
                        "its view of the previous phase differs from ours".into(),
                    )
                } else {
                    Reason::Holdout(phase)
                };
                (i, reason)
            })
            .collect();
        self.conclude(Step::Exclude(culprits), now)
    }

    /// One of the session's inputs was spent elsewhere: its owner is out.
    pub fn handle_input_spent(&mut self, outpoint: Outpoint, now: Instant) -> Vec<Action> {
        if self.outcome.is_some() {
            return Vec::new();
        }
        let owner = self.run.participants.iter().position(|id| {
            self.requests[id]
                .inputs
                .iter()
                .any(|i| i.outpoint == outpoint)
        });
        match owner {
            Some(i) if i == self.run.me => self.conclude(
                Step::Finish(Outcome::Failed {
                    reason: format!("our input {outpoint} was spent elsewhere"),
                }),
                now,
            ),
            Some(i) => self.conclude(Step::Exclude(vec![(i, Reason::InputSpent(outpoint))]), now),
            None => Vec::new(),
        }
    }

    /// Checks newly arrived messages and completes phases while possible.
    fn progress(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        loop {
            if self.outcome.is_some() {
                return actions;
            }
            let phase = self.run.phase;
            if phase == Phase::Blame {
                let step = self.check_reveals(false);
                if let Step::Wait = step {
                    return actions;
                }
                actions.extend(self.conclude(step, now));
                return actions;
            }
            match self.check_phase(phase) {
                Step::Wait => {}
                step => {
                    actions.extend(self.conclude(step, now));
                    return actions;
                }
            }
            if !self.run.holdouts(phase).is_empty() {
                actions.push(self.phase_action());
                return actions;
            }
            match self.complete(phase, now) {
                Ok(more) => actions.extend(more),
                Err(step) => {
                    actions.extend(self.conclude(step, now));
                    return actions;
                }
            }
            if self.run.phase == phase {
                return actions;
            }
            actions.push(self.phase_action());
        }
    }

    /// Checks the unchecked messages of `phase` against our view of the
    /// previous phase and the run's public facts.
    fn check_phase(&mut self, phase: Phase) -> Step {
        let previous = PHASES
            .iter()
            .position(|p| *p == phase)
            .and_then(|i| i.checked_sub(1))
            .map(|i| PHASES[i]);
        let expected_seen = previous.map(|p| self.run.hashes(p)).unwrap_or_default();
        let mut culprits = Vec::new();
        for i in 0..self.run.participants.len() {
            let Some(stored) = self.run.slot(phase, i) else {
                continue;
            };
            if stored.checked {
                continue;
            }
            if let Body::KeyExchange { participants, .. } = &stored.body {
                if *participants != self.run.participants {
                    let view = participants.clone();
                    if view.len() <= crate::pairing::MAX_PARTICIPANTS
                        && view.contains(&self.run.participants[i])
                    {
                        self.run.views.entry(i).or_insert(view);
                    }
                    self.run.mismatched.entry(phase).or_default().insert(i);
                    self.mark_checked(phase, i);
                    continue;
                }
            } else if stored.body.seen() != expected_seen.as_slice() {
                self.run.mismatched.entry(phase).or_default().insert(i);
                self.mark_checked(phase, i);
                continue;
            }
            let body = self.run.slot(phase, i).expect("present").body.clone();
            match self.check_contents(i, &body) {
                Ok(()) => self.mark_checked(phase, i),
                Err(reason) => culprits.push((i, reason)),
            }
        }
        if culprits.is_empty() {
            Step::Wait
        } else {
            Step::Exclude(culprits)
        }
    }

    fn mark_checked(&mut self, phase: Phase, index: usize) {
        if let Some(Some(stored)) = self
            .run
            .messages
            .get_mut(&phase)
            .and_then(|v| v.get_mut(index))
        {
            stored.checked = true;
        }
    }

    /// What anyone can check about participant `i`'s message.
    fn check_contents(&mut self, i: usize, body: &Body) -> Result<(), Reason> {
        let n = self.run.participants.len();
        let invalid = |phase, what: String| Err(Reason::InvalidMessage(phase, what));
        match body {
            Body::KeyExchange { keys, .. } => match keys.validate() {
                Ok(valid) => {
                    self.run.valid_keys[i] = Some(valid);
                    Ok(())
                }
                Err(e) => Err(Reason::InvalidKey(e.to_string())),
            },
            Body::Ciphertexts { ciphertexts, .. } => {
                if ciphertexts.len() != n {
                    return invalid(
                        Phase::Ciphertexts,
                        format!("{} ciphertexts for {n} participants", ciphertexts.len()),
                    );
                }
                for (j, c) in ciphertexts.iter().enumerate() {
                    let expected = if j == i { 0 } else { ML_KEM_CIPHERTEXT_LEN };
                    if c.0.len() != expected {
                        return invalid(
                            Phase::Ciphertexts,
                            format!("ciphertext {j} has {} bytes", c.0.len()),
                        );
                    }
                }
                Ok(())
            }
            Body::SlotReservation { vector, .. } if vector.len() != self.run.total => invalid(
                Phase::SlotReservation,
                format!("{} elements for {} messages", vector.len(), self.run.total),
            ),
            Body::DcNet { vector, .. } if vector.len() != self.run.total => invalid(
                Phase::DcNet,
                format!("{} slots for {} messages", vector.len(), self.run.total),
            ),
            Body::Signatures { signatures, .. } => self.check_signatures(i, signatures),
            _ => Ok(()),
        }
    }

    fn check_signatures(&mut self, i: usize, signatures: &[InputSignature]) -> Result<(), Reason> {
        let Some(cj) = &self.run.coinjoin else {
            return Err(Reason::BadSignature(
                "signed before every participant accepted".into(),
            ));
        };
        let owned: BTreeSet<usize> = cj
            .owners
            .iter()
            .enumerate()
            .filter(|(_, &o)| o == i)
            .map(|(index, _)| index)
            .collect();
        let given: BTreeSet<usize> = signatures.iter().map(|s| s.input as usize).collect();
        if given != owned || signatures.len() != owned.len() {
            return Err(Reason::BadSignature(
                "signatures do not match its inputs".into(),
            ));
        }
        let mut checked = Vec::with_capacity(signatures.len());
        for s in signatures {
            cj.verify_signature(s.input as usize, &s.signature)
                .map_err(|e| Reason::BadSignature(e.to_string()))?;
            let sig: [u8; 64] = s
                .signature
                .as_slice()
                .try_into()
                .expect("verified: 64 bytes");
            checked.push((s.input as usize, sig));
        }
        for (input, sig) in checked {
            self.run.signatures[input] = Some(sig);
        }
        Ok(())
    }

    /// Every message of `phase` is in and checked: take the next step.
    fn complete(&mut self, phase: Phase, now: Instant) -> Result<Vec<Action>, Step> {
        let timeout = self.config.timeouts.phase;
        match phase {
            Phase::KeyExchange => {
                let me = self.run.me;
                let ciphertexts = (0..self.run.participants.len())
                    .map(|q| {
                        if q == me {
                            Ciphertext(Vec::new())
                        } else {
                            let keys = self.run.valid_keys[q].as_ref().expect("checked");
                            Ciphertext(self.run.keys.encapsulate(q as u32, keys).ciphertext)
                        }
                    })
                    .collect();
                let seen = self.run.hashes(Phase::KeyExchange);
                self.advance(Phase::Ciphertexts, now + timeout);
                Ok(self.publish(Body::Ciphertexts { ciphertexts, seen }))
            }
            Phase::Ciphertexts => {
                let me = self.run.me;
                let kes = self.run.bodies(Phase::KeyExchange).expect("complete");
                let publics: Vec<_> = kes
                    .iter()
                    .map(|b| match b {
                        Body::KeyExchange { keys, .. } => keys,
                        _ => unreachable!("key exchange phase holds key exchanges"),
                    })
                    .collect();
                let cts = self.run.bodies(Phase::Ciphertexts).expect("complete");
                let to_me: Vec<&[u8]> = cts
                    .iter()
                    .map(|b| match b {
                        Body::Ciphertexts { ciphertexts, .. } => ciphertexts[me].0.as_slice(),
                        _ => unreachable!("ciphertext phase holds ciphertexts"),
                    })
                    .collect();
                let valid: Vec<ValidPublicKeys> = self
                    .run
                    .valid_keys
                    .iter()
                    .map(|v| v.clone().expect("checked"))
                    .collect();
                let pads =
                    blame::pads_for(&self.run.keys, me, &publics, &valid, &to_me).map_err(|q| {
                        Step::Exclude(vec![(
                            q,
                            Reason::InvalidMessage(Phase::Ciphertexts, "ciphertext size".into()),
                        )])
                    })?;
                self.run.pads = pads;
                let vector = dcnet::slot_reservation_vector(
                    me as u32,
                    &self.run.slot_messages,
                    self.run.total,
                    &self.peer_pads(),
                );
                let seen = self.run.hashes(Phase::Ciphertexts);
                self.advance(Phase::SlotReservation, now + timeout);
                Ok(self.publish(Body::SlotReservation { vector, seen }))
            }
            Phase::SlotReservation => {
                let vectors: Vec<&[Fe]> = self
                    .run
                    .bodies(Phase::SlotReservation)
                    .expect("complete")
                    .into_iter()
                    .map(|b| match b {
                        Body::SlotReservation { vector, .. } => vector.as_slice(),
                        _ => unreachable!("slot reservation phase holds reservations"),
                    })
                    .collect();
                let sums = dcnet::sum_slot_reservations(&vectors);
                let slots = solver::solve(&sums, &self.run.ctx.session_id)
                    .ok()
                    .and_then(|roots| dcnet::slots_of(&self.run.slot_messages, &roots));
                let Some(slots) = slots else {
                    return Ok(self.enter_blame(Some(Phase::SlotReservation)));
                };
                let outputs: Vec<(usize, Slot)> = slots
                    .into_iter()
                    .zip(self.run.output_keys.iter().copied())
                    .collect();
                let vector = dcnet::dc_net_vector(self.run.total, &outputs, &self.peer_pads());
                let seen = self.run.hashes(Phase::SlotReservation);
                self.advance(Phase::DcNet, now + timeout);
                Ok(self.publish(Body::DcNet { vector, seen }))
            }
            Phase::DcNet => {
                let vectors: Vec<&[Slot]> = self
                    .run
                    .bodies(Phase::DcNet)
                    .expect("complete")
                    .into_iter()
                    .map(|b| match b {
                        Body::DcNet { vector, .. } => vector.as_slice(),
                        _ => unreachable!("DC-net phase holds DC-net vectors"),
                    })
                    .collect();
                let keys = dcnet::xor_dc_nets(&vectors);
                let distinct: BTreeSet<&Slot> = keys.iter().collect();
                let ours_present = self.run.output_keys.iter().all(|k| keys.contains(k));
                if distinct.len() != keys.len()
                    || !ours_present
                    || !keys.iter().all(is_valid_output_key)
                {
                    return Ok(self.enter_blame(Some(Phase::DcNet)));
                }
                let participants: Vec<_> = self
                    .run
                    .participants
                    .iter()
                    .map(|id| self.requests[id].tx_participant())
                    .collect();
                let cj = tx::build(
                    &participants,
                    &keys,
                    self.config.pairing.denomination,
                    self.config.pairing.fee_rate,
                )
                .map_err(|e| {
                    Step::Finish(Outcome::Failed {
                        reason: format!("cannot build the transaction: {e}"),
                    })
                })?;
                let own = &self.requests[&self.config.own];
                if let Err(refusal) = cj.check_ours(
                    self.run.me,
                    &own.outpoints(),
                    &self.run.output_keys,
                    own.change_script().as_ref(),
                    self.config.max_fee,
                ) {
                    if matches!(refusal, tx::Refusal::MissingOutput(_)) {
                        return Ok(self.enter_blame(Some(Phase::DcNet)));
                    }
                    return Err(Step::Finish(Outcome::Failed {
                        reason: format!("refused to sign, nothing signed: {refusal}"),
                    }));
                }
                self.run.signatures = vec![None; cj.tx.input.len()];
                self.run.coinjoin = Some(cj);
                #[cfg(any(test, feature = "disruptor"))]
                if self.disruption() == Some(super::disrupt::Disruption::FalseAccusation) {
                    return Ok(self.enter_blame(Some(Phase::DcNet)));
                }
                let seen = self.run.hashes(Phase::DcNet);
                self.advance(Phase::Acceptance, now + timeout);
                #[allow(unused_mut)]
                let mut actions = self.publish(Body::Accept { seen });
                #[cfg(any(test, feature = "disruptor"))]
                if self.disruption() == Some(super::disrupt::Disruption::AcceptThenAccuse) {
                    actions.extend(self.enter_blame(Some(Phase::DcNet)));
                }
                Ok(actions)
            }
            Phase::Acceptance => {
                let cj = self.run.coinjoin.as_ref().expect("built before accepting");
                let mut aux = blake3::Hasher::new_keyed(&self.secrets.rng_seed);
                aux.update(b"conclave coinjoin signature aux v1");
                aux.update(&self.run.number.to_le_bytes());
                let aux = *aux.finalize().as_bytes();
                let signed = cj
                    .sign_ours(self.run.me, &self.secrets.coin_keys, &aux)
                    .map_err(|r| {
                        Step::Finish(Outcome::Failed {
                            reason: format!("refused to sign, nothing signed: {r}"),
                        })
                    })?;
                for (input, sig) in &signed {
                    self.run.signatures[*input as usize] = Some(*sig);
                }
                let signatures = signed
                    .into_iter()
                    .map(|(input, sig)| InputSignature {
                        input,
                        signature: sig.to_vec(),
                    })
                    .collect();
                self.signed.push(cj.tx.compute_txid());
                let seen = self.run.hashes(Phase::Acceptance);
                self.advance(Phase::Signatures, now + timeout);
                Ok(self.publish(Body::Signatures { signatures, seen }))
            }
            Phase::Signatures => {
                let cj = self.run.coinjoin.as_ref().expect("built");
                let Some(signatures) = self
                    .run
                    .signatures
                    .iter()
                    .copied()
                    .collect::<Option<Vec<_>>>()
                else {
                    return Err(Step::Finish(Outcome::Failed {
                        reason: "a signature is missing".into(),
                    }));
                };
                let tx = cj.finalize(&signatures);
                if let Err(e) = tx::verify_consensus(&tx, &cj.prevouts) {
                    return Err(Step::Finish(Outcome::Failed {
                        reason: e.to_string(),
                    }));
                }
                let our_fee = cj.fees[self.run.me];
                let our_outputs = self
                    .run
                    .output_keys
                    .iter()
                    .enumerate()
                    .map(|(index, key)| OurOutput {
                        run: self.run.number,
                        index: index as u32,
                        output_key: hex::encode(key),
                    })
                    .collect();
                Err(Step::Finish(Outcome::Completed {
                    tx,
                    our_fee,
                    our_outputs,
                    run: self.run.number,
                }))
            }
            Phase::Blame | Phase::Done | Phase::Failed => Ok(Vec::new()),
        }
    }

    fn peer_pads(&self) -> Vec<PeerPad<'_>> {
        self.run
            .pads
            .iter()
            .map(|(peer, key)| PeerPad { peer: *peer, key })
            .collect()
    }

    fn advance(&mut self, phase: Phase, deadline: Instant) {
        self.run.phase = phase;
        self.run.deadline = deadline;
    }

    /// Starts blame: publishes our reveal (claiming `claim`, or answering
    /// the reveals we hold).
    fn enter_blame(&mut self, claim: Option<Phase>) -> Vec<Action> {
        let seen = if claim.is_some() {
            Vec::new()
        } else {
            self.run.hashes(Phase::Blame)
        };
        self.run.phase = Phase::Blame;
        // The deadline stays relative to the phase we were in plus one
        // more timeout, so reveals have a full phase to arrive.
        self.run.deadline += self.config.timeouts.phase;
        let body = Body::Reveal {
            seed: *self.run.seed.expose(),
            output_keys: self.run.output_keys.clone(),
            claim,
            seen,
        };
        let mut actions = self.publish(body);
        actions.push(self.phase_action());
        actions
    }

    /// In blame: once every reveal is in, and every message of the phases
    /// up to the latest one claimed to have failed, replay and decide. At
    /// the deadline, decide on what arrived (a claim of a phase whose
    /// messages never came to us is not proven).
    fn check_reveals(&mut self, at_deadline: bool) -> Step {
        let n = self.run.participants.len();
        let mut culprits = Vec::new();
        for i in 0..n {
            if let Some(Stored {
                body: Body::Reveal { output_keys, .. },
                checked: false,
                ..
            }) = self.run.slot(Phase::Blame, i)
            {
                if output_keys.len() != self.run.counts[i] as usize {
                    culprits.push((
                        i,
                        Reason::InvalidMessage(Phase::Blame, "wrong number of output keys".into()),
                    ));
                    continue;
                }
                self.mark_checked(Phase::Blame, i);
            }
        }
        if !culprits.is_empty() {
            return Step::Exclude(culprits);
        }
        // Gossip keeps no order: a claimant's reveal can overtake messages
        // of the phase it claims, which arrive here after we entered blame.
        // One that is invalid on its face is proof at once: its author is
        // out without waiting for reveals (whose authors may have moved on
        // to the next run on that very proof).
        let latest_claim = self.latest_claim();
        let replayed = PHASES.iter().copied().filter(|p| Some(*p) <= latest_claim);
        for phase in replayed.clone() {
            if let step @ Step::Exclude(_) = self.check_phase(phase) {
                return step;
            }
        }
        if !self.run.holdouts(Phase::Blame).is_empty() {
            return Step::Wait;
        }
        let missing = |phase| (0..n).any(|i| self.run.slot(phase, i).is_none());
        if !at_deadline && replayed.clone().any(missing) {
            return Step::Wait;
        }
        let deviators = self.replay();
        if !deviators.is_empty() {
            return Step::Exclude(deviators);
        }
        // Nobody deviated, so no failure happened: whoever claimed one lied.
        let reveal_hashes: BTreeSet<MessageHash> =
            self.run.hashes(Phase::Blame).into_iter().collect();
        let claimants = (0..n)
            .filter(
                |&i| match &self.run.slot(Phase::Blame, i).expect("all in").body {
                    Body::Reveal { claim: Some(_), .. } => true,
                    Body::Reveal {
                        claim: None, seen, ..
                    } => {
                        let own = self.run.slot(Phase::Blame, i).expect("all in").hash;
                        !seen.iter().any(|h| *h != own && reveal_hashes.contains(h))
                    }
                    _ => false,
                },
            )
            .map(|i| (i, Reason::FalseAccusation))
            .collect();
        Step::Exclude(claimants)
    }

    /// The latest phase a reveal of this run claims to have failed.
    fn latest_claim(&self) -> Option<Phase> {
        (0..self.run.participants.len())
            .filter_map(|i| match &self.run.slot(Phase::Blame, i)?.body {
                Body::Reveal { claim, .. } => *claim,
                _ => None,
            })
            .max()
    }

    /// Replays the run from everyone's revealed seed.
    fn replay(&self) -> Vec<(usize, Reason)> {
        let run = &self.run;
        let all_checked = |phase: Phase| {
            (0..run.participants.len()).all(|i| {
                run.slot(phase, i).is_some_and(|s| s.checked)
                    && !run.mismatched.get(&phase).is_some_and(|m| m.contains(&i))
            })
        };
        let key_exchanges = run
            .bodies(Phase::KeyExchange)
            .expect("blame starts after the key exchange")
            .into_iter()
            .map(|b| match b {
                Body::KeyExchange {
                    keys, commitment, ..
                } => (keys, commitment),
                _ => unreachable!("key exchanges"),
            })
            .collect();
        let ciphertexts = all_checked(Phase::Ciphertexts).then(|| {
            run.bodies(Phase::Ciphertexts)
                .expect("all in")
                .into_iter()
                .map(|b| match b {
                    Body::Ciphertexts { ciphertexts, .. } => ciphertexts.as_slice(),
                    _ => unreachable!("ciphertexts"),
                })
                .collect()
        });
        let slot_reservations = (ciphertexts.is_some() && all_checked(Phase::SlotReservation))
            .then(|| {
                run.bodies(Phase::SlotReservation)
                    .expect("all in")
                    .into_iter()
                    .map(|b| match b {
                        Body::SlotReservation { vector, .. } => vector.as_slice(),
                        _ => unreachable!("reservations"),
                    })
                    .collect()
            });
        let dc_nets = (slot_reservations.is_some() && all_checked(Phase::DcNet)).then(|| {
            run.bodies(Phase::DcNet)
                .expect("all in")
                .into_iter()
                .map(|b| match b {
                    Body::DcNet { vector, .. } => vector.as_slice(),
                    _ => unreachable!("DC-net vectors"),
                })
                .collect()
        });
        let reveals = run
            .bodies(Phase::Blame)
            .expect("all in")
            .into_iter()
            .map(|b| match b {
                Body::Reveal {
                    seed, output_keys, ..
                } => (RunSeed::from_bytes(*seed), output_keys.as_slice()),
                _ => unreachable!("reveals"),
            })
            .collect();
        blame::replay(&Transcript {
            run: run.ctx,
            counts: &run.counts,
            key_exchanges,
            ciphertexts,
            slot_reservations,
            dc_nets,
            reveals,
        })
    }

    /// Ends the run (or the session) with `step`.
    fn conclude(&mut self, step: Step, now: Instant) -> Vec<Action> {
        match step {
            Step::Wait => Vec::new(),
            Step::Finish(outcome) => {
                self.outcome = Some(outcome.clone());
                vec![self.phase_action(), Action::Finished(outcome)]
            }
            Step::Exclude(culprits) => {
                let mut out: BTreeMap<usize, Reason> = BTreeMap::new();
                for (i, reason) in culprits {
                    out.entry(i).or_insert(reason);
                }
                let exclusions: Vec<Exclusion> = out
                    .iter()
                    .map(|(i, reason)| Exclusion {
                        outpoints: self.requests[&self.run.participants[*i]].outpoints(),
                        reason: reason.clone(),
                        run: self.run.number,
                    })
                    .collect();
                self.excluded.extend(exclusions.iter().cloned());
                let mut actions = vec![Action::Excluded(exclusions)];
                if out.contains_key(&self.run.me) {
                    let reason = "this node was excluded (its own view differs)".to_string();
                    actions.extend(self.conclude(Step::Finish(Outcome::Failed { reason }), now));
                    return actions;
                }
                let remaining: Vec<RequestId> = self
                    .run
                    .participants
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !out.contains_key(i))
                    .map(|(_, id)| *id)
                    .collect();
                let next = self.run.number + 1;
                if remaining.len() < MIN_PARTICIPANTS {
                    let reason = format!(
                        "{} participants remain; a session needs {MIN_PARTICIPANTS}",
                        remaining.len()
                    );
                    actions.extend(self.conclude(Step::Finish(Outcome::Failed { reason }), now));
                    return actions;
                }
                if next >= MAX_RUNS {
                    let reason = format!("no transaction after {MAX_RUNS} runs");
                    actions.extend(self.conclude(Step::Finish(Outcome::Failed { reason }), now));
                    return actions;
                }
                let disruption = self.disruption();
                self.run = Self::new_run(
                    &self.config,
                    &self.requests,
                    &self.secrets,
                    next,
                    remaining,
                    now,
                    disruption,
                );
                actions.extend(self.begin_run(now));
                actions
            }
        }
    }
}

#[cfg(any(test, feature = "disruptor"))]
fn off_curve_key() -> Slot {
    (1u8..)
        .map(|x| {
            let mut k = [0u8; 32];
            k[31] = x;
            k
        })
        .find(|k| !is_valid_output_key(k))
        .expect("half of all x are off the curve")
}
