//! The coordinator's side of a session: invites the signers, collects
//! joins, public nonces and partial signatures (verifying each partial
//! signature as it arrives), aggregates, verifies and announces the result.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Instant,
};

use conclave_node::PeerId;
use musig2::{
    secp::Point, AggNonce, CompactSignature, LiftedSignature, PartialSignature, PubNonce,
};

use super::{
    Action, Failure, FailureKind, KeyNonces, KeyPartials, Outcome, Phase, Refusal, SessionContext,
    SessionMessage, SessionSpec, SpecError,
};
use crate::keys::SignerKey;

/// A session run by this node.
#[derive(Debug)]
pub struct Coordinator {
    spec: SessionSpec,
    ctx: SessionContext,
    phase: Phase,
    deadline: Option<Instant>,
    joined: BTreeSet<SignerKey>,
    nonces: BTreeMap<SignerKey, Vec<PubNonce>>,
    aggnonces: Vec<AggNonce>,
    partials: BTreeMap<SignerKey, Vec<PartialSignature>>,
    outcome: Option<Outcome>,
}

impl Coordinator {
    /// Starts a session: validates `spec` and invites every signer.
    pub fn new(spec: SessionSpec, now: Instant) -> Result<(Self, Vec<Action>), SpecError> {
        let ctx = SessionContext::new(&spec)?;
        let this = Self {
            deadline: Some(now + spec.timeouts.join),
            spec,
            ctx,
            phase: Phase::Join,
            joined: BTreeSet::new(),
            nonces: BTreeMap::new(),
            aggnonces: Vec::new(),
            partials: BTreeMap::new(),
            outcome: None,
        };
        let actions = vec![
            this.to_signers(SessionMessage::Invite(this.spec.clone())),
            this.phase_action(),
        ];
        Ok((this, actions))
    }

    /// The session's spec.
    pub fn spec(&self) -> &SessionSpec {
        &self.spec
    }

    /// What the spec derives to.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The deadline of the current phase (none once over).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// How the session ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// The public nonces received so far, by key.
    pub fn pub_nonces(&self) -> &BTreeMap<SignerKey, Vec<PubNonce>> {
        &self.nonces
    }

    /// The partial signatures received so far, by key (all verified).
    pub fn partial_signatures(&self) -> &BTreeMap<SignerKey, Vec<PartialSignature>> {
        &self.partials
    }

    /// Keys still owed in the current phase; once failed, those owed then.
    pub fn holdouts(&self) -> Vec<SignerKey> {
        let keys = self.spec.keys();
        match self.phase {
            Phase::Invitation | Phase::Join => keys
                .into_iter()
                .filter(|k| !self.joined.contains(k))
                .collect(),
            Phase::Nonces => keys
                .into_iter()
                .filter(|k| !self.nonces.contains_key(k))
                .collect(),
            Phase::PartialSignatures => keys
                .into_iter()
                .filter(|k| !self.partials.contains_key(k))
                .collect(),
            Phase::Failed | Phase::Aborted => match &self.outcome {
                Some(Outcome::Failed(f)) => f.holdouts.clone(),
                _ => Vec::new(),
            },
            Phase::Aggregation | Phase::Done => Vec::new(),
        }
    }

    fn to_signers(&self, message: SessionMessage) -> Action {
        Action::Send {
            to: self.spec.peers(),
            message,
        }
    }

    fn phase_action(&self) -> Action {
        Action::Phase {
            phase: self.phase,
            holdouts: self.holdouts(),
        }
    }

    fn enter(&mut self, phase: Phase, now: Instant) {
        self.phase = phase;
        self.deadline = (!phase.is_terminal() && phase != Phase::Aggregation)
            .then(|| now + self.spec.timeouts.of(phase));
    }

