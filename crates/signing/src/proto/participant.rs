//! A signer's side of a session: holds the invitation until the person
//! joins, then generates secret nonces when asked, signs exactly once, and
//! checks the final signature.
//!
//! Secret nonces live only inside [`SecretNonce`]s held here, in memory:
//! one can be neither copied nor cloned, signing consumes it, and dropping
//! it wipes it, so a nonce can sign one message and is then gone. Nothing
//! here is ever written anywhere.

use std::{mem, time::Instant};

use conclave_node::PeerId;
use musig2::{secp::Point, AggNonce, PubNonce, SecNonceSpices};
use zeroize::Zeroizing;

use super::{
    secret_nonce::SecretNonce, Action, Failure, FailureKind, KeyNonces, KeyPartials, Outcome,
    Phase, Refusal, SessionContext, SessionMessage, SessionSpec, SpecError,
};
use crate::keys::{SecretKey, SignerKey};

/// Why joining failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// Not (or no longer) an open invitation.
    #[error("session {0} is not an open invitation (phase {1})")]
    NotInvited(String, Phase),
    /// The secret keys given do not match the session's keys of this node.
    #[error("the secret keys do not match this node's keys in the session (missing {0})")]
    WrongKeys(SignerKey),
}

/// One of our keys, its secret, and one secret nonce per message.
struct KeyRounds {
    key: SignerKey,
    secret: SecretKey,
    nonces: Vec<SecretNonce>,
}

enum State {
    Invited,
    Joined {
        secrets: Vec<SecretKey>,
        entropy: Zeroizing<[u8; 32]>,
    },
    NoncesSent {
        rounds: Vec<KeyRounds>,
        ours: Vec<KeyNonces>,
    },
    PartialsSent,
    Over,
}

/// This node's part in a session run by another node (or by itself).
pub struct Participant {
    spec: SessionSpec,
    ctx: SessionContext,
    our_keys: Vec<SignerKey>,
    phase: Phase,
    holdouts: Vec<SignerKey>,
    deadline: Option<Instant>,
    state: State,
    outcome: Option<Outcome>,
    pub_nonces: Vec<KeyNonces>,
}

impl std::fmt::Debug for Participant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Participant")
            .field("session", &self.spec.session_id)
            .field("phase", &self.phase)
            .field("our_keys", &self.our_keys)
            .finish_non_exhaustive()
    }
}

impl Participant {
    /// Takes an invitation addressed to `me`.
    pub fn new(spec: SessionSpec, me: PeerId, now: Instant) -> Result<Self, SpecError> {
        let ctx = SessionContext::new(&spec)?;
        let our_keys = spec.keys_of(&me);
        if our_keys.is_empty() {
            return Err(SpecError::NotASigner);
        }
        Ok(Self {
            holdouts: spec.keys(),
            deadline: Some(now + spec.timeouts.join),
            spec,
            ctx,
            our_keys,
            phase: Phase::Invitation,
            state: State::Invited,
            outcome: None,
            pub_nonces: Vec::new(),
        })
    }

    /// The session's spec.
    pub fn spec(&self) -> &SessionSpec {
        &self.spec
    }

    /// What the spec derives to.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// This node's keys in the session.
    pub fn our_keys(&self) -> &[SignerKey] {
        &self.our_keys
    }

    /// The phase as last known here.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Keys outstanding as the coordinator last reported them (our own
    /// while the invitation is open).
    pub fn holdouts(&self) -> Vec<SignerKey> {
        match (&self.state, &self.outcome) {
            (State::Invited, _) => self.our_keys.clone(),
            (_, Some(Outcome::Failed(f))) => f.holdouts.clone(),
            (_, Some(Outcome::Completed { .. })) => Vec::new(),
            _ => self.holdouts.clone(),
        }
    }

    /// Whether the person has joined.
    pub fn has_joined(&self) -> bool {
        !matches!(self.state, State::Invited) && self.phase != Phase::Invitation
    }

    /// When this node gives up waiting for the coordinator.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// How the session ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Every signer's public nonces, once the coordinator sent them.
    pub fn pub_nonces(&self) -> &[KeyNonces] {
        &self.pub_nonces
    }

