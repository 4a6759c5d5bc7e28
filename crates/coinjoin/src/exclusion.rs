//! Who was excluded from a session, and why. Exclusions name outpoints,
//! not PeerIds: a disruptor can take a new PeerId for free, not new coins.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::coin::Outpoint;

/// The phase of a run, as exclusions and the UI name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Public keys and the commitment to the run's secrets.
    KeyExchange,
    /// ML-KEM ciphertexts to every other peer.
    Ciphertexts,
    /// The exponential DC-net reserving anonymous slots.
    SlotReservation,
    /// The XOR DC-net revealing the output keys.
    DcNet,
    /// Everyone states that its outputs are present (or reveals).
    Acceptance,
    /// Everyone signs its own inputs.
    Signatures,
    /// Everyone reveals its seed so the run can be replayed.
    Blame,
    /// The transaction is complete.
    Done,
    /// The session ended without a transaction.
    Failed,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::KeyExchange => "key_exchange",
            Phase::Ciphertexts => "ciphertexts",
            Phase::SlotReservation => "slot_reservation",
            Phase::DcNet => "dc_net",
            Phase::Acceptance => "acceptance",
            Phase::Signatures => "signatures",
            Phase::Blame => "blame",
            Phase::Done => "done",
            Phase::Failed => "failed",
        })
    }
}

/// Why a participant was excluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Its message for a phase did not arrive by the deadline.
    Holdout(Phase),
    /// It sent two different messages for one phase (both are the proof).
    Equivocation(Phase),
    /// Its message was malformed or inconsistent (public for all to check).
    InvalidMessage(Phase, String),
    /// Its published key-exchange keys are invalid.
    InvalidKey(String),
    /// Replaying its revealed seed does not give the messages it sent.
    Deviated(Phase),
    /// It claimed a failure that the replay shows did not happen.
    FalseAccusation,
    /// Its committed output key is not a valid x-only key.
    InvalidOutputKey,
    /// Its transaction signature is invalid (or not SIGHASH_DEFAULT).
    BadSignature(String),
    /// One of its inputs was spent during the session.
    InputSpent(Outpoint),
    /// Its pair request failed validation.
    InvalidRequest(String),
    /// Another request spends one of its outpoints.
    OutpointInTwoRequests(Outpoint),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Holdout(p) => write!(f, "sent nothing in {p} before the deadline"),
            Reason::Equivocation(p) => write!(f, "sent two different messages in {p}"),
            Reason::InvalidMessage(p, what) => write!(f, "invalid {p} message: {what}"),
            Reason::InvalidKey(what) => write!(f, "invalid key: {what}"),
            Reason::Deviated(p) => write!(
                f,
                "its {p} message does not follow from its revealed secrets"
            ),
            Reason::FalseAccusation => f.write_str("claimed a disruption that did not happen"),
            Reason::InvalidOutputKey => f.write_str("put an invalid output key into the DC-net"),
            Reason::BadSignature(what) => write!(f, "bad signature: {what}"),
            Reason::InputSpent(o) => write!(f, "input {o} was spent during the session"),
            Reason::InvalidRequest(what) => write!(f, "invalid pair request: {what}"),
            Reason::OutpointInTwoRequests(o) => write!(f, "outpoint {o} is in two requests"),
        }
    }
}

/// One participant excluded from a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusion {
    /// Every outpoint of its request.
    pub outpoints: Vec<Outpoint>,
    /// Why.
    pub reason: Reason,
    /// The run it was excluded in (0 for pairing).
    pub run: u32,
}
