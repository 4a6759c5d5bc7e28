//! The messages of the session protocol (carried in signed envelopes by
//! the node; the private ones also sealed to their recipients).

use serde::{Deserialize, Serialize};

use super::{Outcome, Phase, SessionSpec};
use crate::keys::SignerKey;

/// One key's public nonces, one per message (66 bytes each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyNonces {
    /// The signer key.
    pub key: SignerKey,
    /// Its public nonces, in message order.
    pub nonces: Vec<Vec<u8>>,
}

/// One key's partial signatures, one per message (32 bytes each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPartials {
    /// The signer key.
    pub key: SignerKey,
    /// Its partial signatures, in message order.
    pub partials: Vec<Vec<u8>>,
}

/// A message between a coordinator and a signer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionMessage {
    /// Coordinator → signer: what is signed and by whom (sealed: a PSBT
    /// tells amounts and addresses).
    Invite(SessionSpec),
    /// Signer → coordinator: it takes part with these keys.
    Join {
        /// Keys the signer joins with (all of its keys in the session).
        keys: Vec<SignerKey>,
    },
    /// Signer → coordinator: it refuses or withdraws.
    Decline {
        /// Keys the signer held in the session.
        keys: Vec<SignerKey>,
        /// Why, for people.
        reason: String,
    },
    /// Coordinator → signers: who is still outstanding in the join phase.
    Progress {
        /// The phase.
        phase: Phase,
        /// Keys still owed.
        holdouts: Vec<SignerKey>,
    },
    /// Coordinator → signers: everyone joined; send public nonces.
    NonceRequest,
    /// Signer → coordinator: its public nonces (sealed).
    Nonces {
        /// Per key.
        nonces: Vec<KeyNonces>,
    },
    /// Coordinator → signers: every public nonce; sign (sealed).
    SignRequest {
        /// Per key, in signer order.
        nonces: Vec<KeyNonces>,
    },
    /// Signer → coordinator: its partial signatures (sealed).
    Partials {
        /// Per key.
        partials: Vec<KeyPartials>,
    },
    /// Coordinator → signers: how the session ended.
    Outcome(Outcome),
}

impl SessionMessage {
    /// Whether the message is sealed to its recipients.
    pub fn is_private(&self) -> bool {
        matches!(
            self,
            SessionMessage::Invite(_)
                | SessionMessage::Nonces { .. }
                | SessionMessage::SignRequest { .. }
                | SessionMessage::Partials { .. }
        )
    }

    /// A short name, for logs and sealing context.
    pub fn name(&self) -> &'static str {
        match self {
            SessionMessage::Invite(_) => "invite",
            SessionMessage::Join { .. } => "join",
            SessionMessage::Decline { .. } => "decline",
            SessionMessage::Progress { .. } => "progress",
            SessionMessage::NonceRequest => "nonce-request",
            SessionMessage::Nonces { .. } => "nonces",
            SessionMessage::SignRequest { .. } => "sign-request",
            SessionMessage::Partials { .. } => "partials",
            SessionMessage::Outcome(_) => "outcome",
        }
    }

    /// Whether the coordinator (rather than a signer) receives it.
    pub fn is_for_coordinator(&self) -> bool {
        matches!(
            self,
            SessionMessage::Join { .. }
                | SessionMessage::Decline { .. }
                | SessionMessage::Nonces { .. }
                | SessionMessage::Partials { .. }
        )
    }
}
