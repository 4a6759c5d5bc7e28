//! The MuSig2 session protocol as pure state machines: no I/O, no clocks,
//! no randomness of their own. Events go in (a message from a peer, a
//! deadline that passed, a failed send), [`Action`]s come out (messages to
//! send, phase changes, the outcome), and each machine exposes the one
//! deadline it waits for. The service (`crate::service`) does the I/O.
//!
//! A session has a coordinator (the node that created it) and signers (the
//! nodes holding the keys; the coordinator may be one of them). Messages
//! run between the coordinator and each signer:
//!
//! ```text
//! coordinator                               signer
//!   Invite (spec)          ─────────────▶  shows the invitation
//!                          ◀─────────────  Join (an explicit act)
//!   Progress (holdouts)    ─────────────▶
//!   NonceRequest           ─────────────▶  generates secret nonces
//!                          ◀─────────────  Nonces (sealed)
//!   SignRequest (all nonces, sealed) ───▶  signs once, drops secret nonces
//!                          ◀─────────────  Partials (sealed)
//!   verifies each partial signature, aggregates, verifies the result
//!   Outcome                ─────────────▶  verifies the final signature
//! ```
//!
//! Every phase has a deadline; [`Coordinator::holdouts`] names the keys
//! still owed in the current phase, and a failure lists them (and the
//! culprit of a bad contribution).

pub mod coordinator;
pub mod messages;
pub mod participant;
mod secret_nonce;
pub mod spec;
#[cfg(test)]
mod tests;

use std::{fmt, str::FromStr, time::Duration};

use conclave_node::PeerId;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::keys::SignerKey;

pub use coordinator::Coordinator;
pub use messages::{KeyNonces, KeyPartials, SessionMessage};
pub use participant::Participant;
pub use spec::{Payload, SessionContext, SessionSpec, SignerEntry, SpecError};

/// A session's id: 16 random bytes chosen by its coordinator.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// From its 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// A session id that is not 32 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid session id {0:?}: expected 32 hex characters; copy it whole from the sessions list"
)]
pub struct InvalidSessionId(pub String);

impl FromStr for SessionId {
    type Err = InvalidSessionId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s.trim()).map_err(|_| InvalidSessionId(s.to_string()))?;
        let array: [u8; 16] = bytes
            .try_into()
            .map_err(|_| InvalidSessionId(s.to_string()))?;
        Ok(Self(array))
    }
}

impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum Phase {
    /// A signer holds an invitation it has not joined.
    Invitation,
    /// Waiting for every signer to join.
    Join,
    /// Waiting for every signer's public nonces.
    Nonces,
    /// Waiting for every signer's partial signatures.
    PartialSignatures,
    /// Partial signatures are being aggregated (a signer: waiting for the result).
    Aggregation,
    /// The final signature exists and verifies.
    Done,
    /// The session failed (timeout, bad contribution, refusal).
    Failed,
    /// The session was stopped here (service stopped or restarted).
    Aborted,
}

impl Phase {
    /// Whether the session is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed | Phase::Aborted)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_value(self).expect("phases serialise");
        f.write_str(text.as_str().unwrap_or("?"))
    }
}

/// How long each phase may last (the coordinator's deadlines; a signer
/// waits somewhat longer for the coordinator before giving up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// For every signer to join (people decide here: minutes).
    pub join: Duration,
    /// For every signer's public nonces (automatic: seconds).
    pub nonces: Duration,
    /// For every signer's partial signatures (automatic: seconds).
    pub partial_signatures: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            join: Duration::from_secs(600),
            nonces: Duration::from_secs(30),
            partial_signatures: Duration::from_secs(30),
        }
    }
}

impl Timeouts {
    /// The same timeout for every phase.
    pub fn uniform(timeout: Duration) -> Self {
        Self {
            join: timeout,
            nonces: timeout,
            partial_signatures: timeout,
        }
    }

    /// The deadline of the coordinator's `phase`.
    pub fn of(&self, phase: Phase) -> Duration {
        match phase {
            Phase::Invitation | Phase::Join => self.join,
            Phase::Nonces => self.nonces,
            _ => self.partial_signatures,
        }
    }
}

/// Why a session failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum FailureKind {
    /// A phase's deadline passed with keys still owed.
    Timeout,
    /// A signer's public nonce was malformed.
    InvalidNonce,
    /// A signer's partial signature did not verify.
    InvalidPartialSignature,
    /// The aggregate (or a received final) signature did not verify.
    InvalidSignature,
    /// A signer declined or withdrew.
    Declined,
    /// A signer refused a message (e.g. the session id was used before).
    Refused,
    /// A peer could not be reached.
    Unreachable,
    /// A peer broke the protocol.
    ProtocolViolation,
    /// Stopped locally (service stopped or restarted).
    Aborted,
}

/// A failed session: why, who is to blame, who did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Failure {
    /// The kind of failure.
    pub kind: FailureKind,
    /// The phase the session failed in.
    pub phase: Phase,
    /// What happened, for people.
    pub reason: String,
    /// Keys whose contribution was bad.
    pub culprits: Vec<SignerKey>,
    /// Keys that still owed an answer when the session failed.
    pub holdouts: Vec<SignerKey>,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// One BIP-340 signature (64 bytes) per message, each verified.
    Completed {
        /// The signatures, in message order.
        signatures: Vec<Vec<u8>>,
    },
    /// The session failed.
    Failed(Failure),
}

/// What a state machine asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `message` to each of `to` (sealed ones sealed once to all).
    Send {
        /// Recipients.
        to: Vec<PeerId>,
        /// The message.
        message: SessionMessage,
    },
    /// The phase or its holdouts changed.
    Phase {
        /// The current phase.
        phase: Phase,
        /// Keys still owed in it.
        holdouts: Vec<SignerKey>,
    },
    /// The session is over.
    Finished(Outcome),
}

/// A message a state machine will not take (sent back to its sender; the
/// session goes on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// The distinct peers behind the signers, in signer order.
pub(crate) fn peers_of(signers: &[SignerEntry]) -> Vec<PeerId> {
    let mut peers: Vec<PeerId> = Vec::new();
    for s in signers {
        if !peers.contains(&s.peer) {
            peers.push(s.peer);
        }
    }
    peers
}