    fn to_coordinator(&self, message: SessionMessage) -> Action {
        Action::Send {
            to: vec![self.spec.coordinator],
            message,
        }
    }

    fn phase_action(&self) -> Action {
        Action::Phase {
            phase: self.phase,
            holdouts: self.holdouts(),
        }
    }

    /// Waits for the coordinator's next step: its own phase timeout, twice
    /// over (the coordinator normally reports a failure well before).
    fn wait_for(&mut self, phase: Phase, now: Instant) {
        self.deadline = Some(now + 2 * self.spec.timeouts.of(phase));
    }

    fn finish(&mut self, outcome: Outcome) -> Vec<Action> {
        self.phase = match &outcome {
            Outcome::Completed { .. } => Phase::Done,
            Outcome::Failed(f) if f.kind == FailureKind::Aborted => Phase::Aborted,
            Outcome::Failed(_) => Phase::Failed,
        };
        // Drops any secret keys and nonces still held.
        self.state = State::Over;
        self.deadline = None;
        self.outcome = Some(outcome.clone());
        vec![self.phase_action(), Action::Finished(outcome)]
    }

    fn fail(&mut self, kind: FailureKind, reason: String, culprits: Vec<SignerKey>) -> Vec<Action> {
        let failure = Failure {
            kind,
            phase: self.phase,
            reason,
            culprits,
            holdouts: self.holdouts.clone(),
        };
        self.finish(Outcome::Failed(failure))
    }

    /// Joins with the secret keys of [`Self::our_keys`]; `entropy` (32
    /// fresh random bytes) seeds the nonces together with the keys, the
    /// message and the session id.
    pub fn join(
        &mut self,
        secrets: Vec<SecretKey>,
        entropy: Zeroizing<[u8; 32]>,
        now: Instant,
    ) -> Result<Vec<Action>, JoinError> {
        if !matches!(self.state, State::Invited) || self.phase.is_terminal() {
            return Err(JoinError::NotInvited(
                self.spec.session_id.to_string(),
                self.phase,
            ));
        }
        let given: Vec<SignerKey> = secrets.iter().map(|s| s.public_key()).collect();
        if let Some(missing) = self.our_keys.iter().find(|k| !given.contains(k)) {
            return Err(JoinError::WrongKeys(*missing));
        }
        let secrets = secrets
            .into_iter()
            .filter(|s| self.our_keys.contains(&s.public_key()))
            .collect();
        self.state = State::Joined { secrets, entropy };
        self.phase = Phase::Join;
        self.holdouts.retain(|k| !self.our_keys.contains(k));
        self.wait_for(Phase::Join, now);
        Ok(vec![
            self.to_coordinator(SessionMessage::Join {
                keys: self.our_keys.clone(),
            }),
            self.phase_action(),
        ])
    }

    /// Declines the invitation, or withdraws from the session.
    pub fn decline(&mut self, reason: &str) -> Vec<Action> {
        if self.phase.is_terminal() {
            return Vec::new();
        }
        let mut actions = vec![self.to_coordinator(SessionMessage::Decline {
            keys: self.our_keys.clone(),
            reason: reason.to_string(),
        })];
        actions.extend(self.fail(
            FailureKind::Declined,
            format!("declined here: {reason}"),
            Vec::new(),
        ));
        actions
    }

    /// Stops here (the service stops); the coordinator is told.
    pub fn abort(&mut self, reason: &str) -> Vec<Action> {
        if self.phase.is_terminal() {
            return Vec::new();
        }
        let mut actions = Vec::new();
        if !matches!(self.state, State::Invited) {
            actions.push(self.to_coordinator(SessionMessage::Decline {
                keys: self.our_keys.clone(),
                reason: reason.to_string(),
            }));
        }
        actions.extend(self.fail(FailureKind::Aborted, reason.to_string(), Vec::new()));
        actions
    }