    fn fail(
        &mut self,
        kind: FailureKind,
        reason: String,
        culprits: Vec<SignerKey>,
        holdouts: Vec<SignerKey>,
    ) -> Vec<Action> {
        let failure = Failure {
            kind,
            phase: self.phase,
            reason,
            culprits,
            holdouts,
        };
        self.phase = if kind == FailureKind::Aborted {
            Phase::Aborted
        } else {
            Phase::Failed
        };
        self.deadline = None;
        let outcome = Outcome::Failed(failure);
        self.outcome = Some(outcome.clone());
        vec![
            self.to_signers(SessionMessage::Outcome(outcome.clone())),
            self.phase_action(),
            Action::Finished(outcome),
        ]
    }

    /// Handles a message from `from` (verified by the node's envelope).
    pub fn handle_message(
        &mut self,
        from: PeerId,
        message: SessionMessage,
        now: Instant,
    ) -> Result<Vec<Action>, Refusal> {
        let theirs = self.spec.keys_of(&from);
        if theirs.is_empty() {
            return Err(Refusal(format!(
                "{from} is not a signer of session {}",
                self.spec.session_id
            )));
        }
        let claimed: Vec<SignerKey> = match &message {
            SessionMessage::Join { keys } | SessionMessage::Decline { keys, .. } => keys.clone(),
            SessionMessage::Nonces { nonces } => nonces.iter().map(|n| n.key).collect(),
            SessionMessage::Partials { partials } => partials.iter().map(|p| p.key).collect(),
            other => return Err(Refusal(format!("a coordinator takes no {}", other.name()))),
        };
        if let Some(foreign) = claimed.iter().find(|k| !theirs.contains(k)) {
            return Err(Refusal(format!("{from} does not sign for {foreign}")));
        }
        if self.phase.is_terminal() {
            // Late but harmless (e.g. crossed the outcome on the way): the
            // outcome already tells the sender how the session ended.
            return Ok(Vec::new());
        }
        match message {
            SessionMessage::Join { keys } => self.on_join(keys, now),
            SessionMessage::Decline { keys, reason } => {
                let culprits = if keys.is_empty() { theirs } else { keys };
                let holdouts = self.holdouts();
                Ok(self.fail(
                    FailureKind::Declined,
                    format!("a signer declined: {reason}"),
                    culprits,
                    holdouts,
                ))
            }
            SessionMessage::Nonces { nonces } => self.on_nonces(nonces, now),
            SessionMessage::Partials { partials } => self.on_partials(partials, now),
            _ => unreachable!("filtered above"),
        }
    }

    fn on_join(&mut self, keys: Vec<SignerKey>, now: Instant) -> Result<Vec<Action>, Refusal> {
        if self.phase != Phase::Join {
            return Err(Refusal(format!(
                "not joining: the session is in {}",
                self.phase
            )));
        }
        let before = self.joined.len();
        self.joined.extend(keys);
        if self.joined.len() == before {
            return Ok(Vec::new());
        }
        if self.joined.len() < self.spec.signers.len() {
            // To the signers that joined: the others may not even have
            // their invitation yet, and it lists everyone as outstanding.
            let joined: Vec<PeerId> = self
                .spec
                .peers()
                .into_iter()
                .filter(|p| self.spec.keys_of(p).iter().all(|k| self.joined.contains(k)))
                .collect();
            let mut actions = Vec::new();
            if !joined.is_empty() {
                actions.push(Action::Send {
                    to: joined,
                    message: SessionMessage::Progress {
                        phase: Phase::Join,
                        holdouts: self.holdouts(),
                    },
                });
            }
            actions.push(self.phase_action());
            return Ok(actions);
        }
        self.enter(Phase::Nonces, now);
        Ok(vec![
            self.to_signers(SessionMessage::NonceRequest),
            self.phase_action(),
        ])
    }

    fn on_nonces(&mut self, nonces: Vec<KeyNonces>, now: Instant) -> Result<Vec<Action>, Refusal> {
        if self.phase != Phase::Nonces {
            return Err(Refusal(format!(
                "no nonces wanted: the session is in {}",
                self.phase
            )));
        }
        let count = self.ctx.messages.len();
        let mut changed = false;
        for entry in nonces {
            let parsed: Option<Vec<PubNonce>> = (entry.nonces.len() == count)
                .then(|| {
                    entry
                        .nonces
                        .iter()
                        .map(|b| PubNonce::from_bytes(b).ok())
                        .collect()
                })
                .flatten();
            let Some(parsed) = parsed else {
                let holdouts = self.holdouts();
                return Ok(self.fail(
                    FailureKind::InvalidNonce,
                    format!("{} sent malformed public nonces", entry.key),
                    vec![entry.key],
                    holdouts,
                ));
            };
            match self.nonces.get(&entry.key) {
                Some(known) if *known == parsed => {}
                Some(_) => {
                    let holdouts = self.holdouts();
                    return Ok(self.fail(
                        FailureKind::ProtocolViolation,
                        format!("{} sent two different sets of nonces", entry.key),
                        vec![entry.key],
                        holdouts,
                    ));
                }
                None => {
                    self.nonces.insert(entry.key, parsed);
                    changed = true;
                }
            }
        }
        if !changed {
            return Ok(Vec::new());
        }
        if self.nonces.len() < self.spec.signers.len() {
            return Ok(vec![self.phase_action()]);
        }
        let keys = self.spec.keys();
        self.aggnonces = (0..count)
            .map(|i| AggNonce::sum(keys.iter().map(|k| &self.nonces[k][i])))
            .collect();
        let all = keys
            .iter()
            .map(|k| KeyNonces {
                key: *k,
                nonces: self.nonces[k]
                    .iter()
                    .map(|n| n.serialize().to_vec())
                    .collect(),
            })
            .collect();
        self.enter(Phase::PartialSignatures, now);
        Ok(vec![
            self.to_signers(SessionMessage::SignRequest { nonces: all }),
            self.phase_action(),
        ])
    }

    fn on_partials(
        &mut self,
        partials: Vec<KeyPartials>,
        now: Instant,
    ) -> Result<Vec<Action>, Refusal> {
        if self.phase != Phase::PartialSignatures {
            return Err(Refusal(format!(
                "no partial signatures wanted: the session is in {}",
                self.phase
            )));
        }
        let mut changed = false;
        for entry in partials {
            if self.partials.contains_key(&entry.key) {
                continue;
            }
            match self.verify_partials(&entry) {
                Ok(verified) => {
                    self.partials.insert(entry.key, verified);
                    changed = true;
                }
                Err(reason) => {
                    let holdouts = self.holdouts();
                    return Ok(self.fail(
                        FailureKind::InvalidPartialSignature,
                        format!(
                            "the partial signature of {} is invalid: {reason}",
                            entry.key
                        ),
                        vec![entry.key],
                        holdouts,
                    ));
                }
            }
        }
        if !changed {
            return Ok(Vec::new());
        }
        if self.partials.len() < self.spec.signers.len() {
            return Ok(vec![self.phase_action()]);
        }
        self.enter(Phase::Aggregation, now);
        let mut actions = vec![self.phase_action()];
        match self.aggregate() {
            Ok(signatures) => {
                self.enter(Phase::Done, now);
                let outcome = Outcome::Completed { signatures };
                self.outcome = Some(outcome.clone());
                actions.push(self.to_signers(SessionMessage::Outcome(outcome.clone())));
                actions.push(self.phase_action());
                actions.push(Action::Finished(outcome));
            }
            Err(reason) => actions.extend(self.fail(
                FailureKind::InvalidSignature,
                reason,
                Vec::new(),
                Vec::new(),
            )),
        }
        Ok(actions)
    }