    /// Handles a message from `from` (verified by the node's envelope).
    pub fn handle_message(
        &mut self,
        from: PeerId,
        message: SessionMessage,
        now: Instant,
    ) -> Result<Vec<Action>, Refusal> {
        if from != self.spec.coordinator {
            return Err(Refusal(format!(
                "{from} is not the coordinator of session {}",
                self.spec.session_id
            )));
        }
        if self.phase.is_terminal() {
            return Err(Refusal(format!(
                "session {} is over here",
                self.spec.session_id
            )));
        }
        match message {
            SessionMessage::Progress { phase, holdouts } => {
                if phase == self.phase {
                    self.holdouts = holdouts;
                }
                Ok(vec![self.phase_action()])
            }
            SessionMessage::NonceRequest => self.on_nonce_request(now),
            SessionMessage::SignRequest { nonces } => Ok(self.on_sign_request(nonces, now)),
            SessionMessage::Outcome(outcome) => Ok(self.on_outcome(outcome)),
            other => Err(Refusal(format!("a signer takes no {}", other.name()))),
        }
    }

    fn on_nonce_request(&mut self, now: Instant) -> Result<Vec<Action>, Refusal> {
        let (secrets, entropy) = match mem::replace(&mut self.state, State::Over) {
            State::Joined { secrets, entropy } => (secrets, entropy),
            State::NoncesSent { rounds, ours } => {
                // A repeated request gets the same public nonces (never new ones).
                let resend = self.to_coordinator(SessionMessage::Nonces {
                    nonces: ours.clone(),
                });
                self.state = State::NoncesSent { rounds, ours };
                return Ok(vec![resend]);
            }
            other => {
                self.state = other;
                return Err(Refusal(format!("no nonces to give in {}", self.phase)));
            }
        };
        let mut rounds = Vec::new();
        let mut ours = Vec::new();
        let id = *self.spec.session_id.as_bytes();
        for secret in secrets {
            let key = secret.public_key();
            let index = self.ctx.index_of(&key).expect("our keys are the session's");
            let mut nonces = Vec::new();
            for (i, message) in self.ctx.messages.iter().enumerate() {
                let nonce = SecretNonce::new(
                    &self.ctx.key_agg,
                    nonce_seed(&entropy, &key, i),
                    index,
                    SecNonceSpices::new()
                        .with_seckey(secret.scalar())
                        .with_message(message)
                        .with_extra_input(&id),
                )
                .expect("our key is a signer of the session");
                nonces.push(nonce);
            }
            ours.push(KeyNonces {
                key,
                nonces: nonces
                    .iter()
                    .map(|n| n.public().serialize().to_vec())
                    .collect(),
            });
            rounds.push(KeyRounds {
                key,
                secret,
                nonces,
            });
        }
        self.state = State::NoncesSent {
            rounds,
            ours: ours.clone(),
        };
        self.phase = Phase::Nonces;
        self.holdouts = self.spec.keys();
        self.wait_for(Phase::Nonces, now);
        Ok(vec![
            self.to_coordinator(SessionMessage::Nonces { nonces: ours }),
            self.phase_action(),
        ])
    }

    fn on_sign_request(&mut self, nonces: Vec<KeyNonces>, now: Instant) -> Vec<Action> {
        let (rounds, ours) = match mem::replace(&mut self.state, State::Over) {
            State::NoncesSent { rounds, ours } => (rounds, ours),
            other => {
                // Already signed (or never asked for nonces): never sign twice.
                self.state = other;
                return Vec::new();
            }
        };
        self.phase = Phase::PartialSignatures;
        let keys = self.spec.keys();
        let count = self.ctx.messages.len();
        // Every signer's nonces, in signer order, parsed; ours unchanged.
        let mut table: Vec<Vec<PubNonce>> = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let Some(entry) = nonces
                .get(i)
                .filter(|e| e.key == *key && e.nonces.len() == count)
            else {
                return self.fail(
                    FailureKind::ProtocolViolation,
                    format!("the coordinator's nonce list lacks {key}"),
                    Vec::new(),
                );
            };
            if let Some(mine) = ours.iter().find(|o| o.key == *key) {
                if mine.nonces != entry.nonces {
                    return self.fail(
                        FailureKind::ProtocolViolation,
                        format!("the coordinator altered the public nonces of {key}"),
                        Vec::new(),
                    );
                }
            }
            let parsed: Result<Vec<PubNonce>, _> = entry
                .nonces
                .iter()
                .map(|b| PubNonce::from_bytes(b))
                .collect();
            match parsed {
                Ok(p) => table.push(p),
                Err(_) => {
                    return self.fail(
                        FailureKind::InvalidNonce,
                        format!("the public nonces of {key} are malformed"),
                        vec![*key],
                    )
                }
            }
        }
        self.pub_nonces = nonces;
        let aggnonces: Vec<AggNonce> = (0..count)
            .map(|i| AggNonce::sum(table.iter().map(|n| &n[i])))
            .collect();
        let mut partials = Vec::new();
        for key_rounds in rounds {
            let KeyRounds {
                key,
                secret,
                nonces,
            } = key_rounds;
            let mut signed = Vec::with_capacity(count);
            // Each secret nonce is consumed by signing.
            for (i, nonce) in nonces.into_iter().enumerate() {
                match nonce.sign(
                    &self.ctx.key_agg,
                    secret.scalar(),
                    &aggnonces[i],
                    &self.ctx.messages[i],
                ) {
                    Ok(partial) => signed.push(partial.serialize().to_vec()),
                    Err(e) => {
                        return self.fail(
                            FailureKind::ProtocolViolation,
                            format!("cannot sign message {i} with {key}: {e}"),
                            Vec::new(),
                        )
                    }
                }
            }
            partials.push(KeyPartials {
                key,
                partials: signed,
            });
        }
        self.state = State::PartialsSent;
        self.holdouts = keys;
        self.wait_for(Phase::PartialSignatures, now);
        vec![
            self.to_coordinator(SessionMessage::Partials { partials }),
            self.phase_action(),
        ]
    }

    fn on_outcome(&mut self, outcome: Outcome) -> Vec<Action> {
        match outcome {
            Outcome::Failed(failure) => self.finish(Outcome::Failed(failure)),
            Outcome::Completed { signatures } => {
                let signing_key: Point = self.ctx.key_agg.aggregated_pubkey();
                let valid = signatures.len() == self.ctx.messages.len()
                    && signatures.iter().zip(&self.ctx.messages).all(|(sig, msg)| {
                        musig2::verify_single(signing_key, sig.as_slice(), msg).is_ok()
                    });
                if valid {
                    self.finish(Outcome::Completed { signatures })
                } else {
                    self.fail(
                        FailureKind::InvalidSignature,
                        "the coordinator's final signature does not verify".into(),
                        Vec::new(),
                    )
                }
            }
        }
    }

    /// The wait for the coordinator ran out.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        match self.deadline {
            Some(deadline) if now >= deadline => {
                let reason = match self.state {
                    State::Invited => "the invitation expired".to_string(),
                    _ => format!("the coordinator went silent in the {} phase", self.phase),
                };
                self.fail(FailureKind::Timeout, reason, Vec::new())
            }
            _ => Vec::new(),
        }
    }

    /// A message to the coordinator could not be delivered.
    pub fn handle_send_failure(&mut self, reason: &str) -> Vec<Action> {
        if self.phase.is_terminal() {
            return Vec::new();
        }
        self.fail(
            FailureKind::Unreachable,
            format!("the coordinator: {reason}"),
            Vec::new(),
        )
    }
}

/// A per-key, per-message nonce seed from the join's entropy.
fn nonce_seed(entropy: &[u8; 32], key: &SignerKey, message_index: usize) -> Zeroizing<[u8; 32]> {
    let mut hasher = blake3::Hasher::new_keyed(entropy);
    hasher.update(b"conclave musig2 nonce seed v1");
    hasher.update(key.as_bytes());
    hasher.update(&(message_index as u64).to_le_bytes());
    let mut seed = Zeroizing::new([0u8; 32]);
    hasher.finalize_xof().fill(&mut seed[..]);
    seed
}