    /// Verifies one key's partial signatures against its nonces, the
    /// aggregate nonce and the message (BIP-327 PartialSigVerify).
    fn verify_partials(&self, entry: &KeyPartials) -> Result<Vec<PartialSignature>, String> {
        let count = self.ctx.messages.len();
        if entry.partials.len() != count {
            return Err(format!(
                "{} signatures for {count} messages",
                entry.partials.len()
            ));
        }
        let nonces = &self.nonces[&entry.key];
        let mut verified = Vec::with_capacity(count);
        for (i, bytes) in entry.partials.iter().enumerate() {
            let partial =
                PartialSignature::from_slice(bytes).map_err(|_| "not a scalar".to_string())?;
            musig2::verify_partial(
                &self.ctx.key_agg,
                partial,
                &self.aggnonces[i],
                entry.key.point(),
                &nonces[i],
                &self.ctx.messages[i],
            )
            .map_err(|e| format!("message {i}: {e}"))?;
            verified.push(partial);
        }
        Ok(verified)
    }

    /// Aggregates and verifies one signature per message.
    fn aggregate(&self) -> Result<Vec<Vec<u8>>, String> {
        let keys = self.spec.keys();
        let signing_key: Point = self.ctx.key_agg.aggregated_pubkey();
        let mut signatures = Vec::new();
        for (i, message) in self.ctx.messages.iter().enumerate() {
            let signature: LiftedSignature = musig2::aggregate_partial_signatures(
                &self.ctx.key_agg,
                &self.aggnonces[i],
                keys.iter().map(|k| self.partials[k][i]),
                message,
            )
            .map_err(|e| format!("aggregating message {i}: {e}"))?;
            let compact: CompactSignature = signature.compact();
            musig2::verify_single(signing_key, compact, message)
                .map_err(|e| format!("the aggregate signature of message {i}: {e}"))?;
            signatures.push(compact.serialize().to_vec());
        }
        Ok(signatures)
    }

    /// The current phase's deadline passed: fail, naming the holdouts.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        match self.deadline {
            Some(deadline) if now >= deadline => {
                let holdouts = self.holdouts();
                let phase = self.phase;
                self.fail(
                    FailureKind::Timeout,
                    format!(
                        "the {phase} phase timed out after {:?}",
                        self.spec.timeouts.of(phase)
                    ),
                    Vec::new(),
                    holdouts,
                )
            }
            _ => Vec::new(),
        }
    }

    /// A message to `peer` could not be delivered (or it refused it): the
    /// session cannot go on without it, and fails listing its keys.
    pub fn handle_send_failure(&mut self, peer: PeerId, reason: &str) -> Vec<Action> {
        if self.phase.is_terminal() {
            return Vec::new();
        }
        // The others owe nothing yet: only this peer cannot answer.
        let holdouts = self.spec.keys_of(&peer);
        let kind = if reason.starts_with("refused") {
            FailureKind::Refused
        } else {
            FailureKind::Unreachable
        };
        self.fail(
            kind,
            format!("signer {peer}: {reason}"),
            Vec::new(),
            holdouts,
        )
    }

    /// `peer` disconnected: fatal while the session waits on it for nonces
    /// or partial signatures (joins may come after a reconnect).
    pub fn handle_peer_disconnected(&mut self, peer: PeerId) -> Vec<Action> {
        let waiting = matches!(self.phase, Phase::Nonces | Phase::PartialSignatures);
        let owes = self
            .holdouts()
            .iter()
            .any(|k| self.spec.keys_of(&peer).contains(k));
        if waiting && owes {
            self.handle_send_failure(peer, "disconnected while the session waited for it")
        } else {
            Vec::new()
        }
    }

    /// Stops the session here (the service stops).
    pub fn abort(&mut self, reason: &str) -> Vec<Action> {
        if self.phase.is_terminal() {
            return Vec::new();
        }
        let holdouts = self.holdouts();
        self.fail(
            FailureKind::Aborted,
            reason.to_string(),
            Vec::new(),
            holdouts,
        )
    }
}
